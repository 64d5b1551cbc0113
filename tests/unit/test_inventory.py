"""Loading Ansible inventories: fleet's settings, connections, every problem with its line,
records. (Equality with Ansible itself: tests/integration/test_inventory_ansible.py.)"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from fleet.errors import InventoryError
from fleet.inventory import (
    TABLE_COLUMNS,
    DiskSummary,
    Host,
    Inventory,
    InventoryProblems,
    classify_disks,
    load_inventory,
)
from fleet.inventory.records import make_host
from fleet.provider.base import DiskGroup, Hardware

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "inventory.yaml"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, name: str = "inv.yaml") -> Inventory:
    return load_inventory([write(tmp_path, name, text)])


def load_error(tmp_path: Path, text: str, name: str = "inv.yaml") -> InventoryError:
    path = write(tmp_path, name, text)
    with pytest.raises(InventoryError) as info:
        load_inventory([path])
    return info.value


def messages(error: InventoryError) -> list[str]:
    items = error.problems if isinstance(error, InventoryProblems) else (error,)
    return [item.message for item in items]


# --- the example -------------------------------------------------------------------------------


def test_example_loads_with_fleet_settings_and_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/ops")
    inv = load_inventory([EXAMPLE])
    assert [h.name for h in inv.hosts] == [
        "stor-gra-1", "stor-gra-2", "stor-gra-3", "stor-rbx-1", "web-1", "web-2",
    ]  # fmt: skip
    gra3 = inv.require("stor-gra-3")
    assert (gra3.address, gra3.port, gra3.user) == ("203.0.113.13", 22, "root")
    assert gra3.key_file == "/home/ops/.ssh/fleet_ed25519"
    assert (gra3.datacenter, gra3.rack, gra3.service_name) == (
        "gra3",
        "G103",
        "ns1003.ip-203-0-113.eu",
    )
    assert gra3.labels == {"env": "prod", "team": "infra", "role": "storage"}
    assert gra3.vars["hdd_filesystem"] == "xfs" and gra3.vars["hdd_mount"] == "/srv/data"
    assert gra3.groups == ("canary", "storage", "storage_gra")
    web1 = inv.require("web-1")
    assert (web1.address, web1.port, web1.user, web1.datacenter) == (
        "198.51.100.21",
        2222,
        "deploy",
        "sbg5",
    )
    rbx = inv.require("stor-rbx-1")
    assert rbx.labels["canary"] == "yes" and rbx.rack is None
    assert inv.groups["storage"] == ("stor-gra-1", "stor-gra-2", "stor-gra-3", "stor-rbx-1")
    assert inv.groups["canary"] == ("stor-gra-3", "web-1")
    assert rbx.source == f"{EXAMPLE}:35"


# --- fleet's mapping -----------------------------------------------------------------------------


def test_fleet_mapping_merges_key_by_key_down_the_groups(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        """
        all:
          vars: {fleet: {datacenter: gra1, labels: {a: all, b: all}}}
          children:
            outer:
              vars: {fleet: {rack: R1, labels: {b: outer}}}
              children:
                inner:
                  vars: {fleet: {datacenter: rbx8, labels: {c: inner}}}
                  hosts:
                    h1: {fleet: {labels: {d: host}, ovh_service: ns1.ip-1.eu}}
                    h2: {fleet: {rack: ~}}
        """,
    )
    h1, h2 = inv.hosts
    assert (h1.datacenter, h1.rack, h1.service_name) == ("rbx8", "R1", "ns1.ip-1.eu")
    assert h1.labels == {"a": "all", "b": "outer", "c": "inner", "d": "host"}
    assert h1.vars["fleet"] == {"labels": {"d": "host"}, "ovh_service": "ns1.ip-1.eu"}  # Ansible's
    assert (h2.rack, h2.labels) == (None, {"a": "all", "b": "outer", "c": "inner"})


def test_variables_named_like_old_keys_are_plain_variables(tmp_path: Path) -> None:
    """`port`, `user`, `address` are user variables, as in Ansible: never SSH settings."""
    inv = load(tmp_path, "all:\n  vars: {port: 8080, user: app}\n  hosts:\n    h1: {address: x}\n")
    host = inv.require("h1")
    assert (host.address, host.port, host.user) == ("h1", 22, "root")
    assert host.vars == {"port": 8080, "user": "app", "address": "x"}


# --- connections ---------------------------------------------------------------------------------


def test_connection_spellings_at_group_level_and_their_precedence(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        """
        all:
          vars: {ansible_ssh_user: ops, ansible_ssh_port: 2200}
          children:
            web:
              vars: {ansible_user: deploy, ansible_port: 2201, ansible_private_key_file: k1}
              hosts:
                w1: {ansible_host: 10.0.0.1}
                w2: {ansible_ssh_host: 10.0.0.2, ansible_host: 10.0.0.9}
                w3:
                  ansible_ssh_private_key_file: /keys/k2
                  ansible_connection: paramiko
                  ansible_paramiko_port: 2299
        """,
    )
    w1, w2, w3 = inv.hosts
    # ansible_ssh_* beats ansible_*, whatever the level (Ansible's ssh plugin reads it last)
    assert (w1.address, w1.port, w1.user) == ("10.0.0.1", 2200, "ops")
    assert w1.key_file == str(Path.cwd() / "k1")  # as ssh would open it: from where fleet runs
    assert w2.address == "10.0.0.2"
    assert (w3.port, w3.key_file) == (2299, "/keys/k2")


def test_host_port_keys_and_defaults(tmp_path: Path) -> None:
    inv = load(tmp_path, "all:\n  hosts:\n    db:2222:\n    '[2001:db8::5]:2223':\n    web:\n")
    assert [(h.name, h.address, h.port, h.user) for h in inv.hosts] == [
        ("db", "db", 2222, "root"),
        ("2001:db8::5", "2001:db8::5", 2223, "root"),
        ("web", "web", 22, "root"),
    ]
    assert inv.require("db").vars == {"ansible_port": 2222}


@pytest.mark.parametrize(
    ("entry", "refused"),
    [
        ("{ansible_connection: local}", "ansible_connection=local"),
        ("{ansible_ssh_pass: secret}", "ansible_ssh_pass asks for password logins"),
        ("{ansible_ssh_common_args: '-o ProxyCommand=x'}", "changes where ssh connects"),
        ("{ansible_become_pass: '{{ vault_pass }}'}", "a template fleet does not render"),
        ("{ansible_become_password: hunter2}", "a password written in the inventory"),
        ("{ansible_host: '{{ inventory_hostname }}.lan'}", "ansible_host is a template"),
        ("{ansible_private_key: '-----BEGIN'}", "a private key given inline"),
    ],
)
def test_connections_fleet_cannot_honour_are_refused_before_connecting(
    tmp_path: Path, entry: str, refused: str
) -> None:
    inv = load(tmp_path, f"all:\n  hosts:\n    h1: {entry}\n    h2:\n")
    assert [h.name for h in inv.select(None)] == ["h1", "h2"]  # listing works
    with pytest.raises(InventoryError, match=refused) as info:
        inv.check_connectable(inv.hosts)
    assert info.value.hint is not None and "--limit '!h1'" in info.value.hint
    assert "hunter2" not in str(info.value) + str(info.value.hint)
    inv.check_connectable([inv.require("h2")])


def test_harmless_ansible_settings_are_accepted(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        """
        all:
          vars:
            ansible_connection: ssh
            ansible_become: true
            ansible_python_interpreter: /usr/bin/python3
            ansible_ssh_common_args: -o StrictHostKeyChecking=no
          hosts: {h1: }
        """,
    )
    inv.check_connectable()


# --- INI -----------------------------------------------------------------------------------------


def test_ini_children_declared_later_and_values_as_literals(tmp_path: Path) -> None:
    inv = load(
        tmp_path,
        """
        [prod:children]
        web
        [web]
        web-[1:2] ansible_port=2200 weight=2.5 on=True text="a b"
        [web:vars]
        fleet={'datacenter': 'gra3'}
        ansible_ssh_user=ops
        """,
        name="hosts.ini",
    )
    web1 = inv.require("web-1")
    assert (web1.port, web1.user, web1.datacenter, web1.groups) == (
        2200,
        "ops",
        "gra3",
        ("prod", "web"),
    )
    assert web1.vars["weight"] == 2.5 and web1.vars["on"] is True and web1.vars["text"] == "a b"


def test_ini_sections_for_undeclared_groups_are_reported_with_their_line(tmp_path: Path) -> None:
    err = load_error(tmp_path, "h1\n[ghost:vars]\nx=1\n[p:children]\nnope\n", name="hosts.ini")
    assert messages(err) == [
        f"{tmp_path / 'hosts.ini'}:2: ghost: section [ghost:vars] is for a group declared nowhere",
        f"{tmp_path / 'hosts.ini'}:5: nope: section [p:children] names 'nope', declared nowhere",
    ]


def test_file_without_extension_is_yaml_or_ini(tmp_path: Path) -> None:
    assert load(tmp_path, "all:\n  hosts: {y1: }\n", name="a/hosts").require("y1")
    assert load(tmp_path, "i1\ni2 x=1\n", name="b/hosts").require("i2").vars == {"x": 1}


# --- every problem, with its line --------------------------------------------------------------


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        """
        all:
          vars:
            ansible_prot: 22
            fleet: {datacentre: gra3, ovh_service: ns1}
          children:
            web:
              host: {w1: }
              hosts:
                w2: {ansible_port: 70000, ansible_user: -oops}
                w3: 10.0.0.3
                w[5:1]:
        """,
    )
    assert isinstance(err, InventoryProblems)
    path = tmp_path / "inv.yaml"
    assert [(p.line, p.key) for p in err.problems] == [
        (3, "ansible_prot"), (4, "datacentre"), (4, "ovh_service"), (7, "host"),
        (9, "ansible_port"), (9, "ansible_user"), (10, "w3"), (11, "w[5:1]"),
    ]  # fmt: skip
    text = str(err)
    assert text.startswith("8 problems in the inventory:")
    assert f"{path}:3: ansible_prot: unknown variable 'ansible_prot'" in text
    assert "did you mean 'ansible_port'?" in text
    assert "did you mean 'datacenter'?" in text
    assert "ovh_service names one server: set it on the host" in text
    assert "did you mean 'hosts'?" in text
    assert "must be a port number from 1 to 65535, not 70000" in text
    assert "host 'w3' must be a mapping of variables" in text
    assert "goes backwards" in text


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("ansible-host", "ansible_host"),
        ("ansble_user", "ansible_user"),
        ("ansible_ssh_private_key_files", "ansible_ssh_private_key_file"),
        ("ansible_ssh_key", "ansible_ssh_private_key_file"),
        ("ansible_become_passwd", "ansible_become_pass"),
    ],
)
def test_near_misses_of_ansible_variables(tmp_path: Path, name: str, meant: str) -> None:
    err = load_error(tmp_path, f"all:\n  hosts:\n    h1: {{{name}: x}}\n")
    assert (err.line, err.key, err.hint) == (3, name, f"did you mean {meant!r}?")


def test_a_near_miss_of_the_fleet_variable(tmp_path: Path) -> None:
    err = load_error(tmp_path, "all:\n  hosts:\n    h1: {flet: {rack: R1}}\n    h2: {feet: 2}\n")
    assert (err.line, err.key, err.hint) == (3, "flet", "did you mean 'fleet'?")
    assert "holds fleet's keys" in err.message


@pytest.mark.parametrize(
    "name", ["ansible_hostname", "ansible_user_id", "ansible_eth0", "hdd_mount"]
)
def test_names_that_are_not_near_misses(tmp_path: Path, name: str) -> None:
    assert load(tmp_path, f"all:\n  hosts:\n    h1: {{{name}: x}}\n").require("h1").vars == {
        name: "x"
    }


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("", "empty inventory file", None),
        ("- h1\n", "the top level must be a mapping of groups", 1),
        ("all:\n  children:\n    web: {}\n", "the inventory defines no host", None),
        ("all:\n  hosts: [h1, h2]\n", "hosts: must be a mapping, not a list", 2),
        ("plugin: amazon.aws.aws_ec2\n", "configures the inventory plugin", 1),
        ("all:\n  children:\n    web:\n      children:\n        all: {}\n", "root group", 5),
        (
            "all:\n  hosts:\n    web:\n  children:\n    web: {}\n",
            "names both a host and a group",
            3,
        ),
        ("all:\n  hosts:\n    '!h':\n", "starts with a --limit operator", 3),
        ("all:\n  hosts:\n    'a,b':\n", "must not contain spaces or ','", 3),
        ("all:\n  hosts:\n    42:\n", "a host name must be text", 3),
        ("all:\n  hosts:\n    h1: {a: 1, a: 2}\n", "duplicate key 'a' (first at line 3)", 3),
        ("all:\n  hosts:\n    h1: {s: !vault '$ANSIBLE'}\n", "does not decrypt Ansible Vault", 3),
        ("all:\n  hosts:\n    h1: {b: !!binary aGk=}\n", "binary data", 3),
        ("all:\n  hosts:\n    h1: {x: 1\n", "invalid YAML", 4),
        ("all:\n  hosts:\n    h1: {fleet: [1]}\n", "holds fleet's settings, a mapping", 3),
        ("all:\n  hosts:\n    h1: {fleet: {labels: {a: yes}}}\n", "must be text, not a boolean", 3),
        ("all:\n  hosts:\n    h1: {fleet: {port: 22}}\n", "unknown fleet key 'port'", 3),
    ],
)
def test_malformed_inventories(tmp_path: Path, text: str, message: str, line: int | None) -> None:
    err = load_error(tmp_path, text)
    assert message in str(err)
    assert err.line == line


def test_group_cycle_is_named(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        """
        all:
          children:
            a:
              hosts: {h1: }
              children:
                b:
                  children:
                    a:
        """,
    )
    assert "groups contain each other: a -> b -> a" in str(err) or "b -> a -> b" in str(err)


def test_files_fleet_does_not_read_are_refused_by_name(tmp_path: Path) -> None:
    script = write(tmp_path, "dyn/inventory.py", "#!/usr/bin/env python3\nprint('{}')\n")
    script.chmod(0o755)
    write(tmp_path, "dyn/hosts.toml", "[all]\n")
    write(tmp_path, "dyn/hosts.yml", "all:\n  hosts: {h1: }\n")
    write(tmp_path, "dyn/notes.md", "# not read\n")
    with pytest.raises(InventoryProblems) as info:
        load_inventory([tmp_path / "dyn"])
    assert "an inventory script: fleet runs nothing" in str(info.value)
    assert "TOML inventories are not supported" in str(info.value)


def test_non_utf8_names_the_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_bytes(b"all:\n  hosts:\n    caf\xe9:\n")
    with pytest.raises(InventoryError) as info:
        load_inventory([path])
    assert (info.value.line, "byte 0xe9 at column 8" in str(info.value)) == (3, True)


def test_missing_paths_and_empty_directories(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="no such inventory file"):
        load_inventory([tmp_path / "nope.yaml"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InventoryError, match="no inventory file in this directory"):
        load_inventory([tmp_path / "empty"])
    with pytest.raises(InventoryError, match="no inventory file given"):
        load_inventory([])


def test_two_hosts_naming_one_ovh_service(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        "all:\n  hosts:\n    h1: {fleet: {ovh_service: ns1}}\n    h2: {fleet: {ovh_service: ns1}}\n",
    )
    assert "name the same ovh_service 'ns1'" in str(err)


def test_the_same_file_named_twice_is_read_once_and_hosts_may_span_files(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "web:\n  vars: {x: 1}\n  hosts: {w1: {y: 1}}\n")
    b = write(tmp_path, "b.ini", "[web]\nw1 z=2\nw2\n")
    inv = load_inventory([a, b, a])
    assert inv.groups["web"] == ("w1", "w2")
    assert inv.require("w1").vars == {"x": 1, "y": 1, "z": 2}


# --- records -----------------------------------------------------------------------------------


def test_host_round_trips_through_json_and_make_host_equals_host() -> None:
    host = Host(
        "h1", "10.0.0.1", 2200, "ops", "/k", "ns1", "gra3", "G1", ("a", "b"), {"env": "prod"},
        {"nested": {"list": [1, 2.5, None, True]}}, DiskSummary(True, "NVME", 2, 4000, kinds=("NVME", "HDD")),
        "i.yaml:3", "SCALE-1", ("ansible_ssh_pass asks for password logins",),
    )  # fmt: skip
    data = json.loads(json.dumps(host.to_dict()))
    assert Host.from_dict(data) == host
    assert make_host({k: v for k, v in vars(host).items() if k != "disks"}) == Host(
        **{k: v for k, v in vars(host).items() if k != "disks"}
    )
    with pytest.raises(InventoryError, match="unknown host record keys: colour"):
        Host.from_dict({**data, "colour": "blue"})


def test_inventory_round_trips_through_json() -> None:
    inv = load_inventory([EXAMPLE])
    assert Inventory.from_dict(json.loads(inv.to_json())) == inv


def test_table_rows_are_display_strings() -> None:
    rows = load_inventory([EXAMPLE]).table_rows()
    assert all(tuple(row) == TABLE_COLUMNS for row in rows)
    assert rows[0]["labels"] == "env=prod,role=storage,team=infra"
    assert {row["hybrid"] for row in rows} == {"?"}


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


def test_classify_reports_system_group_totals_kinds_and_description() -> None:
    summary = classify_disks(hardware(("NVME", 2, 960), ("HDD", 2, 4000), ("HDD", 1, 8000)))
    assert (summary.system_count, summary.system_size_gb) == (2, 960)
    assert summary.hdd_total_gb == 16000
    assert summary.kinds == ("NVME", "HDD")
    assert summary.description == "2x960GB NVME + 2x4000GB HDD + 1x8000GB HDD"


def test_key_files_follow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    inv = load(tmp_path, "all:\n  hosts:\n    h1: {ansible_ssh_private_key_file: ~/k}\n")
    assert inv.require("h1").key_file == os.path.join(tmp_path, "home", "k")
