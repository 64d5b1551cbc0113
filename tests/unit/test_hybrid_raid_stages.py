"""The hybrid-raid python stages (facts, guard, locate, verify) on a scripted host.

The host is a table of command prefixes and the outputs a real one gives (formats from
tests/data/hybrid_raid/); the stage functions must read them, decide, and refuse with the disk
named. The persist stage's file edits run for real through /bin/sh on a directory standing in
for the installed system, twice, to show that a re-run changes nothing.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fleet.errors import PayloadError
from fleet.inventory import Host
from fleet.plan import render_stage, with_facts
from fleet.plans import builtin_plan, hybrid_raid
from fleet.plans.disks import parse_lsblk
from fleet.stages.call import StageContext
from fleet.store.base import OwnedArray
from fleet.transport.base import CommandResult
from tests.unit.hybrid_raid_layouts import (
    HDD_BYTES,
    ROOT_UUID,
    hdd,
    lsblk,
    raid_part,
    stub,
    system,
)

HOST = Host(name="hyb-1", address="127.0.0.1", service_name="ns1.ip-203-0-113.eu")
UUID = "0a1b2c3d:4e5f6a7b:8c9d0e1f:2a3b4c5d"
FS_UUID = "6e1f0c8a-3b2d-4c5e-9f70-8a1b2c3d4e5f"
RESCUE_MDSTAT = (
    "md127 : active raid1 nvme0n1p3[0] nvme1n1p3[1]\n      436635648 blocks super 1.2 [2/2] [UU]\n"
)
EXAMINE_MD4 = f"MD_LEVEL=raid1\nMD_DEVICES=2\nMD_NAME=md4\nMD_UUID={UUID}\nMD_EVENTS=3\n"


class ScriptedHost:
    """Answers commands by prefix; records what ran."""

    def __init__(self, answers: dict[str, str | tuple[int, str]]) -> None:
        self.answers = answers
        self.ran: list[str] = []

    def __call__(self, command: str, timeout: float) -> CommandResult:
        self.ran.append(command)
        if command.startswith("printf %s "):
            token = command.split()[2]
            return CommandResult(command, 0, token + "\n", "", 0.01)
        for prefix, answer in self.answers.items():
            found = prefix[1:] in command if prefix.startswith("~") else command.startswith(prefix)
            if found:
                code, out = answer if isinstance(answer, tuple) else (0, answer)
                return CommandResult(command, code, out, "", 0.01)
        return CommandResult(command, 127, "", f"unscripted: {command[:60]}", 0.01)


def context(host: ScriptedHost, mode: str = "rescue", facts: dict[str, Any] | None = None,
            **host_vars: Any) -> StageContext:  # fmt: skip
    plan_vars = builtin_plan("hybrid-raid", {}).vars
    return StageContext(
        host=HOST, vars={**plan_vars, **host_vars}, facts=facts or {}, params={}, mode=mode,
        runner=host,
    )  # fmt: skip


def examine_loop(outputs: dict[str, str]) -> str:
    return "".join(f"@@ {path}\n{text}" for path, text in outputs.items())


def device_probe(command: str, examine: dict[str, str], layout: str) -> str:
    """What the facts stage's device loop prints for the paths it was given: blkid -p and
    wipefs see what lsblk shows (partition table, filesystem type), mdadm --examine prints the
    given outputs."""
    nodes = {n.path: n for d in parse_lsblk(layout) for n in d.walk()}
    out = ""
    for path in shlex.split(command.split(";", 1)[0])[2:]:
        node = nodes[path]
        kind = node.fstype or (node.pttype if node.type == "disk" else "")
        sigs = [{"device": node.name, "offset": "0x0", "type": kind}] if kind else []
        key = "TYPE" if node.fstype else "PTTYPE"
        blkid = f"DEVNAME={path}\n{key}={kind}\n@@rc 0\n" if kind else "@@rc 2\n"
        out += f"@@dev {path}\n@@examine\n{examine.get(path, '')}@@blkid\n{blkid}"
        out += f"@@wipefs\n{json.dumps({'signatures': sigs})}\n@@rc 0\n@@holders\n"
    return out


class RescueHost(ScriptedHost):
    """A rescue system: the installed root's fstab is found on md127 (ROOT_UUID)."""

    def __init__(self, answers: dict[str, str | tuple[int, str]], examine: dict[str, str]) -> None:
        super().__init__(answers)
        self.examine = examine

    def __call__(self, command: str, timeout: float) -> CommandResult:
        if "@@blkid" in command:
            self.ran.append(command)
            layout = str(self.answers["lsblk -J -b"])
            return CommandResult(command, 0, device_probe(command, self.examine, layout), "", 0.01)
        return super().__call__(command, timeout)


