"""The stages a plan is made of, one module per kind, all listed in :mod:`.registry`.

:mod:`.ssh` (steps through the host's shell), :mod:`.call` (a built-in plan's Python function),
:mod:`.boot` (rescue, disk, reboot, wait_ssh through the provider) and :mod:`.reinstall`. A
stage sees only the narrow :class:`~fleet.stages.context.Context` of its host's pipeline, never
the pipeline itself, so this package imports nothing from :mod:`fleet.engine`.
"""
