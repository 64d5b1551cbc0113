"""What fleet needs from a server provider (OVH), as plain values.

``fleet.provider.ovh.OvhProvider`` is the real implementation; the values here never carry
``ovh`` objects, so a host pipeline can run anywhere with them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

#: Task statuses that mean "still running".
PENDING_TASK_STATUSES = frozenset({"init", "todo", "doing"})
#: Task statuses that mean "ended badly".
FAILED_TASK_STATUSES = frozenset({"ovhError", "customerError", "cancelled"})


@dataclass(frozen=True)
class Server:
    """``GET /dedicated/server/{sn}``, the fields fleet uses."""

    name: str
    ip: str
    datacenter: str
    rack: str
    state: str
    boot_id: int | None
    rescue_ssh_key: str | None
    os: str
    power_state: str
    reverse: str | None = None


@dataclass(frozen=True)
class DiskGroup:
    """One ``diskGroups[]`` entry of ``specifications/hardware``."""

    id: int
    disk_type: str  # free text: "NVME", "SSD", "HDD", "SATA", "SAS"...
    count: int
    size_gb: int
    description: str = ""


@dataclass(frozen=True)
class Hardware:
    """``GET .../specifications/hardware``, the fields fleet uses."""

    description: str
    disk_groups: tuple[DiskGroup, ...]
    boot_mode: str | None = None
    default_disk_group: int | None = None  # ``defaultDiskGroupId``: where the system goes

    @property
    def system_group(self) -> DiskGroup | None:
        """The group ``defaultDiskGroupId`` names (the system's), None when it names none."""
        return next((g for g in self.disk_groups if g.id == self.default_disk_group), None)


@dataclass(frozen=True)
class Boot:
    """``GET .../boot/{id}``."""

    id: int
    type: str  # harddisk, internal, network, power, rescue
    kernel: str
    description: str = ""


@dataclass(frozen=True)
class Task:
    """``GET .../task/{id}`` (or the short reply of POST .../reinstall).

    Dates are timezone-aware UTC, as OVH stamped them (``startDate`` is the task's creation).
    """

    id: int
    function: str
    status: str
    comment: str | None = None
    start_date: datetime | None = None
    done_date: datetime | None = None
    query_id: str | None = None

    @property
    def pending(self) -> bool:
        return self.status in PENDING_TASK_STATUSES

    @property
    def failed(self) -> bool:
        return self.status in FAILED_TASK_STATUSES


@dataclass(frozen=True)
class InstallStep:
    comment: str
    status: str
    error: str | None = None


@dataclass(frozen=True)
class InstallStatus:
    """``GET .../install/status``."""

    elapsed_seconds: int
    steps: tuple[InstallStep, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Pacing:
    """What a :class:`TokenBucket` let through: requests, and the seconds threads waited in
    all (summed over threads: 10 threads waiting 6 s each make 60 s) at ``per_minute``."""

    requests: int
    waited: float
    per_minute: float

    def plus(self, other: Pacing) -> Pacing:
        """Both counts together (two pacers of one process, or many processes of one run)."""
        return Pacing(self.requests + other.requests, self.waited + other.waited, other.per_minute)

    def to_json(self) -> dict[str, float]:
        return {
            "requests": self.requests,
            "rate_limit_wait": round(self.waited, 1),
            "per_minute": self.per_minute,
        }


def usage_json(*usages: Pacing | None) -> dict[str, float] | None:
    """The sum of the given usages as JSON (None when none is known)."""
    known = [u for u in usages if u is not None]
    if not known:
        return None
    total = known[0]
    for usage in known[1:]:
        total = total.plus(usage)
    return total.to_json()


#: Called while waiting for a task: (task, seconds waited so far).
TaskProgress = Callable[[Task, float], None]


class Provider(Protocol):
    """Server operations. Every error raised is a :class:`fleet.errors.ProviderError`."""

    def list_servers(self) -> list[str]: ...

    def server(self, name: str) -> Server: ...

    def hardware(self, name: str) -> Hardware: ...

    def boots(self, name: str, boot_type: str | None = None) -> list[Boot]: ...

    def rescue_boot(self, name: str) -> Boot:
        """The customer rescue kernel (``rescue12-customer`` preferred, then ``rescue-customer``)."""
        ...

    def disk_boot(self, name: str) -> Boot:
        """The boot from the installed system (bootType harddisk)."""
        ...

    def set_boot(self, name: str, boot_id: int, rescue_ssh_key: str | None = None) -> None: ...

    def reboot(self, name: str, since: datetime | None = None, *, fresh: bool = False) -> Task:
        """Hard reboot; adopts a reboot task instead of starting a second one.

        ``since`` (aware): adopt only a ``hardReboot`` task OVH created at or after it, in any
        status (done: the reboot already happened; failed: it says so), and never one created
        before it: a reboot asked before ``since`` may carry older boot settings, so one still
        running is waited out, then a new reboot is asked. The task started here is created
        after ``since`` by OVH's own clock, so :meth:`task_since` finds it later. ``None``:
        adopt any reboot still running. ``fresh``: ``since`` was journaled just now as the intent
        of this very request (no earlier task to adopt): the first POST looks nothing up.
        """
        ...

    def task_since(self, name: str, function: str, since: datetime) -> Task | None:
        """The newest task of ``function`` whose own creation date is at or after ``since``
        (any status), or None: tells "my request reached OVH" from "it never did"."""
        ...

    def tasks(
        self, name: str, function: str | None = None, status: str | None = None
    ) -> list[int]: ...

    def in_flight(self, name: str, function: str, ids: Sequence[int] | None = None) -> Task | None:
        """The newest task of ``function`` still running among the newest few (of ``ids``, a
        listing the caller made, when given), if any. Details that answer 404 are read again
        for a grace period (a task created moments ago); a task whose details never appear is
        not adopted: nothing says it is recent, or running."""
        ...

    def task(self, name: str, task_id: int) -> Task: ...

    def peek_task(self, name: str, task_id: int) -> Task | None:
        """One read of the task, never retried: None while OVH does not answer it."""
        ...

    def task_outcome(self, name: str, task_id: int) -> Task | None:
        """The task as OVH reports it now (through a fresh task's 404s and transient errors);
        None when it never answers."""
        ...

    def usage(self) -> Pacing:
        """Calls made so far and the time threads waited on the rate limit."""
        ...

    def wait_task(
        self, name: str, task_id: int, timeout: float, progress: TaskProgress | None = None
    ) -> Task:
        """Poll until the task ends; raise TaskFailed if it ends badly, ProviderError on timeout."""
        ...

    def compatible_templates(self, name: str) -> list[str]: ...

    def reinstall(self, name: str, request: dict[str, Any], since: datetime | None = None) -> Task:
        """``POST .../reinstall``; ``since`` adopts as for :meth:`reboot` (``reinstallServer``)."""
        ...

    def install_status(self, name: str) -> InstallStatus | None:
        """None when no installation runs (OVH answers 404)."""
        ...
