"""The state store: pick a backend from a path or URL.

``open_store`` is the one place that maps a ``--store`` value to a backend:

* a filesystem path, or ``sqlite:///PATH`` (``sqlite:///rel.db`` is relative,
  ``sqlite:////abs/x.db`` absolute, as in SQLAlchemy): :class:`~fleet.store.sqlite.SqliteStore`,
  one file private to one operator;
* ``postgresql://[user@]host[:port]/dbname[?param=value]`` (libpq's URL, without a password):
  :class:`~fleet.store.postgresql.PostgresStore`, one database shared by a team.

``migrate_store`` brings either to this fleet's schema (``fleet store migrate``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fleet.errors import ConfigError
from fleet.store.base import Actor, Store

if TYPE_CHECKING:
    from fleet.clock import Clock
    from fleet.store.migrations import Outcome

__all__ = ["Actor", "Store", "migrate_store", "open_store"]

_SQLITE_PREFIX = "sqlite:///"
_POSTGRES_PREFIXES = ("postgresql://", "postgres://")


def open_store(
    url_or_path: str | Path,
    *,
    clock: Clock | None = None,
    actor: Actor | None = None,
    password_file: str | Path | None = None,
) -> Store:
    """Open (creating if needed) the store named by ``url_or_path``, acting as ``actor``
    (default: this process's OS user) in the audit trail.

    Raises:
        ConfigError: an unknown URL scheme, a password in a URL, a missing driver.
        StoreError: the store cannot be opened, or its schema is not this fleet's (a newer one;
            for PostgreSQL also an older one, until ``fleet store migrate``).
    """
    return _open(url_or_path, clock, actor, password_file, check_schema=True)


def migrate_store(
    url_or_path: str | Path,
    *,
    actor: Actor | None = None,
    password_file: str | Path | None = None,
    dry_run: bool = False,
) -> Outcome:
    """Apply the store's pending schema migrations (with ``dry_run``, only list them)."""
    store = _open(url_or_path, None, actor, password_file, check_schema=False)
    try:
        return store.migrate(dry_run=dry_run)
    finally:
        store.close()


def _open(
    url_or_path: str | Path,
    clock: Clock | None,
    actor: Actor | None,
    password_file: str | Path | None,
    *,
    check_schema: bool,
) -> Store:
    if isinstance(url_or_path, Path):
        return _sqlite(url_or_path, clock, actor, check_schema)
    text = url_or_path.strip()
    if text.startswith(_POSTGRES_PREFIXES):
        return _postgres(text, clock, actor, password_file, check_schema)
    if text.startswith("postgresql+"):
        raise ConfigError(
            f"store URL {text.split('://')[0]!r}: name no driver",
            hint="write postgresql://user@host/dbname",
        )
    if text.startswith(_SQLITE_PREFIX):
        path = text[len(_SQLITE_PREFIX) :]
        if not path:
            raise ConfigError(f"store URL {text!r} names no file", hint="e.g. sqlite:///fleet.db")
        return _sqlite(path, clock, actor, check_schema)
    if "://" in text or text.startswith("sqlite:"):
        scheme = text.split(":", 1)[0]
        raise ConfigError(
            f"unknown store URL scheme {scheme!r} in {text!r}",
            hint="give a file path, sqlite:///PATH or postgresql://...",
        )
    if not text:
        raise ConfigError("empty store path", hint="give a file path or sqlite:///PATH")
    return _sqlite(text, clock, actor, check_schema)


def _sqlite(path: str | Path, clock: Clock | None, actor: Actor | None, upgrade: bool) -> Store:
    from fleet.store.sqlite import SqliteStore  # only the chosen backend is imported

    return SqliteStore(path, clock=clock, actor=actor, upgrade=upgrade)


def _postgres(
    url: str,
    clock: Clock | None,
    actor: Actor | None,
    password_file: str | Path | None,
    check_schema: bool,
) -> Store:
    try:
        from fleet.store.postgresql import PostgresStore
    except ImportError as exc:
        raise ConfigError(
            f"the PostgreSQL store needs psycopg 3, which is not installed ({exc.name})",
            hint="pip install 'fleet[postgresql]'",
        ) from None
    return PostgresStore(
        url, clock=clock, actor=actor, password_file=password_file, check_schema=check_schema
    )
