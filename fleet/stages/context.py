"""What a stage may use: the narrow view of one host's pipeline that every stage kind gets.

A stage runs a command on the host, calls the provider, records journal events, reads the
host, the plan's vars, the facts gathered so far and the execution settings, looks up pinned
host keys, adopts an SSH session a provider stage opened, and proves its lease right before it
destroys anything. It never sees the pipeline class itself (:mod:`fleet.engine.pipeline`
implements :class:`Context`), so stages import nothing from the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # annotations only: plans import this package's call context cheaply
    from fleet.inventory import Host
    from fleet.provider.base import Hardware, Provider
    from fleet.stages.remote import Record
    from fleet.store.base import Event, OwnedArray
    from fleet.transport.base import CommandResult, Endpoint, KeyExpectation, Transport


@dataclass(frozen=True)
class ExecSettings:
    """Settings a pipeline and its stages need, as plain data."""

    lease_ttl: float = 300.0
    reboot_timeout: float = 900.0
    ssh_poll: float = 5.0
    rescue_public_key: str | None = None
    infra_retries: int = 2
    infra_retry_delay: float = 5.0
    wait_for_leases: float = 0.0
    key_file: str | None = None


class Connector(Protocol):
    """Opens SSH sessions (``fleet.transport.ssh.SshConnector``)."""

    def open(self, endpoint: Endpoint, expect: KeyExpectation) -> Transport: ...

    def wait_for_ssh(
        self,
        endpoint: Endpoint,
        expect: KeyExpectation = ...,
        *,
        timeout: float,
        poll_interval: float = ...,
        identity_check: Callable[[Any], bool] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> Transport: ...


@dataclass(frozen=True)
class Outcome:
    """What a stage changed in the pipeline: the boot mode it left the host in, the facts it
    gathered (journaled with the stage's end, so a resume restores them)."""

    mode: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)


class Context(Protocol):
    """One host's pipeline as a stage sees it."""

    @property
    def host(self) -> Host: ...
    @property
    def run_id(self) -> str: ...
    @property
    def settings(self) -> ExecSettings: ...
    @property
    def vars(self) -> Mapping[str, Any]:
        """The plan's vars (the host's own vars are on :attr:`host`)."""
        ...

    @property
    def facts(self) -> Mapping[str, Any]: ...
    @property
    def mode(self) -> str:
        """The boot mode the host is in: ``disk`` or ``rescue``."""
        ...

    @property
    def provider(self) -> Provider: ...
    @property
    def connector(self) -> Connector: ...
    @property
    def endpoint(self) -> Endpoint: ...

    # -- the host ------------------------------------------------------------------------
    def run_command(self, command: str, timeout: float, *, sudo: bool = False) -> CommandResult:
        """Run ``command`` on the host (as root through sudo with ``sudo``)."""
        ...

    def run_step(
        self, key: str, command: str, timeout: float, *, sudo: bool = False
    ) -> CommandResult:
        """Run step ``key``'s command under its host-side lock (:mod:`fleet.stages.remote`)."""
        ...

    def step_record(self, key: str, wait: float, *, sudo: bool = False) -> Record | None:
        """Wait up to ``wait`` s for step ``key``'s host-side lock, then read its record."""
        ...

    def session(self) -> Transport:
        """The host's open session (its ``fabric.Connection`` is ``session().connection``)."""
        ...

    def adopt(self, transport: Transport) -> None:
        """Use ``transport`` (opened by a provider stage) for the next steps."""
        ...

    def pinned_key(self, role: str) -> tuple[str, str] | None: ...

    # -- the journal and the run ---------------------------------------------------------
    def emit(self, kind: str, **fields: Any) -> Event:
        """Record a journal event of this host (``host=`` is filled in)."""
        ...

    def output(self, step: str, result: CommandResult) -> None:
        """Show a step's full output to observers (the journal keeps an excerpt)."""
        ...

    def run_options(self) -> Mapping[str, Any]: ...
    def host_events(self) -> list[Event]:
        """This host's journal events of this run, oldest first."""
        ...

    # -- what fleet recorded and knows about the host's disks ----------------------------
    def owned_arrays(self) -> list[OwnedArray]:
        """The md arrays fleet recorded creating on this host."""
        ...

    def record_array(self, array: OwnedArray) -> None: ...
    def hardware(self) -> Hardware | None:
        """OVH's hardware specification of the host; None when it has no ``ovh_service``."""
        ...

    # -- control -------------------------------------------------------------------------
    def fence(self) -> None:
        """Prove the host's lease is still ours; raises when it was lost."""
        ...

    def check_stop(self) -> None:
        """Raise when the rollout asked pipelines to stop between steps."""
        ...

    def pause(self, seconds: float) -> bool:
        """Wait ``seconds``; True when a stop was asked meanwhile."""
        ...

    def at(self, stage: str, step: str | None) -> None:
        """Where the host stands, for the messages of a failure."""
        ...

    def in_doubt(self, key: str) -> bool:
        """Whether step ``key`` was started (by an earlier attempt) and never ended."""
        ...

    def is_done(self, key: str) -> bool:
        """Whether step ``key`` (``stage/step``) ended converged or applied before."""
        ...

    def mark_done(self, key: str, *, applied: bool) -> None: ...
