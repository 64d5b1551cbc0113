"""The host-side step lock's pure parts: lock names, the records a probe prints, the markers a
wrapper prints instead of running a command (the scripts themselves run against real sshd hosts
in tests/integration/test_step_locks.py)."""

from __future__ import annotations

import shlex

from fleet.stages.remote import (
    HELD,
    NO_FLOCK,
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
    assert a != b and a.startswith("r20261125-101500-ab12.srv-001.")
    odd = lock_key("r1", "../etc/x y", "s/t")
    assert "/" not in odd and " " not in odd


def test_records() -> None:
    assert read_record("fleet-record done 0 42\n") == Record("done", 0, "42")
    assert read_record("fleet-record done 3 42").finished_ok is False  # type: ignore[union-attr]
    assert read_record("fleet-record done 0 42").finished_ok is True  # type: ignore[union-attr]
    assert read_record("fleet-record running - 42") == Record("running", None, "42")
    assert read_record("fleet-record running 42") is None  # not what the probe prints
    assert read_record("fleet-record none") == Record("none")
    assert read_record("something else") is None


def test_markers_are_told_from_a_commands_own_exit_codes() -> None:
    said = "fleet-lock: step k is still running on this host\n"
    assert lock_trouble(HELD, said) == "step k is still running on this host"
    assert lock_trouble(HELD, "a command that exits 75 on its own\n") is None
    assert lock_trouble(NO_FLOCK, "fleet-lock: flock(1) is missing") == "flock(1) is missing"
    assert lock_trouble(1, said) is None


def test_the_wrappers_are_valid_shell_with_the_command_intact() -> None:
    command = "echo 'a b' && exit 3 # a comment"
    script = fenced(command, "k", 7)
    assert command + "\n)" in script and "FLEET_FENCE=7" in script
    shlex.split(script)  # balanced quotes
    assert "flock -w 30 9" in probe("k", 29.2)
