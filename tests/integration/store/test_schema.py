"""Schema versions on every backend: a new store is at this fleet's version, a newer one is
refused in one line, ``migrate`` has nothing left to do on a current store."""

from __future__ import annotations

import pytest

from fleet.errors import StoreError
from fleet.store import migrate_store, migrations
from fleet.store.base import Store
from tests.integration.store.backends import Backend

pytestmark = pytest.mark.integration


def test_a_new_store_is_at_the_latest_version(store: Store, backend: Backend) -> None:
    assert store.schema_version() == migrations.latest(backend.name)
    outcome = migrate_store(backend.url, password_file=backend.password_file)
    assert (outcome.before, outcome.after, outcome.applied) == (
        store.schema_version(),
        store.schema_version(),
        (),
    )
    versions = backend.raw("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [name for _, name in versions] == [m.name for m in migrations.migrations(backend.name)]


def test_a_newer_schema_is_refused(store: Store, backend: Backend) -> None:
    newer = migrations.latest(backend.name) + 1
    backend.set_schema_version(newer)
    with pytest.raises(StoreError, match=f"schema version {newer} is newer than this fleet's") as e:
        backend.open()
    assert "\n" not in e.value.message
    assert e.value.hint and "upgrade fleet" in e.value.hint
    with pytest.raises(StoreError, match="is newer than this fleet's"):
        migrate_store(backend.url, password_file=backend.password_file)


def test_both_backends_number_their_migrations_alike() -> None:
    names = {b: [m.name for m in migrations.migrations(b)] for b in migrations.BACKENDS}
    assert names["sqlite"] == names["postgresql"]
    assert migrations.latest("sqlite") == migrations.latest("postgresql") >= 3
