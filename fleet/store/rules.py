"""What every SQL backend decides alike: who may claim a run, which due time of a schedule is
claimed, what each operator's control (a broken lease, a cleared quarantine, the halt) records.

Each rule is written once here, as a mixin method over a few steps that each backend supplies in
its own SQL (its placeholders, its locks, whose clock decides). ``Tx`` is the backend's handle on
one transaction: a psycopg cursor, an sqlite3 connection in ``BEGIN IMMEDIATE``. Every step runs
inside the transaction the rule opened, so a check and the write it guards are never separated.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime
from typing import Any, Generic, TypeVar

from fleet.clock import utc_iso
from fleet.errors import StoreError
from fleet.store.base import MISSED_POLICIES, Lease, Owner, RunLease, ScheduleRecord
from fleet.store.rows import check_ttl, dumps, no_schedule, run_owned, to_ms

Tx = TypeVar("Tx")
#: A due time of a schedule, as claimed: schedule, due_at, by, outcome, run id, detail.
FireClaim = tuple[str, datetime, str, str, str | None, str | None]


class Steps(Generic[Tx]):
    """What every rule needs of a backend: a transaction and the audit trail."""

    #: Where the store lives, for messages (a file path, a database).
    where: str

    def _transaction(self, what: str) -> AbstractContextManager[Tx]:
        """One transaction, rolled back when the block raises; a driver error is a StoreError
        naming ``what``."""
        raise NotImplementedError

    def _audit(
        self, tx: Tx, kind: str, run_id: str, host: str | None, data: dict[str, Any]
    ) -> None:
        """Journal an operator's action in ``tx`` and add it to the audit trail."""
        raise NotImplementedError


# -------------------------------------------------------------------------------- leases


class LeaseRules(Steps[Tx]):
    """The run's owner: claimed with a new token, its host leases re-issued, a takeover recorded;
    a run's or a host's lease broken by an operator."""

    def claim_run(
        self, run_id: str, owner: Owner, ttl: float, *, replacing: int | None, why: str
    ) -> RunLease:
        """Make ``owner`` the run's owner if its token is still ``replacing``, else raise
        :class:`RunOwned`; the run's host leases held by anyone else are re-issued to ``owner``,
        and a takeover from another process is journaled and audited (``run.takeover``)."""
        check_ttl(ttl)
        with self._transaction(f"claim run {run_id}") as tx:
            previous, token, expires = self._run_lease(tx, run_id)
            if token != replacing:
                raise run_owned(run_id, previous)
            lease = self._set_run_owner(tx, run_id, owner, ttl)
            reissued = []
            for old in self._run_host_leases(tx, run_id):
                if old.owner != owner:
                    self._reissue(tx, old.host, owner, ttl)
                    reissued.append(old.host)
            # a live lease, or a run never claimed (its creator died first): taken from someone
            if (expires is not None or token is None) and not previous.same_process(owner):
                data = {"from": str(previous), "to": str(owner), "why": why, "hosts": reissued}
                self._audit(tx, "run.takeover", run_id, None, {**data, "token": lease.token})
            return lease

    def break_run_lease(self, run_id: str, who: str, reason: str) -> RunLease | None:
        """End the run's lease whoever holds it (its writes are refused from now); audited."""
        with self._transaction(f"break the lease of run {run_id}") as tx:
            owner, token, expires = self._run_lease(tx, run_id)
            if token is None or expires is None:
                return None
            self._end_run_lease(tx, run_id)
            data = {"who": who, "reason": reason, "owner": str(owner), "token": token}
            self._audit(tx, "run.lease.break", run_id, None, data)
            return RunLease(run_id, owner, token, expires)

    def _run_lease(self, tx: Tx, run_id: str) -> tuple[Owner, int | None, datetime | None]:
        """The run's owner, lease token and lease expiry, its row kept from other writers until
        ``tx`` ends; :func:`~fleet.store.rows.no_run` when there is no such run."""
        raise NotImplementedError

    def _set_run_owner(self, tx: Tx, run_id: str, owner: Owner, ttl: float) -> RunLease:
        """Write ``owner`` as the run's owner with a new token, expiring in ``ttl`` seconds."""
        raise NotImplementedError

    def _run_host_leases(self, tx: Tx, run_id: str) -> list[Lease]:
        """The host leases taken for the run, by host, kept from other writers until ``tx`` ends."""
        raise NotImplementedError

    def _reissue(self, tx: Tx, host: str, owner: Owner, ttl: float) -> None:
        """Grant ``host``'s lease to ``owner`` with a new token, whoever held it."""
        raise NotImplementedError

    def break_lease(self, host: str, who: str, reason: str) -> Lease | None:
        """Delete ``host``'s lease whoever holds it, and journal who did it and why."""
        with self._transaction(f"break the lease of {host}") as tx:
            current = self._delete_lease(tx, host)
            if current is None:
                return None
            data = {
                "who": who,
                "reason": reason,
                "owner": str(current.owner),
                "token": current.token,
            }
            self._audit(tx, "lease.break", current.owner.run_id or "-", host, data)
            return current

    def _end_run_lease(self, tx: Tx, run_id: str) -> None:
        """The run has no owner from now (its token is kept: a stale holder is told apart)."""
        raise NotImplementedError

    def _delete_lease(self, tx: Tx, host: str) -> Lease | None:
        """Delete ``host``'s lease; the lease it was (None: there was none)."""
        raise NotImplementedError


# ------------------------------------------------------------------- operators' controls