def rescue_host(*hdds: dict[str, Any], examine: dict[str, str] | None = None,
                mdstat: str = RESCUE_MDSTAT) -> ScriptedHost:  # fmt: skip
    return RescueHost(
        {
            "hostname": "rescue12-customer-eu\n",
            "for t in ": "",
            "udevadm settle": "",
            "lsblk -J -b": lsblk(*system(rescue=True), *hdds),
            "cat /proc/mdstat": mdstat,
            "mdadm --detail --scan": "",
            "~debugfs": f"@@fstab /dev/md127\nUUID={ROOT_UUID} / ext4 defaults 0 1\n",
            "for d in ": examine_loop(examine or {}),
            "blkid -o export": (2, ""),
            "cat /proc/swaps": "Filename\tType\tSize\tUsed\tPriority\n",
            "findmnt -J -l": '{"filesystems": []}',
            "pvs ": "",
        },
        examine or {},
    )


def test_facts_then_guard_on_blank_hdds() -> None:
    host = rescue_host(hdd("sda", "K4GH1AAA"), hdd("sdb", "K4GH2BBB"))
    facts = hybrid_raid.gather(context(host))
    assert json.loads(json.dumps(facts)) == facts  # journaled as JSON
    assert len(facts["disks_seen"]) == 4
    probe = next(c for c in host.ran if "@@blkid" in c)
    assert " /dev/sda " in probe and " /dev/nvme0n1p3 " in probe
    assert "mdadm --examine" in probe and "blkid -p" in probe and "wipefs -n -J" in probe
    assert facts["probe"]["installed"].startswith("@@fstab /dev/md127")
    chosen = hybrid_raid.select(context(host, facts=facts, level=0))
    assert chosen["disks"] == ["/dev/sda", "/dev/sdb"]
    assert chosen["disk_ids"] == ["/dev/sda=K4GH1AAA", "/dev/sdb=K4GH2BBB"]
    assert chosen["members"] == ["/dev/sda1", "/dev/sdb1"]
    assert chosen["level"] == 0 and chosen["raid_level"] == "raid0"
    assert chosen["expected_bytes"] == 2 * HDD_BYTES
    assert chosen["create_flags"] == [] and chosen["format_over"] == "yes"
    assert chosen["root"] == "/mnt" and chosen["target_dir"] == "/mnt/opt"
    assert chosen["mkfs"] == ["mkfs.ext4", "-F"]
    assert chosen["root_uuid"] == ROOT_UUID and chosen["wipe_disks"] == []
    assert chosen["homehost"].startswith("fleet-") and chosen["array_name"].endswith(":md4")
    assert [d["serial"] for d in chosen["decisions"]["taken"]] == ["K4GH1AAA", "K4GH2BBB"]
    assert len(chosen["digest"]) == 12


def test_guard_refusal_names_the_disk() -> None:
    used = stub("sda", fstype="ext4", label="old")
    host = rescue_host(hdd("sda", "K4GH1AAA", used), hdd("sdb", "K4GH2BBB"))
    facts = hybrid_raid.gather(context(host))
    with pytest.raises(PayloadError) as info:
        hybrid_raid.select(context(host, facts=facts))
    assert info.value.message.startswith(
        "hyb-1: refused: /dev/sda (HGST HUS726040ALA610, serial K4GH1AAA"
    )
    assert "OVH's 511 MiB stub partition" in info.value.message
    allowed = hybrid_raid.select(context(host, facts=facts, wipe=["K4GH1AAA"]))
    assert allowed["wiped"] == ["K4GH1AAA"] and allowed["wipe_disks"] == ["/dev/sda"]


