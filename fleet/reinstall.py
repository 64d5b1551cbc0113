"""Reinstalling a server's OS through the OVH API: the request, its checks, approval, and the
task of this run.

A reinstall wipes the system disks, so nothing is sent before the request is shown to work on
that very server: the OS must be one of its ``install/compatibleTemplates``, storage goes to its
system disk group only (the NVMe/SSD group, never the HDD group of a hybrid server: fleet always
names the group, so OVH's default group can never be the HDD one), and RAID levels must fit the
disks used. A request that cannot work raises :class:`ReinstallRefused`, naming the host and the
field, and nothing is changed (only GETs were made).

Params of a ``kind: reinstall`` stage (``fleet reinstall`` builds the same stage)::

    os: debian12_64                   # required: one of the server's compatible templates
    hostname: "{name}.example.net"    # {name}: inventory name, {service}: OVH service name
    ssh_key: ssh-ed25519 AAAA... op   # installed for root; default: rescue.ssh_public_key
    script_file: /srv/post-install.sh # post-installation script, sent base64-encoded
    script_sha256: 3b1f...            # refuse the script if it changed since the run started
    disk_group: 1                     # default: the system (NVMe/SSD) group
    disks: 2                          # disks of that group to use (default: all)
    raid: 1                           # software RAID of the layout's partitions
    layout: ["/boot:ext4:1024", "/:ext4:0", "swap:swap:4096"]   # MOUNT:FS:SIZE_MIB[:RAID]
    scheme: default                   # OVH partitioning scheme name

The script is read from its file on the controller when the stage runs, so its text (which may
hold secrets) never enters the store; only its path and hash do.

Approval: a run reinstalls a host only if its record lists the host under the option
``approve_reinstall`` (set by ``fleet reinstall --confirm`` or ``fleet rollout
--approve-reinstall``); a run started any other way is refused per host.

Resume: before its POST the stage journals the ids of the server's existing reinstall tasks, and
after it the id of the task it started or adopted. A later attempt of the same run (a resume
after a crash) adopts that task rather than starting another: still running, it is waited for;
done, the stage goes on with what follows the install. A task that failed is started anew only
by a later attempt (``fleet resume``, a person's decision), never by the automatic retries of
the attempt that saw it fail.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet.errors import PayloadError, ProviderError, ProviderNotFound, TaskFailed, UsageError
from fleet.provider.base import DiskGroup, Hardware, InstallStatus, Provider, Task

if TYPE_CHECKING:
    from fleet.executor import Pipeline
    from fleet.inventory import Host
    from fleet.plan import Plan, RenderedStage
    from fleet.store.base import Event
    from fleet.transport.base import Transport

#: The OVH task function of a reinstall.
REINSTALL_TASK = "reinstallServer"
#: Longest wait for one server's install when the stage sets no ``timeout``.
DEFAULT_TIMEOUT = 3600.0
#: Run option listing the hosts a run may reinstall.
APPROVAL_OPTION = "approve_reinstall"
#: How many of the newest reinstall tasks are looked at for one still running.
_ADOPT_SCAN = 3

PARAMS = (
    "os",
    "hostname",
    "ssh_key",
    "script_file",
    "script_sha256",
    "disk_group",
    "disks",
    "raid",
    "layout",
    "scheme",
)
#: ``dedicated.server.reinstall.storage.partitioning.layout.FileSystemEnum``.
FILE_SYSTEMS = frozenset(
    {"btrfs", "ext3", "ext4", "fat16", "none", "ntfs", "reiserfs", "swap", "ufs"}
    | {"vmfs5", "vmfs6", "vmfsl", "xfs", "zfs"}
)
#: Software RAID levels OVH accepts, and the fewest disks fleet lets each use.
RAID_MIN_DISKS = {0: 2, 1: 2, 5: 3, 6: 4, 7: 4, 10: 4}
_KEY_LINE = re.compile(
    r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com"
    r"|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\r\n]*)?$"
)
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_MOUNT = re.compile(r"^(/[\w.+-]*)+$|^/$|^swap$")


class ReinstallRefused(PayloadError):
    """The reinstall cannot work as asked; nothing was sent to OVH. Names host and field."""

    def __init__(self, where: str, field: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{where}: reinstall refused: {field}: {message}", hint=hint)
        self.where = where
        self.field = field


# ---------------------------------------------------------------------------------------------
# The request, as stage params


@dataclass(frozen=True)
class Partition:
    """One ``MOUNT:FS:SIZE_MIB[:RAID]`` entry of ``layout`` (size 0: the rest of the disk)."""

    mount: str
    fs: str
    size_mib: int
    raid: int | None = None

    def text(self) -> str:
        tail = "" if self.raid is None else f":{self.raid}"
        return f"{self.mount}:{self.fs}:{self.size_mib}{tail}"


@dataclass(frozen=True)
class ReinstallSpec:
    """What to install, as the operator asked it (before looking at any server)."""

    os: str
    hostname: str | None = None
    ssh_key: str | None = None
    script_file: str | None = None
    script_sha256: str | None = None
    disk_group: int | None = None
    disks: int | None = None
    raid: int | None = None
    layout: tuple[Partition, ...] = ()
    scheme: str | None = None

    def to_params(self) -> dict[str, Any]:
        """Stage params that :func:`parse_params` reads back into this spec."""
        values: dict[str, Any] = {
            "os": self.os,
            "hostname": self.hostname,
            "ssh_key": self.ssh_key,
            "script_file": self.script_file,
            "script_sha256": self.script_sha256,
            "disk_group": self.disk_group,
            "disks": self.disks,
            "raid": self.raid,
            "layout": [p.text() for p in self.layout] or None,
            "scheme": self.scheme,
        }
        return {key: value for key, value in values.items() if value is not None}

    @property
    def partitioned(self) -> bool:
        return bool(self.layout or self.disks or self.scheme or self.raid is not None)


def parse_params(params: Mapping[str, Any], where: str) -> ReinstallSpec:
    """Read a reinstall stage's params; ``where`` names the host or stage in errors."""
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise ReinstallRefused(where, unknown[0], "unknown parameter", hint=_known_params())
    os_name = params.get("os")
    if not isinstance(os_name, str) or not os_name.strip():
        raise ReinstallRefused(where, "os", "required: the OS template to install")
    raid = _optional_int(params, "raid", where)
    if raid is not None and raid not in RAID_MIN_DISKS:
        raise ReinstallRefused(where, "raid", f"{raid} is not one of {_raid_levels()}")
    spec = ReinstallSpec(
        os=os_name.strip(),
        hostname=_optional_text(params, "hostname", where),
        ssh_key=_optional_text(params, "ssh_key", where),
        script_file=_optional_text(params, "script_file", where),
        script_sha256=_optional_text(params, "script_sha256", where),
        disk_group=_optional_int(params, "disk_group", where),
        disks=_optional_int(params, "disks", where),
        raid=raid,
        layout=_layout(params.get("layout"), where),
        scheme=_optional_text(params, "scheme", where),
    )
    _check_spec(spec, where)
    return spec


