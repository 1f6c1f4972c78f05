"""Durations, timestamps and their text forms, all in integer microseconds."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from engine.timeutil import (
    datetime_to_us,
    format_duration,
    format_timestamp,
    parse_duration,
    seconds_to_us,
)

SECOND = 1_000_000


@pytest.mark.parametrize(
    ("text", "expected_us"),
    [
        ("250ms", 250_000),
        ("10s", 10 * SECOND),
        ("5m", 5 * 60 * SECOND),
        ("1h", 3600 * SECOND),
        ("2d", 2 * 86400 * SECOND),
        ("1.5h", 90 * 60 * SECOND),
        ("1500us", 1500),
        ("0s", 0),
        (" 3s ", 3 * SECOND),
    ],
)
def test_duration_text_with_unit_becomes_microseconds(
    text: str, expected_us: int
) -> None:
    """A duration string with a unit converts to the exact number of µs."""
    assert parse_duration(text) == expected_us


@pytest.mark.parametrize(
    ("seconds", "expected_us"),
    [(10, 10 * SECOND), (0, 0), (0.1, 100_000), (2.01, 2_010_000), (4.1, 4_100_000)],
)
def test_duration_number_is_seconds_converted_exactly(
    seconds: float, expected_us: int
) -> None:
    """A number is seconds, rounded once to the microsecond, never truncated."""
    result = parse_duration(seconds)

    assert result == expected_us
    assert isinstance(result, int)


@pytest.mark.parametrize(
    "value",
    [-1, -0.5, "-5s", True, False, "abc", "10", "", "1e3s", "5 minutes", "10 s s"],
)
def test_bad_duration_raises_value_error_naming_the_value(value: object) -> None:
    """Negative, boolean and unparsable durations fail with the value quoted."""
    with pytest.raises(ValueError, match=re.escape(repr(value))):
        parse_duration(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_non_finite_duration_raises_value_error(value: float) -> None:
    """Infinity and NaN are not durations: a ValueError, not another error."""
    with pytest.raises(ValueError, match=re.escape(repr(value))):
        parse_duration(value)


@pytest.mark.parametrize(
    ("us", "text"),
    [
        (0, "0s"),
        (250_000, "250ms"),
        (10 * SECOND, "10s"),
        (90 * SECOND, "90s"),
        (3600 * SECOND, "1h"),
        (36 * 3600 * SECOND, "36h"),
        (86400 * SECOND, "1d"),
        (1500, "1500us"),
        (1_500_000, "1500ms"),
    ],
)
def test_format_duration_gives_the_shortest_exact_text(us: int, text: str) -> None:
    """The largest unit that divides the duration exactly is used."""
    assert format_duration(us) == text


@pytest.mark.parametrize(
    "us", [0, 1, 999, 1000, 1_500_000, 59 * SECOND, 61 * SECOND, 7 * 86400 * SECOND]
)
def test_format_duration_round_trips_through_parse_duration(us: int) -> None:
    """Formatting a duration and parsing it back gives the same microseconds."""
    assert parse_duration(format_duration(us)) == us


def test_format_timestamp_uses_milliseconds_when_exact() -> None:
    """A whole number of milliseconds prints three fraction digits and a Z."""
    us = calendar.timegm((2024, 1, 1, 0, 0, 0)) * SECOND + 123_000

    assert format_timestamp(us) == "2024-01-01T00:00:00.123Z"


def test_format_timestamp_uses_microseconds_otherwise() -> None:
    """A time that is not a whole millisecond prints six fraction digits."""
    us = calendar.timegm((2024, 1, 1, 0, 0, 0)) * SECOND + 1500

    assert format_timestamp(us) == "2024-01-01T00:00:00.001500Z"


def test_format_timestamp_of_the_epoch() -> None:
    """Zero microseconds is the Unix epoch in UTC."""
    assert format_timestamp(0) == "1970-01-01T00:00:00.000Z"


def test_datetime_to_us_is_exact_to_the_microsecond() -> None:
    """Even far from the epoch no microsecond is lost to float rounding."""
    moment = datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    expected = calendar.timegm((9999, 12, 31, 23, 59, 59)) * SECOND + 999_999

    assert datetime_to_us(moment) == expected


def test_datetime_to_us_honours_the_offset() -> None:
    """02:00 at +02:00 is midnight UTC."""
    moment = datetime(2024, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))

    assert datetime_to_us(moment) == calendar.timegm((2024, 1, 1, 0, 0, 0)) * SECOND


@pytest.mark.parametrize(
    ("seconds", "expected_us"),
    [
        (1_700_000_000, 1_700_000_000 * SECOND),
        (2.01, 2_010_000),
        (1_700_000_000.123456, 1_700_000_000_123_456),
        (0.1, 100_000),
    ],
)
def test_seconds_to_us_is_exact(seconds: float, expected_us: int) -> None:
    """Epoch seconds, int or float, become the microseconds they denote."""
    result = seconds_to_us(seconds)

    assert result == expected_us
    assert isinstance(result, int)
