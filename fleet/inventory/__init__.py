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

The package: :mod:`~fleet.inventory.records` (Host, DiskSummary, Inventory),
:mod:`~fleet.inventory.select` (the ``--limit`` language), :mod:`~fleet.inventory.yamlfile`,
:mod:`~fleet.inventory.checks`, :mod:`~fleet.inventory.parser` and
:mod:`~fleet.inventory.loader` (files to hosts), :mod:`~fleet.inventory.ovh` (classification
and enrichment). Import from ``fleet.inventory``: the submodules are its implementation.
"""

from __future__ import annotations

from fleet.inventory.loader import DEFAULT_PORT, DEFAULT_USER, load_inventory
from fleet.inventory.ovh import (
    FAST_DISK_TYPES,
    ROTATIONAL_DISK_TYPES,
    ServerSource,
    classify_disks,
    enrich,
    from_provider,
)
from fleet.inventory.parser import ALIASES, FIELD_KEYS, GROUP_KEYS, IGNORED_ANSIBLE_KEYS
from fleet.inventory.records import TABLE_COLUMNS, DiskSummary, Host, Inventory
from fleet.inventory.select import RESERVED_HOST_NAMES, RESERVED_PREFIXES

__all__ = [
    "ALIASES",
    "DEFAULT_PORT",
    "DEFAULT_USER",
    "FAST_DISK_TYPES",
    "FIELD_KEYS",
    "GROUP_KEYS",
    "IGNORED_ANSIBLE_KEYS",
    "RESERVED_HOST_NAMES",
    "RESERVED_PREFIXES",
    "ROTATIONAL_DISK_TYPES",
    "TABLE_COLUMNS",
    "DiskSummary",
    "Host",
    "Inventory",
    "ServerSource",
    "classify_disks",
    "enrich",
    "from_provider",
    "load_inventory",
]
