"""A read-only preview of a destructive plan: ``fleet plan PLAN --probe``.

For each host it connects over SSH and runs only the plan's stages marked ``preview: true``
(read-only ``python`` stages: for ``hybrid-raid`` the facts and the guard), on whatever system
the host runs now, and keeps what they decided. Nothing is written on any host. The preview is
recorded in the store under a short hash of the plan and every host's decision digest; a
rollout given ``--approve HASH`` runs only where its guard decides exactly what the preview
showed (see :func:`fleet.stages.call.approved_digest`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from fleet.errors import FleetError, PayloadError, UsageError
from fleet.inventory import Host
from fleet.plan import Plan, host_context, render_stage, with_facts
from fleet.provider.base import Hardware, Provider
from fleet.stages.call import StageContext, resolve
from fleet.stages.context import Connector
from fleet.store.base import Preview, Store
from fleet.transport.base import Endpoint, KeyExpectation


@dataclass(frozen=True)
class HostPreview:
    """What the preview stages decided on one host. ``digest`` is "" when refused or failed."""

    host: str
    digest: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    refused: str = ""
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        decisions = self.facts.get("decisions") or {}
        return {"host": self.host, "digest": self.digest, "refused": self.refused,
                "error": self.error, "decisions": decisions}  # fmt: skip


def preview_stages(plan: Plan) -> list[str]:
    """Names of the plan's stages a preview runs."""
    return [s.name for s in plan.stages if s.kind == "python" and s.params.get("preview") is True]


@dataclass
class Previewer:
    """Runs the preview stages of ``plan`` on hosts (thread-safe: one SSH session per host)."""

    plan: Plan
    connector: Connector
    store: Store
    provider: Callable[[], Provider] | None = None
    key_file: str | None = None

    def host(self, host: Host) -> HostPreview:
        try:
            return self._run(host)
        except PayloadError as exc:
            return HostPreview(host.name, refused=exc.message)
        except FleetError as exc:
            return HostPreview(host.name, error=exc.message)

    def _run(self, host: Host) -> HostPreview:
        endpoint = Endpoint(host.name, host.address, host.port, host.user,
                            host.key_file or self.key_file)  # fmt: skip
        transport = self.connector.open(endpoint, KeyExpectation(role="disk"))
        try:
            name = transport.run("hostname", timeout=30).stdout
            mode = "rescue" if name.startswith("rescue") else "disk"
            facts: dict[str, Any] = {}
            base = host_context(host, self.plan.vars)
            for spec in self.plan.stages:
                if spec.name not in preview_stages(self.plan):
                    continue
                stage, _ = render_stage(self.plan, spec, with_facts(base, facts))
                if stage is None or stage.call is None:
                    continue
                ctx = StageContext(
                    host=host, vars={**self.plan.vars, **host.vars}, facts=dict(facts),
                    params=dict(stage.params), mode=mode,
                    runner=lambda command, timeout: transport.run(command, timeout=timeout),
                    owned=partial(self.store.owned_arrays, host.name),
                    hardware=partial(self._hardware, host),
                    preview=True,
                )  # fmt: skip
                facts.update(resolve(stage.call)(ctx))
        finally:
            transport.close()
        return HostPreview(host.name, str(facts.get("digest", "")), facts)

    def _hardware(self, host: Host) -> Hardware | None:
        if not host.service_name or self.provider is None:
            return None
        return self.provider().hardware(host.service_name)


def run_preview(previewer: Previewer, hosts: list[Host], concurrency: int) -> list[HostPreview]:
    """Every host's preview, in the order given."""
    if not preview_stages(previewer.plan):
        raise UsageError(
            f"plan {previewer.plan.name} has no read-only stages to preview (stages with "
            "`params: {preview: true}`)"
        )
    with ThreadPoolExecutor(max(1, min(concurrency, len(hosts) or 1))) as pool:
        return list(pool.map(previewer.host, hosts))


def preview_id(plan: Plan, results: list[HostPreview]) -> str:
    data = {"plan": plan.hash, "hosts": {r.host: r.digest for r in results}}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def record_preview(store: Store, plan: Plan, results: list[HostPreview], who: str) -> Preview:
    preview = Preview(
        preview_id(plan, results), plan.hash, {r.host: r.digest for r in results}, who
    )
    store.save_preview(preview)
    return preview


def approved_preview(
    store: Store, preview_id: str, plan: Plan, hosts: list[Host]
) -> dict[str, Any]:
    """The run option that holds a rollout to what preview ``preview_id`` showed; refuses a
    preview of another plan (or other parameters) or one that did not look at every host."""
    preview = store.get_preview(preview_id)
    if preview is None:
        raise UsageError(f"no preview {preview_id!r}", hint="run `fleet plan PLAN --probe` first")
    if preview.plan_hash != plan.hash:
        raise UsageError(
            f"preview {preview_id} was of another plan or other parameters "
            f"(plan hash {preview.plan_hash}, now {plan.hash})",
            hint="preview again with the same plan, --var values and inventory",
        )
    missing = [h.name for h in hosts if h.name not in preview.hosts]
    if missing:
        raise UsageError(f"preview {preview_id} did not look at {', '.join(missing)}")
    return {"approved_preview": {"id": preview.id, "hosts": {h.name: preview.hosts[h.name]
                                                               for h in hosts}}}  # fmt: skip
