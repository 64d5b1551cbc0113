"""Versioned schema migrations: numbered SQL files, one folder per backend.

``sqlite/0002_schedules.sql`` brings a SQLite store to schema version 2. Both backends number
their files alike, so that "schema 3" means the same tables everywhere. Each file is applied in
its own transaction, together with its row in ``schema_migrations`` (version, name, when, by
whom); a failed file leaves the store at the version before it.

The rules every backend follows (:func:`check_version`): a store at a newer version than this
fleet knows is refused (an older fleet would misread it); an older one is upgraded only by
``fleet store migrate``, except a SQLite file, which is private to one operator and upgraded in
place when it is opened (as it always was).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from fleet.errors import StoreError

BACKENDS = ("sqlite", "postgresql")
_NAME = re.compile(r"^(\d{4})_(\w+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str  # e.g. "0002_schedules"
    sql: str


@dataclass(frozen=True)
class Outcome:
    """What ``fleet store migrate`` did (or, with ``dry_run``, would do)."""

    where: str
    before: int
    after: int
    applied: tuple[str, ...]


def migrations(backend: str) -> list[Migration]:
    """The backend's migrations in order; versions run 1, 2, 3... without gaps."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}")
    found = []
    for item in resources.files(__package__).joinpath(backend).iterdir():
        match = _NAME.match(item.name)
        if match:
            found.append(Migration(int(match.group(1)), item.name[:-4], item.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise AssertionError(f"{backend} migrations are not numbered 1..N: {found}")
    return found


def latest(backend: str) -> int:
    """The schema version this fleet writes."""
    return len(migrations(backend))


def pending(backend: str, version: int) -> list[Migration]:
    """The migrations a store at ``version`` still needs."""
    return [m for m in migrations(backend) if m.version > version]


def check_version(backend: str, version: int, where: str, *, upgrade_on_open: bool) -> None:
    """Refuse a store this fleet cannot use as it is (one line, and what to do)."""
    known = latest(backend)
    if version > known:
        raise StoreError(
            f"{where}: store schema version {version} is newer than this fleet's ({known})",
            hint="upgrade fleet (every operator sharing the store needs a fleet that knows it)",
        )
    if version == 0 and not upgrade_on_open:
        raise StoreError(
            f"{where}: no fleet schema in this database",
            hint="create it with `fleet store migrate`",
        )
    if version < known and not upgrade_on_open:
        raise StoreError(
            f"{where}: store schema version {version} is older than this fleet's ({known})",
            hint="run `fleet store migrate` (every operator sharing the store then needs this "
            "fleet or newer)",
        )
