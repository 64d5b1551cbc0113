"""The code samples of ``docs/``: found in the markdown, checked by the tests.

Conventions (see ``docs/contributing-docs.md``):

* A fenced ``console`` block shows commands (``$ fleet ...``, a trailing ``\\`` continues a
  command) and, under each, output lines that must appear in what it prints. ``...`` in an
  output line stands for any text, a line of only ``...`` for omitted lines. Timestamps, dates
  and run ids match any value; a run id shown in an output binds to the real one, so later
  commands naming it use the real id. A command expected to fail ends with ``# exit N``.
* Every ``console`` block is preceded by ``<!-- test: ENV -->`` where ENV is ``quickstart``
  (runs against its own ``fleet sandbox up``), ``sandbox`` (runs against the test sandbox),
  ``postgres`` (the test sandbox, with a fresh database of the test PostgreSQL server as the
  store) or ``skip REASON`` (not run: real OVH servers, long builds).
* ``<!-- test: ENV`` followed by ``$`` lines and a closing ``-->`` is a hidden setup block:
  run in order like a console block, not shown to readers.
* ``<!-- file: PATH -->`` before a fenced block writes its text to PATH (relative to the page's
  working directory) when the page's samples reach it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
ENVS = ("quickstart", "sandbox", "postgres")

_FENCE = re.compile(r"^( *)```(\w*)[^\n]*\n(.*?)^\1```[ \t]*$", re.M | re.S)
_COMMENT = re.compile(r"<!--(.*?)-->", re.S)
_EXIT = re.compile(r"\s#\s*exit\s+(\d+)\s*$")
RUN_ID = re.compile(r"r\d{8}-\d{6}-[0-9a-f]{4}")
_GENERIC = (
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00"), r"\S+"),
    (re.compile(r"\d{4}-\d\d-\d\d"), r"\d{4}-\d\d-\d\d"),
    (re.compile(r"\b\d\d:\d\d\b"), r"\d\d:\d\d"),
    (re.compile(r"\b127\.\d+\.\d+\.\d+\b"), r"127\.\d+\.\d+\.\d+"),
)


@dataclass(frozen=True)
class Command:
    """One ``$`` line of a console block, and the output lines shown under it."""

    text: str
    exit_code: int = 0
    output: tuple[str, ...] = ()


@dataclass(frozen=True)
class Block:
    """A fenced block (or hidden setup) with its marker."""

    page: Path
    line: int
    lang: str
    body: str
    test: str | None = None  # "quickstart", "sandbox", "skip ..." or None
    file: str | None = None
    hidden: bool = False

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"

    @property
    def env(self) -> str | None:
        """The environment a block runs in, or None when it is not run."""
        if self.test is None or self.test.startswith("skip"):
            return None
        return self.test

    def commands(self) -> list[Command]:
        return parse_console(self.body)


@dataclass
class Page:
    path: Path
    blocks: list[Block] = field(default_factory=list)

    @property
    def env(self) -> str | None:
        envs = {b.env for b in self.blocks if b.env}
        if len(envs) > 1:
            raise ValueError(f"{self.path}: samples mix environments {sorted(envs)}")
        return envs.pop() if envs else None


def pages(root: Path = DOCS) -> list[Page]:
    return [parse_page(p) for p in sorted(root.rglob("*.md"))]


def parse_page(path: Path, text: str | None = None) -> Page:
    text = path.read_text() if text is None else text
    tokens: list[tuple[int, int, re.Match[str], str]] = [
        (m.start(), m.end(), m, "fence") for m in _FENCE.finditer(text)
    ]
    fences = [(s, e) for s, e, _, _ in tokens]
    for m in _COMMENT.finditer(text):
        if not any(s <= m.start() < e for s, e in fences):  # a comment shown inside a sample
            tokens.append((m.start(), m.end(), m, "comment"))
    tokens.sort(key=lambda t: t[0])
    page = Page(path)
    marker: dict[str, str] = {}
    last_end = 0
    for start, end, match, kind in tokens:
        if text[last_end:start].strip():
            marker = {}  # a marker applies only to the block right after it
        line = text.count("\n", 0, start) + 1
        if kind == "comment":
            marker = _comment(page, match.group(1), line, marker)
        else:
            body = _dedent(match.group(3), len(match.group(1)))
            page.blocks.append(
                Block(path, line, match.group(2), body, marker.get("test"), marker.get("file"))
            )
            marker = {}
        last_end = end
    return page


def _comment(page: Page, body: str, line: int, marker: dict[str, str]) -> dict[str, str]:
    head, _, rest = body.strip().partition("\n")
    key, sep, value = head.partition(":")
    key = key.strip()
    if not sep or key not in ("test", "file"):
        return marker
    if key == "test" and rest.strip():
        page.blocks.append(Block(page.path, line, "console", rest, value.strip(), hidden=True))
        return {}
    return {**marker, key: value.strip()}


def _dedent(body: str, indent: int) -> str:
    return "".join(x[indent:] if x[:indent].isspace() else x for x in body.splitlines(True))


def parse_console(body: str) -> list[Command]:
    """``$`` commands (with ``\\`` continuations) and the output lines under each."""
    commands: list[Command] = []
    current: list[str] | None = None
    output: list[str] = []
    continuing = False
    for raw in body.splitlines():
        if continuing and current is not None:
            current.append(raw.strip())
            continuing = raw.rstrip().endswith("\\")
            continue
        if raw.startswith("$ "):
            if current is not None:
                commands.append(_command(current, output))
            current, output = [raw[2:]], []
            continuing = raw.rstrip().endswith("\\")
        elif current is not None:
            output.append(raw)
        elif raw.strip():
            raise ValueError(f"console text before the first command: {raw!r}")
    if current is not None:
        commands.append(_command(current, output))
    return commands


def _command(parts: list[str], output: list[str]) -> Command:
    text = " ".join(p.rstrip().removesuffix("\\").strip() for p in parts)
    match = _EXIT.search(text)
    code = int(match.group(1)) if match else 0
    shown = tuple(x.rstrip() for x in output if x.strip() and x.strip() != "...")
    return Command(text, code, shown)


# ---------------------------------------------------------------------------------------------
# Matching shown output against real output


def line_pattern(expected: str) -> tuple[re.Pattern[str], list[str]]:
    """A regex for one shown output line, and the run ids it shows (one group each)."""
    ids: list[str] = []
    parts = []
    for piece in re.split(r"(\.\.\.|\s+)", expected.strip()):
        if piece == "...":
            parts.append(".*")
        elif piece and piece.isspace():
            parts.append(r"\s+")
        elif piece:
            parts.append(_literal(piece, ids))
    # "a ..." also matches a line that is just "a": trailing columns may be empty
    return re.compile("".join(parts).replace(r"\s+.*", r"(?:\s.*)?")), ids


def _literal(text: str, ids: list[str]) -> str:
    out = []
    pos = 0
    specials = [(m.start(), m.end(), "id", m.group()) for m in RUN_ID.finditer(text)]
    for pattern, replacement in _GENERIC:
        specials += [(m.start(), m.end(), replacement, m.group()) for m in pattern.finditer(text)]
    for start, end, kind, found in sorted(specials, key=lambda s: (s[0], -s[1])):
        if start < pos:
            continue
        out.append(re.escape(text[pos:start]))
        if kind == "id":
            ids.append(found)
            out.append(f"({RUN_ID.pattern})")
        else:
            out.append(kind)
        pos = end
    out.append(re.escape(text[pos:]))
    return "".join(out)


def find_line(
    expected: str, actual: list[str], bound: Mapping[str, str] | None = None
) -> dict[str, str] | None:
    """Run id bindings (shown -> real) when ``expected`` matches a line of ``actual``; a run id
    already ``bound`` must match its real id."""
    pattern, ids = line_pattern(expected)
    bound = bound or {}
    for line in actual:
        match = pattern.fullmatch(line.strip())
        if match is None:
            continue
        found = dict(zip(ids, match.groups(), strict=True))
        if all(bound.get(shown, real) == real for shown, real in found.items()):
            return found
    return None
