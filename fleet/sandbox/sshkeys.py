"""Key pairs of the sandbox hosts and their operators, made in-process with ``cryptography``."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet.errors import ConfigError, UsageError


def generate_ed25519(comment: str = "") -> tuple[str, str]:
    """A new ed25519 key pair: (private key in OpenSSH PEM format, public ``authorized_keys`` line).

    In-process with ``cryptography``: spawning ssh-keygen for each of hundreds of hosts would
    cost more than starting their sshd.
    """
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    return private, public_line(key, comment)


def public_line(key: Ed25519PrivateKey, comment: str = "") -> str:
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return f"{public.decode()} {comment}".strip()


def load_ed25519(path: Path) -> tuple[str, str]:
    """(private PEM, public line) of the key stored at ``path``."""
    private = path.read_text()
    try:
        key = serialization.load_ssh_private_key(private.encode(), password=None)
    except ValueError as exc:
        raise ConfigError(
            f"{path}: not an OpenSSH private key", hint="delete it to get a new one"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: not an ed25519 key", hint="delete it to get a new one")
    return private, public_line(key)


def key_pair(public_line: str) -> tuple[str, str]:
    """(type, base64 blob) of a public key line."""
    key_type, blob = public_line.split()[:2]
    return key_type, blob


def check_public_key(line: str, what: str) -> str:
    fields = line.split()
    if len(fields) < 2 or "\n" in line.strip() or not fields[0].startswith(("ssh-", "ecdsa-")):
        raise UsageError(f"{what}: not an OpenSSH public key line: {line[:60]!r}")
    return line.strip()
