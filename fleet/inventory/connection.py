"""Checks of the inventory keys that say how fleet reaches a host: its bastion, its timeouts,
where its sudo password is read. Values are checked when the inventory loads, so a bad one is a
one-line error naming the file and key, before any host is contacted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fleet.inventory.checks import _check_text, _kind, _Site
from fleet.transport.base import parse_jump
from fleet.transport.secrets import check_source


def _bastion(value: Any, site: _Site) -> str:
    text = _check_text(value, site)
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
    try:
        return check_source(_check_text(value, site))
    except ValueError as exc:
        raise site.error(f"{exc}: the password itself never goes in an inventory") from None


CONNECTION_CHECKS: dict[str, Callable[[Any, _Site], Any]] = {
    "bastion": _bastion,
    "connect_timeout": _seconds,
    "command_timeout": _seconds,
    "sudo_password": _secret,
}
