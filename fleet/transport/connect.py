"""Opening connections: one ``fabric.Connection`` per host, fleet's host-key policy, retries.

Every connection fleet makes is a Fabric ``Connection`` (users' Python stages get it as is),
opened here rather than by Fabric's defaults:

* one Fabric ``Config`` for the whole process, built on first use with no file or environment
  loading (Invoke's per-object config merge is the costly part of a ``Connection``);
* the TCP socket made here (``TCP_NODELAY``: each command is a few small request/answer
  messages, and Nagle's algorithm meeting the peer's delayed ACK costs tens of ms each), or a
  ``direct-tcpip`` channel of the bastion's own ``Connection`` (Fabric's ``gateway``), which is
  opened and pinned like any host, once per bastion and shared by the hosts behind it;
* :class:`~fleet.transport.hostkeys.PinningPolicy` as paramiko's host key policy, with the
  pinned key's algorithms offered first;
* transient failures (refused, timed out, banner or handshake cut short) retried with backoff
  and jitter through tenacity, bounded in attempts and time; authentication failures and key
  mismatches never are. Every paramiko or socket error becomes a :mod:`fleet.errors` class.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import paramiko

from fleet.clock import Clock
from fleet.errors import HostKeyMismatch, TransportError, Unreachable
from fleet.transport.base import Endpoint, HostKeys, KeyExpectation
from fleet.transport.hostkeys import PinningPolicy
from fleet.transport.keys import Credentials, KeyRing
from fleet.transport.logs import log_channel

if TYPE_CHECKING:
    import fabric
    from tenacity import RetryCallState

    from fleet.transport.fabricconn import FleetConnection

log = logging.getLogger(__name__)

#: paramiko's own default receive window (2 MiB): large enough that a command's output
#: streams without stalling on window adjustments, small enough to bound buffered memory.
DEFAULT_WINDOW_SIZE = paramiko.common.DEFAULT_WINDOW_SIZE
_DISK = KeyExpectation()


@dataclass(frozen=True)
class ConnectRetry:
    """How transient connect failures are retried: bounded in attempts and in total time.

    The wait before attempt n+1 is ``initial * 2**(n-1)`` capped at ``maximum``, plus a
    random jitter in ``[0, jitter]`` so that many hosts retrying do not move in lockstep.
    """

    attempts: int = 5
    total: float = 60.0
    initial: float = 0.5
    maximum: float = 8.0
    jitter: float = 0.5


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt: the host may not be listening or answering *yet*."""
    if isinstance(exc, paramiko.AuthenticationException | TransportError):
        return False
    if isinstance(exc, paramiko.SSHException) and "authentication" in str(exc).lower():
        return False  # "No authentication methods available": no key, nothing to retry
    return isinstance(exc, OSError | EOFError | paramiko.SSHException)


class _Fabric:
    """Fabric, imported on first use, with the one ``Config`` every connection shares."""

    _lock = threading.Lock()
    _made: tuple[type[FleetConnection], Any] | None = None

    @classmethod
    def get(cls) -> tuple[type[FleetConnection], Any]:
        with cls._lock:
            if cls._made is None:
                from fleet.transport import fabricconn

                cls._made = (fabricconn.FleetConnection, fabricconn.shared_config())
            return cls._made


def fabric_config() -> Any:
    """The ``fabric.Config`` shared by every connection of this process."""
    return _Fabric.get()[1]


@dataclass(frozen=True)
class DialSettings:
    """Connector-wide settings of :class:`Dialer`."""

    connect_timeout: float = 10.0
    retry: ConnectRetry | None = ConnectRetry()
    trust_on_first_use: bool = True
    keepalive: int = 0
    window_size: int = DEFAULT_WINDOW_SIZE


@dataclass
class Opened:
    """A connection just opened, and the key its host presented."""

    connection: fabric.Connection
    presented: tuple[str, str] | None
    attempts: int


