"""The sandbox for integration tests: one per test session, fake OVH API + real sshd hosts.

Tests share its hosts, so each test writes only under its own subdirectory of a host's HOME
(``$HOME/<test id>``) and keeps its own state directory (store, journal, leases).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.sandbox.ovh_api import TaskTimings
from fleet.sandbox.sandbox import Sandbox
from tests.conftest import FleetCli

SANDBOX_SERVERS = 80  # 61-80: the crash and ownership tests
#: OVH task timings of the test sandboxes: a reboot takes half a second.
QUICK_TIMINGS = TaskTimings(
    reboot_init=0.1,
    reboot_todo=0.1,
    reboot_doing=0.3,
    reinstall_init=0.1,
    reinstall_todo=0.1,
    reinstall_doing=1.0,
    tick=0.02,
)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    box = Sandbox(
        tmp_path_factory.mktemp("sandbox"), servers=SANDBOX_SERVERS, timings=QUICK_TIMINGS, seed=7
    )
    box.start()
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
def fleet(sandbox: Sandbox, tmp_path: Path) -> FleetCli:
    """The fleet CLI against the session sandbox, with this test's own state directory."""
    return FleetCli(tmp_path / "state", sandbox.config_path)
