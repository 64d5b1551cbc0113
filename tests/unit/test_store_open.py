"""``open_store``: which ``--store`` values are refused before any file is touched."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from fleet.errors import ConfigError
from fleet.store import open_store

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    "url",
    ["postgresql://fleet@db/fleet", "postgres://db/fleet", "postgresql+psycopg://db/fleet"],
)
def test_postgresql_is_not_available_yet(url: str) -> None:
    with pytest.raises(ConfigError, match="PostgreSQL store not available yet"):
        open_store(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://db/fleet", "unknown store URL scheme 'mysql'"),
        ("sqlite://fleet.db", "unknown store URL scheme 'sqlite'"),
        ("sqlite:///", "names no file"),
        ("   ", "empty store path"),
    ],
)
def test_bad_store_values_are_refused(url: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        open_store(url)
    assert list(tmp_path.iterdir()) == []
