"""Maintenance windows as pure functions: parsing, local time to UTC across DST changes in both
directions, ranges across midnight and year ends, Feb 29, deny over allow, scopes."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

import fleet.schedule
from fleet.errors import InputError, UsageError
from fleet.inventory import Host
from fleet.schedule import (
    AllOf,
    Period,
    Scope,
    WindowSet,
    add_months,
    add_years,
    expiry_after,
    format_duration,
    load_windows,
    load_zone,
    parse_duration,
    parse_window,
    plan_start,
    resolve_local,
    timetable_for,
)

PARIS = load_zone("Europe/Paris")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def wall(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A naive wall-clock reading (what a window is written in)."""
    return datetime(year, month, day, hour, minute)  # noqa: DTZ001


def periods(spec: str | list[str], start: datetime, days: int) -> list[tuple[datetime, datetime]]:
    specs = [spec] if isinstance(spec, str) else spec
    table = WindowSet(parse_window(s) for s in specs)
    return [(p.start, p.end) for p in table.open_periods(start, start + timedelta(days=days))]


# -- local time to UTC ------------------------------------------------------------------------


def test_an_ordinary_local_time_is_its_instant() -> None:
    assert resolve_local(wall(2026, 1, 15, 2, 30), PARIS) == utc(2026, 1, 15, 1, 30)
    assert resolve_local(wall(2026, 7, 15, 2, 30), PARIS) == utc(2026, 7, 15, 0, 30)


def test_a_skipped_local_time_is_the_instant_of_the_jump() -> None:
    # 2026-03-29: Paris clocks jump from 02:00 CET to 03:00 CEST at 01:00 UTC
    for minute in (0, 1, 30, 59):
        assert resolve_local(wall(2026, 3, 29, 2, minute), PARIS) == utc(2026, 3, 29, 1, 0)
    assert resolve_local(wall(2026, 3, 29, 3, 0), PARIS) == utc(2026, 3, 29, 1, 0)
    assert resolve_local(wall(2026, 3, 29, 1, 59), PARIS) == utc(2026, 3, 29, 0, 59)


def test_a_repeated_local_time_is_its_first_occurrence() -> None:
    # 2026-10-25: Paris clocks go back from 03:00 CEST to 02:00 CET at 01:00 UTC
    assert resolve_local(wall(2026, 10, 25, 2, 30), PARIS) == utc(2026, 10, 25, 0, 30)
    assert resolve_local(wall(2026, 10, 25, 3, 0), PARIS) == utc(2026, 10, 25, 2, 0)


def test_resolve_local_refuses_an_aware_time() -> None:
    with pytest.raises(ValueError, match="naive"):
        resolve_local(utc(2026, 1, 1), PARIS)


# -- weekly ranges across DST -----------------------------------------------------------------


def test_window_in_the_skipped_hour_is_shorter_on_spring_forward_day() -> None:
    got = periods("Sun 02:30-03:30 Europe/Paris", utc(2026, 3, 28), 9)
    assert got == [
        (utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 30)),  # 03:00-03:30 CEST: 30 minutes
        (utc(2026, 4, 5, 0, 30), utc(2026, 4, 5, 1, 30)),  # an ordinary summer Sunday
    ]


def test_window_in_the_repeated_hour_is_longer_on_fall_back_day() -> None:
    got = periods("Sun 02:30-03:30 Europe/Paris", utc(2026, 10, 24), 9)
    assert got == [
        (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 2, 30)),  # 02:30 CEST to 03:30 CET: 2 hours
        (utc(2026, 11, 1, 1, 30), utc(2026, 11, 1, 2, 30)),  # an ordinary winter Sunday
    ]


def test_window_wholly_in_the_skipped_hour_does_not_open_that_day() -> None:
    assert periods("Sun 02:10-02:50 Europe/Paris", utc(2026, 3, 28), 2) == []
    assert periods("Sun 02:10-02:50 Europe/Paris", utc(2026, 3, 21), 2) == [
        (utc(2026, 3, 22, 1, 10), utc(2026, 3, 22, 1, 50))
    ]


