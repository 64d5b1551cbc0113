"""Loading Ansible inventories: sources, vars directories, precedence, every problem at once."""

from __future__ import annotations

import gc
from collections.abc import Sequence
from pathlib import Path

from fleet.inventory.limits import DEFAULT_LIMITS, Limits
from fleet.inventory.model import Model
from fleet.inventory.problems import Problems, Site
from fleet.inventory.records import Inventory
from fleet.inventory.resolve import DEFAULT_PORT, DEFAULT_USER, Resolver
from fleet.inventory.sources import find_sources, read_source_file
from fleet.inventory.varsdirs import load_vars_files

__all__ = ["DEFAULT_PORT", "DEFAULT_USER", "load_inventory"]


def load_inventory(paths: Sequence[Path | str], *, limits: Limits = DEFAULT_LIMITS) -> Inventory:
    """Load Ansible inventory files and directories (YAML or INI, with ``group_vars/`` and
    ``host_vars/``), as ``ansible-inventory -i PATH ...`` would.

    Python's cyclic garbage collector is paused meanwhile: loading builds hundreds of thousands
    of objects, none in a cycle, and the collector would walk them again and again (its cost
    grows faster than the inventory). It is resumed at the end, whatever happens.

    Raises:
        InventoryError: naming the file, line and key of the problem, or
            :class:`~fleet.inventory.problems.InventoryProblems` listing every problem found.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        return _load(paths, limits)
    finally:
        if paused:
            gc.enable()


def _load(paths: Sequence[Path | str], limits: Limits) -> Inventory:
    problems = Problems()
    model = Model(limits, problems)
    sources = find_sources(paths, problems)
    seen: set[Path] = set()
    for source in sources:
        for path in source.files:
            real = path.resolve()
            if real not in seen:  # the same file named twice is read once
                seen.add(real)
                read_source_file(path, model)
    files = load_vars_files(sources, model)
    inventory = Inventory(())
    if model.hosts:  # also after problems: resolving finds more (loops, conflicts)
        inventory = Resolver(model, files, len(sources)).run()
    elif not problems:
        where = ", ".join(str(p) for p in paths)
        problems.add(Site(where), "the inventory defines no host")
    problems.raise_if_any()
    return inventory
