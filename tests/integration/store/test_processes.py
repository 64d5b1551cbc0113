"""Several processes on one store, on every backend: a host lease excludes across processes
(the hold times written by the holders never overlap), and each sees the others' events."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.store.base import Store
from tests.integration.store.backends import Backend

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]

WORKER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from fleet.errors import LeaseHeld
    from fleet.store import open_store
    from fleet.store.base import Owner

    url, password, log, go, rounds = sys.argv[1:6]
    store = open_store(url, password_file=password or None)
    owner = Owner("worker", "here", os.getpid(), f"r-{os.getpid()}")
    go = Path(go)
    Path(f"{go}.{os.getpid()}").touch()  # ready: the store is open
    deadline = time.monotonic() + 45
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit(2)
        time.sleep(0.005)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    done = refused = 0
    while done < int(rounds):
        if time.monotonic() > deadline:
            sys.exit(3)
        try:
            lease = store.acquire_lease("ns1", owner, ttl=60)
        except LeaseHeld:
            refused += 1
            time.sleep(0.001)
            continue
        os.write(fd, f"start {lease.token} {os.getpid()} {time.monotonic_ns()}\\n".encode())
        time.sleep(0.002)
        os.write(fd, f"end {lease.token} {os.getpid()} {time.monotonic_ns()}\\n".encode())
        store.release_lease(lease)
        done += 1
        time.sleep(0.002)  # give the others a chance, so that holders alternate
    os.close(fd)
    store.close()
    print(refused)
    """
)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _password(backend: Backend) -> str:
    return str(backend.password_file or "")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
            if proc.stdout:
                proc.stdout.close()


def test_lease_excludes_across_processes(
    tmp_path: Path,
    backend: Backend,
    store: Store,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    workers, rounds = 4, 8
    log, go = tmp_path / "holds.log", tmp_path / "go"
    log.touch()
    for index in range(workers):
        err = (tmp_path / f"worker{index}.err").open("wb")
        args = [sys.executable, "-c", WORKER, backend.url, _password(backend)]
        args += [str(log), str(go), str(rounds)]
        processes.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, env=_env()))
        err.close()
    deadline = time.monotonic() + 60  # the workers open the store, then all race
    while len(list(tmp_path.glob("go.*"))) < workers and time.monotonic() < deadline:
        if any(proc.poll() is not None for proc in processes):
            break  # a worker died: its exit code and stderr are reported below
        time.sleep(0.01)
    go.touch()
    outputs = [proc.communicate(timeout=90)[0] for proc in processes]
    codes = [proc.returncode for proc in processes]
    errors = [(tmp_path / f"worker{i}.err").read_text() for i in range(workers)]
    assert codes == [0] * workers, errors

    lines = [line.split() for line in log.read_text().splitlines()]
    assert len(lines) == 2 * workers * rounds
    holds = []
    for begin, end in zip(lines[::2], lines[1::2], strict=True):
        assert (begin[0], end[0]) == ("start", "end")
        assert (begin[1], begin[2]) == (end[1], end[2])  # same token, same process
        holds.append((int(begin[3]), int(end[3]), int(begin[1])))
    holds.sort()
    for (_, prev_end, prev_token), (start, _, token) in itertools.pairwise(holds):
        assert start > prev_end, "two processes held the lease at once"
        assert token > prev_token
    assert len({line[2] for line in lines}) == workers
    assert sum(int(out) for out in outputs) > 0, "the workers never contended for the lease"


def test_processes_see_each_others_events(backend: Backend, store: Store) -> None:
    code = (
        "import sys; from datetime import datetime, UTC;"
        " from fleet.store import open_store; from fleet.store.base import Event;"
        " s = open_store(sys.argv[1], password_file=sys.argv[2] or None);"
        " [s.record(Event('r-p', 'step.start', datetime.now(UTC), host='ns1')) for _ in range(50)];"
        " s.close()"
    )
    args = [sys.executable, "-c", code, backend.url, _password(backend)]
    subprocess.run(args, check=True, timeout=60, env=_env())
    assert len(store.events("r-p")) == 50
