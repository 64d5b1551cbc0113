"""The OVH implementation of :class:`~fleet.provider.base.Provider`; the one module importing ovh.

What it adds to python-ovh, which signs requests but never retries and hides response headers:

- **Classification** at the boundary: every python-ovh exception, every ``requests`` error and
  every error body shape (legacy ``{errorCode, httpCode, message}``, current
  ``{class, message, details}``, message-only, HTML) becomes a :mod:`fleet.errors` class that names
  the server, the HTTP status and OVH's ``X-Ovh-QueryId``.
- **Pacing**: one token bucket per provider (one consumer key), shared by every thread.
- **Retries** with tenacity: reads and the idempotent PUT of boot settings are retried on
  transient errors, with exponential backoff, jitter and ``Retry-After``. The POSTs that start
  work (reboot, reinstall) are never retried blindly: an in-flight task of the same function is
  adopted instead, so a lost answer never becomes a second reboot.
- **Task waits** that ride through OVH's 404/500 on a freshly created task.

Requests go through ``Client.raw_call`` rather than ``Client.get``/``post``: python-ovh's ``call``
drops the response on success (no query id for a :class:`~fleet.provider.base.Task`), and on a
non-JSON answer raises ``InvalidResponse`` without the HTTP status. ``raw_call`` still signs the
request exactly as ``call`` does; this module decodes and classifies the answer itself.

One ``ovh.Client`` is shared by all threads: its ``requests.Session`` pools connections
thread-safely in practice, and the one piece of lazy state (``time_delta``, fetched from
``/auth/time`` before the first signed call) is computed once under a lock before any request.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlencode

import ovh
import ovh.client
import ovh.exceptions
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from fleet.clock import Clock, SystemClock
from fleet.errors import (
    ConfigError,
    ProviderAuthError,
    ProviderConflict,
    ProviderError,
    ProviderNotFound,
    ProviderTransient,
    TaskFailed,
)
from fleet.provider.base import (
    Boot,
    DiskGroup,
    Hardware,
    InstallStatus,
    InstallStep,
    Server,
    Task,
    TaskProgress,
)
from fleet.provider.ratelimit import TokenBucket, parse_retry_after

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

log = logging.getLogger(__name__)

#: Name under which :func:`build_client` registers a sandbox URL by default.
SANDBOX_ENDPOINT = "fleet-sandbox"
#: python-ovh's own endpoint names: never redirected to another URL.
_BUILTIN_ENDPOINTS = dict(ovh.client.ENDPOINTS)
#: Guards ``ovh.client.ENDPOINTS`` while a name is registered and a client built from it.
_ENDPOINTS_LOCK = threading.Lock()
#: Keyword arguments of :func:`build_client` passed on to ``ovh.Client``.
_CLIENT_KEYS = frozenset({"application_key", "application_secret", "consumer_key"})

#: python-ovh exceptions that mean "bad credentials, signature or rights".
_AUTH_EXCEPTIONS: tuple[type[Exception], ...] = (
    ovh.exceptions.InvalidKey,
    ovh.exceptions.InvalidCredential,
    ovh.exceptions.NotCredential,
    ovh.exceptions.Forbidden,
    ovh.exceptions.NotGrantedCall,
)
#: python-ovh exceptions raised without a response that mean "try again later".
_TRANSIENT_EXCEPTIONS: tuple[type[Exception], ...] = (
    ovh.exceptions.HTTPError,
    ovh.exceptions.NetworkError,
    ovh.exceptions.InvalidResponse,
)

#: How many of the newest tasks of a function are examined when looking for one to adopt.
ADOPT_SCAN = 3
#: Upper bound on polls in one :meth:`OvhProvider.wait_task` (on top of its timeout).
MAX_POLLS = 100_000


# --------------------------------------------------------------------------------------------
# Client construction


def build_client(
    endpoint: str | None = None,
    *,
    endpoint_url: str | None = None,
    config_file: str | None = None,
    timeout: float = 60.0,
    **keys: str | None,
) -> ovh.Client:
    """An ``ovh.Client`` from explicit arguments, else ``OVH_*`` environment, else ``ovh.conf``.

    python-ovh does the lookup; this only passes values through. ``endpoint_url`` registers
    ``endpoint`` as a named endpoint in ``ovh.client.ENDPOINTS`` (how the sandbox is reached: the
    client takes names only); python-ovh's own names are never redirected. ``keys`` are
    ``application_key``, ``application_secret`` and ``consumer_key``.
    """
    unknown = sorted(set(keys) - _CLIENT_KEYS)
    if unknown:
        raise ConfigError(f"unknown OVH client setting(s): {', '.join(unknown)}")
    if endpoint_url is not None:
        _check_registration(endpoint, endpoint_url)
    with _ENDPOINTS_LOCK:
        if endpoint is not None and endpoint_url is not None:
            ovh.client.ENDPOINTS[endpoint] = endpoint_url.rstrip("/")
        try:
            return ovh.Client(endpoint=endpoint, config_file=config_file, timeout=timeout, **keys)
        except (ovh.exceptions.InvalidRegion, ovh.exceptions.InvalidConfiguration) as exc:
            raise ConfigError(
                f"OVH client settings: {_exception_text(exc)}",
                hint="give endpoint and keys, set OVH_ENDPOINT/OVH_APPLICATION_KEY/"
                "OVH_APPLICATION_SECRET/OVH_CONSUMER_KEY, or write ovh.conf",
            ) from exc


def _check_registration(endpoint: str | None, endpoint_url: str) -> None:
    """Refuse to register a URL without a name, or to redirect one of python-ovh's names."""
    if not endpoint:
        raise ConfigError(f"endpoint_url {endpoint_url} needs an endpoint name to register it")
    builtin = _BUILTIN_ENDPOINTS.get(endpoint)
    if builtin is not None and builtin != endpoint_url.rstrip("/"):
        raise ConfigError(
            f"endpoint {endpoint} is python-ovh's ({builtin}); register {endpoint_url} "
            f"under another name such as {SANDBOX_ENDPOINT}"
        )
    if not endpoint_url.startswith(("http://", "https://")):
        raise ConfigError(f"endpoint_url {endpoint_url} is not an http(s) URL")


