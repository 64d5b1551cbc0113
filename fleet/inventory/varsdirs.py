"""``group_vars/`` and ``host_vars/`` next to each inventory source, as Ansible loads them.

For a group or host called ``NAME``, the first of ``NAME``, ``NAME.yml``, ``NAME.yaml`` and
``NAME.json`` that exists is read; a directory is read whole, recursively, in name order (hidden
files, backups ending in ``~`` and other extensions skipped). An empty file sets nothing; a
vault-encrypted file is refused (fleet does not decrypt Ansible Vault).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fleet.errors import InventoryError
from fleet.inventory.checks import check_vars, kind
from fleet.inventory.model import Layer, Model
from fleet.inventory.problems import Site
from fleet.inventory.sources import Source, read_text
from fleet.inventory.yamlread import read_yaml

logger = logging.getLogger("fleet.inventory")

_EXTENSIONS = ("", ".yml", ".yaml", ".json")


@dataclass
class VarsFiles:
    """The layers read from vars directories, per name, each with its source's index."""

    groups: dict[str, list[tuple[int, Layer]]] = field(default_factory=dict)
    hosts: dict[str, list[tuple[int, Layer]]] = field(default_factory=dict)


def load_vars_files(sources: list[Source], model: Model) -> VarsFiles:
    found = VarsFiles()
    seen: set[Path] = set()
    for index, source in enumerate(sources):
        base = source.vars_dir.resolve()
        if base in seen:  # two files of one directory: its vars directories count once
            continue
        seen.add(base)
        for sub, names, target in (
            ("group_vars", model.groups, found.groups),
            ("host_vars", model.hosts, found.hosts),
        ):
            directory = base / sub
            if directory.is_dir():
                _load_dir(directory, names, index, target, model)
    return found


def _load_dir(
    directory: Path,
    names: Mapping[str, object],
    index: int,
    target: dict[str, list[tuple[int, Layer]]],
    model: Model,
) -> None:
    entries = {entry.name for entry in directory.iterdir()}
    unused = {e for e in entries if not e.startswith(".") and not e.endswith("~")}
    for name in names:
        present = [name + ext for ext in _EXTENSIONS if name + ext in entries]
        if not present:
            continue
        unused.difference_update(present)
        for path in _files(directory / present[0]):  # as Ansible: the first that exists, only
            layer = _read(path, model, group=directory.name == "group_vars")
            if layer is not None:
                target.setdefault(name, []).append((index, layer))
        for shadowed in present[1:]:
            logger.warning("%s: not read, %s comes first", directory / shadowed, present[0])
    if unused:
        logger.warning(
            "%s: %s name no %s of the inventory (not read)",
            directory, ", ".join(sorted(unused)[:5]) + (" ..." if len(unused) > 5 else ""),
            "group" if directory.name == "group_vars" else "host",
        )  # fmt: skip


def _files(path: Path) -> Iterable[Path]:
    """The file itself, or a directory's files in name order, depth first."""
    if not path.is_dir():
        return [path]
    found: list[Path] = []
    stack = [path]
    while stack:
        directory = stack.pop()
        below = []
        for child in sorted(directory.iterdir()):
            name = child.name
            if name.startswith(".") or name.endswith("~"):
                continue
            extension = child.suffix
            if child.is_dir() and not extension:
                below.append(child)
            elif child.is_file() and extension in _EXTENSIONS:
                found.append(child)
        stack.extend(reversed(below))
    return found


def _read(path: Path, model: Model, *, group: bool) -> Layer | None:
    text = read_text(path, model.limits.file_bytes, model.problems)
    if text is None:
        return None
    if text.startswith("$ANSIBLE_VAULT;"):
        model.problems.add(
            Site(str(path), 1),
            "a vault-encrypted file: fleet does not decrypt Ansible Vault",
            "keep secrets out of the vars fleet reads, or point fleet at a copy without them",
        )
        return None
    try:
        doc = read_yaml(str(path), text, model.limits, model.problems)
    except InventoryError as exc:
        model.problems.add_error(exc)
        return None
    if doc.data is None or doc.data == {}:
        return None
    if not isinstance(doc.data, dict):
        model.problems.add(
            Site(str(path), 1), f"a vars file holds a mapping of variables, not {kind(doc.data)}"
        )
        return None
    check_vars(doc.data, doc, model.problems, group=group)
    return (doc.data, doc)