def _check_spec(spec: ReinstallSpec, where: str) -> None:
    if spec.ssh_key is not None:
        check_public_key(spec.ssh_key, where)
    if spec.disks is not None and spec.disks < 1:
        raise ReinstallRefused(where, "disks", f"{spec.disks}: at least 1 disk")
    if spec.raid is not None and not spec.layout:
        raise ReinstallRefused(
            where, "raid", "applies to the layout's partitions", hint="give a layout too"
        )
    if spec.script_sha256 is not None and not spec.script_file:
        raise ReinstallRefused(where, "script_sha256", "given without script_file")
    if spec.layout:
        _check_layout(spec.layout, where)


def _known_params() -> str:
    return "known parameters: " + ", ".join(PARAMS)


def _raid_levels() -> str:
    return ", ".join(str(level) for level in RAID_MIN_DISKS)


def _optional_text(params: Mapping[str, Any], key: str, where: str) -> str | None:
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ReinstallRefused(where, key, f"expected text, got {value!r}")
    return value.strip()


def _optional_int(params: Mapping[str, Any], key: str, where: str) -> int | None:
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ReinstallRefused(where, key, f"expected a whole number, got {value!r}")
    return value


def _layout(value: Any, where: str) -> tuple[Partition, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ReinstallRefused(where, "layout", "expected a list of MOUNT:FS:SIZE_MIB[:RAID]")
    return tuple(parse_partition(item, where) for item in items)


def parse_partition(item: Any, where: str) -> Partition:
    """``/:ext4:20480``, ``swap:swap:4096``, ``/data:xfs:0:1`` -> :class:`Partition`."""
    parts = item.split(":") if isinstance(item, str) else []
    if len(parts) not in (3, 4):
        raise ReinstallRefused(where, "layout", f"{item!r}: expected MOUNT:FS:SIZE_MIB[:RAID]")
    mount, fs, size, *rest = (part.strip() for part in parts)
    if not _MOUNT.match(mount):
        raise ReinstallRefused(where, "layout", f"{item!r}: mount point {mount!r} is not absolute")
    if fs not in FILE_SYSTEMS:
        known = ", ".join(sorted(FILE_SYSTEMS))
        raise ReinstallRefused(
            where, "layout", f"{item!r}: file system {fs!r} is not one of {known}"
        )
    if (fs == "swap") != (mount == "swap"):
        raise ReinstallRefused(where, "layout", f"{item!r}: swap goes with mount point swap")
    if not size.isdigit():
        raise ReinstallRefused(where, "layout", f"{item!r}: size {size!r} is not a number of MiB")
    raid = None
    if rest and rest[0]:
        if not rest[0].isdigit() or int(rest[0]) not in RAID_MIN_DISKS:
            levels = _raid_levels()
            raise ReinstallRefused(
                where, "layout", f"{item!r}: RAID {rest[0]!r} is not one of {levels}"
            )
        raid = int(rest[0])
    return Partition(mount, fs, int(size), raid)


def _check_layout(layout: Sequence[Partition], where: str) -> None:
    mounts = [p.mount for p in layout if p.mount != "swap"]
    duplicates = sorted({m for m in mounts if mounts.count(m) > 1})
    if duplicates:
        raise ReinstallRefused(where, "layout", f"mount point {duplicates[0]} appears twice")
    if "/" not in mounts:
        raise ReinstallRefused(where, "layout", "no partition for /")
    if sum(1 for p in layout if p.size_mib == 0) > 1:
        raise ReinstallRefused(where, "layout", "more than one partition fills the disk (size 0)")


def check_public_key(line: str, where: str) -> str:
    """An OpenSSH public key line, or refuse: OVH would install a key nobody can use."""
    line = line.strip()
    if not _KEY_LINE.match(line):
        raise ReinstallRefused(
            where,
            "ssh_key",
            f"not an OpenSSH public key line: {line[:40]!r}...",
            hint="give the .pub file, e.g. --ssh-key ~/.ssh/id_ed25519.pub",
        )
    return line


def hostname_for(template: str, host: str, service: str, where: str) -> str:
    """``{name}``/``{service}`` replaced, then checked as a DNS name (RFC 1123)."""
    name = template.replace("{name}", host).replace("{service}", service)
    labels = name.rstrip(".").split(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ReinstallRefused(
            where,
            "hostname",
            f"{name!r} is not a valid host name",
            hint="letters, digits and '-' in dot-separated labels; {name} and {service} are replaced",
        )
    return name


# ---------------------------------------------------------------------------------------------
# The request for one server


def is_system_type(group: DiskGroup) -> bool:
    """NVMe and SSD groups carry the system; HDD/SATA/SAS groups carry data."""
    kind = group.disk_type.upper()
    return "NVME" in kind or "SSD" in kind


def describe_group(group: DiskGroup) -> str:
    return f"{group.id} ({group.count} X {group.disk_type} {group.size_gb} GB)"


def system_group(hardware: Hardware, requested: int | None, where: str) -> DiskGroup:
    """The disk group the OS goes to: the single NVMe/SSD group, else the only group.

    An explicit ``disk_group`` must exist and must not be a data (HDD) group of a server that
    has a system group: installing there would wipe the data array.
    """
    groups = list(hardware.disk_groups)
    listing = ", ".join(describe_group(g) for g in groups) or "none"
    system = [g for g in groups if is_system_type(g)]
    if requested is not None:
        chosen = next((g for g in groups if g.id == requested), None)
        if chosen is None:
            raise ReinstallRefused(
                where, "disk_group", f"no disk group {requested} (groups: {listing})"
            )
        if system and not is_system_type(chosen):
            raise ReinstallRefused(
                where,
                "disk_group",
                f"group {describe_group(chosen)} is a data (HDD) group; the system goes to the "
                f"NVMe/SSD group {', '.join(str(g.id) for g in system)}",
            )
        return chosen
    if len(system) == 1:
        return system[0]
    if not system and len(groups) == 1:
        return groups[0]
    raise ReinstallRefused(
        where,
        "disk_group",
        f"cannot tell which group carries the system (groups: {listing})",
        hint="name it with disk_group (--disk-group)",
    )


def storage_for(spec: ReinstallSpec, group: DiskGroup, where: str) -> dict[str, Any]:
    """One ``dedicated.server.reinstall.Storage``: the system group, with its partitioning."""
    storage: dict[str, Any] = {"diskGroupId": group.id}
    if not spec.partitioned:
        return storage
    used = spec.disks or group.count
    if used > group.count:
        raise ReinstallRefused(
            where, "disks", f"{used} disks asked, group {describe_group(group)} has {group.count}"
        )
    partitioning: dict[str, Any] = {}
    if spec.disks is not None:
        partitioning["disks"] = spec.disks
    if spec.scheme:
        partitioning["schemeName"] = spec.scheme
    if spec.layout:
        partitioning["layout"] = [
            _layout_item(p, spec.raid, used, group, where) for p in spec.layout
        ]
    storage["partitioning"] = partitioning
    return storage


def _layout_item(
    part: Partition, default_raid: int | None, used: int, group: DiskGroup, where: str
) -> dict[str, Any]:
    item: dict[str, Any] = {"mountPoint": part.mount, "fileSystem": part.fs, "size": part.size_mib}
    raid = part.raid if part.raid is not None else (None if part.fs == "swap" else default_raid)
    if raid is not None:
        needed = RAID_MIN_DISKS[raid]
        if used < needed:
            raise ReinstallRefused(
                where,
                "raid",
                f"RAID {raid} for {part.mount} needs at least {needed} disks; "
                f"{used} of group {describe_group(group)} are used",
            )
        item["raidLevel"] = raid
    return item


@dataclass(frozen=True)
class Target:
    """The server a request is built for, as the inventory and the API know it."""

    host: str
    service: str
    hardware: Hardware
    templates: Sequence[str]


def build_request(
    spec: ReinstallSpec, target: Target, *, ssh_key: str | None, script: str | None
) -> dict[str, Any]:
    """The ``dedicated.server.Reinstall`` body, or :class:`ReinstallRefused`. Pure."""
    where = target.host
    if spec.os not in target.templates:
        raise ReinstallRefused(
            where,
            "os",
            f"{spec.os!r} is not compatible with {target.service}",
            hint="compatible: " + (", ".join(sorted(target.templates)) or "none"),
        )
    key = spec.ssh_key or ssh_key
    if not key:
        raise ReinstallRefused(
            where,
            "ssh_key",
            "no SSH key to install: fleet could not log in afterwards",
            hint="give --ssh-key FILE or set rescue.ssh_public_key",
        )
    custom: dict[str, Any] = {"sshKey": check_public_key(key, where)}
    if spec.hostname:
        custom["hostname"] = hostname_for(spec.hostname, target.host, target.service, where)
    if script is not None:
        custom["postInstallationScript"] = base64.b64encode(script.encode()).decode("ascii")
    group = system_group(target.hardware, spec.disk_group, where)
    return {
        "operatingSystem": spec.os,
        "customizations": custom,
        "storage": [storage_for(spec, group, where)],
    }


def read_script(spec: ReinstallSpec, where: str) -> str | None:
    """The post-installation script's text, checked against ``script_sha256`` when given."""
    if not spec.script_file:
        return None
    path = Path(spec.script_file).expanduser()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReinstallRefused(where, "script_file", f"{path}: {exc.strerror}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if spec.script_sha256 and digest != spec.script_sha256.lower():
        raise ReinstallRefused(
            where, "script_file", f"{path} changed since the run started (sha256 {digest[:12]})"
        )
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise ReinstallRefused(where, "script_file", f"{path} is not UTF-8 text") from exc
    if not text.strip():
        raise ReinstallRefused(where, "script_file", f"{path} is empty")
    return text


def prepare_request(
    provider: Provider, host: Host, spec: ReinstallSpec, *, ssh_key: str | None
) -> dict[str, Any]:
    """Look the server up (GETs only) and build its request, or refuse."""
    service = host.service_name
    if not service:
        raise ReinstallRefused(host.name, "ovh_service", "not set in the inventory")
    target = Target(
        host.name, service, provider.hardware(service), provider.compatible_templates(service)
    )
    return build_request(spec, target, ssh_key=ssh_key, script=read_script(spec, host.name))


# ---------------------------------------------------------------------------------------------
# Confirmation and approval


def check_confirmation(hosts: Sequence[Host], named: str | None, flag: str) -> list[str]:
    """The selected hosts' names, if ``named`` lists exactly them (comma-separated)."""
    chosen = sorted(h.name for h in hosts)
    given = {name.strip() for name in (named or "").split(",") if name.strip()}
    if given == set(chosen):
        return chosen
    missing, extra = sorted(set(chosen) - given), sorted(given - set(chosen))
    parts = [f"not named: {', '.join(missing)}"] if missing else []
    parts += [f"not selected: {', '.join(extra)}"] if extra else []
    raise UsageError(
        f"a reinstall wipes the system disks: {flag} must name exactly the {len(chosen)} "
        f"selected host(s), comma-separated ({'; '.join(parts)}); nothing was changed",
        hint=f"selected: {','.join(chosen)}",
    )


def reinstall_stages(plan: Plan) -> list[str]:
    return [stage.name for stage in plan.stages if stage.kind == "reinstall"]


def approval(plan: Plan, hosts: Sequence[Host], approve: str | None) -> dict[str, Any]:
    """The run options that approve ``plan``'s reinstall stages on ``hosts`` (``{}`` when it
    has none); refuses a plan with reinstall stages unless ``approve`` is ``all`` or names
    exactly the selected hosts. Params are checked here, before any host is contacted."""
    stages = [stage for stage in plan.stages if stage.kind == "reinstall"]
    if not stages:
        return {}
    for stage in stages:
        try:
            parse_params(stage.params, f"stage {stage.name}")
        except ReinstallRefused as exc:
            raise UsageError(exc.message, hint=exc.hint) from exc
    names = ", ".join(stage.name for stage in stages)
    if not approve:
        raise UsageError(
            f"plan {plan.name} reinstalls servers (stage {names}: wipes their system disks); "
            "nothing was changed",
            hint="approve with --approve-reinstall HOST,HOST... (exactly the selected hosts) or all",
        )
    if approve.strip() == "all":
        return {APPROVAL_OPTION: sorted(h.name for h in hosts)}
    return {APPROVAL_OPTION: check_confirmation(hosts, approve, "--approve-reinstall")}


def check_approved(options: Mapping[str, Any], host: str) -> None:
    """Refuse a host that the run's record does not approve for a reinstall."""
    approved = options.get(APPROVAL_OPTION)
    if isinstance(approved, list) and host in approved:
        return
    raise ReinstallRefused(
        host,
        "approval",
        "this run was not approved to reinstall this host",
        hint="use `fleet reinstall HOSTS --confirm HOSTS` or `fleet rollout --approve-reinstall`",
    )


def describe_stage(params: Mapping[str, Any]) -> str:
    """One line for ``fleet plan``: what a reinstall stage would install where."""
    parts = [f"reinstall {params.get('os', '?')} through the OVH API"]
    if params.get("disk_group") is not None:
        parts.append(f"on disk group {params['disk_group']}")
    else:
        parts.append("on the system (NVMe/SSD) disk group")
    if params.get("layout"):
        layout = params["layout"]
        parts.append("layout " + " ".join(layout if isinstance(layout, list) else [str(layout)]))
    return " ".join(parts) + ": wipes the system disks, needs approval"


# ---------------------------------------------------------------------------------------------
# This run's task: adopt, resume, never start a second one blindly


@dataclass(frozen=True)
class Earlier:
    """What the journal says an earlier attempt of this run did for a reinstall stage."""

    task_id: int | None  # the task it started or adopted
    known: tuple[int, ...]  # reinstall tasks that existed before its POST (no task id yet)
    this_attempt: bool  # journaled since the host's latest host.start
    replaces_key: str | None = None  # key_id of the disk key pinned before the reinstall


def earlier_attempt(events: Sequence[Event], stage: str) -> Earlier | None:
    """The last reinstall mark of ``stage`` in one host's events of this run, if any."""
    marks = [
        e
        for e in events
        if e.kind == "host.wait"
        and e.stage == stage
        and ("task" in e.data or "known_tasks" in e.data)
    ]
    if not marks:
        return None
    last = marks[-1]
    starts = [e.seq or 0 for e in events if e.kind == "host.start"]
    this_attempt = bool(starts) and (last.seq or 0) > max(starts)
    replaced = [e.data["replaces_key"] for e in marks if "replaces_key" in e.data]
    old_key = str(replaced[0]) if replaced and replaced[0] else None
    if "task" in last.data:
        return Earlier(int(last.data["task"]), (), this_attempt, old_key)
    known = tuple(int(i) for i in last.data.get("known_tasks") or ())
    return Earlier(None, known, this_attempt, old_key)


def task_or_init(provider: Provider, service: str, task_id: int) -> Task:
    """A task; one whose details still answer 404 was just created (OVH lags): ``init``."""
    try:
        return provider.task(service, task_id)
    except ProviderNotFound:
        return Task(id=task_id, function=REINSTALL_TASK, status="init")


def resume_task(provider: Provider, service: str, earlier: Earlier) -> Task | None:
    """The task an earlier attempt started (pending or done), or None to start one.

    Raises TaskFailed when it failed during the attempt running now: the automatic retries
    do not start a second reinstall; ``fleet resume`` does.
    """
    if earlier.task_id is not None:
        task = task_or_init(provider, service, earlier.task_id)
    else:
        new = sorted(set(provider.tasks(service, function=REINSTALL_TASK)) - set(earlier.known))
        if not new:
            return None  # the POST never reached OVH
        task = task_or_init(provider, service, new[-1])
    if not task.failed:
        return task
    if not earlier.this_attempt:
        return None
    raise TaskFailed(
        f"reinstall task {task.id} ended {task.status}; not started again automatically",
        server=service,
        query_id=task.query_id,
        hint="look at the server, then `fleet resume RUN` starts a new reinstall",
    )


def in_flight(provider: Provider, service: str, ids: Sequence[int]) -> Task | None:
    """The newest running reinstall task among ``ids``, if any."""
    for task_id in sorted(ids, reverse=True)[:_ADOPT_SCAN]:
        task = task_or_init(provider, service, task_id)
        if task.pending:
            return task
    return None


# ---------------------------------------------------------------------------------------------
# Progress and identity


def progress_text(task: Task, status: InstallStatus | None) -> tuple[str, str | None]:
    """A line for the journal and the install step it names (from ``install/status``)."""
    base = f"OVH reinstall task {task.id} ({task.status})"
    if status is None or not status.steps:
        return base, None
    steps = status.steps
    done = sum(1 for step in steps if step.status == "done")
    current = next((step for step in steps if step.status != "done"), steps[-1])
    text = f"{base}: {current.comment} ({done}/{len(steps)} steps done, {status.elapsed_seconds}s)"
    if current.status == "error" and current.error:
        text += f", error: {current.error}"
    return text, current.comment


class InstallProgress:
    """``wait_task`` progress: journals each new task status or install step as ``host.wait``.

    ``install/status`` is best effort: an error reading it never stops the wait.
    """

    def __init__(self, p: Pipeline, stage: RenderedStage, service: str) -> None:
        self.p = p
        self.stage = stage
        self.service = service
        self._last: tuple[str, str | None] | None = None

    def __call__(self, task: Task, waited: float) -> None:
        status = self._status() if task.pending else None
        text, step = progress_text(task, status)
        last = self._last
        if last and last[0] == task.status and step in (None, last[1]):
            return  # nothing new (or install/status unreadable for a moment)
        self._last = (task.status, step)
        self.p.journal.emit(
            "host.wait",
            host=self.p.host.name,
            stage=self.stage.name,
            step=self.stage.kind,
            query_id=task.query_id,
            data={"what": text, "task": task.id, "status": task.status, "install_step": step},
        )

    def _status(self) -> InstallStatus | None:
        try:
            return self.p.svc.provider.install_status(self.service)
        except ProviderError:
            return None


def key_id(key: tuple[str, str] | None) -> str | None:
    """A short, stable id of a host key (type and blob), for the journal."""
    if key is None:
        return None
    return hashlib.sha256(f"{key[0]} {key[1]}".encode()).hexdigest()[:32]


def installed_identity(
    names: Sequence[str | None], replaces_key: str | None = None
) -> Callable[[Transport], bool]:
    """An identity check for the freshly installed system: not a rescue, not presenting the
    key of the system it replaced (``replaces_key``, a :func:`key_id`), and its hostname is one
    of ``names`` (full or short), so a new key is pinned only for the server expected."""
    full = {n.rstrip(".").lower() for n in names if n}
    short = {n.split(".")[0] for n in full}

    def check(transport: Transport) -> bool:
        presented = getattr(transport, "presented_key", None)
        if replaces_key and key_id(presented) == replaces_key:
            return False  # the old system still answers: not yet
        result = transport.run("hostname", timeout=30)
        name = result.stdout.strip().lower()
        if not result.ok or not name or name.startswith("rescue"):
            return False
        return name in full or name.split(".")[0] in short

    return check


def same_key(a: str | None, b: str | None) -> bool:
    """Two public key lines hold the same key (type and blob; comments may differ)."""
    if not a or not b:
        return False
    return a.split()[:2] == b.split()[:2]
