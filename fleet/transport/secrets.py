"""Secrets the transport needs (a host's sudo password), read from where the inventory says.

A secret is named by its source, never written in an inventory: ``env:NAME`` (an environment
variable of the fleet process) or ``file:PATH`` (the first line of a file, e.g. one a secret
manager mounts). The value is read when it is needed, handed to the remote side on a channel's
stdin, and never logged, journaled or put on a command line.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from fleet.errors import ConfigError

SOURCES = ("env:", "file:")
#: The prompt fleet asks sudo to print (``sudo -S -p``): answered with the host's password.
SUDO_PROMPT = "[fleet sudo password]"


def check_source(source: str) -> str:
    """``source`` if it is ``env:NAME`` or ``file:PATH``; else a ValueError saying the forms
    (and never repeating the value: it may be the secret itself)."""
    kind, _, name = source.partition(":")
    if f"{kind}:" not in SOURCES or not name.strip():
        raise ValueError("a secret source is env:NAME or file:PATH")
    return source


def read(source: str | None, host: str) -> str | None:
    """The secret named by ``source`` (None: no secret).

    Raises:
        ConfigError: the variable is unset or the file unreadable (the message names the
            source, never a value).
    """
    if source is None:
        return None
    kind, _, name = source.partition(":")
    if kind == "env":
        value = os.environ.get(name)
        if value is None:
            raise ConfigError(f"{host}: sudo password: environment variable {name} is not set")
        return value
    if kind == "file":
        try:
            text = Path(name).expanduser().read_text()
        except OSError as exc:
            raise ConfigError(f"{host}: sudo password: cannot read {name}: {exc.strerror}") from exc
        return text.splitlines()[0] if text else ""
    raise ConfigError(f"{host}: sudo password: unknown secret source {kind!r} (env: or file:)")


def sudo_command(command: str) -> str:
    """``command`` run as root by sudo, which prints fleet's prompt when it wants a password."""
    return f"sudo -S -p {shlex.quote(SUDO_PROMPT)} -- /bin/sh -c {shlex.quote(command)}"
