"""The event model and the decoding of raw JSON into events.

An event is ``(timestamp, event_type, source, value, metadata)``. Sources hand
the core either ready events or raw JSON lines; the :class:`EventDecoder`
turns lines into events and every line it cannot use into a
:class:`BadEvent` with a reason, so that one broken line never stops a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import msgspec

from engine.timeutil import datetime_to_us, format_timestamp, seconds_to_us


class Event(msgspec.Struct, gc=False):
    """One event. ``time_us`` is integer microseconds since the Unix epoch.

    ``gc=False``: events never reference themselves, so the garbage collector
    need not track them (this matters with millions of them alive).
    """

    time_us: int
    event_type: str
    source: str
    value: float | int | None = None
    metadata: dict[str, Any] = {}


AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
#: Numeric timestamps are seconds since the epoch, up to the year 9999.
_EPOCH_RANGE = msgspec.Meta(ge=0, le=253_402_300_799)
EpochSeconds = Annotated[int, _EPOCH_RANGE] | Annotated[float, _EPOCH_RANGE]


class _WireEvent(msgspec.Struct, gc=False):
    """The JSON shape of an event; unknown top-level keys are ignored."""

    timestamp: AwareDatetime | EpochSeconds
    event_type: str
    source: str
    value: float | int | None = None
    metadata: dict[str, Any] = {}


#: Reasons a line is set aside, as counted in the summary and dead letters.
NOT_JSON = "not_json"
NOT_OBJECT = "not_object"
MISSING_FIELD = "missing_field"
BAD_TIMESTAMP = "bad_timestamp"
WRONG_TYPE = "wrong_type"


@dataclass(frozen=True)
class BadEvent:
    """A line that could not become an event, kept whole for the dead letters."""

    reason: str
    detail: str
    raw: bytes


def _classify(error: msgspec.ValidationError) -> str:
    text = str(error)
    if "missing required field" in text:
        return MISSING_FIELD
    if text.startswith("Expected `object`") and "- at `$" not in text:
        return NOT_OBJECT
    if "`$.timestamp`" in text:
        return BAD_TIMESTAMP
    return WRONG_TYPE


def timestamp_to_us(stamp: datetime | float) -> int:
    """Microseconds of a decoded timestamp: an aware datetime or epoch seconds."""
    if isinstance(stamp, datetime):
        return datetime_to_us(stamp)
    return seconds_to_us(stamp)


def _to_event(wire: _WireEvent) -> Event:
    return Event(
        timestamp_to_us(wire.timestamp),
        wire.event_type,
        wire.source,
        wire.value,
        wire.metadata,
    )


class EventDecoder:
    """Decodes JSON event lines; timestamps become integer microseconds.

    A timestamp is an ISO-8601 string with a time zone (``Z`` or an offset)
    or a number of seconds since the epoch. A string without a time zone is
    rejected: guessing the zone would silently shift every window.
    """

    def __init__(self) -> None:
        self._decoder = msgspec.json.Decoder(_WireEvent)

    def decode_lines(self, lines: list[bytes]) -> tuple[list[Event], list[BadEvent]]:
        """Decode a batch of lines (with or without trailing newlines)."""
        try:
            wires = self._decoder.decode_lines(b"\n".join(lines))
        except (msgspec.DecodeError, msgspec.ValidationError):
            return self._decode_one_by_one(lines)
        if len(wires) != len(lines):
            # Blank lines vanish in the batch decode; go line by line so each
            # of them is reported against the right input.
            return self._decode_one_by_one(lines)
        return [_to_event(wire) for wire in wires], []

    def decode(self, line: bytes) -> Event | BadEvent:
        """Decode one line."""
        try:
            return _to_event(self._decoder.decode(line))
        except msgspec.ValidationError as error:
            return BadEvent(_classify(error), str(error), line)
        except msgspec.DecodeError as error:
            return BadEvent(NOT_JSON, str(error), line)
        except (OverflowError, ValueError) as error:
            return BadEvent(BAD_TIMESTAMP, str(error), line)

    def _decode_one_by_one(
        self, lines: list[bytes]
    ) -> tuple[list[Event], list[BadEvent]]:
        events: list[Event] = []
        bad: list[BadEvent] = []
        for line in lines:
            if not line.strip():
                continue
            result = self.decode(line)
            if isinstance(result, Event):
                events.append(result)
            else:
                bad.append(result)
        return events, bad


def event_to_json_dict(event: Event) -> dict[str, Any]:
    """The wire form of an event (used by dead letters and test helpers)."""
    return {
        "timestamp": format_timestamp(event.time_us),
        "event_type": event.event_type,
        "source": event.source,
        "value": event.value,
        "metadata": event.metadata,
    }
