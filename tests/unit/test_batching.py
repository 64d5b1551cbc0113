"""Rolling batches: sizes from specs, the last size repeating, and the round-robin spread."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.engine.batching import batch_sizes, cut, label_value, make_batches, parse_sizes, spread
from fleet.errors import UsageError
from fleet.inventory import Host


def hosts_in(*counts: tuple[str, int]) -> list[Host]:
    """Hosts grouped by datacenter in inventory order: ("gra", 3) -> gra-0, gra-1, gra-2."""
    return [
        Host(name=f"{dc}-{i}", address=f"a-{dc}-{i}", datacenter=dc)
        for dc, n in counts
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("spec", "total", "sizes"),
    [
        ("1,10%,100%", 50, [1, 5, 44]),
        ("1,5,10%,100%", 50, [1, 5, 5, 39]),
        ("1,5", 12, [1, 5, 5, 1]),
        ("1", 3, [1, 1, 1]),
        ("100%", 1, [1]),
        ("100%", 7, [7]),
        ("10%", 11, [2, 2, 2, 2, 2, 1]),  # 1.1 rounds up to 2
        ("1%", 10, [1] * 10),  # 0.1 rounds up, and a batch has at least 1 host
        ("33%", 10, [4, 4, 2]),
        ("1,100%", 1, [1]),
        ("5,100%", 3, [3]),  # never more than what is left
        ("1,100%", 0, []),
        (" 2 , 50% ", 6, [2, 3, 1]),
        ("1,,5", 10, [1, 5, 4]),
    ],
)
def test_batch_sizes(spec: str, total: int, sizes: list[int]) -> None:
    assert batch_sizes(spec, total) == sizes


@pytest.mark.parametrize(
    ("spec", "bad"),
    [
        ("0", "'0'"),
        ("1,0", "'0'"),
        ("-1", "'-1'"),
        ("150%", "'150%'"),
        ("0%", "'0%'"),
        ("abc", "'abc'"),
        ("1,abc,5", "'abc'"),
        ("1.5", "'1.5'"),
        ("10%%", "'10%%'"),
        ("%", "'%'"),
        ("+3", "'+3'"),
    ],
)
def test_bad_spec_names_the_bad_term(spec: str, bad: str) -> None:
    with pytest.raises(UsageError) as info:
        batch_sizes(spec, 10)
    assert bad in str(info.value)
    assert "--batches" in str(info.value)


@pytest.mark.parametrize("spec", ["", " ", ",", " , "])
def test_empty_spec(spec: str) -> None:
    with pytest.raises(UsageError, match="empty"):
        parse_sizes(spec)


@pytest.mark.parametrize("spec", ["²", "1,²%"])
def test_non_ascii_digits_are_a_usage_error(spec: str) -> None:
    with pytest.raises(UsageError):
        batch_sizes(spec, 10)


def test_parse_sizes_returns_the_terms() -> None:
    assert parse_sizes(" 1, 10% ,100%") == ["1", "10%", "100%"]


@settings(max_examples=150, deadline=None, database=None)
@given(
    terms=st.lists(
        st.one_of(
            st.integers(1, 30).map(str),
            st.integers(1, 100).map(lambda p: f"{p}%"),
        ),
        min_size=1,
        max_size=5,
    ),
    total=st.integers(0, 300),
)
def test_sizes_cover_every_host_once(terms: list[str], total: int) -> None:
    sizes = batch_sizes(",".join(terms), total)
    assert sum(sizes) == total
    assert all(size >= 1 for size in sizes)
    # Every batch but the last has exactly its term's size; the last term repeats.
    for i, size in enumerate(sizes[:-1]):
        term = terms[min(i, len(terms) - 1)]
        want = -(-total * int(term[:-1]) // 100) if term.endswith("%") else int(term)
        assert size == max(1, want)


# --- spread -----------------------------------------------------------------------------------


def test_spread_interleaves_datacenters() -> None:
    hosts = hosts_in(("gra", 3), ("rbx", 2), ("bhs", 1))
    names = [h.name for h in spread(hosts, "datacenter")]
    assert names == ["gra-0", "rbx-0", "bhs-0", "gra-1", "rbx-1", "gra-2"]


def test_spread_without_by_keeps_order() -> None:
    hosts = hosts_in(("gra", 3), ("rbx", 2))
    assert spread(hosts, None) == hosts
    assert spread(hosts, "") == hosts


def test_spread_by_rack_and_by_label() -> None:
    hosts = [
        Host(name="a", address="1", rack="r1", labels={"zone": "z1"}),
        Host(name="b", address="2", rack="r1", labels={"zone": "z2"}),
        Host(name="c", address="3", rack="r2", labels={"zone": "z1"}),
        Host(name="d", address="4"),
    ]
    assert [h.name for h in spread(hosts, "rack")] == ["a", "c", "d", "b"]
    assert [h.name for h in spread(hosts, "zone")] == ["a", "b", "d", "c"]


def test_label_value_of_a_host_without_it() -> None:
    host = Host(name="x", address="1")
    assert label_value(host, "datacenter") == "-"
    assert label_value(host, "rack") == "-"
    assert label_value(host, "team") == "-"


def test_cut() -> None:
    assert cut("abcdef", [1, 2, 3]) == [["a"], ["b", "c"], ["d", "e", "f"]]
    assert cut([], []) == []


def test_make_batches_spreads_then_cuts() -> None:
    hosts = hosts_in(("gra", 4), ("rbx", 4), ("bhs", 4))
    batches = make_batches(hosts, "1,3,100%", by="datacenter")
    assert [len(b) for b in batches] == [1, 3, 8]
    assert [h.name for h in batches[0]] == ["gra-0"]
    assert {h.datacenter for h in batches[1]} == {"gra", "rbx", "bhs"}
    assert sorted(h.name for b in batches for h in b) == sorted(h.name for h in hosts)


def test_without_by_a_batch_can_be_one_datacenter() -> None:
    # The contrast that makes --by worth having.
    hosts = hosts_in(("gra", 4), ("rbx", 4))
    batches = make_batches(hosts, "4", by=None)
    assert [{h.datacenter for h in b} for b in batches] == [{"gra"}, {"rbx"}]


@settings(max_examples=100, deadline=None, database=None)
@given(
    dcs=st.lists(st.sampled_from(["gra", "rbx", "bhs", "sbg"]), min_size=1, max_size=40),
    spec=st.sampled_from(["1,10%,100%", "2", "1,3", "25%", "1,2,50%", "3,100%"]),
)
def test_no_batch_is_one_datacenter_while_others_remain(dcs: list[str], spec: str) -> None:
    hosts = [Host(name=f"h{i}", address=str(i), datacenter=dc) for i, dc in enumerate(dcs)]
    batches = make_batches(hosts, spec, by="datacenter")
    assert sorted(h.name for b in batches for h in b) == sorted(h.name for h in hosts)
    for i, batch in enumerate(batches):
        remaining = {h.datacenter for b in batches[i:] for h in b}
        if len(batch) >= 2 and len(remaining) >= 2:
            assert len({h.datacenter for h in batch}) >= 2, [len(b) for b in batches]


# --- one topology unit at a time ---------------------------------------------------------------


def test_serial_by_datacenter_rolls_one_datacenter_at_a_time_each_with_its_canary() -> None:
    hosts = hosts_in(("gra", 5), ("rbx", 3), ("bhs", 1))
    batches = make_batches(hosts, "1,100%", serial_by="datacenter")
    assert [[h.name for h in b] for b in batches] == [
        ["gra-0"],
        ["gra-1", "gra-2", "gra-3", "gra-4"],
        ["rbx-0"],
        ["rbx-1", "rbx-2"],
        ["bhs-0"],
    ]


def test_serial_by_percentages_are_of_the_unit_and_max_per_caps_each_batch() -> None:
    hosts = hosts_in(("gra", 10), ("rbx", 4))
    batches = make_batches(hosts, "50%", serial_by="datacenter", max_per=3)
    assert [(len(b), b[0].datacenter) for b in batches] == [
        (3, "gra"),  # 50% of gra is 5: capped to 3, the others wait for the next batch
        (3, "gra"),
        (3, "gra"),
        (1, "gra"),
        (2, "rbx"),
        (2, "rbx"),
    ]


def test_serial_by_rack_with_a_spread_inside_it() -> None:
    hosts = [
        Host(name=f"h{i}", address=str(i), rack=f"r{i % 2}", labels={"zone": f"z{i % 4}"})
        for i in range(8)
    ]
    batches = make_batches(hosts, "2", by="zone", serial_by="rack")
    assert [{h.rack for h in b} for b in batches] == [{"r0"}, {"r0"}, {"r1"}, {"r1"}]
    assert all(len({h.labels["zone"] for h in b}) == 2 for b in batches)


def test_max_per_with_by_caps_each_unit_in_a_mixed_batch() -> None:
    hosts = hosts_in(("gra", 6), ("rbx", 1))
    batches = make_batches(hosts, "1,100%", by="datacenter", max_per=2)
    # without the cap the second batch would hold 5 hosts of gra; with it, 2 per batch
    assert [sorted(h.name for h in b) for b in batches] == [
        ["gra-0"],
        ["gra-1", "gra-2", "rbx-0"],
        ["gra-3", "gra-4"],
        ["gra-5"],
    ]


@settings(max_examples=100, deadline=None, database=None)
@given(
    dcs=st.lists(st.sampled_from(["gra", "rbx", "bhs", "sbg"]), min_size=1, max_size=40),
    spec=st.sampled_from(["1,10%,100%", "2", "1,3", "25%", "1,2,50%", "3,100%"]),
    cap=st.one_of(st.none(), st.integers(1, 5)),
)
def test_serial_batches_never_mix_units_nor_pass_the_cap(
    dcs: list[str], spec: str, cap: int | None
) -> None:
    hosts = [Host(name=f"h{i}", address=str(i), datacenter=dc) for i, dc in enumerate(dcs)]
    batches = make_batches(hosts, spec, serial_by="datacenter", max_per=cap)
    assert sorted(h.name for b in batches for h in b) == sorted(h.name for h in hosts)
    assert all(b and len({h.datacenter for h in b}) == 1 for b in batches)
    assert cap is None or all(len(b) <= cap for b in batches)
    order = [b[0].datacenter for b in batches]  # each unit's batches are consecutive
    assert order == sorted(order, key=lambda dc: dcs.index(dc))


@pytest.mark.parametrize(
    ("by", "serial_by", "max_per", "error"),
    [
        (None, "zone", None, "--serial-by 'zone': one of datacenter, rack"),
        (None, None, 2, "--max-per caps the hosts of one datacenter or rack"),
        (None, "rack", 0, "--max-per must be at least 1"),
    ],
)
def test_topology_options_that_mean_nothing_are_refused(
    by: str | None, serial_by: str | None, max_per: int | None, error: str
) -> None:
    from fleet.engine.batching import check_topology

    with pytest.raises(UsageError, match=error.replace("(", r"\(")):
        check_topology(by, serial_by, max_per)
