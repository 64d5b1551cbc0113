"""The one exception tree of fleet.

Every error fleet raises derives from :class:`FleetError` and carries its context (host, stage,
provider query id, file and key) so that a one-line message tells the operator what and where::

    FleetError
     ├── UsageError           bad CLI flags or values                          (exit 3)
     ├── ConfigError          fleet.toml / environment / settings             (exit 3)
     ├── InputError           a file we read is malformed (file, line, key)   (exit 3)
     │    ├── InventoryError
     │    └── PlanError
     ├── PreflightFailed      a check before any host is touched failed       (exit 3)
     ├── PayloadError         a plan's guard refused the host (counted like a failed step)
     ├── StoreError           the state store (SQLite / PostgreSQL)
     │    ├── LeaseHeld       another owner holds a host's lease              (exit 4)
     │    ├── RunOwned        another live process owns the run               (exit 4)
     │    └── LeaseLost       a holder's fencing token is stale: it must stop (exit 4)
     ├── ProviderError        the OVH API (carries query_id, server)
     │    ├── ProviderTransient   retriable: 429, 5xx, HTML pages, connection errors
     │    ├── ProviderConflict    409: a task of that kind is already running
     │    ├── ProviderRefused     refused for good: 400, 403 not about credentials, 404, 501...
     │    │    └── ProviderNotFound    404
     │    ├── ProviderAuthError   401/403: credentials, signature, rights
     │    └── TaskFailed          a task ended in ovhError / customerError / cancelled
     ├── TransportError       SSH (carries host)
     │    ├── Unreachable         connect refused / timed out / auth failed
     │    ├── HostKeyMismatch     the host presented an unexpected key
     │    └── CommandTimeout
     └── RolloutStopped       halted or aborted (exit 2)

Failures are classified (see ``fleet.engine.pipeline``): provider and transport errors are
*infrastructure*, a failing command is *payload*, and so is a request OVH refuses for good
(:class:`ProviderRefused`: retrying it cannot help, the plan or inventory asks what this server
cannot do).
"""

from __future__ import annotations


class FleetError(Exception):
    """Root of every error fleet raises. ``hint`` is an optional next step for the operator."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(FleetError):
    """Bad command-line usage."""

    exit_code = 3


class ConfigError(FleetError):
    """Bad settings (fleet.toml, FLEET_* environment, OVH configuration)."""

    exit_code = 3


class InputError(FleetError):
    """A file fleet reads is malformed. The message names the file, line where known, and key."""

    exit_code = 3

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = path or "<input>"
        if line is not None:
            where += f":{line}"
        if key:
            where += f": {key}"
        super().__init__(f"{where}: {message}", hint=hint)
        self.path = path
        self.line = line
        self.key = key


class InventoryError(InputError):
    """Malformed inventory (syntax, unknown key, duplicate host, missing address...)."""


class PlanError(InputError):
    """Malformed plan (unknown key, wrong type, undefined variable, unknown stage kind...)."""


class PreflightFailed(FleetError):
    """A preflight check failed (credentials, a key file, an address, a python call, a
    window): nothing was started, no run exists."""

    exit_code = 3


class PayloadError(FleetError):
    """The host is not in a state the plan accepts (a guard refused it): a payload failure."""


class StoreError(FleetError):
    """The state store failed or holds something unexpected."""


class LeaseHeld(StoreError):
    """Another owner holds the lease of a host."""

    exit_code = 4

    def __init__(self, host: str, owner: str, taken_at: str, expires_at: str) -> None:
        super().__init__(
            f"{host}: lease held by {owner} since {taken_at} until {expires_at}",
            hint="wait with --wait-for-leases, or `fleet leases break HOST --reason ...` if the owner is dead",
        )
        self.host = host
        self.owner = owner
        self.taken_at = taken_at
        self.expires_at = expires_at


class RunOwned(StoreError):
    """Another live process owns the run: one live owner per run."""

    exit_code = 4


class LeaseLost(StoreError):
    """A write or a step was refused: the holder's lease (of a host, or of the run) was broken
    or taken over, so its fencing token is stale. The holder stops touching the host at once."""

    exit_code = 4

    def __init__(self, what: str, why: str) -> None:
        super().__init__(
            f"{what}: lease lost ({why}); this process stops working on it",
            hint="`fleet status RUN` shows who holds the run now",
        )
        self.what = what
        self.why = why


class ProviderError(FleetError):
    """The OVH API answered with an error or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        server: str | None = None,
        query_id: str | None = None,
        status: int | None = None,
        hint: str | None = None,
    ) -> None:
        text = f"{server}: {message}" if server else message
        if query_id:
            text += f" (query id {query_id})"
        super().__init__(text, hint=hint)
        self.server = server
        self.query_id = query_id
        self.status = status


class ProviderTransient(ProviderError):
    """Retriable: 429, 5xx, an HTML error page, a connection error."""


class ProviderConflict(ProviderError):
    """409: the operation conflicts with a task already running."""


class ProviderRefused(ProviderError):
    """OVH refused the request for good: a 400, a 403 that is not about credentials ("not
    supported for this server"), a 404, a 409 that is not a running task, a 501. Never retried;
    the host fails once as a payload/configuration failure with OVH's message and query id."""


class ProviderNotFound(ProviderRefused):
    """404: no such server, boot, task, or no install running."""


class ProviderAuthError(ProviderError):
    """401/403: bad credentials, signature or rights. Never retried."""


class TaskFailed(ProviderError):
    """An OVH task ended in ovhError, customerError or cancelled."""


class TransportError(FleetError):
    """SSH failed. ``host`` names the inventory host."""

    def __init__(self, message: str, *, host: str, hint: str | None = None) -> None:
        super().__init__(f"{host}: {message}", hint=hint)
        self.host = host


class Unreachable(TransportError):
    """Could not connect or authenticate."""


class HostKeyMismatch(TransportError):
    """The host presented a key that fleet did not expect: possible impersonation."""


class CommandTimeout(TransportError):
    """A remote command ran past its timeout."""


class RolloutStopped(FleetError):
    """The rollout halted (budget spent, global halt) or was aborted."""

    exit_code = 2
