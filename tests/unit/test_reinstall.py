"""Reinstall requests: params, checks against a server's hardware and templates, confirmation,
approval, and the journal marks that let a resume adopt a task instead of starting another."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fleet.clock import FakeClock
from fleet.errors import TaskFailed, UsageError
from fleet.inventory import Host
from fleet.plan import parse_plan
from fleet.provider.base import DiskGroup, Hardware, InstallStatus, InstallStep, Task
from fleet.provider.ovh_tasks import TaskWaits
from fleet.stages.reinstall.approval import (
    APPROVAL_OPTION,
    approval,
    check_approved,
    check_confirmation,
    describe_stage,
)
from fleet.stages.reinstall.identity import installed_identity, key_id, same_key
from fleet.stages.reinstall.request import Target, build_request, read_script, system_group
from fleet.stages.reinstall.spec import ReinstallRefused, ReinstallSpec, parse_params
from fleet.stages.reinstall.task import (
    REINSTALL_TASK,
    Earlier,
    earlier_attempt,
    progress_text,
    resume_task,
)
from fleet.store.base import Event
from fleet.transport.base import CommandResult

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJx7cO1OJ0M9nqMZ6m4HxE0C3Lz1O6B7Bq3d3s9ZrT8Q op@desk"
TEMPLATES = ("debian12_64", "debian13_64", "ubuntu2404-server_64")
NVME = DiskGroup(1, "NVME", 2, 960, "2 X Disk NVME 960 GB, JBOD")
HDD = DiskGroup(2, "HDD", 4, 4000, "4 X Disk HDD 4000 GB, JBOD")
HYBRID = Hardware("SCALE-a1", (NVME, HDD))
PLAIN = Hardware("ADVANCE-1", (NVME,))


def target(hardware: Hardware = HYBRID) -> Target:
    return Target("srv-001", "ns1.ip-1-2-3.eu", hardware, TEMPLATES)


def spec(**params: Any) -> ReinstallSpec:
    return parse_params({"os": "debian12_64", **params}, "srv-001")


def request(hardware: Hardware = HYBRID, *, script: str | None = None, **params: Any) -> Any:
    return build_request(spec(**params), target(hardware), ssh_key=KEY, script=script)


def refused(field: str) -> Any:
    return pytest.raises(ReinstallRefused, match=rf"srv-001: reinstall refused: {field}: ")


# -- params ------------------------------------------------------------------------------------


def test_params_round_trip_through_to_params() -> None:
    params = {
        "os": "debian12_64",
        "hostname": "{name}.example.net",
        "ssh_key": KEY,
        "disk_group": 1,
        "disks": 2,
        "raid": 1,
        "layout": ["/boot:ext4:1024", "/:ext4:0", "swap:swap:4096"],
        "scheme": "custom",
    }
    parsed = parse_params(params, "srv-001")
    assert parsed.to_params() == params
    assert parse_params(parsed.to_params(), "srv-001") == parsed


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"os": "debian12_64", "flavour": "x"}, "flavour"),
        ({}, "os"),
        ({"os": "  "}, "os"),
        ({"os": "debian12_64", "raid": 3, "layout": ["/:ext4:0"]}, "raid"),
        ({"os": "debian12_64", "raid": 1}, "raid"),
        ({"os": "debian12_64", "raid": True, "layout": ["/:ext4:0"]}, "raid"),
        ({"os": "debian12_64", "disks": 0}, "disks"),
        ({"os": "debian12_64", "disk_group": "1"}, "disk_group"),
        ({"os": "debian12_64", "ssh_key": "AAAA not a key"}, "ssh_key"),
        ({"os": "debian12_64", "ssh_key": KEY + "\nssh-rsa AAAA"}, "ssh_key"),
        ({"os": "debian12_64", "script_sha256": "ab"}, "script_sha256"),
        ({"os": "debian12_64", "layout": []}, "layout"),
        ({"os": "debian12_64", "layout": ["/:ext4"]}, "layout"),
        ({"os": "debian12_64", "layout": ["root:ext4:0"]}, "layout"),
        ({"os": "debian12_64", "layout": ["/:ext9:0"]}, "layout"),
        ({"os": "debian12_64", "layout": ["/:ext4:0", "/swap:swap:1"]}, "layout"),
        ({"os": "debian12_64", "layout": ["/:ext4:big"]}, "layout"),
        ({"os": "debian12_64", "layout": ["/:ext4:0:4"]}, "layout"),
        ({"os": "debian12_64", "layout": ["/:ext4:0", "/:xfs:10"]}, "layout"),
        ({"os": "debian12_64", "layout": ["/boot:ext4:1024"]}, "layout"),
        ({"os": "debian12_64", "layout": ["/:ext4:0", "/data:xfs:0"]}, "layout"),
    ],
)
def test_bad_params_are_refused_naming_the_field(params: dict[str, Any], field: str) -> None:
    with refused(field):
        parse_params(params, "srv-001")


# -- the request for one server ------------------------------------------------------------------


def test_plain_request_installs_on_the_system_group_only() -> None:
    body = request()
    assert body == {
        "operatingSystem": "debian12_64",
        "customizations": {"sshKey": KEY},
        "storage": [{"diskGroupId": 1}],
    }


def test_layout_raid_and_hostname() -> None:
    body = request(
        hostname="{name}.{service}",
        raid=1,
        layout=["/boot:ext4:1024", "/:ext4:0", "swap:swap:4096", "/tmp:xfs:2048:0"],
    )
    assert body["customizations"]["hostname"] == "srv-001.ns1.ip-1-2-3.eu"
    assert body["storage"] == [
        {
            "diskGroupId": 1,
            "partitioning": {
                "layout": [
                    {"mountPoint": "/boot", "fileSystem": "ext4", "size": 1024, "raidLevel": 1},
                    {"mountPoint": "/", "fileSystem": "ext4", "size": 0, "raidLevel": 1},
                    {"mountPoint": "swap", "fileSystem": "swap", "size": 4096},
                    {"mountPoint": "/tmp", "fileSystem": "xfs", "size": 2048, "raidLevel": 0},
                ]
            },
        }
    ]


def test_the_script_is_sent_base64_encoded() -> None:
    script = "#!/bin/sh\necho hello > /root/hello\n"
    body = request(script=script)
    sent = body["customizations"]["postInstallationScript"]
    assert base64.b64decode(sent).decode() == script


def test_an_unknown_os_is_refused_listing_the_valid_ones() -> None:
    with refused("os") as caught:
        request(os="windows95")
    assert "ns1.ip-1-2-3.eu" in caught.value.message
    assert caught.value.hint == "compatible: debian12_64, debian13_64, ubuntu2404-server_64"


def test_the_hdd_group_is_never_a_target() -> None:
    with refused("disk_group") as caught:
        request(disk_group=2)
    assert "2 (4 X HDD 4000 GB) is a data (HDD) group" in caught.value.message


def test_a_missing_disk_group_is_refused() -> None:
    with refused("disk_group") as caught:
        request(disk_group=3)
    assert "no disk group 3" in caught.value.message


def test_the_system_group_is_found_by_type_not_position() -> None:
    swapped = Hardware("x", (DiskGroup(1, "SATA", 2, 8000), DiskGroup(2, "NVMe", 2, 960)))
    assert system_group(swapped, None, "h").id == 2
    assert system_group(Hardware("hdd only", (DiskGroup(1, "SATA", 2, 4000),)), None, "h").id == 1
    assert request(Hardware("x", (DiskGroup(4, "SSD", 2, 480), HDD)))["storage"] == [
        {"diskGroupId": 4}
    ]


def test_an_ambiguous_server_needs_an_explicit_group() -> None:
    two = Hardware("x", (DiskGroup(1, "SSD", 2, 480), DiskGroup(2, "NVME", 2, 960), HDD))
    with pytest.raises(ReinstallRefused, match="cannot tell which group"):
        system_group(two, None, "h")
    assert system_group(two, 2, "h").id == 2
    with pytest.raises(ReinstallRefused, match="cannot tell"):
        system_group(Hardware("x", ()), None, "h")


def test_raid_levels_must_fit_the_disks_used() -> None:
    with refused("raid") as caught:
        request(raid=5, layout=["/:ext4:0"])
    assert "RAID 5 for / needs at least 3 disks; 2 of group 1" in caught.value.message
    with refused("raid"):
        request(disks=1, layout=["/:ext4:0:1"])
    with refused("disks"):
        request(disks=3, layout=["/:ext4:0"])
    big = Hardware("x", (DiskGroup(1, "NVME", 4, 960),))
    assert (
        request(big, raid=10, layout=["/:ext4:0"])["storage"][0]["partitioning"]["layout"][0][
            "raidLevel"
        ]
        == 10
    )


def test_a_bad_hostname_and_no_key_are_refused() -> None:
    with refused("hostname"):
        request(hostname="bad_name!")
    with refused("hostname"):
        request(hostname="{name}-" + "x" * 70)
    with refused("ssh_key"):
        build_request(spec(), target(), ssh_key=None, script=None)
    # the stage's own key wins over the default one
    other = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ== other"
    body = build_request(spec(ssh_key=other), target(), ssh_key=KEY, script=None)
    assert body["customizations"]["sshKey"] == other


def test_the_script_must_not_change_after_the_run_started(tmp_path: Path) -> None:
    path = tmp_path / "post.sh"
    path.write_text("#!/bin/sh\ntrue\n")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert (
        read_script(spec(script_file=str(path), script_sha256=digest), "h") == "#!/bin/sh\ntrue\n"
    )
    path.write_text("#!/bin/sh\nrm -rf /srv\n")
    with pytest.raises(ReinstallRefused, match="changed since the run started"):
        read_script(spec(script_file=str(path), script_sha256=digest), "h")
    path.write_text("  \n")
    with pytest.raises(ReinstallRefused, match="is empty"):
        read_script(spec(script_file=str(path)), "h")
    with pytest.raises(ReinstallRefused, match="script_file"):
        read_script(spec(script_file=str(tmp_path / "missing.sh")), "h")


# -- confirmation and approval -------------------------------------------------------------------


def hosts(*names: str) -> list[Host]:
    return [Host(name, "127.0.0.1", service_name=f"ns-{name}") for name in names]


def test_confirmation_must_name_exactly_the_selected_hosts() -> None:
    chosen = hosts("srv-002", "srv-001")
    assert check_confirmation(chosen, " srv-001, srv-002 ", "--confirm") == ["srv-001", "srv-002"]
    with pytest.raises(UsageError, match=r"not named: srv-002") as caught:
        check_confirmation(chosen, "srv-001", "--confirm")
    assert caught.value.hint == "selected: srv-001,srv-002"
    with pytest.raises(UsageError, match=r"not selected: srv-003"):
        check_confirmation(chosen, "srv-001,srv-002,srv-003", "--confirm")
    with pytest.raises(UsageError, match="--confirm must name exactly"):
        check_confirmation(chosen, "all", "--confirm")
    with pytest.raises(UsageError):
        check_confirmation(chosen, "", "--confirm")


PLAN = {
    "name": "rebuild",
    "stages": [
        {"name": "wipe", "kind": "reinstall", "params": {"os": "debian12_64"}},
        {"name": "check", "steps": ["uname -a"]},
    ],
}


def test_a_plan_with_a_reinstall_needs_an_approval_naming_its_hosts() -> None:
    plan = parse_plan(PLAN, "adhoc")
    chosen = hosts("srv-001", "srv-002")
    with pytest.raises(UsageError, match="stage wipe") as caught:
        approval(plan, chosen, None)
    assert caught.value.hint and "--approve-reinstall" in caught.value.hint
    assert approval(plan, chosen, "all") == {APPROVAL_OPTION: ["srv-001", "srv-002"]}
    assert approval(plan, chosen, "srv-002,srv-001") == {APPROVAL_OPTION: ["srv-001", "srv-002"]}
    with pytest.raises(UsageError, match="not named: srv-002"):
        approval(plan, chosen, "srv-001")
    plain = parse_plan({"name": "p", "stages": [{"name": "s", "steps": ["true"]}]}, "adhoc")
    assert approval(plain, chosen, None) == {}


def test_bad_reinstall_params_in_a_plan_are_refused_before_anything_runs() -> None:
    data = {"name": "p", "stages": [{"name": "w", "kind": "reinstall", "params": {"os": 12}}]}
    with pytest.raises(UsageError, match="stage w: reinstall refused: os"):
        approval(parse_plan(data, "adhoc"), hosts("srv-001"), "all")


def test_a_run_reinstalls_only_the_hosts_it_approves() -> None:
    check_approved({APPROVAL_OPTION: ["srv-001"]}, "srv-001")
    for options in ({APPROVAL_OPTION: ["srv-002"]}, {}, {APPROVAL_OPTION: "srv-001"}):
        with pytest.raises(ReinstallRefused, match="srv-001: reinstall refused: approval"):
            check_approved(options, "srv-001")


def test_the_plan_line_says_destructive_and_where() -> None:
    line = describe_stage({"os": "debian12_64", "layout": ["/:ext4:0"]})
    assert line.startswith("reinstall debian12_64 through the OVH API on the system")
    assert "layout /:ext4:0" in line and "wipes the system disks" in line


# -- journal marks: resume adopts, never a second reinstall --------------------------------------


def event(seq: int, kind: str, stage: str | None = None, **data: Any) -> Event:
    at = datetime(2026, 2, 28, 23, 59, tzinfo=UTC)
    return Event("r1", kind, at, host="srv-001", stage=stage, data=data, seq=seq)


def test_the_last_mark_of_the_stage_decides() -> None:
    assert earlier_attempt([event(1, "host.start")], "wipe") is None
    events = [
        event(1, "host.start"),
        event(2, "host.wait", "wipe", what="x", known_tasks=[5, 7], replaces_key="k1"),
        event(3, "host.wait", "other", task=99),
    ]
    assert earlier_attempt(events, "wipe") == Earlier(None, (5, 7), True, "k1")
    events.append(event(4, "host.wait", "wipe", task=11))
    assert earlier_attempt(events, "wipe") == Earlier(11, (), True, "k1")
    # a later attempt keeps the key pinned before the run's first reinstall began
    events += [event(5, "host.end"), event(6, "host.start")]
    events.append(event(7, "host.wait", "wipe", known_tasks=[11], replaces_key="k2"))
    assert earlier_attempt(events, "wipe") == Earlier(None, (11,), True, "k1")
    assert earlier_attempt(events[:6], "wipe") == Earlier(11, (), False, "k1")


class Tasks:
    """The task reads of a provider, over a fixed table (pure logic under test); a task in
    ``late`` answers 404 to that many reads before its details appear."""

    def __init__(self, *tasks: Task) -> None:
        self.table = {t.id: t for t in tasks}
        self.late: dict[int, int] = {}

    def tasks(self, name: str, function: str | None = None, status: str | None = None) -> list[int]:
        return sorted(self.table)

    def task(self, name: str, task_id: int) -> Task:
        from fleet.errors import ProviderNotFound

        if self.late.get(task_id, 0) > 0:
            self.late[task_id] -= 1
            raise ProviderNotFound("404", server=name)
        if task_id not in self.table:
            raise ProviderNotFound("404", server=name)
        return self.table[task_id]


def reinstall_task(task_id: int, status: str) -> Task:
    return Task(task_id, "reinstallServer", status)


def test_resume_adopts_the_task_of_an_earlier_attempt() -> None:
    provider: Any = Tasks(reinstall_task(5, "done"), reinstall_task(11, "doing"))
    assert resume_task(provider, "ns1", Earlier(11, (), False)) == reinstall_task(11, "doing")
    # crashed between the POST and journaling its task: the new task is ours
    assert resume_task(provider, "ns1", Earlier(None, (5,), False)) == reinstall_task(11, "doing")
    # the POST never reached OVH: start one
    assert resume_task(provider, "ns1", Earlier(None, (5, 11), False)) is None
    # done while fleet was away: go on after the install
    provider.table[11] = reinstall_task(11, "done")
    assert resume_task(provider, "ns1", Earlier(11, (), True)).status == "done"  # type: ignore[union-attr]
    # a task not readable yet is a new one
    assert resume_task(provider, "ns1", Earlier(12, (), True)) == reinstall_task(12, "init")


def test_a_failed_task_is_restarted_by_a_resume_never_by_the_retries() -> None:
    provider: Any = Tasks(reinstall_task(11, "ovhError"))
    with pytest.raises(TaskFailed, match="task 11 ended ovhError; not started again"):
        resume_task(provider, "ns1", Earlier(11, (), True))
    assert resume_task(provider, "ns1", Earlier(11, (), False)) is None


GRACE = 30.0


def in_flight(provider: Tasks, ids: list[int], clock: FakeClock | None = None) -> Task | None:
    """What the stage adopts among ``ids``: the provider's own reader of running tasks."""
    clock = clock or FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    waits = TaskWaits(
        provider.task, clock, grace_seconds=GRACE, poll_interval=5.0, max_poll_interval=30.0
    )
    return waits.pending(provider, "ns1", REINSTALL_TASK, ids)


