"""Real Celery workers for tests and the benchmark: ``fleet worker`` processes on a Redis of
their own, against a sandbox, each stopped by its PID whatever happens."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fleet.store import open_store
from fleet.store.base import Event

REPO = Path(__file__).resolve().parent.parent.parent


class Fleet:
    """Runs ``python -m fleet`` with a state directory, a config file and extra settings."""

    def __init__(self, state: Path, config: Path, settings: dict[str, str]) -> None:
        self.state, self.config = state, config
        self.settings = dict(settings)
        self.procs: list[subprocess.Popen[str]] = []

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLEET_", "OVH_"))}
        env.update(FLEET_STATE=str(self.state), FLEET_CONFIG=str(self.config), **self.settings)
        return env

    def __call__(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fleet", *args],
            env=self.env(),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def popen(self, *args: str, log: Path | None = None) -> subprocess.Popen[str]:
        out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleet", *args],
            env=self.env(),
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if log:
            out.close()  # type: ignore[union-attr]
        self.procs.append(proc)
        return proc

    def worker(self, queues: str, name: str, concurrency: int, log: Path) -> subprocess.Popen[str]:
        return self.popen(
            "worker", "--queues", queues, "--name", name, "-c", str(concurrency), log=log
        )

    def stop_all(self) -> None:
        """SIGTERM every process started here that still runs, then SIGKILL the slow ones."""
        live = [p for p in self.procs if p.poll() is None]
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in live:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def events(self, run_id: str | None = None) -> list[Event]:
        store = open_store(self.state / "fleet.db")
        try:
            if run_id is None:
                runs = store.list_runs(1)
                if not runs:
                    return []
                run_id = runs[0].id
            return store.events(run_id)
        finally:
            store.close()


def wait_for_workers(fleet: Fleet, names: list[str], timeout: float = 60) -> None:
    """Until every named worker answers the broker's ping."""
    code = (
        "import sys; from fleet.workers.celeryapp import make_app; "
        "app = make_app(sys.argv[1], 60); "
        "print(' '.join(app.control.ping(timeout=1.0) and "
        "[k for d in app.control.ping(timeout=1.0) for k in d]))"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = subprocess.run(
            [sys.executable, "-c", code, fleet.settings["FLEET_WORKERS_BROKER"]],
            capture_output=True,
            text=True,
            check=False,
            cwd=REPO,
        )
        if all(n in proc.stdout for n in names):
            return
        for p in fleet.procs:
            if p.poll() is not None:
                raise AssertionError(f"a worker exited with {p.returncode}")
        time.sleep(0.5)
    raise AssertionError(f"workers {names} did not answer in {timeout} s")
