"""The sandbox's fake OVH dedicated-server API: real HTTP on loopback, signed like OVH.

An unmodified ``ovh.Client`` talks to it once its URL is registered as a named endpoint::

    api = FakeOvhApi(servers, creds, control_token="t")
    url = api.start()                       # http://127.0.0.1:PORT/1.0
    ovh.client.ENDPOINTS["fleet-sandbox"] = url
    client = ovh.Client("fleet-sandbox", creds.application_key, ...)

Every request is checked as OVH checks it: ``X-Ovh-Signature`` is ``"$1$" + sha1(secret +
consumer key + method + full URL + body + timestamp)``, the full URL being rebuilt from the
fake's own base URL and the path and query exactly as sent. Errors come in the shape
configured (current ``class`` shape, legacy ``errorCode`` shape or message only); the
authentication errors always use the legacy shape with the ``errorCode`` python-ovh maps.

Chaos (``fleet.sandbox.ovh_chaos``) is set in process through :attr:`FakeOvhApi.chaos`, or over
HTTP under ``/_sandbox/`` with the ``X-Sandbox-Token`` header, for a test that talks to a
sandbox running in another process:

- ``GET /_sandbox/state``: chaos knobs, error shape, servers' modes, running tasks, timings,
  and the calls answered so far per server and route (:mod:`~fleet.sandbox.ovh_calls`)
- ``POST /_sandbox/chaos``: add knobs (JSON as in the state's ``chaos``; ``error_shape`` too)
- ``POST /_sandbox/chaos/reset``: remove every knob, restore the initial error shape
- ``POST /_sandbox/timings``: task timings for new tasks (fields of ``TaskTimings``)

The fake's house: this module serves (the fake, its control surface, query ids);
:mod:`~fleet.sandbox.ovh_routes` maps routes to :mod:`~fleet.sandbox.ovh_model` (the state and
its state machine), whose tasks are in :mod:`~fleet.sandbox.ovh_tasks`, servers' boots and
hardware in :mod:`~fleet.sandbox.ovh_catalogue`, request checks and error answers in
:mod:`~fleet.sandbox.ovh_checks`; :mod:`~fleet.sandbox.ovh_auth` checks keys and signatures,
:mod:`~fleet.sandbox.ovh_http` is the HTTP server; :mod:`~fleet.sandbox.ovh_chaos` the knobs.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, get_args
from urllib.parse import parse_qs, urlsplit

from fleet.clock import Clock, SystemClock
from fleet.sandbox.ovh_auth import AuthError, Credentials, Keyring, signature
from fleet.sandbox.ovh_calls import CallCounter
from fleet.sandbox.ovh_catalogue import Mode, ServerSpec
from fleet.sandbox.ovh_chaos import Chaos, ChaosConfigError, ChaosRule, ceil_seconds
from fleet.sandbox.ovh_checks import Json, OvhApiError, bad_request
from fleet.sandbox.ovh_http import (
    PROXY_502,
    ErrorShape,
    HttpServer,
    Response,
    error_body,
    json_response,
    phrase,
)
from fleet.sandbox.ovh_model import OvhModel, ServerSnapshot
from fleet.sandbox.ovh_routes import Router
from fleet.sandbox.ovh_tasks import PowerEvent, TaskTimings, timings_from_json

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from email.message import Message

__all__ = [
    "Credentials",
    "ErrorShape",
    "FakeOvhApi",
    "PowerEvent",
    "PowerHook",
    "ServerSpec",
    "TaskTimings",
    "error_body",
    "signature",
]

log = logging.getLogger(__name__)

#: Called from the ticker thread with a server name and what happened to its power.
PowerHook = Callable[[str, PowerEvent], None]

BASE_PATH = "/1.0"
CONTROL_PATH = "/_sandbox"
TOKEN_HEADER = "X-Sandbox-Token"


class FakeOvhApi:
    """A faithful fake of OVH's ``/dedicated/server`` API, served over real HTTP on loopback.

    Args:
        servers: the servers it knows.
        credentials: accepted keys (one set or several; more with :meth:`add_credentials`).
        timings: task phase durations; :meth:`TaskTimings.fast` for tests.
        on_power: called from the ticker thread with each server's :class:`PowerEvent`.
        control_token: enables the ``/_sandbox/`` control surface with this token.
        seed: seeds boot ids, task ids and chaos draws, for replayable runs.
        error_shape: shape of non-authentication errors: ``class``, ``legacy`` or ``message``.
        clock: time source (wall time for ``/auth/time`` and dates, monotonic for tasks).
        max_time_skew: seconds a signed request's timestamp may differ from the fake's time.
        sleep: how chaos latency waits (injectable to observe it).
    """

    def __init__(
        self,
        servers: Sequence[ServerSpec],
        credentials: Credentials | Sequence[Credentials],
        *,
        timings: TaskTimings | None = None,
        on_power: PowerHook | None = None,
        control_token: str | None = None,
        seed: int | None = None,
        error_shape: ErrorShape = "class",
        clock: Clock | None = None,
        max_time_skew: int = 180,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        _check_shape(error_shape)
        self._clock = clock or SystemClock()
        rng = random.Random(seed)
        self.chaos = Chaos(random.Random(rng.getrandbits(64)), self._clock.monotonic)
        self.model = OvhModel(
            servers,
            clock=self._clock,
            rng=random.Random(rng.getrandbits(64)),
            timings=timings,
            chaos=self.chaos,
        )
        self._keyring = Keyring()
        for creds in [credentials] if isinstance(credentials, Credentials) else credentials:
            self._keyring.add(creds)
        self._on_power = on_power
        self._token = control_token
        self._initial_shape: ErrorShape = error_shape
        self._error_shape: ErrorShape = error_shape
        self._skew = max_time_skew
        self._sleep = sleep
        self._router = Router(self.model)
        self._query_ids = _QueryIds(random.Random(rng.getrandbits(64)))
        #: Every API call answered, per server and route (:mod:`~fleet.sandbox.ovh_calls`).
        self.calls = CallCounter()
        self._http: HttpServer | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._tick_lock = threading.Lock()
        self._origin = ""

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0: any free port) and run the task ticker; the base URL."""
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the fake OVH API serves on loopback only, not {host}")
        if self._http is not None:
            raise RuntimeError("the fake OVH API is already started")
        self._http = HttpServer((host, port), self)
        bound_host, bound_port = self._http.server_address[:2]
        self._origin = f"http://{bound_host!s}:{bound_port}"
        self._stop.clear()
        self._threads = [
            threading.Thread(
                target=self._http.serve_forever,
                kwargs={"poll_interval": 0.05},  # how long stop() waits for the server loop
                name="ovh-api-http",
                daemon=True,
            ),
            threading.Thread(target=self._tick_loop, name="ovh-api-ticker", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        log.info("fake OVH API serving at %s", self.url)
        return self.url

    def stop(self) -> None:
        """Stop serving, close open connections and stop the ticker. Idempotent."""
        self._stop.set()
        if self._http is not None:
            self._http.shutdown()
            self._http.drop_connections()
            self._http.server_close()
            self._http = None
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []

    def __enter__(self) -> FakeOvhApi:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:PORT/1.0``) to register in ``ovh.client.ENDPOINTS``."""
        if not self._origin:
            raise RuntimeError("the fake OVH API is not started")
        return self._origin + BASE_PATH

    # -- in-process controls and views -------------------------------------------------------

    def add_credentials(self, credentials: Credentials) -> None:
        self._keyring.add(credentials)

    def set_power_hook(self, hook: PowerHook | None) -> None:
        """Set (or clear) the hook the ticker calls with each power event."""
        self._on_power = hook

    def set_error_shape(self, shape: ErrorShape) -> None:
        _check_shape(shape)
        self._error_shape = shape

    @property
    def error_shape(self) -> ErrorShape:
        return self._error_shape

    def set_chaos(self, settings: Mapping[str, Any]) -> None:
        """Add chaos knobs from their JSON form, as ``POST /_sandbox/chaos`` takes them.

        Keys: ``rules``, ``task_failures``, ``early_404``, ``rate_limit_per_minute`` (see
        :meth:`Chaos.configure`) and ``error_shape``. Raises ``ChaosConfigError`` when malformed.
        """
        knobs = dict(settings)
        shape = knobs.pop("error_shape", None)
        if shape is not None:
            _check_shape(shape)
        self.chaos.configure(knobs)
        if shape is not None:
            self._error_shape = shape

    def reset_chaos(self) -> None:
        """No more chaos, and the error shape given at construction."""
        self.chaos.reset()
        self._error_shape = self._initial_shape

    def set_timings(self, timings: TaskTimings) -> None:
        self.model.set_timings(timings)

    def server_mode(self, name: str) -> Mode:
        """``disk``, ``rescue``, ``ipxe`` (on, no SSH) or ``off``."""
        return self.model.snapshot(name).mode

    def snapshot(self, name: str) -> ServerSnapshot:
        return self.model.snapshot(name)

    def task(self, name: str, task_id: int) -> Json:
        """A task as ``GET .../task/{id}`` answers it, without chaos."""
        return self.model.task_json(name, task_id, api_get=False)

    def tick(self) -> None:
        """Advance tasks now and deliver the power events (the ticker does it periodically).

        Requests wait while a tick runs: nobody may see a task ``done`` before its server's
        power events were delivered (a real server is up when OVH says the reboot is done).
        """
        with self._tick_lock:
            for name, event in self.model.tick():
                self._deliver(name, event)

    def _tick_loop(self) -> None:
        while not self._stop.wait(max(0.001, self.model.timings.tick)):
            try:
                self.tick()
            except Exception:
                log.exception("fake OVH API: task ticker failed; it keeps running")

    def _deliver(self, name: str, event: PowerEvent) -> None:
        hook = self._on_power
        if hook is None:
            return
        try:
            hook(name, event)
        except Exception:
            log.exception("server %s: power hook failed on %s/%s", name, event.kind, event.mode)

    # -- requests --------------------------------------------------------------------------------

    def respond(self, method: str, raw_path: str, headers: Message, body: str) -> Response:
        """The answer to one HTTP request (called from the server's handler threads)."""
        split = urlsplit(raw_path)
        if split.path == CONTROL_PATH or split.path.startswith(CONTROL_PATH + "/"):
            response = self._control(method, split.path, headers, body)
        elif split.path == BASE_PATH or split.path.startswith(BASE_PATH + "/"):
            path = split.path[len(BASE_PATH) :]
            response = self._api(method, raw_path, path, headers, body)
        else:
            response = self._error(OvhApiError(404, f"Got an invalid (or empty) URL: {split.path}"))
        response.headers["X-Ovh-QueryId"] = self._query_ids.next(self._clock)
        return response

    def _api(self, method: str, raw_path: str, path: str, headers: Message, body: str) -> Response:
        came = self.calls.now()  # the rate calls come at: before any work on the answer
        response = self._answer(method, raw_path, path, headers, body)
        self.calls.count(method, path, response.status, came)
        return response

    def _answer(
        self, method: str, raw_path: str, path: str, headers: Message, body: str
    ) -> Response:
        query = urlsplit(raw_path).query
        effects = self.chaos.for_request(method, path)
        if effects.latency > 0:
            self._sleep(effects.latency)
        failure = effects.failure
        if failure is not None and failure.kind == "502":
            return Response(502, PROXY_502.encode(), content_type="text/html")
        try:
            if method == "GET" and path.rstrip("/") == "/auth/time":
                return self._failure(failure) or json_response(200, self._now())
            url = self._origin + raw_path
            consumer = self._keyring.verify(method, url, body, headers, self._now(), self._skew)
            refused = self._throttled(consumer) or self._failure(failure)
            if refused is not None:
                return refused
            answer = self._route(method, path, query, body)
            if failure is not None and failure.kind == "lost":
                return self._error(OvhApiError(500, "Internal server error"))
            return answer
        except AuthError as exc:
            return exc.response()
        except OvhApiError as exc:
            return self._error(exc)

    def _route(self, method: str, path: str, query_string: str, body: str) -> Response:
        parsed = parse_qs(query_string, keep_blank_values=True)
        query = {key: values[-1] for key, values in parsed.items()}
        payload = None
        if method in ("PUT", "POST") and body.strip():
            try:
                payload = json.loads(body)
            except ValueError as exc:
                raise bad_request(f"Invalid JSON body: {exc}") from exc
        with self._tick_lock:
            answer = self._router.dispatch(method, path, query, payload)
        return json_response(200, answer)

    def _throttled(self, consumer: str) -> Response | None:
        wait = self.chaos.throttle(consumer)
        if wait is None:
            return None
        response = self._error(OvhApiError(429, "Too many requests, slow down"))
        response.headers["Retry-After"] = str(ceil_seconds(wait))
        return response

    def _failure(self, rule: ChaosRule | None) -> Response | None:
        """The answer a chaos rule puts in place of the request's (None: carry it out)."""
        if rule is None or rule.kind == "lost":
            return None
        if rule.kind == "error":
            status = rule.http_status or 500
            message = rule.message or phrase(status)
            return self._error(OvhApiError(status, message, error_class=rule.error_class))
        if rule.kind == "429":
            response = self._error(OvhApiError(429, "Too many requests"))
            if rule.retry_after is not None:
                response.headers["Retry-After"] = str(rule.retry_after)
            return response
        return self._error(OvhApiError(500, "Internal server error"))

    def _error(self, exc: OvhApiError) -> Response:
        body = error_body(self._error_shape, exc.status, exc.message, exc.error_class, exc.details)
        return json_response(exc.status, body)

    def _now(self) -> int:
        return int(self._clock.now().timestamp())

    # -- the control surface -------------------------------------------------------------------

    def _control(self, method: str, path: str, headers: Message, body: str) -> Response:
        if self._token is None:
            return json_response(404, {"message": "the sandbox control surface is disabled"})
        if not hmac.compare_digest(headers.get(TOKEN_HEADER, ""), self._token):
            return json_response(403, {"message": f"missing or wrong {TOKEN_HEADER}"})
        try:
            data = json.loads(body) if body.strip() else {}
            return self._control_call(method, path.rstrip("/"), data)
        except (ValueError, ChaosConfigError, TypeError) as exc:
            return json_response(400, {"message": str(exc)})
        except OvhApiError as exc:
            return json_response(exc.status, {"message": exc.message})

    def _control_call(self, method: str, path: str, data: Any) -> Response:
        call = (method, path[len(CONTROL_PATH) :])
        if call == ("GET", "/state"):
            return json_response(200, self.control_state())
        if call == ("POST", "/chaos"):
            if not isinstance(data, dict):
                raise ChaosConfigError("expected a JSON object")
            self.set_chaos(data)
            return json_response(200, self.control_state())
        if call == ("POST", "/chaos/reset"):
            self.reset_chaos()
            return json_response(200, self.control_state())
        if call == ("POST", "/timings"):
            self.set_timings(timings_from_json(self.model.timings, data))
            return json_response(200, self.control_state())
        return json_response(404, {"message": f"no control route {method} {path}"})

    def control_state(self) -> Json:
        """What ``GET /_sandbox/state`` answers."""
        return {
            "chaos": self.chaos.snapshot(),
            "error_shape": self._error_shape,
            "calls": self.calls.snapshot().to_json(),
            **self.model.state_json(),
        }


def _check_shape(shape: str) -> None:
    if shape not in get_args(ErrorShape):
        raise ChaosConfigError(
            f"unknown error shape {shape!r}; expected one of {get_args(ErrorShape)}"
        )


class _QueryIds:
    """``X-Ovh-QueryId`` values shaped like OVH's (``EU.ext-3.<hex time>.<n>.<uuid>``)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._lock = threading.Lock()
        self._count = 0

    def next(self, clock: Clock) -> str:
        with self._lock:
            self._count += 1
            ident = uuid.UUID(int=self._rng.getrandbits(128), version=4)
            count = self._count
        return f"EU.ext-3.{int(clock.now().timestamp()):08x}.{count}.{ident}"
