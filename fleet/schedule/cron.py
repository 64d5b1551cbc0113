"""fleet's own cron grammar: five fields, read the way Vixie cron reads them.

Every expression is parsed here before any library sees it, and handed on only in a canonical
form that no library can misread: each field is ``*`` or an explicit, sorted list of values. (The
croniter versions pip installs today read an equal-ended range such as ``6-6`` as the whole
field, so ``0 2 * * 6-6`` would fire every day; a list ``6`` cannot be misread.)

Grammar (``crontab(5)``)::

    EXPR  = MIN HOUR DOM MONTH DOW        exactly five fields, separated by blanks
    FIELD = ITEM[,ITEM...]
    ITEM  = * | */STEP | N | N-M | N-M/STEP
    MIN 0-59, HOUR 0-23, DOM 1-31, MONTH 1-12 or jan..dec, DOW 0-7 or sun..sat (0 and 7: Sunday)

Refused, with the form to write instead: ``@daily`` and other nicknames, a sixth field
(seconds or years), ``5/15`` (a step needs ``*`` or a range: ``5-59/15``), a range whose end
is before its start, a step of 0, values out of range, names in ranges' wrong fields.

The day rule is Vixie cron's: when the day-of-month or the day-of-week field starts with
``*`` (``*`` or ``*/n``), a day must match both fields; when both are restricted, a day
matching either one fires. So ``0 0 1 * 1`` fires on the 1st and on every Monday, while
``0 0 */2 * 1`` fires on Mondays with an odd date only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from croniter import CroniterBadDateError, croniter

from fleet.errors import UsageError

_HINT = "five fields: minute hour day-of-month month day-of-week, e.g. '30 2 * * 6'"
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    name_base: int = 0


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, _MONTHS, 1),
    _Field("day-of-week", 0, 7, _DAYS, 0),
)
_ITEM = re.compile(r"(?P<range>\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/(?P<step>[0-9]+))?")


@dataclass(frozen=True)
class CronExpr:
    """A parsed expression: the values of each field, and how the two day fields combine."""

    text: str
    fields: tuple[tuple[int, ...], ...]  # minute, hour, dom, month, dow (0-6, Sunday 0)
    starred: tuple[bool, ...]  # the field is the whole range (written * or equivalent)
    day_or: bool  # both day fields restricted: a day matching either one fires

    @property
    def canonical(self) -> str:
        """The expression as fleet hands it on: ``*`` or an explicit list per field."""
        return " ".join(
            "*" if star else ",".join(map(str, values))
            for values, star in zip(self.fields, self.starred, strict=True)
        )

    def walk(self, start: datetime, *, backwards: bool = False) -> Iterator[datetime]:
        """Matching wall-clock times (naive) after ``start`` (before it with ``backwards``),
        nearest first, until the library finds no further date."""
        it = croniter(self.canonical, start, day_or=self.day_or)
        step = it.get_prev if backwards else it.get_next
        while True:
            try:
                yield step(datetime)
            except CroniterBadDateError:
                return


def parse_cron(text: str) -> CronExpr:
    """Parse ``text`` with fleet's grammar, or raise a :class:`UsageError` saying what to write."""
    expr = text.strip()
    if expr.startswith("@"):
        instead = _NICKNAMES.get(expr.lower())
        hint = f"write {instead!r}" if instead else _HINT
        raise UsageError(
            f"bad cron expression {text!r}: nicknames such as @daily are not supported", hint=hint
        )
    parts = expr.lower().split()
    if len(parts) != 5:
        raise UsageError(
            f"bad cron expression {text!r}: {len(parts)} fields, expected exactly 5 (no seconds, no years)",
            hint=_HINT,
        )
    day_or = not (parts[2].startswith("*") or parts[4].startswith("*"))
    fields: list[tuple[int, ...]] = []
    starred: list[bool] = []
    for index, (part, spec) in enumerate(zip(parts, _FIELDS, strict=True)):
        values = _parse_field(text, part, spec)
        if spec.name == "day-of-week":
            values = {v % 7 for v in values}  # 7 is Sunday too
        high = 6 if spec.name == "day-of-week" else spec.high
        full = values == set(range(spec.low, high + 1))
        fields.append(tuple(sorted(values)))
        # Under the either-day rule a whole-range day field is still a restriction: keep it
        # a list so that the library applies the same rule.
        starred.append(full and not (day_or and index in (2, 4)))
    return CronExpr(expr, tuple(fields), tuple(starred), day_or)


def _parse_field(text: str, part: str, spec: _Field) -> set[int]:
    values: set[int] = set()
    for item in part.split(","):
        match = _ITEM.fullmatch(item)
        if not match:
            raise _bad(text, spec, f"{item!r} is not N, N-M, *, */STEP or N-M/STEP")
        step = int(match["step"]) if match["step"] is not None else 1
        if step == 0:
            raise _bad(text, spec, f"{item!r} has a step of 0")
        if match["range"] == "*":
            low, high = spec.low, spec.high
        else:
            first, dash, last = match["range"].partition("-")
            low = _value(text, first, spec)
            high = _value(text, last, spec) if dash else low
            if match["step"] is not None and not dash:
                raise _bad(
                    text,
                    spec,
                    f"{item!r}: a step needs * or a range",
                    f"write {first}-{spec.high}/{step}",
                )
            if high < low:
                raise _bad(text, spec, f"{item!r} ends before it starts", "write it as a list")
        values.update(range(low, high + 1, step))
    return values


def _value(text: str, token: str, spec: _Field) -> int:
    if token.isdigit():
        value = int(token)
    elif token in spec.names:
        value = spec.names.index(token) + spec.name_base
    else:
        raise _bad(text, spec, f"{token!r} is not a number" + _names_note(spec))
    if not spec.low <= value <= spec.high:
        raise _bad(text, spec, f"{value} is outside {spec.low}-{spec.high}")
    return value


def _names_note(spec: _Field) -> str:
    return f" or one of {spec.names[0]}..{spec.names[-1]}" if spec.names else ""


def _bad(text: str, spec: _Field, why: str, hint: str = _HINT) -> UsageError:
    return UsageError(f"bad cron expression {text!r}: {spec.name} field: {why}", hint=hint)
