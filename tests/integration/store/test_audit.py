"""The audit trail on every backend: each operator action recorded with who (operator name, OS
user, machine, process) and when, in the transaction that performs it; read back by time and
person."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from fleet.store.base import Actor, Owner, Store
from tests.integration.store.backends import T0, Backend, SyncedClock, make_run

pytestmark = pytest.mark.integration

ALICE_OP = Actor("alice", "root", "laptop", 11)
BOB_OP = Actor("bob", "bob", "desk", 22)


@pytest.fixture
def alice(backend: Backend, clock: SyncedClock) -> Iterator[Store]:
    opened = backend.open(clock=clock, actor=ALICE_OP)
    yield opened
    opened.close()


@pytest.fixture
def bob(backend: Backend, clock: SyncedClock, alice: Store) -> Iterator[Store]:
    opened = backend.open(clock=clock, actor=BOB_OP)
    yield opened
    opened.close()


def test_every_audited_action_names_its_actor(alice: Store, bob: Store, clock: SyncedClock) -> None:
    alice.create_run(make_run("r-1"))
    alice.acquire_lease("ns1", Owner("root", "laptop", 11, "r-1"), ttl=60)
    clock.advance(1)
    bob.break_lease("ns1", "bob@desk", "laptop died")
    bob.audit("run.resume", run_id="r-1", detail={"note": "taking over"})
    alice.audit("reinstall.approve", run_id="r-1", detail={"hosts": ["ns1"]})
    clock.advance(1)
    bob.set_halt("bob@desk", "alerts")
    alice.clear_halt("root@laptop")
    alice.pin_key("ns1", "installed", "ssh-ed25519", "A")
    alice.forget_key("ns1", "installed", "root@laptop", "reinstalled")
    alice.quarantine("ns2", "r-1", "mdadm failed")
    bob.clear_quarantine("ns2", "bob@desk")
    trail = alice.audit_trail()
    assert [(e.action, e.actor.operator) for e in trail] == [
        ("run.start", "alice"),
        ("lease.break", "bob"),
        ("run.resume", "bob"),
        ("reinstall.approve", "alice"),
        ("halt.set", "bob"),
        ("halt.clear", "alice"),
        ("hostkey.forget", "alice"),
        ("quarantine.clear", "bob"),
    ]
    start, broke, resume = trail[:3]
    assert start.actor == ALICE_OP and start.run_id == "r-1" and start.at == T0
    assert start.detail == {"plan": "hybrid_raid", "hosts": 2}
    assert broke.actor == BOB_OP and (broke.run_id, broke.host) == ("r-1", "ns1")
    assert broke.detail["reason"] == "laptop died" and broke.at == T0 + timedelta(seconds=1)
    assert resume.detail == {"note": "taking over"}
    assert trail[4].run_id is None and trail[4].detail["reason"] == "alerts"
    assert [e.seq for e in trail] == sorted(e.seq for e in trail)


def test_explicit_audits_stay_out_of_the_journal(alice: Store) -> None:
    alice.create_run(make_run("r-1"))
    alice.audit("run.resume", run_id="r-1")
    assert alice.events("r-1") == []
    (resume,) = [e for e in alice.audit_trail() if e.action == "run.resume"]
    assert resume.detail == {}


def test_trail_filtered_by_person_and_time(alice: Store, bob: Store, clock: SyncedClock) -> None:
    alice.audit("run.resume", run_id="r-a")
    bob.audit("run.resume", run_id="r-b")
    clock.advance(3600)
    alice.set_halt("alice", "late")
    bob.clear_halt("bob")
    assert [e.run_id for e in bob.audit_trail(who="alice")] == ["r-a", None]
    assert [e.actor.operator for e in bob.audit_trail(who="root")] == ["alice", "alice"]
    assert [e.actor.operator for e in bob.audit_trail(who="bob@desk")] == ["bob", "bob"]
    assert bob.audit_trail(who="root@desk") == []
    later = bob.audit_trail(since=T0 + timedelta(minutes=30))
    assert [e.action for e in later] == ["halt.set", "halt.clear"]
    assert [e.action for e in bob.audit_trail(since=T0 + timedelta(hours=2))] == []
    assert [e.action for e in bob.audit_trail(since=T0, who="bob")] == ["run.resume", "halt.clear"]


def test_limit_keeps_the_newest_oldest_first(alice: Store, clock: SyncedClock) -> None:
    for index in range(5):
        alice.audit("run.resume", run_id=f"r-{index}")
        clock.advance(1)
    assert [e.run_id for e in alice.audit_trail(limit=2)] == ["r-3", "r-4"]
    assert [e.run_id for e in alice.audit_trail(limit=0)] == []


def test_actor_text_and_matching() -> None:
    assert str(ALICE_OP) == "alice (root@laptop)"
    assert str(Actor("bob", "bob", "desk")) == "bob@desk"
    assert all(ALICE_OP.matches(who) for who in ("alice", "root", "root@laptop"))
    assert not ALICE_OP.matches("laptop")
    me = Actor.current("night-shift")
    assert me.operator == "night-shift" and me.pid is not None
    assert Actor.current().operator == me.user
