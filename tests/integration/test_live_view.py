"""The live view, driven through a real pseudo-terminal: a rollout on the sandbox where two hosts
fail and the budget halts the run. A terminal emulator (pyte) replays what fleet wrote, so the
assertions are about what an operator's screen shows, frame by frame and at the end."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass, field, replace

import pyte  # type: ignore[import-untyped]
import pytest

from fleet.sandbox.sandbox import Sandbox
from tests.conftest import REPO, FleetCli
from tests.integration.halting import (
    FAILING,
    HOSTS,
    journal,
    last_run_id,
    outcomes,
    rollout_args,
    write_plan,
)

pytestmark = pytest.mark.integration

COLUMNS, LINES = 160, 60


@dataclass
class Screen:
    """A VT100 screen fed with everything the process writes; keeps every distinct frame."""

    screen: pyte.Screen = field(default_factory=lambda: pyte.Screen(COLUMNS, LINES))
    frames: list[str] = field(default_factory=list)
    raw: bytearray = field(default_factory=bytearray)

    def __post_init__(self) -> None:
        self.stream = pyte.ByteStream(self.screen)

    def feed(self, data: bytes) -> None:
        self.raw += data
        self.stream.feed(data)
        text = self.text()
        if not self.frames or self.frames[-1] != text:
            self.frames.append(text)

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def ever_showed(self, needle: str) -> bool:
        return any(needle in frame for frame in self.frames)


def run_in_pty(fleet: FleetCli, args: list[str], timeout: float = 120) -> tuple[int, Screen]:
    """Run ``python -m fleet ARGS`` on a pseudo-terminal of COLUMNS x LINES; return its exit
    code and the screen. The process is killed if it outlives ``timeout``."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
    env = {**fleet.env(), "TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": str(LINES)}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=REPO,
        close_fds=True,
    )
    os.close(slave)
    screen = Screen()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            screen.feed(data)
        return proc.wait(timeout=max(1.0, deadline - time.monotonic())), screen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(master)


@pytest.fixture(scope="module")
def halted_on_a_terminal(
    sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> tuple[FleetCli, int, Screen]:
    base = tmp_path_factory.mktemp("live")
    fleet = FleetCli(base / "state", sandbox.config_path)
    assert sandbox.api is not None
    quick = sandbox.api.model.timings
    # a reboot long enough that several frames show the wait, whatever the machine's load
    sandbox.api.set_timings(replace(quick, reboot_doing=2.0))
    try:
        code, screen = run_in_pty(fleet, rollout_args(write_plan(base)))
    finally:
        sandbox.api.set_timings(quick)
    return fleet, code, screen


def test_the_final_screen_tells_what_happened(
    halted_on_a_terminal: tuple[FleetCli, int, Screen],
) -> None:
    fleet, code, screen = halted_on_a_terminal
    final = screen.text()
    assert code == 2, final
    run_id = last_run_id(fleet)
    _, events = journal(fleet, run_id)
    ended = outcomes(events)
    assert {h for h, o in ended.items() if o == "failed"} == set(FAILING)
    assert f"fleet rollout {run_id}" in final
    assert "plan halting" in final
    assert "batch 2 of 2: 4 hosts, done" in final
    never = [h for h in HOSTS if h not in ended]
    stopped = sum(1 for o in ended.values() if o == "stopped")
    assert never or stopped, "the halt left hosts unfinished"
    done = sum(1 for o in ended.values() if o == "ok")
    assert f"done {done}" in final and "failed 2" in final
    if never:
        assert f"waiting {len(never)}" in final, "hosts the halt kept from starting"
    if stopped:
        assert f"stopped {stopped}" in final, "hosts the halt stopped between two steps"
    started = len(ended)  # every host that started has ended
    assert f"budget: 2 failed of {started} started; allowed at most 1 failed hosts; spent" in final
    for host in FAILING:
        assert f"{host} work/disk check (payload): work/disk check: apply exited 3" in final
        assert f'| fatal: no spare disk on {host} <b>&amp;</b> "quoted"' in final
        assert "| sdb: no partition table" in final
    assert "run halted: failure budget spent: 2 of" in final
    # then the summary lines and the hint, below the last frame
    assert f"run {run_id}: halted" in final
    assert f"hint: fix the cause, then `fleet resume {run_id}`" in final


def test_frames_showed_running_hosts_and_the_long_wait(
    halted_on_a_terminal: tuple[FleetCli, int, Screen],
) -> None:
    _, _, screen = halted_on_a_terminal
    assert len(screen.frames) > 3, "the view refreshed while the rollout ran"
    assert screen.ever_showed("batch 1 of 2: 1 host, running")
    assert screen.ever_showed("running stage prepare") or screen.ever_showed("running stage work")
    waits = [f for f in screen.frames if "(hardReboot)" in f or "SSH with the disk host key" in f]
    assert waits, "the canary's reboot wait was shown: what is awaited"
    assert any("srv-041" in f and "restart/reboot" in f for f in waits)
    assert screen.ever_showed("OVH API: "), "the rate limit's use, once the reboot was asked"
    assert screen.ever_showed("remaining ~"), "an estimate once a host ended"


def test_the_terminal_is_left_clean(halted_on_a_terminal: tuple[FleetCli, int, Screen]) -> None:
    _, _, screen = halted_on_a_terminal
    assert b"\x1b[?25h" in screen.raw[-4000:], "the cursor is shown again at the end"
    assert b"Traceback" not in screen.raw
