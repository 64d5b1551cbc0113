"""Data files fleet ships beside its code: the example plans and the VM image script.

In an installed wheel they live under ``fleet/_data/`` (see ``force-include`` in
pyproject.toml); in a source checkout (and an editable install) at the top of the repository.
"""

from __future__ import annotations

from pathlib import Path

from fleet.errors import ConfigError

_PACKAGE = Path(__file__).resolve().parent


def shipped(relative: str) -> Path:
    """The path of the shipped file ``relative`` (e.g. ``examples/plans/hello.yaml``)."""
    for base in (_PACKAGE / "_data", _PACKAGE.parent):
        path = base / relative
        if path.exists():
            return path
    raise ConfigError(f"{relative} is missing from this installation of fleet")
