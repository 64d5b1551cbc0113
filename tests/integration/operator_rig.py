"""A sandbox of its own for the operator's-day tests, and what they share: settings written as
fleet.toml variants, plans, a TCP listener that never says a word (a server still booting),
and the sandbox's own counts of SSH connections and API requests."""

from __future__ import annotations

import secrets
import socket
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fleet.sandbox.sandbox import Sandbox
from fleet.store import open_store
from tests.conftest import FleetCli
from tests.integration.conftest import QUICK_TIMINGS
from tests.integration.test_strict_inputs import Contacts

#: srv-001..srv-009: three per datacenter (gra3, rbx8, sbg5); srv-003, -006, -009 not hybrid.
SERVERS = 9


@contextmanager
def own_sandbox(directory: Path) -> Iterator[Sandbox]:
    box = Sandbox(directory, servers=SERVERS, timings=QUICK_TIMINGS, seed=15)
    box.start()
    try:
        yield box
    finally:
        box.stop()


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def settings_file(box: Sandbox, path: Path, **changes: Any) -> Path:
    """The sandbox's fleet.toml with ``changes`` (``ovh__config_file="..."`` sets
    ``[ovh] config_file``; a value of None removes the key)."""
    data = tomllib.loads(box.config_path.read_text())
    for name, value in changes.items():
        section, _, key = name.partition("__")
        table = data.setdefault(section, {}) if key else data
        key = key or section
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for section, table in data.items():
        if isinstance(table, dict):
            lines.append(f"\n[{section}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def fleet_with(box: Sandbox, base: Path, **changes: Any) -> FleetCli:
    """The fleet CLI against ``box``, with its own state and the settings ``changes``."""
    base.mkdir(parents=True, exist_ok=True)
    config = settings_file(box, base / "fleet.toml", **changes) if changes else box.config_path
    return FleetCli(base / "state", config)


def plan_file(directory: Path, text: str, name: str = "plan.yaml") -> Path:
    path = directory / name
    path.write_text(text.replace("TID", "t" + secrets.token_hex(4)))
    return path


def runs(fleet: FleetCli) -> list[str]:
    if not (fleet.state / "fleet.db").exists():
        return []
    store = open_store(fleet.state / "fleet.db")
    try:
        return [r.id for r in store.list_runs(100)]
    finally:
        store.close()


@contextmanager
def silent_listener() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections and never sends a byte: an sshd that is
    not up yet, as a server still booting shows itself. Yields the port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        server.close()


__all__ = [
    "SERVERS",
    "Contacts",
    "fleet_with",
    "own_sandbox",
    "plan_file",
    "runs",
    "settings_file",
    "silent_listener",
]
