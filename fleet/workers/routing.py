"""Which queue a host's task goes to: one per datacenter by default, so that the workers that
consume it (``fleet worker --queues gra3``) run SSH from inside that network."""

from __future__ import annotations

from fleet.errors import ConfigError
from fleet.inventory import Host

#: ``workers.route_by`` values besides ``label:NAME``.
ROUTES = ("datacenter", "region")


def check_route(route_by: str) -> None:
    """Refuse a ``workers.route_by`` value fleet cannot route by."""
    if route_by in ROUTES or (route_by.startswith("label:") and route_by[6:]):
        return
    raise ConfigError(
        f"workers.route_by: {route_by!r} is not datacenter, region or label:NAME",
        hint="e.g. route_by = 'datacenter' (gra3, rbx8...) or 'label:network'",
    )


def queue_for(host: Host, route_by: str, default: str) -> str:
    """The queue of ``host``: its datacenter (``gra3``), region (``gra``: the datacenter's
    letters) or the value of one of its labels; ``default`` when the host has none."""
    check_route(route_by)
    if route_by.startswith("label:"):
        value = host.labels.get(route_by[6:])
    elif route_by == "region":
        value = "".join(ch for ch in host.datacenter or "" if ch.isalpha())
    else:
        value = host.datacenter
    return value or default
