"""fleet's ``fabric.Connection``: Fabric's own class, with what a rollout needs on top.

Imported on first use (Fabric and Invoke cost import time a run that opens no connection
should not pay). The subclass changes nothing of Fabric's behaviour that a fabfile task relies
on; it adds:

* ``fleet``: what a Python stage's function may read besides the connection (the host record,
  vars, facts, params, a note taker), set by the stage for the duration of its call;
* a record of every ``run``/``sudo``/``put``/``get`` result of that call, so a Python stage's
  output is journaled like a shell step's;
* ``sudo``'s password from the host's secret source (never in a shared config object);
* ``inline_ssh_env`` as a real attribute: Fabric would otherwise write it into the one
  ``Config`` all connections share at every construction (a config merge racing other
  threads' reads);
* a quick path for setting the attributes the class defines: Invoke's data proxy asks
  ``dir(self)`` at every assignment, half the cost of building a connection.
"""

from __future__ import annotations

from typing import Any

import fabric
from paramiko.config import SSHConfig

from fleet.transport import secrets


class Recorder:
    """Where a connection reports the commands it ran (a Python stage installs one)."""

    def command(self, command: str, exit_code: int, stdout: str, stderr: str) -> None:
        raise NotImplementedError


class FleetConnection(fabric.Connection):  # type: ignore[misc]
    """One host's connection (see the module docstring)."""

    inline_ssh_env = None
    fleet: Any = None  # a stage's view of the host while it runs (see fleet.stages.usercall)
    recorder: Recorder | None = None
    sudo_source: str | None = None  # ``env:NAME`` / ``file:PATH`` of the sudo password
    host_name: str = ""  # the inventory name, for messages

    def __setattr__(self, key: str, value: Any) -> None:
        # Same outcome as Invoke's DataProxy.__setattr__ for the class's own attributes (a
        # real attribute is set as such); anything else goes the proxy's way.
        if key in _CLASS_ATTRIBUTES:
            object.__setattr__(self, key, value)
        else:
            super().__setattr__(key, value)

    def run(self, command: str, **kwargs: Any) -> Any:
        return self._recorded(command, lambda: super(FleetConnection, self).run(command, **kwargs))

    def sudo(self, command: str, **kwargs: Any) -> Any:
        if "password" not in kwargs and self.sudo_source is not None:
            kwargs["password"] = secrets.read(self.sudo_source, self.host_name)
        return self._recorded(
            f"sudo {command}", lambda: super(FleetConnection, self).sudo(command, **kwargs)
        )

    def put(self, *args: Any, **kwargs: Any) -> Any:
        result = super().put(*args, **kwargs)
        self._note(f"put {getattr(result, 'remote', '?')}")
        return result

    def get(self, *args: Any, **kwargs: Any) -> Any:
        result = super().get(*args, **kwargs)
        self._note(f"get {getattr(result, 'remote', '?')}")
        return result

    def _recorded(self, command: str, call: Any) -> Any:
        from invoke.exceptions import UnexpectedExit  # Fabric's dependency: loaded already

        try:
            result = call()
        except UnexpectedExit as exc:
            self._report(command, exc.result)
            raise
        self._report(command, result)
        return result

    def _report(self, command: str, result: Any) -> None:
        if self.recorder is not None:
            self.recorder.command(
                command, int(result.exited), str(result.stdout), str(result.stderr)
            )

    def _note(self, text: str) -> None:
        if self.recorder is not None:
            self.recorder.command(text, 0, "", "")


_CLASS_ATTRIBUTES = frozenset(dir(FleetConnection))


def shared_config() -> Any:
    """The one ``fabric.Config`` of the process: no ssh_config, YAML or environment files read
    (fleet resolves ssh_config itself when asked), output hidden (a rollout's threads must not
    print over each other: it is journaled instead), no local stdin forwarded."""
    return fabric.Config(
        ssh_config=SSHConfig(),
        lazy=True,
        overrides={"run": {"hide": True, "in_stream": False}},
    )
