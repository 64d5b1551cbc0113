"""Tasks of the fake OVH API: their phases and timings, their JSON forms and dates, the chaos
that shapes them and the power events they cause.

A task goes ``init -> todo -> doing -> done`` (or ends in its chaos ``fate`` instead of
``doing``); :class:`~fleet.sandbox.ovh_model.OvhModel` advances them. Dates are written as OVH's
European API writes them: Paris time with its offset, to the second.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol
from zoneinfo import ZoneInfo

from fleet.sandbox.ovh_checks import Json, bad_request

if TYPE_CHECKING:
    from datetime import datetime

PENDING = frozenset({"init", "todo", "doing"})
TASK_STATUSES = frozenset(
    {"cancelled", "customerError", "doing", "done", "init", "ovhError", "todo"}
)
REBOOT = "hardReboot"
REINSTALL = "reinstallServer"
REINSTALL_COMMENT = "Start bare metal OS installation"
REBOOT_COMMENT = "Hard reboot requested"

INSTALL_STEPS = (
    "Preparing the installation",
    "Setting up disks and partitions",
    "Deploying the operating system image",
    "Configuring the operating system",
    "Rebooting on the installed system",
)


@dataclass(frozen=True)
class TaskTimings:
    """Seconds a task spends in ``init``, ``todo`` and ``doing``, per kind; ``tick`` is the
    period of the thread that advances tasks."""

    reboot_init: float = 0.2
    reboot_todo: float = 0.2
    reboot_doing: float = 0.5
    reinstall_init: float = 0.5
    reinstall_todo: float = 0.5
    reinstall_doing: float = 3.0
    tick: float = 0.05

    @classmethod
    def fast(cls) -> TaskTimings:
        """Tiny timings for tests: a reboot lasts about 0.1 s, a reinstall 0.3 s."""
        return cls(0.02, 0.02, 0.06, 0.03, 0.03, 0.25, 0.01)

    def phases(self, function: str) -> tuple[float, float, float]:
        if function == REINSTALL:
            return (self.reinstall_init, self.reinstall_todo, self.reinstall_doing)
        return (self.reboot_init, self.reboot_todo, self.reboot_doing)


@dataclass(frozen=True)
class PowerEvent:
    """A server stops or starts serving an OS reachable over SSH.

    ``off`` carries the mode it was in; ``on`` the mode it comes up in. ``rescue_ssh_key`` is
    the key of the rescue session (None in disk mode). ``reinstalled`` marks the first boot of
    a fresh install, whose ``sshKey`` customization is ``installed_ssh_key``. A boot on the
    iPXE shell or the ``poweroff`` kernel serves no SSH: it sends no ``on``.
    """

    kind: Literal["off", "on"]
    mode: Literal["disk", "rescue"]
    rescue_ssh_key: str | None
    reinstalled: bool = False
    installed_ssh_key: str | None = None


class TaskChaos(Protocol):
    """How chaos shapes new tasks (``fleet.sandbox.ovh_chaos.Chaos`` implements it)."""

    def task_fate(self, function: str) -> str: ...

    def hidden_gets(self, function: str) -> int: ...


class NoChaos:
    def task_fate(self, function: str) -> str:
        return "done"

    def hidden_gets(self, function: str) -> int:
        return 0


@dataclass
class FakeTask:
    id: int
    server: str
    function: str
    comment: str
    start: datetime
    phases: tuple[float, float, float]
    deadline: float
    fate: str
    hidden_gets: int
    status: str = "init"
    last_update: datetime | None = None
    done: datetime | None = None
    note: str | None = None
    boot_kernel: str = ""
    rescue_key: str | None = None
    request: Json | None = None

    def to_json(self) -> Json:
        """The full ``dedicated.server.Task``."""
        return {
            "taskId": self.id,
            "function": self.function,
            "status": self.status,
            "comment": self.comment,
            "startDate": _iso(self.start),
            "doneDate": _iso(self.done),
            "lastUpdate": _iso(self.last_update or self.start),
            "needSchedule": False,
            "note": self.note,
            "plannedInterventionId": None,
            "tags": None,
            "ticketReference": None,
        }

    def to_response(self) -> Json:
        """The short ``dedicated.server.task.Response`` of ``POST .../reinstall``."""
        full = self.to_json()
        keys = ("taskId", "function", "status", "comment", "startDate", "doneDate")
        return {key: full[key] for key in keys}


#: OVH's European API writes dates in Paris time with their offset, to the second.
_OVH_ZONE = ZoneInfo("Europe/Paris")


def _iso(at: datetime | None) -> str | None:
    """A date as OVH writes it: ``2024-03-01T01:00:00+01:00``."""
    return None if at is None else at.astimezone(_OVH_ZONE).isoformat(timespec="seconds")


def timings_from_json(base: TaskTimings, data: Any) -> TaskTimings:
    """New timings from a JSON object of (some) :class:`TaskTimings` fields."""
    if not isinstance(data, dict):
        raise bad_request("timings: expected a JSON object")
    for key, value in data.items():
        if key not in TaskTimings.__dataclass_fields__:
            raise bad_request(f"timings: unknown key {key}")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise bad_request(f"timings: {key} must be a number of seconds >= 0")
    return replace(base, **{key: float(value) for key, value in data.items()})
