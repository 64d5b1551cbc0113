"""The --limit language: fleet's selectors, hardware terms, and where fleet refuses rather than
differ from Ansible. (Ansible's own patterns against Ansible: test_inventory_ansible.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fleet.errors import UsageError
from fleet.inventory import DiskSummary, Host, Inventory, load_inventory, needs_ovh, split_limit

HYBRID = DiskSummary(
    True, "NVME", 2, 4000, 2, 960, 8000, "2x960GB NVME + 2x4000GB HDD", ("NVME", "HDD")
)
FAST = DiskSummary(False, "NVME", 0, 0, 2, 1920, 0, "2x1920GB NVME", ("NVME",))
BIG = DiskSummary(True, "SSD", 4, 8000, 2, 480, 32000, "", ("SSD", "HDD"))


def selection_inventory() -> Inventory:
    hosts = (
        Host("web-1", "10.0.0.1", datacenter="gra3", rack="G102", groups=("web",), labels={"env": "prod"}),
        Host("web-2", "10.0.0.2", datacenter="GRA3", rack="G103", groups=("web",), labels={"env": "staging"}),
        Host("db-1", "10.0.0.3", datacenter="rbx8", rack="G102", groups=("db",), disks=HYBRID,
             labels={"env": "prod"}, model="SCALE-a1"),
        Host("db-2", "10.0.0.4", datacenter="rbx8", groups=("db",), disks=FAST, model="ADVANCE-1"),
        Host("db-3", "10.0.0.5", groups=("db",), disks=BIG, model="SCALE-3"),
    )  # fmt: skip
    groups = {
        "all": tuple(h.name for h in hosts),
        "web": ("web-1", "web-2"),
        "db": ("db-1", "db-2", "db-3"),
        "empty": (),
    }
    return Inventory(hosts, groups)


def names(limit: str | None, inventory: Inventory | None = None) -> list[str]:
    return [h.name for h in (inventory or selection_inventory()).select(limit)]


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (None, ["web-1", "web-2", "db-1", "db-2", "db-3"]),
        ("web-1,", ["web-1"]),
        ("db-2,web-1", ["web-1", "db-2"]),  # inventory order, not limit order
        ("label:env=prod", ["web-1", "db-1"]),
        ("label:env=stag*", ["web-2"]),
        ("label:env", ["web-1", "web-2", "db-1"]),
        ("dc:gra3", ["web-1", "web-2"]),
        ("dc:RBX*", ["db-1", "db-2"]),
        ("rack:g102", ["web-1", "db-1"]),
        ("web:dc:rbx8", ["web-1", "web-2", "db-1", "db-2"]),  # ':' separates, selectors stay whole
        ("dc:gra3:!web-2", ["web-1"]),
        ("label:env=prod,&db", ["db-1"]),
        ("&rack:G102", ["web-1", "db-1"]),
        ("web,db-1,&label:env=prod,!dc:rbx8", ["web-1"]),
        ("hybrid", ["db-1", "db-3"]),  # no group or host of that name: OVH's classification
        ("!hybrid", ["web-1", "web-2", "db-2"]),  # hosts without OVH data are never excluded
        ("hw:hybrid", ["db-1", "db-3"]),
        ("hw:disks=hdd", ["db-1", "db-3"]),
        ("hw:disks=nvme+hdd", ["db-1"]),
        ("hw:disks!=hdd", ["db-2"]),
        ("hw:system=ssd", ["db-3"]),
        ("hw:hdd_count>=3", ["db-3"]),
        ("hw:hdd_count<4", ["db-1", "db-2"]),
        ("hw:hdd_size_gb=4000", ["db-1"]),
        ("hw:system_size_gb>500", ["db-1", "db-2"]),
        ("hw:model=scale*", ["db-1", "db-3"]),
        ("hw:model!=SCALE-*", ["db-2"]),
        ("db:&hw:hybrid:!db-3", ["db-1"]),
    ],
)
def test_fleet_selectors(limit: str | None, expected: list[str]) -> None:
    assert names(limit) == expected


def test_a_group_named_hybrid_is_the_group_as_in_ansible() -> None:
    base = selection_inventory()
    inv = Inventory(base.hosts, {**base.groups, "hybrid": ("web-2",)})
    assert names("hybrid", inv) == ["web-2"]
    assert names("hw:hybrid", inv) == ["db-1", "db-3"]
    assert not needs_ovh(inv, "hybrid") and needs_ovh(inv, "web,!hw:hybrid")


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        ("foo", "--limit 'foo' matches no host or group"),
        ("web,!wbe-1", "--limit '!wbe-1' matches no host or group"),
        ("&dc:sbg5", "--limit '&dc:sbg5' matches no host"),
        ("label:team=x", "matches no host"),
        ("!", "empty term"),
        ("web[1-2]", "Ansible removed [x-y] subscripts"),
        ("web[5]", "no host at index 5 (2 matched)"),
        ("hw:hdd_cnt>2", "unknown hardware field"),
        ("hw:hdd_count>two", "compares with a whole number"),
        ("hw:disks=tape", "disk kinds are nvme, ssd, hdd"),
        ("hw:model>x", "model takes = or !="),
        ("~web[,db", "invalid pattern"),
    ],
)
def test_terms_fleet_refuses(limit: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        selection_inventory().select(limit)


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        ("", "--limit '' is empty"),
        ("   ", "--limit '   ' is empty"),
        (" , ,", "--limit ' , ,' is empty"),
        ("!all", "--limit '!all' selects no host"),
        ("web,!web", "--limit 'web,!web' selects no host"),
        ("empty", "--limit 'empty' selects no host"),  # a group that exists, with no host
        ("web,&empty", "--limit 'web,&empty' selects no host"),
        ("web-1,&db", "--limit 'web-1,&db' selects no host"),
        ("hybrid,!label:env=prod,!db-3", "--limit 'hybrid,!label:env=prod,!db-3' selects no host"),
    ],
)
def test_a_limit_that_selects_nothing_is_a_usage_error(limit: str, message: str) -> None:
    """Never "every host" for a blank limit, never a run of nothing: exit 3, naming it."""
    with pytest.raises(UsageError) as info:
        selection_inventory().select(limit)
    assert info.value.message == message
    assert info.value.exit_code == 3 and info.value.hint


def test_the_flag_named_in_selection_errors_is_the_callers() -> None:
    with pytest.raises(UsageError, match=r"^HOSTS '!all' selects no host$"):
        selection_inventory().select("!all", "HOSTS")
    with pytest.raises(UsageError, match=r"^HOSTS 'hw:disks=tape': disk kinds"):
        selection_inventory().select("hw:disks=tape", "HOSTS")
    with pytest.raises(UsageError, match=r"^HOSTS 'nope' matches no host or group$"):
        selection_inventory().select("web,nope", "HOSTS")


def test_no_match_message_suggests() -> None:
    with pytest.raises(UsageError) as info:
        selection_inventory().select("web-3")
    assert info.value.hint is not None and "'web-1'" in info.value.hint


def test_hw_terms_need_ovh_data() -> None:
    plain = Inventory((Host("a", "a"),), {"all": ("a",)})
    assert needs_ovh(plain, "hw:hybrid") and needs_ovh(plain, "web:hybrid")
    with pytest.raises(UsageError, match="selects on OVH's hardware data, and no host has any"):
        plain.select("hw:hybrid")


def test_a_selector_word_that_names_a_group_is_ambiguous(tmp_path: Path) -> None:
    path = tmp_path / "inv.yml"
    path.write_text(
        "dc:\n  hosts: {ad-1: }\ngra3:\n  hosts: {web-1: {fleet: {datacenter: gra3}}}\n"
    )
    inv = load_inventory([path])
    with pytest.raises(UsageError, match="'dc' names a host or group") as info:
        inv.select("dc:gra3")
    assert info.value.hint is not None and "'dc,gra3'" in info.value.hint
    assert names("dc,gra3", inv) == ["ad-1", "web-1"]  # Ansible's reading, written with a comma


@pytest.mark.parametrize(
    ("limit", "terms"),
    [
        ("web:db:!web-1", ["web", "db", "!web-1"]),
        ("web[1:2]", ["web[1:2]"]),  # a range is one pattern
        ("db:2222", ["db:2222"]),  # host:port is one pattern, as in Ansible
        ("fe80::1", ["fe80::1"]),
        ("label:env=prod:&dc:gra3", ["label:env=prod", "&dc:gra3"]),
        ("hw:hdd_count>=2:!db-1", ["hw:hdd_count>=2", "!db-1"]),
        ("web , db", ["web", "db"]),
        ("a:b,c", ["a:b", "c"]),  # with a comma, ':' is no separator
    ],
)
def test_split_limit(limit: str, terms: list[str]) -> None:
    assert split_limit(limit) == terms


def test_limit_from_a_file(tmp_path: Path) -> None:
    retry = tmp_path / "site.retry"
    retry.write_text("web-2\ndb-1\n\n")
    assert names(f"@{retry}") == ["web-2", "db-1"]
    assert names(f"@{retry},!db-1") == ["web-2"]
    with pytest.raises(UsageError, match="cannot read"):
        names(f"@{tmp_path / 'missing'}")


def test_subscripts_in_an_order_ansible_leaves_unspecified_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "inv.yml"
    path.write_text(
        """
top:
  hosts: {t1: }
  children:
    a: {hosts: {a1: }, children: {a_deep: {hosts: {ad1: , ad2: }}}}
    b: {hosts: {b1: }, children: {b_deep: {hosts: {bd1: }}}}
"""
    )
    inv = load_inventory([path])
    assert names("top[0:2]", inv) == ["t1", "a1", "b1"]  # the specified part: itself, children
    assert names("top[1:]", inv) == ["a1", "ad1", "ad2", "b1", "bd1"]  # the whole tail: a set
    with pytest.raises(UsageError, match="leaves the order of these hosts unspecified"):
        inv.select("top[3]")
