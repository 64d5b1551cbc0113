"""Rolling batches: canary first, then counts or percentages, optionally spread across a label.

``--batches 1,5,10%,100%`` over 50 hosts gives 1, 5, 5, 39: percentages are of all selected
hosts (rounded up, at least 1) and the last size repeats until every host has a batch.
``--by datacenter`` orders hosts round-robin across datacenters before cutting batches, so one
datacenter (or rack) is never hit all at once while others wait.
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
    groups: OrderedDict[str, list[Host]] = OrderedDict()
    for host in hosts:
        groups.setdefault(label_value(host, by), []).append(host)
    out: list[Host] = []
    queues = list(groups.values())
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


def make_batches(hosts: Sequence[Host], spec: str, by: str | None = None) -> list[list[Host]]:
    ordered = spread(hosts, by)
    return cut(ordered, batch_sizes(spec, len(ordered)))
