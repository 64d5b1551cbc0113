"""Where a value was written, and the collector that reports every problem of a load at once."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import NamedTuple

from fleet.errors import FleetError, InventoryError

#: Problems reported by one load at most; the rest are counted.
MAX_PROBLEMS = 200


class Site(NamedTuple):
    """Where something was written: a file, a 1-based line when known, the key concerned.

    (A named tuple: one is made per host, and they are cheap.)
    """

    path: str
    line: int | None = None
    key: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path

    def error(self, message: str, hint: str | None = None) -> InventoryError:
        return InventoryError(message, path=self.path, line=self.line, key=self.key, hint=hint)

    def with_key(self, key: object) -> Site:
        return Site(self.path, self.line, str(key))


def suggest(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    """``did you mean 'x'?`` for the candidates close to ``word``, or None."""
    close = difflib.get_close_matches(word, list(candidates), n=3, cutoff=cutoff)
    return f"did you mean {' or '.join(repr(c) for c in close)}?" if close else None


class InventoryProblems(InventoryError):
    """Several problems found in one load, each with its file, line and key.

    ``problems`` holds them in the order found; ``path``, ``line`` and ``key`` are the first's.
    """

    def __init__(self, problems: list[InventoryError], more: int = 0) -> None:
        first = problems[0]
        count = len(problems) + more
        lines = [f"{count} problems in the inventory:"]
        for problem in problems:
            lines.append(f"  {problem.message}" + (f" ({problem.hint})" if problem.hint else ""))
        if more:
            lines.append(f"  ... and {more} more")
        FleetError.__init__(self, "\n".join(lines), hint="fix them all, then run again")
        self.path, self.line, self.key = first.path, first.line, first.key
        self.problems = tuple(problems)
        self.more = more


class Problems:
    """Collects the problems of a load so that one run reports them all."""

    def __init__(self) -> None:
        self.items: list[InventoryError] = []
        self.more = 0
        self._seen: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self.items)

    def add(self, site: Site, message: str, hint: str | None = None) -> None:
        self.add_error(site.error(message, hint))

    def add_error(self, error: InventoryError) -> None:
        if isinstance(error, InventoryProblems):
            for item in error.problems:
                self.add_error(item)
            self.more += error.more
            return
        if error.message in self._seen:  # one definition read by many hosts: report it once
            return
        self._seen.add(error.message)
        if len(self.items) >= MAX_PROBLEMS:
            self.more += 1
        else:
            self.items.append(error)

    def raise_if_any(self) -> None:
        """Raise the single problem as is, or all of them as :class:`InventoryProblems`."""
        if len(self.items) == 1 and not self.more:
            raise self.items[0]
        if self.items:
            raise InventoryProblems(self.items, self.more)
