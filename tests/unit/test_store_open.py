"""``open_store``: which ``--store`` values are refused before any file or server is touched."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import pytest

from fleet.errors import ConfigError
from fleet.store import open_store
from fleet.store.postgresql.conninfo import parse

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://db/fleet", "unknown store URL scheme 'mysql'"),
        ("sqlite://fleet.db", "unknown store URL scheme 'sqlite'"),
        ("sqlite:///", "names no file"),
        ("   ", "empty store path"),
        ("postgresql+psycopg://db/fleet", r"'postgresql\+psycopg': name no driver"),
        ("postgresql://fleet:pw@db/fleet", "carries a password"),
        ("postgresql://db/fleet?nosuchparam=1", "not a valid PostgreSQL URL"),
    ],
)
def test_bad_store_values_are_refused(url: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        open_store(url)
    assert list(tmp_path.iterdir()) == []


def test_without_psycopg_the_postgresql_store_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(sys.modules):
        if name == "psycopg" or name.startswith(("psycopg.", "fleet.store.postgresql")):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now fails
    with pytest.raises(ConfigError, match="needs psycopg 3") as caught:
        open_store("postgresql://fleet@db/fleet")
    assert caught.value.hint == "pip install 'fleet[postgresql]'"


@pytest.mark.parametrize(
    ("url", "where"),
    [
        ("postgresql://fleet@db.example:5433/teams", "postgresql://fleet@db.example:5433/teams"),
        ("postgresql:///fleet?host=/run/postgresql", "postgresql://[/run/postgresql]/fleet"),
        ("postgres://db/fleet?sslmode=verify-full", "postgresql://db/fleet"),
    ],
)
def test_where_a_store_is_shows_no_parameters(url: str, where: str) -> None:
    info = parse(url)
    assert info.where == where
    assert "connect_timeout=10" in info.conninfo and "application_name=fleet" in info.conninfo


def test_the_password_read_from_a_file_is_never_shown(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("hunter2-hunter2\nignored second line\n")
    secret.chmod(0o600)
    info = parse("postgresql://fleet@db/fleet", secret)
    assert "password=hunter2-hunter2" in info.conninfo
    assert "hunter2" not in repr(info) and "hunter2" not in info.where
