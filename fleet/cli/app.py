"""The per-invocation context every command receives: flags, then lazily the settings, the
store, the inventory and the OVH provider. Commands get it with ``@pass_app``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from fleet.config import Settings
from fleet.config import load as load_settings
from fleet.errors import UsageError

if TYPE_CHECKING:
    import ovh

    from fleet.inventory import Host, Inventory
    from fleet.inventory.ovhcache import OvhCache
    from fleet.provider.base import Provider
    from fleet.provider.ratelimit import Pacer, ProcessPacer
    from fleet.store.base import Actor, RunRecord, Store


@dataclass
class App:
    """Per-invocation context: flags, then lazily the settings, store and inventory."""

    flags: dict[str, Any]
    config_file: str | None
    debug: bool
    _settings: Settings | None = None
    _store: Store | None = None
    _provider: Provider | None = None
    _pacer: ProcessPacer | None = None
    _client: ovh.Client | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.flags, config_file=self.config_file)
        return self._settings

    @property
    def store(self) -> Store:
        if self._store is None:
            from fleet.store import open_store

            self._store = open_store(
                self.settings.store_url,
                actor=self.actor,
                password_file=self.settings.get("store_password_file"),
            )
            self._closers.append(self._store.close)
        return self._store

    def run_record(self, run_id: str) -> RunRecord:
        """The run ``run_id``; an unknown id is a usage error (exit 3) for every command that
        takes one (resume, abort, status, report)."""
        from fleet.errors import StoreError

        try:
            return self.store.get_run(run_id)
        except StoreError as exc:
            if any(r.id == run_id for r in self.store.list_runs(1000)):
                raise  # the run exists: the store itself failed
            raise UsageError(
                f"no run {run_id!r} in {self.settings.store_url}",
                hint="`fleet status` lists the runs",
            ) from exc

    @property
    def actor(self) -> Actor:
        """Who runs this command, for the audit trail (the ``operator`` setting, else the OS
        user, with the OS user and machine)."""
        from fleet.store.base import Actor

        return Actor.current(self.settings.get("operator"))

    def inventory(self) -> Inventory:
        from fleet.inventory import load_inventory

        paths = self.settings.inventory_paths
        missing = [p for p in paths if not p.exists()]
        if missing:
            raise UsageError(
                f"inventory {missing[0]} does not exist",
                hint="pass -i FILE, set FLEET_INVENTORY, or run `fleet sandbox up`",
            )
        return load_inventory(paths)

    def hosts(self, limit: str | None, flag: str = "--limit") -> list[Host]:
        """The hosts a command that connects works on: never none (an empty inventory or a
        limit that selects nothing is a usage error, before any run exists or any host is
        contacted), selected with OVH's data when the limit asks for hardware, each one fleet
        can connect to as the inventory says."""
        from fleet.inventory import needs_ovh

        inventory = self.inventory()
        if not inventory.hosts:
            raise UsageError(
                f"the inventory ({self.settings.get('inventory')}) has no host",
                hint="add hosts to it, pass -i FILE, or run `fleet sandbox up`",
            )
        if needs_ovh(inventory, limit, flag):
            inventory = self.with_ovh(inventory)
        hosts = inventory.select(limit, flag)
        inventory.check_connectable(hosts)
        return hosts

    def with_ovh(self, inventory: Inventory, *, refresh: bool = False) -> Inventory:
        """The inventory enriched from the OVH API through the on-disk cache; says on stderr
        how old the data is."""
        from fleet.cli.output import listing_progress
        from fleet.inventory import enrich

        cache = self.ovh_cache(refresh=refresh)
        total = sum(1 for h in inventory.hosts if h.service_name)
        shown = listing_progress(self, "OVH servers", total, calls_each=2, estimate=False)
        try:
            return enrich(inventory, cache, progress=lambda done, _: shown.done(done))
        finally:
            cache.save()
            click.echo(cache.describe(), err=True)

    def ovh_cache(self, *, refresh: bool = False) -> OvhCache:
        from fleet.inventory.ovhcache import OvhCache, cache_path

        s = self.settings
        path = cache_path(s.state_dir, s.get("ovh.endpoint"), s.get("ovh.endpoint_url"))
        return OvhCache(path, self.provider, 0.0 if refresh else s.get("ovh.cache_max_age"))

    def provider(self) -> Provider:
        """The OVH provider, built once (its rate limit is shared by every call)."""
        if self._provider is None:
            self._provider = self._build_provider()
        return self._provider

    def pacing(self) -> str | None:
        """What the OVH rate limit holds back now (for heartbeats): this process's calls, or
        every process's when it paces through a shared bucket (a rollout on workers)."""
        if self._pacer is None:
            return None
        from fleet.provider.ratelimit import describe_waits

        shared = self._pacer.shared is not None
        return describe_waits(self._pacer, ", shared by every process of the key" if shared else "")

    def pacer(self) -> ProcessPacer:
        """What paces this process's OVH calls: its own token bucket (``ovh.rate_limit``) until
        :meth:`share_pacing`."""
        if self._pacer is None:
            from fleet.clock import SystemClock
            from fleet.provider.ratelimit import DEFAULT_BURST, ProcessPacer, TokenBucket

            clock = SystemClock()
            rate = self.settings.get("ovh.rate_limit")
            own = TokenBucket(rate, DEFAULT_BURST, monotonic=clock.monotonic, sleep=clock.sleep)
            self._pacer = ProcessPacer(own)
        return self._pacer

    def share_pacing(self, make: Callable[[str, float, int], Pacer]) -> None:
        """Pace this process's OVH calls, from now on, through the bucket every process of the
        same OVH key shares: ``make(key, rate per minute, burst)`` builds it. Without OVH
        credentials nothing is shared (no call can be made: the provider would say why)."""
        from fleet.errors import ConfigError
        from fleet.provider.ovh_client import pacing_key

        pacer = self.pacer()
        if pacer.shared is not None:
            return
        try:
            key = pacing_key(self.ovh_client())
        except ConfigError:
            return
        pacer.share(make(key, pacer.per_minute, pacer.own.burst))

    def ovh_client(self) -> ovh.Client:
        """The python-ovh client of the settings, built once (no call is made yet)."""
        if self._client is None:
            from fleet.provider.ovh_client import build_client

            s = self.settings
            self._client = build_client(
                s.get("ovh.endpoint"),
                endpoint_url=s.get("ovh.endpoint_url"),
                config_file=s.get("ovh.config_file"),
            )
        return self._client

    def _build_provider(self) -> Provider:
        from fleet.provider.ovh import OvhProvider, RetryPolicy

        s = self.settings
        retry = RetryPolicy(
            initial_wait=s.get("ovh.retry_wait"), max_wait=s.get("ovh.retry_max_wait")
        )
        return OvhProvider(
            self.ovh_client(),
            retry=retry,
            poll_interval=s.get("ovh.poll_interval"),
            max_poll_interval=s.get("ovh.max_poll_interval"),
            pacer=self.pacer(),
        )

    def close(self) -> None:
        for closer in reversed(self._closers):
            closer()


pass_app = click.make_pass_decorator(App)
