"""The sandbox benchmark's own logic: its output check, medians, ratios and target verdict."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "sandbox_bench.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sandbox_bench", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["sandbox_bench"] = module  # dataclasses resolve annotations through it
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["sandbox_bench"]
    return module


def target(bench: ModuleType, names: list[str], steps: int) -> Any:
    p = Path("/nonexistent")
    return bench.Target(names, p, p, p, p, set(), steps)


def full_output(names: list[str], steps: int) -> str:
    return "".join(f"{n} step-{i}\n" for n in names for i in range(1, steps + 1))


def test_complete_output_passes(bench: ModuleType) -> None:
    t = target(bench, ["srv-001", "srv-002"], 3)
    text = "srv-001 stderr: noise\n" + full_output(["srv-001", "srv-002"], 3)
    assert bench.check_output(text, t) is None


def test_a_missing_step_is_reported(bench: ModuleType) -> None:
    t = target(bench, ["srv-001", "srv-002"], 3)
    text = full_output(["srv-001", "srv-002"], 3).replace("srv-002 step-2\n", "")
    assert bench.check_output(text, t) == (
        "1 host/step outputs missing, first ('srv-002', 'step-2')"
    )


def test_echoed_commands_and_stderr_do_not_count(bench: ModuleType) -> None:
    t = target(bench, ["srv-001"], 1)
    error = bench.check_output("srv-001 echo step-1\nsrv-001 stderr: step-1\n", t)
    assert error is not None and error.startswith("1 host/step")


def run(name: str, wall: float, cpu: float, *, ok: bool = True) -> dict[str, Any]:
    return {
        "runner": name, "hosts": 10, "ok": ok, "wall_s": wall, "client_cpu_s": cpu,
        "sshd_cpu_s": 1.0, "peak_rss_mb": 50.0, "other_cpu_s": 0.1,
    }  # fmt: skip


def test_ratios_use_medians_of_ok_runs_only(bench: ModuleType) -> None:
    runs = [
        run("paramiko", 2.0, 1.0),
        run("paramiko", 4.0, 1.0),
        run("paramiko", 3.0, 1.0),
        run("fleet", 3.3, 1.2),
        run("fleet", 99.0, 99.0, ok=False),
    ]
    rows = {r["runner"]: r for r in bench.summarize(runs)}
    assert rows["paramiko"]["wall_s"] == 3.0
    assert rows["fleet"]["ok_runs"] == 1 and rows["fleet"]["runs"] == 2
    assert rows["fleet"]["wall_ratio"] == 1.1
    assert rows["fleet"]["client_cpu_ratio"] == 1.2
    assert "wall_ratio 1.10x (target <= 1.10x): met" in bench.verdict(list(rows.values()))


def test_a_missed_target_is_named(bench: ModuleType) -> None:
    rows = bench.summarize([run("paramiko", 2.0, 1.0), run("fleet", 2.4, 1.6)])
    text = bench.verdict(rows)
    assert "wall_ratio 1.20x (target <= 1.10x): NOT met" in text
    assert "client_cpu_ratio 1.60x (target <= 1.50x): NOT met" in text
    assert "| fleet | 10 | 2.40 | 1.20x | 1.60 | 1.60x |" in bench.markdown(rows)