def test_guard_sees_an_earlier_superblock_through_examine() -> None:
    member = {"fstype": "linux_raid_member"}
    disks = (hdd("sda", "K4GH1AAA", raid_part("sda", **member)),
             hdd("sdb", "K4GH2BBB", raid_part("sdb", **member)))  # fmt: skip
    host = rescue_host(*disks, examine={"/dev/sda1": EXAMINE_MD4, "/dev/sdb1": EXAMINE_MD4})
    facts = hybrid_raid.gather(context(host))
    with pytest.raises(PayloadError, match="not created by fleet for this host"):
        hybrid_raid.select(context(host, facts=facts))  # named md4, but not fleet's
    owned = context(host, facts=facts)
    owned.owned = lambda: [OwnedArray("hyb-1", UUID, "md4", "raid1", ("K4GH1AAA",), "r1")]
    assert hybrid_raid.select(owned)["existing_uuid"] == UUID
    owned.vars["level"] = "0"
    with pytest.raises(PayloadError, match="but it is raid1, the plan wants raid0"):
        hybrid_raid.select(owned)


def test_facts_refuses_the_wrong_mode_and_missing_tools() -> None:
    installed = ScriptedHost({"hostname": "ns1.ip-203-0-113.eu\n"})
    with pytest.raises(PayloadError, match="mode=rescue but the host is not in rescue"):
        hybrid_raid.gather(context(installed, mode="disk"))
    rescue = rescue_host()
    with pytest.raises(PayloadError, match="mode=live but the host runs a rescue system"):
        hybrid_raid.gather(StageContext(HOST, {"mode": "live"}, {}, {}, "disk", rescue))
    rescue.answers["for t in "] = "parted\nmkfs.ext4\n"
    with pytest.raises(
        PayloadError, match=re.escape("missing tools on the host: parted, mkfs.ext4")
    ):
        hybrid_raid.gather(context(rescue))


def test_bad_host_var_refuses_the_host() -> None:
    with pytest.raises(
        PayloadError, match="bad hybrid-raid parameter for this host: level=7: expected one of"
    ):
        hybrid_raid.gather(context(rescue_host(), level=7))


def our_facts(**extra: Any) -> dict[str, Any]:
    host = rescue_host(hdd("sda", "K4GH1AAA"), hdd("sdb", "K4GH2BBB"))
    facts = hybrid_raid.gather(context(host))
    return {**facts, **hybrid_raid.select(context(host, facts=facts)), **extra}


def test_locate_finds_our_array_renamed_and_its_filesystem() -> None:
    mdstat = RESCUE_MDSTAT.replace("md127", "md126") + (
        "md127 : active raid1 sdb1[1] sda1[0]\n      3906885440 blocks super 1.2 [2/2] [UU]\n"
    )
    host = ScriptedHost(
        {
            "for d in ": examine_loop({"/dev/sda1": EXAMINE_MD4, "/dev/sdb1": EXAMINE_MD4}),
            "cat /proc/mdstat": mdstat,
            "blkid -p -o export /dev/md127": f"UUID={FS_UUID}\nLABEL=data\nTYPE=ext4\n",
        }
    )
    found = hybrid_raid.locate(context(host, facts=our_facts()))
    assert found == {
        "array_uuid": UUID,
        "md_device": "/dev/md127",
        "mdadm_line": f"ARRAY /dev/md/md4 metadata=1.2 UUID={UUID}",
        "fs_uuid": FS_UUID,
        "fstab_line": f"UUID={FS_UUID} /opt ext4 defaults,nofail 0 2",
    }
    host.answers["blkid -p -o export /dev/md127"] = (2, "")
    assert hybrid_raid.locate(context(host, facts=our_facts()))["fstab_line"] == ""


def test_locate_refuses_members_of_different_arrays() -> None:
    other = EXAMINE_MD4.replace(UUID, "ff:ff:ff:ff")
    host = ScriptedHost({"for d in ": examine_loop({"/dev/sda1": EXAMINE_MD4, "/dev/sdb1": other})})
    with pytest.raises(PayloadError, match="do not carry one array"):
        hybrid_raid.locate(context(host, facts=our_facts()))


