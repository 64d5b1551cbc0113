"""fleet's cron grammar, and what it fires, checked against a brute-force reading of crontab(5).

The reference matcher below reads an expression the way Vixie cron does, minute by minute,
without any library: every expression fleet accepts must give the same firing times through
the library fleet hands it to. So a library release that misreads a form (croniter 7 reads
``6-6`` as ``*``) fails these tests instead of a schedule.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import islice

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.errors import UsageError
from fleet.schedule import check_cron, cron_dues
from fleet.schedule.cron import parse_cron

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


# --------------------------------------------------------------------- the reference reading


def _values(field: str, low: int, high: int, names: list[str], base: int) -> set[int]:
    out: set[int] = set()
    for item in field.split(","):
        body, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if body == "*":
            a, b = low, high
        else:
            first, _, last = body.partition("-")
            a = int(first) if first.isdigit() else names.index(first) + base
            b = (int(last) if last.isdigit() else names.index(last) + base) if last else a
        out.update(range(a, b + 1, step))
    return out


def reference_next(expr: str, after: datetime, count: int, span: timedelta) -> list[datetime]:
    """The next ``count`` minutes after ``after`` (within ``span``) at which Vixie cron runs
    ``expr`` (crontab(5); cron.c: the day rule looks at whether a day field starts with *)."""
    minute, hour, dom, month, dow = expr.lower().split()
    minutes, hours = _values(minute, 0, 59, [], 0), _values(hour, 0, 23, [], 0)
    doms, months = _values(dom, 1, 31, [], 0), _values(month, 1, 12, _MONTHS, 1)
    dows = {d % 7 for d in _values(dow, 0, 7, _DAYS, 0)}
    both = dom.startswith("*") or dow.startswith("*")
    out: list[datetime] = []
    at, end = after + timedelta(minutes=1), after + span
    while at <= end and len(out) < count:
        dom_hit, dow_hit = at.day in doms, (at.weekday() + 1) % 7 in dows
        day_hit = (dom_hit and dow_hit) if both else (dom_hit or dow_hit)
        if day_hit and at.month in months and at.hour in hours and at.minute in minutes:
            out.append(at)
        at += timedelta(minutes=1)
    return out


def fleet_next(expr: str, after: datetime, count: int, span: timedelta) -> list[datetime]:
    walk = parse_cron(expr).walk(after)
    return [at for at in islice(walk, count) if at <= after + span]


START = datetime(2026, 1, 1)  # noqa: DTZ001 (wall-clock times throughout)


# ------------------------------------------------------------------------- named cases


@pytest.mark.parametrize(
    ("expr", "first"),
    [
        # equal-ended ranges are the single value, not the whole field
        ("0 2 * * 6-6", ["Sat 03 02:00", "Sat 10 02:00", "Sat 17 02:00"]),
        ("30-30 2 * * *", ["Thu 01 02:30", "Fri 02 02:30", "Sat 03 02:30"]),
        # both day fields restricted: either one
        (
            "0 0 1 * 1",
            ["Mon 05 00:00", "Mon 12 00:00", "Mon 19 00:00", "Mon 26 00:00", "Sun 01 00:00"],
        ),
        # a day field starting with * restricts together with the other
        ("0 0 */2 * 1", ["Mon 05 00:00", "Mon 19 00:00", "Mon 09 00:00", "Mon 23 00:00"]),
        ("0 0 * * 1", ["Mon 05 00:00", "Mon 12 00:00"]),
        # a whole range written as a range is still a restriction
        ("0 0 1-31 * 1", ["Fri 02 00:00", "Sat 03 00:00"]),
        # Sunday is 0 and 7, and has a name
        ("0 0 * * 7", ["Sun 04 00:00", "Sun 11 00:00"]),
        ("0 0 * * SUN", ["Sun 04 00:00"]),
        ("15 10 * FEB-MAR mon-fri", ["Mon 02 10:15", "Tue 03 10:15"]),
        ("0-10/5 */12 * * *", ["Thu 01 00:05", "Thu 01 00:10", "Thu 01 12:00", "Thu 01 12:05"]),
    ],
)
def test_firing_times(expr: str, first: list[str]) -> None:
    got = [at.strftime("%a %d %H:%M") for at in islice(parse_cron(expr).walk(START), len(first))]
    assert got == first
    span = timedelta(days=70)
    assert fleet_next(expr, START, len(first), span) == reference_next(
        expr, START, len(first), span
    )


@pytest.mark.parametrize(
    ("expr", "says", "hint"),
    [
        ("@daily", "nicknames", "'0 0 * * *'"),
        ("@reboot", "nicknames", "five fields"),
        ("0 0 * * * *", "6 fields, expected exactly 5", "five fields"),
        ("0 0 * *", "4 fields", "five fields"),
        ("", "0 fields", "five fields"),
        ("5/15 * * * *", "a step needs * or a range", "5-59/15"),
        ("5-3 * * * *", "ends before it starts", "list"),
        ("*/0 * * * *", "step of 0", "five fields"),
        ("60 * * * *", "60 is outside 0-59", "five fields"),
        ("0 24 * * *", "hour field: 24 is outside 0-23", "five fields"),
        ("0 0 0 * *", "day-of-month field: 0 is outside 1-31", "five fields"),
        ("0 0 * 13 *", "month field: 13 is outside 1-12", "five fields"),
        ("0 0 * * 8", "day-of-week field: 8 is outside 0-7", "five fields"),
        ("0 0 * foo *", "'foo' is not a number or one of jan..dec", "five fields"),
        ("0 0 * * mon-xyz", "'xyz' is not a number or one of sun..sat", "five fields"),
        ("0 0 * jan *x", "is not N, N-M", "five fields"),
        ("1,,2 * * * *", "'' is not N", "five fields"),
        ("L * * * *", "'l' is not a number", "five fields"),
        ("0 0 ? * *", "'?' is not N", "five fields"),
        ("0 0 * * 1#2", "is not N", "five fields"),
    ],
)
def test_expressions_outside_the_grammar_are_refused(expr: str, says: str, hint: str) -> None:
    with pytest.raises(UsageError) as info:
        check_cron(expr)
    assert says in info.value.message
    assert hint in (info.value.hint or "")


def test_an_expression_that_never_matches_is_refused() -> None:
    with pytest.raises(UsageError, match="never matches"):
        check_cron("0 0 30 2 *")


def test_schedule_dues_use_the_grammar() -> None:
    """The scheduler's due times: Saturdays only for ``6-6`` (croniter alone: every day)."""
    from datetime import UTC

    after = datetime(2026, 1, 1, tzinfo=UTC)
    dues = list(cron_dues("0 2 * * 6-6", "UTC", after, after + timedelta(days=15)))
    assert [d.strftime("%a %d") for d in dues] == ["Sat 03", "Sat 10"]


