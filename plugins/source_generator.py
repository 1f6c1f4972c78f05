"""Source ``generator``: simulated telemetry, endless unless given a ``count``.

A seeded mix of event types and sources, each event with a value and
metadata, plus scheduled bursts (``count`` events of one type from one
source within a short span) so that burst rules have something to find.
With ``rate`` > 0 events are paced to that many per second of wall-clock
time and stamped with the time they are due; with ``rate: 0`` they come as
fast as the engine takes them, ``spacing`` apart in event time.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

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
        self.bursts = [self._plan(b) for b in options.get("bursts", [])]
        self.emitted = 0

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
        events = self._events()
        if self.limit is not None:
            events = itertools.islice(events, self.limit)
        if self.rate:
            yield from self._paced(events)
        else:
            while not self.context.stopping.is_set():
                batch = list(itertools.islice(events, UNPACED_BATCH))
                if not batch:
                    return
                self.emitted += len(batch)
                yield batch

    def _paced(self, events: Iterator[Event]) -> Iterator[list[Event]]:
        clock = self.context.clock
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

    def _events(self) -> Iterator[Event]:
        """Background events merged in time order with scheduled bursts."""
        pending: list[tuple[int, int, Event]] = []
        order = itertools.count()
        next_burst = [self.start_us + plan.offset_us for plan in self.bursts]
        for index in itertools.count():
            time_us = self.start_us + int(index * self.spacing_us)
            for i, plan in enumerate(self.bursts):
                while next_burst[i] <= time_us:
                    for event in self._burst(plan, next_burst[i]):
                        heapq.heappush(pending, (event.time_us, next(order), event))
                    next_burst[i] += plan.every_us
            while pending and pending[0][0] <= time_us:
                yield heapq.heappop(pending)[2]
            yield self._background(time_us)

    def _background(self, time_us: int) -> Event:
        pick = self.random
        event_type = pick.choices(self.event_types, cum_weights=self.type_weights)[0]
        return Event(
            time_us,
            event_type,
            pick.choice(self.sources),
            round(pick.gauss(self.value_mean, self.value_stddev), 2),
            pick.choice(self.metadata_pool),
        )

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


@hookimpl
def engine_register_sources() -> list[type[Source]]:
    return [GeneratorSource]