def test_same_local_window_moves_by_an_hour_in_utc_across_the_change() -> None:
    got = periods("Sat 02:00-05:00 Europe/Paris", utc(2026, 3, 20), 16)
    assert got == [
        (utc(2026, 3, 21, 1, 0), utc(2026, 3, 21, 4, 0)),
        (utc(2026, 3, 28, 1, 0), utc(2026, 3, 28, 4, 0)),
        (utc(2026, 4, 4, 0, 0), utc(2026, 4, 4, 3, 0)),
    ]


# -- cron windows across DST ------------------------------------------------------------------


def test_cron_window_lasts_its_elapsed_duration_on_both_dst_days() -> None:
    spring = periods("cron 30 2 * * * 1h Europe/Paris", utc(2026, 3, 28), 3)
    assert spring == [
        (utc(2026, 3, 28, 1, 30), utc(2026, 3, 28, 2, 30)),
        (utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 2, 0)),  # start skipped: at the jump
        (utc(2026, 3, 30, 0, 30), utc(2026, 3, 30, 1, 30)),
    ]
    fall = periods("cron 30 2 * * * 1h Europe/Paris", utc(2026, 10, 24), 3)
    assert fall == [
        (utc(2026, 10, 24, 0, 30), utc(2026, 10, 24, 1, 30)),
        (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)),  # once, at the first 02:30
        (utc(2026, 10, 26, 1, 30), utc(2026, 10, 26, 2, 30)),
    ]


def test_several_cron_starts_in_the_skipped_hour_open_once() -> None:
    got = periods("cron */15 2 * * * 10m Europe/Paris", utc(2026, 3, 29), 1)
    assert got == [(utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 10))]


# -- midnight, year ends, week 53 -------------------------------------------------------------


def test_range_across_midnight() -> None:
    table = WindowSet([parse_window("Fri 23:00-Sat 02:00 UTC")])
    assert table.is_open(utc(2026, 1, 2, 23, 30))  # Friday night
    assert table.is_open(utc(2026, 1, 3, 1, 59))  # Saturday early
    assert not table.is_open(utc(2026, 1, 3, 2, 0))
    assert table.open_until(utc(2026, 1, 2, 23, 30)) == utc(2026, 1, 3, 2, 0)
    assert table.next_open(utc(2026, 1, 3, 2, 0)) == utc(2026, 1, 9, 23, 0)


def test_range_without_end_day_crosses_midnight_when_it_ends_earlier() -> None:
    # 2026-01-09 is a Friday: its night runs into Saturday; Saturday and Sunday have none
    assert periods("Mon-Fri 22:00-02:00 UTC", utc(2026, 1, 9, 12), 3) == [
        (utc(2026, 1, 9, 22, 0), utc(2026, 1, 10, 2, 0)),
    ]


def test_range_across_the_week_end_and_the_year_end() -> None:
    # 2026-12-31 is a Thursday, 2027-01-03 a Sunday, 2027-01-04 a Monday
    assert periods("Sun 23:00-Mon 01:00 Europe/Paris", utc(2026, 12, 30), 7) == [
        (utc(2027, 1, 3, 22, 0), utc(2027, 1, 4, 0, 0))
    ]
    assert periods("Thu 22:00-Fri 03:00 Europe/Paris", utc(2026, 12, 30), 3) == [
        (utc(2026, 12, 31, 21, 0), utc(2027, 1, 1, 2, 0))
    ]
    assert periods("cron 0 23 31 12 * 2h UTC", utc(2026, 12, 1), 60) == [
        (utc(2026, 12, 31, 23, 0), utc(2027, 1, 1, 1, 0))
    ]


def test_weekly_window_through_a_53_week_year() -> None:
    """ISO 2026 has 53 weeks (W53: Dec 28 to Jan 3): one opening a week, 7 days apart."""
    assert date(2026, 12, 31).isocalendar().week == 53
    got = periods("Thu 02:00-03:00 UTC", utc(2026, 12, 1), 60)
    starts = [s for s, _ in got]
    assert utc(2026, 12, 31, 2, 0) in starts
    assert len(starts) == 9
    assert all(b - a == timedelta(days=7) for a, b in itertools.pairwise(starts))


