"""Hostile inventories, shared by tests/unit/test_inventory_hostile.py and
bench/inventory_hostile.py: each is small on disk and built to exhaust a naive loader."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Case:
    name: str
    files: dict[str, bytes]  # relative path -> content; the first is the inventory given
    line: int | None  # the line the refusal names (None: the file alone)
    says: str  # a phrase of the refusal (or, for inventories that load, of the result)
    extra: list[str] = field(default_factory=list)  # more paths to give, relative
    reported: str | None = None  # the file the refusal names, relative (default: the first)

    def write(self, directory: Path) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        for name, content in self.files.items():
            path = directory / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        first = directory / next(iter(self.files))
        return [first, *(directory / e for e in self.extra)]


def _text(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def _laughs() -> bytes:
    lines = [
        "all:",
        "  vars:",
        '    l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
    ]
    for i in range(1, 10):
        refs = ", ".join([f"*l{i - 1}"] * 9)
        lines.append(f"    l{i}: &l{i} [{refs}]")
    lines += ["  hosts:", "    h1:"]
    return _text(lines)


def _merges() -> bytes:
    lines = ["all:", "  vars:", "    m0: &m0 {a: 1, b: 2}"]
    for i in range(1, 40):
        lines.append(f"    m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: {i}}}")
    lines += ["  hosts:", "    h1:"]
    return _text(lines)


def _deep_block(levels: int) -> bytes:
    lines = ["all:", "  hosts:", "    h1:"]
    lines += [f"{'  ' * (i + 3)}k{i}:" for i in range(levels)]
    return _text(lines)


def _nested_yaml(depth: int) -> bytes:
    lines = ["all:", "  children:"]
    for i in range(depth):
        indent = "    " + "    " * i
        lines += [f"{indent}g{i}:", f"{indent}  children:"]
    indent = "    " + "    " * depth
    lines += [f"{indent}leaf:", f"{indent}  hosts:", f"{indent}    deep-host:"]
    return _text(lines)


def _nested_ini(depth: int) -> bytes:
    lines = ["[g0]", "top-host"]
    for i in range(depth):
        lines += [f"[g{i}:children]", f"g{i + 1}"]
    lines += [f"[g{depth}]", "deep-host"]
    return _text(lines)


def _cycle_ini() -> bytes:
    return _text(
        ["[a]", "h1", "[b]", "[c]", "[a:children]", "b", "[b:children]", "c", "[c:children]", "a"]
    )


HOSTILE = [
    Case("alias-bomb", {"inv.yml": _laughs()}, 9, "aliases expand to more than"),
    Case("merge-bomb", {"inv.yml": _merges()}, 14, "aliases expand to more than"),
    Case(
        "deep-flow", {"inv.yml": b"all:\n  vars:\n    x: " + b"[" * 200_000 + b"\n"}, 3, "nesting"
    ),
    Case("deep-block", {"inv.yml": _deep_block(1200)}, 1000, "nesting"),
    Case(
        "giant-range",
        {"inv.yml": b"all:\n  hosts:\n    h[0:99999999999]:\n"},
        3,
        "more than 250000 host",
    ),
    Case(
        "range-product",
        {"inv.yml": b"all:\n  hosts:\n    h[0:999]x[0:999]y[0:999]:\n"},
        3,
        "more than 250000 host names",
    ),
    Case(
        "too-many-hosts",
        {"inv.yml": _text(["all:", "  hosts:", *(f"    r{i}[000000:099999]:" for i in range(9))])},
        5,
        "declares more than 250000 host names",
    ),
    Case(
        "too-many-hosts-ini",
        {"hosts.ini": _text([f"r{i}[000000:099999]" for i in range(9)])},
        3,
        "declares more than 250000 host names",
    ),
    Case(
        "duplicate-keys",
        {"inv.yml": _text(["all:", "  hosts:", *(["    h1:"] * 5000)])},
        4,
        "duplicate key 'h1' (first at line 3)",
    ),
    Case(
        "not-utf8",
        {"inv.yml": b"all:\n  hosts:\n    h1:\n    h2: {note: caf\xe9}\n"},
        4,
        "not valid UTF-8",
    ),
    Case(
        "group-cycle",
        {
            "inv.yml": _text(
                [
                    "all:",
                    "  children:",
                    "    a:",
                    "      hosts: {h1: }",
                    "      children:",
                    "        b:",
                    "          children:",
                    "            a:",
                ]
            )
        },
        3,
        "groups contain each other",
    ),
    Case("group-cycle-ini", {"hosts.ini": _cycle_ini()}, 1, "groups contain each other"),
    Case("groups-too-deep", {"hosts.ini": _nested_ini(1500)}, 3003, "nest 1501 deep"),
    Case(
        "too-many-groups",
        {"hosts.ini": _text(["h1", *(f"[g{i}]" for i in range(25_000))])},
        20_000,
        "more than 20000 groups",
    ),
    Case(
        "typo-flood",
        {
            "inv.yml": _text(
                [
                    "all:",
                    "  hosts:",
                    "    h1:",
                    *(f"      ansible_host{i}: x" for i in range(30_000)),
                ]
            )
        },
        4,
        "did you mean 'ansible_host'",
    ),
    Case(
        "vault-file",
        {
            "hosts.yml": b"all:\n  hosts:\n    h1:\n",
            "group_vars/all.yml": b"$ANSIBLE_VAULT;1.1;AES256\n6162\n",
        },
        1,
        "vault-encrypted file",
        reported="group_vars/all.yml",
    ),
]

#: Deep but legitimate: these must load (no RecursionError anywhere).
NESTED_GROUPS = [
    Case(
        "yaml-300-nested-groups",
        {"inv.yml": _nested_yaml(300)},
        None,
        "loaded 1 hosts in 303 groups",
    ),
    Case(
        "ini-900-nested-groups",
        {"hosts.ini": _nested_ini(900)},
        None,
        "loaded 2 hosts in 903 groups",
    ),
]
