"""Settings, resolved with one precedence: flag > ``FLEET_*`` environment > fleet.toml > default.

Every setting is declared once in :data:`SETTINGS` (name, type, default, help). The dotted name
maps to a TOML table (``ovh.endpoint`` is ``[ovh] endpoint``), to an environment variable
(``FLEET_OVH_ENDPOINT``) and to an attribute (``settings.get("ovh.endpoint")``).
``fleet config show`` prints each effective value and where it came from; secrets are masked.

fleet.toml is looked up in order: ``--config``, ``FLEET_CONFIG``, ``./fleet.toml``,
``~/.config/fleet/fleet.toml``, and last the running sandbox's ``<state>/sandbox/fleet.toml`` (so
that every command works against ``fleet sandbox up`` without flags).
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.errors import ConfigError


@dataclass(frozen=True)
class Setting:
    """One setting. A number must be finite and at least ``minimum`` (more than it when
    ``exclusive``): a timeout of nan or a concurrency of 0 is refused where it is read."""

    name: str
    type: type
    default: Any
    help: str
    secret: bool = False
    minimum: float | None = None
    exclusive: bool = False

    @property
    def env(self) -> str:
        return "FLEET_" + self.name.upper().replace(".", "_")


def _default_state() -> str:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(base) / "fleet")


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "state",
        str,
        None,
        "directory of fleet's state (store, sandbox); default ~/.local/state/fleet",
    ),
    Setting(
        "store",
        str,
        None,
        "store: a SQLite path, sqlite:///path, or postgresql://user@host/db (a team's shared"
        " store; no password in it); default <state>/fleet.db",
    ),
    Setting(
        "store_password_file",
        str,
        None,
        "file holding the PostgreSQL store's password (else libpq's ~/.pgpass, PGPASSFILE or"
        " PGPASSWORD)",
    ),
    Setting(
        "operator",
        str,
        None,
        "your name in the audit trail, beside the OS user and machine; default the OS user",
    ),
    Setting("inventory", str, "inventories", "inventory files or directories, ':'-separated"),
    Setting("ovh.endpoint", str, "ovh-eu", "python-ovh endpoint name (ovh-eu, ovh-ca, ...)"),
    Setting("ovh.endpoint_url", str, None, "register ovh.endpoint under this URL (the sandbox)"),
    Setting("ovh.config_file", str, None, "python-ovh configuration file with the credentials"),
    Setting(
        "ovh.rate_limit",
        float,
        60.0,
        "OVH API requests per minute (fair use is about 60); with workers, shared by every "
        "process of the same OVH key",
        minimum=0,
        exclusive=True,
    ),
    Setting("ovh.control_token", str, None, "sandbox API control token", secret=True),
    Setting(
        "ovh.poll_interval",
        float,
        5.0,
        "seconds before the second poll of a running OVH task (then doubles)",
        minimum=0,
        exclusive=True,
    ),
    Setting(
        "ovh.max_poll_interval",
        float,
        30.0,
        "longest interval between polls of a running OVH task",
        minimum=0,
        exclusive=True,
    ),
    Setting(
        "ovh.retry_wait",
        float,
        1.0,
        "first wait before retrying a failed GET (then doubles)",
        minimum=0,
    ),
    Setting(
        "ovh.retry_max_wait",
        float,
        60.0,
        "longest wait between retries (Retry-After wins)",
        minimum=0,
    ),
    Setting(
        "ovh.cache_max_age",
        float,
        86400.0,
        "seconds OVH's server and hardware data is reused for hw: selectors (0: always fetch)",
    ),
    Setting(
        "ssh.key_file", str, None, "private key for SSH logins (unless the inventory sets one)"
    ),
    Setting(
        "ssh.key_passphrase",
        str,
        None,
        "passphrase of an encrypted ssh.key_file (env or fleet.toml only; else ssh-agent)",
        secret=True,
    ),
    Setting(
        "ssh.agent", bool, True, "use ssh-agent (SSH_AUTH_SOCK) for hosts without a usable key"
    ),
    Setting(
        "ssh.config_file",
        str,
        None,
        "read this ssh_config (e.g. ~/.ssh/config) for HostName, Port, User, IdentityFile, ProxyJump",
    ),
    Setting(
        "ssh.connect_timeout",
        float,
        10.0,
        "seconds to wait for an SSH connection",
        minimum=0,
        exclusive=True,
    ),
    Setting("ssh.trust_on_first_use", bool, True, "pin an unknown host key on first contact"),
    Setting(
        "workers.broker",
        str,
        "redis://127.0.0.1:6379/0",
        "Redis URL of the Celery broker and result backend (`fleet worker`, rollout.workers)",
    ),
    Setting(
        "workers.route_by",
        str,
        "datacenter",
        "queue of a host's task: its datacenter (gra3), region (gra) or label:NAME",
    ),
    Setting("workers.default_queue", str, "fleet", "queue of hosts that have no value to route by"),
    Setting(
        "workers.visibility_timeout",
        float,
        600.0,
        "seconds before a task a dead worker held is delivered again",
        minimum=0,
        exclusive=True,
    ),
    Setting("workers.concurrency", int, 20, "hosts one `fleet worker` runs at once", minimum=1),
    Setting(
        "rollout.workers",
        bool,
        False,
        "run each host's pipeline on Celery workers (`fleet worker`), not in this process",
    ),
    Setting(
        "rescue.ssh_public_key", str, None, "public key file set as rescueSshKey for rescue boots"
    ),
    Setting("rollout.concurrency", int, 20, "hosts worked on at once", minimum=1),
    Setting(
        "rollout.require_preview",
        bool,
        False,
        "a plan with destructive steps and preview stages runs only with --approve PREVIEW",
    ),
    Setting(
        "rollout.lease_ttl",
        float,
        300.0,
        "seconds a host lease lasts between heartbeats",
        minimum=0,
        exclusive=True,
    ),
    Setting(
        "reboot.timeout",
        float,
        900.0,
        "seconds to wait for a reboot task and SSH to come back",
        minimum=0,
        exclusive=True,
    ),
    Setting(
        "reboot.ssh_poll",
        float,
        5.0,
        "seconds between SSH attempts while a host comes back",
        minimum=0,
        exclusive=True,
    ),
    Setting(
        "reboot.task_poll",
        float,
        60.0,
        "seconds of SSH attempts after a reboot before OVH's task is polled (then doubles)",
        minimum=0,
        exclusive=True,
    ),
    Setting(
        "rollout.infra_retries",
        int,
        2,
        "re-runs of a host's pipeline after infrastructure errors",
        minimum=0,
    ),
    Setting(
        "rollout.infra_retry_delay",
        float,
        5.0,
        "first wait before such a re-run (then doubles)",
        minimum=0,
    ),
    Setting(
        "output.heartbeat",
        float,
        10.0,
        "plain output: seconds between lines about a wait still going on (reboot, lease, "
        "window, OVH task, rate limit)",
        minimum=0,
        exclusive=True,
    ),
)
_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """Effective settings and where each came from ("flag", "env", a file path, "default")."""

    values: Mapping[str, Any]
    sources: Mapping[str, str]
    config_file: str | None = None

    def get(self, name: str) -> Any:
        return self.values[name]

    def path(self, name: str) -> Path | None:
        value = self.values[name]
        return Path(value).expanduser() if value else None

    @property
    def state_dir(self) -> Path:
        return Path(self.values["state"]).expanduser()

    @property
    def store_url(self) -> str:
        return str(self.values["store"] or self.state_dir / "fleet.db")

    @property
    def inventory_paths(self) -> list[Path]:
        return [Path(p).expanduser() for p in str(self.values["inventory"]).split(":") if p]

    def show(self) -> list[tuple[str, str, str]]:
        """(name, value, source) rows, secrets masked."""
        rows = []
        for s in SETTINGS:
            value = self.values[s.name]
            text = "********" if s.secret and value else ("" if value is None else str(value))
            rows.append((s.name, text, self.sources[s.name]))
        return rows


def _typed_ok(kind: type, value: Any) -> bool:
    """A TOML value of the setting's own type (an int is a valid float, a bool is no number)."""
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, int | float)
    return isinstance(value, kind)