def test_a_running_reinstall_is_found_among_the_newest() -> None:
    provider = Tasks(
        reinstall_task(3, "todo"), reinstall_task(5, "done"), reinstall_task(8, "cancelled")
    )
    assert in_flight(provider, [3, 5, 8]) == reinstall_task(3, "todo")
    assert in_flight(provider, [5, 8]) is None
    # only the newest three are looked at
    for task_id in (20, 21, 22):
        provider.table[task_id] = reinstall_task(task_id, "done")
    assert in_flight(provider, [3, 5, 8, 20, 21, 22]) is None
    # one whose details still answer 404 after the grace period says neither when it started
    # nor that it runs: not adopted
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    assert in_flight(provider, [20, 21, 23], clock) is None
    assert clock.monotonic() >= GRACE  # read again for the grace period first


def test_a_reinstall_created_moments_ago_is_adopted_once_its_details_appear() -> None:
    provider = Tasks(reinstall_task(20, "done"), reinstall_task(23, "todo"))
    provider.late[23] = 2  # OVH lists a new task before it answers its details
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    assert in_flight(provider, [20, 23], clock) == reinstall_task(23, "todo")
    assert clock.monotonic() < GRACE


# -- progress and identity ------------------------------------------------------------------------


def test_progress_names_the_current_install_step() -> None:
    task = reinstall_task(11, "doing")
    assert progress_text(task, None) == ("OVH reinstall task 11 (doing)", None)
    steps = (
        InstallStep("Preparing the installation", "done"),
        InstallStep("Setting up disks and partitions", "doing"),
        InstallStep("Deploying the operating system image", "todo"),
    )
    text, step = progress_text(task, InstallStatus(42, steps))
    assert step == "Setting up disks and partitions"
    assert text == (
        "OVH reinstall task 11 (doing): Setting up disks and partitions (1/3 steps done, 42s)"
    )
    failed = (InstallStep("Preparing the installation", "error", "no disk"),)
    assert progress_text(task, InstallStatus(3, failed))[0].endswith("error: no disk")


