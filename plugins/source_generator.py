"""Source ``generator``: simulated telemetry, endless unless given a ``count``.

A seeded mix of event types and sources, each event with a value and
metadata, plus scheduled bursts (``count`` events of one type from one
source within a short span) so that burst rules have something to find.
With ``rate`` > 0 events are paced to that many per second of wall-clock
time and stamped with the time they are due; with ``rate: 0`` they come as
fast as the engine takes them, ``spacing`` apart in event time.

Background events are made a batch at a time: a few calls draw random bytes
for the whole batch, and each pick is a lookup in a table of 65,536 slots
shared out among the choices by weight. So event-type weights (and, up to
4,096 sources, the even spread over sources) hold to within one slot, and
values come from a seeded pool of 4,096 draws from the normal distribution.
This keeps the generator several times faster than the engine it feeds.
"""

from __future__ import annotations

import heapq
import itertools
import operator
import random
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal, TypeVar

from engine.components import Options, RuntimeContext, Source
from engine.events import Event
from engine.hookspecs import hookimpl
from engine.timeutil import US_PER_SECOND, datetime_to_us, parse_duration

DEFAULT_EVENT_TYPES = {"INFO": 90, "WARN": 8, "ERROR": 2}
DEFAULT_SOURCES = ["web-1", "web-2", "web-3", "web-4", "db-1", "db-2"]
DEFAULT_METADATA = {"region": ["eu-west-1", "us-east-1"]}
#: Events per batch when unpaced; paced batches hold what is due.
UNPACED_BATCH = 4096
#: The longest a paced generator sleeps before checking for a stop.
PACING_SLICE_US = 50_000
#: Picks are lookups at 16 random bits into tables of this many slots.
TABLE_SLOTS = 1 << 16
#: Beyond this many sources a table would spread them unevenly, so sources
#: are drawn from 32 random bits instead (slower, exact to 1 in 2**32).
MAX_TABLE_SOURCES = 4096
#: How many values from the normal distribution are drawn once, at start.
VALUE_POOL = 4096

T = TypeVar("T")
#: The array type code of 32-bit unsigned integers on this platform.
_UINT32 = next(code for code in "IL" if array(code).itemsize == 4)


def spread(choices: Sequence[T], weights: Sequence[float]) -> list[T]:
    """A table of :data:`TABLE_SLOTS` slots shared out among ``choices`` in
    proportion to ``weights`` (each share rounded to a whole slot)."""
    total = sum(weights)
    slots: list[T] = []
    running = 0.0
    for choice, weight in zip(choices, weights, strict=True):
        running += weight
        boundary = round(running / total * TABLE_SLOTS)
        slots.extend(itertools.repeat(choice, boundary - len(slots)))
    slots.extend(itertools.repeat(choices[-1], TABLE_SLOTS - len(slots)))
    return slots[:TABLE_SLOTS]


@dataclass(frozen=True)
class BurstPlan:
    every_us: int
    offset_us: int
    count: int
    within_us: int
    event_type: str
    source: str | None


