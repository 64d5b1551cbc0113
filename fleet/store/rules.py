"""What every SQL backend decides alike: who may claim a run, which due time of a schedule is
claimed, what an audited removal records.

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
from fleet.store.rows import check_ttl, dumps, run_owned, to_ms

Tx = TypeVar("Tx")


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


# ---------------------------------------------------------------------------- run claims


class RunClaims(Steps[Tx]):
    """The run's owner: claimed with a new token, its host leases re-issued, a takeover recorded;
    the run's lease broken by an operator."""

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

    def _end_run_lease(self, tx: Tx, run_id: str) -> None:
        """The run has no owner from now (its token is kept: a stale holder is told apart)."""
        raise NotImplementedError


# ------------------------------------------------------------------------------- schedules


class ScheduleClaims(Steps[Tx]):
    """Schedules added (audited), and each due time of a schedule claimed once, for good."""

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
            if not self._insert_fire(tx, name, due, by, outcome, run_id, detail):
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

    def _schedule_paused(self, tx: Tx, name: str) -> bool | None:
        """Whether the schedule is paused (None: there is none), its row kept from other writers
        until ``tx`` ends."""
        raise NotImplementedError

    def _insert_fire(
        self,
        tx: Tx,
        name: str,
        due: datetime,
        by: str,
        outcome: str,
        run_id: str | None,
        detail: str | None,
    ) -> bool:
        """Record the due time ``due`` of schedule ``name`` as fired now; False when it was
        recorded already."""
        raise NotImplementedError
