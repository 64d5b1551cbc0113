"""The stage table covers every kind a plan may declare, and stages stay below the engine: no
module of ``fleet.stages`` imports ``fleet.engine`` (stages see only their context), and the
two packages hold no import cycle."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

from fleet.plan import PROVIDER_KINDS, StageKind
from fleet.stages.registry import STAGES

ROOT = Path(__file__).resolve().parents[2] / "fleet"


def test_every_declared_kind_has_one_entry() -> None:
    assert set(STAGES) == set(get_args(StageKind))
    assert {k for k, v in STAGES.items() if v.fresh_session} == set(PROVIDER_KINDS)
    assert [k for k, v in STAGES.items() if v.per_step] == ["ssh"]


def _imports(package: str) -> dict[str, set[str]]:
    """Module -> the fleet modules it imports (anywhere in its body), for one package."""
    out: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        module = ".".join(("fleet", *path.relative_to(ROOT).with_suffix("").parts))
        module = module.removesuffix(".__init__")
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        out[module] = {name for name in found if name.startswith("fleet.")}
    return out


def test_stages_never_import_the_engine() -> None:
    offenders = {
        module: sorted(n for n in names if n.startswith("fleet.engine"))
        for module, names in _imports("stages").items()
    }
    assert {m: n for m, n in offenders.items() if n} == {}


def in_cycles(edges: dict[str, set[str]]) -> list[str]:
    """The modules from which an import path leads back to themselves."""

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(
            nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt}))
            for nxt in edges.get(start, ())
        )

    return sorted(m for m in edges if reaches(m, m, {m}))


def test_no_cycle_in_engine_and_stages() -> None:
    graph = {**_imports("engine"), **_imports("stages")}
    assert len(graph) > 10
    assert (
        in_cycles({m: {n for n in names if n in graph} - {m} for m, names in graph.items()}) == []
    )


def test_the_cycle_check_sees_a_cycle() -> None:
    """The check above can fail: a two-module cycle is found, a chain is not."""
    assert in_cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == ["a", "b"]
    assert in_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
