"""Integer-microsecond time: durations, timestamps and their text forms.

Window arithmetic must be exact, so every time inside the engine is an ``int``
of microseconds since the Unix epoch, and every duration an ``int`` of
microseconds. Floats appear only at the edges, when a user writes a number of
seconds, and are rounded to the microsecond once.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

US_PER_SECOND = 1_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)

#: The largest representable instant; the watermark jumps here when every
#: source is exhausted so that all pending windows are decided.
END_OF_TIME = 2**62

#: Far beyond any window, and far enough from END_OF_TIME that an event's
#: time plus a window never reaches it.
MAX_DURATION_US = 10_000 * 86_400 * US_PER_SECOND

_UNIT_US = {
    "us": 1,
    "ms": 1_000,
    "s": US_PER_SECOND,
    "m": 60 * US_PER_SECOND,
    "h": 3600 * US_PER_SECOND,
    "d": 86400 * US_PER_SECOND,
}
DURATION_PATTERN = r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(us|ms|s|m|h|d)\s*$"
_DURATION_RE = re.compile(DURATION_PATTERN)


def parse_duration(value: str | float) -> int:
    """Turn ``"250ms"``, ``"10s"``, ``"1.5h"`` or a number of seconds into µs.

    Raises ``ValueError`` naming the value when it is not a duration, or one
    longer than ``MAX_DURATION_US``.
    """
    duration_us = _duration_us(value)
    if duration_us > MAX_DURATION_US:
        longest = format_duration(MAX_DURATION_US)
        raise ValueError(f"found {value!r}, expected a duration of at most {longest}")
    return duration_us


def is_too_long(value: str | float) -> bool:
    """True for a well-formed duration longer than ``MAX_DURATION_US``."""
    try:
        return _duration_us(value) > MAX_DURATION_US
    except ValueError:
        return False


def _duration_us(value: str | float) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '10s', found {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"a duration must be finite, found {value!r}")
    if isinstance(value, (int, float)):
        amount, unit_us = Decimal(str(value)), US_PER_SECOND
    else:
        match = _DURATION_RE.match(value)
        if match is None:
            raise ValueError(
                f"expected a duration such as '250ms', '10s', '5m', '1h' or '2d',"
                f" found {value!r}"
            )
        try:
            amount = Decimal(match.group(1))
        except InvalidOperation as error:  # pragma: no cover - the regex forbids it
            raise ValueError(f"bad duration {value!r}") from error
        unit_us = _UNIT_US[match.group(2)]
    if amount < 0:
        raise ValueError(f"a duration cannot be negative, found {value!r}")
    return int((amount * unit_us).to_integral_value())


def format_duration(us: int) -> str:
    """The shortest exact text for a duration: 10s, 250ms, 1h, 90s, 1500us."""
    if us == 0:
        return "0s"
    for unit in ("d", "h", "m", "s", "ms"):
        size = _UNIT_US[unit]
        if us >= size and us % size == 0:
            return f"{us // size}{unit}"
    return f"{us}us"


def datetime_to_us(moment: datetime) -> int:
    """Exact microseconds since the epoch of a time-zone-aware datetime."""
    return (moment - EPOCH) // ONE_US


def seconds_to_us(seconds: float) -> int:
    """Exact microseconds of a number of seconds since the epoch."""
    if isinstance(seconds, int):
        return seconds * US_PER_SECOND
    return int((Decimal(repr(seconds)) * US_PER_SECOND).to_integral_value())


def format_timestamp(us: int) -> str:
    """ISO-8601 UTC with a ``Z``: milliseconds when exact, else microseconds."""
    moment = EPOCH + timedelta(microseconds=us)
    if us % 1000 == 0:
        return (
            moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        )
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