class Dialer:
    """Opens authenticated, host-key-checked Fabric connections. Safe to share between threads.

    Bastions (``Endpoint.gateway``) get one connection each, opened on first need with the
    connector's own host keys (role "disk", under the bastion's name) and reopened when it
    dropped; the hosts behind one bastion multiplex their channels over it.
    """

    def __init__(self, keyring: KeyRing, settings: DialSettings, clock: Clock, host_keys: HostKeys):
        self._keys = keyring
        self._settings = settings
        self._clock = clock
        self._host_keys = host_keys
        self._gateways: dict[Endpoint, fabric.Connection] = {}
        self._gateway_lock = threading.Lock()

    def credentials(self, endpoint: Endpoint) -> Credentials:
        return self._keys.credentials(endpoint.host, endpoint.key_file)

    def open(
        self,
        endpoint: Endpoint,
        expect: KeyExpectation,
        host_keys: HostKeys,
        *,
        retry: ConnectRetry | None,
        connect_timeout: float | None = None,
    ) -> Opened:
        """Connect (with retries), check the host key, authenticate, pin; or raise.

        Raises:
            HostKeyMismatch: the host (or its bastion) presented an unexpected key.
            Unreachable: refused, timed out or authentication failed, after the retries.
            ConfigError: no usable key.
        """
        credentials = self.credentials(endpoint)
        timeout = connect_timeout or endpoint.connect_timeout or self._settings.connect_timeout
        tries = _Tries()

        def attempt() -> Opened:
            tries.count += 1
            return self._attempt(endpoint, expect, host_keys, credentials, timeout, tries.count)

        try:
            return _with_retries(retry, self._clock, endpoint.host, attempt)
        except TransportError:
            raise
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise connect_error(endpoint, credentials, exc, tries.count) from _cause(exc)

    def _attempt(
        self,
        endpoint: Endpoint,
        expect: KeyExpectation,
        host_keys: HostKeys,
        credentials: Credentials,
        timeout: float,
        attempts: int,
    ) -> Opened:
        connection_class, config = _Fabric.get()
        policy = PinningPolicy(
            endpoint.host, expect, host_keys, trust_on_first_use=self._settings.trust_on_first_use
        )
        gateway = self._gateway(endpoint) if endpoint.gateway else None
        kwargs, agent = credentials.connect_kwargs()
        kwargs.update(
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            transport_factory=self._transport_factory(policy, endpoint.host),
        )
        if gateway is None:
            kwargs["sock"] = _tcp(endpoint, timeout)
        connection = connection_class(
            endpoint.address,
            user=endpoint.user,
            port=endpoint.port,
            config=config,
            gateway=gateway or False,
            connect_kwargs=kwargs,
        )
        connection.client.set_missing_host_key_policy(policy)
        connection.sudo_source, connection.host_name = endpoint.sudo_password, endpoint.host
        try:
            connection.open()
            policy.pin()
        except BaseException:
            connection.close()
            if gateway is None:
                kwargs["sock"].close()
            raise
        finally:
            if agent is not None:
                agent.close()
        if self._settings.keepalive:
            connection.transport.set_keepalive(self._settings.keepalive)
        return Opened(connection, policy.presented, attempts)

    def _transport_factory(
        self, policy: PinningPolicy, host: str
    ) -> Callable[..., paramiko.Transport]:
        window = self._settings.window_size

        def make(sock: Any, **kwargs: Any) -> paramiko.Transport:
            transport = _Transport(sock, default_window_size=window, **kwargs)
            transport.set_log_channel(log_channel(host))  # its log records name the host
            options = transport.get_security_options()
            options.key_types = policy.preferred(list(options.key_types))
            options.ciphers = _aead_first(options.ciphers)
            return transport

        return make

    def _gateway(self, endpoint: Endpoint) -> fabric.Connection:
        """The open connection to ``endpoint``'s bastion (opened or reopened as needed)."""
        gateway = endpoint.gateway
        assert gateway is not None
        with self._gateway_lock:
            connection = self._gateways.get(gateway)
            if connection is not None and connection.is_connected:
                return connection
            try:
                opened = self.open(gateway, _DISK, self._host_keys, retry=self._settings.retry)
            except TransportError as exc:
                raise _through(endpoint, gateway, exc) from exc
            connection = opened.connection
            # Fabric opens each direct-tcpip channel with the transport's channel timeout.
            connection.transport.channel_timeout = gateway.connect_timeout or (
                self._settings.connect_timeout
            )
            self._gateways[gateway] = connection
            return connection

    def close(self) -> None:
        """Close the bastion connections (hosts' own connections belong to their transports)."""
        with self._gateway_lock:
            gateways, self._gateways = list(self._gateways.values()), {}
        for connection in gateways:
            connection.close()


class _Transport(paramiko.Transport):
    """paramiko's transport, its thread waking once a second rather than ten times.

    The thread reads its socket with a timeout only to notice, between packets, that the
    transport was closed (and to send keepalives); a closing fleet never waits for it. Ten wakes
    a second per connection, each taking the GIL, cost nothing at 50 hosts but, at 2,000 hosts
    in flight, 20,000 thread switches a second that left the CPU to the kernel's scheduler.
    """

    _active_check_timeout = 1.0


