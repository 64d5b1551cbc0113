"""fleet reinstall commands (registered on the CLI by being imported from fleet.cli)."""

from __future__ import annotations
