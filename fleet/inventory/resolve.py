"""From the model to host records: Ansible's group tree, variable precedence, fleet's settings.

Ansible's rules, in order:

1. Reconciliation: a group with no parent becomes a child of ``all``; a host in no group but
   ``all`` joins ``ungrouped`` (and leaves it when it is in another group).
2. Each group's depth is its longest path from ``all``; a loop among groups is an error.
3. A host's variables, weakest first: the inline vars of its groups (its own and their
   ancestors, ``all`` included) sorted by depth, then ``ansible_group_priority`` (default 1),
   then name; then ``group_vars/all``; then ``group_vars/`` of those groups in the same order
   (inventory sources in the order given); then the host's own variables in the order the files
   set them; then ``host_vars/``. Values replace each other whole (Ansible's default
   ``hash_behaviour``).

fleet's ``fleet:`` mapping follows the same order but merges key by key (``labels`` label by
label): a group can give the datacenter and its hosts their rack. Precedence is resolved once per
distinct set of groups, and group membership is gathered host by host: the cost grows with hosts,
not with groups times hosts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.inventory.checks import port_number
from fleet.inventory.connection import REACH_KEYS, SUDO_VARS, TIMEOUT_VARS, reach, sudo_source
from fleet.inventory.keys import (
    CONNECTION_VARS,
    FLEET_VAR,
    PARAMIKO_VARS,
    SSH_ARGS_VARS,
    SSH_CONNECTIONS,
    UNSUPPORTED_VARS,
    routing_ssh_args,
)
from fleet.inventory.model import GroupDraft, HostDraft, Layer, Model
from fleet.inventory.problems import Site
from fleet.inventory.records import Host, Inventory, make_host
from fleet.inventory.varsdirs import VarsFiles

DEFAULT_PORT = 22
DEFAULT_USER = "root"
_PARAMIKO = frozenset({"paramiko", "paramiko_ssh", "ansible.builtin.paramiko_ssh"})


@dataclass
class _Closure:
    """What every host with the same set of groups shares."""

    names: tuple[str, ...]  # group names but `all`, sorted (Ansible's group_names)
    vars: dict[str, Any]
    fleet: dict[str, Any]


class Resolver:
    def __init__(self, model: Model, files: VarsFiles, sources: int) -> None:
        self.model = model
        self.files = files
        self.sources = sources
        self.problems = model.problems
        self.groups = list(model.groups.values())  # creation order: index = position
        self.memo: dict[int, _Closure] = {}

    def run(self) -> Inventory:
        self.reconcile()
        order = self.topological()
        if order is None:
            return Inventory(())
        self.depths(order)
        self.masks = self.ancestry(order)
        return self.records()

    # -- the group tree ---------------------------------------------------------------------

    def reconcile(self) -> None:
        model = self.model
        for group in self.groups:
            if group.name != "all" and not group.parents:
                model.add_child("all", group.name)
        ungrouped = model.groups["ungrouped"]
        for host in model.hosts.values():
            others = [g for g in host.groups if g not in ("all", "ungrouped")]
            if others and "ungrouped" in host.groups:
                host.groups.remove("ungrouped")
                ungrouped.hosts.remove(host.name)
                ungrouped.host_set.discard(host.name)
            elif not others and "ungrouped" not in host.groups:
                model.add_host(host, "ungrouped")
        for name in sorted(model.groups.keys() & model.hosts.keys()):
            host = model.hosts[name]
            self.problems.add(
                host.site,
                f"{name!r} names both a host and a group",
                "rename one: Ansible mixes their variables, and --limit cannot tell them apart",
            )

    def topological(self) -> list[GroupDraft] | None:
        """Groups from `all` down, parents before children; None after reporting a loop."""
        groups = self.model.groups
        waiting = {g.name: len(g.parents) for g in self.groups}
        order = []
        ready = ["all"]
        while ready:
            group = groups[ready.pop()]
            order.append(group)
            for child in reversed(group.children):
                waiting[child] -= 1
                if waiting[child] == 0:
                    ready.append(child)
        if len(order) == len(groups):
            return order
        stuck = [g for g in self.groups if waiting[g.name] > 0]
        cycle = _cycle(stuck, groups)
        self.problems.add(
            groups[cycle[0]].site or Site("<inventory>"),
            f"groups contain each other: {' -> '.join(cycle)}",
        )
        return None

    def depths(self, order: list[GroupDraft]) -> None:
        depth = {"all": 0}
        limit = self.model.limits.group_depth
        for group in order:
            below = depth.get(group.name, 0) + 1
            for child in group.children:
                if depth.get(child, 0) < below:
                    depth[child] = below
        self.depth = depth
        deepest = max(depth, key=depth.__getitem__)
        if depth[deepest] > limit:
            self.problems.add(
                self.model.groups[deepest].site or Site("<inventory>"),
                f"groups nest {depth[deepest]} deep, more than the limit of {limit}",
            )

    def ancestry(self, order: list[GroupDraft]) -> dict[str, int]:
        """Per group, a bit mask of itself and its ancestors (bit = creation index)."""
        masks: dict[str, int] = {}
        for group in order:
            mask = 1 << group.index
            for parent in group.parents:
                mask |= masks[parent]
            masks[group.name] = mask
        return masks

    # -- hosts ------------------------------------------------------------------------------

    def records(self) -> Inventory:
        members: dict[str, list[str]] = {g.name: [] for g in self.groups}
        hosts = []
        services: dict[str, HostDraft] = {}
        for draft in self.model.hosts.values():
            mask = 0
            for name in draft.groups:
                mask |= self.masks[name]
            closure = self.memo.get(mask) or self.closure(mask)
            host = self.host(draft, closure)
            hosts.append(host)
            members["all"].append(host.name)
            for name in closure.names:
                members[name].append(host.name)
            if host.service_name:
                self.shared_service(draft, host, services)
        return Inventory(
            tuple(hosts),
            {name: tuple(names) for name, names in members.items()},
            {g.name: tuple(g.hosts) for g in self.groups},
            {g.name: tuple(g.children) for g in self.groups},
        )

    def closure(self, mask: int) -> _Closure:
        groups = []
        rest = mask
        while rest:  # the set bits, lowest first
            low = rest & -rest
            groups.append(self.groups[low.bit_length() - 1])
            rest ^= low
        groups.sort(key=lambda g: (self.depth[g.name], g.priority, g.name))
        layers: list[Mapping[str, Any]] = [g.vars for g in groups]
        files = self.files.groups
        sources = range(self.sources if files else 0)
        for index in sources:  # group_vars/: `all` of every source first, then the others
            layers += self.file_layers(files, "all", index)
        for index in sources:
            for group in groups:
                if group.name != "all":
                    layers += self.file_layers(files, group.name, index)
        merged: dict[str, Any] = {}
        fleet: dict[str, Any] = {}
        for layer in layers:
            merged.update(layer)
            _merge_fleet(fleet, layer)
        names = tuple(sorted(g.name for g in groups if g.name != "all"))
        self.memo[mask] = closure = _Closure(names, merged, fleet)
        return closure

    def file_layers(
        self, table: dict[str, list[tuple[int, Layer]]], name: str, index: int
    ) -> Iterator[Mapping[str, Any]]:
        return (layer[0] for i, layer in table.get(name, ()) if i == index)

    def host(self, draft: HostDraft, closure: _Closure) -> Host:
        variables = dict(closure.vars)
        fleet = closure.fleet
        layers = draft.layers
        files = self.files.hosts.get(draft.name)
        if files:
            layers = layers + [layer for _, layer in files]
        for layer, _ in layers:
            variables.update(layer)
            if FLEET_VAR in layer:
                fleet = dict(fleet) if fleet is closure.fleet else fleet
                _merge_fleet(fleet, layer)
        settings, unsupported = _connection(draft.name, variables)
        if not (_REACH_VARS.isdisjoint(variables) and _REACH_KEYS.isdisjoint(fleet)):
            settings.update(reach(variables, fleet))
        labels, dc, rack = fleet.get("labels"), fleet.get("datacenter"), fleet.get("rack")
        settings.update(
            name=draft.name,
            service_name=fleet.get("ovh_service"),
            datacenter=None if dc is None else str(dc).strip(),
            rack=None if rack is None else str(rack).strip(),
            groups=closure.names,
            labels={k: str(v).strip() for k, v in labels.items()} if labels else {},
            vars=variables,
            source=f"{draft.site.path}:{draft.site.line}" if draft.site.line else draft.site.path,
            unsupported=unsupported,
        )
        return make_host(settings)

    def shared_service(self, draft: HostDraft, host: Host, seen: dict[str, HostDraft]) -> None:
        other = seen.setdefault(str(host.service_name), draft)
        if other is not draft:
            self.problems.add(
                draft.site.with_key("ovh_service"),
                f"hosts {other.name!r} ({other.site.where}) and {draft.name!r} name the same "
                f"ovh_service {host.service_name!r}",
            )


def _merge_fleet(fleet: dict[str, Any], layer: Mapping[str, Any]) -> None:
    value = layer.get(FLEET_VAR)
    if not isinstance(value, Mapping):
        return
    for key, item in value.items():
        if key == "labels" and isinstance(item, Mapping):
            fleet["labels"] = {**fleet.get("labels", {}), **item}
        elif key != "labels":
            fleet[key] = item


def _pick(variables: Mapping[str, Any], names: tuple[str, ...]) -> tuple[str, Any] | None:
    """The last of ``names`` defined and not null: how Ansible's ssh plugin picks a spelling."""
    for name in reversed(names):
        value = variables.get(name)
        if value is not None:
            return name, value
    return None


