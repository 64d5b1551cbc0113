"""Allow and deny windows: scopes, the one-line syntax and windows files."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet.errors import InputError, UsageError
from fleet.schedule.periods import Period
from fleet.schedule.rules import CronRule, WeeklyRule
from fleet.schedule.timeutil import _aware, load_zone

if TYPE_CHECKING:
    from fleet.inventory import Host


@dataclass(frozen=True)
class Scope:
    """Which hosts a window applies to: ``fleet`` (all), ``label:k=v``, ``dc:NAME``,
    ``group:NAME`` (globs allowed in values, as in ``--limit``)."""

    kind: str = "fleet"
    key: str = ""
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> Scope:
        text = text.strip()
        if text in ("", "fleet", "all"):
            return cls()
        prefix, _, rest = text.partition(":")
        if prefix == "label" and rest:
            key, has_value, value = rest.partition("=")
            return cls("label", key, value if has_value else None)
        if prefix in ("dc", "group") and rest:
            return cls(prefix, rest)
        raise UsageError(
            f"bad window scope {text!r}", hint="fleet, label:KEY=VALUE, dc:NAME or group:NAME"
        )

    def matches(self, host: Host) -> bool:
        if self.kind == "label":
            value = host.labels.get(self.key)
            return value is not None and (
                self.value is None or fnmatch.fnmatchcase(value, self.value)
            )
        if self.kind == "dc":
            return fnmatch.fnmatchcase((host.datacenter or "").lower(), self.key.lower())
        if self.kind == "group":
            return any(fnmatch.fnmatchcase(g, self.key) for g in host.groups)
        return True

    def __str__(self) -> str:
        if self.kind == "label":
            return f"label:{self.key}" + (f"={self.value}" if self.value is not None else "")
        return "fleet" if self.kind == "fleet" else f"{self.kind}:{self.key}"


# ------------------------------------------------------------------------------ windows


@dataclass(frozen=True)
class Window:
    """An allow or deny window in one zone, for the hosts of its scope."""

    kind: str  # "allow" or "deny"
    rule: WeeklyRule | CronRule
    zone: str
    scope: Scope = field(default_factory=Scope)

    def periods(self, start: datetime, end: datetime) -> list[Period]:
        """Its periods overlapping [start, end), in UTC, sorted (unmerged, unclipped)."""
        return self.rule.periods(load_zone(self.zone), _aware(start), _aware(end))

    def __str__(self) -> str:
        text = f"{self.kind} {self.rule} {self.zone}"
        return text if self.scope.kind == "fleet" else f"{text} on {self.scope}"


def parse_window(text: str) -> Window:
    """A window from one line: ``[allow|deny] RULE ZONE [on SCOPE]``, where RULE is a weekly
    range (``Sat 02:00-05:00``) or ``cron M H DOM MON DOW DURATION``.

    Examples: ``Sat 02:00-05:00 Europe/Paris``, ``deny Fri 23:00-Sat 02:00 UTC on dc:gra3``,
    ``cron 0 2 * * 6 3h Europe/Paris on label:role=storage``.
    """
    tokens = text.split()
    kind = "allow"
    if tokens and tokens[0].lower() in ("allow", "deny"):
        kind = tokens.pop(0).lower()
    scope = Scope()
    if len(tokens) >= 2 and tokens[-2].lower() == "on":
        scope = Scope.parse(tokens[-1])
        tokens = tokens[:-2]
    if len(tokens) < 2 or ":" in tokens[-1]:
        raise UsageError(
            f"window {text!r}: give a rule and a time zone",
            hint="e.g. 'Sat 02:00-05:00 Europe/Paris' or 'cron 0 2 * * 6 3h UTC'",
        )
    zone = tokens.pop()
    load_zone(zone)
    if tokens[0].lower() == "cron":
        fields = tokens[1:]
        if len(fields) < 2:
            raise UsageError(f"window {text!r}: expected 'cron M H DOM MON DOW DURATION'")
        rule: WeeklyRule | CronRule = CronRule.parse(" ".join(fields[:-1]), fields[-1])
    else:
        rule = WeeklyRule.parse(" ".join(tokens))
    return Window(kind, rule, zone, scope)


def _entry_window(entry: Any, where: str) -> Window:
    """One entry of a windows file: ``{allow|deny: RULE, tz: ZONE, scope: SCOPE}``; RULE is a
    weekly range or ``{cron: EXPR, duration: 3h}``."""
    if not isinstance(entry, Mapping):
        raise UsageError("expected a mapping with allow or deny, tz and optional scope")
    unknown = set(entry) - {"allow", "deny", "tz", "scope"}
    if unknown:
        raise UsageError(f"unknown keys {', '.join(sorted(map(str, unknown)))}")
    kinds = [k for k in ("allow", "deny") if k in entry]
    if len(kinds) != 1 or not isinstance(entry.get("tz"), str):
        raise UsageError("give exactly one of allow or deny, and tz (an IANA zone)")
    zone, body = str(entry["tz"]), entry[kinds[0]]
    load_zone(zone)
    if isinstance(body, Mapping) and set(body) == {"cron", "duration"}:
        rule: WeeklyRule | CronRule = CronRule.parse(str(body["cron"]), str(body["duration"]))
    elif isinstance(body, str):
        rule = WeeklyRule.parse(body)
    else:
        raise UsageError(f"{kinds[0]}: a weekly range or {{cron: EXPR, duration: 3h}}")
    return Window(kinds[0], rule, zone, Scope.parse(str(entry.get("scope", "fleet"))))


def load_windows(path: Path) -> list[Window]:
    """Windows from a YAML file: a list of entries, or a mapping with a ``windows`` list::

    windows:
      - allow: Sat 02:00-05:00
        tz: Europe/Paris
        scope: label:role=storage
      - deny: {cron: "0 0 24 12 *", duration: 48h}
        tz: Europe/Paris
    """
    from fleet import yamlsrc

    data, lines = yamlsrc.load(path)
    entries = data.get("windows") if isinstance(data, Mapping) else data
    if not isinstance(entries, list):
        raise InputError("expected a list of windows (or windows: [...])", path=str(path))
    out = []
    for index, entry in enumerate(entries):
        key_path = ("windows", index) if isinstance(data, Mapping) else (index,)
        try:
            out.append(_entry_window(entry, f"{path}[{index}]"))
        except UsageError as exc:
            line = yamlsrc.line_of(lines, key_path)
            raise InputError(
                exc.message, path=str(path), line=line, key=f"windows[{index}]", hint=exc.hint
            ) from exc
    return out
