"""Ansible inventories as written (YAML, INI, ``group_vars/``, ``host_vars/``), OVH enrichment,
hybrid classification and the ``--limit`` language.

fleet reads an inventory as ``ansible-inventory --list`` does: the same hosts, groups and
variables. Its own settings live under the variable ``fleet`` (``ovh_service``, ``datacenter``,
``rack``, ``labels``) so that they never collide with yours; where to connect comes from
Ansible's connection variables (``ansible_host``, ``ansible_ssh_port``...). For example::

    all:
      vars:
        ansible_user: root
        fleet: {labels: {env: prod}}
      children:
        storage:
          vars: {fleet: {datacenter: gra3}}
          hosts:
            stor-[1:2]:
              fleet: {ovh_service: ns1001.ip-203-0-113.eu}

``docs/concepts/inventory.md`` describes the whole format. The package: :mod:`.yamlread`
(bounded YAML), :mod:`.yamlinv` and :mod:`.iniinv` (the two formats), :mod:`.hostpattern`
(ranges), :mod:`.varsdirs`, :mod:`.sources`, :mod:`.model`, :mod:`.checks` and :mod:`.keys`
(what fleet reads, near misses), :mod:`.resolve` (precedence), :mod:`.loader`,
:mod:`.records` (Host, Inventory), :mod:`.select` and :mod:`.hwselect` (``--limit``),
:mod:`.ovh`, :mod:`.ovhcache` and :mod:`.importer` (OVH data). Import from ``fleet.inventory``:
the submodules are its implementation.
"""

from __future__ import annotations

from fleet.inventory.keys import (
    CONNECTION_VARS,
    FLEET_KEYS,
    KNOWN_ANSIBLE_VARS,
    PARAMIKO_VARS,
    UNSUPPORTED_VARS,
)
from fleet.inventory.limits import DEFAULT_LIMITS, Limits
from fleet.inventory.loader import DEFAULT_PORT, DEFAULT_USER, load_inventory
from fleet.inventory.ovh import (
    FAST_DISK_TYPES,
    ROTATIONAL_DISK_TYPES,
    ServerSource,
    classify_disks,
    enrich,
    from_provider,
)
from fleet.inventory.problems import InventoryProblems
from fleet.inventory.records import TABLE_COLUMNS, DiskSummary, Host, Inventory
from fleet.inventory.select import (
    RESERVED_HOST_NAMES,
    RESERVED_PREFIXES,
    SELECTOR_PREFIXES,
    needs_ovh,
    select_hosts,
    split_limit,
)
from fleet.inventory.yamlinv import SECTIONS

#: Every Ansible spelling fleet reads, and the :class:`Host` field it sets.
ALIASES = {
    **{name: field for field, names in CONNECTION_VARS.items() for name in names},
    **{name: field for field, name in PARAMIKO_VARS.items()},
}
#: fleet's own keys, under the ``fleet`` variable.
FIELD_KEYS = FLEET_KEYS
#: The keys of a YAML group.
GROUP_KEYS = SECTIONS
#: Ansible variables fleet knows and that change nothing for it (privilege escalation,
#: interpreters, timeouts...): fleet verifies host keys and needs no Python on the hosts.
IGNORED_ANSIBLE_KEYS = KNOWN_ANSIBLE_VARS - ALIASES.keys() - UNSUPPORTED_VARS.keys()

__all__ = [
    "ALIASES",
    "DEFAULT_LIMITS",
    "DEFAULT_PORT",
    "DEFAULT_USER",
    "FAST_DISK_TYPES",
    "FIELD_KEYS",
    "GROUP_KEYS",
    "IGNORED_ANSIBLE_KEYS",
    "RESERVED_HOST_NAMES",
    "RESERVED_PREFIXES",
    "ROTATIONAL_DISK_TYPES",
    "SELECTOR_PREFIXES",
    "TABLE_COLUMNS",
    "DiskSummary",
    "Host",
    "Inventory",
    "InventoryProblems",
    "Limits",
    "ServerSource",
    "classify_disks",
    "enrich",
    "from_provider",
    "load_inventory",
    "needs_ovh",
    "select_hosts",
    "split_limit",
]
