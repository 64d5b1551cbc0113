"""The state store: runs, journal, leases, quarantine, the global halt switch and host keys.

One interface, several backends: :mod:`fleet.store.sqlite` (default, one WAL file) and, for
teams, :mod:`fleet.store.postgresql` (one database shared by every operator). Every instant is
timezone-aware UTC. Secrets never enter the store: callers pass only redacted text.
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from fleet.store.migrations import Outcome

#: Run states. ``running`` also covers a run whose process died: ``fleet status`` tells it
#: apart by the owner's pid and heartbeat.
RUN_STATES = ("running", "halted", "done", "failed", "aborted")


@dataclass(frozen=True)
class Owner:
    """Who acts: for leases, runs and the audit trail.

    ``started`` (the process's start time, epoch seconds) tells a live owner from a later
    process that reuses its pid; ``nonce`` is drawn once per process, so two owners are equal
    only when they are the very same process.
    """

    user: str
    machine: str
    pid: int
    run_id: str | None = None
    started: float | None = None
    nonce: str | None = None

    def __str__(self) -> str:
        where = f"{self.user}@{self.machine} pid {self.pid}"
        return f"{where} run {self.run_id}" if self.run_id else where

    def same_process(self, other: Owner) -> bool:
        """The same process, whatever run it acts for."""
        return (self.user, self.machine, self.pid, self.started, self.nonce) == (
            other.user,
            other.machine,
            other.pid,
            other.started,
            other.nonce,
        )


@dataclass(frozen=True)
class Actor:
    """Who acts, for the audit trail: the operator's name (``FLEET_OPERATOR``, else the OS
    user), the OS user and machine the command ran on, and its process."""

    operator: str
    user: str
    machine: str
    pid: int | None = None

    @classmethod
    def current(cls, operator: str | None = None) -> Actor:
        """This process, acting for ``operator`` (default: the OS user)."""
        user = getpass.getuser()
        return cls(operator or user, user, socket.gethostname(), os.getpid())

    def matches(self, who: str) -> bool:
        """Whether ``who`` names this actor: its operator name, OS user or ``user@machine``."""
        return who in (self.operator, self.user, f"{self.user}@{self.machine}")

    def __str__(self) -> str:
        where = f"{self.user}@{self.machine}"
        return where if self.operator == self.user else f"{self.operator} ({where})"


@dataclass(frozen=True)
class AuditEntry:
    """One operator action: who did what, when, from which machine, on which run or host."""

    seq: int
    at: datetime
    action: str
    actor: Actor
    run_id: str | None = None
    host: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Lease:
    """A host's lease: exclusive right to touch it until ``expires_at``.

    ``token`` is the fencing token: it increases on every grant of any lease, so a holder
    whose lease expired and was granted again elsewhere can be told apart.
    """

    host: str
    owner: Owner
    token: int
    taken_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class Fence:
    """A holder's proof, carried by its writes: the run's lease token and, for a write about one
    host, that host's lease token. A write whose tokens are no longer current is refused
    (:class:`fleet.errors.LeaseLost`)."""

    run_id: str
    run_token: int
    host: str | None = None
    host_token: int | None = None


@dataclass(frozen=True)
class RunLease:
    """The run's one live owner: ``token`` increases on every claim; ``expires_at`` is pushed by
    the owner's heartbeat (None once released or broken: the run has no owner)."""

    run_id: str
    owner: Owner
    token: int
    expires_at: datetime | None


@dataclass(frozen=True)
class RunRecord:
    """A rollout: what it runs on which hosts, with which options, and where it stands."""

    id: str
    plan_name: str
    plan_source: str  # "builtin:NAME", a file path, or "adhoc"
    plan_hash: str
    hosts: tuple[str, ...]
    options: dict[str, Any]
    owner: Owner
    state: str = "running"
    reason: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    lease: RunLease | None = None  # the owner's lease: None until a process claims the run


@dataclass(frozen=True)
class Event:
    """One journal entry. ``kind`` is dotted: run.start, batch.start, host.end, step.start..."""

    run_id: str
    kind: str
    at: datetime
    host: str | None = None
    stage: str | None = None
    step: str | None = None
    outcome: str | None = None
    exit_code: int | None = None
    excerpt: str | None = None
    query_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None  # assigned by the store


