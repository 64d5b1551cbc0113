"""What a host's python stages decided and identified, kept with its record in the journal:
the facts each stage returned (``step.end`` of a ``python`` step), folded per host.

A report and ``fleet status RUN HOST`` show from them the ``decisions`` of a guard (the disks
taken, with path, model, serial, size and why; the others and why not; notes such as space left
unused) and the identities a plan found or made (:data:`IDENTITY_KEYS`: array and filesystem
UUIDs...), never the raw probe outputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fleet.store.base import Event

#: Facts shown as the host's identities, in this order, when a stage returned them.
IDENTITY_KEYS = (
    "array_uuid", "array_name", "md_device", "fs_uuid", "existing_uuid", "digest",
    "verified_device", "verified_bytes",
)  # fmt: skip


def host_facts(events: Iterable[Event]) -> dict[str, dict[str, Any]]:
    """Host -> every fact its python stages returned, later ones winning."""
    out: dict[str, dict[str, Any]] = {}
    for e in events:
        if e.kind == "step.end" and e.step == "python" and e.host and e.outcome == "applied":
            facts = e.data.get("facts")
            if isinstance(facts, dict):
                out.setdefault(e.host, {}).update(facts)
    return out


def record_of(facts: dict[str, Any]) -> dict[str, Any]:
    """The part of a host's facts a report shows: decisions and identities."""
    record: dict[str, Any] = {k: facts[k] for k in IDENTITY_KEYS if facts.get(k) not in (None, "")}
    decisions = facts.get("decisions")
    if isinstance(decisions, dict):
        record["decisions"] = decisions
    return record


def host_records(events: Iterable[Event]) -> dict[str, dict[str, Any]]:
    """Host -> its record (hosts whose stages returned nothing to show are left out)."""
    records = {h: record_of(f) for h, f in host_facts(events).items()}
    return {h: r for h, r in records.items() if r}


def _size(value: object) -> str:
    from fleet.plans.disks.lsblk import human

    return human(value) if isinstance(value, int) else str(value or "")


def decision_lines(decisions: Mapping[str, Any]) -> list[str]:
    """What a guard decided (its ``decisions`` fact): disks taken, not taken, notes."""
    lines = []
    for word, key in (("take", "taken"), ("not ", "refused")):
        for disk in decisions.get(key) or []:
            lines.append(
                f"{word} {disk['path']}  {disk['model'] or 'no model'}  serial "
                f"{disk['serial'] or '?'}  {_size(disk['size'])}  {disk['why']}"
            )
    lines += [f"note {n}" for n in decisions.get("notes") or []]
    if decisions.get("existing_array"):
        lines.append(f"array {decisions['existing_array']} (fleet's own, already there)")
    return lines
