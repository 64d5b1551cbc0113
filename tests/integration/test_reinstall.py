"""``fleet reinstall`` against the sandbox: the fake OVH API reinstalls the server and its sshd
host comes back with a new host key, an empty HOME and the installed SSH key.

Only srv-026..srv-030 are reinstalled here (a reinstall wipes the disk HOME), one test at a
time. Requests reaching the fake are counted with zero-latency chaos rules, which fire on every
matching request and change nothing else.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.provider.ovh import OvhProvider, build_client
from fleet.sandbox.ovh_chaos import ChaosRule, Early404, TaskFailure
from fleet.sandbox.ovh_tasks import REINSTALL
from fleet.sandbox.sandbox import ENDPOINT_NAME, Sandbox
from fleet.store import open_store
from fleet.store.base import Event
from tests.conftest import FleetCli
from tests.integration.test_rollout import events_of, last_run, run_status, write_plan

pytestmark = pytest.mark.integration

FIRST, LAST = 26, 30


@pytest.fixture
def box(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The session sandbox; chaos and timings set by a test are undone afterwards."""
    assert sandbox.api is not None
    timings = sandbox.api.model.timings
    try:
        yield sandbox
    finally:
        sandbox.api.chaos.reset()
        sandbox.api.set_timings(timings)


def service(box: Sandbox, name: str) -> str:
    return next(s.service for s in box.servers if s.name == name)


def provider(box: Sandbox) -> OvhProvider:
    client = build_client(
        ENDPOINT_NAME, endpoint_url=box.url, config_file=str(box.dir / "ovh.conf")
    )
    return OvhProvider(client, rate_limit_per_minute=60_000, burst=100, poll_interval=0.1)


def counter(box: Sandbox, route: str) -> ChaosRule:
    """A rule that only counts the requests matching ``route``."""
    assert box.api is not None
    rule = ChaosRule(kind="latency", route=route, seconds=0.0)
    box.api.chaos.add_rule(rule)
    return rule


def pin(fleet: FleetCli, hosts: list[str]) -> None:
    """A first contact pins the installed systems' keys, as fleet knew them before."""
    fleet("run", "--limit", ",".join(hosts), "hostname", check=0)


def reinstall_tasks(box: Sandbox, name: str) -> list[int]:
    assert box.api is not None
    return box.api.model.task_ids(service(box, name), function=REINSTALL)


def waits(events: list[Event], host: str) -> list[str]:
    return [str(e.data.get("what")) for e in events if e.kind == "host.wait" and e.host == host]


