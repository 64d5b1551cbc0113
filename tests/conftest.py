"""Fixtures shared by every test: no developer settings leak in, and a fleet CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import pgserver

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def postgres() -> Iterator[pgserver.PgServer]:
    """A real PostgreSQL server for the whole session (see tests/pgserver.py), stopped and
    removed at the end whatever happened. Missing PostgreSQL fails the tests under CI (its
    bootstrap installs it) and skips them elsewhere."""
    with pgserver.running() as server:
        if server is None:
            message = "PostgreSQL is not installed (scripts/bootstrap.sh installs it)"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        yield server


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Tests never read the developer's fleet.toml, FLEET_* or OVH_* settings."""
    for name in list(os.environ):
        if name.startswith(("FLEET_", "OVH_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FLEET_STATE", str(tmp_path / "state"))
    yield


class FleetCli:
    """Runs ``python -m fleet`` in a subprocess with a given state dir and config file."""

    def __init__(self, state: Path, config: Path | None) -> None:
        self.state = state
        self.config = config

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLEET_", "OVH_"))}
        env["FLEET_STATE"] = str(self.state)
        if self.config:
            env["FLEET_CONFIG"] = str(self.config)
        return env

    def __call__(
        self, *args: str, timeout: float = 300, check: int | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "fleet", *args],
            env=self.env(),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check is not None and proc.returncode != check:
            raise AssertionError(
                f"fleet {' '.join(args)} exited {proc.returncode}, expected {check}\n"
                f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
            )
        return proc

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "fleet", *args],
            env=self.env(),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