def _coerce(setting: Setting, value: Any, origin: str) -> Any:
    typed = _typed(setting, value, origin)
    if isinstance(typed, int | float) and not isinstance(typed, bool):
        _check_range(setting, typed, origin)
    return typed


def _check_range(setting: Setting, number: float, origin: str) -> None:
    low = setting.minimum
    too_low = low is not None and (number <= low if setting.exclusive else number < low)
    if not math.isfinite(number) or too_low:
        bound = "" if low is None else f" {'above' if setting.exclusive else 'at least'} {low:g}"
        raise ConfigError(
            f"{origin}: {setting.name} must be a finite number{bound}, got {number!r}"
        )


def _typed(setting: Setting, value: Any, origin: str) -> Any:
    if value is None:
        return None
    if not isinstance(value, str) and not _typed_ok(setting.type, value):
        raise ConfigError(
            f"{origin}: {setting.name} must be {setting.type.__name__}, got {value!r}"
        )
    try:
        if setting.type is bool and isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if setting.type is bool and not isinstance(value, bool):
            raise ValueError(value)
        return setting.type(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{origin}: {setting.name} must be {setting.type.__name__}, got {value!r}"
        ) from None


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name not in _BY_NAME:
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def read_file(path: Path) -> dict[str, Any]:
    """Read a fleet.toml; unknown keys are refused with the file and key named."""
    try:
        with open(path, "rb") as f:
            data = _flatten(tomllib.load(f))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    for name in data:
        if name not in _BY_NAME:
            known = ", ".join(s.name for s in SETTINGS)
            raise ConfigError(f"{path}: unknown setting {name!r}", hint=f"known settings: {known}")
    return data


def _find_file(explicit: str | None, env: Mapping[str, str], state: str) -> Path | None:
    if explicit:
        return Path(explicit)
    if env.get("FLEET_CONFIG"):
        return Path(env["FLEET_CONFIG"])
    candidates = [
        Path("fleet.toml"),
        Path.home() / ".config" / "fleet" / "fleet.toml",
        Path(state).expanduser() / "sandbox" / "fleet.toml",
    ]
    return next((p for p in candidates if p.is_file()), None)


def load(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: str | None = None,
) -> Settings:
    """Resolve every setting. ``flags`` holds only the flags the operator actually gave."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env = os.environ if env is None else env
    for name in flags:
        if name not in _BY_NAME:
            raise ConfigError(f"unknown setting {name!r}")
    state = flags.get("state") or env.get("FLEET_STATE") or _default_state()
    path = _find_file(config_file, env, state)
    file_values = read_file(path) if path else {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for s in SETTINGS:
        if s.name in flags:
            values[s.name], sources[s.name] = _coerce(s, flags[s.name], "flag"), "flag"
        elif s.env in env:
            values[s.name], sources[s.name] = _coerce(s, env[s.env], s.env), "env"
        elif s.name in file_values:
            values[s.name] = _coerce(s, file_values[s.name], str(path))
            sources[s.name] = str(path)
        else:
            values[s.name], sources[s.name] = s.default, "default"
    if values["state"] is None:
        values["state"] = state
    return Settings(values, sources, str(path) if path else None)