# --------------------------------------------------------------------------------------------
# Error classification


class _Response(Protocol):
    """The part of ``requests.Response`` this module reads."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def content(self) -> bytes: ...


class ApiTransient(ProviderTransient):
    """A transient error that may say how long to wait (``Retry-After`` of a 429 or a 503)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.retry_after = retry_after


def error_from_response(response: _Response, *, server: str | None, action: str) -> ProviderError:
    """Classify an HTTP error answer, whatever its body shape.

    The status decides for 401/403 (auth), 404, 409, 429 and 5xx; a non-JSON body otherwise
    (an HTML page from a proxy) is transient; a signing failure (400 ``INVALID_SIGNATURE``) is
    an auth error; any other JSON error is a plain ProviderError.
    """
    status = response.status_code
    headers = response.headers
    query_id = headers.get("X-Ovh-QueryId")
    ok, body = decode_json(response.content)
    detail = body_message(body) if ok else non_json_summary(response.content, headers)
    message = f"{action}: HTTP {status} {detail}"
    context: dict[str, Any] = {"server": server, "query_id": query_id, "status": status}
    if status in (401, 403):
        return ProviderAuthError(message, hint=_AUTH_HINT, **context)
    if status == 404:
        return ProviderNotFound(message, **context)
    if status == 409:
        return ProviderConflict(message, **context)
    if status == 429 or status >= 500 or not ok:
        retry_after = parse_retry_after(headers.get("Retry-After"))
        return ApiTransient(message, retry_after=retry_after, **context)
    if is_auth_body(body):
        return ProviderAuthError(message, hint=_AUTH_HINT, **context)
    return ProviderError(message, **context)


_AUTH_HINT = "check the application key/secret and consumer key, and the consumer key's rights"
#: Legacy ``errorCode`` values of signing and credential failures. OVH answers a bad signature
#: (a wrong application secret) with 400 ``INVALID_SIGNATURE``, not 401/403.
_AUTH_CODES = frozenset(
    {
        "INVALID_SIGNATURE",
        "INVALID_CREDENTIAL",
        "NOT_CREDENTIAL",
        "INVALID_KEY",
        "NOT_GRANTED_CALL",
        "FORBIDDEN",
        "QUERY_TIME_OUT",
    }
)


def is_auth_body(body: Any) -> bool:
    """Whether an error body (any shape) reports a signing or credential failure.

    The current shape says ``{"class": "Client::BadRequest", "message": "Invalid signature"}``
    for a bad signature, so the message is read too.
    """
    if not isinstance(body, dict):
        return False
    kind = str(body.get("class") or "")
    message = str(body.get("message") or "").lower()
    return (
        str(body.get("errorCode") or "") in _AUTH_CODES
        or kind.startswith(("Client::Unauthorized", "Client::Forbidden"))
        or "invalid signature" in message
    )


