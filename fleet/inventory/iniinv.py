"""Ansible's INI inventory format, read as Ansible's ``ini`` inventory plugin reads it.

::

    web-1 ansible_host=203.0.113.10          # hosts before any section are ungrouped
    [web]                                     # a group and its hosts
    web-[2:4] ansible_user=deploy
    db:2222 fleet="{'rack': 'G102'}"
    [web:vars]                                # the group's variables
    ansible_port=2200
    [prod:children]                           # child groups, declared before or after
    web

Values are Python literals where they parse as one (``2200`` is a number, ``True`` a boolean,
``"{'rack': 'G102'}"`` a mapping), text otherwise, on host lines and in ``:vars`` sections alike
(``ast.literal_eval``, as ansible-core does). A ``:children`` or ``:vars`` section naming a group
never declared is an error at the end of the file. Unlike Ansible, which stops at the first,
every problem of the file is reported.
"""

from __future__ import annotations

import ast
import re
import shlex
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fleet.inventory.checks import check_name, check_vars
from fleet.inventory.hostpattern import PatternError, count, expand
from fleet.inventory.model import LineAt, Model
from fleet.inventory.problems import Site

_SECTION = re.compile(r"\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?")
_GROUP_NAME = re.compile(r"([^:\]\s]+)\s*(?:#.*)?")
_STATES = ("hosts", "children", "vars")


@dataclass
class _Pending:
    """A group named by a ``:vars`` or ``:children`` section before being declared."""

    line: int
    state: str
    parents: list[str] = field(default_factory=list)