class ControlRules(Steps[Tx]):
    """The quarantine cleared and the global halt set or cleared, each audited with who did it."""

    def clear_quarantine(self, host: str, who: str) -> bool:
        """Let later rollouts take ``host`` again; journaled under run ``-``."""
        with self._transaction(f"clear the quarantine of {host}") as tx:
            entry = self._delete_quarantine(tx, host)
            if entry is None:
                return False
            data = {"who": who, "run_id": entry[0], "reason": entry[1]}
            self._audit(tx, "quarantine.clear", "-", host, data)
            return True

    def set_halt(self, who: str, reason: str) -> None:
        with self._transaction("set the global halt") as tx:
            self._write_halt(tx, who, reason)
            self._audit(tx, "halt.set", "-", None, {"who": who, "reason": reason})

    def clear_halt(self, who: str) -> bool:
        with self._transaction("clear the global halt") as tx:
            halt = self._delete_halt(tx)
            if halt is None:
                return False
            data = {"who": who, "set_by": halt[0], "reason": halt[1]}
            self._audit(tx, "halt.clear", "-", None, data)
            return True

    def _delete_quarantine(self, tx: Tx, host: str) -> tuple[str, str] | None:
        """Delete ``host``'s quarantine entry; its run id and reason (None: there was none)."""
        raise NotImplementedError

    def _write_halt(self, tx: Tx, who: str, reason: str) -> None:
        """Set the global halt now, by ``who``, for ``reason`` (replacing one already set)."""
        raise NotImplementedError

    def _delete_halt(self, tx: Tx) -> tuple[str, str] | None:
        """Clear the global halt; who set it and why (None: none was set)."""
        raise NotImplementedError


# ------------------------------------------------------------------------------- schedules


class ScheduleRules(Steps[Tx]):
    """Schedules added, paused, resumed and removed (audited), and each due time of a schedule
    claimed once, for good."""

    def add_schedule(self, schedule: ScheduleRecord) -> ScheduleRecord:
        """Store a new schedule; ``created_at`` and ``since`` default to now. Audited."""
        if schedule.missed not in MISSED_POLICIES:
            raise StoreError(f"schedule {schedule.name}: unknown missed policy {schedule.missed!r}")
        args = dumps(list(schedule.args), f"schedule {schedule.name} args")
        with self._transaction(f"add schedule {schedule.name}") as tx:
            stamps = self._insert_schedule(tx, schedule, args)
            if stamps is None:
                raise StoreError(
                    f"schedule {schedule.name!r} already exists in {self.where}",
                    hint=f"`fleet schedule remove {schedule.name}` first, or pick another name",
                )
            data = {"who": schedule.created_by, "plan": schedule.plan, "cron": schedule.cron}
            self._audit(tx, "schedule.add", "-", None, {**data, "schedule": schedule.name})
        created, since = stamps
        return replace(schedule, created_at=created, since=since, last_due=None)

    def remove_schedule(self, name: str, who: str) -> bool:
        """Forget a schedule and its fires (the runs it started stay). Audited."""
        with self._transaction(f"remove schedule {name}") as tx:
            gone = self._delete_schedule(tx, name)
            if gone:
                self._audit(tx, "schedule.remove", "-", None, {"who": who, "schedule": name})
            return gone

    def set_schedule_paused(self, name: str, paused: bool, who: str) -> ScheduleRecord:
        with self._transaction(f"{'pause' if paused else 'resume'} schedule {name}") as tx:
            schedule = self._set_paused(tx, name, paused)
            if schedule is None:
                raise no_schedule(name)
            kind = "schedule.pause" if paused else "schedule.resume"
            self._audit(tx, kind, "-", None, {"who": who, "schedule": name})
            return schedule

    def record_schedule_fire(
        self,
        name: str,
        due_at: datetime,
        run_id: str | None,
        *,
        outcome: str = "starting",
        by: str = "",
        detail: str | None = None,
    ) -> bool:
        """Claim one due time: the (schedule, due_at) primary key makes it unique for good; a
        paused or removed schedule claims none."""
        due = to_ms(due_at)
        with self._transaction(f"record a fire of schedule {name}") as tx:
            if self._schedule_paused(tx, name) is not False:
                return False
            if not self._insert_fire(tx, (name, due, by, outcome, run_id, detail)):
                return False
            data = {"schedule": name, "due_at": utc_iso(due), "by": by, "outcome": outcome}
            self._audit(tx, "schedule.fire", run_id or "-", None, data)
            return True

    def _insert_schedule(
        self, tx: Tx, schedule: ScheduleRecord, args: str
    ) -> tuple[datetime, datetime] | None:
        """Insert the schedule with its ``args`` (JSON); its ``created_at`` and ``since`` as
        stored, or None when a schedule of that name exists."""
        raise NotImplementedError

    def _delete_schedule(self, tx: Tx, name: str) -> bool:
        """Delete the schedule and its fires; whether there was one."""
        raise NotImplementedError

    def _set_paused(self, tx: Tx, name: str, paused: bool) -> ScheduleRecord | None:
        """Pause, or resume (``since`` moved to now: slots passed while paused never run); the
        schedule as it is now (None: there is none)."""
        raise NotImplementedError

    def _schedule_paused(self, tx: Tx, name: str) -> bool | None:
        """Whether the schedule is paused (None: there is none), its row kept from other writers
        until ``tx`` ends."""
        raise NotImplementedError

    def _insert_fire(self, tx: Tx, fire: FireClaim) -> bool:
        """Record the due time of ``fire`` as fired now; False when it was recorded already."""
        raise NotImplementedError
