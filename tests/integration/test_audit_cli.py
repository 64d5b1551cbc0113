"""``fleet audit`` and ``fleet store`` from the command line, on a SQLite store: who halted,
started, resumed, aborted and approved a reinstall, by operator name and machine; an older store
file reported, previewed and upgraded."""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
from pathlib import Path

import pytest

from fleet.sandbox.sandbox import Sandbox
from fleet.store import migrations
from tests.conftest import FleetCli

pytestmark = pytest.mark.integration

PLAN = """
name: note
stages:
  - name: note
    steps:
      - name: write
        apply: mkdir -p "$HOME"/{tid} && touch "$HOME"/{tid}/done
"""
REINSTALL = """
name: rebuild
stages:
  - name: wipe
    kind: reinstall
    params: {os: debian12_64, layout: ['/:ext4:0']}
"""


def as_operator(fleet: FleetCli, sandbox: Sandbox, tmp_path: Path, name: str) -> FleetCli:
    """The same state directory, with a fleet.toml naming the operator."""
    config = tmp_path / f"{name}.toml"
    config.write_text(f'operator = "{name}"\n\n' + sandbox.config_path.read_text())
    return FleetCli(fleet.state, config)


def run_id(stderr: str) -> str:
    found = re.search(r"run (r\d{8}-\d{6}-[0-9a-f]{4})", stderr)
    assert found, stderr
    return found.group(1)


def test_audit_shows_who_did_what_from_which_machine(
    fleet: FleetCli, sandbox: Sandbox, tmp_path: Path
) -> None:
    alice = as_operator(fleet, sandbox, tmp_path, "alice")
    bob = as_operator(fleet, sandbox, tmp_path, "bob")
    plan, rebuild = tmp_path / "note.yaml", tmp_path / "rebuild.yaml"
    plan.write_text(PLAN.format(tid="t" + secrets.token_hex(4)))
    rebuild.write_text(REINSTALL)

    alice("halt", "--reason", "window closed", check=0)
    halted = alice("rollout", str(plan), "--limit", "srv-019", check=2)
    first = run_id(halted.stderr)
    approved = alice(
        "rollout", str(rebuild), "--limit", "srv-027", "--approve-reinstall", "all", check=2
    )
    second = run_id(approved.stderr)
    bob("unhalt", check=0)
    bob("resume", first, check=0)
    bob("abort", second, "--reason", "not this week", check=0)

    trail = json.loads(fleet("audit", "--json", check=0).stdout)
    assert [(e["operator"], e["action"], e["run"]) for e in trail] == [
        ("alice", "halt.set", None),
        ("alice", "run.start", first),
        ("alice", "run.start", second),
        ("alice", "reinstall.approve", second),
        ("bob", "halt.clear", None),
        ("bob", "run.resume", first),
        ("bob", "run.abort", second),
    ]
    assert trail[3]["detail"] == {"hosts": ["srv-027"]}
    assert trail[6]["detail"] == {"was": "halted", "reason": "not this week"}
    assert all(e["user"] and e["machine"] and e["pid"] for e in trail)

    table = fleet("audit", "--who", "bob", check=0).stdout.splitlines()
    assert table[0].split() == ["TIME", "(UTC)", "WHO", "FROM", "ACTION", "RUN", "HOST", "DETAIL"]
    assert [line.split()[4] for line in table[1:]] == ["halt.clear", "run.resume", "run.abort"]
    assert "reason=not this week" in table[3]
    assert len(json.loads(fleet("audit", "--since", "1h", "--json", check=0).stdout)) == 7
    none = fleet("audit", "--since", "2099-01-01", check=0)
    assert none.stdout.strip() == "no audit entries matching"
    bad = fleet("audit", "--since", "last tuesday", check=3)
    assert bad.stderr.startswith("error: --since 'last tuesday': expected a duration ago")


def test_an_older_store_file_is_reported_previewed_and_upgraded(fleet: FleetCli) -> None:
    fleet.state.mkdir(parents=True)
    path = fleet.state / "fleet.db"
    conn = sqlite3.connect(path)
    for migration in migrations.migrations("sqlite")[:2]:
        conn.executescript(migration.sql)
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    latest = migrations.latest("sqlite")
    after_2 = [m.name for m in migrations.migrations("sqlite")[2:]]

    info = json.loads(fleet("store", "info", "--json", check=0).stdout)
    assert info == {
        "store": str(path),
        "backend": "sqlite",
        "schema": 2,
        "fleet_schema": latest,
        "pending": after_2,
    }
    preview = fleet("store", "migrate", "--dry-run", check=0).stdout
    assert preview.splitlines() == [
        f"store {path}: schema 2, {len(after_2)} to go",
        *(f"  would apply {name}" for name in after_2),
    ]
    done = fleet("store", "migrate", check=0).stdout
    assert done.splitlines() == [
        f"store {path}: schema 2 -> {latest}",
        *(f"  applied {name}" for name in after_2),
    ]
    assert fleet("store", "migrate", check=0).stdout.strip().endswith("up to date")
    (entry,) = json.loads(fleet("audit", "--json", check=0).stdout)
    assert (entry["action"], entry["detail"]["applied"]) == ("store.migrate", after_2)


def test_a_store_newer_than_this_fleet_is_refused_in_one_line(fleet: FleetCli) -> None:
    fleet.state.mkdir(parents=True)
    conn = sqlite3.connect(fleet.state / "fleet.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    for command in (("status",), ("store", "migrate"), ("audit",)):
        refused = fleet(*command, check=1)
        lines = refused.stderr.splitlines()
        assert lines[0].endswith(
            f"store schema version 99 is newer than this fleet's ({migrations.latest('sqlite')})"
        )
        assert lines[1].startswith("hint: upgrade fleet") and len(lines) == 2
