"""What fleet records about disks: previews and their approval (the store's own records are
tested on every backend in tests/integration/store/test_disks.py), the host's record in
``fleet status RUN HOST`` and the reports, and which stages need OVH's API (refused up front
for a host without ``ovh_service``)."""

from __future__ import annotations

import json
import textwrap
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fleet.engine.preview import HostPreview, approved_preview, preview_id, record_preview
from fleet.errors import PayloadError, UsageError
from fleet.inventory import Host
from fleet.plan import render_for_host
from fleet.plans import builtin_plan
from fleet.reports.html import render as render_html
from fleet.reports.records import decision_lines, host_records
from fleet.stages.boot import needs_ovh, ovh_gaps, reboots_over_ssh
from fleet.stages.call import approved_digest
from fleet.status import host_steps
from fleet.store.base import Event, Owner, RunRecord
from fleet.store.sqlite import SqliteStore
from tests.conftest import FleetCli

AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
UUID = "132ae610:537325c5:2d5efa6a:73f4f5dd"
DECISIONS = {
    "taken": [{"path": "/dev/sda", "model": "HGST HUS726040AL", "serial": "K7H1", "size": 4294967296,
               "transport": "sata", "why": "sata disk, blank"}],
    "refused": [{"path": "/dev/sdc", "model": "QEMU HARDDISK", "serial": "USB1", "size": 268435456,
                 "transport": "usb", "why": "removable USB medium (lsblk RM=1): never taken"}],
    "notes": ["/dev/sdb (serial K7H2) is 12.9 GB: 4.3 GB of it stays unused"],
    "wiped": [], "existing_array": "",
}  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "fleet.db")


def test_previews_are_approved_only_for_the_same_plan_and_hosts(store: SqliteStore) -> None:
    plan = builtin_plan("hybrid-raid", {"level": "1"})
    hosts = [Host("a", "127.0.0.1"), Host("b", "127.0.0.2")]
    results = [HostPreview("a", "d1gest", {}), HostPreview("b", refused="b: refused: ...")]
    preview = record_preview(store, plan, results, "ops")
    assert preview.id == preview_id(plan, results) and len(preview.id) == 12
    option = approved_preview(store, preview.id, plan, hosts)
    assert option == {"approved_preview": {"id": preview.id, "hosts": {"a": "d1gest", "b": ""}}}
    assert approved_digest(option, "a") == "d1gest" and approved_digest(option, "b") == ""
    assert approved_digest({}, "a") is None  # no preview approved: nothing to compare
    other = builtin_plan("hybrid-raid", {"level": "5"})
    with pytest.raises(UsageError, match="another plan or other parameters"):
        approved_preview(store, preview.id, other, hosts)
    with pytest.raises(UsageError, match="did not look at c"):
        approved_preview(store, preview.id, plan, [*hosts, Host("c", "127.0.0.3")])
    with pytest.raises(UsageError, match="no preview 'nope'"):
        approved_preview(store, "nope", plan, hosts)


def ev(kind: str, host: str, **fields: Any) -> Event:
    return Event(run_id="r1", kind=kind, at=AT, host=host, **fields)


def journal() -> list[Event]:
    return [
        ev("host.start", "vm-01"),
        ev("step.end", "vm-01", stage="facts", step="python", outcome="applied",
           data={"facts": {"probe": {"lsblk": "{...}"}, "disks_seen": []}}),
        ev("step.end", "vm-01", stage="guard", step="python", outcome="applied",
           data={"facts": {"decisions": DECISIONS, "digest": "abc123", "members": ["/dev/sda1"]}}),
        ev("step.end", "vm-01", stage="identify", step="python", outcome="applied",
           data={"facts": {"array_uuid": UUID, "fs_uuid": "6e1f", "md_device": "/dev/md127"}}),
        ev("host.end", "vm-01", outcome="ok"),
    ]  # fmt: skip


def test_the_host_record_keeps_decisions_and_identities_not_the_probe() -> None:
    record = host_records(journal())["vm-01"]
    assert record == {"array_uuid": UUID, "md_device": "/dev/md127", "fs_uuid": "6e1f",
                      "digest": "abc123", "decisions": DECISIONS}  # fmt: skip
    lines = decision_lines(DECISIONS)
    assert lines[0] == "take /dev/sda  HGST HUS726040AL  serial K7H1  4.3 GB  sata disk, blank"
    assert lines[1].startswith("not  /dev/sdc  QEMU HARDDISK  serial USB1  268.4 MB  removable")
    assert lines[2] == "note /dev/sdb (serial K7H2) is 12.9 GB: 4.3 GB of it stays unused"


