"""The state store: pick a backend from a path or URL.

``open_store`` is the one place that maps a ``--store`` value to a backend:

* a filesystem path, or ``sqlite:///PATH`` (``sqlite:///rel.db`` is relative,
  ``sqlite:////abs/x.db`` absolute, as in SQLAlchemy): :class:`~fleet.store.sqlite.SqliteStore`;
* ``postgresql://...``: the team backend (not available yet).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fleet.errors import ConfigError
from fleet.store.base import Store

if TYPE_CHECKING:
    from fleet.clock import Clock

__all__ = ["Store", "open_store"]

_SQLITE_PREFIX = "sqlite:///"
_POSTGRES_PREFIXES = ("postgresql://", "postgres://", "postgresql+")


def open_store(url_or_path: str | Path, *, clock: Clock | None = None) -> Store:
    """Open (creating if needed) the store named by ``url_or_path``.

    Raises:
        ConfigError: an unknown URL scheme, or a backend that is not available.
        StoreError: the store exists but cannot be opened or is from a newer fleet.
    """
    from fleet.store.sqlite import SqliteStore  # only the chosen backend is imported

    if isinstance(url_or_path, Path):
        return SqliteStore(url_or_path, clock=clock)
    text = url_or_path.strip()
    if text.startswith(_POSTGRES_PREFIXES):
        raise ConfigError(
            "PostgreSQL store not available yet",
            hint="use a SQLite file path (the default) for now",
        )
    if text.startswith(_SQLITE_PREFIX):
        path = text[len(_SQLITE_PREFIX) :]
        if not path:
            raise ConfigError(f"store URL {text!r} names no file", hint="e.g. sqlite:///fleet.db")
        return SqliteStore(path, clock=clock)
    if "://" in text or text.startswith("sqlite:"):
        scheme = text.split(":", 1)[0]
        raise ConfigError(
            f"unknown store URL scheme {scheme!r} in {text!r}",
            hint="give a file path, sqlite:///PATH or postgresql://...",
        )
    if not text:
        raise ConfigError("empty store path", hint="give a file path or sqlite:///PATH")
    return SqliteStore(text, clock=clock)
