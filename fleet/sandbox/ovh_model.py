"""State of the fake OVH dedicated-server API: servers, boots, tasks and installs.

Pure state and its state machine, no HTTP (:mod:`fleet.sandbox.ovh_api` serves it). The
behaviour follows what OVH documents and does (see ``/work/shared/ovh`` in the project's
references): boot ids differ per server and the customer rescue is never the first rescue
entry, a reboot applies the boot id set *before* it was asked, a task goes
``init -> todo -> doing -> done``, a reinstall answers a short task reply and reports its
progress on ``install/status`` only while it runs.

Every public method takes the model's one lock. :meth:`OvhModel.tick` advances the tasks and
returns the power events, which the caller delivers outside the lock.
"""

from __future__ import annotations

import random
import threading
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol
from zoneinfo import ZoneInfo

from fleet.clock import Clock, SystemClock

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

Json = dict[str, Any]
Mode = Literal["disk", "rescue", "ipxe", "off"]

PENDING = frozenset({"init", "todo", "doing"})
TASK_STATUSES = frozenset(
    {"cancelled", "customerError", "doing", "done", "init", "ovhError", "todo"}
)
BOOT_TYPES = frozenset({"harddisk", "internal", "network", "power", "rescue"})
SERVER_STATES = frozenset({"error", "hacked", "hackedBlocked", "ok"})
REBOOT = "hardReboot"
REINSTALL = "reinstallServer"
REINSTALL_COMMENT = "Start bare metal OS installation"
REBOOT_COMMENT = "Hard reboot requested"

#: The keys ``PUT /dedicated/server/{sn}`` accepts; every other field is read-only.
WRITABLE_KEYS = frozenset(
    [
        "bootId",
        "bootScript",
        "efiBootloaderPath",
        "monitoring",
        "noIntervention",
        "rescueMail",
        "rescueSshKey",
        "rootDevice",
        "state",
    ]
)
READ_ONLY_KEYS = frozenset(
    [
        "availabilityZone",
        "commercialRange",
        "datacenter",
        "iam",
        "ip",
        "linkSpeed",
        "name",
        "newUpgradeSystem",
        "os",
        "powerState",
        "professionalUse",
        "rack",
        "region",
        "reverse",
        "serverId",
        "supportLevel",
    ]
)
_NULLABLE_TEXT = frozenset(
    {"bootScript", "efiBootloaderPath", "rescueMail", "rescueSshKey", "rootDevice"}
)

TEMPLATES = (
    "alma9_64",
    "byolinux_64",
    "debian11_64",
    "debian12_64",
    "debian13_64",
    "proxmox8_64",
    "rocky9_64",
    "ubuntu2204-server_64",
    "ubuntu2404-server_64",
)

INSTALL_STEPS = (
    "Preparing the installation",
    "Setting up disks and partitions",
    "Deploying the operating system image",
    "Configuring the operating system",
    "Rebooting on the installed system",
)

#: What a kernel does to the server once a reboot lands on it.
_MODE_OF_KERNEL: dict[str, Mode] = {
    "hd": "disk",
    "rescue12-customer": "rescue",
    "rescue-customer": "rescue",
    "ipxe-shell": "ipxe",
    "poweroff": "off",
}

_REGIONS = {
    "gra": "eu-west-gra",
    "rbx": "eu-west-rbx",
    "sbg": "eu-west-sbg",
    "eri": "eu-west-eri",
    "lim": "eu-central-lim",
    "waw": "eu-central-waw",
    "bhs": "ca-east-bhs",
    "hil": "us-west-or",
    "vin": "us-east-va",
    "sgp": "ap-southeast-sgp",
    "syd": "ap-southeast-syd",
}


@dataclass
class ServerSpec:
    """One server of the sandbox. ``system_disk_type`` is the system group's type (NVME or SSD)."""

    name: str
    ip: str
    datacenter: str
    rack: str
    hybrid: bool
    hdd_count: int = 2
    hdd_size_gb: int = 4000
    nvme_size_gb: int = 960
    os: str = "debian12_64"
    reverse: str | None = None
    system_disk_type: str = "NVME"


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