def verified_host(
    mdstat_line: str = "[2/2] [UU]", size: int = HDD_BYTES * 95 // 100
) -> ScriptedHost:
    fstab = f"UUID={FS_UUID} / ext4 defaults 0 1\nUUID={FS_UUID} /opt ext4 defaults,nofail 0 2\n"
    return ScriptedHost(
        {
            "mdadm --detail --scan": f"ARRAY /dev/md/md4 metadata=1.2 name=md4 UUID={UUID}\n",
            "readlink -f /dev/md/md4": "/dev/md4\n",
            "readlink -f /dev/md4": "/dev/md4\n",
            "cat /proc/mdstat": "md4 : active raid1 sda1[0] sdb1[1]\n"
            f"      3906885440 blocks super 1.2 {mdstat_line}\n",
            "findmnt -J -b": json.dumps({"filesystems": [{"source": "/dev/md4", "target": "/opt",
                "fstype": "ext4", "size": size, "uuid": FS_UUID, "label": "data"}]}),
            "cat /etc/fstab": fstab,
            "cat /etc/mdadm/mdadm.conf": f"HOMEHOST <system>\nARRAY /dev/md/md4 metadata=1.2 UUID={UUID}\n",
        }
    )  # fmt: skip


def located() -> dict[str, Any]:
    return our_facts(
        array_uuid=UUID, md_device="/dev/md127", fs_uuid=FS_UUID,
        mdadm_line=f"ARRAY /dev/md/md4 metadata=1.2 UUID={UUID}",
        fstab_line=f"UUID={FS_UUID} /opt ext4 defaults,nofail 0 2",
    )  # fmt: skip


def test_verify_on_the_installed_system() -> None:
    host = verified_host()
    assert hybrid_raid.verify(context(host, mode="disk", facts=located())) == {
        "verified_device": "/dev/md4",
        "verified_bytes": HDD_BYTES * 95 // 100,
    }
    assert any(
        c.startswith("printf %s ") and "/opt/.fleet-hybrid-raid-check" in c for c in host.ran
    )


