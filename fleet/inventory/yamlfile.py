"""YAML reading with key lines, duplicate-key refusal and libyaml speed when available."""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Any

import yaml

from fleet.errors import InventoryError


class _Mapping(dict[Any, Any]):
    """A YAML mapping that remembers the 1-based line of each key."""

    key_lines: dict[Any, int]


class _DuplicateKeyError(yaml.MarkedYAMLError):
    def __init__(self, key: Any, first_line: int, mark: yaml.Mark) -> None:
        super().__init__(problem=f"duplicate key {key!r} (first at line {first_line})")
        self.problem_mark = mark
        self.key = key


# libyaml's parser when PyYAML has it (about ten times faster on big inventories); its nodes
# carry the same line marks, so errors still name the line.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    """SafeLoader that refuses duplicate keys, records key lines and keeps dates as text."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Iterator[_Mapping]:
    result = _Mapping()
    result.key_lines = {}
    yield result
    _refuse_duplicates(loader, node)
    loader.flatten_mapping(node)  # resolves `<<: *anchor` merges; explicit keys come last
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1


def _refuse_duplicates(loader: _Loader, node: yaml.MappingNode) -> None:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
            continue
        key = loader.construct_object(key_node)
        if key in seen:
            raise _DuplicateKeyError(key, seen[key], key_node.start_mark)
        seen[key] = key_node.start_mark.line + 1


def _construct_text(loader: _Loader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_text)


def _read_yaml(path: Path) -> Any:
    """Parse one file; every failure is an :class:`InventoryError` naming file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"cannot read: {exc}", path=str(path)) from exc
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except _DuplicateKeyError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        key = str(exc.key)
        raise InventoryError(str(exc.problem), path=str(path), line=line, key=key) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = f" (column {mark.column + 1})" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise InventoryError(f"invalid YAML: {problem}{column}", path=str(path), line=line) from exc
    except yaml.YAMLError as exc:
        raise InventoryError(f"invalid YAML: {exc}", path=str(path)) from exc
