"""Steps fenced on the host too: each step's command runs under a host-side lock.

A remote command outlives fleet (a kill, a lost connection: the shell on the host goes on), so a
resume must not start a second execution of a step beside one still running, nor run again a
step that did finish but whose end fleet never journaled. Each ``apply`` therefore runs inside a
small POSIX shell wrapper, made of shell builtins only (no process is started for it, and its
state lives in memory: a step costs what it cost before), that on the host:

* keeps the step's state in ``DIR/KEY.state``: one line ``STATE RC TOKEN PID START``. ``DIR`` is
  ``/run/fleet`` when ``/run`` is writable (root), else ``/dev/shm/fleet-$LOGNAME`` (owned by the
  login, mode 700), both in memory and emptied by a reboot, else ``$HOME/.fleet`` (rewriting a
  small file on a disk file system costs a flush there); ``KEY`` names the run, host and step;
* refuses to run when that state names a newer holder (a higher fencing token: a stale holder's
  command that arrives late changes nothing), or an execution still running: the wrapper shell
  named by ``PID`` is alive and started at ``START`` (from ``/proc``, so a reused pid is not
  mistaken for it). The lock is thus held by the remote process itself, for as long as it runs;
* writes ``running - TOKEN PID START`` (its own pid and start), exports ``FLEET_FENCE=TOKEN`` to
  the command, runs it in the same shell, and records ``done RC TOKEN`` on exit (an ``EXIT``
  trap: an ``exit`` inside the command is recorded too).

A step whose start was journaled but not its end is *in doubt*: before anything else, a
:func:`probe` waits while the recorded execution is still running (up to the step's timeout, then
fails clearly), prints the recorded outcome and stamps the state with the new holder's token.
Recorded ``done 0``: the step ran to its end; it is not run again. Anything else (no record, a
failure, or ``running`` left by an execution that died): the step runs as usual, from its
``check``.

A command that replaces the shell (``exec``) or sets its own ``EXIT`` trap leaves no ``done``
record: its end is then known only from the journal, as before.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

#: Exit statuses of a wrapper that did not run the command, with a marker line on stderr.
HELD, NO_LOCK = 75, 97
_MARK = "fleet-lock:"
_RECORD = re.compile(r"^fleet-record (none|running|done) (-?\d+|-) (\d+|-)$")
_SAFE = re.compile(r"[^A-Za-z0-9._-]")

# The wrappers travel with every step's command, so they are written tight. Shell variables:
# _d the directory, _f the state file; _s _r _t _p _b a state line (state, status, token, pid,
# start); _l a /proc stat line, split on blanks (a shell's name has none; a process whose name
# has some is not one of our wrappers anyway: its fields shift and its start does not match),
# so field 22 is the process's start.
_PRELUDE = (
    # /run (root) or /dev/shm: memory, emptied by a reboot; HOME where neither can be used
    'if [ -w /run ];then _d=/run/fleet;else _d="/dev/shm/fleet-${{LOGNAME:-$USER}}";fi;'
    '[ -d "$_d" ]||mkdir -m700 -p "$_d" 2>/dev/null;'
    '[ -O "$_d" ]&&[ -w "$_d" ]||{{ _d="$HOME/.fleet";mkdir -p "$_d" 2>/dev/null;}};'
    '_f="$_d/{key}.state";'
)
# ALIVE: the state's pid runs and started when the state says (no function: shorter inline)
_ALIVE = '[ "$_s" = running ]&&[ -r /proc/$_p/stat ]&&read -r _l </proc/$_p/stat&&set -- $_l&&[ "${{22}}" = "$_b" ]'
# refuse when the state names a newer holder (a higher token)
_NEWER = (
    "case $_t in *[!0-9]*|'');;*)[ $_t -le {token} ]||{{ echo {mark} newer $_t >&2;exit {held};}};;"
    "esac;"
)
_RUN = (
    _PRELUDE
    + 'if read -r _s _r _t _p _b 2>/dev/null <"$_f";then '
    + _NEWER
    + _ALIVE
    + "&&{{ echo {mark} running >&2;exit {held};}};fi;"
    'read -r _l </proc/$$/stat;set -- $_l;echo running - {token} $$ ${{22}} >"$_f"||'
    "{{ echo {mark} unwritable >&2;exit {no_lock};}};"
    "trap 'echo done $? {token} - - >\"$_f\"' EXIT;set --;FLEET_FENCE={token};export FLEET_FENCE;\n"
    "{command}\n"
)
_PROBE = (
    _PRELUDE + "_i=0;"
    'while read -r _s _r _t _p _b 2>/dev/null <"$_f"&&' + _ALIVE + ";do "
    "[ $_i -ge {wait} ]&&{{ echo {mark} still-running {wait} >&2;exit {held};}};"
    "_i=$((_i+1));sleep 1;done;" + _NEWER + "echo fleet-record ${{_s:-none}} ${{_r:--}} ${{_t:--}};"
    'echo ${{_s:-none}} ${{_r:--}} {token} - - >"$_f"'
)
#: What the markers a wrapper prints (``fleet-lock: WORD [ARG]``) mean.
_TROUBLES = {
    "newer": "the step belongs to a newer holder on the host (token {})",
    "running": "the step is still running on this host (an earlier execution)",
    "still-running": "the step is still running on this host after {}s (an earlier execution)",
    "unwritable": "the step's state cannot be written on the host",
}


def lock_key(run_id: str, host: str, step_key: str) -> str:
    """The state file's name: the run (made file-safe) and a digest of the host and the step
    (names may hold any character; hosts may share a directory, as the sandbox's do)."""
    digest = hashlib.sha256(f"{host}\n{step_key}".encode()).hexdigest()[:12]
    return _SAFE.sub("_", run_id)[:80] + f"-{digest}"


def fenced(command: str, key: str, token: int) -> str:
    """``command`` wrapped to run under the step's host-side lock (see the module's text)."""
    return _RUN.format(
        command=command, key=key, token=int(token), held=HELD, no_lock=NO_LOCK, mark=_MARK
    )


def probe(key: str, wait: float, token: int) -> str:
    """Wait up to ``wait`` seconds for a recorded execution still running, print its outcome,
    and stamp the step with ``token`` (a later, stale command of an older holder refuses)."""
    seconds = max(1, int(wait + 0.999))
    return _PROBE.format(key=key, wait=seconds, token=int(token), held=HELD, mark=_MARK)


@dataclass(frozen=True)
class Record:
    """A step's outcome as the host recorded it: ``state`` none, running (its execution died
    before it ended) or done, with the exit status and the token of the last holder."""

    state: str
    exit_code: int | None = None
    token: int | None = None

    @property
    def finished_ok(self) -> bool:
        return self.state == "done" and self.exit_code == 0


def read_record(stdout: str) -> Record | None:
    """The record a :func:`probe` printed, or None when its output is not one."""
    match = _RECORD.match(stdout.strip())
    if match is None:
        return None
    state, code, token = match.groups()
    return Record(
        state,
        int(code) if code != "-" else None,
        int(token) if token != "-" else None,
    )


def lock_trouble(exit_code: int, stderr: str) -> str | None:
    """What a wrapper said instead of running the command (the lock held, a newer holder, a
    state file it cannot write)."""
    if exit_code not in (HELD, NO_LOCK):
        return None
    for line in stderr.splitlines():
        if line.startswith(_MARK):
            word, _, arg = line.removeprefix(_MARK).strip().partition(" ")
            return _TROUBLES.get(word, word).format(arg)
    return None
