"""The local code and files a plan uses: python stage calls, put sources, templates.

A plan names them relative to its own file (``tasks.py:deploy``, ``files/site``,
``templates/app.conf.j2``) or as an importable module (``package.module:func``). This module
resolves those names without running anything (a module is found with ``find_spec``, never
imported) and digests their content, so that the plan's hash changes when the code it calls
or a file it pushes does: a resumed run whose code changed is refused, and ``fleet plan`` shows
which code each stage will call.

Built-in plans call ``fleet.plans.MODULE:FUNCTION`` (fleet's own code, not digested).
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

#: ``python`` stages calling this prefix run fleet's built-in plan functions.
BUILTIN_PREFIX = "fleet.plans."
_MODULE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_FUNCTION = re.compile(r"[A-Za-z_]\w*")


class CodeError(ValueError):
    """A call or file reference that cannot be resolved (the message says why)."""


def base_dir(source: str) -> Path | None:
    """The directory a plan's relative names start from (None for built-in and ad-hoc plans)."""
    if source.startswith(("builtin:", "adhoc")) or not source:
        return None
    return Path(source).expanduser().resolve().parent


def split_call(call: str) -> tuple[str, str]:
    """(``tasks.py`` or ``package.module``, function name) of a ``call:`` value.

    Raises:
        CodeError: not ``FILE.py:FUNCTION`` or ``MODULE:FUNCTION``.
    """
    target, sep, function = call.rpartition(":")
    if not sep or not _FUNCTION.fullmatch(function) or not target:
        raise CodeError(f"call {call!r} is not FILE.py:FUNCTION or package.module:FUNCTION")
    if not target.endswith(".py") and not _MODULE.fullmatch(target):
        raise CodeError(f"call {call!r}: {target!r} is neither a .py file nor a module name")
    return target, function


def is_builtin(call: str) -> bool:
    return call.startswith(BUILTIN_PREFIX)


def call_file(call: str, base: Path | None) -> Path | None:
    """The source file a call runs: the plan's neighbour for ``FILE.py``, the module's file
    (found without importing it) otherwise; None for fleet's built-in plans.

    Raises:
        CodeError: the file or module does not exist.
    """
    if is_builtin(call):
        return None
    target, _ = split_call(call)
    if target.endswith(".py"):
        if base is None:
            raise CodeError(f"call {call!r}: a file next to the plan needs a plan file")
        path = (base / target).resolve()
        if not path.is_file():
            raise CodeError(f"call {call!r}: no file {path}")
        return path
    try:
        spec = importlib.util.find_spec(target)
    except (ImportError, ValueError) as exc:
        raise CodeError(f"call {call!r}: {exc}") from exc
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        raise CodeError(f"call {call!r}: no importable module {target!r}")
    return Path(spec.origin)


def local_path(name: str, base: Path | None, what: str) -> Path:
    """A put source or template named relative to the plan.

    Raises:
        CodeError: no plan file to be relative to, or nothing there.
    """
    path = Path(name).expanduser()
    if not path.is_absolute():
        if base is None:
            raise CodeError(f"{what} {name!r}: a relative path needs a plan file")
        path = base / path
    path = path.resolve()
    if not path.exists():
        raise CodeError(f"{what} {name!r}: no such file or directory: {path}")
    return path


def digest(path: Path) -> str:
    """sha256 of a file, or of a directory's files (relative names and contents, sorted)."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        h.update(str(file.relative_to(path) if file != path else file.name).encode() + b"\0")
        h.update(hashlib.sha256(file.read_bytes()).digest())
    return h.hexdigest()


@dataclass(frozen=True)
class FileOp:
    """A file step, rendered: ``source`` is the local file, directory or template (absolute),
    ``dest`` the path on the host (placeholders filled in, unquoted)."""

    kind: Literal["put", "template"]
    source: str
    dest: str
    mode: str | None = None
    owner: str | None = None

    def describe(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in (("mode", self.mode), ("owner", self.owner)) if v)
        return f"{self.kind} {self.source} -> {self.dest}{extra}"