@dataclass(frozen=True)
class ServerSnapshot:
    """What the fake knows of one server, for tests and the sandbox's host manager."""

    name: str
    mode: Mode
    power_state: str
    boot_id: int
    boot_kernel: str
    rescue_ssh_key: str | None
    os: str
    installs: int
    last_reinstall: Json | None


class OvhApiError(Exception):
    """An error answer: HTTP status, OVH error class and message (rendered by the HTTP layer)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_class: str | None = None,
        details: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_class = error_class
        self.details = details or {}


def not_found(what: str, value: object) -> OvhApiError:
    return OvhApiError(
        404,
        f"The requested object ({what} = {value}) does not exist",
        error_class="Client::NotFound",
        details={what: str(value)},
    )


def bad_request(message: str, *, error_class: str = "Client::BadRequest") -> OvhApiError:
    return OvhApiError(400, message, error_class=error_class)


class TaskChaos(Protocol):
    """How chaos shapes new tasks (``fleet.sandbox.ovh_chaos.Chaos`` implements it)."""

    def task_fate(self, function: str) -> str: ...

    def hidden_gets(self, function: str) -> int: ...


class _NoChaos:
    def task_fate(self, function: str) -> str:
        return "done"

    def hidden_gets(self, function: str) -> int:
        return 0


@dataclass(frozen=True)
class _Boot:
    id: int
    type: str
    kernel: str
    description: str

    def to_json(self) -> Json:
        return {
            "bootId": self.id,
            "bootType": self.type,
            "description": self.description,
            "kernel": self.kernel,
        }


@dataclass
class _Server:
    spec: ServerSpec
    server_id: int
    iam_id: str
    boots: list[_Boot]
    settings: Json
    os: str
    mode: Mode = "disk"
    session_key: str | None = None
    installs: int = 0
    last_reinstall: Json | None = None

    def boot(self, boot_id: int) -> _Boot:
        for boot in self.boots:
            if boot.id == boot_id:
                return boot
        raise not_found("bootId", boot_id)

    def boot_of_kernel(self, kernel: str) -> _Boot:
        return next(boot for boot in self.boots if boot.kernel == kernel)


@dataclass
class _Task:
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


def _region(datacenter: str) -> str:
    prefix = "".join(ch for ch in datacenter if ch.isalpha())
    return _REGIONS.get(prefix, f"eu-west-{prefix}")


def _make_boots(rng: random.Random) -> list[_Boot]:
    """The server's boots, ids ascending from a random base; an iPXE shell is the first rescue."""
    customer = [
        ("rescue", "rescue12-customer", "Rescue12-customer (Debian 12)"),
        ("rescue", "rescue-customer", "Rescue (customer)"),
    ]
    rng.shuffle(customer)
    kinds = [
        ("harddisk", "hd", "Boot from the hard disk"),
        ("rescue", "ipxe-shell", "iPXE shell"),
        *customer,
        ("power", "poweroff", "Power off the server"),
    ]
    next_id = rng.randint(2, 4000)
    boots = []
    for boot_type, kernel, description in kinds:
        boots.append(_Boot(next_id, boot_type, kernel, description))
        next_id += rng.randint(1, 97)
    return boots


def _disk_group(group_id: int, disk_type: str, count: int, size_gb: int) -> Json:
    return {
        "diskGroupId": group_id,
        "diskType": disk_type,
        "numberOfDisks": count,
        "diskSize": {"unit": "GB", "value": size_gb},
        "description": f"{count} X Disk {disk_type} {size_gb} GB, JBOD",
        "raidController": None,
        "defaultHardwareRaidType": None,
        "defaultHardwareRaidSize": None,
    }


def hardware_json(spec: ServerSpec) -> Json:
    """``dedicated.server.HardwareSpecifications`` for a spec, with OVH's newer extra field."""
    groups = [_disk_group(1, spec.system_disk_type, 2, spec.nvme_size_gb)]
    if spec.hybrid:
        groups.append(_disk_group(2, "HDD", spec.hdd_count, spec.hdd_size_gb))
    return {
        "bootMode": "uefi",
        "coresPerProcessor": 16,
        "threadsPerProcessor": 32,
        "numberOfProcessors": 1,
        "processorName": "AMD EPYC 4344P",
        "processorArchitecture": "x86_64",
        "description": "SCALE-a1" if spec.hybrid else "ADVANCE-1",
        "motherboard": "ASRockRack B665D4U-1L",
        "formFactor": "1u",
        "memorySize": {"unit": "MB", "value": 131072},
        "defaultHardwareRaidType": None,
        "defaultHardwareRaidSize": None,
        "expansionCards": None,
        "usbKeys": None,
        "defaultDiskGroupId": 1,
        "diskGroups": groups,
    }


