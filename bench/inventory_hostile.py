"""Hostile inventories (alias bombs, deep nesting, giant ranges, duplicate keys, non-UTF-8,
cycles...): each refused, with its CPU time and peak memory, in a process of its own.

The cases are those of tests/unit/test_inventory_hostile.py (tests/inventory_cases.py); the test
holds each under 1 s of CPU and 100 MB, this prints the figures::

    .tox/tests/bin/python bench/inventory_hostile.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.inventory_cases import HOSTILE, NESTED_GROUPS  # noqa: E402
from tests.unit.test_inventory_hostile import run_load  # noqa: E402


def main() -> None:
    print("| case | on disk | refused with | CPU s | peak RSS MB |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="fleet-hostile-") as tmp:
        for case in [*HOSTILE, *NESTED_GROUPS]:
            paths = case.write(Path(tmp) / case.name)
            size = sum(len(content) for content in case.files.values())
            code, output, cpu, rss = run_load(paths)
            said = output.strip().splitlines()[0] if output.strip() else f"exit {code}"
            said = said.replace(str(Path(tmp) / case.name) + "/", "")[:90]
            print(f"| {case.name} | {size / 1024:.0f} KiB | {said} | {cpu:.2f} | {rss:.0f} |")


if __name__ == "__main__":
    main()
