"""``fleet inventory import --ovh``: an Ansible inventory of the account's servers, to start from.

One group per datacenter; each host named by its OVH service name (OVH's reverse DNS of the
server), with ``ansible_host`` and fleet's keys (service name, datacenter, rack); its hardware
and disk groups in a comment, since ``hw:`` selectors read them live from OVH anyway.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime

from fleet.inventory.records import Host

_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9._-]*")
_WORDS = {"yes", "no", "true", "false", "on", "off", "null", "y", "n"}


def render_inventory(hosts: Sequence[Host], now: datetime) -> str:
    """The YAML text of the inventory of ``hosts`` (from :func:`~fleet.inventory.from_provider`);
    ``now`` is written in its header."""
    lines = [
        f"# Written by `fleet inventory import --ovh` on {now.isoformat(timespec='seconds')}:",
        f"# the {len(hosts)} dedicated servers of the OVH account, by datacenter. Edit freely:",
        "# fleet reads it as Ansible would. The disks are OVH's description when written.",
        "all:",
        "  children:",
    ]
    by_dc: dict[str, list[Host]] = {}
    for host in sorted(hosts, key=lambda h: h.name):
        by_dc.setdefault(host.datacenter or "unknown", []).append(host)
    for datacenter in sorted(by_dc):
        lines += [f"    {group_name(datacenter)}:", "      hosts:"]
        for host in by_dc[datacenter]:
            lines += _host(host)
    return "\n".join(lines) + "\n"


def _host(host: Host) -> list[str]:
    disks = host.disks
    described = (disks.description if disks else "") or "no disk known"
    kind = "" if disks is None else (", hybrid" if disks.hybrid else ", not hybrid")
    model = f"{host.model}: " if host.model else ""
    fleet = {"ovh_service": host.service_name, "datacenter": host.datacenter, "rack": host.rack}
    pairs = ", ".join(f"{key}: {_scalar(value)}" for key, value in fleet.items() if value)
    return [
        f"        {_scalar(host.name)}:  # {model}{described}{kind}",
        f"          ansible_host: {_scalar(host.address)}",
        f"          fleet: {{{pairs}}}",
    ]


def group_name(datacenter: str) -> str:
    """A group name Ansible accepts without warning: letters, digits and underscores."""
    name = re.sub(r"\W", "_", datacenter.lower())
    return name if name[:1].isalpha() else f"dc_{name}"


def _scalar(value: object) -> str:
    """A YAML scalar: plain when it is safely text, quoted (JSON is YAML) otherwise."""
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _WORDS:
        return text
    return json.dumps(text)
