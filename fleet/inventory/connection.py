"""Checks of the inventory keys that say how fleet reaches a host: its bastion, its timeouts,
where its sudo password is read. Values are checked when the inventory loads, so a bad one is a
one-line error naming the file and key, before any host is contacted.

Ansible's spellings are read too: ``ansible_ssh_common_args`` for its ``-o ProxyJump=...`` (or
``-J ...``; the other ssh options are left to fleet's own settings), ``ansible_timeout`` for the
connect timeout, and ``ansible_become_password`` when it is a lookup of an environment variable
or a file (``{{ lookup('env', 'NAME') }}``): a password written in an inventory is refused.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from typing import Any

from fleet.inventory.checks import _check_text, _kind, _Site
from fleet.transport.base import parse_jump
from fleet.transport.secrets import check_source

_LOOKUP = re.compile(r"""\{\{\s*lookup\(\s*['"](env|file)['"]\s*,\s*['"]([^'"]+)['"]\s*\)\s*\}\}""")


def proxy_jump(ssh_args: str) -> str | None:
    """The ProxyJump value of ssh command-line options (``-o ProxyJump=X``, ``-J X``)."""
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


def _bastion(value: Any, site: _Site) -> str | None:
    text = _check_text(value, site)
    if text.lstrip().startswith("-"):  # ansible_ssh_common_args: only its ProxyJump matters
        try:
            found = proxy_jump(text)
        except ValueError as exc:
            raise site.error(f"cannot read these ssh options: {exc}") from None
        if found is None:
            return None
        text = found
    try:
        parse_jump(text)
    except ValueError as exc:
        raise site.error(str(exc)) from None
    return text


def _seconds(value: Any, site: _Site) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise site.error(f"must be a positive number of seconds, not {_kind(value)}")
    return float(value)


def _secret(value: Any, site: _Site) -> str:
    text = _check_text(value, site)
    lookup = _LOOKUP.fullmatch(text.strip())
    if lookup:  # Ansible's way of naming a secret that is not in the file
        return f"{lookup.group(1)}:{lookup.group(2)}"
    try:
        return check_source(text)
    except ValueError as exc:
        raise site.error(f"{exc}: the password itself never goes in an inventory") from None


CONNECTION_CHECKS: dict[str, Callable[[Any, _Site], Any]] = {
    "bastion": _bastion,
    "connect_timeout": _seconds,
    "command_timeout": _seconds,
    "sudo_password": _secret,
}
