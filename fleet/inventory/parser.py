"""Reading inventory files into drafts: groups, host entries, keys, Ansible spellings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.errors import InventoryError
from fleet.inventory.checks import (
    _check_key_file,
    _check_name,
    _check_port,
    _check_text,
    _check_token,
    _json_safe,
    _kind,
    _plain,
    _Site,
)
from fleet.inventory.connection import CONNECTION_CHECKS
from fleet.inventory.select import _suggest

#: fleet's own host keys (``vars`` apart).
FIELD_KEYS = (
    "address", "port", "user", "ssh_key", "ovh_service", "datacenter", "rack", "labels",
    "bastion", "connect_timeout", "command_timeout", "sudo_password",
)  # fmt: skip
#: Ansible spellings fleet accepts for its keys.
ALIASES = {
    "ansible_host": "address",
    "ansible_port": "port",
    "ansible_user": "user",
    "ansible_ssh_private_key_file": "ssh_key",
    "ansible_ssh_common_args": "bastion",  # its -o ProxyJump=..., see fleet.inventory.connection
    "ansible_timeout": "connect_timeout",
    "ansible_become_password": "sudo_password",  # a lookup of env or file only
}
#: Ansible connection keys accepted and ignored: fleet always verifies host keys, runs commands
#: through the login shell of ``user`` over SSH, and needs no Python on the host.
IGNORED_ANSIBLE_KEYS = frozenset(
    {
        "ansible_host_key_checking",
        "ansible_python_interpreter",
        "ansible_connection",
        "ansible_become",
    }
)
GROUP_KEYS = ("hosts", "children", "vars")


@dataclass
class _Value:
    value: Any
    where: str


@dataclass
class _Layer:
    """Settings of one place (a group's vars, or a host's entries), merged over its occurrences."""

    fields: dict[str, _Value] = field(default_factory=dict)
    labels: dict[str, _Value] = field(default_factory=dict)
    vars: dict[str, _Value] = field(default_factory=dict)


def _put(table: dict[str, _Value], key: str, value: Any, site: _Site, owner: str) -> None:
    old = table.get(key)
    if old is None:
        table[key] = _Value(value, site.where)
    elif old.value != value:
        raise site.error(
            f"{owner} sets {key!r} to {value!r} here but to {old.value!r} at {old.where}"
        )


@dataclass
class _GroupDraft:
    where: str
    parents: set[str] = field(default_factory=set)
    layer: _Layer = field(default_factory=_Layer)


@dataclass
class _HostDraft:
    site: _Site
    groups: set[str] = field(default_factory=set)
    layer: _Layer = field(default_factory=_Layer)


@dataclass
class _Drafts:
    """What the files say, before inheritance is resolved."""

    groups: dict[str, _GroupDraft] = field(default_factory=lambda: {"all": _GroupDraft("")})
    hosts: dict[str, _HostDraft] = field(default_factory=dict)


class _FileParser:
    """Reads one file's groups and host entries into the shared drafts."""

    def __init__(self, path: Path, drafts: _Drafts) -> None:
        self.path = str(path)
        self.base = path.absolute().parent
        self.drafts = drafts

    def parse(self, data: Any) -> None:
        if data is None or (isinstance(data, Mapping) and not data):
            raise InventoryError("empty inventory file", path=self.path, hint="start with `all:`")
        if not isinstance(data, Mapping):
            raise InventoryError(
                f"the top level must be a mapping of groups (`all:`), not {_kind(data)}",
                path=self.path,
                line=1,
            )
        root = _Site(self.path, 1)
        for name, body in data.items():
            self._group(name, body, root.at(data, name), parent=None)

    def _group(self, name: Any, body: Any, site: _Site, parent: str | None) -> None:
        name = _check_name(name, site, "group")
        if parent is not None and name == "all":
            raise site.error("`all` is the root group; it cannot be a child")
        group = self.drafts.groups.setdefault(name, _GroupDraft(site.where))
        if name != "all":
            group.parents.add(parent or "all")
        if body is None:
            return
        if not isinstance(body, Mapping):
            raise site.error(f"group {name!r} must be a mapping with hosts:, children:, vars:")
        for key, value in body.items():
            key_site = site.at(body, key)
            if key == "hosts":
                self._hosts(name, value, key_site)
            elif key == "children":
                for child, child_body in self._mapping(value, key_site).items():
                    self._group(child, child_body, key_site.at(value, child), parent=name)
            elif key == "vars":
                self._group_vars(name, group.layer, self._mapping(value, key_site), key_site)
            else:
                raise key_site.error(
                    f"unknown key {key!r} in group {name!r} (a group has hosts:, children:, vars:)",
                    hint=_suggest(str(key), GROUP_KEYS),
                )

    def _mapping(self, value: Any, site: _Site) -> Mapping[Any, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise site.error(f"must be a mapping, not {_kind(value)}")
        return value

    def _hosts(self, group: str, value: Any, site: _Site) -> None:
        if isinstance(value, list):
            raise site.error("hosts: must be a mapping of host names, not a list", hint="web-1: {}")
        for name, body in self._mapping(value, site).items():
            self._host(group, name, body, site.at(value, name))

    def _host(self, group: str, name: Any, body: Any, site: _Site) -> None:
        name = _check_name(name, site, "host")
        draft = self.drafts.hosts.setdefault(name, _HostDraft(site))
        if draft.site.path != self.path:
            raise site.error(
                f"host {name!r} is also defined in {draft.site.where}; "
                "a host belongs to one inventory file"
            )
        draft.groups.add(group)
        if body is None:
            return
        if not isinstance(body, Mapping):
            raise site.error(
                f"host {name!r} must be a mapping of keys, not {_kind(body)}",
                hint=f"{name}: {{address: {body}}}",
            )
        owner = f"host {name!r}"
        seen: dict[str, str] = {}
        for key, value in body.items():
            key_site = site.at(body, key)
            canon = self._canonical(key, key_site, seen)
            if canon in IGNORED_ANSIBLE_KEYS:
                continue
            if canon == "vars":
                self._user_vars(draft.layer, self._mapping(value, key_site), key_site, owner)
            elif canon in FIELD_KEYS:
                self._field(draft.layer, canon, value, key_site, owner)
            else:
                raise key_site.error(
                    f"unknown host key {key!r}",
                    hint=_suggest(str(key), [*FIELD_KEYS, *ALIASES, "vars"])
                    or "user variables go under the host's vars:",
                )

    def _canonical(self, key: Any, site: _Site, seen: dict[str, str]) -> str:
        if not isinstance(key, str):
            raise site.error(f"keys must be strings, not {_kind(key)}")
        canon = ALIASES.get(key, key)
        if canon in seen and seen[canon] != key:
            raise site.error(f"{key!r} and {seen[canon]!r} both set {canon}; keep one")
        seen[canon] = key
        return canon

    def _group_vars(self, group: str, layer: _Layer, body: Mapping[Any, Any], site: _Site) -> None:
        owner = f"group {group!r}"
        seen: dict[str, str] = {}
        for key, value in body.items():
            key_site = site.at(body, key)
            canon = self._canonical(key, key_site, seen)
            if canon in IGNORED_ANSIBLE_KEYS:
                continue
            if canon == "vars":
                raise key_site.error("user variables go directly in a group's vars:, not nested")
            if canon == "ovh_service":
                raise key_site.error("ovh_service names one server: set it on the host")
            if canon in FIELD_KEYS:
                self._field(layer, canon, value, key_site, owner)
            else:
                _put(layer.vars, canon, self._user_value(value, key_site), key_site, owner)

    def _user_vars(self, layer: _Layer, body: Mapping[Any, Any], site: _Site, owner: str) -> None:
        for key, value in body.items():
            key_site = site.at(body, key)
            if not isinstance(key, str):
                raise key_site.error(f"variable names must be strings, not {_kind(key)}")
            _put(layer.vars, key, self._user_value(value, key_site), key_site, owner)

    def _user_value(self, value: Any, site: _Site) -> Any:
        plain = _plain(value)
        if not _json_safe(plain):
            raise site.error(
                "must be plain data: strings, numbers, booleans, null, lists, and mappings "
                "with string keys"
            )
        return plain

    def _field(self, layer: _Layer, canon: str, value: Any, site: _Site, owner: str) -> None:
        if canon == "labels":
            for label, text in self._mapping(value, site).items():
                label_site = site.at(value, label)
                label = _check_text(label, label_site)
                if "=" in label:
                    raise label_site.error(f"label name {label!r} must not contain '='")
                text = _check_text(text, label_site, numbers=True)
                _put(layer.labels, label, text, label_site, owner)
            return
        if canon == "port":
            checked: Any = _check_port(value, site)
        elif canon == "ssh_key":
            checked = _check_key_file(value, site, self.base)
        elif canon in ("datacenter", "rack"):
            checked = _check_text(value, site, numbers=True)
        elif canon in CONNECTION_CHECKS:
            checked = CONNECTION_CHECKS[canon](value, site)
            if checked is None:  # ssh options without a ProxyJump: nothing for fleet
                return
        else:  # address, user, ovh_service reach SSH and API command lines
            checked = _check_token(value, site)
        _put(layer.fields, canon, checked, site, owner)