class Answering:
    """A transport that answers ``hostname`` with a fixed text, having presented ``key``."""

    def __init__(self, name: str, code: int = 0, key: tuple[str, str] = ("ssh-ed25519", "NEW")):
        self.name = name
        self.code = code
        self.presented_key = key

    def run(self, command: str, *, timeout: float | None = None) -> CommandResult:
        assert command == "hostname"
        return CommandResult(command, self.code, self.name + "\n", "", 0.01)

    def close(self) -> None:
        return None


def test_the_installed_system_must_answer_with_an_expected_name() -> None:
    check = installed_identity(["ns1.ip-1-2-3.eu", None, "web-1.example.net"])
    assert check(Answering("ns1.ip-1-2-3.eu"))
    assert check(Answering("ns1"))
    assert check(Answering("web-1"))
    assert not check(Answering("rescue12-customer-eu"))
    assert not check(Answering("ns2.ip-1-2-4.eu"))
    assert not check(Answering("ns1.ip-1-2-3.eu", code=1))
    # the system it replaced may still answer for a moment: its key is never taken
    old = ("ssh-ed25519", "OLD")
    check = installed_identity(["ns1.ip-1-2-3.eu"], key_id(old))
    assert not check(Answering("ns1.ip-1-2-3.eu", key=old))
    assert check(Answering("ns1.ip-1-2-3.eu"))
    assert key_id(None) is None and key_id(old) != key_id(("ssh-ed25519", "NEW"))


