"""Server lookups of the OVH provider, kept for its life (one rollout) to spend fewer calls.

OVH's fair use is about 60 calls a minute per consumer key: a lookup asked again by every stage
of every host costs the rollout its time. What is kept does not change under a rollout holding
the host's lease: a server's record (its boot setting follows fleet's own accepted ``PUT``, and
the record is forgotten when a ``PUT`` fails, as it may or may not have landed), its hardware,
the ids of its boots of one type, and each boot's details. Tasks are never kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from fleet.errors import ProviderError
from fleet.provider.base import Boot, Hardware, Server
from fleet.provider.ovh_memo import Memo
from fleet.provider.ovh_records import (
    RESCUE_KERNELS,
    boot_from,
    choose_disk_boot,
    choose_rescue_boot,
    expect_list,
    hardware_from,
    server_from,
)

#: One GET (retried by the provider): (path, server, query) -> the decoded answer.
Get = Callable[[str, str, Mapping[str, str] | None], Any]


def server_path(name: str) -> str:
    return f"/dedicated/server/{quote(name, safe='')}"


class Lookups:
    """Server records, hardware and boots, read through ``get`` once per provider."""

    def __init__(self, get: Get) -> None:
        self._get = get
        self._memo = Memo()

    def forget_server(self, name: str) -> None:
        self._memo.forget(("server", name))

    def server(self, name: str) -> Server:
        """Kept for the provider's life; its boot setting follows :meth:`set_boot`."""

        def read() -> Server:
            return server_from(name, self._get(server_path(name), name, None))

        return self._memo.get(("server", name), read)

    def hardware(self, name: str) -> Hardware:
        """Kept for the provider's life: the hardware of a server does not change under us."""

        def read() -> Hardware:
            path = f"{server_path(name)}/specifications/hardware"
            return hardware_from(name, self._get(path, name, None))

        return self._memo.get(("hardware", name), read)

    def boots(self, name: str, boot_type: str | None = None) -> list[Boot]:
        return [self._boot(name, boot_id) for boot_id in self._boot_ids(name, boot_type)]

    def _boot_ids(self, name: str, boot_type: str | None) -> list[int]:
        """The ids of the server's boots (of ``boot_type``), kept for the provider's life."""

        def read() -> list[int]:
            query = {"bootType": boot_type} if boot_type else None
            value = self._get(f"{server_path(name)}/boot", name, query)
            return [int(i) for i in expect_list(value, server=name, what="boot ids")]

        return list(self._memo.get(("boot ids", name, boot_type), read))

    def _boot(self, name: str, boot_id: int) -> Boot:
        def read() -> Boot:
            value = self._get(f"{server_path(name)}/boot/{boot_id}", name, None)
            return boot_from(value, server=name)

        return self._memo.get(("boot", name, boot_id), read)

    def rescue_boot(self, name: str) -> Boot:
        boots = self._rescue_boots(name)
        chosen = choose_rescue_boot(boots)
        if chosen is None:
            kernels = ", ".join(sorted(boot.kernel for boot in boots)) or "none"
            raise ProviderError(
                f"no customer rescue kernel among the rescue boots (kernels: {kernels})",
                server=name,
                hint="expected rescue12-customer or rescue-customer; check the server's offer",
            )
        return chosen

    def _rescue_boots(self, name: str) -> list[Boot]:
        """The rescue boots, read in id order until the most preferred kernel shows up (no
        other can beat it, and among boots of one kernel the lowest id is chosen)."""
        boots = []
        for boot_id in sorted(self._boot_ids(name, "rescue")):
            boots.append(self._boot(name, boot_id))
            if boots[-1].kernel == RESCUE_KERNELS[0]:
                break
        return boots

    def disk_boot(self, name: str) -> Boot:
        """The boot from the installed system. A server with a single harddisk boot has it
        chosen without reading its details (the ``bootType`` filter says its type, and with
        one candidate its kernel decides nothing): its kernel is then left empty."""
        ids = self._boot_ids(name, "harddisk")
        if len(ids) == 1:
            cached = self._memo.peek(("boot", name, ids[0]))
            return cached if isinstance(cached, Boot) else Boot(ids[0], "harddisk", kernel="")
        boots = [self._boot(name, boot_id) for boot_id in ids]
        chosen = choose_disk_boot(boots)
        if chosen is None:
            kernels = ", ".join(sorted(boot.kernel for boot in boots)) or "none"
            raise ProviderError(f"no single harddisk boot (kernels: {kernels})", server=name)
        return chosen

    def note_boot(self, name: str, boot_id: int, rescue_ssh_key: str | None) -> None:
        """Keep the kept server record in step with a boot setting that OVH accepted."""
        kept = self._memo.peek(("server", name))
        if isinstance(kept, Server):
            key = kept.rescue_ssh_key if rescue_ssh_key is None else (rescue_ssh_key or None)
            self._memo.put(("server", name), replace(kept, boot_id=boot_id, rescue_ssh_key=key))
