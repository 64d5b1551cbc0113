"""Steps fenced on the host too: each step's command runs under a host-side lock.

A remote command outlives fleet (a kill, a lost connection: the shell on the host goes on), so a
resume must not start a second execution of a step beside one still running, nor run again a
step that did finish but whose end fleet never journaled. Each ``apply`` therefore runs inside a
small POSIX shell wrapper that, on the host:

* takes ``flock`` on ``DIR/KEY.lock`` (``DIR`` is ``/run/fleet`` when writable, which a reboot
  empties, else ``$HOME/.fleet``; ``KEY`` names the run, the host and the step), held by the
  wrapper shell itself for as long as the command runs, so the kernel frees it when that shell
  ends, however it ends;
* writes ``running - TOKEN`` into ``DIR/KEY.state`` (the holder's fencing token) and exports
  ``FLEET_FENCE=TOKEN`` to the command;
* runs the command in a subshell (an ``exit`` in it ends only the subshell) with the lock's file
  descriptor closed, so a daemon it starts cannot hold the lock forever;
* records ``done RC TOKEN`` in the state file when the command ends, then exits with its status.

A step whose start was journaled but not its end is *in doubt*: before anything else, a
:func:`probe` waits for that step's lock (up to the step's timeout, then fails clearly) and reads
the recorded outcome. Recorded ``done 0``: the step ran to its end; it is not run again. Anything
else (no record, a failure, or ``running`` left by an execution that died with its host): the
step runs as usual, from its ``check``.

The wrapper costs one ``flock`` and one subshell per step on the host, and nothing on fleet's
side but a longer command line.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

#: Markers the wrappers print on stderr, with their exit statuses (out of the usual range).
HELD, NO_FLOCK = 75, 97
_MARK = "fleet-lock:"
_RECORD = re.compile(r"^fleet-record (none|running|done)(?: (-?\d+|-) (\S+))?$")
_SAFE = re.compile(r"[^A-Za-z0-9._-]")

_DIR = (
    'd=/run/fleet; [ -w /run ] || d="$HOME/.fleet"; f="$d/{key}"; '
    '[ -d "$d" ] || mkdir -p "$d" 2>/dev/null; '
    'true 2>/dev/null >>"$f.lock" || {{ echo "{mark} cannot write $f.lock" >&2; exit {no_flock}; }}; '
    'command -v flock >/dev/null || {{ echo "{mark} flock(1) is missing" >&2; exit {no_flock}; }}; '
    'exec 9>>"$f.lock"; '
)
_RUN = (
    _DIR + 'flock -n 9 || {{ echo "{mark} step {key} is still running on this host" >&2; '
    "exit {held}; }}; "
    'printf "running - %s\\n" {token} >"$f.state"; FLEET_FENCE={token}; export FLEET_FENCE; '
    "( {command}\n) 9>&-; rc=$?; "
    'printf "done %s %s\\n" "$rc" {token} >"$f.state"; exit "$rc"'
)
_PROBE = (
    _DIR + 'flock -w {wait} 9 || {{ echo "{mark} step {key} still running after {wait}s" >&2; '
    "exit {held}; }}; "
    '[ -s "$f.state" ] || {{ echo "fleet-record none"; exit 0; }}; '
    'read -r s r t <"$f.state"; echo "fleet-record $s $r $t"'
)


def lock_key(run_id: str, host: str, step_key: str) -> str:
    """The lock's file name: the run and the host as given (made file-safe), and a digest of
    the step's key (stage and step names may hold any character)."""
    digest = hashlib.sha256(step_key.encode()).hexdigest()[:12]
    return _SAFE.sub("_", f"{run_id}.{host}")[:120] + f".{digest}"


def fenced(command: str, key: str, token: int) -> str:
    """``command`` wrapped to run under the step's host-side lock (see the module's text)."""
    return _RUN.format(
        command=command, key=key, token=int(token), held=HELD, no_flock=NO_FLOCK, mark=_MARK
    )


def probe(key: str, wait: float) -> str:
    """Wait up to ``wait`` seconds for the step's lock, then print its recorded outcome."""
    seconds = max(1, int(wait + 0.999))
    return _PROBE.format(key=key, wait=seconds, held=HELD, no_flock=NO_FLOCK, mark=_MARK)


@dataclass(frozen=True)
class Record:
    """A step's outcome as the host recorded it: ``state`` none, running (its execution died
    before it ended) or done, with the exit status and the holder's token."""

    state: str
    exit_code: int | None = None
    token: str | None = None

    @property
    def finished_ok(self) -> bool:
        return self.state == "done" and self.exit_code == 0


def read_record(stdout: str) -> Record | None:
    """The record a :func:`probe` printed, or None when its output is not one."""
    match = _RECORD.match(stdout.strip())
    if match is None:
        return None
    state, code, token = match.groups()
    return Record(state, int(code) if code not in (None, "-") else None, token)


def lock_trouble(exit_code: int, stderr: str) -> str | None:
    """What a wrapper said instead of running the command (the lock held, flock missing)."""
    if exit_code not in (HELD, NO_FLOCK):
        return None
    for line in stderr.splitlines():
        if line.startswith(_MARK):
            return line.removeprefix(_MARK).strip()
    return None