def _check_writable(key: str, value: Any) -> Any:
    """Type-check one PUT value, as OVH's API layer does before anything changes."""
    if key == "bootId":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad_request(f"Invalid value for property bootId: {value!r} is not a long")
    elif key in ("monitoring", "noIntervention"):
        if not isinstance(value, bool):
            raise bad_request(f"Invalid value for property {key}: {value!r} is not a boolean")
    elif key == "state":
        if value not in SERVER_STATES:
            raise bad_request(f"Invalid value for property state: {value!r} is not in the enum")
    elif key in _NULLABLE_TEXT and value is not None and not isinstance(value, str):
        raise bad_request(f"Invalid value for property {key}: {value!r} is not a string")
    return value


class OvhModel:
    """Servers and tasks of the fake API; thread-safe."""

    def __init__(
        self,
        specs: Sequence[ServerSpec],
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        timings: TaskTimings | None = None,
        chaos: TaskChaos | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._timings = timings or TaskTimings()
        self._chaos: TaskChaos = chaos or _NoChaos()
        self._lock = threading.Lock()
        self._servers: dict[str, _Server] = {}
        self._tasks: dict[int, _Task] = {}
        self._pending: list[_Task] = []
        self._next_task_id = self._rng.randint(10_000_000, 90_000_000)
        for spec in specs:
            if spec.name in self._servers:
                raise ValueError(f"server {spec.name!r} is listed twice")
            self._servers[spec.name] = self._new_server(spec)

    def _new_server(self, spec: ServerSpec) -> _Server:
        boots = _make_boots(self._rng)
        settings: Json = {
            "bootId": boots[0].id,
            "bootScript": None,
            "efiBootloaderPath": None,
            "monitoring": True,
            "noIntervention": False,
            "rescueMail": None,
            "rescueSshKey": None,
            "rootDevice": None,
            "state": "ok",
        }
        iam_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        server_id = self._rng.randint(100_000, 9_999_999)
        return _Server(spec, server_id, iam_id, boots, settings, spec.os)

    @property
    def timings(self) -> TaskTimings:
        return self._timings

    def set_timings(self, timings: TaskTimings) -> None:
        """Timings for tasks created from now on."""
        with self._lock:
            self._timings = timings

    def _server(self, name: str) -> _Server:
        server = self._servers.get(name)
        if server is None:
            raise not_found("serviceName", name)
        return server

    # -- servers and boots -------------------------------------------------------------------

    def server_names(self) -> list[str]:
        with self._lock:
            return list(self._servers)

    def server_json(self, name: str) -> Json:
        """``dedicated.server.DedicatedWithIAM``."""
        with self._lock:
            server = self._server(name)
            spec = server.spec
            region = _region(spec.datacenter)
            return {
                "availabilityZone": f"{region}-a",
                **server.settings,
                "commercialRange": "scale" if spec.hybrid else "advance",
                "datacenter": spec.datacenter,
                "iam": self._iam(server),
                "ip": spec.ip,
                "linkSpeed": 25000,
                "name": spec.name,
                "newUpgradeSystem": True,
                "os": server.os,
                "powerState": "poweroff" if server.mode == "off" else "poweron",
                "professionalUse": False,
                "rack": spec.rack,
                "region": region,
                "reverse": spec.reverse,
                "serverId": server.server_id,
                "supportLevel": "pro",
            }

    @staticmethod
    def _iam(server: _Server) -> Json:
        return {
            "displayName": server.spec.name,
            "id": server.iam_id,
            "state": "OK",
            "tags": None,
            "urn": f"urn:v1:eu:resource:dedicatedServer:{server.spec.name}",
        }

    def update_server(self, name: str, body: Any) -> None:
        """``PUT /dedicated/server/{sn}``: all or nothing, writable keys only."""
        if not isinstance(body, dict) or not body:
            raise bad_request("Invalid body: expected a JSON object with the properties to change")
        changes: Json = {}
        for key, value in body.items():
            if key in READ_ONLY_KEYS:
                raise bad_request(f"Property {key} is read-only and cannot be modified")
            if key not in WRITABLE_KEYS:
                raise bad_request(f"Unknown property {key} for dedicated.server.Dedicated")
            changes[key] = _check_writable(key, value)
        with self._lock:
            server = self._server(name)
            if "bootId" in changes and all(b.id != changes["bootId"] for b in server.boots):
                raise bad_request(f"Boot id {changes['bootId']} is not available for server {name}")
            server.settings.update(changes)

    def boot_ids(self, name: str, boot_type: str | None = None) -> list[int]:
        if boot_type is not None and boot_type not in BOOT_TYPES:
            raise bad_request(f"Invalid value for parameter bootType: {boot_type!r}")
        with self._lock:
            boots = self._server(name).boots
            return [boot.id for boot in boots if boot_type in (None, boot.type)]

    def boot_json(self, name: str, boot_id: int) -> Json:
        with self._lock:
            return self._server(name).boot(boot_id).to_json()

    def hardware_json(self, name: str) -> Json:
        with self._lock:
            return hardware_json(self._server(name).spec)

    def templates_json(self, name: str) -> Json:
        """``dedicated.server.InstallTemplate``: an object, not a list."""
        with self._lock:
            return {"ovh": self._templates(self._server(name))}

    @staticmethod
    def _templates(server: _Server) -> list[str]:
        return sorted({*TEMPLATES, server.spec.os})

    # -- tasks ---------------------------------------------------------------------------------

    def _new_task(self, server: _Server, function: str, comment: str) -> _Task:
        phases = self._timings.phases(function)
        self._next_task_id += self._rng.randint(1, 50)
        task = _Task(
            id=self._next_task_id,
            server=server.spec.name,
            function=function,
            comment=comment,
            start=self._clock.now(),
            phases=phases,
            deadline=self._clock.monotonic() + phases[0],
            fate=self._chaos.task_fate(function),
            hidden_gets=self._chaos.hidden_gets(function),
        )
        self._tasks[task.id] = task
        self._pending.append(task)
        return task

    def _refuse_if_busy(self, server: _Server, function: str) -> None:
        for task in self._pending:
            if task.server != server.spec.name or task.function not in (REBOOT, REINSTALL):
                continue
            message = (
                f"Task {task.id} of type {task.function} with status {task.status} "
                f"is already running on server {server.spec.name}"
            )
            error_class = "Client::Conflict::TaskAlreadyExists"
            if function == REINSTALL:
                error_class = "Client::Conflict::DisturbAlreadyExists"
            raise OvhApiError(409, message, error_class=error_class)

    def reboot(self, name: str) -> Json:
        """``POST .../reboot``: the boot id and rescue key of *now* apply when it lands."""
        with self._lock:
            server = self._server(name)
            self._refuse_if_busy(server, REBOOT)
            task = self._new_task(server, REBOOT, REBOOT_COMMENT)
            task.boot_kernel = server.boot(server.settings["bootId"]).kernel
            task.rescue_key = server.settings["rescueSshKey"]
            return task.to_json()

    def reinstall(self, name: str, body: Any) -> Json:
        """``POST .../reinstall``: validate, then start a ``reinstallServer`` task."""
        with self._lock:
            server = self._server(name)
            groups = [1, 2] if server.spec.hybrid else [1]
            request = validate_reinstall(body, self._templates(server), groups, name)
            self._refuse_if_busy(server, REINSTALL)
            task = self._new_task(server, REINSTALL, REINSTALL_COMMENT)
            task.request = request
            return task.to_response()

    def task_ids(
        self, name: str, function: str | None = None, status: str | None = None
    ) -> list[int]:
        if status is not None and status not in TASK_STATUSES:
            raise bad_request(f"Invalid value for parameter status: {status!r}")
        with self._lock:
            self._server(name)
            return [
                task.id
                for task in self._tasks.values()
                if task.server == name
                and function in (None, task.function)
                and status in (None, task.status)
            ]

    def _task(self, name: str, task_id: int) -> _Task:
        self._server(name)
        task = self._tasks.get(task_id)
        if task is None or task.server != name:
            raise not_found("taskId", task_id)
        return task

    def task_json(self, name: str, task_id: int, *, api_get: bool = True) -> Json:
        """The full task; an API GET of a task chaos hides answers 404 (OVH's lag)."""
        with self._lock:
            task = self._task(name, task_id)
            if api_get and task.hidden_gets > 0:
                task.hidden_gets -= 1
                raise not_found("taskId", task_id)
            return task.to_json()

    def cancel_task(self, name: str, task_id: int) -> None:
        """``POST .../task/{id}/cancel``: only before the task is being done."""
        with self._lock:
            task = self._task(name, task_id)
            if task.status not in ("init", "todo"):
                raise OvhApiError(
                    409,
                    f"Task {task_id} cannot be cancelled in status {task.status}",
                    error_class="Client::Conflict",
                )
            self._finish(task, "cancelled", "Cancelled by the customer")

    def _finish(self, task: _Task, status: str, note: str | None = None) -> None:
        task.status = status
        task.done = task.last_update = self._clock.now()
        task.note = note
        if task in self._pending:
            self._pending.remove(task)

    # -- install status ----------------------------------------------------------------------

    def install_status(self, name: str) -> Json:
        """``dedicated.server.InstallationProgressStatus`` of the running reinstall, else 404."""
        with self._lock:
            self._server(name)
            running = [t for t in self._pending if t.server == name and t.function == REINSTALL]
            if not running:
                raise OvhApiError(
                    404,
                    f"No installation in progress on server {name}",
                    error_class="Client::NotFound",
                )
            task = running[-1]
            elapsed = (self._clock.now() - task.start).total_seconds()
            return {"elapsedTime": int(elapsed), "progress": self._steps(task)}

    def _steps(self, task: _Task) -> list[Json]:
        statuses = ["todo"] * len(INSTALL_STEPS)
        if task.status == "doing":
            doing = task.phases[2]
            spent = doing - max(0.0, task.deadline - self._clock.monotonic())
            share = spent / doing if doing > 0 else 1.0
            current = min(len(INSTALL_STEPS) - 1, int(len(INSTALL_STEPS) * share))
            statuses = (
                ["done"] * current + ["doing"] + ["todo"] * (len(INSTALL_STEPS) - current - 1)
            )
        return [
            {"comment": comment, "status": status, "error": None}
            for comment, status in zip(INSTALL_STEPS, statuses, strict=True)
        ]

    # -- the state machine -------------------------------------------------------------------

    def tick(self) -> list[tuple[str, PowerEvent]]:
        """Advance every task whose phase is over; the power events, in order."""
        events: list[tuple[str, PowerEvent]] = []
        with self._lock:
            now = self._clock.monotonic()
            for task in list(self._pending):
                for _ in range(3):  # at most init -> todo -> doing -> end in one tick
                    if task.status not in PENDING or now < task.deadline:
                        break
                    self._step(task, events)
        return events

    def _step(self, task: _Task, events: list[tuple[str, PowerEvent]]) -> None:
        server = self._servers[task.server]
        task.last_update = self._clock.now()
        if task.status == "init":
            task.status = "todo"
            task.deadline += task.phases[1]
        elif task.status == "todo" and task.fate != "done":
            self._finish(task, task.fate, f"{task.function} failed ({task.fate})")
        elif task.status == "todo":
            task.status = "doing"
            task.deadline += task.phases[2]
            self._power_off(server, events)
        else:
            self._finish(task, "done")
            if task.function == REINSTALL:
                self._installed(server, task, events)
            else:
                self._booted(server, _MODE_OF_KERNEL[task.boot_kernel], task.rescue_key, events)

    def _power_off(self, server: _Server, events: list[tuple[str, PowerEvent]]) -> None:
        if server.mode in ("disk", "rescue"):
            mode: Literal["disk", "rescue"] = "rescue" if server.mode == "rescue" else "disk"
            events.append((server.spec.name, PowerEvent("off", mode, server.session_key)))
        server.mode = "off"
        server.session_key = None

    def _booted(
        self,
        server: _Server,
        mode: Mode,
        rescue_key: str | None,
        events: list[tuple[str, PowerEvent]],
    ) -> None:
        server.mode = mode
        if mode == "rescue":
            server.session_key = rescue_key
            events.append((server.spec.name, PowerEvent("on", "rescue", rescue_key)))
        elif mode == "disk":
            events.append((server.spec.name, PowerEvent("on", "disk", None)))

    def _installed(
        self, server: _Server, task: _Task, events: list[tuple[str, PowerEvent]]
    ) -> None:
        request = task.request or {}
        server.os = str(request.get("operatingSystem", server.os))
        server.settings["bootId"] = server.boot_of_kernel("hd").id
        server.installs += 1
        server.last_reinstall = request
        server.mode = "disk"
        key = (request.get("customizations") or {}).get("sshKey")
        event = PowerEvent("on", "disk", None, reinstalled=True, installed_ssh_key=key)
        events.append((server.spec.name, event))

    # -- in-process views ----------------------------------------------------------------------

    def snapshot(self, name: str) -> ServerSnapshot:
        with self._lock:
            server = self._server(name)
            boot_id = server.settings["bootId"]
            return ServerSnapshot(
                name=name,
                mode=server.mode,
                power_state="poweroff" if server.mode == "off" else "poweron",
                boot_id=boot_id,
                boot_kernel=server.boot(boot_id).kernel,
                rescue_ssh_key=server.settings["rescueSshKey"],
                os=server.os,
                installs=server.installs,
                last_reinstall=server.last_reinstall,
            )

    def state_json(self) -> Json:
        """Every server's mode and the running tasks (the control surface's state)."""
        with self._lock:
            servers = {
                name: {"mode": s.mode, "bootId": s.settings["bootId"], "os": s.os}
                for name, s in self._servers.items()
            }
            running = [
                {"server": t.server, "taskId": t.id, "function": t.function, "status": t.status}
                for t in self._pending
            ]
            return {"servers": servers, "runningTasks": running, "timings": _timings(self)}


def _timings(model: OvhModel) -> Json:
    t = model.timings
    return {key: getattr(t, key) for key in TaskTimings.__dataclass_fields__}


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


# -- reinstall body validation ---------------------------------------------------------------

_REINSTALL_KEYS = frozenset({"operatingSystem", "customizations", "storage", "properties"})
_CUSTOMIZATION_ENUMS = {
    "imageCheckSumType": frozenset({"md5", "sha1", "sha256", "sha512"}),
    "imageType": frozenset({"qcow2", "raw"}),
    "language": frozenset(
        {"cs-cz", "de-de", "en-us", "es-es", "fr-fr", "it-it", "nl-nl", "pl-pl", "pt-pt"}
    ),
    "postInstallationScriptExtension": frozenset({"cmd", "ps1"}),
}
_CUSTOMIZATION_MAPS = frozenset({"configDriveMetadata", "httpHeaders", "nutanixConfiguration"})
_CUSTOMIZATION_TEXT = frozenset(
    {
        "configDriveUserData",
        "efiBootloaderPath",
        "hostname",
        "imageCheckSum",
        "imageURL",
        "postInstallationScript",
        "sshKey",
    }
)
_STORAGE_KEYS = frozenset({"diskGroupId", "hardwareRaid", "partitioning"})
_PARTITIONING_KEYS = frozenset({"disks", "layout", "schemeName"})
_LAYOUT_KEYS = frozenset({"extras", "fileSystem", "mountPoint", "raidLevel", "size"})
_HARDWARE_RAID_KEYS = frozenset({"arrays", "disks", "raidLevel", "spares"})
_FILE_SYSTEMS = frozenset(
    {"btrfs", "ext3", "ext4", "fat16", "none", "ntfs", "reiserfs", "swap", "ufs"}
    | {"vmfs5", "vmfs6", "vmfsl", "xfs", "zfs"}
)
_SOFT_RAID_LEVELS = frozenset({0, 1, 5, 6, 7, 10})


def _object(value: Any, where: str, allowed: frozenset[str]) -> Json:
    if not isinstance(value, dict):
        raise bad_request(f"{where}: expected a JSON object")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise bad_request(f"{where}: unknown parameter {unknown[0]}")
    return value


def _string_map(value: Any, where: str) -> None:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise bad_request(
            f"{where}: expected a map of strings",
            error_class="Client::BadRequest::CustomizationInvalidFormat",
        )


def validate_reinstall(
    body: Any, templates: Sequence[str], groups: Sequence[int], name: str
) -> Json:
    """Check a ``dedicated.server.Reinstall`` body loosely: keys, types and enums."""
    request = _object(body, "body", _REINSTALL_KEYS)
    system = request.get("operatingSystem")
    if not isinstance(system, str) or not system:
        raise bad_request("Missing parameter operatingSystem")
    if system not in templates:
        raise bad_request(f"Operating system {system} is not compatible with server {name}")
    if "customizations" in request:
        _check_customizations(request["customizations"])
    if "properties" in request:
        _string_map(request["properties"], "properties")
    storage = request.get("storage", [])
    if not isinstance(storage, list):
        raise bad_request("storage: expected a list")
    if len(storage) > 1:
        raise OvhApiError(
            501,
            f"Multiple ({len(storage)}) disk groups customization not implemented",
            error_class="Server::NotImplemented::DiskGroupMultipleConfigs",
        )
    for item in storage:
        _check_storage(item, groups, name)
    return request


def _check_customizations(value: Any) -> None:
    allowed = _CUSTOMIZATION_TEXT | _CUSTOMIZATION_MAPS | set(_CUSTOMIZATION_ENUMS)
    custom = _object(value, "customizations", allowed | {"enableLacpBonding"})
    for key, item in custom.items():
        where = f"customizations.{key}"
        if key in _CUSTOMIZATION_MAPS:
            _string_map(item, where)
        elif key in _CUSTOMIZATION_ENUMS and item not in _CUSTOMIZATION_ENUMS[key]:
            raise bad_request(f"{where}: {item!r} is not in the enum")
        elif key == "enableLacpBonding" and not isinstance(item, bool):
            raise bad_request(f"{where}: expected a boolean")
        elif key in _CUSTOMIZATION_TEXT and not isinstance(item, str):
            raise bad_request(
                f"{where}: expected a string",
                error_class="Client::BadRequest::CustomizationInvalidFormat",
            )


def _check_storage(value: Any, groups: Sequence[int], name: str) -> None:
    storage = _object(value, "storage[]", _STORAGE_KEYS)
    group = storage.get("diskGroupId")
    if group not in (None, 0, *groups):
        raise OvhApiError(
            404,
            f"Disk group {group} could not be found on server {name}",
            error_class="Client::NotFound::DiskGroup",
        )
    raids = storage.get("hardwareRaid", [])
    if not isinstance(raids, list):
        raise bad_request("storage[].hardwareRaid: expected a list")
    for raid in raids:
        _object(raid, "storage[].hardwareRaid[]", _HARDWARE_RAID_KEYS)
    if "partitioning" in storage:
        partitioning = _object(
            storage["partitioning"], "storage[].partitioning", _PARTITIONING_KEYS
        )
        layout = partitioning.get("layout", [])
        if not isinstance(layout, list):
            raise bad_request("storage[].partitioning.layout: expected a list")
        for part in layout:
            _check_partition(part)


def _check_partition(value: Any) -> None:
    part = _object(value, "storage[].partitioning.layout[]", _LAYOUT_KEYS)
    if part.get("fileSystem") not in _FILE_SYSTEMS:
        raise bad_request(f"layout: fileSystem {part.get('fileSystem')!r} is not in the enum")
    if not isinstance(part.get("mountPoint"), str):
        raise bad_request("layout: mountPoint is required")
    if part.get("raidLevel") not in (None, *_SOFT_RAID_LEVELS):
        raise bad_request(f"layout: raidLevel {part.get('raidLevel')!r} is not in the enum")
    size = part.get("size", 0)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise bad_request(f"layout: size {size!r} must be a number of MiB >= 0")
