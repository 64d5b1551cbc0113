"""``fleet audit --since``: durations ago, ISO dates and times (UTC unless they say), refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fleet.cli.audit import parse_since
from fleet.errors import UsageError

NOW = datetime(2028, 2, 29, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - timedelta(minutes=30)),
        ("12h", NOW - timedelta(hours=12)),
        ("1.5h", NOW - timedelta(minutes=90)),
        ("7d", NOW - timedelta(days=7)),
        ("2w", NOW - timedelta(days=14)),
        ("2028-02-29", datetime(2028, 2, 29, tzinfo=UTC)),
        ("2028-02-29T14:00", datetime(2028, 2, 29, 14, tzinfo=UTC)),
        ("2028-02-29T14:00+01:00", datetime(2028, 2, 29, 13, tzinfo=UTC)),
    ],
)
def test_since_forms(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "10", "5s", "2029-02-29", "-3d"])
def test_bad_since_is_refused(text: str) -> None:
    with pytest.raises(UsageError, match="expected a duration ago"):
        parse_since(text, NOW)
