"""The OVH implementation of :class:`~fleet.provider.base.Provider`.

What it adds to python-ovh, which signs requests but never retries and hides response headers:

- **Classification** at the boundary (:mod:`fleet.provider.ovh_errors`): every error becomes a
  :mod:`fleet.errors` class that names the server, the HTTP status and OVH's query id.
- **Pacing**: one token bucket per provider (one consumer key), shared by every thread (or a
  :class:`~fleet.provider.ratelimit.Pacer` given, shared by every process of a rollout), and
  lookups (server records, hardware, boot ids and details) kept for the provider's life
  (:mod:`fleet.provider.ovh_memo`), so that a rescue round trip costs about 12 calls a host.
- **Retries** with tenacity: reads and the idempotent PUT of boot settings are retried on
  transient errors, with exponential backoff, jitter and ``Retry-After``. The POSTs that start
  work (reboot, reinstall) are never retried blindly: an in-flight task of the same function is
  adopted instead, so a lost answer never becomes a second reboot.
- **Task waits** that ride through OVH's 404/500 on a freshly created task
  (:mod:`fleet.provider.ovh_tasks`).

The house: :mod:`~fleet.provider.ovh_client` builds the ``ovh.Client``,
:mod:`~fleet.provider.ovh_errors` decodes answers and classifies errors,
:mod:`~fleet.provider.ovh_records` maps OVH's models to fleet's records, this module holds the
provider (requests, retries, pacing, adoption) and :mod:`~fleet.provider.ovh_tasks` the waits.

Requests go through ``Client.raw_call`` rather than ``Client.get``/``post``: python-ovh's ``call``
drops the response on success (no query id for a :class:`~fleet.provider.base.Task`), and on a
non-JSON answer raises ``InvalidResponse`` without the HTTP status. ``raw_call`` still signs the
request exactly as ``call`` does; :mod:`~fleet.provider.ovh_errors` decodes and classifies.

One ``ovh.Client`` is shared by all threads: its ``requests.Session`` pools connections
thread-safely in practice, and the one piece of lazy state (``time_delta``, fetched from
``/auth/time`` before the first signed call) is computed once under a lock before any request.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import ovh.exceptions

from fleet.clock import Clock, SystemClock
from fleet.errors import (
    ProviderConflict,
    ProviderError,
    ProviderNotFound,
    ProviderTransient,
    TaskFailed,
)
from fleet.provider.ovh_client import SANDBOX_ENDPOINT, build_client
from fleet.provider.ovh_errors import (
    ApiTransient,
    Response,
    decode_json,
    error_from_exception,
    error_from_response,
    non_json_summary,
)
from fleet.provider.ovh_lookups import Lookups, server_path
from fleet.provider.ovh_records import (
    expect_dict,
    expect_list,
    install_status_from,
    task_from,
)
from fleet.provider.ovh_tasks import (
    STAMP_MARGIN,
    TaskWaits,
    clock_skew,
    next_whole_second,
)
from fleet.provider.ratelimit import DEFAULT_BURST, RetryPolicy, TokenBucket, describe_waits

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from tenacity import Retrying

    from fleet.provider.base import (
        Boot,
        Hardware,
        InstallStatus,
        Pacing,
        Server,
        Task,
        TaskProgress,
    )
    from fleet.provider.ratelimit import Pacer

__all__ = ["SANDBOX_ENDPOINT", "OvhProvider", "RetryPolicy", "build_client"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Reply:
    """A decoded 2xx answer and the query id OVH gave it."""

    value: Any
    query_id: str | None


class OvhProvider:
    """:class:`fleet.provider.base.Provider` over one ``ovh.Client`` (one consumer key).

    Safe to share between threads: the rate limit, the memo of lookups and the client's time
    offset are guarded by locks. One provider serves a whole rollout (every host's thread), so
    its token bucket paces them all together.
    """

    def __init__(
        self,
        client: ovh.Client,
        *,
        rate_limit_per_minute: float = 60.0,
        burst: int = DEFAULT_BURST,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        task_grace_seconds: float = 30.0,
        poll_interval: float = 5.0,
        max_poll_interval: float = 30.0,
        rng: random.Random | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        self._client = client
        self._clock: Clock = clock or SystemClock()
        self.retry = retry or RetryPolicy()
        self._waits = TaskWaits(
            self._poll_task,
            self._clock,
            grace_seconds=task_grace_seconds,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
        )
        self._rng = rng or random.Random()
        self.pacer: Pacer = pacer or TokenBucket(
            rate_per_minute=rate_limit_per_minute,
            burst=burst,
            monotonic=self._clock.monotonic,
            sleep=self._clock.sleep,
        )
        self._time_lock = threading.Lock()
        self._time_ready = False
        self._lookups = Lookups(self._get_value)

    def pacing(self) -> str | None:
        """What the rate limit holds back now, when a call has waited a second or more."""
        return describe_waits(self.pacer)

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
        self.pacer.acquire()
        try:
            response: Response = self._client.raw_call(method, target, data=body)
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
            self.pacer.pause(min(float(retry_after), self.retry.total_seconds))

    def _retrying(self, server: str | None, action: str) -> Retrying:
        """Retry on :class:`ProviderTransient` within the policy's attempts and total time."""
        return self.retry.retrying(
            f"{server or '-'}: {action}", self._clock.monotonic, self._clock.sleep, self._rng
        )

    def _get_value(self, path: str, server: str, query: Mapping[str, str] | None) -> Any:
        return self._get(path, server=server, query=query).value

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
        return self._lookups.server(name)

    def hardware(self, name: str) -> Hardware:
        return self._lookups.hardware(name)

    def boots(self, name: str, boot_type: str | None = None) -> list[Boot]:
        return self._lookups.boots(name, boot_type)

    def rescue_boot(self, name: str) -> Boot:
        return self._lookups.rescue_boot(name)

    def disk_boot(self, name: str) -> Boot:
        return self._lookups.disk_boot(name)

    def tasks(self, name: str, function: str | None = None, status: str | None = None) -> list[int]:
        query = {key: value for key, value in (("function", function), ("status", status)) if value}
        reply = self._get(f"{server_path(name)}/task", server=name, query=query or None)
        return [int(task_id) for task_id in expect_list(reply.value, server=name, what="task ids")]

    def task(self, name: str, task_id: int) -> Task:
        reply = self._get(f"{server_path(name)}/task/{task_id}", server=name)
        return task_from(reply.value, server=name, query_id=reply.query_id)

    def compatible_templates(self, name: str) -> list[str]:
        reply = self._get(f"{server_path(name)}/install/compatibleTemplates", server=name)
        templates = expect_dict(reply.value, server=name, what="compatible templates")
        names = expect_list(templates.get("ovh") or [], server=name, what="templates")
        return [str(template) for template in names]

    def install_status(self, name: str) -> InstallStatus | None:
        """None when no installation runs (OVH answers 404)."""
        try:
            reply = self._get(f"{server_path(name)}/install/status", server=name)
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
        path = server_path(name)
        retrying = self._retrying(name, f"PUT {path}")
        try:
            retrying(self._request, "PUT", path, server=name, body=body)
        except ProviderError:
            self._lookups.forget_server(name)  # the PUT may or may not have landed
            raise
        self._lookups.note_boot(name, boot_id, rescue_ssh_key)
        log.info("%s: boot set to %d%s", name, boot_id, _key_note(rescue_ssh_key))

    def usage(self) -> Pacing:
        """Calls made through this provider and the time threads waited on its rate limit."""
        return self.pacer.usage()

    def reboot(self, name: str, since: datetime | None = None, *, fresh: bool = False) -> Task:
        """Hard reboot; adopts a ``hardReboot`` task instead of starting a second one.

        ``since``: adopt only a task OVH created at or after it (see :meth:`_start_task`).
        ``fresh``: ``since`` is the moment the caller journaled this very request, having found
        no task of an earlier one: nothing is looked up before the first POST (one call less).
        """
        return self._start_task(name, "reboot", "hardReboot", None, since, fresh=fresh)

    def reinstall(self, name: str, request: dict[str, Any], since: datetime | None = None) -> Task:
        """``POST .../reinstall``; adopts a ``reinstallServer`` task as :meth:`reboot` does. The
        Task comes from the short reply (taskId, function, status, comment, dates)."""
        self._lookups.forget_server(name)  # a reinstall changes the server's settings under us
        return self._start_task(name, "reinstall", "reinstallServer", request, since)

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

    def _start_task(
        self,
        name: str,
        verb: str,
        function: str,
        body: Any,
        since: datetime | None,
        *,
        fresh: bool = False,
    ) -> Task:
        """POST a task-starting route at most a bounded number of times, adopting before each.

        A POST whose answer was lost (5xx, timeout) may still have started the task, and a 409
        says one is running: in both cases the task is looked up and adopted; the POST is
        repeated only when none exists. Without ``since`` any task still running is adopted.
        With ``since``, only a task created at or after it (any status), by OVH's own dates;
        one still running from before is waited out, then the POST repeated; and the POST is
        sent once OVH's clock is past ``since``'s second (OVH dates tasks to the second), so
        the task it starts is always recognised as created since.
        """
        path = f"{server_path(name)}/{verb}"
        after = self._api_time(name, since) if since is not None else None
        start = self._clock.monotonic()
        last: ProviderError | None = None
        for attempt in range(1, self.retry.attempts + 1):
            if last is not None and not self._sleep_before_retry(attempt - 1, last, start):
                break
            # A fresh ``since``: only this request could have created a task since (one running
            # from before is OVH's 409, handled below), so the first POST adopts nothing.
            adopted = None if fresh and attempt == 1 else self._adopt(name, function, after)
            if adopted is not None:
                return adopted
            if after is not None:
                self._sleep_past(after)
            try:
                reply = self._request("POST", path, server=name, body=body)
            except (ProviderTransient, ProviderConflict) as exc:
                log.warning("%s: POST %s failed (attempt %d): %s", name, verb, attempt, exc)
                last = exc
                if after is not None and isinstance(exc, ProviderConflict):
                    self._wait_out_older(name, function, after)
                continue
            task = task_from(reply.value, server=name, query_id=reply.query_id)
            log.info("%s: %s task %d started (query id %s)", name, function, task.id, task.query_id)
            return task
        adopted = self._adopt(name, function, after)
        if adopted is not None:
            return adopted
        raise last or ProviderError(f"POST {verb} was not attempted", server=name)

    def _adopt(self, name: str, function: str, after: datetime | None) -> Task | None:
        if after is None:
            adopted = self.in_flight(name, function)
        else:
            adopted = self._waits.created_since(self, name, function, after)
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

    def _wait_out_older(self, name: str, function: str, after: datetime) -> None:
        """A task created before ``after`` still runs (the 409): wait for its end, whatever it
        is, before asking again (it may carry boot settings older than the caller's)."""
        older = self.in_flight(name, function)
        if older is None or (older.start_date is not None and older.start_date >= after):
            return
        log.info("%s: waiting out %s task %d, asked before this request", name, function, older.id)
        try:
            self.wait_task(name, older.id, self.retry.total_seconds)
        except TaskFailed:
            log.info("%s: %s task %d ended badly; asking for ours", name, function, older.id)

    def in_flight(self, name: str, function: str, ids: Sequence[int] | None = None) -> Task | None:
        """The newest pending task of ``function`` among the newest few (of ``ids`` when given),
        if any; a task whose details never appear within ``task_grace_seconds`` is not adopted."""
        return self._waits.pending(self, name, function, ids)

    def task_since(self, name: str, function: str, since: datetime) -> Task | None:
        """The newest task of ``function`` created at or after ``since`` by OVH's own
        ``startDate`` (any status), among the newest few; None when there is none."""
        return self._waits.created_since(self, name, function, self._api_time(name, since))

    def _api_time(self, name: str, at: datetime) -> datetime:
        """``at`` (aware) on OVH's clock: shifted by python-ovh's measured offset when the
        offset is beyond its own rounding (whole seconds), else taken as is."""
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(f"since must be timezone-aware, not {at!r}")
        self._ensure_time_delta(name)
        skew = clock_skew(self._client.time_delta)
        return at.astimezone(UTC) + timedelta(seconds=skew)

    def _sleep_past(self, after: datetime) -> None:
        """Sleep until OVH's clock is in a whole second at or after ``after``."""
        skew = clock_skew(self._client.time_delta)
        now = self._clock.now().astimezone(UTC) + timedelta(seconds=skew)
        wait = (next_whole_second(after) - now).total_seconds()
        if wait > 0:
            self._clock.sleep(wait + STAMP_MARGIN)

    # ---- waiting -------------------------------------------------------------------------

    def wait_task(
        self, name: str, task_id: int, timeout: float, progress: TaskProgress | None = None
    ) -> Task:
        """Poll until the task ends; raise TaskFailed if it ends badly, ProviderError on timeout.

        Each poll is one request (the loop is the retry): 404 is tolerated for
        ``task_grace_seconds`` (a fresh task may not be visible yet), transient errors until the
        timeout; the poll interval doubles after every poll, up to ``max_poll_interval``.
        """
        return self._waits.wait(name, task_id, timeout, progress)

    def peek_task(self, name: str, task_id: int) -> Task | None:
        """One read of the task, never retried: None while OVH does not answer it (the 404 of a
        fresh task, a transient error)."""
        try:
            return self._poll_task(name, task_id)
        except (ProviderNotFound, ProviderTransient) as exc:
            log.info("%s: task %d not readable now: %s", name, task_id, exc)
            return None

    def task_outcome(self, name: str, task_id: int) -> Task | None:
        """The task as OVH reports it now, read again through its 404s for the grace period
        and through transient errors by the retry policy; None when it never answers."""
        try:
            return self._waits.readable(self.task, name, task_id)
        except ProviderError as exc:
            log.warning("%s: task %d: no status read: %s", name, task_id, exc)
            return None

    def _poll_task(self, name: str, task_id: int) -> Task:
        reply = self._request("GET", f"{server_path(name)}/task/{task_id}", server=name)
        return task_from(reply.value, server=name, query_id=reply.query_id)


def _key_note(rescue_ssh_key: str | None) -> str:
    """What happened to the rescue key, for the log, without the key itself."""
    if rescue_ssh_key is None:
        return ""
    return ", rescue ssh key cleared" if rescue_ssh_key == "" else ", rescue ssh key set"
