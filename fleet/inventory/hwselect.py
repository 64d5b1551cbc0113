"""``hw:`` selectors: hosts chosen by their hardware, as the OVH API describes it.

==========================  ===============================================================
``hw:hybrid``               NVMe or SSD system disks plus a group of rotational disks
``hw:disks=hdd``            has disks of each kind listed: ``nvme``, ``ssd``, ``hdd``
                            (``hw:disks=nvme+hdd``); ``!=`` negates
``hw:system=nvme``          the kind of the system disks (``nvme`` or ``ssd``)
``hw:hdd_count>=2``         compare a number: ``hdd_count``, ``hdd_size_gb`` (one HDD),
                            ``hdd_total_gb``, ``system_count``, ``system_size_gb``; with
                            ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``
``hw:model=SCALE*``         OVH's hardware description (a glob, any case); ``!=`` negates
==========================  ===============================================================

A host without OVH data (no ``fleet.ovh_service``, or the inventory not enriched) matches no
``hw:`` term, and is not excluded by ``!hw:...`` either: only what OVH says decides.
"""

from __future__ import annotations

import fnmatch
import operator
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from fleet.errors import UsageError
from fleet.inventory.problems import suggest

if TYPE_CHECKING:
    from fleet.inventory.records import Host

NUMBERS = ("hdd_count", "hdd_size_gb", "hdd_total_gb", "system_count", "system_size_gb")
FIELDS = ("hybrid", "disks", "system", "model", *NUMBERS)
DISK_KINDS = ("nvme", "ssd", "hdd")
_OPERATORS: dict[str, Callable[[int, int], bool]] = {
    "=": operator.eq,
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_EXPRESSION = re.compile(r"([a-z_]+)\s*(==|!=|<=|>=|=|<|>)\s*(.*)")

HostTest = Callable[["Host"], bool]


def parse_hw(term: str, shown: str | None = None) -> HostTest:
    """The test of one ``hw:`` term (``term`` without the ``hw:`` prefix); ``shown`` starts
    error messages (by default ``--limit 'hw:TERM'``).

    Raises:
        UsageError: an unknown field, operator or value, with a suggestion.
    """
    shown = shown or f"--limit {'hw:' + term!r}"
    if term == "hybrid":
        return lambda host: host.disks is not None and host.disks.hybrid
    match = _EXPRESSION.fullmatch(term.strip())
    if not match:
        field = re.split(r"[^a-z_]", term, maxsplit=1)[0]
        if field not in FIELDS:
            raise UsageError(f"{shown}: unknown hardware field", hint=_field_hint(field))
        raise UsageError(
            f"{shown}: expected hw:FIELD<op>VALUE",
            hint="for instance hw:hdd_count>=2, hw:disks=hdd, hw:model=SCALE*",
        )
    field, op, value = match.groups()
    if field not in FIELDS or field == "hybrid":
        raise UsageError(f"{shown}: unknown hardware field", hint=_field_hint(field))
    if field in NUMBERS:
        return _number_test(shown, field, op, value)
    if op not in ("=", "==", "!="):
        raise UsageError(f"{shown}: {field} takes = or !=, not {op}")
    test = _text_test(shown, field, value)
    return (lambda host: not test(host) and host.disks is not None) if op == "!=" else test


def _field_hint(field: str) -> str:
    return suggest(field, FIELDS) or f"hardware fields: {', '.join(FIELDS)}"


def _number_test(shown: str, field: str, op: str, value: str) -> HostTest:
    if not value.strip().isdigit():
        raise UsageError(f"{shown}: {field} compares with a whole number")
    compare, number = _OPERATORS[op], int(value)
    return lambda host: host.disks is not None and compare(getattr(host.disks, field), number)


def _text_test(shown: str, field: str, value: str) -> HostTest:
    wanted = value.strip().lower()
    if field == "disks":
        kinds = [k for k in wanted.split("+") if k]
        unknown = [k for k in kinds if k not in DISK_KINDS]
        if unknown or not kinds:
            raise UsageError(
                f"{shown}: disk kinds are {', '.join(DISK_KINDS)}",
                hint=suggest(unknown[0], DISK_KINDS) if unknown else None,
            )
        return lambda host: (
            host.disks is not None and all(k.upper() in host.disks.kinds for k in kinds)
        )
    if field == "system":
        if wanted not in ("nvme", "ssd"):
            raise UsageError(f"{shown}: system disks are nvme or ssd")
        return lambda host: (
            host.disks is not None and (host.disks.system_type or "").lower() == wanted
        )
    return lambda host: (
        host.disks is not None and fnmatch.fnmatchcase((host.model or "").lower(), wanted)
    )
