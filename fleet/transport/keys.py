"""Client credentials: private key files (plain or encrypted) and ssh-agent keys.

An encrypted key is opened with the passphrase fleet was given (the ``ssh.key_passphrase``
setting, read from ``FLEET_SSH_KEY_PASSPHRASE`` or fleet.toml, never from the command line),
or, without one, used through ssh-agent when the agent holds it (matched by the ``.pub`` file
beside it). Without any key file, the agent's keys are offered in turn. Keys are parsed once
per file whatever the number of hosts and threads: parsing is the costly part.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from fleet.errors import ConfigError

_AGENT_SOCKET = "SSH_AUTH_SOCK"


def load_key(path: str, passphrase: str | None = None) -> paramiko.PKey:
    """Read a private key file (ed25519, ECDSA or RSA, OpenSSH or PEM format).

    Raises:
        ConfigError: the file is missing, unreadable, not a key, or encrypted and
            ``passphrase`` is missing or wrong (the passphrase never appears in the message).
    """
    try:
        # positional (the keyword is `passphrase` before paramiko 5, `password` since), and
        # bytes, as cryptography wants them
        secret: Any = passphrase.encode() if passphrase is not None else None
        return paramiko.PKey.from_path(Path(path).expanduser(), secret)
    except (paramiko.PasswordRequiredException, TypeError) as exc:
        # cryptography signals a passphrase-protected key with a TypeError.
        if isinstance(exc, TypeError) and "password" not in str(exc):
            raise
        raise KeyEncrypted(path) from exc
    except (OSError, ValueError, paramiko.SSHException) as exc:
        if passphrase is not None and _is_encrypted(path):
            raise ConfigError(f"cannot open SSH key {path}: wrong passphrase") from exc
        raise ConfigError(f"cannot load SSH key {path}: {exc}") from exc


def _is_encrypted(path: str) -> bool:
    """The key file loads no further than "needs a passphrase" without one."""
    try:
        load_key(path)
    except KeyEncrypted:
        return True
    except ConfigError:
        return False
    return False


class KeyEncrypted(ConfigError):
    """A private key needs a passphrase fleet was not given."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"SSH key {path} is encrypted and no passphrase was given",
            hint="load it into ssh-agent (ssh-add), or set FLEET_SSH_KEY_PASSPHRASE",
        )
        self.path = path


def agent_available() -> bool:
    """An ssh-agent socket is named in the environment."""
    return bool(os.environ.get(_AGENT_SOCKET))


@dataclass(frozen=True)
class Credentials:
    """How one connection authenticates: a parsed key, or ssh-agent (one key or any)."""

    pkey: paramiko.PKey | None = None
    agent_blob: str | None = None  # the agent key with this public blob (an encrypted file's)
    source: str = ""  # for messages: "key /path", "ssh-agent key of /path", "ssh-agent"

    def connect_kwargs(self) -> tuple[dict[str, Any], paramiko.Agent | None]:
        """``SSHClient.connect`` arguments, and the agent connection to close afterwards.

        Each connection talks to the agent on its own socket: paramiko's agent client is not
        safe to share between threads.
        """
        base: dict[str, Any] = {"look_for_keys": False}
        if self.pkey is not None:
            return {**base, "pkey": self.pkey, "allow_agent": False}, None
        if self.agent_blob is None:
            return {**base, "allow_agent": True}, None
        agent = paramiko.Agent()
        for key in agent.get_keys():
            if key.get_base64() == self.agent_blob:
                return {**base, "pkey": key, "allow_agent": False}, agent
        agent.close()
        raise ConfigError(
            f"{self.source}: ssh-agent does not hold this key",
            hint="add it with ssh-add, or set FLEET_SSH_KEY_PASSPHRASE",
        )


class KeyRing:
    """Resolves a host's key file into :class:`Credentials`, parsing each file once.

    Args:
        passphrase: opens encrypted key files (None: use the agent for them).
        agent: whether ssh-agent may be used (when ``SSH_AUTH_SOCK`` names one).
    """

    def __init__(self, *, passphrase: str | None = None, agent: bool = False) -> None:
        self._passphrase = passphrase
        self._agent = agent
        self._keys: dict[str, paramiko.PKey | KeyEncrypted] = {}
        self._lock = threading.Lock()

    def key(self, key_file: str) -> paramiko.PKey:
        """The parsed private key of ``key_file``, loaded on first use."""
        loaded = self._load(key_file)
        if isinstance(loaded, KeyEncrypted):
            raise loaded
        return loaded

    def _load(self, key_file: str) -> paramiko.PKey | KeyEncrypted:
        path = str(Path(key_file).expanduser().resolve())
        with self._lock:
            loaded = self._keys.get(path)
            if loaded is None:
                try:
                    loaded = load_key(path, self._passphrase)
                except KeyEncrypted as exc:
                    loaded = exc
                self._keys[path] = loaded
            return loaded

    def credentials(self, host: str, key_file: str | None) -> Credentials:
        """How ``host`` authenticates with ``key_file`` (None: the agent's keys).

        Raises:
            ConfigError: no key and no agent; an encrypted key without passphrase or agent.
        """
        use_agent = self._agent and agent_available()
        if key_file is None:
            if use_agent:
                return Credentials(source="ssh-agent")
            raise ConfigError(
                f"{host}: no SSH key: set key_file for this host",
                hint="or start ssh-agent with the key added (ssh.agent is on by default)",
            )
        loaded = self._load(key_file)
        if not isinstance(loaded, KeyEncrypted):
            return Credentials(pkey=loaded, source=f"key {key_file}")
        public = Path(key_file).expanduser().with_name(Path(key_file).name + ".pub")
        if not use_agent:
            raise loaded
        try:
            blob = public.read_text().split()[1]
        except (OSError, IndexError):
            return Credentials(source=f"ssh-agent (for the encrypted key {key_file})")
        return Credentials(agent_blob=blob, source=f"ssh-agent key of {key_file}")
