"""Text from outside fleet made safe to show: every control character escaped.

Host names, labels, plan values and remote output reach the operator's terminal. A value that
holds an escape sequence (``ESC ] 0 ; title BEL``, ``ESC [ 2 J``, a C1 ``CSI``), a carriage
return or a bidirectional override could rewrite the screen or hide what is really there. Every
human output of fleet passes such text through :func:`printable`, which shows each control
character as ``\\xNN`` (``\\uNNNN`` beyond Latin-1), and :class:`SafeStream` escapes whatever
reaches standard output or error anyway, as a last line of defence.
"""

from __future__ import annotations

import re
from typing import IO, Any

#: C0 and C1 controls, DEL, the bidirectional marks, embeddings, overrides and isolates, and
#: the Unicode line and paragraph separators.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
#: The same, except newline and tab: multi-line text (command output, a written report) keeps
#: its lines.
CONTROL_IN_LINES = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]"
)


def _code(match: re.Match[str]) -> str:
    point = ord(match.group())
    return f"\\x{point:02x}" if point < 0x100 else f"\\u{point:04x}"


def printable(value: object) -> str:
    """``value`` as one line of text: every control character (newlines too) escaped."""
    return CONTROL.sub(_code, str(value))


def printable_lines(value: object) -> str:
    """``value`` as text that may span lines: newlines and tabs kept, other controls escaped."""
    return CONTROL_IN_LINES.sub(_code, str(value))


def raw_stream(stream: IO[str]) -> IO[str]:
    """The terminal behind ``stream`` (for the live view, which draws escape sequences)."""
    return stream.raw if isinstance(stream, SafeStream) else stream


class SafeStream:
    """A text stream that escapes control characters (newlines and tabs excepted) on their way
    to ``raw``. fleet's command line writes through it; only the live view, which draws the
    screen itself, writes to the raw terminal (and escapes what it shows)."""

    def __init__(self, raw: IO[str]) -> None:
        self.raw = raw

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # as a text stream does (click probes with b"")
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self.raw.write(printable_lines(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self.raw.flush()

    def isatty(self) -> bool:
        return self.raw.isatty()

    def fileno(self) -> int:
        return self.raw.fileno()

    def __getattr__(self, name: str) -> Any:  # encoding, errors, buffer, closed...
        return getattr(self.raw, name)