def test_status_of_one_host_and_the_html_report_show_the_record(store: SqliteStore) -> None:
    owner = Owner("ops", "m", 1)
    run = RunRecord("r1", "hybrid-raid", "builtin:hybrid-raid", "h", ("vm-01", "vm-02"), {}, owner)
    store.create_run(run)
    for event in journal():
        store.record(event)
    status = host_steps(store, "r1", "vm-01")
    assert status["state"] == "ok" and status["record"]["fs_uuid"] == "6e1f"
    assert [s["step"] for s in status["steps"]] == [
        "facts/python",
        "guard/python",
        "identify/python",
    ]
    with pytest.raises(UsageError, match="no host 'vm-09'"):
        host_steps(store, "r1", "vm-09")
    page = render_html(store.get_run("r1"), store.events("r1"))
    assert '<section id="records"><h2>Disks and identities</h2>' in page
    assert "removable USB medium (lsblk RM=1): never taken" in page and UUID in page


# -- reboots over SSH and hosts without ovh_service ------------------------------------------


def stages_of(params: dict[str, str], host: Host) -> Any:
    return render_for_host(builtin_plan("hybrid-raid", params), host)


def test_reboot_over_ssh_when_asked_or_when_there_is_no_ovh_service() -> None:
    bare, ovh = Host("bare", "127.0.0.1"), Host("ovh", "127.0.0.2", service_name="ns1.ip-1.eu")
    reboot = next(s for s in stages_of({"mode": "live"}, bare).stages if s.kind == "reboot")
    assert reboots_over_ssh(reboot, has_service=False) and not needs_ovh(reboot, False)
    assert not reboots_over_ssh(reboot, has_service=True)
    forced = next(s for s in stages_of({"mode": "live", "reboot": "ssh"}, ovh).stages
                  if s.kind == "reboot")  # fmt: skip
    assert reboots_over_ssh(forced, has_service=True)
    through_api = next(s for s in stages_of({"reboot": "ovh"}, bare).stages if s.kind == "reboot")
    assert needs_ovh(through_api, has_service=False)
    broken = replace(forced, params={"how": "ipmi"})
    with pytest.raises(PayloadError, match="how='ipmi'"):
        reboots_over_ssh(broken, has_service=True)


def test_hosts_without_ovh_service_are_named_when_the_plan_needs_the_api() -> None:
    hosts = [Host("bare", "127.0.0.1"), Host("ovh", "127.0.0.2", service_name="ns1.ip-1.eu")]
    rescue = [stages_of({}, h) for h in hosts]
    assert ovh_gaps(rescue, hosts) == ["bare (rescue, disk)"]
    live = [stages_of({"mode": "live"}, h) for h in hosts]
    assert ovh_gaps(live, hosts) == []


def test_rollout_refuses_them_before_any_run_exists(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.yaml"
    inventory.write_text(textwrap.dedent("""
        all:
          hosts:
            bare: {ansible_host: 127.0.0.1}
    """))  # fmt: skip
    fleet = FleetCli(tmp_path / "state", None)
    out = fleet("-i", str(inventory), "rollout", "builtin:hybrid-raid")
    assert out.returncode == 3
    assert (
        "no ovh_service for hosts whose plan goes through OVH's API: bare (rescue, disk)"
        in out.stderr
    )
    assert "Traceback" not in out.stderr
    runs = fleet("status", "--json")
    assert json.loads(runs.stdout) == []  # no run record
    plan = fleet("-i", str(inventory), "plan", "builtin:hybrid-raid")
    assert "warning: no ovh_service, yet the plan goes through OVH's API: bare (rescue, disk)" \
        in plan.stderr  # fmt: skip


def test_the_preview_runs_only_read_only_stages_and_prints_per_host(
    store: SqliteStore, capsys: pytest.CaptureFixture[str]
) -> None:
    from fleet.engine.preview import Previewer, preview_stages, run_preview
    from fleet.plan import parse_plan
    from fleet.render import print_preview

    plan = builtin_plan("hybrid-raid", {})
    assert preview_stages(plan) == ["facts", "guard"]
    bare = parse_plan(
        {"name": "x", "stages": [{"name": "s", "steps": [{"name": "a", "apply": "true"}]}]},
        "x.yaml",
    )
    with pytest.raises(UsageError, match="no read-only stages to preview"):
        run_preview(Previewer(bare, connector=None, store=store), [Host("a", "127.0.0.1")], 1)
    results = [HostPreview("vm-01", "d1gest", {"decisions": DECISIONS}),
               HostPreview("vm-02", refused="vm-02: refused: RAID1 needs at least 2 disks")]  # fmt: skip
    print_preview(plan, results, record_preview(store, plan, results, "ops"))
    out = capsys.readouterr().out
    assert "host vm-01: decision d1gest\n  take /dev/sda  HGST HUS726040AL  serial K7H1" in out
    assert "host vm-02: refused\n  vm-02: refused: RAID1 needs at least 2 disks" in out
    assert "roll out exactly this with: --approve " in out
