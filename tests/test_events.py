"""Decoding JSON event lines into events, and setting bad lines aside."""

from __future__ import annotations

import calendar
import json
from typing import Any

import pytest

from engine.events import (
    BAD_TIMESTAMP,
    MISSING_FIELD,
    NOT_JSON,
    NOT_OBJECT,
    WRONG_TYPE,
    BadEvent,
    Event,
    EventDecoder,
)

SECOND = 1_000_000
NEW_YEAR_2024_US = calendar.timegm((2024, 1, 1, 0, 0, 0)) * SECOND


def line(**fields: Any) -> bytes:
    """A JSON line with a valid event, overridden by ``fields``."""
    base: dict[str, Any] = {
        "timestamp": "2024-01-01T00:00:00Z",
        "event_type": "ERROR",
        "source": "web-1",
    }
    base.update(fields)
    return json.dumps(base).encode()


def without(key: str) -> bytes:
    """A JSON line with a valid event missing ``key``."""
    data = json.loads(line())
    del data[key]
    return json.dumps(data).encode()


def decode(raw: bytes) -> Event | BadEvent:
    return EventDecoder().decode(raw)


def test_iso_timestamp_with_z_decodes_to_utc_microseconds() -> None:
    """An ISO-8601 timestamp with Z is read as UTC, exact to the microsecond."""
    result = decode(line(timestamp="2024-01-01T00:00:00.000123Z"))

    assert result == Event(NEW_YEAR_2024_US + 123, "ERROR", "web-1", None, {})


def test_iso_timestamp_with_offset_is_converted_to_utc() -> None:
    """02:00+02:00 is midnight UTC."""
    result = decode(line(timestamp="2024-01-01T02:00:00+02:00"))

    assert isinstance(result, Event)
    assert result.time_us == NEW_YEAR_2024_US


def test_integer_epoch_seconds_decode_exactly() -> None:
    """An integer timestamp is seconds since the epoch."""
    result = decode(line(timestamp=1_700_000_000))

    assert isinstance(result, Event)
    assert result.time_us == 1_700_000_000 * SECOND


def test_float_epoch_seconds_decode_exactly() -> None:
    """A float timestamp keeps its fraction to the microsecond."""
    result = decode(line(timestamp=1_700_000_000.25))

    assert isinstance(result, Event)
    assert result.time_us == 1_700_000_000 * SECOND + 250_000


def test_value_and_metadata_are_kept() -> None:
    """Optional value and metadata come through unchanged."""
    result = decode(line(value=2.5, metadata={"zone": {"name": "eu"}, "n": 1}))

    assert isinstance(result, Event)
    assert result.value == 2.5
    assert result.metadata == {"zone": {"name": "eu"}, "n": 1}


def test_unknown_top_level_keys_are_ignored() -> None:
    """Extra keys in an event line do not make it bad."""
    result = decode(line(host="h1", trace={"id": 7}))

    assert result == Event(NEW_YEAR_2024_US, "ERROR", "web-1", None, {})


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", NOT_JSON),
        (b'{"timestamp": 1', NOT_JSON),
        (b"[1, 2]", NOT_OBJECT),
        (b'"text"', NOT_OBJECT),
        (b"5", NOT_OBJECT),
        (without("timestamp"), MISSING_FIELD),
        (without("event_type"), MISSING_FIELD),
        (without("source"), MISSING_FIELD),
        (line(timestamp="2024-01-01T00:00:00"), BAD_TIMESTAMP),
        (line(timestamp="yesterday"), BAD_TIMESTAMP),
        (line(timestamp=-1), BAD_TIMESTAMP),
        (line(timestamp=1e300), BAD_TIMESTAMP),
        (line(timestamp=253_402_300_800), BAD_TIMESTAMP),
        (line(timestamp=True), BAD_TIMESTAMP),
        (line(timestamp=None), BAD_TIMESTAMP),
        (line(event_type=5), WRONG_TYPE),
        (line(source=None), WRONG_TYPE),
        (line(value="high"), WRONG_TYPE),
        (line(value=True), WRONG_TYPE),
        (line(metadata=[1, 2]), WRONG_TYPE),
        (line(metadata="x"), WRONG_TYPE),
    ],
)
def test_bad_line_is_set_aside_with_its_reason(raw: bytes, reason: str) -> None:
    """Each kind of bad line gives a BadEvent with its reason and the raw bytes."""
    result = decode(raw)

    assert isinstance(result, BadEvent)
    assert result.reason == reason
    assert result.raw == raw
    assert result.detail


def test_timestamp_without_time_zone_detail_says_so() -> None:
    """A naive timestamp is rejected and the detail mentions the time zone."""
    result = decode(line(timestamp="2024-01-01T00:00:00"))

    assert isinstance(result, BadEvent)
    assert "timezone" in result.detail.replace(" ", "").lower()


def test_decode_lines_keeps_good_lines_in_order_and_reports_each_bad_one() -> None:
    """A mixed batch yields the good events in order and one BadEvent per bad
    line; blank lines are neither."""
    batch = [
        line(timestamp=1, event_type="A") + b"\n",
        b"",
        b"not json\n",
        line(timestamp=2, event_type="B"),
        b"   \n",
        b"[1]",
        line(timestamp=3, event_type="C") + b"\r\n",
        without("source"),
    ]

    events, bad = EventDecoder().decode_lines(batch)

    assert [(e.time_us, e.event_type) for e in events] == [
        (1 * SECOND, "A"),
        (2 * SECOND, "B"),
        (3 * SECOND, "C"),
    ]
    assert [(b.reason, b.raw) for b in bad] == [
        (NOT_JSON, b"not json\n"),
        (NOT_OBJECT, b"[1]"),
        (MISSING_FIELD, without("source")),
    ]


def test_decode_lines_with_only_good_lines_reports_nothing_bad() -> None:
    """A clean batch, with or without newlines, decodes whole and in order."""
    batch = [line(timestamp=t, event_type=str(t)) + b"\n" for t in (5, 1, 3)]

    events, bad = EventDecoder().decode_lines(batch)

    assert [e.event_type for e in events] == ["5", "1", "3"]
    assert bad == []


def test_decode_lines_skips_blank_lines_in_an_otherwise_good_batch() -> None:
    """Blank lines in a good batch are dropped without being reported."""
    batch = [line(timestamp=1), b"", line(timestamp=2), b"\n"]

    events, bad = EventDecoder().decode_lines(batch)

    assert [e.time_us for e in events] == [1 * SECOND, 2 * SECOND]
    assert bad == []