class GeneratorSource(Source):
    type_name: ClassVar[str] = "generator"
    produces: ClassVar[Literal["lines", "events"]] = "events"
    description: ClassVar[str] = "simulated telemetry with scheduled bursts"
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "rate": {
                "type": "number",
                "minimum": 0,
                "description": "events per wall-clock second; 0: as fast as possible",
            },
            "count": {
                "type": "integer",
                "minimum": 1,
                "description": "stop after this many",
            },
            "seed": {"type": "integer"},
            "start": {
                "type": "string",
                "format": "date-time",
                "description": "event time of the first event (default: now)",
            },
            "spacing": {"$ref": "#/$defs/duration"},
            "event_types": {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": {"type": "number", "exclusiveMinimum": 0},
                "description": "event type -> relative weight",
            },
            "sources": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            "value": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "mean": {"type": "number"},
                    "stddev": {"type": "number", "minimum": 0},
                },
            },
            "metadata": {
                "type": "object",
                "additionalProperties": {"type": "array", "minItems": 1},
                "description": "metadata key -> values to pick from",
            },
            "bursts": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["every", "count"],
                    "additionalProperties": False,
                    "properties": {
                        "every": {"$ref": "#/$defs/duration"},
                        "offset": {"$ref": "#/$defs/duration"},
                        "count": {"type": "integer", "minimum": 1},
                        "within": {"$ref": "#/$defs/duration"},
                        "event_type": {"type": "string"},
                        "source": {"type": "string"},
                    },
                },
            },
        },
    }

    def __init__(self, options: Options, context: RuntimeContext) -> None:
        super().__init__(options, context)
        self.rate = float(options.get("rate", 100))
        self.limit: int | None = options.get("count")
        self.random = random.Random(options.get("seed"))
        weights = dict(options.get("event_types", DEFAULT_EVENT_TYPES))
        self.event_types = list(weights)
        self.type_weights = list(itertools.accumulate(weights.values()))
        self.sources = list(options.get("sources", DEFAULT_SOURCES))
        value = options.get("value", {})
        self.value_mean = float(value.get("mean", 100.0))
        self.value_stddev = float(value.get("stddev", 20.0))
        choices = options.get("metadata", DEFAULT_METADATA)
        combos = itertools.product(*choices.values())
        self.metadata_pool = [dict(zip(choices, c, strict=True)) for c in combos]
        default_spacing = US_PER_SECOND / self.rate if self.rate else 1000
        self.spacing_us = (
            parse_duration(options["spacing"])
            if "spacing" in options
            else default_spacing
        )
        self.start_us = self._start(options.get("start"))
        # Without a start, event time is the wall clock at generation: pacing
        # counts from now, not from when the engine first asks for a batch.
        self._paced_from_us = (
            None if "start" in options else context.clock.monotonic_us()
        )
        self.bursts = [self._plan(b) for b in options.get("bursts", [])]
        self.emitted = 0
        self._type_table = spread(self.event_types, list(weights.values()))
        self._source_table = (
            spread(self.sources, [1] * len(self.sources))
            if len(self.sources) <= MAX_TABLE_SOURCES
            else None
        )
        pool = [
            round(self.random.gauss(self.value_mean, self.value_stddev), 2)
            for _ in range(VALUE_POOL)
        ]
        self._value_table = spread(pool, [1] * VALUE_POOL)
        self._metadata_table = spread(self.metadata_pool, [1] * len(self.metadata_pool))

    @classmethod
    def check_options(cls, options: Options) -> list[tuple[tuple[str, ...], str]]:
        problems: list[tuple[tuple[str, ...], str]] = []
        if "start" in options:
            try:
                cls._parse_start(options["start"])
            except ValueError as error:
                problems.append((("start",), str(error)))
        if "spacing" in options and parse_duration(options["spacing"]) <= 0:
            problems.append((("spacing",), "expected a positive duration"))
        return problems

    @staticmethod
    def _parse_start(text: str) -> int:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise ValueError(
                f"found {text!r}, expected an ISO-8601 time with a time zone,"
                " such as 2026-01-01T00:00:00Z"
            )
        return datetime_to_us(moment)

    def _start(self, text: str | None) -> int:
        if text is not None:
            return self._parse_start(text)
        return self.context.clock.now_us()

    def _plan(self, burst: dict[str, Any]) -> BurstPlan:
        return BurstPlan(
            every_us=parse_duration(burst["every"]),
            offset_us=parse_duration(burst.get("offset", "3s")),
            count=burst["count"],
            within_us=parse_duration(burst.get("within", "2s")),
            event_type=burst.get("event_type", "ERROR"),
            source=burst.get("source"),
        )

    def position(self) -> int:
        return self.emitted

    def batches(self) -> Iterator[list[Event]]:
        blocks = self._blocks()
        if self.limit is not None:
            blocks = _first(blocks, self.limit)
        if self.rate:
            yield from self._paced(itertools.chain.from_iterable(blocks))
            return
        for block in blocks:
            if self.context.stopping.is_set():
                return
            self.emitted += len(block)
            yield block

    def _paced(self, events: Iterator[Event]) -> Iterator[list[Event]]:
        clock = self.context.clock
        started = self._paced_from_us
        if started is None:
            started = clock.monotonic_us()
        upcoming = next(events, None)
        while upcoming is not None and not self.context.stopping.is_set():
            due_before = self.start_us + (clock.monotonic_us() - started)
            batch = []
            while upcoming is not None and upcoming.time_us <= due_before:
                batch.append(upcoming)
                upcoming = next(events, None)
            self.emitted += len(batch)
            yield batch
            if upcoming is not None:
                wait = upcoming.time_us - due_before
                clock.sleep_us(min(max(wait, 1), PACING_SLICE_US))

    def _blocks(self) -> Iterator[list[Event]]:
        """Endless blocks of background events, each merged in time order
        with the burst events that fall within it."""
        pending: list[tuple[int, int, Event]] = []
        order = itertools.count()
        next_burst = [self.start_us + plan.offset_us for plan in self.bursts]
        for first in itertools.count(0, UNPACED_BATCH):
            times = self._times(first, UNPACED_BATCH)
            last_us = times[-1]
            for i, plan in enumerate(self.bursts):
                while next_burst[i] <= last_us:
                    for event in self._burst(plan, next_burst[i]):
                        heapq.heappush(pending, (event.time_us, next(order), event))
                    next_burst[i] += plan.every_us
            due = []
            while pending and pending[0][0] <= last_us:
                due.append(heapq.heappop(pending)[2])
            yield _merge(self._background(times), times, due)

    def _times(self, first: int, count: int) -> list[int]:
        spacing = self.spacing_us
        if isinstance(spacing, int):
            start = self.start_us + first * spacing
            return list(range(start, start + count * spacing, spacing))
        start_us = self.start_us
        return [start_us + int(i * spacing) for i in range(first, first + count)]

    def _background(self, times: list[int]) -> list[Event]:
        count = len(times)
        return list(
            map(
                Event,
                times,
                self._draw(self._type_table, count),
                self._draw_sources(count),
                self._draw(self._value_table, count),
                self._draw(self._metadata_table, count),
            )
        )

    def _draw(self, table: list[T], count: int) -> Iterator[T]:
        """``count`` picks from a table of :data:`TABLE_SLOTS` slots."""
        return map(table.__getitem__, array("H", self.random.randbytes(2 * count)))

    def _draw_sources(self, count: int) -> Iterator[str]:
        if self._source_table is not None:
            return self._draw(self._source_table, count)
        # Scale 32 random bits to an index: ``bits * len // 2**32``.
        bits = array(_UINT32, self.random.randbytes(4 * count))
        scaled = map(operator.mul, bits, itertools.repeat(len(self.sources)))
        indexes = map(operator.rshift, scaled, itertools.repeat(32))
        return map(self.sources.__getitem__, indexes)

    def _burst(self, plan: BurstPlan, start_us: int) -> Iterator[Event]:
        source = plan.source or self.random.choice(self.sources)
        step = plan.within_us // plan.count
        for k in range(plan.count):
            yield Event(
                start_us + k * step,
                plan.event_type,
                source,
                round(self.random.gauss(self.value_mean, self.value_stddev), 2),
                self.random.choice(self.metadata_pool),
            )


def _first(blocks: Iterator[list[Event]], limit: int) -> Iterator[list[Event]]:
    """The first ``limit`` events, the last block cut short."""
    for block in blocks:
        if len(block) >= limit:
            yield block[:limit]
            return
        limit -= len(block)
        yield block


def _merge(background: list[Event], times: list[int], due: list[Event]) -> list[Event]:
    """Insert burst events (in time order) among background events at
    ``times``; a burst event goes before background events at its instant."""
    if not due:
        return background
    merged: list[Event] = []
    taken = 0
    for event in due:
        position = bisect_left(times, event.time_us, taken)
        merged += background[taken:position]
        merged.append(event)
        taken = position
    merged += background[taken:]
    return merged


@hookimpl
def engine_register_sources() -> list[type[Source]]:
    return [GeneratorSource]
