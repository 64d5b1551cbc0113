"""The command line's parameter types: what each accepts, and what Python's own parsers would
have let through (``nan``, ``inf``, exponents, other scripts' digits, huge numbers)."""

from __future__ import annotations

import math
from typing import Any

import click
import pytest

from fleet.cli.params import MAX_DURATION, Count, Duration, Ratio, seconds_text


def ok(kind: click.ParamType, text: Any) -> Any:
    return kind.convert(text, None, None)


def bad(kind: click.ParamType, text: Any) -> str:
    with pytest.raises(click.BadParameter) as info:
        kind.convert(text, None, None)
    return info.value.format_message()


@pytest.mark.parametrize(("text", "value"), [("1", 1), (" 7 ", 7), ("+3", 3), (5, 5), ("010", 10)])
def test_count_accepts_whole_numbers(text: Any, value: int) -> None:
    assert ok(Count(1), text) == value


@pytest.mark.parametrize(
    "text",
    ["0", "-1", "1e3", "1.0", "0x10", "5_000", "٣", "½", "", " ", "nan", "inf", True, 2.5, "1 2"],
)
def test_count_refuses_what_is_not_a_whole_number_in_range(text: Any) -> None:
    assert "at least 1" in bad(Count(1), text)


def test_count_rules_read_well() -> None:
    assert (Count(0).rule, Count(1).rule, Count(1, 65535).rule) == (
        "0 or more",
        "at least 1",
        "1 to 65535",
    )
    assert ok(Count(1, 3), "3") == 3 and "1 to 3" in bad(Count(1, 3), "4")


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0.0), ("1", 1.0), ("0.25", 0.25), (".5", 0.5), ("10%", 0.1), ("100%", 1.0), (0.3, 0.3)],
)
def test_ratio_takes_shares_and_percentages(text: Any, value: float) -> None:
    assert math.isclose(ok(Ratio(), text), value)


@pytest.mark.parametrize(
    "text", ["nan", "NaN", "inf", "-0.1", "1.5", "101%", "1e-1", "", "%", "x%", math.nan, True]
)
def test_ratio_refuses_the_rest(text: Any) -> None:
    assert "0 to 1, or 0% to 100%" in bad(Ratio(), text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        *[("0", 0.0), ("0s", 0.0), ("90s", 90.0), ("5m", 300.0), ("1h30m", 5400.0)],
        *[("2d", 172800.0), ("1w", 604800.0), ("1.5h", 5400.0), (" 30s ", 30.0)],
        *[("30d", MAX_DURATION), (12, 12.0)],
    ],
)
def test_duration_reads_units(text: Any, seconds: float) -> None:
    assert ok(Duration(), text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        *["nan", "inf", "-5s", "-0", "1e3", "1e309", "5 minutes", "5x", "", "h", "31d", "5w"],
        *["9" * 30 + "d", "9" * 400, math.inf, math.nan, -1.0, True],
    ],
)
def test_duration_refuses_the_rest(text: Any) -> None:
    assert "0s to 30d" in bad(Duration(), text)


def test_a_positive_duration_refuses_zero() -> None:
    assert "more than 0s" in bad(Duration(positive=True), "0s")
    assert ok(Duration(positive=True), "1s") == 1.0


def test_durations_written_back_are_read_back() -> None:
    for seconds in (0.0, 1.5, 300.0, MAX_DURATION):
        assert ok(Duration(), seconds_text(seconds)) == seconds
