"""Two operators, two processes, two configurations, one PostgreSQL store: the sandbox's sshd
hosts and the ``fleet`` command line, as a team would use them.

Alice migrates the store and starts a rollout whose first step holds every host until the test
lets it go. Bob, with his own fleet.toml (another state directory and operator name), sees her
leases, and his rollout on overlapping hosts is refused those she holds. Bob halts: Alice's
rollout hears it while her first steps are still running (the journal says so before any of
them ends), so no host starts her second stage, and her run halts naming Bob. ``fleet audit``
shows both of them.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.clock import parse_utc
from fleet.sandbox.sandbox import Sandbox
from fleet.store import open_store
from fleet.store.base import Event, Store
from tests.conftest import FleetCli
from tests.pgserver import PgServer
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

ALICE_HOSTS = [f"srv-{i:03d}" for i in range(21, 25)]  # srv-021..srv-024
BOB_HOSTS = [f"srv-{i:03d}" for i in range(23, 26)]  # overlaps on srv-023, srv-024

HOLD = """
name: hold
vars: {{tid: {tid}}}
stages:
  - name: hold
    steps:
      - name: wait for the test
        apply: >-
          mkdir -p "$HOME"/{{{{ tid }}}} && touch "$HOME"/{{{{ tid }}}}/started &&
          for i in $(seq 1200); do [ -e "$HOME"/{{{{ tid }}}}/go ] && exit 0; sleep 0.1; done;
          exit 1
  - name: after
    steps:
      - name: mark
        apply: touch "$HOME"/{{{{ tid }}}}/after
"""

QUICK = """
name: quick
vars: {{tid: {tid}}}
stages:
  - name: mark
    steps:
      - name: touch
        apply: mkdir -p "$HOME"/{{{{ tid }}}} && touch "$HOME"/{{{{ tid }}}}/bob
"""


def operator(tmp_path: Path, sandbox: Sandbox, postgres: PgServer, url: str, name: str) -> FleetCli:
    """A fleet CLI with its own state directory and fleet.toml: the store, and who it is."""
    config = tmp_path / f"{name}.toml"
    config.write_text(
        f'store = "{url}"\nstore_password_file = "{postgres.password_file}"\n'
        f'operator = "{name}"\n\n' + sandbox.config_path.read_text()
    )
    return FleetCli(tmp_path / f"{name}-state", config)


@pytest.fixture
def store_url(postgres: PgServer) -> str:
    return postgres.database()


@pytest.fixture
def views() -> Iterator[list[Store]]:
    """The test's own views of the store (opened once it exists), closed at the end."""
    opened: list[Store] = []
    yield opened
    for store in opened:
        store.close()


def test_two_operators_share_leases_a_halt_and_the_audit_trail(
    sandbox: Sandbox,
    postgres: PgServer,
    store_url: str,
    views: list[Store],
    tmp_path: Path,
) -> None:
    alice = operator(tmp_path, sandbox, postgres, store_url, "alice")
    bob = operator(tmp_path, sandbox, postgres, store_url, "bob")
    assert sandbox.hosts is not None
    homes = {name: sandbox.hosts.home_dir(name, "disk") for name in ALICE_HOSTS + BOB_HOSTS}

    # an empty database: refused until someone migrates it
    refused = bob("status", check=1)
    assert "no fleet schema in this database" in refused.stderr
    assert "fleet store migrate" in refused.stderr
    migrated = alice("store", "migrate", check=0)
    assert "schema 0 -> " in migrated.stdout and "applied 0001_base" in migrated.stdout
    assert "up to date" in bob("store", "migrate", check=0).stdout

    store = open_store(store_url, password_file=postgres.password_file)
    views.append(store)

    # Alice's rollout holds her four hosts in its first stage
    tid = "t" + secrets.token_hex(4)
    hold = tmp_path / "hold.yaml"
    hold.write_text(HOLD.format(tid=tid))
    common = ["--batches", "100%", "--concurrency", "4", "--output", "json"]
    rollout = alice.popen("rollout", str(hold), "--limit", ",".join(ALICE_HOSTS), *common)
    try:
        wait_for(
            "alice's hosts to start",
            lambda: all((homes[h] / tid / "started").exists() for h in ALICE_HOSTS),
            120,
        )
        (run,) = store.list_runs()

        # Bob sees her leases, and his rollout cannot take the hosts she holds
        leases = json.loads(bob("leases", "list", "--json", check=0).stdout)
        assert sorted(lease["host"] for lease in leases) == ALICE_HOSTS
        assert all(run.id in lease["owner"] for lease in leases)
        quick = tmp_path / "quick.yaml"
        quick.write_text(QUICK.format(tid=tid))
        bobs = bob("rollout", str(quick), "--limit", ",".join(BOB_HOSTS), "--batches", "100%")
        assert bobs.returncode == 4, bobs.stderr
        assert (
            "srv-023: skipped (lease)" in bobs.stderr and "srv-024: skipped (lease)" in bobs.stderr
        )
        assert f"run {run.id}" in bobs.stderr  # the holder is named
        assert (homes["srv-025"] / tid / "bob").exists()
        assert not any((homes[h] / tid / "bob").exists() for h in ("srv-023", "srv-024"))

        # Bob halts: Alice's rollout hears it while her steps still hold the hosts
        bob("halt", "--reason", "storage alerts in gra3", check=0)
        wait_for("alice's rollout to hear the halt", lambda: _kinds(store, run.id, "run.halt"), 120)
        for name in ALICE_HOSTS:
            (homes[name] / tid / "go").touch()
        out, err = rollout.communicate(timeout=180)
    finally:
        if rollout.poll() is None:
            rollout.kill()
            rollout.communicate(timeout=30)

    assert rollout.returncode == 2, err
    events = store.events(run.id)
    (heard,) = [e for e in events if e.kind == "run.halt"]
    assert heard.excerpt and heard.excerpt.startswith("global halt by bob (")
    assert heard.excerpt.endswith("): storage alerts in gra3")
    holds_ended = [e for e in events if e.kind == "step.end" and e.stage == "hold"]
    assert len(holds_ended) == len(ALICE_HOSTS)
    assert all(
        heard.seq is not None and e.seq is not None and heard.seq < e.seq for e in holds_ended
    )
    assert not any((homes[h] / tid / "after").exists() for h in ALICE_HOSTS)
    assert store.get_run(run.id).state == "halted"
    assert "global halt by bob" in (store.get_run(run.id).reason or "")
    streamed = [json.loads(line)["kind"] for line in out.splitlines() if line.startswith("{")]
    assert "run.halt" in streamed
    latency = heard.at - parse_utc(heard.data["set_at"])
    print(f"alice's rollout heard bob's halt after {latency.total_seconds():.3f} s")

    # the audit trail: both of them, each from their own command
    trail = json.loads(alice("audit", "--json", check=0).stdout)
    who_did = [(entry["operator"], entry["action"]) for entry in trail]
    assert ("alice", "store.migrate") in who_did
    assert ("alice", "run.start") in who_did and ("bob", "run.start") in who_did
    assert ("bob", "halt.set") in who_did
    assert all(
        entry["operator"] == "bob"
        for entry in json.loads(bob("audit", "--who", "bob", "--json", check=0).stdout)
    )
    table = bob("audit", check=0).stdout
    assert "alice" in table and "bob" in table and "halt.set" in table
    bob("unhalt", check=0)


def _kinds(store: Store, run_id: str, kind: str) -> list[Event]:
    return [e for e in store.events(run_id) if e.kind == kind]
