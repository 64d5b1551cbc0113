"""YAML reading that remembers where every key came from, for errors that name file and line.

PyYAML's composer gives each node a start mark; :func:`load` builds the plain Python value and a
map from key paths (tuples of keys and list indexes) to 1-based line numbers. Duplicate keys in a
mapping are refused (plain PyYAML silently keeps the last one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fleet.errors import InputError

Lines = dict[tuple[Any, ...], int]


class _Located(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys."""


def _node_value(
    node: yaml.Node, loader: _Located, path: tuple[Any, ...], lines: Lines, src: str
) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in out:
                raise InputError(
                    "duplicate key (the earlier one would be silently ignored)",
                    path=src,
                    line=key_node.start_mark.line + 1,
                    key=".".join(map(str, (*path, key))),
                )
            out[key] = _node_value(value_node, loader, (*path, key), lines, src)
            lines[(*path, key)] = key_node.start_mark.line + 1  # the key's line, not its value's
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_node_value(n, loader, (*path, i), lines, src) for i, n in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def loads(text: str, source: str) -> tuple[Any, Lines]:
    """Parse YAML text; ``source`` names it in errors."""
    loader = _Located(text)
    lines: Lines = {}
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines
        return _node_value(node, loader, (), lines, source), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise InputError(
            f"YAML syntax error: {exc.problem or exc}", path=source, line=line
        ) from exc
    except yaml.YAMLError as exc:
        raise InputError(f"YAML error: {exc}", path=source) from exc
    finally:
        loader.dispose()


def load(path: Path) -> tuple[Any, Lines]:
    """Read and parse a YAML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path=str(path)) from exc
    return loads(text, str(path))


def line_of(lines: Lines, path: tuple[Any, ...]) -> int | None:
    """Line of ``path``, or of its nearest ancestor that has one."""
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())
