"""Ansible's YAML inventory format, read as Ansible's ``yaml`` inventory plugin reads it.

The top-level keys are groups; a group has ``hosts:`` (host patterns, each with its variables),
``children:`` (nested groups, to any depth) and ``vars:``, each a mapping, or a single name as
text (``hosts: web-1``). Groups are processed depth first, in the order written, and a child is
attached to its parent once read, as Ansible does. A key other than these three is an error with
a suggestion (Ansible skips it with a warning: a typo like ``host:`` would drop hosts silently).
Nesting is walked with an explicit stack: no depth of groups exhausts Python's recursion.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from fleet.inventory.checks import check_name, check_vars, kind
from fleet.inventory.hostpattern import PatternError, count, expand
from fleet.inventory.model import Model
from fleet.inventory.problems import Site, suggest
from fleet.inventory.yamlread import YamlDoc

SECTIONS = ("hosts", "children", "vars")

#: A child group to read: (name, body, where, parent).
_Child = tuple[Any, Any, Site, str]


def read_yaml_inventory(doc: YamlDoc, model: Model) -> None:
    """Add one parsed YAML inventory file to ``model`` (problems go to ``model.problems``)."""
    data = doc.data
    problems = model.problems
    if data is None or (isinstance(data, Mapping) and not data):
        problems.add(Site(doc.path), "empty inventory file", "start with `all:`")
        return
    if not isinstance(data, Mapping):
        problems.add(
            Site(doc.path, 1),
            f"the top level must be a mapping of groups (`all:`), not {kind(data)}",
        )
        return
    if data.get("plugin"):
        problems.add(
            doc.site(data, "plugin"),
            f"this configures the inventory plugin {data['plugin']!r}: fleet reads inventories "
            "written out (YAML or INI), it runs no inventory plugin",
            "write the plugin's output to a file: ansible-inventory -i THIS --list -y > hosts.yml",
        )
        return
    if not model.plan_hosts(*_declared(doc, data, model.limits.hosts - model.planned)):
        return
    walker = _Walker(doc, model)
    for name, body in data.items():
        walker.walk((name, body, doc.site(data, name), ""))


class _Walker:
    def __init__(self, doc: YamlDoc, model: Model) -> None:
        self.doc = doc
        self.model = model
        self.problems = model.problems

    def walk(self, top: _Child) -> None:
        """Read a group and its descendants, depth first, without recursion."""
        stack: list[Iterator[_Child]] = [self.group(*top)]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
            else:
                stack.append(self.group(*child))

    def group(self, name: Any, body: Any, site: Site, parent: str) -> Iterator[_Child]:
        """Read one group; yields its children to read, then attaches itself to ``parent``."""
        name = check_name(name, site, "group", self.problems)
        if name is None:
            return
        if parent and name == "all":
            self.problems.add(site, "`all` is the root group; it cannot be a child")
            return
        group = self.model.group(name, site)
        if body is not None and not isinstance(body, Mapping):
            self.problems.add(
                site,
                f"group {name!r} must be a mapping with hosts:, children:, vars:, not {kind(body)}",
            )
            return
        for key, value in (body or {}).items():
            section = self.section(name, body, key, value)
            if section is None:
                continue
            if key == "vars":
                self.vars(group.name, section)
            elif key == "children":
                for child, child_body in section.items():
                    yield (child, child_body, self.doc.site(section, child), name)
            else:
                self.hosts(name, section)
        if parent:
            self.model.add_child(parent, name)

    def section(self, group: str, body: Any, key: Any, value: Any) -> Mapping[Any, Any] | None:
        """The mapping of a group's ``hosts:``, ``children:`` or ``vars:``; None to skip it."""
        if key not in SECTIONS:
            hint = suggest(str(key), SECTIONS) or "a group has hosts:, children:, vars:"
            self.problems.add(
                self.doc.site(body, key), f"unknown key {key!r} in group {group!r}", hint
            )
            return None
        if isinstance(value, str):  # `hosts: web-1`, as Ansible allows
            return {value: None}
        if value is not None and not isinstance(value, Mapping):
            self.problems.add(
                self.doc.site(body, key),
                f"{key}: must be a mapping, not {kind(value)}",
                _section_hint(key),
            )
            return None
        return value

    def vars(self, group: str, body: Mapping[Any, Any]) -> None:
        check_vars(body, self.doc, self.problems, group=True)
        draft = self.model.groups[group]
        for key, value in body.items():
            if isinstance(key, str):
                self.model.set_group_var(draft, key, value, self.doc.site(body, key))

    def hosts(self, group: str, body: Mapping[Any, Any]) -> None:
        model, doc, problems = self.model, self.doc, self.problems
        max_hosts = model.limits.range_hosts
        for pattern, entry in body.items():
            if isinstance(pattern, str) and ":" not in pattern and "[" not in pattern:
                names: list[str] = [pattern]  # the common case: one plain name
                port = None
            else:
                site = doc.site(body, pattern)
                if not isinstance(pattern, str):
                    problems.add(site, f"a host name must be text, not {kind(pattern)}", "quote it")
                    continue
                try:
                    names, port = expand(pattern, max_hosts)
                except PatternError as exc:
                    problems.add(site, str(exc))
                    continue
            if entry is not None and not isinstance(entry, Mapping):
                problems.add(
                    doc.site(body, pattern),
                    f"host {pattern!r} must be a mapping of variables, not {kind(entry)}",
                    f"{pattern}: {{ansible_host: {entry}}}",
                )
                continue
            if entry:
                check_vars(entry, doc, problems, group=False)
            self.add_hosts(names, port, group, entry, doc.site(body, pattern))

    def add_hosts(
        self, names: list[str], port: int | None, group: str, entry: Any, site: Site
    ) -> None:
        model = self.model
        for name in names:
            if check_name(name, site, "host", self.problems) is None:
                continue
            host = model.host(name, site, port)
            model.add_host(host, group)
            if entry:
                host.layers.append((entry, self.doc))


def _declared(doc: YamlDoc, data: Mapping[Any, Any], room: int) -> tuple[int, Site]:
    """How many host names the file declares (ranges counted, aliases followed), and the key at
    which the count passes ``room``, if it does."""
    total, where = 0, Site(doc.path, 1)
    stack = [body for body in data.values() if isinstance(body, Mapping)]
    while stack and total <= room:
        group = stack.pop()
        hosts, children = group.get("hosts"), group.get("children")
        if isinstance(hosts, Mapping):
            for key in hosts:
                total += count(key) if isinstance(key, str) and "[" in key else 1
                if total > room:
                    where = doc.site(hosts, key)
                    break
        if isinstance(children, Mapping):
            stack += [body for body in children.values() if isinstance(body, Mapping)]
    return total, where


def _section_hint(key: str) -> str | None:
    if key == "hosts":
        return "hosts are keys: `hosts: {web-1: {}, web-2: {}}`"
    if key == "children":
        return "child groups are keys: `children: {web: {}, db: {}}`"
    return None