def test_keys_compare_by_type_and_blob() -> None:
    assert same_key(KEY, KEY.rsplit(" ", 1)[0] + " another comment")
    assert not same_key(KEY, "ssh-ed25519 AAAAother op@desk")
    assert not same_key(None, KEY)


class Journal:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def emit(self, kind: str, **fields: Any) -> None:
        self.events.append({"kind": kind, **fields})


class Statuses:
    """install/status answers in turn; None stands for an unreadable answer."""

    def __init__(self, *answers: InstallStatus | None) -> None:
        self.answers = list(answers)

    def install_status(self, name: str) -> InstallStatus | None:
        answer = self.answers.pop(0)
        if answer is None:
            from fleet.errors import ProviderTransient

            raise ProviderTransient("HTTP 502", server=name)
        return answer


def test_progress_journals_each_new_step_once() -> None:
    from types import SimpleNamespace

    from fleet.plan import RenderedStage
    from fleet.stages.reinstall.task import InstallProgress

    def at(index: int) -> InstallStatus:
        names = ("Preparing", "Partitioning", "Deploying")
        steps = [InstallStep(n, "done" if i < index else "doing") for i, n in enumerate(names)]
        return InstallStatus(index, tuple(steps))

    journal = Journal()
    provider = Statuses(at(0), at(0), None, at(1), at(2))
    ctx: Any = SimpleNamespace(
        emit=lambda kind, **fields: journal.emit(kind, host="srv-001", **fields),
        host=Host("srv-001", "127.0.0.1"),
        provider=provider,
    )
    progress = InstallProgress(ctx, RenderedStage("wipe", "reinstall", None), "ns1")
    for status in ("doing", "doing", "doing", "doing", "doing", "done"):
        progress(reinstall_task(11, status), 0.0)
    steps = [(e["data"]["status"], e["data"]["install_step"]) for e in journal.events]
    assert steps == [
        ("doing", "Preparing"),
        ("doing", "Partitioning"),
        ("doing", "Deploying"),
        ("done", None),
    ]
    assert all(e["kind"] == "host.wait" and e["data"]["task"] == 11 for e in journal.events)
    assert journal.events[0]["stage"] == "wipe" and journal.events[0]["host"] == "srv-001"
