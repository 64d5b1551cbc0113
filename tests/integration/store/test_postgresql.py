"""What only the PostgreSQL store does, on the session's real server: the password never in a
URL and read from a file or libpq's own sources, explicit migrations (an empty or older database
refused until `fleet store migrate`, four operators migrating at once), the server's clock
deciding lease expiry whatever the client's says, LISTEN/NOTIFY with polling behind it, and a
pool whose connections all close with the store."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from fleet.clock import FakeClock
from fleet.errors import ConfigError, LeaseHeld, StoreError
from fleet.store import migrate_store, migrations, open_store
from fleet.store.base import HaltState, Owner, Store
from fleet.store.postgresql import PostgresStore
from tests.integration.store.backends import ALICE, BOB
from tests.pgserver import ROLE, PgServer

pytestmark = pytest.mark.integration

LATEST = migrations.latest("postgresql")


@pytest.fixture
def url(postgres: PgServer) -> str:
    """A fresh schema on the real server's clock, migrated."""
    made = postgres.schema()
    migrate_store(made, password_file=postgres.password_file)
    return made


def connect(postgres: PgServer, url: str) -> psycopg.Connection[tuple[object, ...]]:
    password = postgres.password_file.read_text().strip()
    return psycopg.connect(url, password=password, autocommit=True)


# ----------------------------------------------------------------------------- passwords


def test_a_password_in_the_url_is_refused_before_any_connection() -> None:
    with pytest.raises(ConfigError, match="carries a password: never put it in a URL") as caught:
        open_store("postgresql://fleet:s3cret@127.0.0.1:1/fleet")
    assert "s3cret" not in caught.value.message and "s3cret" not in (caught.value.hint or "")
    assert caught.value.hint and "store_password_file" in caught.value.hint


def test_a_wrong_password_fails_in_one_line_without_showing_it(
    postgres: PgServer, url: str, tmp_path: Path
) -> None:
    wrong = tmp_path / "pw"
    wrong.write_text("not-the-password-4711\n")
    wrong.chmod(0o600)
    with pytest.raises(StoreError, match="password authentication failed") as caught:
        open_store(url, password_file=wrong)
    text = f"{caught.value.message} {caught.value.hint}"
    assert "\n" not in caught.value.message and "not-the-password-4711" not in text
    assert caught.value.message.startswith(f"postgresql://{ROLE}@127.0.0.1:{postgres.port}/")


def test_a_password_file_others_may_read_is_refused(url: str, tmp_path: Path) -> None:
    loose = tmp_path / "pw"
    loose.write_text("x\n")
    loose.chmod(0o644)
    with pytest.raises(ConfigError, match=r"may be read by others \(mode -rw-r--r--\)"):
        open_store(url, password_file=loose)
    with pytest.raises(ConfigError, match=r"store_password_file .*/missing: cannot read"):
        open_store(url, password_file=tmp_path / "missing")


def test_libpq_passfile_is_honoured(
    postgres: PgServer, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    passfile = tmp_path / "pgpass"
    password = postgres.password_file.read_text().strip()
    passfile.write_text(f"127.0.0.1:{postgres.port}:*:{ROLE}:{password}\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    store = open_store(url)
    try:
        assert store.halt_state() is None
    finally:
        store.close()


# ---------------------------------------------------------------------------- migrations


def test_an_empty_database_is_refused_until_migrated(postgres: PgServer) -> None:
    empty = postgres.schema()
    with pytest.raises(StoreError, match="no fleet schema in this database") as caught:
        open_store(empty, password_file=postgres.password_file)
    assert caught.value.hint == "create it with `fleet store migrate`"
    dry = migrate_store(empty, password_file=postgres.password_file, dry_run=True)
    assert (dry.before, dry.after, len(dry.applied)) == (0, 0, LATEST)
    outcome = migrate_store(empty, password_file=postgres.password_file)
    assert (outcome.before, outcome.after) == (0, LATEST)
    store = open_store(empty, password_file=postgres.password_file)
    store.close()


def test_an_older_schema_is_refused_with_the_command_that_upgrades_it(postgres: PgServer) -> None:
    older = postgres.schema()
    with connect(postgres, older) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz(3) NOT NULL, applied_by text NOT NULL)"
        )
        for migration in migrations.migrations("postgresql")[:2]:
            conn.execute(migration.sql.encode())
            conn.execute(
                "INSERT INTO schema_migrations VALUES (%s, %s, now(), 'an older fleet')",
                (migration.version, migration.name),
            )
        conn.execute("INSERT INTO halt VALUES (1, 'carol', 'kept', now())")
    with pytest.raises(
        StoreError, match=f"schema version 2 is older than this fleet's \\({LATEST}\\)"
    ) as e:
        open_store(older, password_file=postgres.password_file)
    assert e.value.hint and "fleet store migrate" in e.value.hint
    after_2 = tuple(m.name for m in migrations.migrations("postgresql")[2:])
    assert migrate_store(older, password_file=postgres.password_file).applied == after_2
    store = open_store(older, password_file=postgres.password_file)
    try:
        state = store.halt_state()
        assert state is not None and state.reason == "kept"  # data kept across the upgrade
    finally:
        store.close()


