"""The ``--limit`` selection language (see :mod:`fleet.inventory`)."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable
from typing import TYPE_CHECKING

from fleet.errors import UsageError

if TYPE_CHECKING:
    from fleet.inventory.records import Host, Inventory


#: Words of the selection syntax that cannot name a host (a group ``hybrid`` adds to the term).
RESERVED_HOST_NAMES = frozenset({"hybrid"})
RESERVED_PREFIXES = ("label:", "dc:", "rack:")


_GLOB_CHARS = frozenset("*?[")


def _suggest(word: str, candidates: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(candidates), n=3)
    return f"did you mean {' or '.join(repr(c) for c in close)}?" if close else None


def select_hosts(inventory: Inventory, limit: str | None, flag: str = "--limit") -> list[Host]:
    """Hosts chosen by a ``--limit`` expression, in inventory order; None = all.

    A limit that is given must select something: an empty or blank one (``''``, ``','``) and
    one that leaves no host (``'!all'``, an empty group) are usage errors naming it, so that a
    typo never turns into "every host" or a run of nothing.
    """
    terms = [term.strip() for term in (limit or "").split(",") if term.strip()]
    if limit is None:
        return list(inventory.hosts)
    if not terms:
        raise UsageError(
            f"{flag} {limit!r} is empty",
            hint=f"name hosts, groups or patterns; leave {flag} out to select every host",
        )
    union: set[str] | None = None
    narrow: list[set[str]] = []
    exclude: set[str] = set()
    for term in terms:
        if term[0] == "!":
            exclude |= _match(inventory, term[1:], term, flag)
        elif term[0] == "&":
            narrow.append(_match(inventory, term[1:], term, flag))
        else:
            union = (union or set()) | _match(inventory, term, term, flag)
    chosen = {host.name for host in inventory.hosts} if union is None else union
    for subset in narrow:
        chosen &= subset
    selected = [h for h in inventory.hosts if h.name in chosen and h.name not in exclude]
    if not selected:
        raise UsageError(
            f"{flag} {limit!r} selects no host",
            hint="`fleet inventory list` shows the hosts, groups and labels",
        )
    return selected


def _match(inventory: Inventory, term: str, original: str, flag: str) -> set[str]:
    term = term.strip()
    if not term:
        raise UsageError(f"{flag} {original!r}: empty term after '!' or '&'")
    matched = _match_term(inventory, term)
    if not matched and term not in inventory.groups:
        raise UsageError(
            f"{flag} {original!r} matches no host or group",
            hint=_suggest(term, [*(host.name for host in inventory.hosts), *inventory.groups]),
        )
    return matched


def _match_term(inventory: Inventory, term: str) -> set[str]:
    """Host names matched by one selection term (without its ``!``/``&`` prefix)."""
    hosts = inventory.hosts
    if term.startswith("label:"):
        key, has_value, pattern = term[len("label:") :].partition("=")
        return {
            h.name
            for h in hosts
            if key in h.labels and (not has_value or fnmatch.fnmatchcase(h.labels[key], pattern))
        }
    if term.startswith(("dc:", "rack:")):
        attr, _, pattern = term.partition(":")
        attr = "datacenter" if attr == "dc" else "rack"
        return {h.name for h in hosts if _match_ci(getattr(h, attr), pattern)}
    if term == "hybrid":  # classified from OVH data, or declared by a group named hybrid
        return {h.name for h in hosts if h.hybrid}.union(inventory.groups.get("hybrid", ()))
    if term == "all":
        return {h.name for h in hosts}
    if inventory.get(term) is not None:
        return {term}
    if term in inventory.groups:
        return set(inventory.groups[term])
    if _GLOB_CHARS & set(term):
        return {h.name for h in hosts if fnmatch.fnmatchcase(h.name, term)}
    return set()


def _match_ci(value: str | None, pattern: str) -> bool:
    return value is not None and fnmatch.fnmatchcase(value.lower(), pattern.lower())