@dataclass(frozen=True)
class PinnedKey:
    """A host key fleet pinned for one boot role of a host."""

    host: str
    role: str
    key_type: str
    blob: str
    pinned_at: datetime


@dataclass(frozen=True)
class QuarantineEntry:
    host: str
    run_id: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class HaltState:
    """The global kill switch: when set, no rollout starts a host or a batch."""

    who: str
    reason: str
    at: datetime


#: What a schedule does with due times that passed while no scheduler ran: ``skip`` them (log
#: and wait for the next one) or run ``once`` (one rollout, however many slots were missed).
MISSED_POLICIES = ("skip", "once")


@dataclass(frozen=True)
class ScheduleRecord:
    """A rollout started by ``fleet scheduler run`` at each due time of a cron expression.

    ``args`` are the ``fleet rollout`` arguments after the plan (limit, batches, windows...).
    Due times at or before ``since`` (creation, last resume) are never run.
    """

    name: str
    plan: str
    cron: str
    tz: str
    args: tuple[str, ...] = ()
    missed: str = "skip"
    paused: bool = False
    created_by: str = ""
    created_at: datetime | None = None
    since: datetime | None = None
    expires_at: datetime | None = None
    last_due: datetime | None = None


@dataclass(frozen=True)
class ScheduleFire:
    """One due time of a schedule, recorded once: (schedule, due_at) is unique in the store.

    ``outcome``: ``starting`` (claimed, rollout being launched), ``started``, ``skipped``
    (missed and the policy is skip) or ``failed`` (the rollout could not be launched).
    """

    schedule: str
    due_at: datetime
    fired_at: datetime
    by: str
    outcome: str
    run_id: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class OwnedArray:
    """An md array fleet created on a host: its identity, recorded so that a later run knows
    the array is fleet's own (see :mod:`fleet.plans.disks.arrays`)."""

    host: str
    uuid: str
    name: str  # as in the superblock, with fleet's marker: fleet-1a2b3c4d:md4
    level: str
    serials: tuple[str, ...]  # of the member disks
    run_id: str  # the run that created it
    fs_uuid: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True)
class Preview:
    """A read-only preview of a destructive plan (``fleet plan --probe``): per host, the digest
    of what its guard decided. ``fleet rollout --approve ID`` runs only what it shows."""

    id: str
    plan_hash: str
    hosts: dict[str, str]  # host -> decision digest ("" when the guard refused the host)
    created_by: str = ""
    created_at: datetime | None = None


