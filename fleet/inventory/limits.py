"""The bounds of inventory parsing: a hostile file is refused early, never expanded."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Every bound the loader enforces; each breach is an error naming the file and line.

    The defaults leave room for fleets of a few hundred thousand hosts, and refuse in a
    fraction of a second the files built to exhaust a parser (alias bombs, deep nesting,
    giant ranges).
    """

    #: Bytes in one inventory or vars file.
    file_bytes: int = 256 * 1024 * 1024
    #: Nesting of YAML collections (a nested group costs two levels: the group and `children:`;
    #: libyaml itself stops at 1000).
    yaml_depth: int = 1000
    #: Values that YAML aliases add once expanded, per file (a "billion laughs" file needs
    #: billions; legitimate reuse of anchors needs a few per host).
    alias_values: int = 2_000_000
    #: Hosts one host pattern (``web[0001:2000]``) may expand to.
    range_hosts: int = 100_000
    #: Hosts in the whole inventory.
    hosts: int = 250_000
    #: Groups in the whole inventory.
    groups: int = 20_000
    #: Nesting of groups (``all`` is depth 0).
    group_depth: int = 1000


DEFAULT_LIMITS = Limits()
