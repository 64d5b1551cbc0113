"""Hosts, groups and labels: the YAML loader, OVH enrichment and hybrid classification.

Inventory files have the shape Ansible users already write (see ``inventories/README.md``)::

    all:
      vars:                       # defaults for every host; other keys are user variables
        user: root
        labels: {env: prod}
      children:
        web:
          vars: {datacenter: gra3}
          hosts:
            web-1: {address: 203.0.113.10, rack: G102, vars: {role: front}}

Host entries accept only fleet's keys (``address``, ``port``, ``user``, ``ssh_key``,
``ovh_service``, ``datacenter``, ``rack``, ``labels``, ``vars``), the Ansible spellings
``ansible_host``, ``ansible_port``, ``ansible_user`` and ``ansible_ssh_private_key_file``, and
the Ansible connection keys of :data:`IGNORED_ANSIBLE_KEYS`; any other key is an error, so that a
typo never passes silently. In ``vars:`` sections fleet's keys set defaults and any other key is
a user variable, as in Ansible.

Precedence, weakest first: built-in defaults (port 22, user root), the vars of ``all``, the vars
of every group the host belongs to, shallower groups first (ties in group-name order, as
Ansible does), then the host entry itself. ``labels`` and user variables merge key by key; the
other keys are replaced. One place (a group, or a host's entries) may not set a key to two
different values.

Selection (``--limit``) is a comma-separated list of terms:

================  ==========================================================================
``web-1``         a host
``web``           a group (with its child groups' hosts); ``all`` is every host
``web-*``         a glob over host names (``*``, ``?``, ``[...]``)
``label:k=v``     hosts whose label ``k`` matches ``v`` (a glob); ``label:k`` has label ``k``
``dc:gra3``       hosts in that datacenter (glob, case-insensitive)
``rack:G102``     hosts in that rack (glob, case-insensitive)
``hybrid``        hosts classified hybrid (NVMe/SSD system disks plus HDDs, from OVH data),
                  and the members of a group named ``hybrid`` if the inventory has one
``!term``         exclude the hosts of ``term``
``&term``         keep only hosts that are also in ``term``
================  ==========================================================================

The result is the union of the plain terms (every host when there is none), intersected with
each ``&`` term, minus each ``!`` term, in inventory order. A term that matches nothing is a
:class:`~fleet.errors.UsageError`: a mistyped exclusion must never widen a rollout silently.
No host may be called ``hybrid``, and no host or group name may start with ``label:``,
``dc:`` or ``rack:``.
"""

from __future__ import annotations

import copy
import difflib
import fnmatch
import json
import logging
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from fleet.errors import InventoryError, ProviderNotFound, UsageError
from fleet.transport.base import Endpoint

if TYPE_CHECKING:
    from fleet.provider.base import DiskGroup, Hardware, Server

logger = logging.getLogger(__name__)

#: fleet's own host keys (``vars`` apart).
FIELD_KEYS = ("address", "port", "user", "ssh_key", "ovh_service", "datacenter", "rack", "labels")
#: Ansible spellings fleet accepts for its keys.
ALIASES = {
    "ansible_host": "address",
    "ansible_port": "port",
    "ansible_user": "user",
    "ansible_ssh_private_key_file": "ssh_key",
}
#: Ansible connection keys accepted and ignored: fleet always verifies host keys, runs commands
#: through the login shell of ``user`` over SSH, and needs no Python on the host.
IGNORED_ANSIBLE_KEYS = frozenset(
    {
        "ansible_host_key_checking",
        "ansible_ssh_common_args",
        "ansible_python_interpreter",
        "ansible_connection",
        "ansible_become",
    }
)
GROUP_KEYS = ("hosts", "children", "vars")
DEFAULT_PORT = 22
DEFAULT_USER = "root"
#: Words of the selection syntax that cannot name a host (a group ``hybrid`` adds to the term).
RESERVED_HOST_NAMES = frozenset({"hybrid"})
RESERVED_PREFIXES = ("label:", "dc:", "rack:")
#: Columns of :meth:`Inventory.table_rows`, in display order.
TABLE_COLUMNS = (
    "name", "address", "port", "user", "datacenter", "rack", "groups", "labels", "hybrid",
    "disks", "source",
)  # fmt: skip
#: Disk types (upper-cased substrings of OVH's free-text ``diskType``).
FAST_DISK_TYPES = ("NVME", "SSD")
ROTATIONAL_DISK_TYPES = ("HDD", "SATA", "SAS")
_GLOB_CHARS = frozenset("*?[")


