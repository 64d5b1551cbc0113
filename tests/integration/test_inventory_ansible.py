"""fleet against Ansible itself on the same inventories: hosts, group membership, every variable,
where the ssh connection goes, and what ``--limit`` selects.

The inventories under tests/data/inventories exercise every feature fleet reads (YAML and INI,
ranges, ``host:port``, ``group_vars/`` and ``host_vars/`` as files and directories, priorities,
the connection variables at host and group level, several sources); more are drawn at random.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from fleet.errors import UsageError
from fleet.inventory import load_inventory
from tests.ansible import oracle
from tests.ansible.compare import assert_same_as_ansible

DATA = Path(__file__).resolve().parents[1] / "data" / "inventories"
CASES = {
    "yaml": [DATA / "yaml_full" / "hosts.yml"],
    "ini": [DATA / "ini_full" / "hosts"],
    "directory": [DATA / "dir_mixed"],
    "three-sources": [
        DATA / "dir_mixed",
        DATA / "ini_full" / "hosts",
        DATA / "yaml_full" / "hosts.yml",
    ],
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_inventory_equals_ansible_inventory_list(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = CASES[case]
    cwd = DATA
    monkeypatch.chdir(cwd)  # relative key files resolve here, for both
    inventory = assert_same_as_ansible(paths, cwd)
    assert len(inventory.hosts) >= 8


def test_the_cases_exercise_what_they_claim() -> None:
    """The comparison is not vacuous: the files do hold the features the docstring lists."""
    inventory = load_inventory(CASES["three-sources"])
    stor = inventory.require("stor-special")
    assert (stor.address, stor.port, stor.user) == ("203.0.113.50", 2222, "ops")
    assert inventory.require("web2").address == "198.51.100.22"  # ssh_host beats host
    assert inventory.require("db1").rack == "HIGH"  # ansible_group_priority
    assert inventory.require("web02").vars["http_port"] == 9090  # host_vars/
    assert inventory.require("app-1").vars["app_port"] == 8002  # host_vars/ directory
    assert inventory.require("web-quoted").vars["motd"] == "hello world"  # INI quoting
    assert {"cold-a", "cold-x5", "web01", "db-b", "10.0.0.5"} <= set(inventory.groups["all"])
    assert inventory.require("late-1").groups == ("edge", "later", "prod")


LIMITS = [
    "all", "web", "storage", "storage_gra", "stor-0*", "web[0]", "web[1]", "web[-1]",
    "web[1:2]", "web[2:]", "web[0:0]", "storage_gra[1:3]", "storage[5:]", "~stor-0[12]", "~web",
    "web:storage", "web:&storage", "web:!stor-01", "storage,!stor-02", "&web", "!web", "canary",
    "*", "ungrouped", "db1,db2", "cold-*:!cold-x*", "peers", "p*", "prio_*[0]", "all[0]",
    "all[1]", "all[0:]", "2001:db8::1", "stor-special", "defaults:&peers", "w*[1]",
    "*.example.net", "web, storage_rbx", "web,&canary,!web2", "cold-[ab]", "nothing",
    "web,nothing", "!nothing", "web[9]",
]  # fmt: skip


def test_limit_selects_what_ansible_selects(monkeypatch: pytest.MonkeyPatch) -> None:
    paths = CASES["yaml"]
    inventory = load_inventory(paths)
    answers = oracle.limits(paths, LIMITS, DATA)
    for pattern in LIMITS:
        expected = answers[pattern]
        if isinstance(expected, dict):  # Ansible refuses (no match, bad index): so does fleet
            with pytest.raises(UsageError):
                inventory.select(pattern)
        else:
            assert sorted(h.name for h in inventory.select(pattern)) == expected, pattern


# --- inventories drawn at random ----------------------------------------------------------


def _random_inventory(rng: random.Random, root: Path) -> list[Path]:
    """A tree of groups with priorities and variables at every level, hosts in several groups,
    ranges and ports, group_vars/ and host_vars/; written as YAML or INI."""
    groups = [f"g{i}" for i in range(rng.randint(3, 9))]
    parents = {g: rng.sample(groups[:i], k=min(i, rng.randint(0, 2))) for i, g in enumerate(groups)}
    hosts = [f"h{i}" for i in range(rng.randint(4, 14))]
    members = {g: rng.sample(hosts, k=rng.randint(0, 4)) for g in groups}
    members[groups[0]].append(hosts[0])  # never an empty inventory
    keys = ["a", "b", "c", "ansible_port", "ansible_ssh_port", "ansible_user", "ansible_ssh_user"]

    def value(key: str) -> Any:
        if "port" in key:
            return rng.choice([rng.randint(1, 65535), str(rng.randint(1, 65535))])
        if "user" in key:
            return f"user{rng.randint(0, 9)}"
        return rng.choice([f"v{rng.randint(0, 9)}", rng.randint(0, 9), True, None, [1, 2]])

    def some_vars() -> dict[str, Any]:
        return {k: value(k) for k in rng.sample(keys, k=rng.randint(0, 3))}

    group_vars = {g: some_vars() for g in groups}
    for g in groups:
        if rng.random() < 0.4:
            group_vars[g]["ansible_group_priority"] = rng.randint(0, 5)
    host_vars = {h: some_vars() for h in hosts}
    if rng.random() < 0.5:
        path = root / "hosts.ini"
        path.write_text(_as_ini(groups, parents, members, group_vars, host_vars))
    else:
        path = root / "hosts.yml"
        path.write_text(json.dumps(_as_yaml(groups, parents, members, group_vars, host_vars)))
    (root / "group_vars").mkdir()
    (root / "host_vars").mkdir()
    for g in rng.sample(groups, k=min(2, len(groups))):
        (root / "group_vars" / f"{g}.yml").write_text(json.dumps({"a": f"file-{g}"}))
    for h in rng.sample(hosts, k=2):
        (root / "host_vars" / h).write_text(json.dumps({"b": f"file-{h}"}))
    return [path]


def _ini_value(value: Any) -> str:
    return repr(value) if not isinstance(value, str) else value


def _as_ini(groups, parents, members, group_vars, host_vars) -> str:  # type: ignore[no-untyped-def]
    lines = []
    for g in groups:
        lines.append(f"[{g}]")
        for h in members[g]:
            pairs = " ".join(
                f"{k}={_ini_value(v)!s}".replace(" ", "") for k, v in host_vars[h].items()
            )
            lines.append(f"{h} {pairs}".strip())
        if group_vars[g]:
            lines.append(f"[{g}:vars]")
            lines += [f"{k}={_ini_value(v)}" for k, v in group_vars[g].items()]
    for g in groups:
        for p in parents[g]:
            lines += [f"[{p}:children]", g]
    return "\n".join(lines) + "\n"


def _as_yaml(groups, parents, members, group_vars, host_vars) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    data: dict[str, Any] = {}
    for g in groups:
        body: dict[str, Any] = {"vars": group_vars[g]}
        body["hosts"] = {h: dict(host_vars[h]) for h in members[g]}
        body["children"] = {c: {} for c in groups if g in parents[c]}
        data[g] = body
    return data


@pytest.mark.parametrize("seed", range(int(os.environ.get("FLEET_TEST_SEEDS", "6"))))
def test_random_inventories_equal_ansible(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    paths = _random_inventory(random.Random(seed), tmp_path)
    assert_same_as_ansible(paths, tmp_path)


HOST_KEYS = [
    "web", "web:22", "web[01:03]:2222", "10.0.0.1", "10.0.0.1:22", "10.0.0.[1:3]", "fe80::1",
    "[fe80::1]:22", "[web]:22", "db-[a:c]", "db-[a:C]", "h[1:10:3]", "h[01:10]", "h[1:010]",
    "x_:22", "x-:22", "a.b.c:80", "[web:22]:33", "web:db", "web[1:2]x[a:b]", "é1:22", "h[:3]",
    "h[0:0]", "h[Z:a]", "h[00:9]", "h[2:5:0]", "h[a:5]", "h[5:1]", "h[1:3", "[fe80::1]",
]  # fmt: skip


def test_host_keys_read_as_ansible_reads_them(tmp_path: Path) -> None:
    """Names and ports from host keys, ranges included; where Ansible fails or yields no host,
    fleet refuses."""
    from fleet.inventory.hostpattern import PatternError, expand

    answers = oracle.patterns(HOST_KEYS, tmp_path)["keys"]
    for key in HOST_KEYS:
        try:
            names, port = expand(key, 1000)
            mine: Any = [names, port]
        except PatternError:
            mine = "error"
        assert mine == answers[key], key


def test_every_variable_ansible_core_knows_is_known(tmp_path: Path) -> None:
    """fleet's list of Ansible's variables (for near misses) is ansible-core's own."""
    from fleet.inventory.keys import KNOWN_ANSIBLE_VARS

    known = set(oracle.patterns([], tmp_path)["known"])
    assert known - {"ansible_group_priority"} <= KNOWN_ANSIBLE_VARS
    assert KNOWN_ANSIBLE_VARS - known <= {"ansible_group_priority"}
