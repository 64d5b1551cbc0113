"""Host leases on every backend: grant, exclusion between store objects, expiry on the store's
clock, renewal, fencing tokens, breaking (audited), and 20 threads racing for one host."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import pytest

from fleet.errors import LeaseHeld, StoreError
from fleet.store.base import Owner, Store
from tests.integration.store.backends import ALICE, BOB, T0, SyncedClock, assert_utc

pytestmark = pytest.mark.integration


def test_acquire_grants_and_lists(store: Store) -> None:
    lease = store.acquire_lease("ns1", ALICE, ttl=60)
    assert (lease.host, lease.owner, lease.taken_at) == ("ns1", ALICE, T0)
    assert lease.expires_at == T0 + timedelta(seconds=60)
    assert store.list_leases() == [lease]
    assert_utc(lease.taken_at)
    assert_utc(store.list_leases()[0].expires_at)


def test_lease_excludes_another_store_object(store: Store, other: Store) -> None:
    mine = store.acquire_lease("ns1", ALICE, ttl=60)
    with pytest.raises(LeaseHeld) as caught:
        other.acquire_lease("ns1", BOB, ttl=60)
    assert caught.value.host == "ns1"
    assert caught.value.owner == str(ALICE)
    assert caught.value.taken_at == "2024-02-29T23:59:00.000+00:00"
    assert caught.value.expires_at == "2024-03-01T00:00:00.000+00:00"
    assert other.list_leases() == [mine]
    # another host is free
    assert other.acquire_lease("ns2", BOB, ttl=60).owner == BOB


def test_same_owner_acquire_renews_with_same_token(store: Store, clock: SyncedClock) -> None:
    first = store.acquire_lease("ns1", ALICE, ttl=60)
    clock.advance(30)
    again = store.acquire_lease("ns1", ALICE, ttl=60)
    assert again.token == first.token
    assert again.taken_at == first.taken_at
    assert again.expires_at == T0 + timedelta(seconds=90)
    assert store.list_leases() == [again]


def test_same_user_other_process_is_excluded(store: Store) -> None:
    store.acquire_lease("ns1", ALICE, ttl=60)
    twin = Owner(ALICE.user, ALICE.machine, ALICE.pid + 1, ALICE.run_id)
    with pytest.raises(LeaseHeld):
        store.acquire_lease("ns1", twin, ttl=60)


def test_expired_lease_is_taken_over(store: Store, other: Store, clock: SyncedClock) -> None:
    old = store.acquire_lease("ns1", ALICE, ttl=60)
    clock.advance(60)  # expires_at == now: still held
    with pytest.raises(LeaseHeld):
        other.acquire_lease("ns1", BOB, ttl=60)
    clock.advance(0.001)
    new = other.acquire_lease("ns1", BOB, ttl=60)
    assert new.owner == BOB
    assert new.token > old.token
    assert new.taken_at == T0 + timedelta(seconds=60.001)
    # the old holder has lost it: renew names the new holder, release leaves it alone
    with pytest.raises(LeaseHeld, match="bob@desk"):
        store.renew_lease(old, ttl=60)
    store.release_lease(old)
    assert store.list_leases() == [new]


def test_expired_lease_is_listed(store: Store, clock: SyncedClock) -> None:
    lease = store.acquire_lease("ns1", ALICE, ttl=5)
    clock.advance(3600)
    (listed,) = store.list_leases()
    assert listed == lease
    assert listed.expires_at < clock.now()


def test_renew_extends_from_now(store: Store, clock: SyncedClock) -> None:
    lease = store.acquire_lease("ns1", ALICE, ttl=60)
    clock.advance(50)
    renewed = store.renew_lease(lease, ttl=120)
    assert renewed.token == lease.token
    assert renewed.taken_at == lease.taken_at
    assert renewed.expires_at == T0 + timedelta(seconds=170)
    assert store.list_leases() == [renewed]
    clock.advance(500)  # expired, but nobody took it: still ours to renew
    assert store.renew_lease(renewed, ttl=10).token == lease.token


def test_renew_after_release_fails(store: Store) -> None:
    lease = store.acquire_lease("ns1", ALICE, ttl=60)
    store.release_lease(lease)
    with pytest.raises(StoreError, match="lease of ns1 was broken") as caught:
        store.renew_lease(lease, ttl=60)
    assert not isinstance(caught.value, LeaseHeld)


def test_tokens_increase_across_hosts_and_survive_release(
    store: Store, other: Store, clock: SyncedClock
) -> None:
    tokens = []
    for round_ in range(3):
        for host in ("ns1", "ns2", "ns3"):
            owner_store = store if round_ % 2 else other
            lease = owner_store.acquire_lease(host, ALICE, ttl=60)
            tokens.append(lease.token)
            owner_store.release_lease(lease)
    assert store.list_leases() == []
    broken = store.acquire_lease("ns1", BOB, ttl=60)
    store.break_lease("ns1", "carol", "stuck")
    tokens.append(broken.token)
    clock.advance(1)
    tokens.append(other.acquire_lease("ns1", BOB, ttl=60).token)
    assert tokens == sorted(tokens)
    assert len(set(tokens)) == len(tokens)


def test_release_deletes_only_with_matching_token(store: Store) -> None:
    lease = store.acquire_lease("ns1", ALICE, ttl=60)
    forged = replace(lease, token=lease.token + 1000)
    store.release_lease(forged)
    assert store.list_leases() == [lease]
    store.release_lease(lease)
    assert store.list_leases() == []


def test_bad_ttl_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="ttl must be positive"):
        store.acquire_lease("ns1", ALICE, ttl=0)
    assert store.list_leases() == []


def test_break_lease_is_audited_and_old_holder_loses(store: Store, other: Store) -> None:
    lease = store.acquire_lease("ns1", ALICE, ttl=60)
    broken = other.break_lease("ns1", "carol", "owner died")
    assert broken == lease
    assert store.list_leases() == []
    (audit,) = store.events("r-1", host="ns1")
    assert audit.kind == "lease.break"
    assert audit.data == {
        "who": "carol",
        "reason": "owner died",
        "owner": str(ALICE),
        "token": lease.token,
    }
    assert_utc(audit.at)
    with pytest.raises(StoreError, match="lease of ns1 was broken"):
        store.renew_lease(lease, ttl=60)
    assert other.break_lease("ns1", "carol", "again") is None
    assert len(store.events("r-1")) == 1


def test_break_lease_without_run_is_audited_under_dash(store: Store) -> None:
    store.acquire_lease("ns1", Owner("ops", "box", 7), ttl=60)
    store.break_lease("ns1", "carol", "manual")
    assert [event.kind for event in store.events("-")] == ["lease.break"]


def test_threads_racing_for_one_lease_one_wins(store: Store) -> None:
    contenders = 20
    barrier = threading.Barrier(contenders, timeout=30)
    winners: list[int] = []
    refused: list[int] = []
    errors: list[BaseException] = []

    def contend(index: int) -> None:
        barrier.wait()
        try:
            store.acquire_lease("ns1", Owner("u", "m", 1000 + index, f"r-{index}"), ttl=60)
            winners.append(index)
        except LeaseHeld:
            refused.append(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=contend, args=(index,)) for index in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(winners) == 1
    assert len(refused) == contenders - 1
    assert store.list_leases()[0].owner.pid == 1000 + winners[0]


def test_store_objects_racing_for_expired_leases_one_wins_each(
    store: Store, other: Store, clock: SyncedClock
) -> None:
    """Two store objects (two operators) race for 30 expired hosts at once: each host goes to
    exactly one of them, with a token above the expired one's."""
    old = {f"h{i:02d}": store.acquire_lease(f"h{i:02d}", ALICE, ttl=5) for i in range(30)}
    clock.advance(10)
    won: dict[str, list[str]] = {host: [] for host in old}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2, timeout=30)

    def race(name: str, mine: Store, owner: Owner) -> None:
        barrier.wait()
        for host in old:
            try:
                lease = mine.acquire_lease(host, owner, ttl=60)
                assert lease.token > old[host].token
                won[host].append(name)
            except LeaseHeld:
                pass
            except BaseException as exc:
                errors.append(exc)

    threads = [
        threading.Thread(target=race, args=("a", store, BOB)),
        threading.Thread(target=race, args=("b", other, Owner("carol", "pc", 303, "r-3"))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert all(len(names) == 1 for names in won.values()), won
