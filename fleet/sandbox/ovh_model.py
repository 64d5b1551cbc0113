"""State of the fake OVH dedicated-server API: servers, boots, tasks and installs.

Pure state and its state machine, no HTTP (:mod:`fleet.sandbox.ovh_api` serves it). The
behaviour follows what OVH documents and does (see ``/work/shared/ovh`` in the project's
references): a reboot applies the boot id set *before* it was asked, a task goes
``init -> todo -> doing -> done``, a reinstall answers a short task reply and reports its
progress on ``install/status`` only while it runs. The servers' boots, hardware and templates
come from :mod:`fleet.sandbox.ovh_catalogue`; the requests' checks and error answers from
:mod:`fleet.sandbox.ovh_checks`.

Every public method takes the model's one lock. :meth:`OvhModel.tick` advances the tasks and
returns the power events, which the caller delivers outside the lock.
"""

from __future__ import annotations

import random
import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from fleet.clock import Clock, SystemClock
from fleet.sandbox.ovh_catalogue import (
    BOOT_TYPES,
    MODE_OF_KERNEL,
    TEMPLATES,
    Boot,
    Mode,
    ServerSpec,
    hardware_json,
    make_boots,
    region,
)
from fleet.sandbox.ovh_checks import (
    READ_ONLY_KEYS,
    WRITABLE_KEYS,
    Json,
    OvhApiError,
    bad_request,
    check_writable,
    not_found,
    validate_reinstall,
)
from fleet.sandbox.ovh_tasks import (
    INSTALL_STEPS,
    PENDING,
    REBOOT,
    REBOOT_COMMENT,
    REINSTALL,
    REINSTALL_COMMENT,
    TASK_STATUSES,
    FakeTask,
    NoChaos,
    PowerEvent,
    TaskChaos,
    TaskTimings,
)

if TYPE_CHECKING:
    from collections.abc import Sequence


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


@dataclass
class _Server:
    spec: ServerSpec
    server_id: int
    iam_id: str
    boots: list[Boot]
    settings: Json
    os: str
    mode: Mode = "disk"
    session_key: str | None = None
    installs: int = 0
    last_reinstall: Json | None = None

    def boot(self, boot_id: int) -> Boot:
        for boot in self.boots:
            if boot.id == boot_id:
                return boot
        raise not_found("bootId", boot_id)

    def boot_of_kernel(self, kernel: str) -> Boot:
        return next(boot for boot in self.boots if boot.kernel == kernel)


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
        self._chaos: TaskChaos = chaos or NoChaos()
        self._lock = threading.Lock()
        self._servers: dict[str, _Server] = {}
        self._tasks: dict[int, FakeTask] = {}
        self._pending: list[FakeTask] = []
        self._next_task_id = self._rng.randint(10_000_000, 90_000_000)
        for spec in specs:
            if spec.name in self._servers:
                raise ValueError(f"server {spec.name!r} is listed twice")
            self._servers[spec.name] = self._new_server(spec)

    def _new_server(self, spec: ServerSpec) -> _Server:
        boots = make_boots(self._rng)
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
            where = region(spec.datacenter)
            return {
                "availabilityZone": f"{where}-a",
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
                "region": where,
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
            changes[key] = check_writable(key, value)
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

    def _new_task(self, server: _Server, function: str, comment: str) -> FakeTask:
        phases = self._timings.phases(function)
        self._next_task_id += self._rng.randint(1, 50)
        task = FakeTask(
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

    def _task(self, name: str, task_id: int) -> FakeTask:
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

    def _finish(self, task: FakeTask, status: str, note: str | None = None) -> None:
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

    def _steps(self, task: FakeTask) -> list[Json]:
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

    def _step(self, task: FakeTask, events: list[tuple[str, PowerEvent]]) -> None:
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
                self._booted(server, MODE_OF_KERNEL[task.boot_kernel], task.rescue_key, events)

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
        self, server: _Server, task: FakeTask, events: list[tuple[str, PowerEvent]]
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
