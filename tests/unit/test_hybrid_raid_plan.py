"""The hybrid-raid plan: parameters, the plan as rendered for a host, ``fleet plan`` output."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fleet.errors import UsageError
from fleet.inventory import Host
from fleet.plan import render_for_host
from fleet.plans import BUILTINS, builtin_plan
from fleet.plans.hybrid_raid import Settings, parse_size, settings_from
from tests.conftest import FleetCli

HOST = Host(name="hyb-1", address="127.0.0.1", service_name="ns1.ip-203-0-113.eu")


def test_defaults() -> None:
    s = settings_from({})
    assert s == Settings()
    assert (s.level, s.mount, s.fs, s.label, s.md_name, s.mode, s.reboot) == (
        1, "/opt", "ext4", "data", "md4", "rescue", "auto")  # fmt: skip
    assert s.transport == ("sata", "sas", "nvme")
    assert not s.assume_clean and s.wipe == () and s.notes() == []


def test_cli_strings_are_converted() -> None:
    s = settings_from(
        {"level": "10", "mount": "/srv/data/", "fs": "xfs", "label": "bulk", "mode": "live",
         "assume_clean": "yes", "wipe": "K4GH1AAA, K4GH2BBB", "min_size": "3.5T",
         "max_size": "4TiB", "model": "HGST*", "count": "4", "md_name": "md10",
         "reboot": "ssh", "transport": "SATA, usb"}
    )  # fmt: skip
    assert (s.level, s.mount, s.fs, s.mode, s.assume_clean) == (
        10,
        "/srv/data",
        "xfs",
        "live",
        True,
    )
    assert s.wipe == ("K4GH1AAA", "K4GH2BBB")
    assert (s.min_size, s.max_size, s.count) == (3_500_000_000_000, 4 * 1024**4, 4)
    assert s.rule.model == "HGST*" and s.target.raid_level == "raid10"
    assert s.reboot == "ssh" and s.rule.transports == ("sata", "usb")
    assert "transport also takes usb disks (not local by default)" in s.notes()


def test_inventory_values_keep_their_types() -> None:
    s = settings_from({"level": 0, "assume_clean": False, "wipe": ["A", "B"], "count": 2})
    assert (s.level, s.wipe, s.count) == (0, ("A", "B"), 2)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"level": "2"}, "level='2': expected one of 0, 1, 5, 6, 10"),
        ({"level": "one"}, "expected a whole number"),
        ({"fs": "btrfs"}, "fs='btrfs': expected ext4 or xfs"),
        ({"mount": "opt"}, "must be an absolute path"),
        ({"mount": "/opt/../etc"}, "no . or .. parts"),
        ({"mount": "/my data"}, "letters, digits"),
        ({"mount": "/"}, "system directory"),
        ({"mount": "/boot"}, "system directory"),
        ({"mount": "/var/lib/x"}, "system directory"),
        ({"label": "a-label-longer-than-16"}, "at most 16 characters for ext4"),
        ({"fs": "xfs", "label": "thirteen-char"}, "at most 12 characters for xfs"),
        ({"md_name": "md 4"}, "md_name='md 4'"),
        ({"homehost": "ns1"}, "no parameter homehost"),
        ({"md_name": "a-name-of-17-chars"}, "1-16 letters"),
        ({"reboot": "ipmi"}, "expected auto or ovh or ssh"),
        ({"transport": "usb,floppy"}, "transport='usb,floppy': expected transports among"),
        ({"transport": ","}, "expected transports among"),
        ({"label": "-x"}, "(not first: -)"),  # it would reach mkfs -L and blkid as an option
        ({"md_name": "--run"}, "(not first: -)"),
        ({"mode": "chroot"}, "expected rescue or live"),
        ({"assume_clean": "maybe"}, "expected true or false"),
        ({"min_size": "big"}, "expected a size"),
        ({"count": "0"}, "expected at least 1"),
        ({"level": "5", "count": "2"}, "RAID5 needs at least 3 disks"),
        ({"level": "6", "count": "3"}, "RAID6 needs at least 4 disks"),
        ({"level": "10", "count": "2"}, "RAID10 needs at least 4 disks"),
        ({"min_size": "4T", "max_size": "1T"}, "min_size is larger than max_size"),
        ({"levl": "1"}, "no parameter levl"),
    ],
)
def test_bad_parameters_are_usage_errors(params: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError) as info:
        builtin_plan("hybrid-raid", params)
    assert message in info.value.message


def test_sizes() -> None:
    assert parse_size("4T", "x") == 4 * 10**12
    assert parse_size("500GB", "x") == 500 * 10**9
    assert parse_size("1.5 TiB", "x") == int(1.5 * 1024**4)
    assert parse_size("123456", "x") == 123456


def test_assume_clean_notes() -> None:
    raid0 = settings_from({"level": "0", "assume_clean": "true"})
    assert raid0.notes() == [
        "assume_clean means nothing for RAID0 (no redundancy to sync): ignored"
    ]
    raid1 = settings_from({"level": "1", "assume_clean": "true"})
    assert "not synced" in raid1.notes()[0]
    plan = builtin_plan("hybrid-raid", {"level": "0", "assume_clean": "true"})
    assert "warning: assume_clean means nothing for RAID0" in plan.description


def test_registered_and_validated_plan() -> None:
    assert "hybrid-raid" in BUILTINS
    plan = builtin_plan("hybrid-raid", {"level": "0", "wipe": "A,B"})
    assert plan.source == "builtin:hybrid-raid"
    assert plan.vars["level"] == 0 and plan.vars["wipe"] == ["A", "B"]
    assert [s.name for s in plan.stages] == [
        "rescue", "facts", "guard", "wipe", "partition", "array", "locate", "filesystem",
        "identify", "persist", "disk", "verify", "reboot", "verify-again",
    ]  # fmt: skip
    destructive = [
        f"{st.name}/{sp.name}" for st in plan.stages for sp in st.steps if sp.destructive
    ]
    assert destructive == [
        "wipe/wipe listed disks", "partition/partition", "array/create", "filesystem/mkfs",
    ]  # fmt: skip
    assert all(sp.check for st in plan.stages for sp in st.steps)


def test_rendered_for_a_host_before_facts() -> None:
    plan = builtin_plan("hybrid-raid", {"level": "0"})
    hp = render_for_host(plan, HOST)
    stages = {s.name: s for s in hp.stages}
    create = next(s for s in stages["array"].steps if s.name == "create")
    assert "--level=<facts.level>" in create.apply and "<facts.members>" in create.apply
    assert "--homehost=<facts.homehost> --name=<facts.md_name>" in create.apply
    assert create.apply.index("lsblk -dno SERIAL") < create.apply.index("mdadm --create")
    assert hp.destructive_steps[-1] == "filesystem/mkfs"
    assert "persist/mount now" in hp.skipped  # live-mode only
    assert hp.converged is not None and "MD_LEVEL=raid0" in hp.converged
    assert "LABEL=data" in hp.converged and "m=/opt" in hp.converged


def test_live_mode_skips_rescue_and_disk_stages() -> None:
    hp = render_for_host(builtin_plan("hybrid-raid", {"mode": "live"}), HOST)
    names = [s.name for s in hp.stages]
    assert "rescue" not in names and "disk" not in names and "reboot" in names
    assert "persist/mount the installed system" in hp.skipped
    assert "persist/unmount the installed system" in hp.skipped


def test_host_vars_override_the_converged_check() -> None:
    plan = builtin_plan("hybrid-raid", {"level": "0"})
    raid1_host = Host(name="h2", address="127.0.0.2", vars={"level": 1, "mount": "/data"})
    converged = render_for_host(plan, raid1_host).converged or ""
    assert "MD_LEVEL=raid1" in converged and "m=/data" in converged


def test_fleet_plan_command_shows_destructive_steps_and_placeholders(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.yaml"
    inventory.write_text(
        textwrap.dedent(
            """
            all:
              hosts:
                hyb-1: {ansible_host: 127.0.0.1, fleet: {ovh_service: ns1.ip-203-0-113.eu}}
                hyb-2: {ansible_host: 127.0.0.2, fleet: {ovh_service: ns2.ip-203-0-113.eu}, level: 1}
            """
        ),
        encoding="utf-8",
    )
    fleet = FleetCli(tmp_path / "state", None)
    out = fleet("-i", str(inventory), "plan", "builtin:hybrid-raid", "--var", "level=0", check=0)
    text = out.stdout
    assert "host hyb-1" in text and "host hyb-2" in text
    assert "step wipe listed disks  DESTRUCTIVE" in text and "step partition  DESTRUCTIVE" in text
    assert "mdadm --create <facts.md_path>" in text
    assert (
        "destructive steps, on 2 hosts:" in text and "  array/create: 2 hosts: hyb-1, hyb-2" in text
    )
    assert "nothing was changed" in text
    bad = fleet("-i", str(inventory), "plan", "builtin:hybrid-raid", "--var", "level=3")
    assert bad.returncode == 3 and "level='3'" in bad.stderr
