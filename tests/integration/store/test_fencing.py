"""The run's owner and fenced writes, on every backend: claims, takeovers, re-issued host leases,
writes refused once their tokens are stale (also among many concurrent writers, and while a
takeover races them), and a run lease broken, renewed and released."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from fleet.errors import LeaseLost, RunOwned
from fleet.store.base import Event, Fence, Owner, RunRecord, Store
from tests.integration.store.backends import T0, SyncedClock

pytestmark = pytest.mark.integration

FIRST = Owner("alice", "laptop", 101, "r-1", 1000.25, "aaaa")
SECOND = Owner("alice", "laptop", 102, "r-1", 2000.5, "bbbb")


@pytest.fixture
def run_store(store: Store) -> Store:
    """The store with run r-1, created by FIRST and never claimed."""
    store.create_run(run("r-1"))
    return store


def run(run_id: str, owner: Owner = FIRST) -> RunRecord:
    return RunRecord(run_id, "p", "p.yaml", "h", ("ns1", "ns2"), {}, owner)


def event(kind: str, host: str | None = None) -> Event:
    return Event("r-1", kind, T0, host=host)


def test_a_claim_gives_the_run_an_owner_and_a_token(run_store: Store) -> None:
    store = run_store
    assert store.get_run("r-1").lease is None
    lease = store.claim_run("r-1", FIRST, 60, replacing=None, why="new")
    record = store.get_run("r-1")
    assert record.lease == lease and record.owner == FIRST
    assert lease.expires_at == T0 + timedelta(seconds=60)
    assert [e.kind for e in store.events("r-1")] == []  # its creator claiming: no takeover


def test_a_claim_on_a_changed_token_is_refused_naming_the_owner(
    run_store: Store, other: Store
) -> None:
    first = run_store.claim_run("r-1", FIRST, 60, replacing=None, why="new")
    with pytest.raises(RunOwned, match="pid 101"):
        other.claim_run("r-1", SECOND, 60, replacing=None, why="stale read")
    with pytest.raises(RunOwned):
        other.claim_run("r-1", SECOND, 60, replacing=first.token + 1, why="forged")
    assert other.get_run("r-1").lease == first


def test_a_claim_of_an_unknown_run_is_refused(run_store: Store) -> None:
    with pytest.raises(Exception, match="no run 'r-9'"):
        run_store.claim_run("r-9", FIRST, 60, replacing=None, why="new")


def test_a_takeover_reissues_host_leases_and_is_audited(run_store: Store, other: Store) -> None:
    store = run_store
    first = store.claim_run("r-1", FIRST, 60, replacing=None, why="new")
    held = store.acquire_lease("ns1", FIRST, 60, fence=Fence("r-1", first.token))
    other_run = store.acquire_lease("ns2", Owner("bob", "desk", 7, "r-9"), 60)
    second = other.claim_run("r-1", SECOND, 60, replacing=first.token, why="pid 101 is gone")
    assert second.token > held.token > first.token
    leases = {le.host: le for le in store.list_leases()}
    assert leases["ns1"].owner == SECOND and leases["ns1"].token > second.token
    assert leases["ns2"] == other_run  # another run's lease is left alone
    (audit,) = store.events("r-1")
    assert audit.kind == "run.takeover"
    assert audit.data["from"] == str(FIRST) and audit.data["hosts"] == ["ns1"]
    assert audit.data["why"] == "pid 101 is gone" and audit.data["token"] == second.token
    assert [e.action for e in store.audit_trail()] == ["run.start", "run.takeover"]


def test_stale_writes_are_refused_and_live_ones_pass(run_store: Store, other: Store) -> None:
    store = run_store
    first = store.claim_run("r-1", FIRST, 60, replacing=None, why="new")
    ns1 = store.acquire_lease("ns1", FIRST, 60, fence=Fence("r-1", first.token))
    old_run, old_host = Fence("r-1", first.token), Fence("r-1", first.token, "ns1", ns1.token)
    store.record(event("step.start", "ns1"), old_host)
    store.set_run_state("r-1", "running", fence=old_run)
    second = other.claim_run("r-1", SECOND, 60, replacing=first.token, why="dead")
    for write in (
        lambda: store.record(event("step.end", "ns1"), old_host),
        lambda: store.record(event("batch.end"), old_run),
        lambda: store.set_run_state("r-1", "done", fence=old_run),
        lambda: store.quarantine("ns1", "r-1", "failed", fence=old_run),
        lambda: store.acquire_lease("ns2", FIRST, 60, fence=old_run),
    ):
        with pytest.raises(LeaseLost, match="taken over by alice@laptop pid 102"):
            write()
    assert store.get_run("r-1").state == "running" and store.quarantined() == []
    assert [e.kind for e in store.events("r-1")] == ["step.start", "run.takeover"]
    new_host = other.acquire_lease("ns1", SECOND, 60, fence=Fence("r-1", second.token))
    other.record(event("step.end", "ns1"), Fence("r-1", second.token, "ns1", new_host.token))
    other.quarantine("ns2", "r-1", "failed", fence=Fence("r-1", second.token))
    other.set_run_state("r-1", "done", fence=Fence("r-1", second.token))
    assert store.get_run("r-1").state == "done"
    assert [q.host for q in store.quarantined()] == ["ns2"]


def test_a_broken_host_lease_refuses_that_hosts_writes_only(run_store: Store) -> None:
    store = run_store
    lease = store.claim_run("r-1", FIRST, 60, replacing=None, why="new")
    ns1 = store.acquire_lease("ns1", FIRST, 60, fence=Fence("r-1", lease.token))
    ns2 = store.acquire_lease("ns2", FIRST, 60, fence=Fence("r-1", lease.token))
    store.break_lease("ns1", "carol", "stuck")
    with pytest.raises(LeaseLost, match="ns1: lease lost \\(broken or released\\)"):
        store.record(event("step.end", "ns1"), Fence("r-1", lease.token, "ns1", ns1.token))
    store.record(event("step.end", "ns2"), Fence("r-1", lease.token, "ns2", ns2.token))
    again = store.acquire_lease("ns1", FIRST, 60, fence=Fence("r-1", lease.token))
    with pytest.raises(LeaseLost, match="granted to another holder"):
        store.record(event("step.end", "ns1"), Fence("r-1", lease.token, "ns1", ns1.token))
    store.record(event("step.end", "ns1"), Fence("r-1", lease.token, "ns1", again.token))


def test_breaking_renewing_and_releasing_a_run_lease(
    run_store: Store, other: Store, clock: SyncedClock
) -> None:
    store = run_store
    lease = store.claim_run("r-1", FIRST, 60, replacing=None, why="new")
    clock.advance(30)
    renewed = store.renew_run(lease, 60)
    assert renewed.expires_at == T0 + timedelta(seconds=90)
    assert store.get_run("r-1").lease == renewed
    broken = other.break_run_lease("r-1", "carol", "hung")
    assert broken is not None and broken.owner == FIRST and broken.token == lease.token
    assert other.break_run_lease("r-1", "carol", "again") is None
    with pytest.raises(LeaseLost, match="broken or released"):
        store.renew_run(renewed, 60)
    with pytest.raises(LeaseLost):
        store.record(event("batch.end"), Fence("r-1", lease.token))
    (audit,) = store.events("r-1")
    assert audit.kind == "run.lease.break" and audit.data["who"] == "carol"
    assert store.audit_trail()[-1].action == "run.lease.break"
    again = other.claim_run("r-1", SECOND, 60, replacing=lease.token, why="broken")
    other.release_run(again)
    other.release_run(lease)  # not ours any more: a no-op
    record = store.get_run("r-1").lease
    assert record is not None and record.expires_at is None and record.token == again.token
    with pytest.raises(LeaseLost, match="taken over"):
        store.renew_run(lease, 60)


def test_concurrent_writers_see_only_their_own_stale_rows_refused(run_store: Store) -> None:
    """Many threads write at once (SQLite: in shared group commits), some with a stale fence:
    exactly those are refused, every other row is written."""
    store = run_store
    lease = store.claim_run("r-1", FIRST, 60, replacing=None, why="new")
    live, stale = Fence("r-1", lease.token), Fence("r-1", lease.token - 1)
    outcomes: dict[int, str] = {}
    lock = threading.Lock()

    def write(i: int) -> None:
        try:
            store.record(event(f"e{i}"), stale if i % 10 == 3 else live)
            result = "ok"
        except LeaseLost:
            result = "refused"
        with lock:
            outcomes[i] = result

    threads = [threading.Thread(target=write, args=(i,)) for i in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(i for i, o in outcomes.items() if o == "refused") == list(range(3, 60, 10))
    kinds = sorted(e.kind for e in store.events("r-1"))
    assert kinds == sorted(f"e{i}" for i in range(60) if i % 10 != 3)


def test_no_stale_write_lands_after_a_takeover_that_races_it(
    run_store: Store, other: Store
) -> None:
    """Writers keep writing with the first owner's fence while a second process takes the run
    over: every row they got in comes before the takeover in the journal, none after."""
    store = run_store
    first = store.claim_run("r-1", FIRST, 60, replacing=None, why="new")
    ns1 = store.acquire_lease("ns1", FIRST, 60, fence=Fence("r-1", first.token))
    fences = [Fence("r-1", first.token), Fence("r-1", first.token, "ns1", ns1.token)]
    writing, refused = [threading.Event() for _ in range(4)], [0] * 4

    def writer(n: int) -> None:
        deadline = time.monotonic() + 60
        for i in range(100_000):  # bounded in count and time; stops at the first refusal
            if time.monotonic() > deadline:
                return
            try:
                store.record(event(f"w{n}-{i}", "ns1" if n % 2 else None), fences[n % 2])
            except LeaseLost:
                refused[n] += 1
                return
            if i == 4:
                writing[n].set()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    assert all(w.wait(timeout=60) for w in writing)  # every writer is in full flow
    other.claim_run("r-1", SECOND, 60, replacing=first.token, why="dead")
    for t in threads:
        t.join(timeout=120)
    events = store.events("r-1")
    (takeover,) = [e for e in events if e.kind == "run.takeover"]
    assert takeover.seq is not None
    assert [e.kind for e in events if e.seq is not None and e.seq > takeover.seq] == []
    assert refused == [1, 1, 1, 1]  # every writer was stopped by the takeover
