"""An ssh_config file (``~/.ssh/config``) applied to endpoints, when the operator asks for it.

fleet reads it itself (paramiko's parser) rather than letting Fabric do so, so that a
``ProxyJump`` it names becomes a bastion fleet opens with its own host-key policy. An entry is
looked up by the host's address (what Ansible hands to ssh) and then by its inventory name, and
fills only what the inventory left at its default: ``HostName``, ``Port`` (inventory 22),
``User`` (inventory root), ``IdentityFile`` (no key_file), ``ProxyJump`` (no bastion) and
``ConnectTimeout``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import paramiko

from fleet.errors import ConfigError
from fleet.transport.base import Endpoint, parse_jump

_MAX_HOPS = 8


class SshConfigFile:
    """A parsed ssh_config; :meth:`apply` rewrites endpoints by it."""

    def __init__(self, path: str) -> None:
        self.path = str(Path(path).expanduser())
        try:
            self._config = paramiko.SSHConfig.from_path(self.path)
        except (OSError, ValueError, paramiko.SSHException) as exc:
            raise ConfigError(f"ssh.config_file {self.path}: cannot read: {exc}") from exc

    def _entry(self, endpoint: Endpoint) -> paramiko.SSHConfigDict:
        entry = self._config.lookup(endpoint.address)
        if len(entry) <= 1 and endpoint.host != endpoint.address:  # only "hostname": no match
            entry = self._config.lookup(endpoint.host)
        return entry

    def apply(self, endpoint: Endpoint, depth: int = 0) -> Endpoint:
        """``endpoint`` with what its ssh_config entry sets and the inventory left default."""
        if depth > _MAX_HOPS:
            raise ConfigError(f"{self.path}: ProxyJump chain of {endpoint.host} is too long")
        entry = self._entry(endpoint)
        try:
            changes = self._changes(endpoint, entry)
        except ValueError as exc:
            raise ConfigError(f"{self.path}: {endpoint.host}: {exc}") from exc
        resolved = replace(endpoint, **changes) if changes else endpoint
        if resolved.gateway is not None:
            resolved = replace(resolved, gateway=self.apply(resolved.gateway, depth + 1))
        return resolved

    @staticmethod
    def _changes(endpoint: Endpoint, entry: paramiko.SSHConfigDict) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        if entry.get("hostname") and entry["hostname"] != endpoint.address:
            changes["address"] = entry["hostname"]
        if "port" in entry and endpoint.port == 22:
            changes["port"] = int(entry["port"])
        if "user" in entry and endpoint.user == "root":
            changes["user"] = entry["user"]
        if entry.get("identityfile") and endpoint.key_file is None:
            changes["key_file"] = str(Path(entry["identityfile"][0]).expanduser())
        if "connecttimeout" in entry and endpoint.connect_timeout is None:
            changes["connect_timeout"] = float(entry["connecttimeout"])
        if "proxyjump" in entry and endpoint.gateway is None:
            changes["gateway"] = parse_jump(
                entry["proxyjump"],
                user=changes.get("user", endpoint.user),
                key_file=changes.get("key_file", endpoint.key_file),
            )
        return changes