def test_operators_migrating_at_once_apply_each_file_once(postgres: PgServer) -> None:
    empty = postgres.schema()
    outcomes: list[tuple[str, ...]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4, timeout=30)

    def migrate() -> None:
        try:
            barrier.wait()
            outcomes.append(migrate_store(empty, password_file=postgres.password_file).applied)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    applied = sorted(name for names in outcomes for name in names)
    assert applied == [m.name for m in migrations.migrations("postgresql")]
    with connect(postgres, empty) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (LATEST,)


# ----------------------------------------------------------------------- the server's clock


def test_lease_times_come_from_the_server_not_the_client(postgres: PgServer, url: str) -> None:
    """A client a year ahead cannot take a live lease, nor make its own look expired; the
    instants stored are the server's."""
    ahead = FakeClock(datetime.now(UTC) + timedelta(days=365))
    behind = FakeClock(datetime(2001, 1, 1, tzinfo=UTC))
    fast = open_store(url, clock=ahead, password_file=postgres.password_file)
    slow = open_store(url, clock=behind, password_file=postgres.password_file)
    try:
        lease = slow.acquire_lease("ns1", ALICE, ttl=300)
        with pytest.raises(LeaseHeld):
            fast.acquire_lease("ns1", BOB, ttl=300)
        with connect(postgres, url) as conn:
            row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        server_now = row[0]
        assert isinstance(server_now, datetime)
        assert abs(lease.taken_at - server_now) < timedelta(minutes=5)
        assert lease.expires_at - lease.taken_at == timedelta(seconds=300)
    finally:
        fast.close()
        slow.close()


def test_a_lease_expires_on_the_servers_clock(postgres: PgServer, url: str) -> None:
    first = open_store(url, password_file=postgres.password_file)
    second = open_store(url, password_file=postgres.password_file)
    try:
        old = first.acquire_lease("ns1", ALICE, ttl=0.2)
        time.sleep(0.5)  # past its expiry whatever the load: the server's clock only moves on
        new = second.acquire_lease("ns1", BOB, ttl=60)
        assert new.token > old.token and new.taken_at > old.expires_at
    finally:
        first.close()
        second.close()


# --------------------------------------------------------------------------- notifications


def _wait_in_thread(store: Store) -> tuple[threading.Thread, list[HaltState | None]]:
    heard: list[HaltState | None] = []
    thread = threading.Thread(target=lambda: heard.append(store.wait_halt(600)))
    thread.start()
    return thread, heard


def test_a_halt_written_by_hand_wakes_waiters(postgres: PgServer, url: str) -> None:
    store = open_store(url, password_file=postgres.password_file)
    try:
        thread, heard = _wait_in_thread(store)
        time.sleep(0.3)
        with connect(postgres, url) as conn:
            conn.execute("INSERT INTO halt VALUES (1, 'dba', 'maintenance', now())")
        thread.join(timeout=120)
        assert heard and heard[0] is not None and heard[0].who == "dba"
    finally:
        store.close()


def test_waiters_fall_back_to_polling_when_the_listener_dies(postgres: PgServer, url: str) -> None:
    store = open_store(url, password_file=postgres.password_file)
    other = open_store(url, password_file=postgres.password_file)
    try:
        thread, heard = _wait_in_thread(store)
        dbname = url.rsplit("/", 1)[1].split("?")[0]
        with postgres.admin() as admin:
            deadline = time.monotonic() + 30
            killed = 0
            while not killed and time.monotonic() < deadline:
                row = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = %s AND query LIKE 'LISTEN%%'",
                    (dbname,),
                ).fetchone()
                killed = int(row[0]) if row else 0
                time.sleep(0.05)
        assert killed >= 1
        other.set_halt("carol", "after the listener died")
        thread.join(timeout=120)
        assert heard and heard[0] is not None and heard[0].reason == "after the listener died"
    finally:
        store.close()
        other.close()


# -------------------------------------------------------------------------------- the pool


def test_close_ends_every_connection(postgres: PgServer) -> None:
    url = postgres.database()
    migrate_store(url, password_file=postgres.password_file)
    dbname = url.rsplit("/", 1)[1]
    store = open_store(url, password_file=postgres.password_file)
    assert isinstance(store, PostgresStore)
    threads = [
        threading.Thread(target=store.acquire_lease, args=(f"h{i}", Owner("u", "m", i), 60))
        for i in range(12)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert store.wait_halt(0.1) is None  # opens the listening connection too
    assert 1 <= postgres.connections(dbname) <= 11  # at most the pool's 10, and the listener
    store.close()
    deadline = time.monotonic() + 30
    while postgres.connections(dbname) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert postgres.connections(dbname) == 0
    with pytest.raises(StoreError):
        store.halt_state()
