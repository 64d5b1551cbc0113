"""Bounded YAML reading: the parser's events straight to plain data, with the line of every key.

``yaml.load`` first composes a tree of nodes (two marks per node, and the cyclic garbage
collector walking the growing tree: most of its time on a large inventory), and it expands
nothing itself but builds structures that share aliased values, which a later walk (JSON output,
a copy) expands without bound. This reader consumes libyaml's event stream (PyYAML's own parser
when libyaml is missing) and builds dicts, lists and scalars directly:

- scalars resolve with PyYAML's YAML 1.1 rules, the ones Ansible's loader uses (``yes`` is
  true, ``0777`` is octal); timestamps become their ISO text, as ``ansible-inventory`` prints
  them; ``!unsafe`` values are plain strings;
- merge keys (``<<``): explicit keys win; two merged mappings that disagree on a key are a
  problem (YAML and PyYAML's versions differ there, see :meth:`_Builder.merge`);
- the line of every mapping key is kept (:class:`YamlDoc.line`) for error messages;
- bounds (:class:`~fleet.inventory.limits.Limits`): nesting depth and the values that aliases
  add once expanded are counted as events arrive, so a hostile file is refused at the line where
  it crosses the bound, before anything is expanded;
- duplicate keys, vault-encrypted values, binary data and unknown tags are problems reported with
  their line (all of them, the reading goes on); a syntax error stops the file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml
from yaml import events
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from fleet.errors import InventoryError
from fleet.inventory.limits import Limits
from fleet.inventory.problems import Problems, Site

_Parser: Callable[[str], Any]
try:
    from yaml._yaml import CParser as _Parser
except ImportError:  # pragma: no cover - PyYAML built without libyaml

    class _PyParser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)

    _Parser = _PyParser


_Y = "tag:yaml.org,2002:"
_IMPLICIT: dict[str | None, list[tuple[str, Any]]] = Resolver.yaml_implicit_resolvers
_BOOLS = SafeConstructor.bool_values
_CONSTRUCTOR = SafeConstructor()
_VAULT_TAGS = ("!vault", "!vault-encrypted")
#: The plain scalars of YAML 1.1 that PyYAML resolves to booleans and null (its regexps, spelled out).
_WORDS: dict[str, bool | None] = {
    **dict.fromkeys(("yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
    **dict.fromkeys(("no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
    **dict.fromkeys(("null", "Null", "NULL", "~", ""), None),
}
_MAP_TAGS = (None, "!", _Y + "map")
_SEQ_TAGS = (None, "!", _Y + "seq")


class _Merge:
    """The ``<<`` key."""


_MERGE = _Merge()
_NO_KEY = object()


class YamlDoc:
    """A parsed YAML file: its data, and the line of each key of each mapping."""

    __slots__ = ("data", "lines", "path")

    def __init__(self, path: str, data: Any, lines: dict[int, dict[Any, int]]) -> None:
        self.path = path
        self.data = data
        self.lines = lines

    def line(self, mapping: object, key: object) -> int | None:
        """The 1-based line of ``key`` in ``mapping`` (a dict of this document)."""
        keys = self.lines.get(id(mapping))
        return keys.get(key) if keys is not None else None

    def site(self, mapping: object, key: object) -> Site:
        return Site(self.path, self.line(mapping, key), str(key))


class _Frame:
    """A collection being built."""

    __slots__ = ("anchor", "is_map", "key", "klines", "line", "merges", "obj", "out", "size")

    size: int  # at first the count of values before it (see _Builder.open)

    def __init__(self, obj: Any, out: Any, is_map: bool, anchor: str | None, line: int) -> None:
        self.obj = obj
        self.out = out  # what the parent holds: obj itself, or the list a !!set becomes
        self.is_map = is_map
        self.anchor = anchor
        self.line = line
        self.key: Any = _NO_KEY
        self.klines: dict[Any, int] = {}
        self.merges: list[tuple[Any, int]] = []


class _Fatal(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def read_yaml(path: str, text: str, limits: Limits, problems: Problems) -> YamlDoc:
    """Parse one document. Recoverable problems go to ``problems``; a syntax error or a
    breached bound raises :class:`InventoryError` naming the line."""
    builder = _Builder(path, limits, problems)
    try:
        data = builder.run(_Parser(text))
    except _Fatal as exc:
        raise InventoryError(str(exc), path=path, line=exc.line) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = f" (column {mark.column + 1})" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise InventoryError(f"invalid YAML: {problem}{column}", path=path, line=line) from None
    except yaml.YAMLError as exc:
        raise InventoryError(f"invalid YAML: {exc}", path=path) from None
    return YamlDoc(path, data, builder.lines)


class _Builder:
    def __init__(self, path: str, limits: Limits, problems: Problems) -> None:
        self.path = path
        self.limits = limits
        self.problems = problems
        self.lines: dict[int, dict[Any, int]] = {}
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.open_anchors: set[str] = set()
        self.expanded = 0

    def problem(self, line: int, message: str, hint: str | None = None) -> None:
        self.problems.add(Site(self.path, line), message, hint)

    def run(self, parser: Any) -> Any:  # noqa: C901 - inlined: it runs once per YAML value
        get = parser.get_event
        root = _Frame([], None, False, None, 0)
        stack = [root]
        frame = root
        obj, is_map, klines = root.obj, False, root.klines  # the current frame's, for speed
        count = 0  # values so far: a collection's size is the difference between its ends
        implicit = _IMPLICIT
        scalar_event, alias_event = events.ScalarEvent, events.AliasEvent
        mapping_start, sequence_start = events.MappingStartEvent, events.SequenceStartEvent
        collection_end = (events.MappingEndEvent, events.SequenceEndEvent)
        while True:
            event = get()
            kind = type(event)
            if kind is scalar_event:  # the hot path, inlined: most events are plain scalars
                count += 1
                value = event.value
                tag = event.tag
                if tag is None and event.implicit[0]:
                    resolvers = implicit.get(value[:1])
                    if resolvers is not None:
                        value = _resolve(value, resolvers, self, event)
                elif tag is not None and tag != "!":
                    value = self.tagged(event)
                if event.anchor is not None:
                    self.anchors[event.anchor] = (value, 1)
                if value is _MERGE and (not is_map or frame.key is not _NO_KEY):
                    value = self.merge_value(event.start_mark.line + 1)
                if not is_map:
                    obj.append(value)
                elif frame.key is _NO_KEY:
                    if value in obj or value is _MERGE:
                        self.key(frame, value, event.start_mark.line + 1)
                    else:
                        frame.key = value
                        klines[value] = event.start_mark.line + 1
                elif frame.key is _MERGE:
                    self.put(frame, value, event.start_mark.line + 1)
                else:
                    obj[frame.key] = value
                    frame.key = _NO_KEY
            elif kind is mapping_start or kind is sequence_start:
                count += 1
                frame = self.open(event, kind is mapping_start, frame, count)
                obj, is_map, klines = frame.obj, frame.is_map, frame.klines
                stack.append(frame)
                if len(stack) > self.limits.yaml_depth:
                    raise _Fatal(f"nesting deeper than {self.limits.yaml_depth} levels", frame.line)
            elif kind in collection_end:
                done = stack.pop()
                frame = stack[-1]
                obj, is_map, klines = frame.obj, frame.is_map, frame.klines
                self.close(done, frame, count)
            elif kind is alias_event:
                line = event.start_mark.line + 1
                self.put(frame, self.alias(event.anchor, line), line)
            elif kind is events.DocumentStartEvent and root.obj:
                line = event.start_mark.line + 1
                raise _Fatal("a second YAML document ('---'): keep one", line)
            elif kind is events.StreamEndEvent:
                return root.obj[0] if root.obj else None

    # -- values --------------------------------------------------------------------------

    def put(self, frame: _Frame, value: Any, line: int) -> None:
        """``value`` arrives in ``frame`` (the slow path of :meth:`run`)."""
        if value is _MERGE and (frame.key is not _NO_KEY or not frame.is_map):
            value = self.merge_value(line)
        if not frame.is_map:
            frame.obj.append(value)
            return
        key = frame.key
        if key is _NO_KEY:
            self.key(frame, value, line)
        elif key is _MERGE:
            frame.merges.append((value, line))
            frame.key = _NO_KEY
        else:
            frame.obj[key] = value
            frame.key = _NO_KEY

    def merge_value(self, line: int) -> Any:
        """A ``<<`` where a value belongs: a problem, and null in its place."""
        self.problem(line, "'<<' (YAML's merge key) where a value belongs: quote it")
        return None

    def key(self, frame: _Frame, value: Any, line: int) -> None:
        if isinstance(value, list | dict):
            raise _Fatal("a mapping key must be a plain value, not a collection", line)
        if value is _MERGE:
            frame.key = _MERGE
            return
        if value in frame.obj:
            first = frame.klines.get(value)
            self.problem(line, f"duplicate key {value!r} (first at line {first})")
        frame.key = value
        frame.klines[value] = line

    def open(self, event: Any, is_map: bool, parent: _Frame, count: int) -> _Frame:
        line = event.start_mark.line + 1
        tag = event.tag
        obj: Any = {} if is_map else []
        out = obj
        if tag not in (_MAP_TAGS if is_map else _SEQ_TAGS):
            if is_map and tag == _Y + "set":
                out = []  # Ansible turns a set into the list of its members
            else:
                self.problem(line, _tag_problem(tag), _tag_hint(tag))
        if parent.is_map and parent.key is _NO_KEY:
            raise _Fatal("a mapping key must be a plain value, not a collection", line)
        frame = _Frame(obj, out, is_map, event.anchor, line)
        frame.size = count - self.expanded  # made the collection's size at close()
        if is_map:
            self.lines[id(obj)] = frame.klines
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)
        self.put(parent, out, line)
        return frame

    def close(self, done: _Frame, parent: _Frame, count: int) -> None:
        if done.merges:
            self.merge(done)
        if done.out is not done.obj:
            done.out.extend(done.obj)
        if done.anchor is not None:
            size = count + self.expanded - done.size  # values inside, aliases expanded
            self.open_anchors.discard(done.anchor)
            self.anchors[done.anchor] = (done.out, size)

    def alias(self, name: str, line: int) -> Any:
        if name in self.open_anchors:
            raise _Fatal(f"alias *{name} refers to the collection that contains it", line)
        found = self.anchors.get(name)
        if found is None:
            raise _Fatal(f"alias *{name} refers to no anchor (&{name}) defined above", line)
        value, size = found
        self.expanded += size
        if self.expanded > self.limits.alias_values:
            raise _Fatal(
                f"aliases expand to more than {self.limits.alias_values} values (an alias bomb?)",
                line,
            )
        return value

    def merge(self, frame: _Frame) -> None:
        """Apply ``<<`` keys: explicit keys win, then the merged mappings in the order written.

        Where two merged mappings give one key different values and no explicit key settles
        it, readers disagree (YAML says the first wins; PyYAML 6.0.2+, and Ansible with it,
        keeps the first or the last depending on the key's length): a problem, not a guess.
        """
        merged: dict[Any, Any] = {}
        for value, line in frame.merges:
            sources = [value] if isinstance(value, dict) else value
            if not isinstance(sources, list) or not all(isinstance(s, dict) for s in sources):
                self.problem(line, "a merge key (<<) takes a mapping or a list of mappings")
                continue
            for source in sources:
                keys = self.lines.get(id(source), {})
                for key, item in source.items():
                    if key in frame.obj:
                        continue
                    if key not in merged:
                        merged[key] = item
                        if key in keys:
                            frame.klines[key] = keys[key]
                    elif merged[key] != item:
                        self.problem(
                            line,
                            f"the mappings merged here give {key!r} different values",
                            f"set {key} explicitly in this mapping: YAML readers disagree on "
                            "which merged value wins",
                        )
        explicit = dict(frame.obj)
        frame.obj.clear()
        frame.obj.update(merged)
        frame.obj.update(explicit)

    def tagged(self, event: Any) -> Any:
        """A scalar with an explicit tag."""
        tag = event.tag
        value = event.value
        line = event.start_mark.line + 1
        if tag in _VAULT_TAGS:
            self.problem(
                line,
                "vault-encrypted value: fleet does not decrypt Ansible Vault",
                "keep secrets out of the inventory fleet reads (for instance in a vars file "
                "that only your playbooks load)",
            )
            return None
        if tag == "!unsafe":
            return value
        if tag.startswith(_Y):
            return _construct(tag, value, self, line)
        self.problem(line, _tag_problem(tag), _tag_hint(tag))
        return None


def _resolve(value: str, resolvers: list[tuple[str, Any]], builder: _Builder, event: Any) -> Any:
    """A plain scalar by PyYAML's YAML 1.1 implicit rules (the resolver Ansible uses).

    The only plain scalars starting with a letter that resolve are the words of
    :data:`_WORDS`; a run of ASCII digits without a leading zero is a decimal integer. Anything
    else goes through PyYAML's regular expressions.
    """
    if value in _WORDS:
        return _WORDS[value]
    if value[:1].isalpha():
        return value
    if value.isdigit() and value.isascii() and (value[0] != "0" or len(value) == 1):
        return int(value)
    for tag, regexp in resolvers:
        if regexp.match(value):
            return _construct(tag, value, builder, event.start_mark.line + 1)
    return value


def _construct(tag: str, value: str, builder: _Builder, line: int) -> Any:
    kind = tag[len(_Y) :]
    if kind == "str":
        return value
    if kind == "int" and value.isdigit() and (value[0] != "0" or len(value) == 1):
        return int(value)
    if kind == "bool" and value.lower() in _BOOLS:
        return _BOOLS[value.lower()]
    if kind == "null":
        return None
    if kind == "merge":
        return _MERGE
    if kind in ("int", "float", "timestamp"):
        try:
            method = getattr(_CONSTRUCTOR, f"construct_yaml_{kind}")
            result = method(ScalarNode(tag, value))
        except (ConstructorError, ValueError) as exc:
            builder.problem(line, f"{value!r} is not a valid !!{kind}: {exc}")
            return None
        return result.isoformat() if kind == "timestamp" else result
    builder.problem(line, _tag_problem(tag), _tag_hint(tag))
    return None


def _tag_problem(tag: str | None) -> str:
    if tag in _VAULT_TAGS:
        return "vault-encrypted value: fleet does not decrypt Ansible Vault"
    if tag == _Y + "binary":
        return "binary data (!!binary): inventory values must be text, numbers or booleans"
    return f"unsupported YAML tag {tag!r}"


def _tag_hint(tag: str | None) -> str | None:
    if tag in (_Y + "omap", _Y + "pairs"):
        return "use a plain mapping: YAML mappings keep their order"
    return None
