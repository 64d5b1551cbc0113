"""Where a value was written, and the checks of inventory values (names, ports, tokens)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.errors import InventoryError
from fleet.inventory.select import RESERVED_HOST_NAMES, RESERVED_PREFIXES


@dataclass(frozen=True)
class _Site:
    """Where a value was written: for error messages."""

    path: str
    line: int | None
    key: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path

    def error(self, message: str, hint: str | None = None) -> InventoryError:
        return InventoryError(message, path=self.path, line=self.line, key=self.key, hint=hint)

    def at(self, mapping: Any, key: Any) -> _Site:
        lines = getattr(mapping, "key_lines", {})
        return _Site(self.path, lines.get(key, self.line), str(key))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    names = {int: "an integer", float: "a number", str: "a string", list: "a list"}
    return (
        "a mapping" if isinstance(value, Mapping) else names.get(type(value), type(value).__name__)
    )


def _check_text(value: Any, site: _Site, *, numbers: bool = False) -> str:
    allowed = (str, int) if numbers else (str,)
    if isinstance(value, bool) or not isinstance(value, allowed):
        raise site.error(f"must be a string, not {_kind(value)}", hint="quote the value")
    text = str(value).strip()
    if not text:
        raise site.error("must not be empty")
    return text


def _check_token(value: Any, site: _Site) -> str:
    """A value that ends up in an SSH command line: one word, never an option."""
    text = _check_text(value, site)
    if text.startswith("-") or any(c.isspace() or not c.isprintable() for c in text):
        raise site.error(f"{text!r} must be one word and must not start with '-'")
    return text


def _check_port(value: Any, site: _Site) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise site.error(f"must be an integer from 1 to 65535, not {_kind(value)}")
    if not 1 <= value <= 65535:
        raise site.error(f"{value} is not a port (1 to 65535)")
    return value


def _check_key_file(value: Any, site: _Site, base: Path) -> str:
    path = Path(_check_text(value, site)).expanduser()
    return str(path if path.is_absolute() else base / path)


def _check_name(value: Any, site: _Site, kind: str) -> str:
    """Host and group names: usable in --limit, messages and file names."""
    if not isinstance(value, str) or not value:
        raise site.error(f"a {kind} name must be a non-empty string, not {_kind(value)}")
    if any(c.isspace() or not c.isprintable() or c in ",/" for c in value):
        raise site.error(f"{kind} name {value!r} must not contain spaces, ',' or '/'")
    reserved = kind == "host" and value in RESERVED_HOST_NAMES
    if value[0] in "!&-~" or reserved or value.startswith(RESERVED_PREFIXES):
        raise site.error(f"{kind} name {value!r} is reserved by the --limit syntax")
    return value


def _plain(value: Any) -> Any:
    """Plain dicts and lists, without the line bookkeeping."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _json_safe(value: Any) -> bool:
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, list):
        return all(_json_safe(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_safe(v) for k, v in value.items())
    return False
