"""What the inventory files say, before precedence is resolved: Ansible's inventory data model.

Groups and hosts are recorded in the order Ansible creates them (``all`` and ``ungrouped``
first, then as the files mention them), each group's direct hosts in the order they were added
and its children likewise: the order Ansible's ``--limit`` subscripts (``web[0]``) count in.
Variables are recorded as layers (one per place that sets them), with where each was written,
so that precedence is resolved once per distinct set of groups and errors name the line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from fleet.inventory.limits import Limits
from fleet.inventory.problems import Problems, Site


class VarsAt(Protocol):
    """Where the keys of a variables mapping were written."""

    @property
    def path(self) -> str: ...

    def site(self, mapping: object, key: object) -> Site: ...


@dataclass(frozen=True)
class LineAt:
    """Every key of the mapping was written on one line (an INI line)."""

    path: str
    line: int

    def site(self, mapping: object, key: object) -> Site:
        return Site(self.path, self.line, str(key))


#: A mapping of variables and where its keys were written.
Layer = tuple[Mapping[str, Any], VarsAt]


@dataclass(eq=False)
class GroupDraft:
    name: str
    index: int
    site: Site | None
    parents: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)  # direct members, in the order added
    host_set: set[str] = field(default_factory=set)
    vars: dict[str, Any] = field(default_factory=dict)  # set in order: the last one wins
    var_sites: dict[str, Site] = field(default_factory=dict)
    priority: int = 1


class HostDraft:
    """One host: where it was first defined, its direct groups, its variable layers."""

    __slots__ = ("groups", "layers", "name", "site")

    def __init__(self, name: str, site: Site) -> None:
        self.name = name
        self.site = site
        self.groups: list[str] = []
        self.layers: list[Layer] = []


class Model:
    """The inventory as the files say it; both readers (YAML, INI) write into one model."""

    def __init__(self, limits: Limits, problems: Problems) -> None:
        self.limits = limits
        self.problems = problems
        self.groups: dict[str, GroupDraft] = {}
        self.hosts: dict[str, HostDraft] = {}
        self.planned = 0  # host names the files read so far declare (ranges counted, not expanded)
        for name in ("all", "ungrouped"):
            self.group(name, None)
        self.add_child("all", "ungrouped")

    def plan_hosts(self, count: int, site: Site) -> bool:
        """Count the host names a file declares before any is made: a file of giant ranges is
        refused in a moment, before it fills memory. False (and a problem) past the limit."""
        self.planned += count
        if self.planned > self.limits.hosts:
            self.problems.add(
                site,
                f"the inventory declares more than {self.limits.hosts} host names "
                f"({self.planned} so far)",
                "the limit is fleet's bound on inventory size (Limits.hosts)",
            )
            return False
        return True

    def group(self, name: str, site: Site | None) -> GroupDraft:
        group = self.groups.get(name)
        if group is None:
            if len(self.groups) >= self.limits.groups and site is not None:
                raise site.error(f"more than {self.limits.groups} groups")
            group = self.groups[name] = GroupDraft(name, len(self.groups), site)
        elif group.site is None:
            group.site = site
        return group

    def add_child(self, parent: str, child: str) -> None:
        group = self.groups[parent]
        if child not in group.children:
            group.children.append(child)
            self.groups[child].parents.append(parent)

    def host(self, name: str, site: Site, port: int | None) -> HostDraft:
        host = self.hosts.get(name)
        if host is None:
            if len(self.hosts) >= self.limits.hosts:
                raise site.error(f"more than {self.limits.hosts} hosts in the inventory")
            host = self.hosts[name] = HostDraft(name, site)
            if port is not None:  # as Ansible: the port of the first definition
                host.layers.append(({"ansible_port": port}, site_at(site)))
        return host

    def add_host(self, host: HostDraft, group: str) -> None:
        draft = self.groups[group]
        if host.name not in draft.host_set:
            draft.host_set.add(host.name)
            draft.hosts.append(host.name)
            host.groups.append(group)

    def set_group_var(self, group: GroupDraft, key: str, value: Any, site: Site) -> None:
        if key == "ansible_group_priority":
            if isinstance(value, bool) or not isinstance(value, int | str):
                self.problems.add(site, "ansible_group_priority must be an integer")
                return
            try:
                group.priority = int(value)
            except ValueError:
                self.problems.add(site, f"ansible_group_priority {value!r} is not an integer")
            return
        group.vars[key] = value
        group.var_sites[key] = site


def site_at(site: Site) -> LineAt:
    return LineAt(site.path, site.line or 0)
