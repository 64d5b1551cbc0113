"""SSH transport on paramiko: one connection per host, one exec channel per command.

This is the only module of fleet that imports paramiko. It owns three things:

* **Host key verification.** Keys are pinned per host and per boot generation ("role") in a
  :class:`~fleet.transport.base.HostKeys` store, never in ``known_hosts``. The server key is
  checked right after the key exchange and before authentication, so no credential is offered
  to a host that failed the check. A change is accepted only when the caller says fleet caused
  it (``KeyExpectation.accept_new``); anything else is a :class:`~fleet.errors.HostKeyMismatch`.
* **Connecting.** Transient failures (refused, timed out, banner or handshake cut short) are
  retried with backoff and jitter; authentication failures and key mismatches never are.
  Every paramiko or socket error is mapped to a :mod:`fleet.errors` class here.
* **Running commands** cheaply: no pty, no thread per command, both output streams drained as
  they arrive (so a chatty stderr cannot stall stdout), output capped keeping the tail.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import paramiko
from tenacity import Retrying, retry_if_exception, wait_exponential, wait_random

from fleet.clock import Clock, SystemClock
from fleet.errors import (
    CommandTimeout,
    ConfigError,
    HostKeyMismatch,
    TransportError,
    Unreachable,
)
from fleet.transport.base import CommandResult, Endpoint, HostKeys, KeyExpectation
from fleet.transport.logs import log_channel

if TYPE_CHECKING:
    from tenacity import RetryCallState

log = logging.getLogger(__name__)

#: Captured output per stream; beyond it the tail is kept and ``truncated`` is set.
DEFAULT_OUTPUT_CAP = 1 << 20
#: paramiko's own default receive window (2 MiB): large enough that a command's output
#: streams without stalling on window adjustments, small enough to bound buffered memory.
DEFAULT_WINDOW_SIZE = paramiko.common.DEFAULT_WINDOW_SIZE
_RECV_CHUNK = 1 << 16
_HOSTKEYS_HINT = (
    "if this host was reinstalled outside fleet, check it and replace its pin with `fleet hostkeys`"
)

ProgressCallback = Callable[[str], None]
IdentityCheck = Callable[["SshTransport"], bool]


def fingerprint(key_type: str, blob: str) -> str:
    """OpenSSH's SHA256 fingerprint (``SHA256:...``) of a base64 public key blob.

    ``key_type`` is checked against the type the blob itself names, so that a store row whose
    columns disagree is caught rather than fingerprinted as if it were fine.
    """
    try:
        raw = base64.b64decode(blob, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not a base64 public key blob: {blob[:20]!r}...") from exc
    named = _blob_type(raw)
    if named != key_type:
        raise ValueError(f"the blob is a {named} key, not {key_type}")
    digest = base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def _blob_type(raw: bytes) -> str:
    """The key type string an SSH public key blob starts with (uint32 length + name)."""
    size = int.from_bytes(raw[:4], "big")
    if len(raw) < 4 + size or size == 0:
        raise ValueError("truncated public key blob")
    return raw[4 : 4 + size].decode("ascii", errors="replace")


def _describe(key: tuple[str, str]) -> str:
    """``type SHA256:...`` for messages; never raises (a corrupt pin must still be reported)."""
    try:
        return f"{key[0]} {fingerprint(*key)}"
    except ValueError as exc:
        return f"{key[0]} (unreadable key: {exc})"


def check_host_key(
    host: str,
    expect: KeyExpectation,
    pinned: tuple[str, str] | None,
    presented: tuple[str, str],
    *,
    trust_on_first_use: bool = True,
) -> bool:
    """Decide whether the ``presented`` key (type, base64 blob) may be trusted.

    ``pinned`` is what the store holds for ``expect.role``. Returns True when the presented
    key must be pinned once the connection succeeds (first use, or a change fleet caused
    itself), False when it matches the pin already there.

    Raises:
        HostKeyMismatch: the key differs from the pinned one, or nothing is pinned and trust
            on first use is off.
    """
    if pinned == presented:
        return False
    if expect.accept_new:
        return True
    got = _describe(presented)
    if pinned is None:
        if trust_on_first_use:
            return True
        raise HostKeyMismatch(
            f"no pinned {expect.role} host key and trust on first use is off; presented {got}",
            host=host,
            hint="pin the expected key with `fleet hostkeys`",
        )
    raise HostKeyMismatch(
        f"{expect.role} host key mismatch: expected {_describe(pinned)}, "
        f"got {got}: possible impersonation or an unplanned reinstall",
        host=host,
        hint=_HOSTKEYS_HINT,
    )


def _host_key_algorithms(offered: tuple[str, ...] | list[str], key_type: str) -> list[str]:
    """``offered`` with the algorithms of the pinned ``key_type`` first (as OpenSSH does).

    A server with several host keys then presents the one we pinned, instead of whichever
    paramiko happens to prefer.
    """

    def matches(algorithm: str) -> bool:
        return algorithm == key_type or (
            key_type == "ssh-rsa" and algorithm.startswith("rsa-sha2-")
        )

    return [a for a in offered if matches(a)] + [a for a in offered if not matches(a)]


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


def _is_transient(exc: BaseException) -> bool:
    """Worth another attempt: the host may not be listening or answering *yet*."""
    if isinstance(exc, paramiko.AuthenticationException):
        return False
    return isinstance(exc, (OSError, EOFError, paramiko.SSHException))


class _OutputTail:
    """The last ``cap`` bytes of a stream; trims in amortised O(1) per chunk."""

    __slots__ = ("cap", "data", "total")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        self.total += len(chunk)
        if len(self.data) > 2 * self.cap:
            del self.data[: -self.cap]

    def text(self) -> str:
        if len(self.data) > self.cap:
            del self.data[: -self.cap]
        return self.data.decode("utf-8", errors="replace")

    @property
    def truncated(self) -> bool:
        return self.total > self.cap


def load_key(path: str) -> paramiko.PKey:
    """Read a private key file (ed25519, ECDSA or RSA, OpenSSH or PEM format).

    Raises:
        ConfigError: the file is missing, unreadable, encrypted or not a key.
    """
    try:
        return paramiko.PKey.from_path(Path(path).expanduser())
    except (paramiko.PasswordRequiredException, TypeError) as exc:
        # cryptography signals a passphrase-protected key with a TypeError.
        if isinstance(exc, TypeError) and "password" not in str(exc):
            raise
        raise ConfigError(
            f"SSH key {path} is encrypted: fleet uses no agent, give it an unencrypted key"
        ) from exc
    except (OSError, ValueError, paramiko.SSHException) as exc:
        raise ConfigError(f"cannot load SSH key {path}: {exc}") from exc


def _short(command: str, limit: int = 80) -> str:
    """A command as quoted in messages: scripts can be long."""
    text = command if len(command) <= limit else command[: limit - 3] + "..."
    return repr(text)


_DISK = KeyExpectation()
_DEFAULT_RETRY = ConnectRetry()


class SshTransport:
    """An SSH session to one host: one TCP connection reused for every command.

    ``run`` connects lazily; ``connect`` does it explicitly (and reconnects a dead
    connection). With ``expect.accept_new`` the change is accepted once: after the first
    successful connection the new key is pinned and later reconnections must match it.
    Meant for one thread at a time, like the host pipeline that owns it.

    Args:
        endpoint: where and as whom to connect.
        host_keys: the pinned keys (the store).
        key: the private key, loaded once by the caller (see :class:`SshConnector`);
            when None, ``endpoint.key_file`` is loaded at each connection.
        expect: which pinned key (role) must match, or whether a new one is accepted.
        connect_timeout: seconds for each of TCP connect, SSH handshake and authentication.
        retry: how transient connect failures are retried; None for a single attempt.
        trust_on_first_use: pin the key of a host with none pinned for the role (else fail).
        keepalive: seconds between SSH keepalives (0: off), to notice dead peers.
        output_cap: bytes captured per stream; the tail is kept beyond it.
        window_size: SSH receive window per channel.
        clock: time source for timeouts, durations and retry sleeps.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        host_keys: HostKeys,
        key: paramiko.PKey | None = None,
        expect: KeyExpectation = _DISK,
        connect_timeout: float = 10.0,
        retry: ConnectRetry | None = _DEFAULT_RETRY,
        trust_on_first_use: bool = True,
        keepalive: int = 0,
        output_cap: int = DEFAULT_OUTPUT_CAP,
        window_size: int = DEFAULT_WINDOW_SIZE,
        clock: Clock | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._host_keys = host_keys
        self._key = key
        self._expect = expect
        self._connect_timeout = connect_timeout
        self._retry = retry
        self._tofu = trust_on_first_use
        self._keepalive = keepalive
        self._output_cap = output_cap
        self._window_size = window_size
        self._clock = clock or SystemClock()
        self._transport: paramiko.Transport | None = None
        self._presented: tuple[str, str] | None = None
        self._attempts = 0

    @property
    def presented_key(self) -> tuple[str, str] | None:
        """(type, base64 blob) of the key the host presented last, once connected."""
        return self._presented

    @property
    def expect(self) -> KeyExpectation:
        return self._expect

    @property
    def connected(self) -> bool:
        return self._transport is not None and self._transport.is_active()

    def __enter__(self) -> SshTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (idempotent). A later ``run`` connects again."""
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    # -- connecting ---------------------------------------------------------------------

    def connect(self) -> None:
        """Connect, verify the host key, authenticate; no-op when already connected.

        Raises:
            HostKeyMismatch: the host key is not the expected one (nothing was sent).
            Unreachable: refused, timed out or authentication failed, after the retries.
            ConfigError: the key file cannot be loaded.
        """
        if self.connected:
            return
        self.close()
        key = self._key or self._load_endpoint_key()
        self._attempts = 0
        try:
            self._transport = self._with_retries(lambda: self._attempt(key))
        except TransportError:
            raise
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise self._connect_error(exc) from exc
        self._expect = replace(self._expect, accept_new=False)

    def _load_endpoint_key(self) -> paramiko.PKey:
        if not self.endpoint.key_file:
            raise ConfigError(f"{self.endpoint.host}: no SSH key: set key_file for this host")
        return load_key(self.endpoint.key_file)

    def _with_retries(self, attempt: Callable[[], paramiko.Transport]) -> paramiko.Transport:
        policy = self._retry
        if policy is None or policy.attempts <= 1:
            return attempt()
        clock = self._clock
        deadline = clock.monotonic() + policy.total
        backoff = wait_exponential(multiplier=policy.initial, max=policy.maximum) + wait_random(
            0, policy.jitter
        )

        def wait(state: RetryCallState) -> float:
            return min(backoff(state), max(0.0, deadline - clock.monotonic()))

        def stop(state: RetryCallState) -> bool:
            return state.attempt_number >= policy.attempts or clock.monotonic() >= deadline

        retrying = Retrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception(_is_transient),
            sleep=clock.sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        return retrying(attempt)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        pause = state.next_action.sleep if state.next_action else 0.0
        log.info(
            "%s: connect attempt %d failed (%s); retrying in %.1f s",
            self.endpoint.host,
            state.attempt_number,
            exc,
            pause,
        )

    def _attempt(self, key: paramiko.PKey) -> paramiko.Transport:
        """One connection: TCP, key exchange, host key check, then authentication."""
        self._attempts += 1
        ep = self.endpoint
        sock = socket.create_connection((ep.address, ep.port), timeout=self._connect_timeout)
        try:
            # Each command is a few small request/answer messages: without this, Nagle's
            # algorithm meets the peer's delayed ACK and every command waits tens of ms.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            transport = paramiko.Transport(sock, default_window_size=self._window_size)
            transport.set_log_channel(log_channel(ep.host))  # its records name the host
        except BaseException:
            sock.close()
            raise
        try:
            pinned = self._host_keys.pinned_key(ep.host, self._expect.role)
            self._handshake(transport, pinned)
            server_key = transport.get_remote_server_key()
            presented = (server_key.get_name(), server_key.get_base64())
            self._presented = presented
            must_pin = check_host_key(
                ep.host, self._expect, pinned, presented, trust_on_first_use=self._tofu
            )
            transport.auth_publickey(ep.user, key)
            if not transport.is_authenticated():
                raise paramiko.AuthenticationException("the server asks for more methods")
            if must_pin:
                self._host_keys.pin_key(ep.host, self._expect.role, *presented)
        except BaseException:
            transport.close()
            raise
        if self._keepalive:
            transport.set_keepalive(self._keepalive)
        return transport

    def _handshake(self, transport: paramiko.Transport, pinned: tuple[str, str] | None) -> None:
        timeout = self._connect_timeout
        transport.banner_timeout = timeout
        transport.handshake_timeout = timeout
        transport.auth_timeout = timeout
        if pinned is not None and not self._expect.accept_new:
            options = transport.get_security_options()
            options.key_types = _host_key_algorithms(list(options.key_types), pinned[0])
        done = threading.Event()
        transport.start_client(event=done)
        if not done.wait(timeout):
            raise TimeoutError(f"SSH handshake took more than {timeout:g} s")
        if not transport.is_active():
            raise transport.get_exception() or paramiko.SSHException("SSH negotiation failed")

    def _connect_error(self, exc: BaseException) -> Unreachable:
        ep = self.endpoint
        tries = f" (after {self._attempts} attempts)" if self._attempts > 1 else ""
        if isinstance(exc, paramiko.AuthenticationException):
            key = ep.key_file or "the configured key"
            return Unreachable(
                f"authentication failed for user {ep.user!r} with key {key}: {exc}",
                host=ep.host,
                hint=f"is that key's public half in {ep.user}'s authorized_keys on the host?",
            )
        if isinstance(exc, ConnectionRefusedError):
            reason = "connection refused"
        elif isinstance(exc, TimeoutError):
            reason = "timed out" if str(exc) in ("", "timed out") else f"timed out ({exc})"
        elif isinstance(exc, OSError):
            reason = exc.strerror or str(exc) or type(exc).__name__
        elif isinstance(exc, EOFError):
            reason = "connection closed during the SSH handshake"
        else:
            reason = f"SSH handshake failed: {exc}"
        return Unreachable(
            f"cannot connect to {ep.address}:{ep.port} as {ep.user}: {reason}{tries}",
            host=ep.host,
        )

    # -- running ------------------------------------------------------------------------

    def run(self, command: str, *, timeout: float | None = None) -> CommandResult:
        """Run ``command`` through the remote user's shell, without a pty.

        Never raises on a non-zero exit. ``exit_code`` is -1 when the server reported none
        (the command died of a signal).

        Raises:
            CommandTimeout: still running after ``timeout`` seconds (its channel is closed).
            Unreachable: cannot connect, or the connection was already lost.
            TransportError: the connection was lost while the command ran.
        """
        if self._transport is None:
            self.connect()
        transport = self._transport
        assert transport is not None  # connect() set it or raised
        started = self._clock.monotonic()
        deadline = None if timeout is None else started + timeout
        channel = self._open_channel(transport, command)
        try:
            channel.exec_command(command)
            stdout, stderr = self._drain(channel, deadline, command, timeout)
            code = self._exit_code(transport, channel, deadline, command, timeout)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise self._lost(transport, command, exc) from exc
        finally:
            channel.close()
        return CommandResult(
            command=command,
            exit_code=code,
            stdout=stdout.text(),
            stderr=stderr.text(),
            duration=self._clock.monotonic() - started,
            truncated=stdout.truncated or stderr.truncated,
        )

    def _open_channel(self, transport: paramiko.Transport, command: str) -> paramiko.Channel:
        try:
            return transport.open_session(timeout=self._connect_timeout)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            if not transport.is_active():
                raise Unreachable(
                    f"connection lost before running {_short(command)}",
                    host=self.endpoint.host,
                    hint="the host may have rebooted: connect again",
                ) from exc
            raise TransportError(
                f"cannot open a session for {_short(command)}: {exc}", host=self.endpoint.host
            ) from exc

    def _lost(
        self, transport: paramiko.Transport, command: str, exc: BaseException
    ) -> TransportError:
        if transport.is_active():
            return TransportError(
                f"channel failed running {_short(command)}: {exc}", host=self.endpoint.host
            )
        return TransportError(
            f"connection lost while running {_short(command)}", host=self.endpoint.host
        )

    def _remaining(self, deadline: float | None) -> float | None:
        return None if deadline is None else max(0.0, deadline - self._clock.monotonic())

    def _timed_out(self, command: str, timeout: float | None) -> CommandTimeout:
        return CommandTimeout(
            f"{_short(command)} still running after {timeout:g} s; its channel was closed",
            host=self.endpoint.host,
        )

    def _drain(
        self, channel: paramiko.Channel, deadline: float | None, command: str, timeout: float | None
    ) -> tuple[_OutputTail, _OutputTail]:
        """Read stdout and stderr as they arrive until EOF.

        Both streams share one flow-control window, so reading one to its end before the
        other can stall the remote command; instead one event, set by paramiko whenever
        either buffer receives data or closes, wakes this thread. The loop ends at EOF or
        at the deadline (without a timeout it lasts as long as the command).
        """
        out, err = _OutputTail(self._output_cap), _OutputTail(self._output_cap)
        ready = threading.Event()
        channel.in_buffer.set_event(ready)
        channel.in_stderr_buffer.set_event(ready)
        while True:
            while channel.recv_ready():
                out.add(channel.recv(_RECV_CHUNK))
            while channel.recv_stderr_ready():
                err.add(channel.recv_stderr(_RECV_CHUNK))
            # EOF first: no data follows it, so empty buffers after it mean done.
            at_eof = bool(channel.eof_received) or channel.closed
            if channel.recv_ready() or channel.recv_stderr_ready():
                continue
            if at_eof:
                return out, err
            # Reads clear the event; none happen between the checks above and this wait,
            # so data arriving after the checks sets it and cannot be missed.
            if not ready.wait(self._remaining(deadline)):
                raise self._timed_out(command, timeout)

    def _exit_code(
        self,
        transport: paramiko.Transport,
        channel: paramiko.Channel,
        deadline: float | None,
        command: str,
        timeout: float | None,
    ) -> int:
        # Set by the exit-status message, or when the channel closes without one.
        if not channel.status_event.wait(self._remaining(deadline)):
            raise self._timed_out(command, timeout)
        code = channel.recv_exit_status()
        if code == -1 and not transport.is_active():
            raise self._lost(transport, command, EOFError("no exit status"))
        return code


class _PinBuffer:
    """HostKeys that holds new pins back until :meth:`commit` (then passes them through).

    While waiting for a host, the system that answers may still be the old one: its key
    must not be pinned before the identity check has proven it is the expected system.
    """

    def __init__(self, store: HostKeys) -> None:
        self._store = store
        self._pending: dict[tuple[str, str], tuple[str, str]] = {}
        self._committed = False

    def pinned_key(self, host: str, role: str) -> tuple[str, str] | None:
        return self._pending.get((host, role)) or self._store.pinned_key(host, role)

    def pin_key(self, host: str, role: str, key_type: str, blob: str) -> None:
        if self._committed:
            self._store.pin_key(host, role, key_type, blob)
        else:
            self._pending[host, role] = (key_type, blob)

    def commit(self) -> None:
        for (host, role), (key_type, blob) in self._pending.items():
            self._store.pin_key(host, role, key_type, blob)
        self._pending.clear()
        self._committed = True


class _IdentityError(TransportError):
    """The host answered with an acceptable key but is not the system expected (yet)."""


class SshConnector:
    """Builds :class:`SshTransport` objects with shared settings and keys loaded once.

    Private keys are read and parsed once per file, whatever the number of hosts and
    threads (parsing is the costly part of loading). Safe to share between threads.

    Args:
        host_keys: the pinned host keys (the store).
        default_key_file: used for endpoints without a ``key_file``.
        connect_timeout, retry, trust_on_first_use, keepalive, output_cap, window_size,
        clock: passed to every :class:`SshTransport`.
    """

    def __init__(
        self,
        host_keys: HostKeys,
        *,
        default_key_file: str | None = None,
        connect_timeout: float = 10.0,
        retry: ConnectRetry | None = _DEFAULT_RETRY,
        trust_on_first_use: bool = True,
        keepalive: int = 0,
        output_cap: int = DEFAULT_OUTPUT_CAP,
        window_size: int = DEFAULT_WINDOW_SIZE,
        clock: Clock | None = None,
    ) -> None:
        self._host_keys = host_keys
        self._default_key_file = default_key_file
        self._connect_timeout = connect_timeout
        self._retry = retry
        self._tofu = trust_on_first_use
        self._keepalive = keepalive
        self._output_cap = output_cap
        self._window_size = window_size
        self._clock = clock or SystemClock()
        self._keys: dict[str, paramiko.PKey] = {}
        self._lock = threading.Lock()

    def key(self, key_file: str) -> paramiko.PKey:
        """The parsed private key of ``key_file``, loaded on first use."""
        path = str(Path(key_file).expanduser().resolve())
        with self._lock:
            key = self._keys.get(path)
            if key is None:
                key = self._keys[path] = load_key(path)
            return key

    def open(self, endpoint: Endpoint, expect: KeyExpectation = _DISK) -> SshTransport:
        """A transport to ``endpoint``, not yet connected (``run`` connects lazily)."""
        return self._build(endpoint, expect, self._host_keys, self._connect_timeout, self._retry)

    def _build(
        self,
        endpoint: Endpoint,
        expect: KeyExpectation,
        host_keys: HostKeys,
        connect_timeout: float,
        retry: ConnectRetry | None,
    ) -> SshTransport:
        key_file = endpoint.key_file or self._default_key_file
        if not key_file:
            raise ConfigError(f"{endpoint.host}: no SSH key: set key_file for this host")
        return SshTransport(
            replace(endpoint, key_file=key_file),
            host_keys=host_keys,
            key=self.key(key_file),
            expect=expect,
            connect_timeout=connect_timeout,
            retry=retry,
            trust_on_first_use=self._tofu,
            keepalive=self._keepalive,
            output_cap=self._output_cap,
            window_size=self._window_size,
            clock=self._clock,
        )

    def wait_for_ssh(
        self,
        endpoint: Endpoint,
        expect: KeyExpectation = _DISK,
        *,
        timeout: float,
        poll_interval: float = 5.0,
        identity_check: IdentityCheck | None = None,
        progress: ProgressCallback | None = None,
    ) -> SshTransport:
        """Poll until the host answers with the expected key and identity; return it connected.

        Meant for right after a reboot: until the deadline, refusals, timeouts, an unexpected
        key (the old system may still be up) and a failed ``identity_check`` all mean "not
        yet". A new key (``expect.accept_new`` or first use) is pinned only once
        ``identity_check`` has passed.

        Raises:
            HostKeyMismatch: at the deadline, the host still presented an unexpected key.
            TransportError: at the deadline, the host answered but failed the identity check.
            Unreachable: at the deadline, the host was still not reachable.
        """
        clock = self._clock
        deadline = clock.monotonic() + timeout
        last: TransportError | None = None
        for _ in range(int(timeout / max(poll_interval, 0.05)) + 2):
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                break
            try:
                return self._poll(endpoint, expect, identity_check, remaining)
            except TransportError as exc:
                # An attempt cut short by the deadline tells less than the one before it.
                cut_short = remaining < self._connect_timeout and isinstance(exc, Unreachable)
                last = last if (cut_short and last is not None) else exc
                self._report_wait(endpoint.host, exc, deadline, progress)
                clock.sleep(min(poll_interval, max(0.0, deadline - clock.monotonic())))
        raise _gave_up(endpoint, expect, timeout, last) from last

    def _poll(
        self,
        endpoint: Endpoint,
        expect: KeyExpectation,
        identity_check: IdentityCheck | None,
        remaining: float,
    ) -> SshTransport:
        """One attempt of :meth:`wait_for_ssh`: new pins are stored once the identity holds."""
        pins = _PinBuffer(self._host_keys)
        transport = self._build(endpoint, expect, pins, min(self._connect_timeout, remaining), None)
        try:
            transport.connect()
            if identity_check is not None and not identity_check(transport):
                raise _IdentityError(
                    "answered, but is not the expected system (identity check failed)",
                    host=endpoint.host,
                )
            pins.commit()
        except BaseException:
            transport.close()
            raise
        return transport

    def _report_wait(
        self, host: str, exc: TransportError, deadline: float, progress: ProgressCallback | None
    ) -> None:
        left = max(0.0, deadline - self._clock.monotonic())
        text = f"{host}: waiting for SSH ({_reason(exc)}); {left:.0f} s left"
        log.debug("%s", text)
        if progress is not None:
            progress(text)


def _reason(exc: TransportError) -> str:
    """The message of a transport error without its ``host: `` prefix."""
    return exc.message.removeprefix(f"{exc.host}: ")


def _gave_up(
    endpoint: Endpoint, expect: KeyExpectation, timeout: float, last: TransportError | None
) -> TransportError:
    host, within = endpoint.host, f"within {timeout:g} s"
    if isinstance(last, HostKeyMismatch):
        error: TransportError = HostKeyMismatch(
            f"did not present the expected {expect.role} host key {within}; last: {_reason(last)}",
            host=host,
            hint=last.hint,
        )
    elif isinstance(last, _IdentityError):
        error = TransportError(f"answered but never passed the identity check {within}", host=host)
    else:
        detail = _reason(last) if last is not None else "no attempt made"
        error = Unreachable(f"not reachable over SSH {within}; last error: {detail}", host=host)
    return error
