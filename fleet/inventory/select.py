"""The ``--limit`` language: Ansible's host patterns, and fleet's selectors where Ansible has none.

Ansible's grammar, with Ansible's meaning (``ansible-playbook --limit``):

- terms separated by ``,`` (or by ``:`` when the limit has no comma and is not one address);
- a term is a host or group name, a glob (``web-*``, ``db[12]``) or ``~regex`` (matched from the
  start of the name); a group selects its hosts and its descendants'; a glob or a regex, or a
  name no group has, also matches host names; ``all`` is every host;
- a subscript picks among what a term matched, in Ansible's order: ``web[0]``, ``web[-1]``,
  ``web[1:3]`` (both ends included), ``web[2:]``;
- ``&term`` keeps only hosts also in the term, ``!term`` removes the term's hosts; plain terms
  are united first, then the ``&`` terms, then the ``!`` terms, whatever their order;
  ``@FILE`` reads more terms from a file, one a line.

fleet's selectors, words Ansible leaves free: ``label:KEY=GLOB`` (``label:KEY``: has it),
``dc:GLOB``, ``rack:GLOB`` (any case), ``hw:...`` (see :mod:`fleet.inventory.hwselect`), and
``hybrid`` (``hw:hybrid``) when no group or host has that name.

Where fleet differs, it refuses rather than select other hosts than Ansible would:

- a term that matches nothing is an error (Ansible warns and goes on): a mistyped ``!term`` never
  widens a rollout;
- ``dc:x`` (and ``label:``, ``rack:``, ``hw:``) is refused when the inventory has a host or group
  named ``dc`` (Ansible would read two groups there), or a name with that very text;
- a subscript that would pick hosts in an order Ansible leaves unspecified (among groups nested
  two levels below the term, under several parents) is refused;
- ``web[1-2]`` (a form Ansible removed) is refused; implicit ``localhost`` does not exist.

The result is every selected host in inventory order.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from fleet.errors import UsageError
from fleet.inventory.hostpattern import parses_as_address
from fleet.inventory.hwselect import parse_hw
from fleet.inventory.problems import suggest

if TYPE_CHECKING:
    from fleet.inventory.records import Host, Inventory

#: fleet's selector words (before ``:``), and the bare word for OVH's hybrid classification.
SELECTOR_PREFIXES = ("label", "dc", "rack", "hw")
#: Kept for the modules that imported it from here.
#: Kept for compatibility: the selector prefixes as they are written.
RESERVED_PREFIXES = tuple(f"{p}:" for p in SELECTOR_PREFIXES)
RESERVED_HOST_NAMES = frozenset({"hybrid"})

_SUBSCRIPT = re.compile(r"(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]")
_SEGMENT = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")
_SPECIAL = (".", "?", "*", "[")

#: Positions in a match list whose order Ansible does not specify share a segment number.
_Matched = list[tuple[str, int | None]]


def split_limit(limit: str) -> list[str]:
    """The terms of a limit, as Ansible's ``split_host_pattern`` splits them, with fleet's
    ``word:value`` selectors kept whole."""
    if "," in limit:
        parts = limit.split(",")
    elif parses_as_address(limit.strip()):
        parts = [limit]
    else:
        segments = _SEGMENT.findall(limit)
        parts = []
        while segments:
            segment = segments.pop(0)
            if segment.lstrip("!&") in SELECTOR_PREFIXES and segments:
                segment = f"{segment}:{segments.pop(0)}"
            parts.append(segment)
    return [part.strip() for part in parts if part.strip()]


def needs_ovh(inventory: Inventory, limit: str | None, flag: str = "--limit") -> bool:
    """Whether ``limit`` selects on OVH's hardware data (``hw:``, or ``hybrid`` as a selector).

    Raises:
        UsageError: a malformed ``hw:`` term (before anything is asked of OVH).
    """
    terms = [term.lstrip("!&") for term in _expand_files(split_limit(limit or ""), flag)]
    hardware = [term for term in terms if _is_hw(inventory, term)]
    for term in hardware:
        parse_hw(term.removeprefix("hw:"), f"{flag} {term!r}")
    return bool(hardware)


def _is_hw(inventory: Inventory, term: str) -> bool:
    return term.startswith("hw:") or (term == "hybrid" and not _names(inventory, term))


def select_hosts(inventory: Inventory, limit: str | None, flag: str = "--limit") -> list[Host]:
    """Hosts chosen by a ``--limit`` expression, in inventory order; None = all.

    A limit that is given must select something: a blank one (``''``, ``','``) and one that
    leaves no host (``'!all'``, an empty group) are usage errors naming ``flag``, so that a typo
    never turns into "every host" or a run of nothing.
    """
    if limit is None:
        return list(inventory.hosts)
    terms = _expand_files(split_limit(limit), flag)
    if not terms:
        raise UsageError(
            f"{flag} {limit!r} is empty",
            hint=f"name hosts, groups or patterns; leave {flag} out to select every host",
        )
    regular = [t for t in terms if t[0] not in "!&"] or ["all"]
    chosen: set[str] = set()
    for term in regular:
        chosen.update(_match(inventory, term, f"{flag} {term!r}"))
    for term in terms:
        if term[0] == "&":
            chosen &= set(_match(inventory, term[1:], f"{flag} {term!r}"))
    for term in terms:
        if term[0] == "!":
            chosen -= set(_match(inventory, term[1:], f"{flag} {term!r}"))
    selected = [host for host in inventory.hosts if host.name in chosen]
    if not selected:
        raise UsageError(
            f"{flag} {limit!r} selects no host",
            hint="`fleet inventory list` shows the hosts, groups and labels",
        )
    return selected


def _expand_files(terms: list[str], flag: str) -> list[str]:
    """``@FILE`` terms replaced by the file's lines, as Ansible's ``--limit @FILE``."""
    expanded = []
    for term in terms:
        if not term.startswith("@"):
            expanded.append(term)
            continue
        path = Path(term[1:]).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{flag} {term!r}: cannot read {path}: {exc}") from exc
        expanded += [line.strip() for line in lines if line.strip()]
    return expanded


def _match(inventory: Inventory, term: str, shown: str) -> list[str]:
    if not term:
        raise UsageError(f"{shown}: empty term after '!' or '&'")
    selector = _selector(inventory, term, shown)
    if selector is not None:
        names = [h.name for h in inventory.hosts if selector(h)]
        if not names and not term.startswith("hw:") and term != "hybrid":
            raise UsageError(f"{shown} matches no host")
        return names
    if inventory.get(term) is not None:
        return [term]
    expr, subscript = _split_subscript(term, shown)
    matched, any_group = _enumerate(inventory, expr, shown)
    if not matched and not any_group:
        names = [h.name for h in inventory.hosts] + list(inventory.groups)
        raise UsageError(f"{shown} matches no host or group", hint=suggest(expr, names))
    return _apply_subscript(matched, subscript, shown) if subscript else [n for n, _ in matched]


def _names(inventory: Inventory, name: str) -> bool:
    return name in inventory.groups or inventory.get(name) is not None


def _selector(inventory: Inventory, term: str, shown: str) -> Callable[[Host], bool] | None:
    """The test of a fleet selector term, or None for an Ansible pattern."""
    if term == "hybrid":
        return None if _names(inventory, term) else _hw(inventory, "hybrid", shown)
    word, colon, value = term.partition(":")
    if not colon or word not in SELECTOR_PREFIXES:
        return None
    for name in (word, term):
        if _names(inventory, name):
            raise UsageError(
                f"{shown}: {name!r} names a host or group of the inventory, and "
                f"{word}: is a fleet selector",
                hint=f"for Ansible's reading (names {word!r} and {value!r}), write "
                f"'{word},{value}'; to use the selector, rename {name!r}",
            )
    if word == "hw":
        return _hw(inventory, value, shown)
    if word == "label":
        key, has_value, pattern = value.partition("=")
        return lambda h: (
            key in h.labels and (not has_value or fnmatch.fnmatchcase(h.labels[key], pattern))
        )
    attribute = "datacenter" if word == "dc" else "rack"
    pattern = value.lower()
    return lambda h: (
        fnmatch.fnmatchcase((getattr(h, attribute) or "").lower(), pattern)
        and bool(getattr(h, attribute))
    )


def _hw(inventory: Inventory, term: str, shown: str) -> Callable[[Host], bool]:
    test = parse_hw(term, shown)
    if not any(h.disks is not None for h in inventory.hosts):
        raise UsageError(
            f"{shown} selects on OVH's hardware data, and no host has any",
            hint="pass --ovh (hosts need fleet.ovh_service), or `fleet inventory list --ovh`",
        )
    return test


def _split_subscript(term: str, shown: str) -> tuple[str, tuple[int, int | None] | None]:
    if term[0] == "~":
        return term, None
    match = _SUBSCRIPT.fullmatch(term)
    if not match:
        return term, None
    expr, index, start, separator, end = match.groups()
    if index is not None:
        return expr, (int(index), None)
    if separator == "-":
        raise UsageError(
            f"{shown}: Ansible removed [x-y] subscripts", hint=f"{expr}[{start}:{end}]"
        )
    return expr, (int(start), int(end) if end else -1)


def _apply_subscript(matched: _Matched, subscript: tuple[int, int | None], shown: str) -> list[str]:
    """Ansible's subscript semantics: ``[i]`` one host, ``[a:b]`` both ends included."""
    if not matched:
        return []
    start, end = subscript
    count = len(matched)
    if end:  # as Ansible: [a:0] reads as [a]
        stop = count - 1 if end == -1 else end
        picked = set(range(count)[start : stop + 1])
    else:
        if not -count <= start < count:
            raise UsageError(f"{shown}: no host at index {start} ({count} matched)")
        picked = {start % count}
    _check_order(matched, picked, shown)
    return [matched[i][0] for i in sorted(picked)]


