"""How the command line reports errors: one line, a hint, the traceback only with --debug."""

from __future__ import annotations

import pytest

from fleet.cli.root import fail
from fleet.errors import LeaseHeld, UsageError


def failed(exc: Exception, debug: bool, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        fail(exc, debug)
    code = exited.value.code
    assert isinstance(code, int)
    return code, capsys.readouterr().err


def test_fleet_error_is_one_line_and_its_hint(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = failed(UsageError("no command given", hint="fleet run 'uptime'"), False, capsys)
    assert (code, err) == (3, "error: no command given\nhint: fleet run 'uptime'\n")


def test_exit_code_comes_from_the_error_class(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = failed(LeaseHeld("srv-1", "bob", "t0", "t1"), False, capsys)
    assert code == 4
    assert err.startswith("error: srv-1: lease held by bob since t0 until t1\nhint: ")


def test_unexpected_error_is_one_line_with_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = failed(RuntimeError("boom\nsecond line"), False, capsys)
    assert code == 1
    assert err.splitlines() == [
        "error: unexpected RuntimeError: boom",
        "hint: run again with --debug for the traceback, and report it",
    ]


def test_debug_adds_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        code, err = failed(exc, True, capsys)
    assert code == 1
    assert err.startswith("Traceback (most recent call last)")
    assert err.splitlines()[-1] == "error: unexpected RuntimeError: boom"
