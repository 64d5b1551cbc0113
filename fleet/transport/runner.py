"""The command fast path: one exec channel per command on the connection's paramiko transport.

Shell steps are fleet's hottest path (thousands of short commands per rollout), so they do not
go through Invoke's runner (three threads and a pty-capable stream pump per command): they get
an exec channel on the same transport the host's ``fabric.Connection`` opened, no pty, no
thread, both output streams drained as they arrive (a chatty stderr cannot stall stdout), and
output capped keeping the tail. A sudo password, when the host has one, answers sudo's prompt
on the channel's stdin the moment the prompt appears, never before (a command that needs no
password never sees it).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import paramiko

from fleet.clock import Clock
from fleet.errors import CommandTimeout, TransportError, Unreachable
from fleet.transport.base import CommandResult
from fleet.transport.secrets import SUDO_PROMPT

#: Captured output per stream; beyond it the tail is kept and ``truncated`` is set.
DEFAULT_OUTPUT_CAP = 1 << 20
_RECV_CHUNK = 1 << 16


def short(command: str, limit: int = 80) -> str:
    """A command as quoted in messages: scripts can be long."""
    text = command if len(command) <= limit else command[: limit - 3] + "..."
    return repr(text)


class OutputTail:
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


@dataclass(frozen=True)
class Run:
    """One command to run: where, what, for how long, and what it may need."""

    host: str
    command: str
    timeout: float | None
    open_timeout: float
    output_cap: int = DEFAULT_OUTPUT_CAP
    sudo_password: str | None = None


def run_on(transport: paramiko.Transport, run: Run, clock: Clock) -> CommandResult:
    """Run ``run.command`` through the remote user's shell, without a pty.

    Never raises on a non-zero exit. ``exit_code`` is -1 when the server reported none
    (the command died of a signal).

    Raises:
        CommandTimeout: still running after ``run.timeout`` seconds (its channel is closed).
        Unreachable: the connection was already lost.
        TransportError: the connection was lost while the command ran.
    """
    started = clock.monotonic()
    deadline = None if run.timeout is None else started + run.timeout
    channel = _open_channel(transport, run)
    try:
        channel.exec_command(run.command)
        stdout, stderr = _Drain(channel, run, clock, deadline).until_eof()
        code = _exit_code(transport, channel, run, clock, deadline)
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise _lost(transport, run, exc) from exc
    finally:
        channel.close()
    return CommandResult(
        command=run.command,
        exit_code=code,
        stdout=stdout.text(),
        stderr=stderr.text(),
        duration=clock.monotonic() - started,
        truncated=stdout.truncated or stderr.truncated,
    )


def _open_channel(transport: paramiko.Transport, run: Run) -> paramiko.Channel:
    try:
        return transport.open_session(timeout=run.open_timeout)
    except (OSError, EOFError, paramiko.SSHException) as exc:
        if not transport.is_active():
            raise Unreachable(
                f"connection lost before running {short(run.command)}",
                host=run.host,
                hint="the host may have rebooted: connect again",
            ) from exc
        raise TransportError(
            f"cannot open a session for {short(run.command)}: {exc}", host=run.host
        ) from exc


def _lost(transport: paramiko.Transport, run: Run, exc: BaseException) -> TransportError:
    if transport.is_active():
        return TransportError(f"channel failed running {short(run.command)}: {exc}", host=run.host)
    return TransportError(f"connection lost while running {short(run.command)}", host=run.host)


def _remaining(clock: Clock, deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - clock.monotonic())


def _timed_out(run: Run) -> CommandTimeout:
    return CommandTimeout(
        f"{short(run.command)} still running after {run.timeout:g} s; its channel was closed",
        host=run.host,
    )


class _Drain:
    """Reads stdout and stderr as they arrive until EOF.

    Both streams share one flow-control window, so reading one to its end before the other
    can stall the remote command; instead one event, set by paramiko whenever either buffer
    receives data or closes, wakes this thread. The loop ends at EOF or at the deadline
    (without a timeout it lasts as long as the command).
    """

    def __init__(
        self, channel: paramiko.Channel, run: Run, clock: Clock, deadline: float | None
    ) -> None:
        self.channel = channel
        self.run = run
        self.clock = clock
        self.deadline = deadline
        self.out = OutputTail(run.output_cap)
        self.err = OutputTail(run.output_cap)
        self.password = run.sudo_password

    def until_eof(self) -> tuple[OutputTail, OutputTail]:
        channel = self.channel
        ready = threading.Event()
        channel.in_buffer.set_event(ready)
        channel.in_stderr_buffer.set_event(ready)
        while True:
            while channel.recv_ready():
                self.out.add(channel.recv(_RECV_CHUNK))
            while channel.recv_stderr_ready():
                self.err.add(channel.recv_stderr(_RECV_CHUNK))
            if self.password is not None:
                self._answer_sudo()
            # EOF first: no data follows it, so empty buffers after it mean done.
            at_eof = bool(channel.eof_received) or channel.closed
            if channel.recv_ready() or channel.recv_stderr_ready():
                continue
            if at_eof:
                return self.out, self.err
            # Reads clear the event; none happen between the checks above and this wait,
            # so data arriving after the checks sets it and cannot be missed.
            if not ready.wait(_remaining(self.clock, self.deadline)):
                raise _timed_out(self.run)

    def _answer_sudo(self) -> None:
        """Send the password once sudo's prompt shows on stderr, and drop the prompt."""
        prompt = SUDO_PROMPT.encode()
        at = self.err.data.find(prompt)
        if at < 0 or self.password is None:
            return
        del self.err.data[at : at + len(prompt)]
        self.err.total -= len(prompt)
        self.channel.sendall((self.password + "\n").encode())
        self.channel.shutdown_write()  # the command after sudo reads an empty stdin
        self.password = None  # once: a second prompt means a wrong password


def _exit_code(
    transport: paramiko.Transport,
    channel: paramiko.Channel,
    run: Run,
    clock: Clock,
    deadline: float | None,
) -> int:
    # Set by the exit-status message, or when the channel closes without one.
    if not channel.status_event.wait(_remaining(clock, deadline)):
        raise _timed_out(run)
    code = channel.recv_exit_status()
    if code == -1 and not transport.is_active():
        raise _lost(transport, run, EOFError("no exit status"))
    return code
