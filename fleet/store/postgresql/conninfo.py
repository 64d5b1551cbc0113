"""Where the PostgreSQL store is and how fleet logs in, without the password ever showing.

The URL (``--store``, ``FLEET_STORE`` or fleet.toml's ``store``) names the server, database and
user, and may carry libpq parameters (``?sslmode=verify-full``). It never carries the password:
a URL is printed by ``fleet config show``, kept in shell history and process lists. The password
comes from a file named by ``store_password_file`` (``FLEET_STORE_PASSWORD_FILE``), or from
libpq's own sources: ``PGPASSFILE`` / ``~/.pgpass``, or ``PGPASSWORD``.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from fleet.errors import ConfigError

#: Seconds to wait for the server to answer a connection (unless the URL sets ``connect_timeout``).
CONNECT_TIMEOUT = 10
_PASSWORD_HINT = (
    "put it in a file named by store_password_file (FLEET_STORE_PASSWORD_FILE), in ~/.pgpass "
    "(or PGPASSFILE), or in PGPASSWORD"
)


@dataclass(frozen=True)
class ConnInfo:
    """A libpq connection string (with the password when fleet read it from a file: never
    shown) and where it leads, safe to print."""

    conninfo: str = field(repr=False)
    where: str  # postgresql://user@host:port/db


def parse(url: str, password_file: str | Path | None = None) -> ConnInfo:
    """Check ``url`` and read the password file; ConfigError names what is wrong."""
    try:
        params = conninfo_to_dict(url)
    except Exception as exc:  # psycopg raises ProgrammingError with libpq's own words
        raise ConfigError(f"store URL is not a valid PostgreSQL URL: {_one_line(exc)}") from None
    if params.get("password"):
        raise ConfigError(
            f"the store URL {display(params)} carries a password: never put it in a URL",
            hint=_PASSWORD_HINT,
        )
    extra: dict[str, str | int] = {}
    if "connect_timeout" not in params:
        extra["connect_timeout"] = CONNECT_TIMEOUT
    if "application_name" not in params:
        extra["application_name"] = "fleet"
    if password_file:
        extra["password"] = read_password(Path(password_file).expanduser())
    return ConnInfo(make_conninfo(url, **extra), display(params))


def read_password(path: Path) -> str:
    """The first line of ``path``, which only its owner may read (as libpq asks of .pgpass)."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"store_password_file {path}: cannot read: {exc.strerror}",
            hint="name a file holding the store's password on its first line",
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"store_password_file {path} may be read by others (mode {stat.filemode(mode)})",
            hint=f"chmod 600 {path}",
        )
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise ConfigError(f"store_password_file {path} is empty")
    return lines[0]


def display(params: dict[str, Any]) -> str:
    """``postgresql://user@host:port/db``: where the store is, without secrets or options."""
    user = f"{params['user']}@" if params.get("user") else ""
    host = params.get("host", "")
    if host.startswith("/"):  # a unix socket directory
        host = f"[{host}]"
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{user}{host}{port}/{params.get('dbname', '')}"


def _one_line(exc: BaseException) -> str:
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