@pytest.mark.parametrize(
    ("host", "why"),
    [
        (verified_host(mdstat_line="[2/1] [U_]"), "expected a healthy raid1"),
        (verified_host(size=HDD_BYTES // 2), "expected about 4.0 TB"),
    ],
)
def test_verify_refuses_degraded_or_wrong_size(host: ScriptedHost, why: str) -> None:
    with pytest.raises(PayloadError, match=re.escape(why)):
        hybrid_raid.verify(context(host, mode="disk", facts=located()))


def test_verify_refuses_missing_fstab_line_unmounted_and_rescue() -> None:
    host = verified_host()
    host.answers["cat /etc/fstab"] = "/dev/md4 /opt ext4 defaults 0 1\n"
    with pytest.raises(PayloadError, match="/etc/fstab lacks the line"):
        hybrid_raid.verify(context(host, mode="disk", facts=located()))
    host.answers["findmnt -J -b"] = (1, "")
    with pytest.raises(PayloadError, match="nothing is mounted at /opt"):
        hybrid_raid.verify(context(host, mode="disk", facts=located()))
    with pytest.raises(PayloadError, match="needs the installed system"):
        hybrid_raid.verify(context(host, mode="rescue", facts=located()))


# -- persist: the file edits, run for real on a stand-in root ------------------------------------


def persist_steps(root: Path) -> dict[str, Any]:
    plan = builtin_plan("hybrid-raid", {"mode": "live"})
    stage = next(s for s in plan.stages if s.name == "persist")
    facts = {**located(), "root": str(root), "target_dir": f"{root}/opt"}
    rendered, _ = render_stage(plan, stage, with_facts({"mode": "live"}, facts))
    assert rendered is not None
    return {s.name: s for s in rendered.steps}


def sh(command: str) -> int:
    return subprocess.run(["/bin/sh", "-c", command], capture_output=True, check=False).returncode


def test_persist_edits_replace_and_never_duplicate(tmp_path: Path) -> None:
    (tmp_path / "etc" / "mdadm").mkdir(parents=True)
    conf = tmp_path / "etc" / "mdadm" / "mdadm.conf"
    conf.write_text(
        f"HOMEHOST <system>\nARRAY /dev/md4 UUID={UUID}\nARRAY /dev/md/md3 UUID=aa:bb\n"
    )
    fstab = tmp_path / "etc" / "fstab"
    fstab.write_text(
        "# comment /opt\nUUID=abc / ext4 defaults 0 1\n/dev/md4\t/opt\text4\tdefaults\t0\t1\n"
    )
    steps = persist_steps(tmp_path)
    for name in ("mdadm.conf ARRAY line", "fstab line", "mount point"):
        step = steps[name]
        assert step.check is not None
        assert sh(step.check or "false") != 0, name
        assert sh(step.apply) == 0, name
        assert sh(step.check or "false") == 0, name
    after = (conf.read_text(), fstab.read_text())
    assert conf.read_text().splitlines() == [
        "HOMEHOST <system>", "ARRAY /dev/md/md3 UUID=aa:bb", f"ARRAY /dev/md/md4 metadata=1.2 UUID={UUID}",
    ]  # fmt: skip
    assert fstab.read_text().splitlines() == [
        "# comment /opt", "UUID=abc / ext4 defaults 0 1", f"UUID={FS_UUID} /opt ext4 defaults,nofail 0 2",
    ]  # fmt: skip
    assert (tmp_path / "opt").is_dir()
    for name in ("mdadm.conf ARRAY line", "fstab line"):
        assert sh(steps[name].apply) == 0
    assert (conf.read_text(), fstab.read_text()) == after


def test_initramfs_stamp_follows_mdadm_conf(tmp_path: Path) -> None:
    (tmp_path / "etc" / "mdadm").mkdir(parents=True)
    conf = tmp_path / "etc" / "mdadm" / "mdadm.conf"
    conf.write_text("ARRAY /dev/md/md4 UUID=x\n")
    check = persist_steps(tmp_path)["update-initramfs"].check or ""
    assert sh(check) != 0
    stamp = tmp_path / "var" / "lib" / "fleet" / "hybrid-raid.initramfs"
    stamp.parent.mkdir(parents=True)
    digest = subprocess.run(["sh", "-c", f"sha256sum < {conf}"], capture_output=True, text=True)
    stamp.write_text(digest.stdout)
    assert sh(check) == 0
    conf.write_text("ARRAY /dev/md/md4 UUID=y\n")
    assert sh(check) != 0


def test_identify_refuses_when_mkfs_left_no_filesystem() -> None:
    host = ScriptedHost(
        {
            "for d in ": examine_loop({"/dev/sda1": EXAMINE_MD4, "/dev/sdb1": EXAMINE_MD4}),
            "cat /proc/mdstat": "md4 : active raid1 sda1[0] sdb1[1]\n      10 blocks super 1.2 [2/2] [UU]\n",
            "blkid -p -o export /dev/md4": (2, ""),
        }
    )
    ctx = context(host, facts=our_facts())
    ctx.params = {"require_filesystem": True}
    with pytest.raises(PayloadError, match="/dev/md4 carries no ext4 filesystem after mkfs"):
        hybrid_raid.locate(ctx)


def test_live_mode_refuses_a_mount_point_with_files() -> None:
    host = ScriptedHost(
        {"hostname": "ns1.ip-203-0-113.eu\n", "for t in ": "", "[ ! -d /opt ]": (1, "")}
    )
    with pytest.raises(PayloadError, match="/opt is not empty"):
        hybrid_raid.gather(StageContext(HOST, {"mode": "live"}, {}, {}, "disk", host))


def test_mount_point_step_never_hides_files(tmp_path: Path) -> None:
    step = persist_steps(tmp_path)["mount point"]
    assert sh(step.check or "false") != 0
    assert sh(step.apply) == 0 and sh(step.check or "false") == 0
    (tmp_path / "opt" / "old-file").write_text("x")
    assert sh(step.check or "false") != 0
    assert sh(step.apply) != 0


def test_empty_lists_render_to_loops_that_do_nothing() -> None:
    plan = builtin_plan("hybrid-raid", {})
    stage = next(s for s in plan.stages if s.name == "wipe")
    rendered, _ = render_stage(plan, stage, with_facts({}, {**our_facts(), "wipe_disks": []}))
    assert rendered is not None
    wipe = rendered.steps[0]
    assert wipe.check is not None and "for d in ; do" in wipe.check
    assert sh(wipe.check) == 0  # nothing to wipe: converged, the apply never runs


# -- the shell checks, against stand-in tools (scripts printing recorded outputs) --------------


def rendered_steps(facts: dict[str, Any]) -> dict[str, Any]:
    plan = builtin_plan("hybrid-raid", {})
    out = {}
    for stage in plan.stages:
        if stage.kind == "ssh":
            rendered, _ = render_stage(plan, stage, with_facts({"mode": "rescue"}, facts))
            assert rendered is not None
            out.update({s.key: s for s in rendered.steps})
    return out


def tool(bin_dir: Path, name: str, script: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def sh_with(bin_dir: Path, command: str) -> int:
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    return subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True).returncode


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    return bin_dir


def test_array_exists_check_wants_one_array_with_our_name_level_and_count(fake_bin: Path) -> None:
    check = rendered_steps(located())["array/create"].check
    examine = fake_bin / "examine"
    tool(
        fake_bin, "mdadm", f'[ "$1 $2" = "--examine --export" ] && cat {examine}.$(basename "$3")\n'
    )

    def members(sda: str, sdb: str) -> int:
        (fake_bin / "examine.sda1").write_text(sda)
        (fake_bin / "examine.sdb1").write_text(sdb)
        return sh_with(fake_bin, check)

    marked = EXAMINE_MD4.replace("MD_NAME=md4", f"MD_NAME={located()['array_name']}")
    assert members(marked, marked) == 0
    assert members(EXAMINE_MD4, EXAMINE_MD4) != 0  # named md4 but not fleet's: not ours
    assert members(EXAMINE_MD4.replace("MD_NAME=md4", "MD_NAME=ns1:md4"), marked) != 0
    recorded = {**located(), "existing_uuid": UUID}  # recorded in the store for this host
    assert sh_with(fake_bin, rendered_steps(recorded)["array/create"].check) == 0
    assert members(marked, marked.replace(UUID, "ff:ff:ff:ff")) != 0
    assert members(marked, marked.replace("raid1", "raid0")) != 0
    assert members(marked, marked.replace("MD_DEVICES=2", "MD_DEVICES=3")) != 0
    assert members(marked, EXAMINE_MD4.replace("MD_NAME=md4", "MD_NAME=rescue:0")) != 0
    assert members(marked, "") != 0


def test_layout_check_wants_one_raid_partition_on_gpt(fake_bin: Path) -> None:
    step = rendered_steps(located())["partition/partition"]
    ours = "BYT;\n/dev/sdX:8388608s:scsi:512:512:gpt:ATA HGST HUS726040AL:;\n1:2048s:8386559s:8384512s::primary:raid;\n"
    stub = ours.replace(
        "1:2048s:8386559s:8384512s::primary:raid;",
        "1:2048s:1048575s:1046528s:fat32:primary:boot, esp;",
    )
    two = ours + "2:8386560s:8388574s:2015s::primary:;\n"

    def layout(text: str) -> int:
        (fake_bin / "parted.out").write_text(text)
        tool(fake_bin, "parted", f"cat {fake_bin}/parted.out\n")
        return sh_with(fake_bin, step.check)

    assert layout(ours) == 0
    assert layout(ours.replace(":gpt:", ":msdos:")) != 0
    assert layout(stub) != 0 and layout(two) != 0
    assert layout("BYT;\n/dev/sdX:8388608s:scsi:512:512:unknown:ATA HGST:;\n") != 0


def test_destructive_steps_first_prove_each_disk_serial(fake_bin: Path) -> None:
    step = rendered_steps(located())["partition/partition"]
    identity = step.apply.split("\n", 1)[0]  # the serial check, before anything is wiped
    assert identity.startswith("set -e; for pair in /dev/sda=K4GH1AAA /dev/sdb=K4GH2BBB; do")
    tool(
        fake_bin,
        "lsblk",
        'case "$3" in /dev/sda) echo "K4GH1AAA ";; /dev/sdb) echo K4GH2BBB;; esac\n',
    )
    assert sh_with(fake_bin, identity) == 0
    tool(
        fake_bin, "lsblk", 'case "$3" in /dev/sda) echo K4GH2BBB;; /dev/sdb) echo K4GH1AAA;; esac\n'
    )
    assert sh_with(fake_bin, identity) != 0  # the disks swapped names since the guard looked


def test_filesystem_check_wants_type_and_label(fake_bin: Path) -> None:
    check = rendered_steps(located())["filesystem/mkfs"].check
    for output, code in [
        (f"UUID={FS_UUID}\nLABEL=data\nTYPE=ext4\n", 0),
        (f"UUID={FS_UUID}\nLABEL=other\nTYPE=ext4\n", 1),
        (f"UUID={FS_UUID}\nLABEL=data\nTYPE=xfs\n", 1),
    ]:
        tool(fake_bin, "blkid", f"printf '{output}'\n")
        assert (sh_with(fake_bin, check) != 0) == bool(code), output
    tool(fake_bin, "blkid", "exit 2\n")
    assert sh_with(fake_bin, check) != 0


def test_mkfs_never_formats_over_a_filesystem_of_an_existing_array(fake_bin: Path) -> None:
    tool(fake_bin, "blkid", "printf 'TYPE=xfs\\n'\n")
    tool(fake_bin, "mkfs.ext4", f"touch {fake_bin}/formatted\n")
    existing = rendered_steps({**located(), "format_over": "no"})["filesystem/mkfs"]
    assert sh_with(fake_bin, existing.apply) != 0 and not (fake_bin / "formatted").exists()
    fresh = rendered_steps(located())["filesystem/mkfs"]
    assert sh_with(fake_bin, fresh.apply) == 0 and (fake_bin / "formatted").exists()


def test_a_run_from_an_approved_preview_refuses_other_decisions() -> None:
    host = rescue_host(hdd("sda", "K4GH1AAA"), hdd("sdb", "K4GH2BBB"))
    facts = hybrid_raid.gather(context(host))
    digest = hybrid_raid.select(context(host, facts=facts))["digest"]
    approved = context(host, facts=facts)
    approved.approved = digest
    assert hybrid_raid.select(approved)["digest"] == digest
    approved.approved = "0123456789ab"
    with pytest.raises(PayloadError, match="the disks differ from the approved preview"):
        hybrid_raid.select(approved)
    approved.approved = ""
    with pytest.raises(PayloadError, match="the approved preview refused this host"):
        hybrid_raid.select(approved)
    wiped = context(host, facts=facts, wipe=["K4GH1AAA"])  # another decision: another digest
    assert hybrid_raid.select(wiped)["digest"] == digest  # blank disks: wipe destroys nothing


def test_locate_records_the_array_as_fleets_own() -> None:
    mdstat = "md127 : active raid1 sdb1[1] sda1[0]\n      3906885440 blocks super 1.2 [2/2] [UU]\n"
    host = ScriptedHost(
        {
            "for d in ": examine_loop({"/dev/sda1": EXAMINE_MD4, "/dev/sdb1": EXAMINE_MD4}),
            "cat /proc/mdstat": mdstat,
            "blkid -p -o export /dev/md127": f"UUID={FS_UUID}\nLABEL=data\nTYPE=ext4\n",
        }
    )
    recorded: list[OwnedArray] = []
    ctx = context(host, facts=our_facts())
    ctx.record, ctx.run_id = recorded.append, "r42"
    hybrid_raid.locate(ctx)
    (array,) = recorded
    assert (array.uuid, array.serials, array.fs_uuid, array.run_id) == (
        UUID, ("K4GH1AAA", "K4GH2BBB"), FS_UUID, "r42")  # fmt: skip
    assert array.name.startswith("fleet-") and array.name.endswith(":md4")
    assert array.level == "raid1" and array.host == "hyb-1"


def test_mdadm_conf_loses_the_lines_of_arrays_the_wipe_destroyed(tmp_path: Path) -> None:
    (tmp_path / "etc" / "mdadm").mkdir(parents=True)
    conf = tmp_path / "etc" / "mdadm" / "mdadm.conf"
    seed = "ARRAY /dev/md4 UUID=7d45838b:7886c766:5802452c:653f8cca"
    conf.write_text(f"HOMEHOST <system>\n{seed}\nARRAY /dev/md/md3 UUID=aa:bb\n")
    plan = builtin_plan("hybrid-raid", {"mode": "live"})
    stage = next(s for s in plan.stages if s.name == "persist")
    facts = {**located(), "root": str(tmp_path), "target_dir": f"{tmp_path}/opt",
             "wiped_arrays": ["7d45838b:7886c766:5802452c:653f8cca"]}  # fmt: skip
    rendered, _ = render_stage(plan, stage, with_facts({"mode": "live"}, facts))
    assert rendered is not None
    step = next(s for s in rendered.steps if s.name == "mdadm.conf ARRAY line")
    assert sh(step.check or "false") != 0
    assert sh(step.apply) == 0 and sh(step.check or "false") == 0
    assert conf.read_text().splitlines() == [
        "HOMEHOST <system>", "ARRAY /dev/md/md3 UUID=aa:bb",
        f"ARRAY /dev/md/md4 metadata=1.2 UUID={UUID}",
    ]  # fmt: skip
