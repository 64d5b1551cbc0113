"""Inventory sources: files and directories as Ansible walks them, read into the model.

A directory is read recursively in name order, skipping what Ansible skips: hidden entries,
``group_vars``, ``host_vars``, ``vars_plugins``, and names ending in ``.pyc .pyo .swp .bak ~ .rpm
.md .txt .rst .orig .cfg .retry``. A file is YAML when its extension says so (``.yaml``, ``.yml``,
``.json``), YAML or else INI when it has none (as Ansible tries them), and INI otherwise. Inventory
scripts and plugin configurations are refused by name: fleet runs nothing to build its inventory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fleet.errors import InventoryError
from fleet.inventory.iniinv import read_ini_inventory
from fleet.inventory.model import Model
from fleet.inventory.problems import Problems, Site
from fleet.inventory.yamlinv import read_yaml_inventory
from fleet.inventory.yamlread import YamlDoc, read_yaml

YAML_EXTENSIONS = (".yaml", ".yml", ".json")
_IGNORED = re.compile(
    r"^\.|^host_vars$|^group_vars$|^vars_plugins$"
    r"|(\.pyc|\.pyo|\.swp|\.bak|~|\.rpm|\.md|\.txt|\.rst|\.orig|\.cfg|\.retry)$"
)


@dataclass
class Source:
    """One inventory path as given, its files, and the directory of its group_vars/host_vars."""

    given: str
    vars_dir: Path
    files: list[Path] = field(default_factory=list)


def find_sources(paths: Sequence[Path | str], problems: Problems) -> list[Source]:
    if not paths:
        raise InventoryError("no inventory file given", path="<inventory>")
    sources = []
    for item in paths:
        path = Path(item).expanduser()
        if path.is_dir():
            source = Source(str(item), path, _walk(path))
            if not source.files:
                problems.add(Site(str(path)), "no inventory file in this directory")
        elif path.is_file():
            source = Source(str(item), path.parent, [path])
        else:
            problems.add(Site(str(path)), "no such inventory file or directory")
            continue
        sources.append(source)
    return sources


def _walk(top: Path) -> list[Path]:
    """The files of a directory tree, depth first in name order (no recursion)."""
    found: list[Path] = []
    stack = [top]
    while stack:
        directory = stack.pop()
        try:
            names = sorted(entry.name for entry in directory.iterdir())
        except OSError:
            continue
        below = []
        for name in names:
            if _IGNORED.search(name):
                continue
            path = directory / name
            if path.is_dir():
                below.append(path)
            elif path.is_file():
                found.append(path)
        stack.extend(reversed(below))
    return found


def read_text(path: Path, limit: int, problems: Problems) -> str | None:
    """A file's text, or None after reporting why it cannot be read (size, UTF-8)."""
    try:
        size = path.stat().st_size
        if size > limit:
            problems.add(Site(str(path)), f"{size} bytes: larger than the limit of {limit}")
            return None
        data = path.read_bytes()
    except OSError as exc:
        problems.add(Site(str(path)), f"cannot read: {exc.strerror or exc}")
        return None
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        problems.add(
            Site(str(path), line),
            f"not valid UTF-8 (byte {data[exc.start]:#04x} at column {column})",
            "save the file as UTF-8",
        )
        return None


def read_source_file(path: Path, model: Model) -> None:
    """Read one inventory file into ``model`` (YAML or INI, see the module docstring)."""
    problems = model.problems
    name = str(path)
    if path.suffix == ".toml":
        problems.add(Site(name), "TOML inventories are not supported: write it as YAML or INI")
        return
    text = read_text(path, model.limits.file_bytes, problems)
    if text is None:
        return
    if text.startswith("#!") and os.access(path, os.X_OK):
        problems.add(
            Site(name, 1),
            "an inventory script: fleet runs nothing to build its inventory",
            "save its output and point fleet at that: ./script --list > hosts.json",
        )
        return
    if path.suffix in YAML_EXTENSIONS:
        _read_yaml(name, text, model)
        return
    doc = _as_yaml(name, text, model) if path.suffix == "" else None
    if doc is not None:
        read_yaml_inventory(doc, model)
    else:
        read_ini_inventory(name, text.splitlines(), model)


def _read_yaml(name: str, text: str, model: Model) -> None:
    try:
        doc = read_yaml(name, text, model.limits, model.problems)
    except InventoryError as exc:
        model.problems.add_error(exc)
        return
    read_yaml_inventory(doc, model)


def _as_yaml(name: str, text: str, model: Model) -> YamlDoc | None:
    """A file without extension, if it parses as a YAML mapping (Ansible tries YAML first,
    then INI); None when it is to be read as INI."""
    trial = Problems()
    try:
        doc = read_yaml(name, text, model.limits, trial)
    except InventoryError:
        return None
    if not isinstance(doc.data, dict):
        return None
    for problem in trial.items:
        model.problems.add_error(problem)
    return doc