# ------------------------------------------------------------- generated, against reference


def _field(low: int, high: int, names: list[str], base: int) -> st.SearchStrategy[str]:
    value = st.integers(low, high)
    named = value.map(lambda v: names[v - base] if names and 0 <= v - base < len(names) else str(v))

    def ranged(pair: tuple[int, int]) -> str:
        a, b = sorted(pair)
        return f"{a}-{b}"

    item = st.one_of(
        st.just("*"),
        st.integers(1, high - low + 1).map(lambda s: f"*/{s}"),
        named,
        st.tuples(value, value).map(ranged),
        st.tuples(st.tuples(value, value).map(ranged), st.integers(1, 9)).map(
            lambda rs: f"{rs[0]}/{rs[1]}"
        ),
    )
    return st.lists(item, min_size=1, max_size=3).map(",".join)


EXPRESSIONS = st.tuples(
    _field(0, 59, [], 0),
    _field(0, 23, [], 0),
    _field(1, 31, [], 0),
    _field(1, 12, _MONTHS, 1),
    _field(0, 7, _DAYS, 0),
).map(" ".join)


@settings(max_examples=150, deadline=None)
@given(EXPRESSIONS, st.integers(0, 400))
def test_generated_expressions_fire_as_crontab_says(expr: str, day: int) -> None:
    """Any expression of the grammar fires, through the library, when the reference says."""
    try:
        parse_cron(expr)
        check_cron(expr)
    except UsageError:
        return  # e.g. the 31st of a month list without one: never matches, refused
    after = START + timedelta(days=day, minutes=day * 7)
    span = timedelta(days=3)
    want = reference_next(expr, after, 5, span)
    assert fleet_next(expr, after, 5, span) == want
