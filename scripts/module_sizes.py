"""The house's size rule: no module of fleet over 500 lines.

Run by the lint env. A module over the limit fails the check, except those listed in
``SPLIT_PENDING`` with the work that splits them; a listed module that has come under the limit
fails too, so the list only shrinks.
"""

from __future__ import annotations

import sys
from pathlib import Path

LIMIT = 500
TOP = Path(__file__).resolve().parent.parent

#: Modules still over the limit, each split by work in progress (remove the line when done).
SPLIT_PENDING: dict[str, str] = {}


def main() -> int:
    problems = []
    for path in sorted((TOP / "fleet").rglob("*.py")):
        name = path.relative_to(TOP).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > LIMIT and name not in SPLIT_PENDING:
            problems.append(f"{name}: {lines} lines, over the limit of {LIMIT}: split it")
        elif lines <= LIMIT and name in SPLIT_PENDING:
            problems.append(f"{name}: {lines} lines now: remove it from SPLIT_PENDING")
    for name in SPLIT_PENDING:
        if not (TOP / name).exists():
            problems.append(f"{name} is gone: remove it from SPLIT_PENDING")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