#: Variables whose presence takes a host off the fast path of :func:`_connection`.
_REACH_VARS = frozenset({*SSH_ARGS_VARS, *TIMEOUT_VARS, *SUDO_VARS})
_REACH_KEYS = frozenset(REACH_KEYS)
_RARE = frozenset(
    {"ansible_connection", *_REACH_VARS, *UNSUPPORTED_VARS, *PARAMIKO_VARS.values()}
    | {names[-1] for names in CONNECTION_VARS.values()}
)
_PLAIN = {setting: names[0] for setting, names in CONNECTION_VARS.items()}


def _connection(name: str, variables: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The SSH settings of a host, and what it asks that fleet cannot honour."""
    if _RARE.isdisjoint(variables):  # the common case: plain ansible_host & co
        plain = {s: variables.get(n) for s, n in _PLAIN.items()}
        if not any(isinstance(v, str) and "{{" in v for v in plain.values()):
            return _defaults(name, plain), ()
    connection = variables.get("ansible_connection")
    unsupported = []
    if connection is not None and connection not in SSH_CONNECTIONS:
        unsupported.append(f"ansible_connection={connection} (fleet connects over SSH only)")
    paramiko = connection in _PARAMIKO
    settings: dict[str, Any] = {}
    for setting, names in CONNECTION_VARS.items():
        picked = _pick(variables, (*names, PARAMIKO_VARS[setting]) if paramiko else names)
        value = picked[1] if picked else None
        if isinstance(value, str) and "{{" in value:
            unsupported.append(f"{picked and picked[0]} is a template (fleet does not render it)")
            value = None
        settings[setting] = value
    _defaults(name, settings)
    for var, reason in UNSUPPORTED_VARS.items():
        if variables.get(var) is not None:
            unsupported.append(f"{var} asks for {reason}, which fleet does not support")
    for var in SSH_ARGS_VARS:
        if routing_ssh_args(variables.get(var)):
            unsupported.append(f"{var} changes where ssh connects (fleet follows ProxyJump only)")
    for var in SUDO_VARS:
        problem = _sudo_problem(variables.get(var))
        if problem:
            unsupported.append(
                f"{var} {problem}: name the password's source in fleet.sudo_password "
                "(env:NAME or file:PATH)"
            )
    return settings, tuple(unsupported)


def _sudo_problem(value: Any) -> str | None:
    """Why fleet cannot use an Ansible sudo password variable (None: unset or a lookup of an
    env variable or a file). The value is never repeated: it may be the password itself."""
    if value is None:
        return None
    if isinstance(value, str) and "{{" in value and "lookup(" not in value:
        return "is a template fleet does not render"
    try:
        sudo_source(value)
    except ValueError:
        return "holds a password written in the inventory, which fleet never uses"
    return None


def _defaults(name: str, settings: dict[str, Any]) -> dict[str, Any]:
    settings["address"] = settings["address"] or name
    settings["port"] = port_number(settings["port"]) or DEFAULT_PORT
    settings["user"] = settings["user"] or DEFAULT_USER
    if settings["key_file"] is not None:
        settings["key_file"] = str(Path(settings["key_file"]).expanduser().absolute())
    return settings


def _cycle(stuck: list[GroupDraft], groups: Mapping[str, GroupDraft]) -> list[str]:
    """One loop among the groups that never became ready."""
    names = {g.name for g in stuck}
    path: list[str] = []
    seen: dict[str, int] = {}
    current = stuck[0].name
    while current not in seen:
        seen[current] = len(path)
        path.append(current)
        current = next(p for p in groups[current].parents if p in names)
    loop = [*path[seen[current] :], current]
    return list(reversed(loop))  # parent -> child, as written
