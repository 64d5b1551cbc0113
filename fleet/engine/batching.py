"""Rolling batches: canary first, then counts or percentages, optionally spread across a label.

``--batches 1,5,10%,100%`` over 50 hosts gives 1, 5, 5, 39: percentages are of all selected
hosts (rounded up, at least 1) and the last size repeats until every host has a batch.
``--by datacenter`` orders hosts round-robin across datacenters before cutting batches, so one
datacenter (or rack) is never hit all at once while others wait.

``--serial-by datacenter`` (or ``rack``) does the opposite: one topology unit at a time. Each
unit, in the order the inventory first names it, gets its own batches (canary first, percentages
of the unit's hosts), and no batch holds hosts of two units: a bad change stays in one
datacenter. ``--max-per N`` caps how many hosts of one unit (of ``--serial-by``, else of
``--by``) a batch holds; a batch cut smaller by the cap leaves its other hosts to the next.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import TypeVar

from fleet.errors import UsageError
from fleet.inventory import Host

T = TypeVar("T")


def parse_sizes(spec: str) -> list[str]:
    """Validate a batch spec; returns its terms ("1", "10%")."""
    terms = [t.strip() for t in spec.split(",") if t.strip()]
    if not terms:
        raise UsageError("--batches: empty; example: --batches 1,10%,100%")
    for term in terms:
        number = term[:-1] if term.endswith("%") else term
        valid = number.isascii() and number.isdigit() and int(number) > 0
        if not valid or (term.endswith("%") and int(number) > 100):
            raise UsageError(
                f"--batches: {term!r} is neither a count (5) nor a percentage (10%, up to 100%)"
            )
    return terms


def batch_sizes(spec: str, total: int) -> list[int]:
    """Sizes of consecutive batches covering ``total`` hosts."""
    terms = parse_sizes(spec)
    sizes: list[int] = []
    left = total
    i = 0
    while left > 0:
        term = terms[min(i, len(terms) - 1)]
        size = math.ceil(total * int(term[:-1]) / 100) if term.endswith("%") else int(term)
        size = max(1, min(size, left))
        sizes.append(size)
        left -= size
        i += 1
    return sizes


def spread(hosts: Sequence[Host], by: str | None) -> list[Host]:
    """Round-robin order across the values of ``by`` (datacenter, rack, or a label name)."""
    if not by:
        return list(hosts)
    out: list[Host] = []
    queues = units(hosts, by)
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def label_value(host: Host, by: str) -> str:
    if by == "datacenter":
        return host.datacenter or "-"
    if by == "rack":
        return host.rack or "-"
    return host.labels.get(by, "-")


def cut(items: Sequence[T], sizes: Sequence[int]) -> list[list[T]]:
    out: list[list[T]] = []
    start = 0
    for size in sizes:
        out.append(list(items[start : start + size]))
        start += size
    return out


#: What ``--serial-by`` takes: one of these units at a time.
SERIAL_UNITS = ("datacenter", "rack")


def check_topology(by: str | None, serial_by: str | None, max_per: int | None) -> None:
    """Refuse topology options that cannot mean anything (before any run exists)."""
    if serial_by is not None and serial_by not in SERIAL_UNITS:
        raise UsageError(f"--serial-by {serial_by!r}: one of {', '.join(SERIAL_UNITS)}")
    if max_per is not None and max_per < 1:
        raise UsageError("--max-per must be at least 1")
    if max_per is not None and not (serial_by or by):
        raise UsageError(
            "--max-per caps the hosts of one datacenter or rack in a batch: give --serial-by "
            "or --by with it"
        )


def units(hosts: Sequence[Host], by: str) -> list[list[Host]]:
    """Hosts grouped by their value of ``by``, units in the order the hosts first name them."""
    groups: OrderedDict[str, list[Host]] = OrderedDict()
    for host in hosts:
        groups.setdefault(label_value(host, by), []).append(host)
    return list(groups.values())


def capped(ordered: Sequence[Host], sizes: Sequence[int], key: str, cap: int) -> list[list[Host]]:
    """Batches of the given sizes (the last repeating) where no ``key`` unit has more than
    ``cap`` hosts; the hosts a batch could not take stay, in order, for the next ones."""
    pending, out = list(ordered), list[list[Host]]()
    while pending:
        size = sizes[min(len(out), len(sizes) - 1)] if sizes else len(pending)
        batch: list[Host] = []
        rest: list[Host] = []
        taken: dict[str, int] = {}
        for host in pending:
            unit = label_value(host, key)
            if len(batch) < size and taken.get(unit, 0) < cap:
                batch.append(host)
                taken[unit] = taken.get(unit, 0) + 1
            else:
                rest.append(host)
        out.append(batch)  # never empty: the first pending host always fits
        pending = rest
    return out


def make_batches(
    hosts: Sequence[Host],
    spec: str,
    by: str | None = None,
    *,
    serial_by: str | None = None,
    max_per: int | None = None,
) -> list[list[Host]]:
    """The rollout's batches: see the module's docstring for ``by``, ``serial_by``, ``max_per``."""
    if serial_by:
        return [
            b for unit in units(hosts, serial_by) for b in _cut(unit, spec, by, max_per, serial_by)
        ]
    return _cut(hosts, spec, by, max_per, by)


def _cut(
    hosts: Sequence[Host], spec: str, by: str | None, max_per: int | None, cap_by: str | None
) -> list[list[Host]]:
    ordered = spread(hosts, by)
    sizes = batch_sizes(spec, len(ordered))
    if max_per is None or not cap_by:
        return cut(ordered, sizes)
    return capped(ordered, sizes, cap_by, max_per)