# -- Feb 29 -------------------------------------------------------------------------------------


def test_yearly_window_on_feb_29() -> None:
    table = WindowSet([parse_window("cron 0 2 29 2 * 3h Europe/Paris")])
    assert table.next_open(utc(2028, 1, 1)) == utc(2028, 2, 29, 1, 0)
    assert table.is_open(utc(2028, 2, 29, 3, 0))
    assert table.open_until(utc(2028, 2, 29, 3, 0)) == utc(2028, 2, 29, 4, 0)
    # 2029 has no Feb 29: the next one is in 2032, no error and no invented date
    assert table.next_open(utc(2029, 1, 1)) == utc(2032, 2, 29, 1, 0)
    assert table.next_open(utc(2028, 3, 1)) == utc(2032, 2, 29, 1, 0)


def test_window_computed_on_feb_29() -> None:
    # 2028-02-29 is a Tuesday; the range ends on Wednesday 2028-03-01
    table = WindowSet([parse_window("Tue 23:00-Wed 02:00 Europe/Paris")])
    at = utc(2028, 2, 29, 23, 30)
    assert table.is_open(at)
    assert table.open_until(at) == utc(2028, 3, 1, 1, 0)
    assert table.next_open(utc(2028, 3, 1, 1, 0)) == utc(2028, 3, 7, 22, 0)
    # and in 2029 (no Feb 29) the same window keeps its weekly rhythm
    assert table.next_open(utc(2029, 2, 27, 12, 0)) == utc(2029, 2, 27, 22, 0)


def test_same_date_next_year_never_builds_an_invalid_date() -> None:
    assert add_years(date(2028, 2, 29), 1) == date(2029, 2, 28)
    assert add_years(date(2028, 2, 29), 4) == date(2032, 2, 29)
    assert add_years(date(2029, 2, 28), -1) == date(2028, 2, 28)
    assert add_months(date(2028, 1, 31), 1) == date(2028, 2, 29)
    assert add_months(date(2029, 1, 31), 1) == date(2029, 2, 28)
    assert add_months(date(2026, 12, 31), 1) == date(2027, 1, 31)
    assert add_months(date(2027, 1, 15), -1) == date(2026, 12, 15)
    day = date(2028, 1, 1)
    for _ in range(366 * 5):  # every day of a leap cycle: +1 year is always a valid date
        moved = add_years(day, 1)
        assert moved.month == day.month and moved.day <= day.day
        day += timedelta(days=1)


def test_expiry_computed_on_feb_29() -> None:
    start = utc(2028, 2, 29, 12, 0)
    assert expiry_after(start, "Europe/Paris", "1y") == utc(2029, 2, 28, 12, 0)
    assert expiry_after(start, "Europe/Paris", "4y") == utc(2032, 2, 29, 12, 0)
    assert expiry_after(start, "UTC", "1mo") == utc(2028, 3, 29, 12, 0)
    assert expiry_after(start, "UTC", "2w") == utc(2028, 3, 14, 12, 0)


def test_schedule_package_never_replaces_a_year_month_or_day() -> None:
    """The post-mortem's mistake (same date, year + 1) is built with replace(year=...)."""
    sources = sorted(Path(fleet.schedule.__file__).parent.glob("*.py"))
    assert len(sources) > 1  # the whole package is scanned, not only its __init__
    for source in sources:
        text = source.read_text()
        assert not re.search(r"replace\([^)]*\b(year|month|day)\s*=", text), source.name


# -- allow, deny, scopes ----------------------------------------------------------------------


def test_deny_wins_over_allow() -> None:
    table = WindowSet(
        [parse_window("Sat 02:00-06:00 UTC"), parse_window("deny Sat 03:00-04:00 UTC")]
    )
    assert table.is_open(utc(2026, 1, 3, 2, 30))
    assert table.open_until(utc(2026, 1, 3, 2, 30)) == utc(2026, 1, 3, 3, 0)
    assert not table.is_open(utc(2026, 1, 3, 3, 30))
    assert table.next_open(utc(2026, 1, 3, 3, 30)) == utc(2026, 1, 3, 4, 0)


