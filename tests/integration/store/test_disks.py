"""What fleet did to disks, on every backend: the arrays it created, recorded per host and
updated in place, and the previews an operator approves, kept whole."""

from __future__ import annotations

import pytest

from fleet.store.base import OwnedArray, Preview, Store
from tests.integration.store.backends import T0, SyncedClock, assert_utc

pytestmark = pytest.mark.integration

UUID = "132ae610:537325c5:2d5efa6a:73f4f5dd"


def test_arrays_fleet_created_are_recorded_per_host_and_updated(
    store: Store, other: Store, clock: SyncedClock
) -> None:
    first = OwnedArray("vm-01", UUID, "fleet-1a2b3c4d:md4", "raid1", ("K7H1", "K7H2"), "r1")
    store.record_array(first)
    clock.advance(5)
    store.record_array(OwnedArray("vm-02", "aa:bb", "fleet-99:md4", "raid0", ("X",), "r1"))
    store.record_array(OwnedArray("vm-01", UUID, first.name, "raid1", first.serials, "r2",
                                  fs_uuid="6e1f"))  # fmt: skip
    (mine,) = other.owned_arrays("vm-01")
    assert (mine.uuid, mine.serials, mine.fs_uuid, mine.run_id) == (UUID, ("K7H1", "K7H2"),
                                                                    "6e1f", "r1")  # fmt: skip
    assert mine.created_at == T0  # the first record's time is kept
    assert_utc(mine.created_at)
    assert [(a.host, a.uuid) for a in other.owned_arrays()] == [("vm-01", UUID), ("vm-02", "aa:bb")]
    store.record_array(OwnedArray("vm-01", UUID, first.name, "raid5", ("A", "B", "C"), "r3"))
    again = other.owned_arrays("vm-01")[0]
    assert again.fs_uuid == "6e1f"  # an update without one keeps it
    assert (again.level, again.serials, again.run_id) == ("raid5", ("A", "B", "C"), "r1")
    assert other.owned_arrays("vm-09") == []


def test_arrays_of_one_host_come_oldest_first(store: Store, clock: SyncedClock) -> None:
    for n in range(3):
        store.record_array(OwnedArray("h", f"u{n}", f"fleet-{n}:md{n}", "raid1", ("S",), "r"))
        clock.advance(1)
    assert [a.uuid for a in store.owned_arrays("h")] == ["u0", "u1", "u2"]


def test_previews_are_kept_whole_and_replaced_by_id(
    store: Store, other: Store, clock: SyncedClock
) -> None:
    preview = Preview("p-1", "sha256:abc", {"a": "d1gest", "b": ""}, "ops")
    store.save_preview(preview)
    got = other.get_preview("p-1")
    assert got is not None
    assert (got.id, got.plan_hash, got.hosts, got.created_by) == ("p-1", "sha256:abc",
                                                                   {"a": "d1gest", "b": ""}, "ops")  # fmt: skip
    assert got.created_at == T0
    clock.advance(60)
    store.save_preview(Preview("p-1", "sha256:def", {"a": "x"}, "carol"))
    again = other.get_preview("p-1")
    assert again is not None and again.hosts == {"a": "x"} and again.created_by == "carol"
    assert other.get_preview("nope") is None
