"""The operators' controls on every backend: quarantine, the global halt and how fast a waiting
rollout hears of it, pinned host keys."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from fleet.store.base import HaltState, Store
from tests.integration.store.backends import T0, Backend, SyncedClock, assert_utc

pytestmark = pytest.mark.integration


def test_quarantine_upsert_list_and_clear(store: Store, clock: SyncedClock) -> None:
    store.quarantine("ns2", "r-1", "mdadm failed twice")
    store.quarantine("ns1", "r-1", "reboot task failed")
    clock.advance(10)
    store.quarantine("ns2", "r-2", "still failing")
    entries = store.quarantined()
    assert [(e.host, e.run_id, e.reason) for e in entries] == [
        ("ns1", "r-1", "reboot task failed"),
        ("ns2", "r-2", "still failing"),
    ]
    assert entries[1].at == T0 + timedelta(seconds=10)
    assert_utc(entries[0].at)
    assert store.clear_quarantine("ns2", "carol") is True
    assert [e.host for e in store.quarantined()] == ["ns1"]
    (audit,) = store.events("-")
    assert (audit.kind, audit.host) == ("quarantine.clear", "ns2")
    assert audit.data == {"who": "carol", "run_id": "r-2", "reason": "still failing"}
    assert store.clear_quarantine("ns2", "carol") is False
    assert len(store.events("-")) == 1


# --------------------------------------------------------------------------------- halt


def test_halt_set_seen_elsewhere_and_cleared(
    store: Store, other: Store, clock: SyncedClock
) -> None:
    assert store.halt_state() is None
    store.set_halt("carol", "bad kernel on canary")
    state = other.halt_state()
    assert state is not None
    assert (state.who, state.reason, state.at) == ("carol", "bad kernel on canary", T0)
    assert_utc(state.at)
    clock.advance(5)
    store.set_halt("dave", "second thoughts")
    assert other.halt_state() == HaltState("dave", "second thoughts", T0 + timedelta(seconds=5))
    assert other.clear_halt("erin") is True
    assert store.halt_state() is None
    assert other.clear_halt("erin") is False
    kinds = [(event.kind, event.data["who"]) for event in store.events("-")]
    assert kinds == [("halt.set", "carol"), ("halt.set", "dave"), ("halt.clear", "erin")]


def test_wait_halt_returns_a_set_halt_at_once_and_none_after_the_timeout(store: Store) -> None:
    assert store.wait_halt(0.3) is None
    store.set_halt("carol", "stop")
    state = store.wait_halt(3600)  # already set: no waiting at all
    assert state is not None and state.reason == "stop"


def test_a_waiting_store_hears_a_halt_set_by_another(store: Store, other: Store) -> None:
    """The waiter is woken by the halt, not by its timeout: with a 10-minute timeout, it
    returns the halt the other store object set while it waited."""
    heard: list[HaltState | None] = []
    waiting = threading.Event()

    def wait() -> None:
        waiting.set()
        heard.append(store.wait_halt(600))

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert waiting.wait(timeout=30)
    time.sleep(0.3)  # let it block
    other.set_halt("carol", "storage alerts")
    waiter.join(timeout=120)
    assert not waiter.is_alive(), "wait_halt did not return"
    assert heard and heard[0] is not None and heard[0].reason == "storage alerts"


def test_wait_halt_from_several_threads(store: Store, other: Store) -> None:
    results: list[HaltState | None] = []
    lock = threading.Lock()

    def wait() -> None:
        state = store.wait_halt(600)
        with lock:
            results.append(state)

    waiters = [threading.Thread(target=wait) for _ in range(4)]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.3)
    other.set_halt("carol", "all of you")
    for waiter in waiters:
        waiter.join(timeout=120)
    assert [state.reason if state else None for state in results] == ["all of you"] * 4


# ----------------------------------------------------------------------------- host keys


def test_pin_and_read_keys(store: Store, clock: SyncedClock) -> None:
    assert store.pinned_key("ns1", "installed") is None
    store.pin_key("ns1", "installed", "ssh-ed25519", "AAAA1")
    store.pin_key("ns1", "rescue", "ssh-rsa", "BBBB1")
    assert store.pinned_key("ns1", "installed") == ("ssh-ed25519", "AAAA1")
    assert store.pinned_key("ns1", "rescue") == ("ssh-rsa", "BBBB1")
    assert store.pinned_key("ns2", "installed") is None

    def pinned_at() -> object:
        (key,) = [k for k in store.pinned_keys("ns1") if k.role == "installed"]
        return key.pinned_at

    clock.advance(60)
    store.pin_key("ns1", "installed", "ssh-ed25519", "AAAA1")
    assert pinned_at() == T0  # same key: first pin kept
    store.pin_key("ns1", "installed", "ssh-ed25519", "AAAA2")
    assert store.pinned_key("ns1", "installed") == ("ssh-ed25519", "AAAA2")
    assert pinned_at() == T0 + timedelta(seconds=60)


def test_list_and_forget_keys_audited(store: Store, backend: Backend) -> None:
    store.pin_key("ns2", "installed", "ssh-ed25519", "C")
    store.pin_key("ns1", "rescue", "ssh-rsa", "B")
    store.pin_key("ns1", "installed", "ssh-ed25519", "A")
    assert [(k.host, k.role) for k in store.pinned_keys()] == [
        ("ns1", "installed"),
        ("ns1", "rescue"),
        ("ns2", "installed"),
    ]
    assert [k.role for k in store.pinned_keys("ns1")] == ["installed", "rescue"]
    assert store.forget_key("ns1", "rescue", "carol", "reinstalled by hand") is True
    assert store.forget_key("ns1", "rescue", "carol", "again") is False
    assert store.pinned_key("ns1", "rescue") is None
    (event,) = store.events("-")
    assert (event.kind, event.host, event.data["reason"]) == (
        "hostkey.forget",
        "ns1",
        "reinstalled by hand",
    )
    (entry,) = [e for e in store.audit_trail() if e.action == "hostkey.forget"]
    assert (entry.host, entry.detail["role"]) == ("ns1", "rescue")
    assert backend.raw("SELECT count(*) FROM host_keys") == [(2,)]