def test_only_deny_windows_leave_the_rest_open() -> None:
    table = WindowSet([parse_window("deny cron 0 8 * * 1-5 10h Europe/Paris")])
    assert table.is_open(utc(2026, 1, 3, 12, 0))  # Saturday
    assert not table.is_open(utc(2026, 1, 5, 12, 0))  # Monday working hours
    assert table.open_until(utc(2026, 1, 5, 6, 0)) == utc(2026, 1, 5, 7, 0)
    assert WindowSet([]).open_until(utc(2026, 1, 5)) is None  # never closes


def test_touching_windows_merge_into_one_open_period() -> None:
    table = WindowSet([parse_window("Fri 22:00-24:00 UTC"), parse_window("Sat 00:00-03:00 UTC")])
    assert table.open_until(utc(2026, 1, 2, 22, 30)) == utc(2026, 1, 3, 3, 0)


def host(name: str, **kw: object) -> Host:
    return Host(name=name, address="127.0.0.1", **kw)  # type: ignore[arg-type]


def test_scopes_select_hosts() -> None:
    storage = host("a", labels={"role": "storage"}, datacenter="GRA3", groups=("db",))
    web = host("b", labels={"role": "web"}, datacenter="rbx8")
    assert Scope.parse("label:role=storage").matches(storage)
    assert not Scope.parse("label:role=storage").matches(web)
    assert Scope.parse("label:role").matches(web)
    assert Scope.parse("dc:gra3").matches(storage)
    assert Scope.parse("group:db").matches(storage) and not Scope.parse("group:db").matches(web)
    assert Scope.parse("fleet").matches(web)
    with pytest.raises(UsageError, match="scope"):
        Scope.parse("rack:x")


def test_a_batch_starts_only_when_every_hosts_windows_are_open() -> None:
    windows = [
        parse_window("Sat 02:00-05:00 UTC on label:role=storage"),
        parse_window("Sat 04:00-08:00 UTC on dc:rbx8"),
    ]
    storage = host("a", labels={"role": "storage"}, datacenter="gra3")
    web = host("b", labels={"role": "web"}, datacenter="rbx8")
    other = host("c", labels={"role": "web"}, datacenter="sbg5")
    assert timetable_for(windows, [other]).is_open(utc(2026, 1, 7, 12, 0))  # no window: always
    both = timetable_for(windows, [storage, web, other])
    assert isinstance(both, AllOf)
    assert both.next_open(utc(2026, 1, 3, 0, 0)) == utc(2026, 1, 3, 4, 0)
    assert both.open_until(utc(2026, 1, 3, 4, 0)) == utc(2026, 1, 3, 5, 0)


# -- fitting work into a window ---------------------------------------------------------------


def test_plan_start_waits_for_a_window_long_enough() -> None:
    table = WindowSet([parse_window("Sat 02:00-03:00 UTC"), parse_window("Sun 02:00-06:00 UTC")])
    now = utc(2026, 1, 3, 2, 30)
    assert plan_start(table, now, timedelta(minutes=20)).start == now
    late = plan_start(table, now, timedelta(hours=2))
    assert late.start == utc(2026, 1, 4, 2, 0) and late.until == utc(2026, 1, 4, 6, 0)
    assert "does not fit in the 30m left" in late.reason
    huge = plan_start(table, now, timedelta(hours=9))
    assert huge.start == now and "no window is long enough" in huge.reason
    never = WindowSet(
        [parse_window("Sat 02:00-03:00 UTC"), parse_window("deny daily 00:00-24:00 UTC")]
    )
    assert plan_start(never, now, timedelta(0)).start is None


