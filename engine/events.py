"""The event model and the decoding of raw JSON into events.

An event is ``(timestamp, event_type, source, value, metadata)``. Sources hand
the core either ready events or raw JSON lines; the :class:`EventDecoder`
turns lines into events and every line it cannot use into a
:class:`BadEvent` with a reason, so that one broken line never stops a run.

Decoding is most of what the engine spends on a JSON line, so the decoder
builds only what the rules read: when no rule looks at ``metadata`` it checks
that the field is an object and skips its content, and a block of lines with
ISO-8601 timestamps can be decoded in one call into lightweight
:class:`DatedLine` records, which the runtime turns into events only when a
rule wants them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Protocol

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


class _AnyObject(msgspec.Struct, frozen=True, gc=False):
    """A JSON object nobody reads: msgspec checks that it is an object and
    skips its content without building anything."""


_SKIPPED = _AnyObject()


class _WireEvent(msgspec.Struct, gc=False):
    """The JSON shape of an event; unknown top-level keys are ignored."""

    timestamp: AwareDatetime | EpochSeconds
    event_type: str
    source: str
    value: float | int | None = None
    metadata: dict[str, Any] = {}


class _WireEventLean(msgspec.Struct, gc=False):
    """:class:`_WireEvent` for rules that never read ``metadata``."""

    timestamp: AwareDatetime | EpochSeconds
    event_type: str
    source: str
    value: float | int | None = None
    metadata: _AnyObject = _SKIPPED


class _DatedWire(msgspec.Struct, gc=False):
    """A line with an ISO-8601 timestamp (see :meth:`EventDecoder.decode_block`)."""

    timestamp: AwareDatetime
    event_type: str
    source: str
    value: float | int | None = None
    metadata: dict[str, Any] = {}


class _DatedWireLean(msgspec.Struct, gc=False):
    """:class:`_DatedWire` for rules that never read ``metadata``."""

    timestamp: AwareDatetime
    event_type: str
    source: str
    value: float | int | None = None
    metadata: _AnyObject = _SKIPPED


class DatedLine(Protocol):
    """A decoded line not yet made an event: its timestamp is still a
    time-zone-aware datetime (see :meth:`EventDecoder.decode_block`)."""

    @property
    def timestamp(self) -> datetime: ...
    @property
    def event_type(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def value(self) -> float | int | None: ...


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


class EventDecoder:
    """Decodes JSON event lines; timestamps become integer microseconds.

    A timestamp is an ISO-8601 string with a time zone (``Z`` or an offset)
    or a number of seconds since the epoch. A string without a time zone is
    rejected: guessing the zone would silently shift every window.

    With ``keep_metadata=False`` the ``metadata`` field is still checked (it
    must be an object) but not built, and events get an empty one; the
    engine chooses this at start-up when no rule reads metadata.
    """

    def __init__(self, *, keep_metadata: bool = True) -> None:
        self.keep_metadata = keep_metadata
        wire = _WireEvent if keep_metadata else _WireEventLean
        dated = _DatedWire if keep_metadata else _DatedWireLean
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(wire)
        self._dated_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(dated)

    def decode_lines(self, lines: list[bytes]) -> tuple[list[Event], list[BadEvent]]:
        """Decode a batch of lines (with or without trailing newlines)."""
        try:
            wires = self._decoder.decode_lines(b"\n".join(lines))
        except (msgspec.DecodeError, msgspec.ValidationError):
            return self._decode_one_by_one(lines)
        if len(wires) != len(lines):
            # Blank lines vanish in the batch decode, and a line holding two
            # objects gives two; line by line, each is judged on its own.
            return self._decode_one_by_one(lines)
        return [self._to_event(wire) for wire in wires], []

    def decode(self, line: bytes) -> Event | BadEvent:
        """Decode one line."""
        try:
            return self._to_event(self._decoder.decode(line))
        except msgspec.ValidationError as error:
            return BadEvent(_classify(error), str(error), line)
        except msgspec.DecodeError as error:
            return BadEvent(NOT_JSON, str(error), line)
        except (OverflowError, ValueError) as error:
            return BadEvent(BAD_TIMESTAMP, str(error), line)

    def decode_block(self, block: bytes | bytearray) -> list[DatedLine] | None:
        """Decode newline-separated lines in one call, or return None.

        The fast path for JSON Lines input: every line must be a good event
        with an ISO-8601 timestamp. None means the block holds something
        else (a bad line, a blank line, a numeric timestamp) and must go
        through :meth:`decode_lines`, which judges each line on its own.
        """
        try:
            lines: list[DatedLine] = self._dated_decoder.decode_lines(block)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        # One decoded line per newline: blank lines vanish and a line holding
        # two objects gives two, so any difference sends the block line by
        # line. (Deleting the newlines counts them three times faster than
        # ``bytes.count``.)
        newlines = len(block) - len(block.replace(b"\n", b""))
        expected = newlines + (not block.endswith(b"\n"))
        return lines if len(lines) == expected else None

    def event(self, line: DatedLine, time_us: int) -> Event:
        """The event of a line from :meth:`decode_block`, at ``time_us``."""
        if self.keep_metadata:
            return Event(
                time_us,
                line.event_type,
                line.source,
                line.value,
                line.metadata,  # type: ignore[attr-defined]
            )
        return Event(time_us, line.event_type, line.source, line.value)

    def _to_event(self, wire: _WireEvent | _WireEventLean) -> Event:
        time_us = timestamp_to_us(wire.timestamp)
        if isinstance(wire, _WireEvent):
            return Event(
                time_us, wire.event_type, wire.source, wire.value, wire.metadata
            )
        return Event(time_us, wire.event_type, wire.source, wire.value)

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