def error_from_exception(exc: Exception, *, server: str | None, action: str) -> ProviderError:
    """Classify a python-ovh exception or a ``requests`` error (an ``OSError``)."""
    response = getattr(exc, "response", None)
    if isinstance(exc, ovh.exceptions.APIError) and response is not None:
        return error_from_response(response, server=server, action=action)
    text = f"{action}: {_exception_text(exc)}"
    if isinstance(exc, _AUTH_EXCEPTIONS) or "invalid signature" in text.lower():
        return ProviderAuthError(text, server=server, hint=_AUTH_HINT)
    if isinstance(exc, (*_TRANSIENT_EXCEPTIONS, OSError)):
        return ApiTransient(text, server=server)
    if isinstance(exc, ovh.exceptions.ResourceNotFoundError):
        return ProviderNotFound(text, server=server, status=404)
    if isinstance(exc, ovh.exceptions.ResourceConflictError):
        return ProviderConflict(text, server=server, status=409)
    return ProviderError(text, server=server)


def _exception_text(exc: BaseException) -> str:
    """``Class: args`` of an exception, following python-ovh's habits of wrapping the cause
    and of passing ``("format %s", value)`` as arguments."""
    args = exc.args
    if len(args) > 1 and isinstance(args[0], str) and "%s" in args[0]:
        try:
            args = (args[0] % args[1:],)
        except (TypeError, ValueError):
            args = exc.args
    parts = [str(arg) for arg in args if arg is not None and not isinstance(arg, Exception)]
    causes = [arg for arg in args if isinstance(arg, Exception)]
    parts += [f"{type(cause).__name__}: {cause}" for cause in causes]
    return f"{type(exc).__name__}: {'; '.join(parts) or 'no detail'}"


def decode_json(content: bytes | str | None) -> tuple[bool, Any]:
    """``(True, value)`` for a JSON body (an empty body is ``None``), else ``(False, None)``."""
    if content is None or not content.strip():
        return True, None
    try:
        return True, json.loads(content)
    except ValueError:
        return False, None


def body_message(body: Any) -> str:
    """The message of an error body: ``class``/``errorCode``, ``message``, ``details``."""
    if not isinstance(body, dict):
        return "(no message)" if body is None else _clip(json.dumps(body))
    kind = body.get("class") or body.get("errorCode")
    message = body.get("message")
    parts = [str(part) for part in (kind, message) if part]
    details = body.get("details")
    if details:
        parts.append(f"details {_clip(json.dumps(details, sort_keys=True))}")
    return ": ".join(parts[:2]) + "".join(f" ({part})" for part in parts[2:]) or "(no message)"


def non_json_summary(content: bytes | str | None, headers: Mapping[str, str]) -> str:
    """A short, log-safe description of a body that is not JSON (often an HTML error page)."""
    raw = content.decode("utf-8", "replace") if isinstance(content, bytes) else content or ""
    kind = headers.get("Content-Type") or "unknown type"
    title_start = raw.lower().find("<title>")
    if title_start >= 0:
        title_end = raw.lower().find("</title>", title_start)
        raw = raw[title_start + 7 : title_end if title_end > 0 else None]
    return f"non-JSON answer ({kind}): {_clip(' '.join(raw.split()))}"


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------
# Mapping of OVH models to fleet values (pure; unknown fields ignored)

_GB_PER_UNIT = {
    "MB": 0.001,
    "GB": 1.0,
    "TB": 1000.0,
    "PB": 1_000_000.0,
    "MIB": 1024**2 / 1e9,
    "GIB": 1024**3 / 1e9,
    "TIB": 1024**4 / 1e9,
}


def size_in_gb(size: Any, *, server: str | None = None) -> int:
    """``{"unit": "TB", "value": 4}`` -> 4000 (decimal units, as OVH counts disk sizes)."""
    if not isinstance(size, dict) or not isinstance(size.get("value"), (int, float)):
        raise ProviderError(f"unreadable disk size {size!r}", server=server)
    unit = str(size.get("unit") or "").upper()
    factor = _GB_PER_UNIT.get(unit)
    if factor is None:
        raise ProviderError(f"unknown disk size unit {size.get('unit')!r} in {size}", server=server)
    return round(float(size["value"]) * factor)