# --- records -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiskSummary:
    """The classified disk groups of a server (from OVH's hardware specs).

    ``hdd_size_gb`` is the size of one rotational disk (the smallest when groups differ, since an
    array across them is bounded by it); ``hdd_total_gb`` is their raw sum.
    """

    hybrid: bool
    system_type: str | None  # "NVME" or "SSD" for the group that carries the system
    hdd_count: int = 0
    hdd_size_gb: int = 0
    system_count: int = 0
    system_size_gb: int = 0
    hdd_total_gb: int = 0
    description: str = ""  # e.g. "2x960GB NVME + 4x8000GB HDD"


@dataclass(frozen=True)
class Host:
    """One server as fleet sees it. Plain data: safe to pass to another process.

    ``address`` is empty only for a host that names an ``ovh_service`` and has not been
    enriched from the API yet (see :func:`enrich`).
    """

    name: str
    address: str
    port: int = 22
    user: str = "root"
    key_file: str | None = None
    service_name: str | None = None  # OVH service name (nsXXXX.ip-...)
    datacenter: str | None = None
    rack: str | None = None
    groups: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    disks: DiskSummary | None = None
    source: str | None = None  # file (and line) or "ovh"

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.name, self.address, self.port, self.user, self.key_file)

    @property
    def hybrid(self) -> bool:
        return bool(self.disks and self.disks.hybrid)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe copy of every field; :meth:`from_dict` reverses it."""
        data = asdict(self)
        data["groups"] = list(self.groups)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Host:
        """Rebuild a host from :meth:`to_dict` output (for instance in another process)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InventoryError(f"unknown host record keys: {', '.join(unknown)}", path="<host>")
        values = dict(data)
        try:
            if values.get("disks") is not None:
                values["disks"] = DiskSummary(**values["disks"])
            values["groups"] = tuple(values.get("groups", ()))
            values["labels"] = dict(values.get("labels", {}))
            values["vars"] = copy.deepcopy(dict(values.get("vars", {})))
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise InventoryError(f"bad host record: {exc}", path="<host>") from exc


class ServerSource(Protocol):
    """The part of :class:`fleet.provider.base.Provider` that the inventory reads."""

    def list_servers(self) -> list[str]: ...

    def server(self, name: str) -> Server: ...

    def hardware(self, name: str) -> Hardware: ...


