"""Fixtures of the store conformance suite: each test runs on every backend.

``backend`` is SQLite (a fresh file) or PostgreSQL (a fresh schema on the session's server);
``clock`` is the store's clock on both; ``store`` and ``other`` are two store objects on the
same state, as two operators' processes would hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.store.base import Store
from tests.integration.store.backends import (
    Backend,
    PostgresBackend,
    SqliteBackend,
    SyncedClock,
)

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    made: Backend
    if request.param == "sqlite":
        made = SqliteBackend(tmp_path / "state" / "fleet.db")
    else:
        made = PostgresBackend(request.getfixturevalue("postgres"))
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def clock(backend: Backend) -> SyncedClock:
    return backend.clock()


@pytest.fixture
def store(backend: Backend, clock: SyncedClock) -> Iterator[Store]:
    opened = backend.open(clock=clock)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def other(backend: Backend, clock: SyncedClock, store: Store) -> Iterator[Store]:
    """A second store object on the same state, as a second operator's process would have."""
    opened = backend.open(clock=clock)
    try:
        yield opened
    finally:
        opened.close()
