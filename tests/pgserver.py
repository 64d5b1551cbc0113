"""A real PostgreSQL server for the tests: Debian's binaries, a throwaway data directory.

One server per test session (``tests/conftest.py``'s ``postgres`` fixture): ``initdb`` in a fresh
directory under /tmp, then the postmaster as a child of the test process, listening on 127.0.0.1
on a free port and on a unix socket in that directory; stopped and removed when the session
ends, whatever happened, and stopped by the kernel should the test process be killed. As root,
the server runs as Debian's unprivileged ``postgres`` account (PostgreSQL refuses to run as root).

Tests log in as the role ``fleet`` with a password (scram-sha-256 over TCP, as a team's server
would ask) read from a file; the harness itself administers through the socket as ``postgres``.
Each test gets a schema of its own (:meth:`PgServer.schema`), or a database
(:meth:`PgServer.database`). A test clock replaces ``now()`` for one schema's statements: a
``now()`` that reads a table, in a schema listed before pg_catalog in the URL's search_path.
"""

from __future__ import annotations

import contextlib
import getpass
import glob
import itertools
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

ROLE = "fleet"
ADMIN = "postgres"
#: Settings for a throwaway server: nothing survives it, so durability is not worth an fsync.
SERVER_OPTIONS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    " -c max_connections=200 -c shared_buffers=32MB"
)


def binaries() -> Path | None:
    """The directory of initdb and postgres: Debian's newest, else those on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _version(path: str) -> int:
    part = Path(path).parts[4]
    return int(part) if part.isdigit() else 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PgServer:
    """One server; :meth:`start`, then :meth:`database` per test, :meth:`stop` at the end."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.top = Path(tempfile.mkdtemp(prefix="fleet-pg-"))
        self.data = self.top / "data"
        self.socket_dir = self.top / "run"
        self.password_file = self.top / "password"
        self.port = 0
        self._names = itertools.count(1)
        self._shared: str | None = None
        self._server: subprocess.Popen[bytes] | None = None
        self._as_root = os.geteuid() == 0
        self._account = ADMIN if self._as_root else getpass.getuser()

    # ------------------------------------------------------------------ the server

    def start(self) -> None:
        self.socket_dir.mkdir()
        self.password_file.write_text(secrets.token_urlsafe(24) + "\n")
        self.password_file.chmod(0o600)
        if self._as_root:
            entry = pwd.getpwnam(ADMIN)
            for path in (self.top, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            ADMIN,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        for _attempt in range(3):  # a free port may be taken before the server binds it
            self.port = _free_port()
            if self._start_on(self.port):
                break
        else:
            raise RuntimeError(f"PostgreSQL did not start; see {self.top / 'server.log'}")
        password = self.password_file.read_text().strip()
        with self.admin() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(ROLE), sql.Literal(password)
                )
            )

    def _start_on(self, port: int) -> bool:
        """Run the postmaster as this process's child; True once it accepts connections.

        It gets SIGQUIT (immediate shutdown) if the test process dies, even by SIGKILL
        (``setpriv --pdeathsig``), so a killed test run leaves no server behind."""
        listen = ["listen_addresses=127.0.0.1", f"port={port}"]
        listen.append(f"unix_socket_directories={self.socket_dir}")
        options = [*SERVER_OPTIONS.split(), *(arg for item in listen for arg in ("-c", item))]
        command = ["setpriv", "--pdeathsig", "SIGQUIT"]
        if self._as_root:
            command += ["--reuid", ADMIN, "--regid", ADMIN, "--init-groups"]
        command += ["--", str(self.bindir / "postgres"), "-D", str(self.data), *options]
        with (self.top / "server.log").open("ab") as log:
            self._server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._server.poll() is not None:
                return False  # the port was taken meanwhile, or worse: see server.log
            try:
                self.admin().close()
                return True
            except psycopg.OperationalError:
                time.sleep(0.1)
        self._stop_server()
        return False

    def stop(self) -> None:
        """Stop the server (fast: its data is thrown away) and remove its directory."""
        try:
            self._stop_server()
        finally:
            shutil.rmtree(self.top, ignore_errors=True)

    def _stop_server(self) -> None:
        server, self._server = self._server, None
        if server is None or server.poll() is not None:
            return
        server.send_signal(signal.SIGQUIT)  # immediate shutdown: nothing here is kept
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / tool), *args]
        if self._as_root:
            command = ["runuser", "-u", ADMIN, "--", *command]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{tool} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        return proc

    # -------------------------------------------------------------------- databases

    def admin(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """A superuser connection through the socket (trusted: only this account reaches it)."""
        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user=ADMIN,
            dbname=dbname,
            autocommit=True,
        )

    def database(self) -> str:
        """A new empty database owned by ``fleet``; its URL (no password: it is in
        :attr:`password_file`)."""
        name = f"db{next(self._names)}_{secrets.token_hex(3)}"
        with self.admin() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0").format(
                    sql.Identifier(name), sql.Identifier(ROLE)
                )
            )
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{name}"

    def schema(self, *, clock: bool = False) -> str:
        """A new empty schema of the session's shared database, owned by ``fleet``: a store URL
        whose search_path starts with it (creating a database costs about a second, a schema
        nothing). With ``clock``, the URL's statements read the time from :meth:`set_clock`
        instead of the server's clock."""
        if self._shared is None:
            self._shared = self.database()
        name = f"s{next(self._names)}_{secrets.token_hex(3)}"
        path = [name]
        statements = [sql.SQL("CREATE SCHEMA {s} AUTHORIZATION {r}")]
        if clock:
            path += [f"{name}_clock", "pg_catalog"]
            statements += [
                sql.SQL("CREATE SCHEMA {c} AUTHORIZATION {r}"),
                sql.SQL("CREATE TABLE {c}.fake (at timestamptz NOT NULL)"),
                sql.SQL("INSERT INTO {c}.fake VALUES (pg_catalog.now())"),
                sql.SQL(
                    "CREATE FUNCTION {c}.now() RETURNS timestamptz LANGUAGE sql STABLE"
                    " AS 'SELECT at FROM {c}.fake'"
                ),
                sql.SQL("ALTER TABLE {c}.fake OWNER TO {r}"),
            ]
        names = {"s": sql.Identifier(name), "c": sql.Identifier(f"{name}_clock")}
        with self.admin(self._shared.rsplit("/", 1)[1]) as conn:
            for statement in statements:
                conn.execute(statement.format(r=sql.Identifier(ROLE), **names))
        return f"{self._shared}?options=-csearch_path%3D{','.join(path)}"

    def set_clock(self, url: str, at: object) -> None:
        """Set the time the statements of ``url`` (made with ``clock=True``) read."""
        dbname = url.rsplit("/", 1)[1].split("?")[0]
        clock = url.split("%3D")[1].split(",")[1]
        with self.admin(dbname) as conn:
            conn.execute(sql.SQL("UPDATE {}.fake SET at = %s").format(sql.Identifier(clock)), (at,))

    def connections(self, dbname: str) -> int:
        """Client connections open on ``dbname`` now (the harness's own not counted)."""
        with self.admin() as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND usename = %s",
                (dbname, ROLE),
            ).fetchone()
        return int(row[0]) if row else 0


@contextlib.contextmanager
def running() -> Iterator[PgServer | None]:
    """A started server, stopped and removed on exit; None when PostgreSQL is not installed."""
    bindir = binaries()
    if bindir is None:
        yield None
        return
    server = PgServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
