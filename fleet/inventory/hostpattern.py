"""Host patterns as Ansible reads inventory host keys: ``name``, ``name:port``, ``[v6]:port``,
and ranges: ``web[01:10]`` (zero-padded), ``web[1:10:2]`` (a step), ``db-[a:f]`` (letters, in
the order of ``a``..``z`` then ``A``..``Z``); several ranges multiply, the first outermost.

The port is split off only when what precedes it is a valid host name, IPv4 or IPv6 address
(with ranges), as Ansible's ``parse_address`` decides; otherwise the whole key is the name. Where
Ansible silently yields no host (``web[5:1]``) or crashes (a step of 0, letters against digits),
fleet refuses with a message; the size of a range is checked before anything is expanded.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import string
from collections.abc import Iterator
from functools import cache

_RANGE = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]"
_LABEL = rf"(?:\w|{_RANGE})(?:[\w-]|{_RANGE})*(?<![_-])"
_V4_PART = r"(?:[01]?[0-9]{1,2}|2[0-4][0-9]|25[0-5]|\[[0-9]+:[0-9]+(?::[0-9]+)?\])"


@cache
def _address_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Ansible's IPv4 and host name grammars (compiled on first use: most names need neither)."""
    hostname = re.compile(rf"{_LABEL}(?:\.{_LABEL})*", re.IGNORECASE)
    return re.compile(rf"(?:{_V4_PART}\.){{3}}{_V4_PART}"), hostname


_BRACKETED_PORT = re.compile(r"\[(.+)\]:([0-9]+)")
_HOST_PORT = re.compile(r"((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)")
_BRACKETS = re.compile(r"\[([^\]]*)\]")


class PatternError(ValueError):
    """A host pattern fleet cannot expand (the message says why)."""


def split_port(text: str) -> tuple[str, int | None]:
    """``(host, port)`` as Ansible's ``parse_address(..., allow_ranges=True)`` splits them;
    ``(text, None)`` when Ansible would not recognise an address (then the key is the name)."""
    address, port = text, None
    for pattern in (_BRACKETED_PORT, _HOST_PORT):  # tried in turn, as Ansible does
        match = pattern.fullmatch(address)
        if match:
            address, port = match.group(1), int(match.group(2))
    if _is_address(address):
        return address, port
    return text, None


def parses_as_address(text: str) -> bool:
    """Whether Ansible's ``parse_address(text, allow_ranges=True)`` accepts ``text``."""
    host, port = split_port(text)
    return port is not None or _is_address(host)


def _is_address(text: str) -> bool:
    ipv4, hostname = _address_patterns()
    if ipv4.fullmatch(text) or hostname.fullmatch(text):
        return True
    if ":" not in text or "[" in text:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def expand(text: str, max_hosts: int) -> tuple[list[str], int | None]:
    """The host names and the port of one inventory host key.

    Raises:
        PatternError: a malformed range, an empty one, or more than ``max_hosts`` names.
    """
    name, port = split_port(text)
    if "[" not in name:
        return [name], port
    parts = _BRACKETS.split(name)  # literal, range, literal, range, ..., literal
    if any("[" in p or "]" in p for p in parts[::2]):
        raise PatternError("unbalanced '[' or ']' in a host range")
    ranges = [_range_values(spec) for spec in parts[1::2]]
    total = 1
    for values in ranges:
        total *= len(values)
    if total > max_hosts:
        raise PatternError(f"expands to {total} hosts, more than the limit of {max_hosts}")
    literals = parts[::2]
    names = []
    for combo in itertools.product(*ranges):
        pieces = [literals[0]]
        for value, literal in zip(combo, literals[1:], strict=True):
            pieces += (value, literal)
        names.append("".join(pieces))
    return names, port


class _Padded:
    """The numbers of a range as text, zero-padded to ``width`` (a lazy sequence)."""

    def __init__(self, numbers: range, width: int) -> None:
        self.numbers = numbers
        self.width = width

    def __len__(self) -> int:
        return len(self.numbers)

    def __iter__(self) -> Iterator[str]:
        width = self.width
        return (str(n).zfill(width) for n in self.numbers)


def count(text: str) -> int:
    """How many names ``text`` expands to, without expanding it (0 when it is malformed: the
    expansion itself then says why)."""
    name, _ = split_port(text)
    total = 1
    for spec in _BRACKETS.findall(name):
        try:
            total *= len(_range_values(spec))
        except PatternError:
            return 0
    return total


def _range_values(spec: str) -> list[str] | range | _Padded:
    bounds = spec.split(":")
    if len(bounds) not in (2, 3):
        raise PatternError(f"host range [{spec}] must be [begin:end] or [begin:end:step]")
    begin, end = bounds[0] or "0", bounds[1]
    step = _step(bounds[2] if len(bounds) == 3 else "1", spec)
    if not end:
        raise PatternError(f"host range [{spec}] has no end")
    letters = string.ascii_letters
    if len(begin) == 1 and len(end) == 1 and begin in letters and end in letters:
        first, last = letters.index(begin), letters.index(end)
        if first > last:
            raise PatternError(f"host range [{spec}] goes backwards")
        return list(letters[first : last + 1 : step])
    if not (begin.isascii() and begin.isdigit() and end.isascii() and end.isdigit()):
        raise PatternError(
            f"host range [{spec}] must run between two numbers or two single letters"
        )
    if int(begin) > int(end):
        raise PatternError(f"host range [{spec}] goes backwards: it names no host")
    numbers = range(int(begin), int(end) + 1, step)
    if begin[0] == "0" and len(begin) > 1:  # zero-padded to the width of the first bound
        if len(begin) != len(end):
            raise PatternError(f"host range [{spec}]: padded bounds must have the same width")
        return _Padded(numbers, len(begin))
    return _Padded(numbers, 0)


def _step(text: str, spec: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise PatternError(f"host range [{spec}]: the step must be a positive integer")
    return int(text)
