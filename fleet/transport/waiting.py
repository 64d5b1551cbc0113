"""Waiting for a host to come back over SSH after a reboot, with the key and identity expected.

Until the deadline, refusals, timeouts, an unexpected key (the old system may still be up) and
a failed identity check all mean "not yet". A new key (``expect.accept_new`` or first use) is
pinned only once the identity check has passed: until then pins are held in a
:class:`~fleet.transport.hostkeys.PinBuffer`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from fleet.clock import Clock
from fleet.errors import HostKeyMismatch, TransportError, Unreachable
from fleet.transport.base import Endpoint, HostKeys, KeyExpectation
from fleet.transport.hostkeys import PinBuffer

if TYPE_CHECKING:
    from fleet.transport.ssh import SshTransport

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str], None]
IdentityCheck = Callable[["SshTransport"], bool]
#: Builds a transport that pins into the given store, with the given connect timeout.
Build = Callable[[HostKeys, float], "SshTransport"]


class _IdentityError(TransportError):
    """The host answered with an acceptable key but is not the system expected (yet)."""


def wait_for_ssh(
    build: Build,
    host_keys: HostKeys,
    endpoint: Endpoint,
    expect: KeyExpectation,
    *,
    clock: Clock,
    connect_timeout: float,
    timeout: float,
    poll_interval: float,
    identity_check: IdentityCheck | None,
    progress: ProgressCallback | None,
) -> SshTransport:
    """Poll until the host answers with the expected key and identity; return it connected.

    Raises:
        HostKeyMismatch: at the deadline, the host still presented an unexpected key.
        TransportError: at the deadline, the host answered but failed the identity check.
        Unreachable: at the deadline, the host was still not reachable.
    """
    deadline = clock.monotonic() + timeout
    last: TransportError | None = None
    for _ in range(int(timeout / max(poll_interval, 0.05)) + 2):
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            break
        try:
            return _poll(
                build, host_keys, endpoint, identity_check, min(connect_timeout, remaining)
            )
        except TransportError as exc:
            # An attempt cut short by the deadline tells less than the one before it.
            cut_short = remaining < connect_timeout and isinstance(exc, Unreachable)
            last = last if (cut_short and last is not None) else exc
            _report_wait(endpoint.host, exc, clock, deadline, progress)
            clock.sleep(min(poll_interval, max(0.0, deadline - clock.monotonic())))
    raise _gave_up(endpoint, expect, timeout, last) from last


def _poll(
    build: Build,
    host_keys: HostKeys,
    endpoint: Endpoint,
    identity_check: IdentityCheck | None,
    connect_timeout: float,
) -> SshTransport:
    """One attempt: new pins are stored once the identity holds."""
    pins = PinBuffer(host_keys)
    transport = build(pins, connect_timeout)
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
    host: str, exc: TransportError, clock: Clock, deadline: float, progress: ProgressCallback | None
) -> None:
    left = max(0.0, deadline - clock.monotonic())
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
