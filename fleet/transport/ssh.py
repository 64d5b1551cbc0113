"""SSH sessions on Fabric: :class:`SshTransport` (one host) and :class:`SshConnector` (all).

``fleet.transport`` is the only package of fleet that imports paramiko and fabric. Its
modules, along the seams of the job:

* :mod:`~fleet.transport.connect`: one ``fabric.Connection`` per host, bastions, retries;
* :mod:`~fleet.transport.hostkeys`: keys pinned per host and boot role, checked before login;
* :mod:`~fleet.transport.keys`: key files, passphrases, ssh-agent;
* :mod:`~fleet.transport.runner`: the command fast path on the connection's transport;
* :mod:`~fleet.transport.waiting`: waiting for a host to come back after a reboot;
* :mod:`~fleet.transport.sshconfig`: an ssh_config applied to endpoints, when asked;
* :mod:`~fleet.transport.secrets`: sudo passwords read from their source when needed;
* this module: the session objects the engine holds.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from fleet.clock import Clock, SystemClock
from fleet.transport import secrets
from fleet.transport.base import CommandResult, Endpoint, HostKeys, KeyExpectation
from fleet.transport.connect import (
    DEFAULT_WINDOW_SIZE,
    ConnectRetry,
    Dialer,
    DialSettings,
)
from fleet.transport.hostkeys import fingerprint
from fleet.transport.keys import KeyRing, load_key
from fleet.transport.runner import DEFAULT_OUTPUT_CAP, Run, run_on
from fleet.transport.sshconfig import SshConfigFile
from fleet.transport.waiting import IdentityCheck, ProgressCallback, wait_for_ssh

if TYPE_CHECKING:
    import fabric
    import paramiko

__all__ = [
    "ConnectRetry",
    "SshConnector",
    "SshTransport",
    "fingerprint",
    "load_key",
]

_DISK = KeyExpectation()
_DEFAULT_RETRY = ConnectRetry()


class SshTransport:
    """An SSH session to one host: one ``fabric.Connection`` reused for every command.

    ``run`` connects lazily; ``connect`` does it explicitly (and reconnects a dead
    connection). With ``expect.accept_new`` the change is accepted once: after the first
    successful connection the new key is pinned and later reconnections must match it.
    Meant for one thread at a time, like the host pipeline that owns it.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        dialer: Dialer,
        host_keys: HostKeys,
        expect: KeyExpectation = _DISK,
        connect_timeout: float | None = None,
        retry: ConnectRetry | None = _DEFAULT_RETRY,
        output_cap: int = DEFAULT_OUTPUT_CAP,
        clock: Clock | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._dialer = dialer
        self._host_keys = host_keys
        self._expect = expect
        self._connect_timeout = connect_timeout
        self._retry = retry
        self._output_cap = output_cap
        self._clock = clock or SystemClock()
        self._connection: fabric.Connection | None = None
        self._presented: tuple[str, str] | None = None

    @property
    def presented_key(self) -> tuple[str, str] | None:
        """(type, base64 blob) of the key the host presented last, once connected."""
        return self._presented

    @property
    def expect(self) -> KeyExpectation:
        return self._expect

    @property
    def connected(self) -> bool:
        return self._connection is not None and bool(self._connection.is_connected)

    @property
    def connection(self) -> fabric.Connection:
        """The host's ``fabric.Connection`` (connected), for Python stages: ``c.run``,
        ``c.sudo``, ``c.put``, ``c.get``. Commands of plain steps share its transport."""
        if not self.connected:
            self.connect()
        assert self._connection is not None
        return self._connection

    @property
    def open_timeout(self) -> float:
        """Seconds to wait for a new session channel (the connect timeout)."""
        return self._connect_timeout or self.endpoint.connect_timeout or 10.0

    def __enter__(self) -> SshTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (idempotent). A later ``run`` connects again."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

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
        opened = self._dialer.open(
            self.endpoint,
            self._expect,
            self._host_keys,
            retry=self._retry,
            connect_timeout=self._connect_timeout,
        )
        self._connection, self._presented = opened.connection, opened.presented
        self._expect = replace(self._expect, accept_new=False)

    def run(self, command: str, *, timeout: float | None = None) -> CommandResult:
        """Run ``command`` through the remote user's shell, without a pty (see
        :func:`fleet.transport.runner.run_on`); never raises on a non-zero exit."""
        if self._connection is None:
            self.connect()
        connection = self._connection
        assert connection is not None  # connect() set it or raised
        job = Run(self.endpoint.host, command, timeout, self.open_timeout, self._output_cap)
        return run_on(connection.transport, job, self._clock)

    def sudo(self, command: str, *, timeout: float | None = None) -> CommandResult:
        """Run ``command`` as root through sudo, answering its prompt with the host's
        password (from its secret source) when it asks for one."""
        if self._connection is None:
            self.connect()
        connection = self._connection
        assert connection is not None
        password = secrets.read(self.endpoint.sudo_password, self.endpoint.host)
        job = Run(
            self.endpoint.host,
            secrets.sudo_command(command),
            timeout,
            self.open_timeout,
            self._output_cap,
            sudo_password=password,
        )
        result = run_on(connection.transport, job, self._clock)
        return replace(result, command=command)