class Store(Protocol):
    """Every backend implements this. Methods are safe to call from several threads."""

    # runs
    def create_run(self, run: RunRecord) -> None: ...
    def get_run(self, run_id: str) -> RunRecord: ...
    def list_runs(self, limit: int = 20) -> list[RunRecord]: ...
    def set_run_state(
        self, run_id: str, state: str, reason: str | None = None, *, fence: Fence | None = None
    ) -> None: ...

    # the run's owner
    def claim_run(
        self, run_id: str, owner: Owner, ttl: float, *, replacing: int | None, why: str
    ) -> RunLease:
        """Make ``owner`` the run's owner with a new token, if the run's lease token is still
        ``replacing`` (None: the run has no token yet); else raise RunOwned. The run's host
        leases held by anyone else are re-issued to ``owner`` with new tokens; a takeover from
        another owner is journaled (``run.takeover``) with ``why``."""
        ...

    def renew_run(self, lease: RunLease, ttl: float) -> RunLease:
        """Push the run lease's expiry; raise LeaseLost when it is no longer ours."""
        ...

    def release_run(self, lease: RunLease) -> None:
        """Give the run up (a no-op if it is no longer ours)."""
        ...

    def break_run_lease(self, run_id: str, who: str, reason: str) -> RunLease | None:
        """End the run's lease whoever holds it (its writes are refused from now); audited."""
        ...

    # journal
    def record(self, event: Event, fence: Fence | None = None) -> int:
        """Append ``event``; returns its ``seq``. With ``fence``, refused (LeaseLost) when the
        fence's tokens are no longer current."""
        ...

    def events(self, run_id: str, host: str | None = None) -> list[Event]: ...

    # leases
    def acquire_lease(
        self, host: str, owner: Owner, ttl: float, *, fence: Fence | None = None
    ) -> Lease:
        """Grant the lease or raise :class:`fleet.errors.LeaseHeld`; an expired lease is taken
        over. With ``fence``, refused (LeaseLost) when the run's token is no longer current."""
        ...

    def renew_lease(self, lease: Lease, ttl: float) -> Lease:
        """Extend a lease we hold; raise LeaseHeld if it was lost (broken, or taken after expiry)."""
        ...

    def release_lease(self, lease: Lease) -> None: ...
    def list_leases(self) -> list[Lease]: ...
    def break_lease(self, host: str, who: str, reason: str) -> Lease | None: ...

    # quarantine
    def quarantine(
        self, host: str, run_id: str, reason: str, *, fence: Fence | None = None
    ) -> None: ...
    def quarantined(self) -> list[QuarantineEntry]: ...
    def clear_quarantine(self, host: str, who: str) -> bool: ...

    # global halt
    def set_halt(self, who: str, reason: str) -> None: ...
    def clear_halt(self, who: str) -> bool: ...
    def halt_state(self) -> HaltState | None: ...
    def wait_halt(self, timeout: float) -> HaltState | None:
        """The global halt as soon as one is set, waiting at most ``timeout`` seconds (None if
        none is set by then). Returns within about a second of ``set_halt`` in any process."""
        ...

    # host keys (see fleet.transport.base.HostKeys)
    def pinned_key(self, host: str, role: str) -> tuple[str, str] | None: ...
    def pin_key(self, host: str, role: str, key_type: str, blob: str) -> None: ...
    def pinned_keys(self, host: str | None = None) -> list[PinnedKey]: ...
    def forget_key(self, host: str, role: str, who: str, reason: str) -> bool: ...

    # schedules (see fleet.schedule)
    def add_schedule(self, schedule: ScheduleRecord) -> ScheduleRecord:
        """Store a new schedule (its name must be new); returns it with its instants set."""
        ...

    def get_schedule(self, name: str) -> ScheduleRecord: ...
    def list_schedules(self) -> list[ScheduleRecord]: ...
    def remove_schedule(self, name: str, who: str) -> bool: ...
    def set_schedule_paused(self, name: str, paused: bool, who: str) -> ScheduleRecord:
        """Pause or resume; resuming moves ``since`` to now, so slots passed while paused
        are never run."""
        ...

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
        """Claim the due time ``due_at`` of schedule ``name``, atomically: True for the one
        caller that recorded it, False when it was already recorded (by anyone, ever) or the
        schedule is paused or gone."""
        ...

    def update_schedule_fire(
        self, name: str, due_at: datetime, *, outcome: str, run_id: str | None, detail: str | None
    ) -> None: ...
    def schedule_fires(self, name: str, limit: int = 20) -> list[ScheduleFire]:
        """The newest fires of a schedule, newest first."""
        ...

    # what fleet did to disks: the md arrays it created, the previews an operator approves
    def record_array(self, array: OwnedArray) -> None: ...
    def owned_arrays(self, host: str | None = None) -> list[OwnedArray]: ...
    def save_preview(self, preview: Preview) -> None: ...
    def get_preview(self, preview_id: str) -> Preview | None: ...

    # schema (see fleet.store.migrations)
    def schema_version(self) -> int: ...
    def migrate(self, *, dry_run: bool = False) -> Outcome:
        """Apply the pending schema migrations (with ``dry_run``, only list them)."""
        ...

    # audit trail (operator actions; the store also audits those it performs itself)
    def audit(
        self,
        action: str,
        *,
        run_id: str | None = None,
        host: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record that this store's actor did ``action`` (run.resume, reinstall.approve...)."""
        ...

    def audit_trail(
        self, *, since: datetime | None = None, who: str | None = None, limit: int = 1000
    ) -> list[AuditEntry]:
        """The newest ``limit`` entries at or after ``since`` by ``who`` (operator name, OS user
        or user@machine), oldest first."""
        ...

    def close(self) -> None: ...
