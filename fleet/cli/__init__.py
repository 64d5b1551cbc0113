"""The command line: the only place that builds concrete objects and wires them together.

One module per command group (``plan``, ``rollout``, ``status``, ``leases``...), each listed once
in :mod:`fleet.cli.registry`; :mod:`fleet.cli.root` holds the root command and error handling,
:mod:`fleet.cli.app` the per-invocation context, :mod:`fleet.cli.wiring` what rollouts share.
"""

from __future__ import annotations

from fleet.cli.root import cli, main

__all__ = ["cli", "main"]