# -- parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Sat 02:00-05:00 Europe/Paris", "allow Sat 02:00-05:00 Europe/Paris"),
        ("deny Fri 23:00-Sat 02:00 UTC on dc:gra3", "deny Fri 23:00-Sat 02:00 UTC on dc:gra3"),
        ("saturday 2:00-5:00 UTC", "allow Sat 02:00-05:00 UTC"),
        ("Fri-Mon 01:00-02:00 UTC", "allow Mon,Fri,Sat,Sun 01:00-02:00 UTC"),
        ("cron 0 2 * * 6 3h Europe/Paris on label:role=storage",
         "allow cron 0 2 * * 6 3h Europe/Paris on label:role=storage"),
    ],
)  # fmt: skip
def test_window_specs_parse(text: str, shown: str) -> None:
    assert str(parse_window(text)) == shown


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Sat 02:00-05:00", "time zone"),
        ("Sat 02:00-05:00 Mars/Olympus", "unknown time zone"),
        ("Sat 25:00-05:00 UTC", "bad time"),
        ("Sot 02:00-05:00 UTC", "bad day"),
        ("Sat 02:00-02:00 UTC", "same time"),
        ("Mon-Fri 23:00-Sat 02:00 UTC", "single start day"),
        ("cron 0 2 30 2 * 1h UTC", "bad cron"),
        ("cron 0 2 * * 6 0s UTC", "positive"),
        ("cron 0 2 * * 6 soon UTC", "duration"),
        ("Sat 02:00-05:00 UTC on rack:1", "scope"),
    ],
)
def test_bad_window_specs_are_refused(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_window(text)


def test_windows_file(tmp_path: Path) -> None:
    path = tmp_path / "windows.yaml"
    path.write_text(
        "windows:\n"
        "  - allow: Sat 02:00-05:00\n"
        "    tz: Europe/Paris\n"
        "    scope: label:role=storage\n"
        "  - deny: {cron: '0 0 24 12 *', duration: 48h}\n"
        "    tz: Europe/Paris\n"
    )
    allow, deny = load_windows(path)
    assert str(allow) == "allow Sat 02:00-05:00 Europe/Paris on label:role=storage"
    assert str(deny) == "deny cron 0 0 24 12 * 2d Europe/Paris"
    path.write_text(
        "- allow: Sat 02:00-05:00\n  tz: UTC\n- deny: Sat 03:00-04:00\n  tz: Nowhere/X\n"
    )
    with pytest.raises(InputError, match=r"windows\.yaml:3: windows\[1\]: unknown time zone"):
        load_windows(path)


def test_durations() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("2d") == timedelta(days=2)
    assert parse_duration("45") == timedelta(seconds=45)
    assert format_duration(timedelta(hours=49, minutes=5)) == "2d1h5m"
    with pytest.raises(UsageError):
        parse_duration("3 hours")


def test_periods_are_half_open() -> None:
    p = Period(utc(2026, 1, 1), utc(2026, 1, 2))
    assert p.contains(utc(2026, 1, 1)) and not p.contains(utc(2026, 1, 2))


def test_window_queries_compute_each_window_block_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rollout asks before every host: 1,000 questions over a week compute each window's
    blocks once, and answer what a fresh computation answers."""
    from fleet.schedule import CronRule, WeeklyRule

    specs = (
        "cron 0 2 * * 6 3h Europe/Paris",
        "deny Sat 03:00-03:30 Europe/Paris",
        "Sun 01:00-04:00 UTC",
    )
    windows = [parse_window(s) for s in specs]
    need = timedelta(minutes=20)
    moments = [utc(2026, 1, 1) + timedelta(minutes=10 * i) for i in range(1000)]
    expected = {at: plan_start(WindowSet(windows), at, need) for at in moments[::20]}
    calls = 0

    def counting(original):  # type: ignore[no-untyped-def]
        def periods(self, tz, start, end):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            return original(self, tz, start, end)

        return periods

    monkeypatch.setattr(CronRule, "periods", counting(CronRule.periods))
    monkeypatch.setattr(WeeklyRule, "periods", counting(WeeklyRule.periods))
    for i, at in enumerate(moments):
        plan = plan_start(timetable_for(windows, [host(f"h{i}")]), at, need)
        if at in expected:
            assert plan == expected[at]
    assert calls <= 3 * 4, calls  # three windows, at most four 8-day blocks each
