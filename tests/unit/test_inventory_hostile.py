"""Hostile inventories: each is refused with its file and line, in under a second of CPU and
under 100 MB, in a process of its own (with hard limits, so that a regression fails the test
instead of exhausting the machine). The figures themselves: bench/inventory_hostile.py."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.inventory_cases import HOSTILE, NESTED_GROUPS, Case

REPO = Path(__file__).resolve().parents[2]
#: Hard limits of the child: far above what a bounded refusal needs.
CPU_SECONDS = 10
ADDRESS_SPACE = 2 * 1024**3

#: The child reports its own peak RSS (VmHWM of the program it became), as the last line: the
#: rusage of a forked child starts from its parent's resident size, which a long test session
#: grows beyond the bound measured here.
_PEAK = "fleet-test-peak-kb"
_LOAD = """
import atexit
import sys


def _peak():
    with open("/proc/self/status") as status:
        kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    sys.stdout.write(f"\\nfleet-test-peak-kb {kb}\\n")
    sys.stdout.flush()


atexit.register(_peak)
from fleet.errors import InventoryError
from fleet.inventory import load_inventory
try:
    inventory = load_inventory(sys.argv[1:])
except InventoryError as exc:
    print(exc.message)
    sys.exit(3)
print(f"loaded {len(inventory.hosts)} hosts in {len(inventory.groups)} groups")
"""


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def run_load(paths: list[Path]) -> tuple[int, str, float, float]:
    """Exit status, output, CPU seconds and peak RSS (MB) of a process loading ``paths``."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _LOAD, *map(str, paths)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        preexec_fn=_limits,  # the child runs nothing else before exec
    )
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    body, _, peak = output.rstrip("\n").rpartition(f"\n{_PEAK} ")
    assert body or peak, output[-2000:]
    return proc.returncode, body, usage.ru_utime + usage.ru_stime, int(peak) / 1024


@pytest.mark.parametrize("case", HOSTILE, ids=[c.name for c in HOSTILE])
def test_hostile_inventory_is_refused_fast_and_small(case: Case, tmp_path: Path) -> None:
    paths = case.write(tmp_path)
    code, output, cpu, rss = run_load(paths)
    assert code == 3, f"{case.name}: exit {code}\n{output[-2000:]}"
    reported = tmp_path / case.reported if case.reported else paths[0]
    assert f"{reported}:{case.line}" in output, output[-2000:]
    assert case.says in output, output[-2000:]
    assert cpu < 1.0, f"{case.name}: {cpu:.2f} s of CPU"
    assert rss < 100, f"{case.name}: {rss:.0f} MB"


def test_hundreds_of_nested_groups_load_without_recursion_errors(tmp_path: Path) -> None:
    for case in NESTED_GROUPS:
        code, output, _, _ = run_load(case.write(tmp_path / case.name))
        assert code == 0, output
        assert case.says in output
