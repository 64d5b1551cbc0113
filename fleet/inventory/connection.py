"""How fleet reaches a host beyond address, port, user and key: its bastion, its timeouts, where
its sudo password is read. Each is a key of the ``fleet`` mapping, and Ansible's spellings are
read too (the ``fleet`` key wins when both are set):

=================  ==========================================================================
``bastion``        ``-o ProxyJump=...`` or ``-J ...`` in ``ansible_ssh_common_args`` (then
                   ``ansible_ssh_extra_args``, ``ansible_ssh_args``: the first ssh would read);
                   OpenSSH's ProxyJump: ``[user@]host[:port]``, hops separated by commas
``connect_timeout`` ``ansible_ssh_timeout``, ``ansible_timeout``: seconds to connect
``command_timeout`` fleet's only: an upper bound in seconds on every command on the host
``sudo_password``  ``ansible_become_password``, ``ansible_become_pass`` when a lookup of an
                   environment variable or a file (``{{ lookup('env', 'NAME') }}``); fleet's
                   own spelling is ``env:NAME`` or ``file:PATH``. A password written in an
                   inventory is never used: that host is refused before any connection (the
                   others still run), and the message does not repeat it.
=================  ==========================================================================
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any

from fleet.inventory.keys import SSH_ARGS_VARS
from fleet.transport.base import parse_jump
from fleet.transport.secrets import check_source

REACH_KEYS = ("bastion", "connect_timeout", "command_timeout", "sudo_password")
#: Ansible's spellings, the one that wins first.
TIMEOUT_VARS = ("ansible_ssh_timeout", "ansible_timeout")
SUDO_VARS = ("ansible_become_password", "ansible_become_pass")

_LOOKUP = re.compile(r"""\{\{\s*lookup\(\s*['"](env|file)['"]\s*,\s*['"]([^'"]+)['"]\s*\)\s*\}\}""")


def proxy_jump(ssh_args: str) -> str | None:
    """The ProxyJump value of ssh command-line options (``-o ProxyJump=X``, ``-J X``).

    Raises:
        ValueError: options shlex cannot split (an unclosed quote).
    """
    words = shlex.split(ssh_args)
    for i, word in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if word == "-J" and nxt:
            return nxt
        option = nxt if word == "-o" else word.removeprefix("-o") if word.startswith("-o") else ""
        key, sep, value = option.partition("=")
        if sep and key.strip().lower() == "proxyjump":
            return value.strip()
    return None


def bastion(value: Any) -> str:
    """A ProxyJump value, checked. Raises ValueError saying what is wrong."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            "a bastion is a ProxyJump value: [user@]host[:port], hops separated by commas"
        )
    parse_jump(value.strip())
    return value.strip()


def ssh_args_bastion(value: Any) -> str | None:
    """The bastion ssh options give, checked (None: they name none)."""
    if not isinstance(value, str):
        return None
    try:
        found = proxy_jump(value)
    except ValueError as exc:
        raise ValueError(f"cannot read these ssh options: {exc}") from None
    return None if found is None else bastion(found)


def seconds(value: Any) -> float:
    """A positive number of seconds (digits in text too, as Ansible converts them)."""
    if isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError("must be a positive number of seconds")
    return float(value)


def sudo_source(value: Any) -> str:
    """Where the sudo password is read (``env:NAME``, ``file:PATH``). The message of the
    ValueError never repeats the value: it may be the password itself."""
    if not isinstance(value, str):
        raise ValueError("a sudo password is named by its source: env:NAME or file:PATH")
    lookup = _LOOKUP.fullmatch(value.strip())
    if lookup:  # Ansible's way of naming a secret that is not in the file
        return f"{lookup.group(1)}:{lookup.group(2)}"
    try:
        return check_source(value.strip())
    except ValueError as exc:
        raise ValueError(f"{exc}: the password itself never goes in an inventory") from None


def reach(variables: Mapping[str, Any], fleet: Mapping[str, Any]) -> dict[str, Any]:
    """The four settings of a host, from its ``fleet`` mapping, else Ansible's spellings (the
    values were checked where they were written: a bad one here is left unset)."""
    ansible = [variables.get(name) for name in SSH_ARGS_VARS]
    return {
        "bastion": _first(bastion, [fleet.get("bastion")]) or _first(ssh_args_bastion, ansible),
        "connect_timeout": _first(
            seconds, [fleet.get("connect_timeout"), *(variables.get(n) for n in TIMEOUT_VARS)]
        ),
        "command_timeout": _first(seconds, [fleet.get("command_timeout")]),
        "sudo_password": _first(
            sudo_source, [fleet.get("sudo_password"), *(variables.get(n) for n in SUDO_VARS)]
        ),
    }


def _first(convert: Any, candidates: list[Any]) -> Any:
    for candidate in candidates:
        if candidate is None:
            continue
        try:
            value = convert(candidate)
        except ValueError:
            continue
        if value is not None:
            return value
    return None
