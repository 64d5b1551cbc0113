"""paramiko's own log records, routed into fleet's events as one line each.

paramiko logs from its transport threads: while a server boots, every connection attempt that
meets a half-started sshd logs ``Exception (client): Error reading SSH protocol banner`` and
then its traceback, one record a line (66 lines per attempt). fleet already turns the same
failure into a :class:`~fleet.errors.TransportError` for the host, so these records are noise
on the operator's terminal. :func:`route_paramiko_logs` keeps them off it: each warning or
error becomes one line (tracebacks dropped) handed to a sink, with the host it came from; a
rollout journals them as ``host.ssh`` events (see ``fleet.cli.wiring``). With ``--debug``,
nothing is routed: paramiko logs as it always did, tracebacks included.

A transport names its log channel :func:`log_channel` (``paramiko.transport.fleet:HOST``), so
that a record tells which host it is about.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

#: Receives (host or None, one line) for each routed record.
Sink = Callable[[str | None, str], None]

_ROOT = "paramiko"
_CHANNEL = "paramiko.transport.fleet:"
#: Lines of a traceback as paramiko logs them, one record each.
_TRACEBACK = re.compile(
    r"^(Traceback \(most recent call last\)|During handling of the above exception"
    r"|The above exception was the direct cause|\s|$|[\w.]+(Error|Exception|Exit)\b)"
)


def log_channel(host: str) -> str:
    """The paramiko log channel of a transport to ``host`` (``Transport.set_log_channel``)."""
    return _CHANNEL + host


class _Router(logging.Handler):
    def __init__(self, sink: Sink) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a record that cannot format is not worth a traceback either
            return
        first = text.strip().splitlines()[0] if text.strip() else ""
        if not first or _TRACEBACK.match(text):
            return
        host = record.name.split(_CHANNEL, 1)[1] if _CHANNEL in record.name else None
        self.sink(host, "ssh: " + first.removeprefix("Exception (client): "))


def route_paramiko_logs(sink: Sink | None) -> Callable[[], None]:
    """Route paramiko's warnings and errors to ``sink`` (None: drop them) instead of the
    terminal; the returned function puts back the sink that was there before (or paramiko's
    own logging, when there was none). Debug mode does not call this."""
    logger = logging.getLogger(_ROOT)
    router = next((h for h in logger.handlers if isinstance(h, _Router)), None)
    if router is None:
        router = _Router(_drop)
        logger.addHandler(router)
        logger.propagate = False
        installed = router

        def undo() -> None:
            logger.removeHandler(installed)
            logger.propagate = True

    else:
        previous, kept = router.sink, router

        def undo() -> None:
            kept.sink = previous

    router.sink = sink or _drop
    return undo


def _drop(host: str | None, line: str) -> None:
    return None