@dataclass(frozen=True)
class Inventory:
    """Hosts in inventory order, and each group's member host names (children included)."""

    hosts: tuple[Host, ...]
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for host in self.hosts:
            if host.name in seen:
                raise InventoryError(f"host {host.name!r} appears twice", path=host.source)
            seen.add(host.name)

    @cached_property
    def _by_name(self) -> dict[str, Host]:
        return {host.name: host for host in self.hosts}

    def get(self, name: str) -> Host | None:
        """The host called ``name``, or None."""
        return self._by_name.get(name)

    def require(self, name: str) -> Host:
        """The host called ``name``; a :class:`UsageError` with suggestions if there is none."""
        host = self.get(name)
        if host is None:
            raise UsageError(
                f"no host {name!r} in the inventory", hint=_suggest(name, self._by_name)
            )
        return host

    def select(self, limit: str | None) -> list[Host]:
        """Hosts chosen by a ``--limit`` expression (see the module docstring); None = all."""
        terms = [term.strip() for term in (limit or "").split(",") if term.strip()]
        if not terms:
            return list(self.hosts)
        union: set[str] | None = None
        narrow: list[set[str]] = []
        exclude: set[str] = set()
        for term in terms:
            if term[0] == "!":
                exclude |= self._match(term[1:], term)
            elif term[0] == "&":
                narrow.append(self._match(term[1:], term))
            else:
                union = (union or set()) | self._match(term, term)
        chosen = set(self._by_name) if union is None else union
        for subset in narrow:
            chosen &= subset
        return [host for host in self.hosts if host.name in chosen and host.name not in exclude]

    def _match(self, term: str, original: str) -> set[str]:
        term = term.strip()
        if not term:
            raise UsageError(f"--limit {original!r}: empty term after '!' or '&'")
        matched = _match_term(self, term)
        if not matched and term not in self.groups:
            raise UsageError(
                f"--limit {original!r} matches no host or group",
                hint=_suggest(term, [*self._by_name, *self.groups]),
            )
        return matched

    def check_addresses(self) -> None:
        """Refuse hosts whose address must still come from the OVH API (see :func:`enrich`)."""
        missing = [host for host in self.hosts if not host.address]
        if missing:
            names = ", ".join(host.name for host in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise InventoryError(
                f"no address yet for {names}{more}",
                path=missing[0].source,
                hint="their address comes from the OVH API: enrich the inventory, or set address:",
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe data: ``{"hosts": [...], "groups": {...}}``."""
        return {
            "hosts": [host.to_dict() for host in self.hosts],
            "groups": {name: list(members) for name, members in self.groups.items()},
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Inventory:
        hosts = tuple(Host.from_dict(item) for item in data.get("hosts", ()))
        groups = {str(name): tuple(members) for name, members in data.get("groups", {}).items()}
        return cls(hosts, groups)

    def table_rows(self) -> list[dict[str, str]]:
        """One row of display strings per host, keyed by :data:`TABLE_COLUMNS`."""
        return [_table_row(host) for host in self.hosts]


def _table_row(host: Host) -> dict[str, str]:
    disks = host.disks
    return {
        "name": host.name,
        "address": host.address or "-",
        "port": str(host.port),
        "user": host.user,
        "datacenter": host.datacenter or "-",
        "rack": host.rack or "-",
        "groups": ",".join(host.groups) or "-",
        "labels": ",".join(f"{key}={value}" for key, value in sorted(host.labels.items())) or "-",
        "hybrid": "?" if disks is None else ("yes" if disks.hybrid else "no"),
        "disks": disks.description if disks and disks.description else "-",
        "source": host.source or "-",
    }


def _suggest(word: str, candidates: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(candidates), n=3)
    return f"did you mean {' or '.join(repr(c) for c in close)}?" if close else None


# --- selection ---------------------------------------------------------------------------------


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


# --- YAML with lines ---------------------------------------------------------------------------


class _Mapping(dict[Any, Any]):
    """A YAML mapping that remembers the 1-based line of each key."""

    key_lines: dict[Any, int]


class _DuplicateKeyError(yaml.MarkedYAMLError):
    def __init__(self, key: Any, first_line: int, mark: yaml.Mark) -> None:
        super().__init__(problem=f"duplicate key {key!r} (first at line {first_line})")
        self.problem_mark = mark
        self.key = key


# libyaml's parser when PyYAML has it (about ten times faster on big inventories); its nodes
# carry the same line marks, so errors still name the line.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    """SafeLoader that refuses duplicate keys, records key lines and keeps dates as text."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Iterator[_Mapping]:
    result = _Mapping()
    result.key_lines = {}
    yield result
    _refuse_duplicates(loader, node)
    loader.flatten_mapping(node)  # resolves `<<: *anchor` merges; explicit keys come last
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1


def _refuse_duplicates(loader: _Loader, node: yaml.MappingNode) -> None:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
            continue
        key = loader.construct_object(key_node)
        if key in seen:
            raise _DuplicateKeyError(key, seen[key], key_node.start_mark)
        seen[key] = key_node.start_mark.line + 1


def _construct_text(loader: _Loader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_text)


def _read_yaml(path: Path) -> Any:
    """Parse one file; every failure is an :class:`InventoryError` naming file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"cannot read: {exc}", path=str(path)) from exc
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except _DuplicateKeyError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        key = str(exc.key)
        raise InventoryError(str(exc.problem), path=str(path), line=line, key=key) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = f" (column {mark.column + 1})" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise InventoryError(f"invalid YAML: {problem}{column}", path=str(path), line=line) from exc
    except yaml.YAMLError as exc:
        raise InventoryError(f"invalid YAML: {exc}", path=str(path)) from exc


# --- values ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Site:
    """Where a value was written: for error messages."""

    path: str
    line: int | None
    key: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path

    def error(self, message: str, hint: str | None = None) -> InventoryError:
        return InventoryError(message, path=self.path, line=self.line, key=self.key, hint=hint)

    def at(self, mapping: Any, key: Any) -> _Site:
        lines = getattr(mapping, "key_lines", {})
        return _Site(self.path, lines.get(key, self.line), str(key))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    names = {int: "an integer", float: "a number", str: "a string", list: "a list"}
    return (
        "a mapping" if isinstance(value, Mapping) else names.get(type(value), type(value).__name__)
    )


def _check_text(value: Any, site: _Site, *, numbers: bool = False) -> str:
    allowed = (str, int) if numbers else (str,)
    if isinstance(value, bool) or not isinstance(value, allowed):
        raise site.error(f"must be a string, not {_kind(value)}", hint="quote the value")
    text = str(value).strip()
    if not text:
        raise site.error("must not be empty")
    return text


def _check_token(value: Any, site: _Site) -> str:
    """A value that ends up in an SSH command line: one word, never an option."""
    text = _check_text(value, site)
    if text.startswith("-") or any(c.isspace() or not c.isprintable() for c in text):
        raise site.error(f"{text!r} must be one word and must not start with '-'")
    return text


def _check_port(value: Any, site: _Site) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise site.error(f"must be an integer from 1 to 65535, not {_kind(value)}")
    if not 1 <= value <= 65535:
        raise site.error(f"{value} is not a port (1 to 65535)")
    return value


def _check_key_file(value: Any, site: _Site, base: Path) -> str:
    path = Path(_check_text(value, site)).expanduser()
    return str(path if path.is_absolute() else base / path)


def _check_name(value: Any, site: _Site, kind: str) -> str:
    """Host and group names: usable in --limit, messages and file names."""
    if not isinstance(value, str) or not value:
        raise site.error(f"a {kind} name must be a non-empty string, not {_kind(value)}")
    if any(c.isspace() or not c.isprintable() or c in ",/" for c in value):
        raise site.error(f"{kind} name {value!r} must not contain spaces, ',' or '/'")
    reserved = kind == "host" and value in RESERVED_HOST_NAMES
    if value[0] in "!&-~" or reserved or value.startswith(RESERVED_PREFIXES):
        raise site.error(f"{kind} name {value!r} is reserved by the --limit syntax")
    return value


def _plain(value: Any) -> Any:
    """Plain dicts and lists, without the line bookkeeping."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _json_safe(value: Any) -> bool:
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, list):
        return all(_json_safe(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_safe(v) for k, v in value.items())
    return False


# --- parsing -----------------------------------------------------------------------------------


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
        else:  # address, user, ovh_service reach SSH and API command lines
            checked = _check_token(value, site)
        _put(layer.fields, canon, checked, site, owner)


# --- loading -----------------------------------------------------------------------------------


def load_inventory(paths: Sequence[Path | str]) -> Inventory:
    """Load YAML inventory files and directories (their ``*.yaml``/``*.yml``, sorted).

    Raises:
        InventoryError: naming the file, line and key of the first problem found.
    """
    drafts = _Drafts()
    for path in _inventory_files(paths):
        _FileParser(path, drafts).parse(_read_yaml(path))
    return _resolve(drafts, paths)


def _inventory_files(paths: Sequence[Path | str]) -> list[Path]:
    if not paths:
        raise InventoryError("no inventory file given", path="<inventory>")
    files: dict[Path, None] = {}  # ordered set: the same file named twice is read once
    for item in paths:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(
                p
                for p in path.iterdir()
                if p.suffix in (".yaml", ".yml") and p.is_file() and not p.name.startswith(".")
            )
            if not found:
                raise InventoryError("no *.yaml or *.yml file in this directory", path=str(path))
            files.update(dict.fromkeys(p.resolve() for p in found))
        elif path.is_file():
            files[path.resolve()] = None
        else:
            raise InventoryError("no such inventory file or directory", path=str(path))
    return list(files)


def _resolve(drafts: _Drafts, paths: Sequence[Path | str]) -> Inventory:
    if not drafts.hosts:
        where = ", ".join(str(p) for p in paths)
        raise InventoryError("the inventory defines no host", path=where)
    clash = sorted(drafts.groups.keys() & drafts.hosts.keys())
    if clash:
        raise drafts.hosts[clash[0]].site.error(f"{clash[0]!r} names both a host and a group")
    lineage = _lineage(drafts.groups)
    hosts = tuple(_build_host(name, d, drafts, lineage) for name, d in drafts.hosts.items())
    _refuse_shared_services(hosts)
    groups = {
        group: tuple(h.name for h in hosts if group == "all" or group in h.groups)
        for group in drafts.groups
    }
    return Inventory(hosts, groups)


def _lineage(groups: dict[str, _GroupDraft]) -> dict[str, tuple[int, frozenset[str]]]:
    """Per group: its depth (longest path from ``all``) and its ancestors."""
    done: dict[str, tuple[int, frozenset[str]]] = {"all": (0, frozenset())}

    def visit(name: str, trail: tuple[str, ...]) -> tuple[int, frozenset[str]]:
        if name in done:
            return done[name]
        if name in trail:
            cycle = " -> ".join((*trail[trail.index(name) :], name))
            raise InventoryError(f"groups contain each other: {cycle}", path=groups[name].where)
        parents = sorted(groups[name].parents)
        above = [visit(parent, (*trail, name)) for parent in parents]
        ancestors = frozenset(parents).union(*(a for _, a in above))
        done[name] = (1 + max(d for d, _ in above), ancestors)
        return done[name]

    for name in groups:
        visit(name, ())
    return done


def _build_host(
    name: str, draft: _HostDraft, drafts: _Drafts, lineage: dict[str, tuple[int, frozenset[str]]]
) -> Host:
    member_of = {"all", *draft.groups}.union(*(lineage[g][1] for g in draft.groups))
    order = sorted(member_of, key=lambda g: (lineage[g][0], g))
    settings: dict[str, Any] = {"port": DEFAULT_PORT, "user": DEFAULT_USER}
    labels: dict[str, str] = {}
    user_vars: dict[str, Any] = {}
    for layer in [*(drafts.groups[g].layer for g in order), draft.layer]:
        settings.update((key, v.value) for key, v in layer.fields.items())
        labels.update((key, v.value) for key, v in layer.labels.items())
        user_vars.update((key, v.value) for key, v in layer.vars.items())
    if not settings.get("address") and not settings.get("ovh_service"):
        raise draft.site.error(
            f"host {name!r} has no address",
            hint="set address: (or ansible_host:) on the host or in a group's vars, "
            "or ovh_service: to take it from the OVH API",
        )
    return Host(
        name=name,
        address=settings.get("address", ""),
        port=settings["port"],
        user=settings["user"],
        key_file=settings.get("ssh_key"),
        service_name=settings.get("ovh_service"),
        datacenter=settings.get("datacenter"),
        rack=settings.get("rack"),
        groups=tuple(sorted(member_of - {"all"})),
        labels=labels,
        vars=copy.deepcopy(user_vars),
        source=draft.site.where,
    )


def _refuse_shared_services(hosts: Sequence[Host]) -> None:
    owners: dict[str, Host] = {}
    for host in hosts:
        if host.service_name is None:
            continue
        other = owners.setdefault(host.service_name, host)
        if other is not host:
            raise InventoryError(
                f"hosts {other.name!r} ({other.source}) and {host.name!r} name the same "
                f"ovh_service {host.service_name!r}",
                path=host.source,
                key="ovh_service",
            )


# --- OVH ---------------------------------------------------------------------------------------


def _disk_kind(disk_type: str) -> str | None:
    """ "NVME", "SSD", "HDD" (any rotational type) or None for a type fleet does not know."""
    text = disk_type.upper().replace(" ", "")
    for fast in FAST_DISK_TYPES:
        if fast in text:
            return fast
    if any(slow in text for slow in ROTATIONAL_DISK_TYPES):
        return "HDD"
    return None


def classify_disks(hardware: Hardware) -> DiskSummary:
    """Hybrid = an NVMe or SSD group (the system) plus a rotational group (HDD, SATA, SAS).

    ``diskType`` is free text, so matching is by case-insensitive substring: "SATA SSD" is an
    SSD, "SAS" alone is rotational, and an unknown type counts as neither.
    """
    kinds = [(group, _disk_kind(group.disk_type)) for group in hardware.disk_groups]
    fast = [group for group, kind in kinds if kind in FAST_DISK_TYPES]
    system = next((g for g in fast if _disk_kind(g.disk_type) == "NVME"), fast[0] if fast else None)
    slow = [group for group, kind in kinds if kind == "HDD"]
    return DiskSummary(
        hybrid=bool(system and slow),
        system_type=_disk_kind(system.disk_type) if system else None,
        hdd_count=sum(g.count for g in slow),
        hdd_size_gb=min((g.size_gb for g in slow), default=0),
        system_count=system.count if system else 0,
        system_size_gb=system.size_gb if system else 0,
        hdd_total_gb=sum(g.count * g.size_gb for g in slow),
        description=" + ".join(_describe(g) for g in hardware.disk_groups),
    )


def _describe(group: DiskGroup) -> str:
    return f"{group.count}x{group.size_gb}GB {group.disk_type.strip() or '?'}"


def enrich(
    inventory: Inventory,
    provider: ServerSource,
    *,
    include_unlisted: bool = False,
    max_workers: int = 8,
) -> Inventory:
    """Add what the OVH API knows to the hosts that name an ``ovh_service``.

    The YAML wins: datacenter, rack and address come from the API only where the inventory sets
    none; ``disks`` always comes from the API. With ``include_unlisted``, the account's servers
    that no host names are added as hosts named by their service name (root@ip:22).

    Raises:
        InventoryError: a host names a service the account does not have, or an unlisted
            server's name is already a host without ``ovh_service``.
        ProviderError: the API failed.
    """
    listed = {host.service_name: host for host in inventory.hosts if host.service_name}
    unlisted: list[str] = []
    if include_unlisted:
        unlisted = sorted(set(provider.list_servers()) - listed.keys())
        _refuse_name_clash(inventory, unlisted)
    details = _fetch_all(provider, [*listed, *unlisted], listed, max_workers)
    hosts = [
        _merge(host, *details[host.service_name]) if host.service_name else host
        for host in inventory.hosts
    ]
    hosts += [_unlisted_host(name, *details[name]) for name in unlisted]
    groups = dict(inventory.groups)
    groups["all"] = tuple(host.name for host in hosts)
    return Inventory(tuple(hosts), groups)


def from_provider(provider: ServerSource, *, max_workers: int = 8) -> Inventory:
    """An inventory of every server of the OVH account, named by service name."""
    inventory = enrich(
        Inventory((), {"all": ()}), provider, include_unlisted=True, max_workers=max_workers
    )
    if not inventory.hosts:
        raise InventoryError("the OVH account has no dedicated server", path="ovh")
    return inventory


def _refuse_name_clash(inventory: Inventory, unlisted: Sequence[str]) -> None:
    for name in unlisted:
        host = inventory.get(name)
        if host is not None:
            raise InventoryError(
                f"host {name!r} has the name of an OVH server but no ovh_service",
                path=host.source,
                hint=f"add `ovh_service: {name}` to it",
            )


def _fetch_all(
    provider: ServerSource, names: Sequence[str], listed: Mapping[str, Host], max_workers: int
) -> dict[str, tuple[Server, Hardware]]:
    """Server and hardware of each service, a few at a time (the provider paces itself)."""
    if not names:
        return {}
    results: dict[str, tuple[Server, Hardware]] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(names)))) as pool:
        futures = {name: pool.submit(_fetch, provider, name) for name in names}
        try:
            for name, future in futures.items():
                results[name] = _result(future, listed.get(name))
        finally:
            pool.shutdown(cancel_futures=True)  # after a failure, start no further calls
    return results