def _aead_first(offered: Sequence[str]) -> tuple[str, ...]:
    """``offered`` with AES-GCM first, as OpenSSH ranks its AEAD ciphers first.

    Authenticated encryption needs no separate MAC: paramiko then skips, for every packet, an
    HMAC and its pure-Python constant-time comparison, the largest client CPU cost of a short
    command. Servers without AES-GCM (OpenSSH before 6.2) still agree on another cipher.
    """
    aead = tuple(c for c in ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com") if c in offered)
    return aead + tuple(c for c in offered if c not in aead)


class _Tries:
    count = 0


def _tcp(endpoint: Endpoint, timeout: float) -> socket.socket:
    sock = socket.create_connection((endpoint.address, endpoint.port), timeout=timeout)
    # Each command is a few small request/answer messages: without this, Nagle's algorithm
    # meets the peer's delayed ACK and every command waits tens of ms.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _with_retries(
    policy: ConnectRetry | None, clock: Clock, host: str, attempt: Callable[[], Opened]
) -> Opened:
    """``attempt()``, retried by tenacity under ``policy`` when it fails transiently.

    The first attempt runs before tenacity is even imported (it pulls asyncio in, tens of ms
    of start-up that a run whose hosts all answer at once need not pay); tenacity then drives
    the rest, the first failure included in its count.
    """
    if policy is None or policy.attempts <= 1:
        return attempt()
    started = clock.monotonic()
    try:
        return attempt()
    except BaseException as exc:
        if not is_transient(exc):
            raise
        first = exc
    from tenacity import Retrying, retry_if_exception, wait_exponential, wait_random

    deadline = started + policy.total
    backoff = wait_exponential(multiplier=policy.initial, max=policy.maximum) + wait_random(
        0, policy.jitter
    )

    def wait(state: RetryCallState) -> float:
        return min(backoff(state), max(0.0, deadline - clock.monotonic()))

    def stop(state: RetryCallState) -> bool:
        return state.attempt_number >= policy.attempts or clock.monotonic() >= deadline

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        pause = state.next_action.sleep if state.next_action else 0.0
        log.info(
            "%s: connect attempt %d failed (%s); retrying in %.1f s",
            host,
            state.attempt_number,
            exc,
            pause,
        )

    retrying = Retrying(
        stop=stop,
        wait=wait,
        retry=retry_if_exception(is_transient),
        sleep=clock.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    calls = iter([first])

    def replay_then_attempt() -> Opened:
        """The first call re-raises the failure already seen, so tenacity counts it."""
        seen = next(calls, None)
        if seen is not None:
            raise seen
        return attempt()

    return retrying(replay_then_attempt)


def _cause(exc: BaseException) -> BaseException:
    """paramiko wraps refusals of every address in one error: report the first."""
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError) and exc.errors:
        inner = next(iter(exc.errors.values()))
        return inner if isinstance(inner, BaseException) else exc
    return exc


def connect_error(
    ep: Endpoint, credentials: Credentials, exc: BaseException, attempts: int
) -> Unreachable:
    """The :class:`Unreachable` a failed connection reports: what, where, as whom, why."""
    exc = _cause(exc)
    tries = f" (after {attempts} attempts)" if attempts > 1 else ""
    if isinstance(exc, paramiko.AuthenticationException) or (
        isinstance(exc, paramiko.SSHException) and "authentication" in str(exc).lower()
    ):
        key = ep.key_file or credentials.source or "the configured key"
        return Unreachable(
            f"authentication failed for user {ep.user!r} with {_as_key(key)}: {exc}",
            host=ep.host,
            hint=f"is that key's public half in {ep.user}'s authorized_keys on the host?",
        )
    if isinstance(exc, ConnectionRefusedError):
        reason = "connection refused"
    elif isinstance(exc, TimeoutError | socket.timeout):
        reason = "timed out" if str(exc) in ("", "timed out") else f"timed out ({exc})"
    elif isinstance(exc, OSError):
        reason = exc.strerror or str(exc) or type(exc).__name__
    elif isinstance(exc, EOFError):
        reason = "connection closed during the SSH handshake"
    else:
        reason = f"SSH handshake failed: {exc}"
    via = f" through bastion {ep.gateway.host}" if ep.gateway else ""
    return Unreachable(
        f"cannot connect to {ep.address}:{ep.port} as {ep.user}{via}: {reason}{tries}",
        host=ep.host,
    )


def _as_key(source: str) -> str:
    return source if source.startswith(("key ", "ssh-agent")) else f"key {source}"


def _through(endpoint: Endpoint, gateway: Endpoint, exc: TransportError) -> TransportError:
    """A bastion's failure, reported on the host that needed it (same class, same hint)."""
    reason = exc.message.removeprefix(f"{exc.host}: ")
    message = f"bastion {gateway.host} ({gateway.address}:{gateway.port}): {reason}"
    if isinstance(exc, HostKeyMismatch):
        return HostKeyMismatch(message, host=endpoint.host, hint=exc.hint)
    if isinstance(exc, Unreachable):
        return Unreachable(message, host=endpoint.host, hint=exc.hint)
    return TransportError(message, host=endpoint.host, hint=exc.hint)