def server_from(name: str, data: Any) -> Server:
    """``dedicated.server.Dedicated`` -> :class:`Server`."""
    item = expect_dict(data, server=name, what="server")
    boot_id = item.get("bootId")
    return Server(
        name=str(item.get("name") or name),
        ip=str(item.get("ip") or ""),
        datacenter=str(item.get("datacenter") or ""),
        rack=str(item.get("rack") or ""),
        state=str(item.get("state") or ""),
        boot_id=int(boot_id) if boot_id is not None else None,
        rescue_ssh_key=item.get("rescueSshKey"),
        os=str(item.get("os") or ""),
        power_state=str(item.get("powerState") or ""),
        reverse=item.get("reverse"),
    )


def hardware_from(name: str, data: Any) -> Hardware:
    """``dedicated.server.HardwareSpecifications`` -> :class:`Hardware`."""
    item = expect_dict(data, server=name, what="hardware specifications")
    groups = item.get("diskGroups") or []
    if not isinstance(groups, list):
        raise ProviderError(f"diskGroups is not a list: {_clip(repr(groups))}", server=name)
    return Hardware(
        description=str(item.get("description") or ""),
        disk_groups=tuple(disk_group_from(name, i, g) for i, g in enumerate(groups, start=1)),
        boot_mode=item.get("bootMode"),
    )


def disk_group_from(name: str, position: int, data: Any) -> DiskGroup:
    """One ``diskGroups[]`` entry; a missing ``diskGroupId`` falls back to its 1-based position."""
    item = expect_dict(data, server=name, what="disk group")
    group_id = item.get("diskGroupId")
    return DiskGroup(
        id=int(group_id) if group_id is not None else position,
        disk_type=str(item.get("diskType") or ""),
        count=int(item.get("numberOfDisks") or 0),
        size_gb=size_in_gb(item.get("diskSize"), server=name),
        description=str(item.get("description") or ""),
    )


def boot_from(data: Any, *, server: str | None = None) -> Boot:
    """``dedicated.server.Netboot`` -> :class:`Boot`."""
    item = expect_dict(data, server=server, what="boot")
    if item.get("bootId") is None:
        raise ProviderError(f"boot without bootId: {_clip(repr(item))}", server=server)
    return Boot(
        id=int(item["bootId"]),
        type=str(item.get("bootType") or ""),
        kernel=str(item.get("kernel") or ""),
        description=str(item.get("description") or ""),
    )


def task_from(data: Any, *, server: str | None = None, query_id: str | None = None) -> Task:
    """``dedicated.server.Task`` or the short ``task.Response`` of a reinstall -> :class:`Task`."""
    item = expect_dict(data, server=server, what="task")
    if item.get("taskId") is None or not item.get("status"):
        raise ProviderError(f"task without taskId/status: {_clip(repr(item))}", server=server)
    return Task(
        id=int(item["taskId"]),
        function=str(item.get("function") or ""),
        status=str(item["status"]),
        comment=item.get("comment"),
        start_date=item.get("startDate"),
        done_date=item.get("doneDate"),
        query_id=query_id,
    )


def install_status_from(data: Any, *, server: str | None = None) -> InstallStatus:
    """``dedicated.server.InstallationProgressStatus`` -> :class:`InstallStatus`."""
    item = expect_dict(data, server=server, what="install status")
    steps = [
        expect_dict(step, server=server, what="install step") for step in item.get("progress") or []
    ]
    return InstallStatus(
        elapsed_seconds=int(item.get("elapsedTime") or 0),
        steps=tuple(
            InstallStep(
                comment=str(step.get("comment") or ""),
                status=str(step.get("status") or ""),
                error=step.get("error"),
            )
            for step in steps
        ),
    )


