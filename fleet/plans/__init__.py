"""Built-in plans, written in Python: ``fleet rollout builtin:NAME`` or just ``NAME``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fleet.errors import UsageError
from fleet.plan import Plan, parse_plan


def rescue_check(params: dict[str, Any]) -> Plan:
    """Boot into rescue, prove it, look at the disks read-only, boot back to disk."""
    return parse_plan(
        {
            "name": "rescue-check",
            "description": "rescue round trip with a read-only look at the disks",
            "stages": [
                {"name": "rescue", "kind": "rescue"},
                {
                    "name": "look",
                    "steps": [
                        {"name": "identity", "apply": "hostname"},
                        {
                            "name": "disks",
                            "apply": "lsblk -J -b -o NAME,SIZE,ROTA,TYPE,MOUNTPOINT 2>/dev/null || true",
                        },
                    ],
                },
                {"name": "disk", "kind": "disk"},
            ],
        },
        "builtin:rescue-check",
    )


def _hybrid_raid(params: dict[str, Any]) -> Plan:
    from fleet.plans.hybrid_raid import hybrid_raid  # imported late: it imports this package

    return hybrid_raid(params)


BUILTINS: dict[str, Callable[[dict[str, Any]], Plan]] = {
    "rescue-check": rescue_check,
    "hybrid-raid": _hybrid_raid,
}


def builtin_plan(name: str, params: dict[str, Any]) -> Plan:
    try:
        factory = BUILTINS[name]
    except KeyError:
        known = ", ".join(sorted(BUILTINS))
        raise UsageError(
            f"no built-in plan {name!r} and no such .yaml file", hint=f"built-in plans: {known}"
        ) from None
    return factory(params)
