"""File steps (``put`` and ``template``): a local file, directory or rendered template made the
content of a path on the host.

* **check** is the host's sha256 (and mode and owner, when the step sets them) of every file,
  read in one command: a step whose files all match ends *converged* and changes nothing.
* **apply** sends only the files that differ, with Fabric's ``put`` (SFTP), into a staging
  directory ``mktemp`` made on the host; then, in one shell command (under sudo when the step
  says so), each is copied next to its destination, given its mode and owner, and renamed over
  it: a reader of the file sees the old content or the new one, never a part.
* **verify** reads the checksums again.

The step's output (journaled, shown by ``fleet status``) lists each changed file, with a
unified diff for a template. Files on the host that the source does not have are left alone.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import posixpath
import shlex
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet.errors import PayloadError, TransportError
from fleet.stages import template
from fleet.transport.base import CommandResult

if TYPE_CHECKING:
    from fleet.plan import RenderedStep
    from fleet.plancode import FileOp
    from fleet.stages.context import Context

_DIFF_LINES = 200


@dataclass(frozen=True)
class Wanted:
    """One file the step makes: where on the host, and what it must hold."""

    dest: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def wanted_files(ctx: Context, op: FileOp) -> list[Wanted]:
    """The files of ``op``: the rendered template, the file, or every file of the directory."""
    source = Path(op.source)
    if op.kind == "template":
        names = template.context(ctx.host, ctx.vars, ctx.facts)
        return [Wanted(op.dest, template.render(op.source, names))]
    if source.is_file():
        return [Wanted(op.dest, source.read_bytes())]
    files = sorted(p for p in source.rglob("*") if p.is_file())
    return [
        Wanted(posixpath.join(op.dest, p.relative_to(source).as_posix()), p.read_bytes())
        for p in files
    ]


def state_command(files: list[Wanted]) -> str:
    """One line per file: ``SHA256 MODE USER:GROUP``, or ``missing``."""
    paths = " ".join(shlex.quote(f.dest) for f in files)
    return (
        f'for f in {paths}; do if [ -f "$f" ]; then '
        'printf \'%s %s\\n\' "$(sha256sum < "$f" | cut -c1-64)" "$(stat -c \'%a %U:%G\' -- "$f")"; '
        "else echo missing; fi; done"
    )


def differing(op: FileOp, files: list[Wanted], listing: str) -> list[Wanted]:
    """The files whose content, mode or owner on the host is not what the step wants."""
    lines = listing.splitlines()
    if len(lines) != len(files):
        raise PayloadError(f"unexpected answer listing {len(files)} files: {listing[-200:]!r}")
    out = []
    for wanted, line in zip(files, lines, strict=True):
        fields = line.split()
        if fields == ["missing"] or len(fields) != 3:
            out.append(wanted)
            continue
        sha, mode, owner = fields
        if sha != wanted.sha256 or not _mode_ok(op.mode, mode) or not _owner_ok(op.owner, owner):
            out.append(wanted)
    return out


def _mode_ok(want: str | None, got: str) -> bool:
    return want is None or int(want, 8) == int(got, 8)


def _owner_ok(want: str | None, got: str) -> bool:
    if want is None:
        return True
    user, _, group = want.partition(":")
    got_user, _, got_group = got.partition(":")
    return user == got_user and (not group or group == got_group)


def install_command(op: FileOp, staged: list[tuple[str, Wanted]], staging: str) -> str:
    """Copy each staged file next to its destination, set mode and owner, rename it over."""
    parts = []
    for tmp, wanted in staged:
        dest = shlex.quote(wanted.dest)
        new = shlex.quote(wanted.dest + ".fleet-new")
        parts.append(f"mkdir -p -- {shlex.quote(posixpath.dirname(wanted.dest) or '/')}")
        parts.append(f"cp -- {shlex.quote(tmp)} {new}")
        if op.mode:
            parts.append(f"chmod {op.mode} -- {new}")
        if op.owner:
            parts.append(f"chown {shlex.quote(op.owner)} -- {new}")
        parts.append(f"mv -f -- {new} {dest}")
    parts.append(f"rm -rf -- {shlex.quote(staging)}")
    return " && ".join(parts)


def run_step(ctx: Context, step: RenderedStep) -> tuple[str, CommandResult]:
    """Check, apply and verify one file step; ("converged" | "applied", what to journal)."""
    op = step.file
    assert op is not None
    started = time.monotonic()
    if op.dest.startswith("~/"):  # the login user's home, as the host says it is
        home = _must(ctx, step, 'printf %s "$HOME"').stdout.rstrip("/")
        op = replace(op, dest=home + op.dest[1:])
    files = wanted_files(ctx, op)
    changed = differing(op, files, _must(ctx, step, state_command(files)).stdout)
    if not changed:
        return "converged", _report(step, f"{len(files)} file(s) already as wanted\n", started)
    if step.destructive:
        ctx.fence()  # still ours right before we overwrite
    text = _send(ctx, step, op, changed)
    left = differing(op, files, _must(ctx, step, state_command(files)).stdout)
    if left:
        names = ", ".join(w.dest for w in left[:5])
        raise PayloadError(f"{step.key}: verify: still not as wanted after apply: {names}")
    return "applied", _report(step, text, started)


def _send(ctx: Context, step: RenderedStep, op: FileOp, changed: list[Wanted]) -> str:
    """Stage the changed files on the host with Fabric, then install them in one command."""
    session: Any = ctx.session()
    connection = getattr(session, "connection", None)
    if connection is None:
        raise PayloadError(f"{step.key}: file steps need an SSH session with Fabric")
    staging = _must(ctx, step, 'mktemp -d "${TMPDIR:-/tmp}/fleet-put.XXXXXX"').stdout.strip()
    staged = []
    lines = []
    for n, wanted in enumerate(changed):
        tmp = f"{staging}/{n}"
        try:
            connection.put(io.BytesIO(wanted.content), remote=tmp)
        except (OSError, EOFError) as exc:
            raise TransportError(
                f"{step.key}: cannot send {wanted.dest}: {exc}", host=ctx.host.name
            ) from exc
        staged.append((tmp, wanted))
        lines.append(f"changed {wanted.dest} (sha256 {wanted.sha256[:12]})")
        if op.kind == "template":
            lines += _diff(ctx, step, wanted)
    _must(ctx, step, install_command(op, staged, staging), sudo=step.sudo)
    return "\n".join(lines) + "\n"


def _diff(ctx: Context, step: RenderedStep, wanted: Wanted) -> list[str]:
    old = ctx.run_command(f"cat -- {shlex.quote(wanted.dest)}", step.timeout)
    before = old.stdout.splitlines(keepends=True) if old.ok else []
    after = wanted.content.decode(errors="replace").splitlines(keepends=True)
    diff = list(difflib.unified_diff(before, after, wanted.dest + " (host)", wanted.dest))
    return [line.rstrip("\n") for line in diff[:_DIFF_LINES]]


def _must(ctx: Context, step: RenderedStep, command: str, *, sudo: bool = False) -> CommandResult:
    result = ctx.run_command(command, step.timeout, sudo=sudo)
    if not result.ok:
        raise PayloadError(
            f"{step.key}: `{command[:60]}...` exited {result.exit_code}: {result.excerpt(300)}"
        )
    return result


def _report(step: RenderedStep, text: str, started: float) -> CommandResult:
    """The step's outcome as a command result, so it is journaled like a command's output."""
    return CommandResult(step.apply, 0, text, "", time.monotonic() - started)
