"""Checks of variables where they are written: names, connection values, the ``fleet:`` mapping.

Each problem names the file, line and key where the bad value was written, once, however many
hosts read it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from fleet.inventory import connection
from fleet.inventory.keys import (
    CONNECTION_VARS,
    FLEET_KEYS,
    FLEET_VAR,
    PARAMIKO_VARS,
    SSH_ARGS_VARS,
    like_fleet,
    near_miss,
)
from fleet.inventory.model import VarsAt
from fleet.inventory.problems import Problems, Site, suggest

#: One word that cannot be mistaken for an ssh option: for addresses, users, service names.
_TOKEN = re.compile(r"[^\s\-][^\s]*")
#: Names fleet checked once already (plain user variables): the common case costs a lookup.
_PLAIN_NAMES: set[str] = set()


def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    names = {int: "an integer", float: "a number", str: "a string", list: "a list"}
    return (
        "a mapping" if isinstance(value, Mapping) else names.get(type(value), type(value).__name__)
    )


class _Where:
    """Where a checked variable was written, worked out only for a problem."""

    __slots__ = ("at", "key", "mapping")

    def __init__(self, at: VarsAt, mapping: Mapping[Any, Any], key: str) -> None:
        self.at, self.mapping, self.key = at, mapping, key

    def __call__(self) -> Site:
        return self.at.site(self.mapping, self.key)


def check_vars(mapping: Mapping[Any, Any], at: VarsAt, problems: Problems, *, group: bool) -> None:
    """Check the variables set by one mapping (a host entry, a group's vars, a vars file)."""
    plain = _PLAIN_NAMES
    for name, value in mapping.items():
        if name in plain:
            continue
        checker = _CHECKERS.get(name)
        if checker is not None:
            checker(value, _Where(at, mapping, name), problems, group, at)
        elif not isinstance(name, str):
            problems.add(at.site(mapping, name), f"variable names must be text, not {kind(name)}")
        elif like_fleet(name):  # never cached: only its value tells a typo
            if isinstance(value, Mapping) and any(key in FLEET_KEYS for key in value):
                problems.add(
                    at.site(mapping, name),
                    f"variable {name!r} holds fleet's keys, but fleet reads them from 'fleet'",
                    f"did you mean {FLEET_VAR!r}?",
                )
        else:
            meant = near_miss(name)
            if meant is not None:
                problems.add(
                    at.site(mapping, name),
                    f"unknown variable {name!r}: Ansible does not know it",
                    f"did you mean {meant!r}?",
                )
            elif len(plain) < 100_000:
                plain.add(name)


def _address(value: Any, where: _Where, problems: Problems, group: bool, at: VarsAt) -> None:
    if not isinstance(value, str) or not value.strip():
        problems.add(where(), f"must be a host name or address, not {kind(value)}")
    elif "{{" not in value and not _TOKEN.fullmatch(value):
        problems.add(where(), f"{value!r} must be one word and must not start with '-'")


def _user(value: Any, where: _Where, problems: Problems, group: bool, at: VarsAt) -> None:
    if not isinstance(value, str) or ("{{" not in value and not _TOKEN.fullmatch(value)):
        shown = repr(value) if isinstance(value, str) else kind(value)
        problems.add(where(), f"a user name is one word not starting with '-', not {shown}")


def _port(value: Any, where: _Where, problems: Problems, group: bool, at: VarsAt) -> None:
    if isinstance(value, str) and "{{" in value:
        return
    number = port_number(value)
    if number is None:
        problems.add(where(), f"must be a port number from 1 to 65535, not {value!r}")


def port_number(value: Any) -> int | None:
    """The port an Ansible port variable gives (an integer, or digits in a string)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit() and value.isascii():
        value = int(value)
    if isinstance(value, int) and 1 <= value <= 65535:
        return value
    return None


def _key_file(value: Any, where: _Where, problems: Problems, group: bool, at: VarsAt) -> None:
    if not isinstance(value, str) or not value.strip():
        problems.add(where(), f"must be the path of a private key file, not {kind(value)}")


def _fleet(value: Any, where: _Where, problems: Problems, group: bool, at: VarsAt) -> None:
    """fleet's own mapping: ``ovh_service`` (hosts only), ``datacenter``, ``rack``, ``labels``."""
    if not isinstance(value, Mapping):
        problems.add(
            where(),
            f"the fleet variable holds fleet's settings, a mapping, not {kind(value)}",
            f"fleet: {{{', '.join(f'{k}: ...' for k in FLEET_KEYS)}}}",
        )
        return
    for key, item in value.items():
        if item is None and key in FLEET_KEYS:  # null unsets what a group set
            continue
        if key == "ovh_service":
            if group:
                problems.add(
                    at.site(value, key), "ovh_service names one server: set it on the host"
                )
            elif not isinstance(item, str) or not _TOKEN.fullmatch(item):
                problems.add(
                    at.site(value, key),
                    f"must be an OVH service name (nsXXXX.ip-...), not {item!r}",
                )
        elif key in ("datacenter", "rack"):
            if isinstance(item, bool) or not isinstance(item, str | int) or not str(item).strip():
                problems.add(
                    at.site(value, key), f"must be text, not {kind(item)}", "quote the value"
                )
        elif key == "labels":
            _labels(item, at.site(value, key), at, problems)
        elif key in _REACH:
            try:
                _REACH[key](item)
            except ValueError as exc:
                problems.add(at.site(value, key), str(exc))
        else:
            problems.add(at.site(value, key), f"unknown fleet key {key!r}", _fleet_hint(str(key)))


def _fleet_hint(key: str) -> str:
    aliases = {"address": "ansible_host", "port": "ansible_port", "user": "ansible_user"}
    aliases |= {
        "ssh_key": "ansible_ssh_private_key_file",
        "key_file": "ansible_ssh_private_key_file",
    }
    if key in aliases:
        return f"connection settings are Ansible's: set {aliases[key]} next to fleet:"
    return suggest(key, FLEET_KEYS) or f"fleet's keys are {', '.join(FLEET_KEYS)}"


def _labels(value: Any, site: Site, at: VarsAt, problems: Problems) -> None:
    if not isinstance(value, Mapping):
        problems.add(site, f"labels must be a mapping of names to text, not {kind(value)}")
        return
    for label, text in value.items():
        site = at.site(value, label)
        if not isinstance(label, str) or not label or "=" in label:
            problems.add(site, f"label name {label!r} must be text without '='")
        else:
            _text(text, site, problems)


def _text(value: Any, site: Site, problems: Problems) -> None:
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        problems.add(site, f"must be text, not {kind(value)}", "quote the value")


_REACH: dict[str, Callable[[Any], Any]] = {
    "bastion": connection.bastion,
    "connect_timeout": connection.seconds,
    "command_timeout": connection.seconds,
    "sudo_password": connection.sudo_source,
}


def _checked_by(
    check: Callable[[Any], Any],
) -> Callable[[Any, _Where, Problems, bool, VarsAt], None]:
    """A checker of an Ansible variable from a check that raises ValueError."""

    def checker(value: Any, where: _Where, problems: Problems, group: bool, at: VarsAt) -> None:
        if value is None or (isinstance(value, str) and "{{" in value and "lookup(" not in value):
            return
        try:
            check(value)
        except ValueError as exc:
            problems.add(where(), str(exc))

    return checker


_CHECKERS: dict[str, Callable[[Any, _Where, Problems, bool, VarsAt], None]] = {
    **{name: _checked_by(connection.ssh_args_bastion) for name in SSH_ARGS_VARS},
    **{name: _checked_by(connection.seconds) for name in connection.TIMEOUT_VARS},
    # Ansible's sudo password variables are judged per host, before connecting (resolve.py):
    # a real inventory that writes one still lists, and its other hosts still run
    FLEET_VAR: _fleet,
    **{name: _address for name in (*CONNECTION_VARS["address"], PARAMIKO_VARS["address"])},
    **{name: _port for name in (*CONNECTION_VARS["port"], PARAMIKO_VARS["port"])},
    **{name: _user for name in (*CONNECTION_VARS["user"], PARAMIKO_VARS["user"])},
    **{name: _key_file for name in (*CONNECTION_VARS["key_file"], PARAMIKO_VARS["key_file"])},
}


_NAME = re.compile(r"[^\s,!&~@][^\s,]*")


def check_name(value: Any, site: Site, what: str, problems: Problems) -> str | None:
    """Host and group names: text usable in ``--limit`` and messages; None when refused."""
    if isinstance(value, str) and _NAME.fullmatch(value) and value.isprintable():
        return value
    if not isinstance(value, str) or not value:
        problems.add(site, f"a {what} name must be non-empty text, not {kind(value)}")
        return None
    if any(c.isspace() or not c.isprintable() or c == "," for c in value):
        problems.add(site, f"{what} name {value!r} must not contain spaces or ','")
        return None
    if value[0] in "!&~@":
        problems.add(site, f"{what} name {value!r} starts with a --limit operator ({value[0]})")
        return None
    return value