def expect_dict(data: Any, *, server: str | None, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ProviderError(f"expected a {what} object, got {_clip(repr(data))}", server=server)
    return data


def expect_list(data: Any, *, server: str | None, what: str) -> list[Any]:
    if not isinstance(data, list):
        raise ProviderError(f"expected a list of {what}, got {_clip(repr(data))}", server=server)
    return data


#: Customer rescue kernels, most preferred first.
RESCUE_KERNELS = ("rescue12-customer", "rescue-customer")


def choose_rescue_boot(boots: Iterable[Boot]) -> Boot | None:
    """The customer rescue: ``rescue12-customer``, then ``rescue-customer``, then any kernel
    naming "customer". Never a fixed id nor the first entry: ids and order vary by server."""
    candidates = sorted(boots, key=lambda boot: (boot.kernel, boot.id))
    for kernel in RESCUE_KERNELS:
        for boot in candidates:
            if boot.kernel == kernel:
                return boot
    return next((boot for boot in candidates if "customer" in boot.kernel), None)


def choose_disk_boot(boots: Iterable[Boot]) -> Boot | None:
    """The boot from the installed system: kernel ``hd``, else the only harddisk boot."""
    disk = [boot for boot in boots if boot.type in ("harddisk", "")]
    for boot in disk:
        if boot.kernel == "hd":
            return boot
    return disk[0] if len(disk) == 1 else None


# --------------------------------------------------------------------------------------------
# Retry policy


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds and pacing of retries on transient errors.

    Waits grow as ``initial_wait * 2**(n-1)`` up to ``max_wait``, plus up to ``jitter`` seconds at
    random so that many threads do not retry in step; a ``Retry-After`` is always honoured.
    """

    attempts: int = 8
    total_seconds: float = 300.0
    initial_wait: float = 1.0
    max_wait: float = 60.0
    jitter: float = 1.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Seconds before attempt ``attempt + 1`` after ``attempt`` failed (1-based)."""
        base = min(self.max_wait, self.initial_wait * 2.0 ** max(0, attempt - 1))
        return base + rng.uniform(0.0, self.jitter)

    def wait_for(self, attempt: int, exc: BaseException | None, rng: random.Random) -> float:
        """The backoff, but never less than the error's ``Retry-After``."""
        retry_after = getattr(exc, "retry_after", None) or 0.0
        return max(self.backoff(attempt, rng), float(retry_after))


@dataclass(frozen=True)
class _Reply:
    """A decoded 2xx answer and the query id OVH gave it."""

    value: Any
    query_id: str | None


# --------------------------------------------------------------------------------------------
# The provider


class OvhProvider:
    """:class:`fleet.provider.base.Provider` over one ``ovh.Client`` (one consumer key).

    Safe to share between threads: the rate limit, the hardware cache and the client's time
    offset are guarded by locks.
    """

    def __init__(
        self,
        client: ovh.Client,
        *,
        rate_limit_per_minute: float = 60.0,
        burst: int = 5,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        task_grace_seconds: float = 30.0,
        poll_interval: float = 5.0,
        max_poll_interval: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._clock: Clock = clock or SystemClock()
        self.retry = retry or RetryPolicy()
        self.task_grace_seconds = task_grace_seconds
        self.poll_interval = poll_interval
        self.max_poll_interval = max(poll_interval, max_poll_interval)
        self._rng = rng or random.Random()
        self._bucket = TokenBucket(
            rate_per_minute=rate_limit_per_minute,
            burst=burst,
            monotonic=self._clock.monotonic,
            sleep=self._clock.sleep,
        )
        self._time_lock = threading.Lock()
        self._time_ready = False
        self._hardware: dict[str, Hardware] = {}
        self._hardware_lock = threading.Lock()

    # ---- requests ------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        server: str | None,
        query: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> _Reply:
        """One signed, paced and classified call; no retry."""
        target = f"{path}?{urlencode(query)}" if query else path
        action = f"{method} {target}"
        self._ensure_time_delta(server)
        self._bucket.acquire()
        try:
            response: _Response = self._client.raw_call(method, target, data=body)
        except (ovh.exceptions.APIError, OSError) as exc:
            raise error_from_exception(exc, server=server, action=action) from exc
        query_id = response.headers.get("X-Ovh-QueryId")
        if not 200 <= response.status_code < 300:
            error = error_from_response(response, server=server, action=action)
            self._note_retry_after(error)
            raise error
        ok, value = decode_json(response.content)
        if not ok:
            summary = non_json_summary(response.content, response.headers)
            raise ApiTransient(
                f"{action}: HTTP {response.status_code} {summary}",
                server=server,
                query_id=query_id,
                status=response.status_code,
            )
        log.debug(
            "%s: %s -> %s (query id %s)", server or "-", action, response.status_code, query_id
        )
        return _Reply(value, query_id)

    def _ensure_time_delta(self, server: str | None) -> None:
        """Let python-ovh fetch ``/auth/time`` once, before any signed call, under a lock."""
        if self._time_ready:
            return
        with self._time_lock:
            if self._time_ready:
                return
            try:
                self._client.time_delta  # noqa: B018 - the property fetches and caches it
            except (ovh.exceptions.APIError, OSError) as exc:
                raise error_from_exception(exc, server=server, action="GET /auth/time") from exc
            self._time_ready = True

    def _note_retry_after(self, error: ProviderError) -> None:
        """A 429/503 with ``Retry-After`` pauses every thread of this provider, not only one
        (for at most the retry policy's total time: an absurd header must not stall a run)."""
        retry_after = getattr(error, "retry_after", None)
        if retry_after:
            self._bucket.pause(min(float(retry_after), self.retry.total_seconds))

    def _retrying(self, server: str | None, action: str) -> Retrying:
        """Retry on :class:`ProviderTransient` within the policy's attempts and total time."""
        start = self._clock.monotonic()
        policy = self.retry

        def stop(state: RetryCallState) -> bool:
            elapsed = self._clock.monotonic() - start
            too_late = elapsed + (state.upcoming_sleep or 0.0) > policy.total_seconds
            return state.attempt_number >= policy.attempts or too_late

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return policy.wait_for(state.attempt_number, exc, self._rng)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "%s: %s failed (attempt %d/%d), retrying in %.1fs: %s",
                server or "-",
                action,
                state.attempt_number,
                policy.attempts,
                state.upcoming_sleep,
                exc,
            )

        return Retrying(
            sleep=self._clock.sleep,
            stop=stop,
            wait=wait,
            retry=retry_if_exception_type(ProviderTransient),
            before_sleep=before_sleep,
            reraise=True,
        )

    def _get(
        self, path: str, *, server: str | None, query: Mapping[str, str] | None = None
    ) -> _Reply:
        """A GET, retried on transient errors."""
        retrying = self._retrying(server, f"GET {path}")
        return retrying(self._request, "GET", path, server=server, query=query)

    # ---- reading -------------------------------------------------------------------------

    def list_servers(self) -> list[str]:
        reply = self._get("/dedicated/server", server=None)
        return [str(name) for name in expect_list(reply.value, server=None, what="servers")]

    def server(self, name: str) -> Server:
        return server_from(name, self._get(_server_path(name), server=name).value)

    def hardware(self, name: str) -> Hardware:
        """Cached for the provider's life: the hardware of a server does not change under us."""
        with self._hardware_lock:
            cached = self._hardware.get(name)
        if cached is not None:
            return cached
        reply = self._get(f"{_server_path(name)}/specifications/hardware", server=name)
        hardware = hardware_from(name, reply.value)
        with self._hardware_lock:
            return self._hardware.setdefault(name, hardware)

    def boots(self, name: str, boot_type: str | None = None) -> list[Boot]:
        query = {"bootType": boot_type} if boot_type else None
        reply = self._get(f"{_server_path(name)}/boot", server=name, query=query)
        ids = expect_list(reply.value, server=name, what="boot ids")
        return [self._boot(name, int(boot_id)) for boot_id in ids]

    def _boot(self, name: str, boot_id: int) -> Boot:
        reply = self._get(f"{_server_path(name)}/boot/{boot_id}", server=name)
        return boot_from(reply.value, server=name)

    def rescue_boot(self, name: str) -> Boot:
        boots = self.boots(name, "rescue")
        chosen = choose_rescue_boot(boots)
        if chosen is None:
            kernels = ", ".join(sorted(boot.kernel for boot in boots)) or "none"
            raise ProviderError(
                f"no customer rescue kernel among the rescue boots (kernels: {kernels})",
                server=name,
                hint="expected rescue12-customer or rescue-customer; check the server's offer",
            )
        return chosen

    def disk_boot(self, name: str) -> Boot:
        boots = self.boots(name, "harddisk")
        chosen = choose_disk_boot(boots)
        if chosen is None:
            kernels = ", ".join(sorted(boot.kernel for boot in boots)) or "none"
            raise ProviderError(f"no single harddisk boot (kernels: {kernels})", server=name)
        return chosen

    def tasks(self, name: str, function: str | None = None, status: str | None = None) -> list[int]:
        query = {key: value for key, value in (("function", function), ("status", status)) if value}
        reply = self._get(f"{_server_path(name)}/task", server=name, query=query or None)
        return [int(task_id) for task_id in expect_list(reply.value, server=name, what="task ids")]

    def task(self, name: str, task_id: int) -> Task:
        reply = self._get(f"{_server_path(name)}/task/{task_id}", server=name)
        return task_from(reply.value, server=name, query_id=reply.query_id)

    def compatible_templates(self, name: str) -> list[str]:
        reply = self._get(f"{_server_path(name)}/install/compatibleTemplates", server=name)
        templates = expect_dict(reply.value, server=name, what="compatible templates")
        names = expect_list(templates.get("ovh") or [], server=name, what="templates")
        return [str(template) for template in names]

    def install_status(self, name: str) -> InstallStatus | None:
        """None when no installation runs (OVH answers 404)."""
        try:
            reply = self._get(f"{_server_path(name)}/install/status", server=name)
        except ProviderNotFound:
            return None
        return install_status_from(reply.value, server=name)

    # ---- changing ------------------------------------------------------------------------

    def set_boot(self, name: str, boot_id: int, rescue_ssh_key: str | None = None) -> None:
        """PUT ``bootId`` (idempotent, so retried). ``rescue_ssh_key``: None leaves the server's
        key unchanged, ``""`` clears it (sent as JSON null), any other text replaces it."""
        body: dict[str, Any] = {"bootId": boot_id}
        if rescue_ssh_key is not None:
            body["rescueSshKey"] = rescue_ssh_key or None
        path = _server_path(name)
        retrying = self._retrying(name, f"PUT {path}")
        retrying(self._request, "PUT", path, server=name, body=body)
        log.info("%s: boot set to %d%s", name, boot_id, _key_note(rescue_ssh_key))

    def reboot(self, name: str) -> Task:
        """Hard reboot; adopts an in-flight ``hardReboot`` instead of starting a second one."""
        return self._start_task(name, "reboot", "hardReboot", body=None)

    def reinstall(self, name: str, request: dict[str, Any]) -> Task:
        """``POST .../reinstall``; adopts an in-flight ``reinstallServer``. The Task comes from the
        short reply (taskId, function, status, comment, dates) with its query id."""
        return self._start_task(name, "reinstall", "reinstallServer", body=request)

    def reboot_and_wait(
        self,
        name: str,
        boot_id: int,
        rescue_ssh_key: str | None,
        timeout: float,
        progress: TaskProgress | None = None,
    ) -> Task:
        """Set the boot, hard reboot and wait for the task; the executor's one call per reboot.

        OVH applies the boot settings of the moment a reboot is *asked*. So a reboot already in
        flight is adopted only when the server's settings already match (a resumed run whose
        earlier attempt set them and rebooted); otherwise it is waited out first, then the boot
        is set and a new reboot asked, so the server never comes up in the wrong mode.
        """
        start = self._clock.monotonic()
        pending = self.in_flight(name, "hardReboot")
        if pending is not None:
            if self._settings_match(name, boot_id, rescue_ssh_key):
                log.info("%s: adopting reboot task %d, boot already %d", name, pending.id, boot_id)
                return self.wait_task(name, pending.id, timeout, progress)
            log.info("%s: waiting out reboot task %d before changing the boot", name, pending.id)
            self.wait_task(name, pending.id, timeout, progress)
        self.set_boot(name, boot_id, rescue_ssh_key)
        started = self.reboot(name)
        remaining = max(0.0, timeout - (self._clock.monotonic() - start))
        return self.wait_task(name, started.id, remaining, progress)

    def _settings_match(self, name: str, boot_id: int, rescue_ssh_key: str | None) -> bool:
        server = self.server(name)
        if server.boot_id != boot_id:
            return False
        return rescue_ssh_key is None or (server.rescue_ssh_key or "") == rescue_ssh_key

    def _start_task(self, name: str, verb: str, function: str, body: Any) -> Task:
        """POST a task-starting route at most a bounded number of times, adopting before each.

        A POST whose answer was lost (5xx, timeout) may still have started the task, and a 409
        says one is running: in both cases the in-flight task is looked up and adopted; the POST
        is repeated only when none exists.
        """
        path = f"{_server_path(name)}/{verb}"
        start = self._clock.monotonic()
        last: ProviderError | None = None
        for attempt in range(1, self.retry.attempts + 1):
            if last is not None and not self._sleep_before_retry(attempt - 1, last, start):
                break
            adopted = self._adopt(name, function)
            if adopted is not None:
                return adopted
            try:
                reply = self._request("POST", path, server=name, body=body)
            except (ProviderTransient, ProviderConflict) as exc:
                log.warning("%s: POST %s failed (attempt %d): %s", name, verb, attempt, exc)
                last = exc
                continue
            task = task_from(reply.value, server=name, query_id=reply.query_id)
            log.info("%s: %s task %d started (query id %s)", name, function, task.id, task.query_id)
            return task
        adopted = self._adopt(name, function)
        if adopted is not None:
            return adopted
        raise last or ProviderError(f"POST {verb} was not attempted", server=name)

    def _adopt(self, name: str, function: str) -> Task | None:
        adopted = self.in_flight(name, function)
        if adopted is not None:
            log.info("%s: adopting %s task %d (%s)", name, function, adopted.id, adopted.status)
        return adopted

    def _sleep_before_retry(self, attempt: int, error: ProviderError, start: float) -> bool:
        """Sleep the policy's wait before another POST; False when the time budget is spent."""
        wait = self.retry.wait_for(attempt, error, self._rng)
        if self._clock.monotonic() - start + wait > self.retry.total_seconds:
            return False
        self._clock.sleep(wait)
        return True

    def in_flight(self, name: str, function: str) -> Task | None:
        """The newest pending task of ``function``, if any.

        A listed task whose details still answer 404 was created moments ago (OVH's task
        details lag the list): it counts as pending, in status ``init``.
        """
        ids = sorted(self.tasks(name, function=function), reverse=True)
        for task_id in ids[:ADOPT_SCAN]:
            try:
                task = self.task(name, task_id)
            except ProviderNotFound:
                return Task(id=task_id, function=function, status="init")
            if task.pending:
                return task
        return None

    # ---- waiting -------------------------------------------------------------------------

    def wait_task(
        self, name: str, task_id: int, timeout: float, progress: TaskProgress | None = None
    ) -> Task:
        """Poll until the task ends; raise TaskFailed if it ends badly, ProviderError on timeout.

        Each poll is one request (the loop is the retry): 404 is tolerated for
        ``task_grace_seconds`` (a fresh task may not be visible yet), transient errors until the
        timeout, with the poll interval doubling while errors last.
        """
        start = self._clock.monotonic()
        last: Task | None = None
        errors = 0
        for _ in range(MAX_POLLS):
            waited = self._clock.monotonic() - start
            try:
                task = self._poll_task(name, task_id)
            except (ProviderNotFound, ProviderTransient) as exc:
                self._tolerate(name, task_id, exc, waited)
                errors += 1
                pause = getattr(exc, "retry_after", None) or 0.0
            else:
                errors, pause, last = 0, 0.0, task
                if progress is not None:
                    progress(task, waited)
                if not task.pending:
                    return self._finished(name, task)
            remaining = timeout - (self._clock.monotonic() - start)
            if remaining <= 0:
                break
            delay = min(self.max_poll_interval, self.poll_interval * 2.0**errors)
            self._clock.sleep(min(remaining, max(delay, pause)))
        raise self._timed_out(name, task_id, timeout, last)

    def _poll_task(self, name: str, task_id: int) -> Task:
        reply = self._request("GET", f"{_server_path(name)}/task/{task_id}", server=name)
        return task_from(reply.value, server=name, query_id=reply.query_id)

    def _tolerate(self, name: str, task_id: int, exc: ProviderError, waited: float) -> None:
        """Re-raise a 404 once the grace period is over; log and swallow the rest."""
        if isinstance(exc, ProviderNotFound) and waited >= self.task_grace_seconds:
            raise exc
        log.info("%s: task %d not readable yet after %.0fs: %s", name, task_id, waited, exc)

    def _finished(self, name: str, task: Task) -> Task:
        if task.status == "done":
            log.info("%s: task %d (%s) done", name, task.id, task.function)
            return task
        comment = f": {task.comment}" if task.comment else ""
        message = f"task {task.id} ({task.function}) ended {task.status}{comment}"
        if task.failed:
            raise TaskFailed(message, server=name, query_id=task.query_id)
        raise ProviderError(f"{message} (unknown status)", server=name, query_id=task.query_id)

    def _timed_out(
        self, name: str, task_id: int, timeout: float, last: Task | None
    ) -> ProviderError:
        function = last.function if last else "function unknown"
        status = last.status if last else "unknown"
        return ProviderError(
            f"timed out after {timeout:g}s waiting for task {task_id} ({function}), "
            f"last status {status}",
            server=name,
            query_id=last.query_id if last else None,
        )


def _server_path(name: str) -> str:
    return f"/dedicated/server/{quote(name, safe='')}"


def _key_note(rescue_ssh_key: str | None) -> str:
    """What happened to the rescue key, for the log, without the key itself."""
    if rescue_ssh_key is None:
        return ""
    return ", rescue ssh key cleared" if rescue_ssh_key == "" else ", rescue ssh key set"