class _IniReader:
    def __init__(self, path: str, model: Model) -> None:
        self.path = path
        self.model = model
        self.problems = model.problems
        self.pending: dict[str, _Pending] = {}
        self.group = "ungrouped"
        self.state = "hosts"

    def site(self, line: int, key: str | None = None) -> Site:
        return Site(self.path, line, key)

    def read(self, lines: list[str]) -> None:
        for number, line, match in _entries(lines):
            if match:
                self.section(match.group(1), match.group(2) or "hosts", number)
            elif line.startswith("[") and line.endswith("]"):
                self.problems.add(
                    self.site(number),
                    f"invalid section {line!r}",
                    "a section is [group], [group:vars] or [group:children], without spaces",
                )
            elif self.state == "hosts":
                self.host_line(line, number)
            elif self.state == "vars":
                self.var_line(line, number)
            elif self.state == "children":
                self.child_line(line, number)
        self.unresolved()

    def section(self, name: str, state: str, number: int) -> None:
        if state not in _STATES:
            self.problems.add(
                self.site(number),
                f"section [{name}:{state}] has an unknown type {state!r}",
                "use [group], [group:vars] or [group:children]",
            )
            self.state = "skip"
            return
        if check_name(name, self.site(number), "group", self.problems) is None:
            self.state = "skip"
            return
        self.group, self.state = name, state
        if name not in self.model.groups:
            if state == "vars" and name not in self.pending:
                self.pending[name] = _Pending(number, state)
            self.model.group(name, self.site(number))
        else:
            self.model.group(name, self.site(number))
        pending = self.pending.get(name)
        if pending is not None and state != "vars":
            if pending.state == "children":
                self.attach_pending(name)
            else:
                del self.pending[name]

    def attach_pending(self, name: str) -> None:
        todo = [name]
        while todo:  # a declared group may complete a chain of pending ones
            group = todo.pop()
            pending = self.pending.pop(group, None)
            if pending is None:
                continue
            for parent in pending.parents:
                self.model.add_child(parent, group)
                above = self.pending.get(parent)
                if above is not None and above.state == "children":
                    todo.append(parent)

    def host_line(self, line: str, number: int) -> None:
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as exc:
            self.problems.add(self.site(number), f"cannot split this host line: {exc}")
            return
        if not tokens:
            return
        pattern = tokens[0]
        try:
            names, port = expand(pattern, self.model.limits.range_hosts)
        except PatternError as exc:
            self.problems.add(self.site(number, pattern), str(exc))
            return
        if pattern.endswith(":") and port is None:
            self.problems.add(
                self.site(number, pattern), "a host ending in ':' (':' introduces a port)"
            )
            return
        if "---" in names:
            self.problems.add(self.site(number), "'---' starts a YAML document: is this YAML?")
            return
        variables = self.assignments(tokens[1:], number)
        at = LineAt(self.path, number)
        if variables:
            check_vars(variables, at, self.problems, group=False)
        site = self.site(number, pattern)
        for name in names:
            if check_name(name, site, "host", self.problems) is None:
                continue
            host = self.model.host(name, site, port)
            self.model.add_host(host, self.group)
            if variables:
                host.layers.append((variables, at))

    def assignments(self, tokens: list[str], number: int) -> dict[str, Any]:
        variables: dict[str, Any] = {}
        for token in tokens:
            if "=" not in token:
                self.problems.add(
                    self.site(number, token), f"expected key=value after the host, got {token!r}"
                )
                continue
            key, value = token.split("=", 1)
            variables[key] = parse_value(value)
        return variables

    def var_line(self, line: str, number: int) -> None:
        if "=" not in line:
            self.problems.add(self.site(number), f"expected key=value, got {line!r}")
            return
        key, value = (part.strip() for part in line.split("=", 1))
        variables = {key: parse_value(value)}
        check_vars(variables, LineAt(self.path, number), self.problems, group=True)
        group = self.model.groups[self.group]
        self.model.set_group_var(group, key, variables[key], self.site(number, key))

    def child_line(self, line: str, number: int) -> None:
        match = _GROUP_NAME.fullmatch(line)
        if not match:
            self.problems.add(self.site(number), f"expected a group name, got {line!r}")
            return
        child = match.group(1)
        if child == "all":
            self.problems.add(
                self.site(number, child), "`all` is the root group; it cannot be a child"
            )
        elif child not in self.model.groups:
            pending = self.pending.setdefault(child, _Pending(number, "children"))
            pending.parents.append(self.group)
        else:
            self.model.add_child(self.group, child)

    def unresolved(self) -> None:
        for name, pending in self.pending.items():
            if pending.state == "vars":
                message = f"section [{name}:vars] is for a group declared nowhere"
            else:
                message = (
                    f"section [{pending.parents[-1]}:children] names {name!r}, declared nowhere"
                )
            self.problems.add(
                self.site(pending.line, name),
                message,
                f"declare it with [{name}] or [{name}:children]",
            )


def read_ini_inventory(path: str, lines: list[str], model: Model) -> None:
    """Add one INI inventory file (its decoded lines) to ``model``."""
    if model.plan_hosts(*_declared(path, lines, model.limits.hosts - model.planned)):
        _IniReader(path, model).read(lines)


def _declared(path: str, lines: list[str], room: int) -> tuple[int, Site]:
    """How many host names the file declares (ranges counted), and the line at which the count
    passes ``room``, if it does."""
    total, state = 0, "hosts"
    for number, line, match in _entries(lines):
        if match:
            state = match.group(2) or "hosts"
        elif state == "hosts":
            first = line.split(None, 1)[0]
            total += count(first) if "[" in first else 1
            if total > room:
                return total, Site(path, number, first)
    return total, Site(path, 1)


def _entries(lines: list[str]) -> Iterator[tuple[int, str, re.Match[str] | None]]:
    """The lines that are not blank or comments: number, text, and the section it opens."""
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if line and line[0] not in "#;":
            yield number, line, _SECTION.fullmatch(line)


def parse_value(text: str) -> Any:
    """An INI value as ansible-core reads it: a Python literal if it is one, else the text."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    return _plain(value)


def _plain(value: Any) -> Any:
    """Tuples and sets become lists, bytes text, and what no inventory holds its text."""
    if isinstance(value, str | bool | int | float) or value is None:
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="surrogateescape")
    if value is Ellipsis:
        return "..."
    return str(value)  # complex numbers