def _check_order(matched: _Matched, picked: set[int], shown: str) -> None:
    segments: dict[int, set[int]] = {}
    for position, (_, segment) in enumerate(matched):
        if segment is not None:
            segments.setdefault(segment, set()).add(position)
    for positions in segments.values():
        inside = positions & picked
        if inside and inside != positions:
            raise UsageError(
                f"{shown}: Ansible leaves the order of these hosts unspecified (groups "
                "nested under several child groups), so this subscript has no definite meaning",
                hint="subscript a group without nested groups, or name the hosts",
            )


def _enumerate(inventory: Inventory, expr: str, shown: str) -> tuple[_Matched, bool]:
    """Ansible's ``_enumerate_matches``: the hosts of matching groups (each group in Ansible's
    order), then, for a glob, a regex or a name no group has, the matching hosts."""
    test = _compile(expr, shown)
    groups = [g for g in inventory.groups if test(g)]
    matched: _Matched = []
    for segment, group in enumerate(groups):
        hosts, cut = _group_order(inventory, group)
        for position, name in enumerate(hosts):
            matched.append((name, segment if cut is not None and position >= cut else None))
    if not groups or expr[0] == "~" or any(c in expr for c in _SPECIAL):
        matched += [(h.name, None) for h in inventory.hosts if test(h.name)]
    return matched, bool(groups)


