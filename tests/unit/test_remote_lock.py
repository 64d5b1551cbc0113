"""The host-side step lock's pure parts: lock names, the records a probe prints, the markers a
wrapper prints instead of running a command (the scripts themselves run against real sshd hosts
in tests/integration/test_step_locks.py)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleet.stages.remote import (
    HELD,
    NO_LOCK,
    Record,
    fenced,
    lock_key,
    lock_trouble,
    probe,
    read_record,
)


def test_lock_names_are_file_safe_and_tell_steps_apart() -> None:
    a = lock_key("r20261125-101500-ab12", "srv-001", "disks/wipe sdb")
    b = lock_key("r20261125-101500-ab12", "srv-001", "disks/wipe sdc")
    assert a != b and a.startswith("r20261125-101500-ab12-")
    assert lock_key("r20261125-101500-ab12", "srv-002", "disks/wipe sdb") != a  # hosts too
    odd = lock_key("../etc/x y", "h", "s/t")
    assert "/" not in odd and " " not in odd


def test_records() -> None:
    assert read_record("fleet-record done 0 42\n") == Record("done", 0, 42)
    assert read_record("fleet-record done 3 42") == Record("done", 3, 42)
    assert Record("done", 3, 42).finished_ok is False
    assert Record("done", 0, 42).finished_ok is True
    assert read_record("fleet-record running - 42") == Record("running", None, 42)
    assert read_record("fleet-record running 42") is None  # not what the probe prints
    assert read_record("fleet-record none - -") == Record("none")
    assert read_record("something else") is None


def test_markers_are_told_from_a_commands_own_exit_codes() -> None:
    said = "fleet-lock: running\n"
    assert (
        lock_trouble(HELD, said) == "the step is still running on this host (an earlier execution)"
    )
    assert lock_trouble(HELD, "a command that exits 75 on its own\n") is None
    assert lock_trouble(NO_LOCK, "fleet-lock: unwritable") == (
        "the step's state cannot be written on the host"
    )
    assert lock_trouble(HELD, "fleet-lock: newer 9") == (
        "the step belongs to a newer holder on the host (token 9)"
    )
    assert lock_trouble(1, said) is None


def test_the_wrappers_are_valid_shell_with_the_command_intact() -> None:
    command = "echo 'a b' && exit 3 # a comment"
    script = fenced(command, "k", 7)
    assert script.endswith(command + "\n") and "FLEET_FENCE=7" in script
    shlex.split(script)  # balanced quotes
    assert "[ $_i -ge 30 ]" in probe("k", 29.2, 7)


# -- the scripts, run by real shells (bash and dash) in a scratch directory ------------------


@pytest.fixture(params=["bash", "dash"])
def shell(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[..., subprocess.CompletedProcess[str]]:
    if shutil.which(request.param) is None:
        pytest.skip(f"{request.param} is not installed")

    def run(script: str) -> subprocess.CompletedProcess[str]:
        # the state in this test's directory, never in this machine's /run or /dev/shm
        local = script.replace("if [ -w /run ];then _d=/run/fleet;", f"if true;then _d={tmp_path};")
        assert local != script
        return subprocess.run(
            [request.param, "-c", local], capture_output=True, text=True, timeout=60, check=False
        )

    return run


def state(tmp_path: Path, key: str = "k") -> list[str]:
    return (tmp_path / f"{key}.state").read_text().split()


def test_a_step_records_its_end_and_its_exit_inside_the_command(shell: Any, tmp_path: Path) -> None:
    done = shell(fenced('echo "out $FLEET_FENCE"; echo err >&2; exit 3', "k", 7))
    assert (done.returncode, done.stdout, done.stderr) == (3, "out 7\n", "err\n")
    assert state(tmp_path) == ["done", "3", "7", "-", "-"]
    assert shell(probe("k", 1, 8)).stdout.strip() == "fleet-record done 3 7"
    assert state(tmp_path)[:3] == ["done", "3", "8"]  # stamped with the new holder's token


def test_a_running_execution_holds_the_step(shell: Any, tmp_path: Path) -> None:
    me = os.getpid()
    with open(f"/proc/{me}/stat") as f:
        started = f.read().rsplit(")", 1)[1].split()[19]
    (tmp_path / "k.state").write_text(f"running - 7 {me} {started}\n")  # this test is alive
    held = shell(fenced("echo ran", "k", 7))
    assert held.returncode == HELD and "ran" not in held.stdout
    assert "still running on this host" in str(lock_trouble(held.returncode, held.stderr))
    waited = shell(probe("k", 1, 8))
    assert waited.returncode == HELD
    assert "on this host after 1s" in str(lock_trouble(waited.returncode, waited.stderr))
    (tmp_path / "k.state").write_text(f"running - 7 {me} 1\n")  # a pid since reused
    assert shell(probe("k", 1, 8)).stdout.strip() == "fleet-record running - 7"
    assert shell(fenced("echo ran", "k", 8)).stdout == "ran\n"


def test_a_newer_holder_refuses_an_older_ones_late_command(shell: Any, tmp_path: Path) -> None:
    assert shell(probe("k", 1, 9)).stdout.strip() == "fleet-record none - -"
    late = shell(fenced("echo ran", "k", 7))
    assert late.returncode == HELD and late.stdout == ""
    assert "newer holder on the host (token 9)" in str(lock_trouble(late.returncode, late.stderr))
    stale_probe = shell(probe("k", 1, 7))
    assert stale_probe.returncode == HELD
    assert state(tmp_path)[2] == "9"  # the older holder lowered nothing
    assert shell(fenced("echo ran", "k", 9)).stdout == "ran\n"