class SshConnector:
    """Builds :class:`SshTransport` objects with shared settings and keys loaded once.

    Safe to share between threads.

    Args:
        host_keys: the pinned host keys (the store).
        default_key_file: used for endpoints without a ``key_file``.
        key_passphrase: opens encrypted key files (else ssh-agent must hold them).
        agent: use ssh-agent (``SSH_AUTH_SOCK``) for hosts without a usable key file.
        ssh_config: an ssh_config file to apply to every endpoint (see
            :mod:`fleet.transport.sshconfig`); None: none is read.
        connect_timeout: seconds for each of TCP connect, SSH handshake and authentication
            (an endpoint's own ``connect_timeout`` wins).
        retry: how transient connect failures are retried; None for a single attempt.
        trust_on_first_use: pin the key of a host with none pinned for the role (else fail).
        keepalive: seconds between SSH keepalives (0: off), to notice dead peers.
        output_cap: bytes captured per stream; the tail is kept beyond it.
        window_size: SSH receive window per channel.
        clock: time source for timeouts, durations and retry sleeps.
    """

    def __init__(
        self,
        host_keys: HostKeys,
        *,
        default_key_file: str | None = None,
        key_passphrase: str | None = None,
        agent: bool = False,
        ssh_config: str | None = None,
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
        self._output_cap = output_cap
        self._clock = clock or SystemClock()
        self._keyring = KeyRing(passphrase=key_passphrase, agent=agent)
        self._ssh_config = SshConfigFile(ssh_config) if ssh_config else None
        settings = DialSettings(connect_timeout, retry, trust_on_first_use, keepalive, window_size)
        self._dialer = Dialer(self._keyring, settings, self._clock, host_keys)

    def key(self, key_file: str) -> paramiko.PKey:
        """The parsed private key of ``key_file``, loaded on first use."""
        return self._keyring.key(key_file)

    def close(self) -> None:
        """Close shared connections (bastions)."""
        self._dialer.close()

    def open(self, endpoint: Endpoint, expect: KeyExpectation = _DISK) -> SshTransport:
        """A transport to ``endpoint``, not yet connected (``run`` connects lazily)."""
        return self._build(endpoint, expect, self._host_keys, None, self._retry)

    def _build(
        self,
        endpoint: Endpoint,
        expect: KeyExpectation,
        host_keys: HostKeys,
        connect_timeout: float | None,
        retry: ConnectRetry | None,
    ) -> SshTransport:
        if self._ssh_config is not None:
            endpoint = self._ssh_config.apply(endpoint)
        endpoint = self._with_default_key(endpoint)
        self._dialer.credentials(endpoint)  # a missing or unusable key fails here, not later
        return SshTransport(
            endpoint,
            dialer=self._dialer,
            host_keys=host_keys,
            expect=expect,
            connect_timeout=connect_timeout,
            retry=retry,
            output_cap=self._output_cap,
            clock=self._clock,
        )

    def _with_default_key(self, endpoint: Endpoint) -> Endpoint:
        key_file = endpoint.key_file or self._default_key_file
        if key_file and key_file != endpoint.key_file:
            endpoint = replace(endpoint, key_file=key_file)
        if endpoint.gateway is not None:
            endpoint = replace(endpoint, gateway=self._with_default_key(endpoint.gateway))
        return endpoint

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
        """Poll until the host answers with the expected key and identity; return it connected
        (see :func:`fleet.transport.waiting.wait_for_ssh`)."""

        def build(host_keys: HostKeys, connect_timeout: float) -> SshTransport:
            return self._build(endpoint, expect, host_keys, connect_timeout, None)

        return wait_for_ssh(
            build,
            self._host_keys,
            endpoint,
            expect,
            clock=self._clock,
            connect_timeout=endpoint.connect_timeout or self._connect_timeout,
            timeout=timeout,
            poll_interval=poll_interval,
            identity_check=identity_check,
            progress=progress,
        )