def _compile(expr: str, shown: str) -> Callable[[str], bool]:
    try:
        pattern = re.compile(expr[1:] if expr[0] == "~" else fnmatch.translate(expr))
    except re.error as exc:
        raise UsageError(f"{shown}: invalid pattern: {exc}") from exc
    return lambda name: pattern.match(name) is not None


def _group_order(inventory: Inventory, group: str) -> tuple[list[str], int | None]:
    """A group's hosts in Ansible's ``get_hosts`` order, and the position from which that
    order is unspecified (None: fully specified)."""
    if group not in inventory.direct:
        return list(inventory.groups.get(group, ())), None
    children = inventory.children
    ordered = [group, *children.get(group, ())]
    seen = set(ordered)
    frontier = list(ordered)
    cut_group: int | None = None
    while frontier:
        grown = [c for g in frontier for c in children.get(g, ()) if c not in seen]
        parents = {g for g in frontier if any(c not in seen for c in children.get(g, ()))}
        if len(parents) > 1 and cut_group is None:
            cut_group = len(ordered)
        fresh = list(dict.fromkeys(grown))
        ordered += fresh
        seen.update(fresh)
        frontier = fresh
    return _hosts_of(inventory, ordered, cut_group)


def _hosts_of(
    inventory: Inventory, groups: Iterable[str], cut_group: int | None
) -> tuple[list[str], int | None]:
    hosts: list[str] = []
    seen: set[str] = set()
    cut = None
    for position, group in enumerate(groups):
        if position == cut_group:
            cut = len(hosts)
        for name in inventory.direct.get(group, ()):
            if name not in seen:
                seen.add(name)
                hosts.append(name)
    return hosts, cut