def _fetch(provider: ServerSource, name: str) -> tuple[Server, Hardware]:
    return provider.server(name), provider.hardware(name)


def _result(future: Future[tuple[Server, Hardware]], host: Host | None) -> tuple[Server, Hardware]:
    try:
        return future.result()
    except ProviderNotFound as exc:
        if host is None:
            raise
        raise InventoryError(
            f"ovh_service {host.service_name!r} of host {host.name!r} is not a server "
            "of this OVH account",
            path=host.source,
            key="ovh_service",
        ) from exc


def _merge(host: Host, server: Server, hardware: Hardware) -> Host:
    for attr, api_value in (("datacenter", server.datacenter), ("rack", server.rack)):
        mine = getattr(host, attr)
        if mine and api_value and mine != api_value:
            logger.warning(
                "Host %r: inventory %s %r differs from OVH's %r; keeping the inventory's",
                host.name, attr, mine, api_value,
            )  # fmt: skip
    return replace(
        host,
        address=host.address or server.ip,
        datacenter=host.datacenter or server.datacenter or None,
        rack=host.rack or server.rack or None,
        disks=classify_disks(hardware),
    )


def _unlisted_host(name: str, server: Server, hardware: Hardware) -> Host:
    return Host(
        name=name,
        address=server.ip,
        service_name=name,
        datacenter=server.datacenter or None,
        rack=server.rack or None,
        disks=classify_disks(hardware),
        source="ovh",
    )
