"""The YAML inventory: shape, inheritance, errors with lines, selection, records, classification."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from fleet.errors import InventoryError, UsageError
from fleet.inventory import (
    TABLE_COLUMNS,
    DiskSummary,
    Host,
    Inventory,
    classify_disks,
    load_inventory,
)
from fleet.provider.base import DiskGroup, Hardware

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "inventory.yaml"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> Inventory:
    return load_inventory([write(tmp_path, "inv.yaml", text)])


def load_error(tmp_path: Path, text: str) -> InventoryError:
    path = write(tmp_path, "inv.yaml", text)
    with pytest.raises(InventoryError) as info:
        load_inventory([path])
    return info.value


# --- the example -------------------------------------------------------------------------------


def test_example_loads_with_inheritance_and_aliases() -> None:
    inv = load_inventory([EXAMPLE])
    assert [h.name for h in inv.hosts] == [
        "stor-gra-1",
        "stor-gra-2",
        "stor-rbx-1",
        "web-1",
        "web-2",
    ]
    gra2 = inv.require("stor-gra-2")
    assert (gra2.address, gra2.port, gra2.user) == ("203.0.113.12", 22, "root")
    assert (gra2.datacenter, gra2.rack) == ("gra3", "G103")
    assert gra2.service_name == "ns1002.ip-203-0-113.eu"
    assert gra2.key_file == str(EXAMPLE.parent / "keys" / "fleet_ed25519")
    assert gra2.labels == {"env": "prod", "team": "infra", "role": "storage"}
    assert gra2.vars == {"hdd_mount": "/srv/data", "hdd_filesystem": "xfs"}
    assert "ansible_python_interpreter" not in gra2.vars
    assert inv.require("stor-gra-1").vars["hdd_filesystem"] == "ext4"
    web1 = inv.require("web-1")
    assert (web1.user, web1.port, web1.groups) == ("deploy", 2222, ("canary", "web"))
    rbx = inv.require("stor-rbx-1")
    assert rbx.address == "" and rbx.labels["canary"] == "yes"
    assert inv.groups["storage"] == ("stor-gra-1", "stor-gra-2", "stor-rbx-1")
    assert inv.groups["canary"] == ("stor-gra-1", "web-1")
    assert inv.groups["all"] == tuple(h.name for h in inv.hosts)
    assert rbx.source == f"{EXAMPLE}:40"


# --- inheritance -------------------------------------------------------------------------------


def test_nearest_definition_wins_and_labels_and_vars_merge(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        """
        all:
          vars:
            {user: admin, port: 2200, datacenter: gra1, labels: {a: all, b: all}, x: all, y: all}
          children:
            outer:
              vars: {port: 2201, labels: {b: outer, c: outer}, y: outer}
              children:
                inner:
                  vars: {port: 2202, datacenter: rbx8, labels: {c: inner}}
                  hosts:
                    h1: {address: 10.0.0.1, labels: {d: host}, vars: {x: host}}
                    h2: {address: 10.0.0.2, port: 2299}
        """,
    )
    h1, h2 = inv.hosts
    assert (h1.user, h1.port, h1.datacenter) == ("admin", 2202, "rbx8")
    assert h1.labels == {"a": "all", "b": "outer", "c": "inner", "d": "host"}
    assert h1.vars == {"x": "host", "y": "outer"}
    assert h1.groups == ("inner", "outer")
    assert h2.port == 2299
    assert h2.vars == {"x": "all", "y": "outer"}
    assert inv.groups["outer"] == ("h1", "h2")


def test_deeper_group_wins_whatever_the_listing_order(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        """
        all:
          children:
            zz_shallow:
              vars: {user: shallow, rack: R1}
              hosts: {h1: {address: 10.0.0.1}}
            aa_parent:
              children:
                aa_deep:
                  vars: {user: deep}
                  hosts: {h1: }
            bb_shallow:
              vars: {rack: R2}
              hosts: {h1: }
        """,
    )
    host = inv.require("h1")
    assert host.user == "deep"  # depth 2 beats depth 1
    assert host.rack == "R1"  # same depth: group-name order, zz_shallow after bb_shallow
    assert host.groups == ("aa_deep", "aa_parent", "bb_shallow", "zz_shallow")


def test_defaults_and_top_level_groups_without_all(tmp_path: Path) -> None:
    inv = load(tmp_path, "web:\n  hosts:\n    w1: {address: 10.0.0.1}\n")
    host = inv.require("w1")
    assert (host.port, host.user, host.key_file, host.groups) == (22, "root", None, ("web",))
    assert inv.groups == {"all": ("w1",), "web": ("w1",)}


def test_ansible_aliases_and_ignored_keys(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        """
        all:
          vars: {ansible_user: ops, ansible_connection: ssh, ansible_become: true}
          hosts:
            h1:
              ansible_host: 10.0.0.1
              ansible_port: 2022
              ansible_ssh_private_key_file: /keys/id
              ansible_python_interpreter: /usr/bin/python3
              ansible_host_key_checking: false
              ansible_ssh_common_args: -o ProxyJump=bastion
        """,
    )
    host = inv.require("h1")
    assert (host.address, host.port, host.user, host.key_file) == (
        "10.0.0.1",
        2022,
        "ops",
        "/keys/id",
    )
    assert host.vars == {}


def test_ssh_key_paths_resolve_against_the_defining_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    sub = tmp_path / "sub"
    sub.mkdir()
    write(sub, "a.yaml", "all:\n  vars: {ssh_key: keys/id}\n  hosts: {h1: {address: 10.0.0.1}}\n")
    write(sub, "b.yml", "all:\n  hosts: {h2: {address: 10.0.0.2, ssh_key: ~/k}}\n")
    inv = load_inventory([sub])
    assert inv.require("h1").key_file == str(sub / "keys" / "id")
    assert inv.require("h2").key_file == str(tmp_path / "home" / "k")


def test_same_host_in_several_groups_accumulates_agreeing_keys(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        """
        all:
          children:
            a: {hosts: {h1: {address: 10.0.0.1, labels: {x: "1"}}}}
            b: {hosts: {h1: {address: 10.0.0.1, labels: {y: "2"}}}}
        """,
    )
    assert inv.require("h1").groups == ("a", "b")
    assert inv.require("h1").labels == {"x": "1", "y": "2"}


def test_yaml_merge_keys_and_dates_as_text(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        """
        all:
          hosts:
            h1: &base {address: 10.0.0.1, port: 2200, vars: {since: 2024-02-29}}
            h2:
              <<: *base
              address: 10.0.0.2
        """,
    )
    h2 = inv.require("h2")
    assert (h2.address, h2.port) == ("10.0.0.2", 2200)
    assert h2.vars == {"since": "2024-02-29"}
    json.dumps(h2.to_dict())


def test_several_files_share_groups(tmp_path: Path) -> None:
    a = write(
        tmp_path,
        "a.yaml",
        """
        all:
          children:
            web: {vars: {user: www}, hosts: {w1: {address: 10.0.0.1}}}
        """,
    )
    b = write(
        tmp_path, "b.yaml", "all:\n  children:\n    web:\n      hosts: {w2: {address: 10.0.0.2}}\n"
    )
    inv = load_inventory([a, b, a])
    assert inv.groups["web"] == ("w1", "w2")
    assert inv.require("w2").user == "www"


def test_directory_reads_only_yaml_files_in_name_order(tmp_path: Path) -> None:
    write(tmp_path, "b.yml", "all:\n  hosts: {b1: {address: 10.0.0.2}}\n")
    write(tmp_path, "a.yaml", "all:\n  hosts: {a1: {address: 10.0.0.1}}\n")
    write(tmp_path, "README.md", "not: [yaml")
    write(tmp_path, ".hidden.yaml", "not: [yaml")
    assert [h.name for h in load_inventory([tmp_path]).hosts] == ["a1", "b1"]


def test_host_with_ovh_service_may_have_no_address_until_enriched(tmp_path: Path) -> None:
    inv = load(tmp_path, "all:\n  hosts:\n    h1: {ovh_service: ns1.ip-1-2-3.eu}\n")
    assert inv.require("h1").address == ""
    with pytest.raises(InventoryError, match="no address yet for h1"):
        inv.check_addresses()


# --- bad input ---------------------------------------------------------------------------------


def test_yaml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    err = load_error(tmp_path, "all:\n  hosts:\n    h1: {address: 10.0.0.1\n    h2: {}\n")
    assert err.path == str(tmp_path / "inv.yaml")
    assert err.line == 4
    assert "invalid YAML" in str(err) and "column" in str(err)


def test_duplicate_host_in_one_hosts_mapping(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        """
        all:
          hosts:
            h1: {address: 10.0.0.1}
            h2: {address: 10.0.0.2}
            h1: {address: 10.0.0.3}
        """,
    )
    assert (err.line, err.key) == (5, "h1")
    assert "duplicate key 'h1' (first at line 3)" in str(err)


def test_duplicate_key_deep_in_user_vars(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        """
        all:
          hosts:
            h1:
              address: 10.0.0.1
              vars:
                opts: {a: 1, b: 2,
                       a: 3}
        """,
    )
    assert (err.line, err.key) == (7, "a")


def test_same_host_in_two_files_names_both(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "all:\n  hosts:\n    h1: {address: 10.0.0.1}\n")
    b = write(
        tmp_path,
        "b.yaml",
        "all:\n  hosts:\n    h0: {address: 10.0.0.9}\n    h1: {address: 10.0.0.1}\n",
    )
    with pytest.raises(InventoryError) as info:
        load_inventory([a, b])
    assert str(a) in str(info.value) and str(b) in str(info.value)
    assert info.value.line == 4


def test_unknown_host_key_names_line_and_suggests(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        """
        all:
          hosts:
            h1:
              address: 10.0.0.1
              datacentre: gra3
        """,
    )
    assert (err.line, err.key) == (5, "datacentre")
    assert "unknown host key 'datacentre'" in str(err)
    assert err.hint == "did you mean 'datacenter'?"


def test_unknown_host_key_points_to_vars(tmp_path: Path) -> None:
    err = load_error(tmp_path, "all:\n  hosts:\n    h1: {address: 10.0.0.1, app_dir: /srv}\n")
    assert err.line == 3 and err.hint == "user variables go under the host's vars:"


def test_unknown_group_key(tmp_path: Path) -> None:
    err = load_error(tmp_path, "all:\n  children:\n    web:\n      host: {}\n")
    assert (err.line, err.key) == (4, "host")
    assert err.hint == "did you mean 'hosts'?"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{address: 10.0.0.1, port: '22'}", "must be an integer from 1 to 65535, not a string"),
        ("{address: 10.0.0.1, port: true}", "not a boolean"),
        ("{address: 10.0.0.1, port: 70000}", "70000 is not a port"),
        ("{address: 10.0.0.1, labels: [a, b]}", "must be a mapping, not a list"),
        ("{address: 10.0.0.1, labels: {canary: yes}}", "must be a string, not a boolean"),
        ("{address: 10.0.0.1, labels: {'a=b': x}}", "must not contain '='"),
        ("{address: [10.0.0.1]}", "must be a string, not a list"),
        ("{address: -oProxyCommand=x}", "must not start with '-'"),
        ("{address: 10.0.0.1, user: 'a b'}", "must be one word"),
        ("{address: 10.0.0.1, vars: [1]}", "must be a mapping, not a list"),
        ("{address: 10.0.0.1, vars: {blob: !!binary aGVsbG8=}}", "must be plain data"),
        ("10.0.0.1", "must be a mapping of keys, not a string"),
        ("{address: 10.0.0.1, user: root, ansible_user: root}", "both set user; keep one"),
    ],
)
def test_wrong_types_name_the_line(tmp_path: Path, entry: str, message: str) -> None:
    err = load_error(tmp_path, f"all:\n  hosts:\n    h0: {{address: 10.0.0.2}}\n    h1: {entry}\n")
    assert message in str(err)
    assert err.line == 4


def test_missing_address_names_the_host_entry(tmp_path: Path) -> None:
    err = load_error(tmp_path, "all:\n  vars: {user: x}\n  hosts:\n    h1: {port: 2200}\n")
    assert err.line == 4
    assert "host 'h1' has no address" in str(err)


def test_conflicting_definitions_name_both_places(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        """
        all:
          children:
            a: {hosts: {h1: {address: 10.0.0.1, port: 2200}}}
            b: {hosts: {h1: {port: 2201}}}
        """,
    )
    assert err.line == 4 and err.key == "port"
    assert "host 'h1' sets 'port' to 2201 here but to 2200 at" in str(err)
    assert f"{tmp_path / 'inv.yaml'}:3" in str(err)


def test_group_listed_twice_with_conflicting_vars(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        """
        all:
          children:
            a:
              children:
                web: {vars: {user: alice}, hosts: {w1: {address: 10.0.0.1}}}
            b:
              children:
                web: {vars: {user: bob}}
        """,
    )
    assert err.line == 8 and "group 'web' sets 'user'" in str(err)


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("", "empty inventory file", None),
        ("# only a comment\n", "empty inventory file", None),
        ("- h1\n", "the top level must be a mapping of groups", 1),
        ("all:\n  children:\n    web: {}\n", "the inventory defines no host", None),
        ("all:\n  hosts: [h1, h2]\n", "must be a mapping of host names, not a list", 2),
        (
            "all:\n  vars: {vars: {a: 1}}\n  hosts: {h1: {address: x}}\n",
            "go directly in a group",
            2,
        ),
        (
            "all:\n  vars: {ovh_service: ns1}\n  hosts: {h1: {address: x}}\n",
            "set it on the host",
            2,
        ),
        ("all:\n  children:\n    web:\n      children:\n        all: {}\n", "root group", 5),
        (
            "all:\n  hosts:\n    web: {address: x}\n  children:\n    web: {}\n",
            "both a host and a group",
            3,
        ),
        ("all:\n  hosts:\n    hybrid: {address: x}\n", "reserved", 3),
        ("all:\n  children:\n    dc:gra3: {}\n  hosts: {h: {address: x}}\n", "reserved", 3),
        ("all:\n  hosts:\n    '!h': {address: x}\n", "reserved", 3),
        ("all:\n  hosts:\n    'a,b': {address: x}\n", "must not contain", 3),
        ("all:\n  hosts:\n    42: {address: x}\n", "name must be a non-empty string", 3),
    ],
)
def test_malformed_inventories(tmp_path: Path, text: str, message: str, line: int | None) -> None:
    err = load_error(tmp_path, text)
    assert message in str(err)
    assert err.line == line


def test_group_cycle(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        """
        all:
          children:
            a:
              hosts: {h1: {address: 10.0.0.1}}
              children:
                b:
                  children:
                    a:
        """,
    )
    assert "groups contain each other" in str(err)
    assert "a -> b -> a" in str(err) or "b -> a -> b" in str(err)


def test_two_hosts_naming_one_ovh_service(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        "all:\n  hosts:\n    h1: {ovh_service: ns1}\n    h2: {ovh_service: ns1}\n",
    )
    assert "name the same ovh_service 'ns1'" in str(err)


def test_missing_paths_and_empty_directories(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="no such inventory file"):
        load_inventory([tmp_path / "nope.yaml"])
    with pytest.raises(InventoryError, match=r"no \*\.yaml"):
        load_inventory([tmp_path])
    with pytest.raises(InventoryError, match="no inventory file given"):
        load_inventory([])


# --- selection ---------------------------------------------------------------------------------


def selection_inventory() -> Inventory:
    hybrid = DiskSummary(hybrid=True, system_type="NVME", hdd_count=2, hdd_size_gb=4000)
    plain = DiskSummary(hybrid=False, system_type="NVME")
    hosts = (
        Host(
            "web-1",
            "10.0.0.1",
            datacenter="gra3",
            rack="G102",
            groups=("web",),
            labels={"env": "prod"},
        ),
        Host(
            "web-2",
            "10.0.0.2",
            datacenter="GRA3",
            rack="G103",
            groups=("web",),
            labels={"env": "staging"},
        ),
        Host(
            "db-1",
            "10.0.0.3",
            datacenter="rbx8",
            rack="G102",
            groups=("db",),
            disks=hybrid,
            labels={"env": "prod"},
        ),
        Host("db-2", "10.0.0.4", datacenter="rbx8", groups=("db",), disks=plain),
    )
    groups = {
        "all": tuple(h.name for h in hosts),
        "web": ("web-1", "web-2"),
        "db": ("db-1", "db-2"),
        "empty": (),
    }
    return Inventory(hosts, groups)


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (None, ["web-1", "web-2", "db-1", "db-2"]),
        ("web-1,", ["web-1"]),
        ("db-2", ["db-2"]),
        ("db-2,web-1", ["web-1", "db-2"]),  # inventory order, not limit order
        ("web", ["web-1", "web-2"]),
        ("all", ["web-1", "web-2", "db-1", "db-2"]),
        ("*-1", ["web-1", "db-1"]),
        ("db-[2-9]", ["db-2"]),
        ("label:env=prod", ["web-1", "db-1"]),
        ("label:env=stag*", ["web-2"]),
        ("label:env", ["web-1", "web-2", "db-1"]),
        ("dc:gra3", ["web-1", "web-2"]),
        ("dc:RBX*", ["db-1", "db-2"]),
        ("rack:g102", ["web-1", "db-1"]),
        ("hybrid", ["db-1"]),
        ("!hybrid", ["web-1", "web-2", "db-2"]),
        ("web,db,!web-2", ["web-1", "db-1", "db-2"]),
        ("!web-2,web", ["web-1"]),  # order of terms does not matter
        ("label:env=prod,&db", ["db-1"]),
        ("&rack:G102", ["web-1", "db-1"]),
        ("web,db-1,&label:env=prod,!dc:rbx8", ["web-1"]),
    ],
)
def test_select(limit: str | None, expected: list[str]) -> None:
    assert [h.name for h in selection_inventory().select(limit)] == expected


@pytest.mark.parametrize(
    ("limit", "shown"),
    [
        ("foo", "'foo'"),
        ("web,!wbe-1", "'!wbe-1'"),
        ("&dc:sbg5", "'&dc:sbg5'"),
        ("label:team=x", "'label:team=x'"),
        ("!", "'!'"),
    ],
)
def test_select_terms_that_match_nothing_are_usage_errors(limit: str, shown: str) -> None:
    with pytest.raises(UsageError, match=shown):
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
        ("hybrid,!label:env=prod", "--limit 'hybrid,!label:env=prod' selects no host"),
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


def test_select_no_match_message_and_hint() -> None:
    with pytest.raises(UsageError) as info:
        selection_inventory().select("web-3")
    assert info.value.message == "--limit 'web-3' matches no host or group"
    assert info.value.hint is not None and "'web-1'" in info.value.hint


def test_a_group_named_hybrid_adds_to_the_hybrid_term() -> None:
    base = selection_inventory()
    inv = Inventory(base.hosts, {**base.groups, "hybrid": ("web-2",)})
    assert [h.name for h in inv.select("hybrid")] == ["web-2", "db-1"]
    assert [h.name for h in inv.select("!hybrid")] == ["web-1", "db-2"]


def test_get_and_require() -> None:
    inv = selection_inventory()
    assert inv.get("db-1") is inv.hosts[2]
    assert inv.get("nope") is None
    with pytest.raises(UsageError, match="no host 'db-3'") as info:
        inv.require("db-3")
    assert info.value.hint is not None and "db-1" in info.value.hint


# --- records -----------------------------------------------------------------------------------


def test_host_round_trips_through_json() -> None:
    host = Host(
        "h1", "10.0.0.1", 2200, "ops", "/k", "ns1", "gra3", "G1", ("a", "b"), {"env": "prod"},
        {"nested": {"list": [1, 2.5, None, True]}}, DiskSummary(True, "NVME", 2, 4000), "i.yaml:3",
    )  # fmt: skip
    data = json.loads(json.dumps(host.to_dict()))
    assert Host.from_dict(data) == host
    with pytest.raises(InventoryError, match="unknown host record keys: colour"):
        Host.from_dict({**data, "colour": "blue"})
    with pytest.raises(InventoryError, match="bad host record"):
        Host.from_dict({**data, "disks": {"hybrid": True}})


def test_inventory_round_trips_through_json_and_refuses_duplicates() -> None:
    inv = selection_inventory()
    assert Inventory.from_dict(json.loads(inv.to_json())) == inv
    with pytest.raises(InventoryError, match="appears twice"):
        Inventory((inv.hosts[0], inv.hosts[0]))


def test_table_rows_are_display_strings() -> None:
    rows = selection_inventory().table_rows()
    assert all(tuple(row) == TABLE_COLUMNS for row in rows)
    assert rows[0]["groups"] == "web" and rows[0]["labels"] == "env=prod"
    assert [row["hybrid"] for row in rows] == ["?", "?", "yes", "no"]
    assert rows[3]["rack"] == "-"


# --- classification ----------------------------------------------------------------------------


def hardware(*groups: tuple[str, int, int]) -> Hardware:
    return Hardware("test", tuple(DiskGroup(i, t, c, s) for i, (t, c, s) in enumerate(groups, 1)))


@pytest.mark.parametrize(
    ("groups", "hybrid", "system", "hdd_count", "hdd_size"),
    [
        ((("NVME", 2, 960), ("HDD", 4, 8000)), True, "NVME", 4, 8000),
        ((("SSD", 2, 480), ("SATA", 2, 4000)), True, "SSD", 2, 4000),
        ((("nvme", 2, 960), ("sas", 2, 2000)), True, "NVME", 2, 2000),
        ((("SATA SSD", 2, 480), ("SAS HDD", 6, 12000)), True, "SSD", 6, 12000),
        (
            (("NVMe SSD", 2, 1920), ("SSD", 2, 480), ("HDD", 2, 4000), ("HDD", 2, 8000)),
            True,
            "NVME",
            4,
            4000,
        ),
        ((("NVME", 2, 1920),), False, "NVME", 0, 0),
        ((("HDD", 2, 4000),), False, None, 2, 4000),
        ((("NVME", 2, 1920), ("SSD", 4, 3840)), False, "NVME", 0, 0),
        ((("NVME", 2, 960), ("", 2, 4000)), False, "NVME", 0, 0),
        ((("NVME", 2, 960), ("FLASH", 2, 4000), ("SSHD", 2, 2000)), False, "NVME", 0, 0),
        ((), False, None, 0, 0),
    ],
)
def test_classify_disks(
    groups: tuple[tuple[str, int, int], ...],
    hybrid: bool,
    system: str | None,
    hdd_count: int,
    hdd_size: int,
) -> None:
    summary = classify_disks(hardware(*groups))
    assert (summary.hybrid, summary.system_type, summary.hdd_count, summary.hdd_size_gb) == (
        hybrid, system, hdd_count, hdd_size,
    )  # fmt: skip


def test_classify_reports_system_group_totals_and_description() -> None:
    summary = classify_disks(hardware(("NVME", 2, 960), ("HDD", 2, 4000), ("HDD", 1, 8000)))
    assert (summary.system_count, summary.system_size_gb) == (2, 960)
    assert summary.hdd_total_gb == 16000
    assert summary.description == "2x960GB NVME + 2x4000GB HDD + 1x8000GB HDD"