def test_five_servers_in_batches_with_progress_new_keys_and_rescue_key_cleared(
    box: Sandbox, fleet: FleetCli
) -> None:
    assert box.api is not None and box.hosts is not None
    hosts = [f"srv-{i:03d}" for i in range(FIRST, LAST + 1)]
    operator_key = (box.dir / "id_ed25519.pub").read_text().strip()
    api = provider(box)
    for name in hosts[:2]:  # a rescue key fleet set earlier and left behind
        sn = service(box, name)
        api.set_boot(sn, api.disk_boot(sn).id, rescue_ssh_key=operator_key)
    installs = {name: box.api.snapshot(service(box, name)).installs for name in hosts}
    old_keys = {name: box.hosts.disk_host_key(name) for name in hosts}
    pin(fleet, hosts)
    proc = fleet(
        "reinstall", *hosts, "--os", "debian13_64", "--confirm", ",".join(reversed(hosts)),
        "--hostname", "{name}.example.net", "--batches", "1,100%", "--timeout", "120s",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # progress from install/status, in the plain output and the journal
    assert "waiting for OVH reinstall task" in proc.stdout
    assert "steps done" in proc.stdout
    events = events_of(fleet, last_run(fleet)["id"])
    assert [len(e.data["hosts"]) for e in events if e.kind == "batch.start"] == [1, 4]
    for name in hosts:
        snap = box.api.snapshot(service(box, name))
        assert snap.installs == installs[name] + 1
        assert snap.os == "debian13_64" and snap.mode == "disk"
        assert snap.rescue_ssh_key is None  # cleared at the API
        sent = snap.last_reinstall or {}
        assert sent["storage"] == [{"diskGroupId": 1}]  # the NVMe group, never the HDD one
        assert sent["customizations"] == {"sshKey": operator_key, "hostname": f"{name}.example.net"}
        assert any("steps done" in what for what in waits(events, name))
    # the new host keys are pinned: a plain run later works with them
    store = open_store(fleet.state / "fleet.db")
    try:
        for name in hosts:
            assert box.hosts.disk_host_key(name) != old_keys[name]
            assert store.pinned_key(name, "disk") == box.hosts.disk_host_key(name)  # replaced
    finally:
        store.close()
    later = fleet("run", "--limit", ",".join(hosts), "hostname")
    assert later.returncode == 0, later.stderr[-2000:]
    assert "host key" not in later.stderr.lower()


def test_a_reinstall_already_running_is_adopted_not_started_again(
    box: Sandbox, fleet: FleetCli
) -> None:
    assert box.api is not None
    name, sn = "srv-026", service(box, "srv-026")
    # long enough to be still running when fleet starts, even on a loaded machine
    box.api.set_timings(dataclasses.replace(box.api.model.timings, reinstall_doing=20.0))
    posts = counter(box, "POST /dedicated/server/*/reinstall")
    before = reinstall_tasks(box, name)
    started = provider(box).reinstall(sn, {"operatingSystem": "debian12_64"})
    assert posts.fired == 1
    proc = fleet("reinstall", name, "--os", "debian12_64", "--confirm", name, "--timeout", "120s")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert posts.fired == 1  # fleet sent none: it adopted the running task
    assert reinstall_tasks(box, name) == [*before, started.id]
    events = events_of(fleet, last_run(fleet)["id"])
    assert f"OVH task {started.id} (reinstallServer, adopting)" in waits(events, name)


def test_a_reinstall_started_moments_ago_is_adopted_while_its_details_still_answer_404(
    box: Sandbox, fleet: FleetCli
) -> None:
    """OVH lists a new task before it answers its details: read again for the grace period,
    it is adopted as the running reinstall, not taken for an unknown one."""
    assert box.api is not None
    name, sn = "srv-027", service(box, "srv-027")
    box.api.set_timings(dataclasses.replace(box.api.model.timings, reinstall_doing=20.0))
    box.api.chaos.hide_new_tasks(Early404(gets=3, function=REINSTALL, count=1))
    posts = counter(box, "POST /dedicated/server/*/reinstall")
    started = provider(box).reinstall(sn, {"operatingSystem": "debian12_64"})
    proc = fleet("reinstall", name, "--os", "debian12_64", "--confirm", name, "--timeout", "120s")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert posts.fired == 1  # fleet sent none
    events = events_of(fleet, last_run(fleet)["id"])
    assert f"OVH task {started.id} (reinstallServer, adopting)" in waits(events, name)


def test_a_request_that_cannot_work_is_refused_before_anything_changes(
    box: Sandbox, fleet: FleetCli, tmp_path: Path
) -> None:
    changes = [counter(box, route) for route in ("POST /**", "PUT /**", "DELETE /**")]
    gets = counter(box, "GET /dedicated/server/*/install/compatibleTemplates")
    bad_os = fleet("reinstall", "srv-027", "--os", "windows95", "--confirm", "srv-027")
    assert bad_os.returncode == 3, bad_os.stderr
    assert "srv-027: reinstall refused: os: 'windows95' is not compatible" in bad_os.stderr
    assert "debian12_64" in bad_os.stderr  # the valid ones are listed
    assert gets.fired == 1  # it did look
    hdd = fleet("reinstall", "srv-028", "--os", "debian12_64", "--confirm", "srv-028",
                "--disk-group", "2")  # fmt: skip
    assert hdd.returncode == 3 and "srv-028: reinstall refused: disk_group" in hdd.stderr
    assert "data (HDD) group" in hdd.stderr
    raid = fleet("reinstall", "srv-028", "--os", "debian12_64", "--confirm", "srv-028",
                 "--partition", "/:ext4:0", "--raid", "5")  # fmt: skip
    assert raid.returncode == 3 and "RAID 5 for / needs at least 3 disks" in raid.stderr
    unconfirmed = fleet("reinstall", "srv-027", "srv-028", "--os", "debian12_64",
                        "--confirm", "srv-027")  # fmt: skip
    assert unconfirmed.returncode == 3 and "not named: srv-028" in unconfirmed.stderr
    # a plan with a reinstall stage: shown as destructive, run only with an approval
    plan = write_plan(
        tmp_path / "rebuild.yaml",
        "name: rebuild\nstages:\n  - name: wipe\n    kind: reinstall\n"
        "    params: {os: debian12_64, layout: ['/:ext4:0']}\n",
    )
    shown = fleet("plan", str(plan), "--limit", "srv-027", check=0)
    assert "stage wipe [reinstall]  DESTRUCTIVE" in shown.stdout
    assert "wipe/reinstall: 1 host: srv-027 (a rollout needs --approve-reinstall)" in shown.stdout
    refused = fleet("rollout", str(plan), "--limit", "srv-027")
    assert refused.returncode == 3 and "--approve-reinstall" in refused.stderr
    wrong = fleet("rollout", str(plan), "--limit", "srv-027", "--approve-reinstall", "srv-028")
    assert wrong.returncode == 3
    assert [rule.fired for rule in changes] == [0, 0, 0]
    assert fleet("status", "--json", check=0).stdout.strip() == "[]"  # no run was created


def test_an_ovh_error_counts_against_the_budget_and_a_resume_reinstalls(
    box: Sandbox, fleet: FleetCli
) -> None:
    assert box.api is not None
    hosts = ["srv-029", "srv-030"]
    box.api.chaos.fail_tasks(TaskFailure(function=REINSTALL, status="ovhError", count=1))
    before = {name: reinstall_tasks(box, name) for name in hosts}
    proc = fleet(
        "reinstall", *hosts, "--os", "debian12_64", "--confirm", ",".join(hosts),
        "--batches", "1,100%", "--max-failures", "0", "--timeout", "120s",
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = last_run(fleet)
    status = run_status(fleet, run["id"])
    assert status["state"] == "halted" and "failure budget" in (status["reason"] or "")
    states = {row["host"]: row["state"] for row in status["hosts"]}
    assert states == {"srv-029": "failed", "srv-030": "waiting"}
    events = events_of(fleet, run["id"])
    end = next(e for e in events if e.kind == "host.end" and e.host == "srv-029")
    assert end.data["failure"] == "infrastructure" and "ovhError" in (end.excerpt or "")
    retries = [e.data["left"] for e in events if e.kind == "host.retry"]
    assert retries == [2, 1, 0]  # retried as infrastructure trouble, then counted
    # the retries did not start a second reinstall
    failed = [t for t in reinstall_tasks(box, "srv-029") if t not in before["srv-029"]]
    assert len(failed) == 1
    assert box.api.task(service(box, "srv-029"), failed[0])["status"] == "ovhError"
    assert reinstall_tasks(box, "srv-030") == before["srv-030"]
    # a person resumes: the failed server gets a new reinstall, the other one its first
    resumed = fleet("resume", run["id"])
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    for name in hosts:
        new = [t for t in reinstall_tasks(box, name) if t not in before[name]]
        assert len(new) == (2 if name == "srv-029" else 1)
        assert box.api.task(service(box, name), new[-1])["status"] == "done"


def test_a_crash_during_the_install_is_resumed_without_a_second_reinstall(
    box: Sandbox, fleet: FleetCli
) -> None:
    assert box.api is not None and box.hosts is not None
    name = "srv-028"
    box.api.set_timings(dataclasses.replace(box.api.model.timings, reinstall_doing=3.0))
    before = reinstall_tasks(box, name)
    pin(fleet, [name])
    posts = counter(box, "POST /dedicated/server/*/reinstall")
    proc = fleet.popen(
        "reinstall", name, "--os", "debian12_64", "--confirm", name, "--timeout", "120s"
    )
    try:
        deadline = time.monotonic() + 60
        while posts.fired == 0 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert posts.fired == 1, "the reinstall was never requested"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
    resumed = fleet("resume", last_run(fleet)["id"])
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert posts.fired == 1
    assert len(reinstall_tasks(box, name)) == len(before) + 1
    store = open_store(fleet.state / "fleet.db")
    try:
        assert store.pinned_key(name, "disk") == box.hosts.disk_host_key(name)
    finally:
        store.close()
    events = events_of(fleet, last_run(fleet)["id"])
    assert any(w.endswith("adopting)") for w in waits(events, name))
