"""The benchmark's input: a deterministic stream of realistic events.

Background telemetry from ``sources`` hosts (web, api, db, cache and worker
machines) with a typical mix of levels, in event-time order, plus injected
ERROR/FATAL bursts from single hosts (some too small to alert, some from
hosts the rule does not watch) and periodic WARN storms across all hosts.
Timestamps are ISO-8601 UTC with milliseconds, so events often share an
instant, as they do in real logs.
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: 2026-01-01T00:00:00Z in microseconds.
START_US = 1_767_225_600_000_000
#: Mean gap between background events in event time (2,000 events/s).
SPACING_US = 500
#: Background levels, per mille.
LEVEL_MIX = {"INFO": 889, "DEBUG": 80, "WARN": 10, "ERROR": 20, "FATAL": 1}
#: Host kinds, in twentieths of the fleet.
HOST_KINDS = (
    ("web",) * 8 + ("api",) * 4 + ("db",) * 3 + ("cache",) * 3 + ("worker",) * 2
)
REGIONS = ("eu-west-1", "us-east-1", "ap-south-1")
MESSAGES = {
    "INFO": "GET /api/v1/items/{n} 200 {ms}ms",
    "DEBUG": "cache lookup key=item:{n} hit in {ms}us",
    "WARN": "slow query on items ({ms}ms), id={n}",
    "ERROR": "upstream timeout after {ms}ms, request {n}",
    "FATAL": "worker {n} crashed, restarting in {ms}ms",
}
#: An ERROR/FATAL burst from one host every this often.
BURST_EVERY_US = 2_000_000
#: A WARN storm across the fleet every this often, the first halfway.
STORM_EVERY_US = 60_000_000

#: (time in microseconds, event type, source)
Skeleton = tuple[int, str, str]


@dataclass(frozen=True)
class Workload:
    """How many events, from how many hosts, from which seed."""

    events: int = 1_000_000
    sources: int = 1_000
    seed: int = 7

    def source_names(self) -> list[str]:
        return [f"{HOST_KINDS[i % 20]}-{i:05d}" for i in range(self.sources)]

    def span_us(self) -> int:
        return self.events * SPACING_US


def _background(workload: Workload, rng: random.Random) -> Iterator[Skeleton]:
    names = workload.source_names()
    levels = [name for name, share in LEVEL_MIX.items() for _ in range(share)]
    for index in range(workload.events):
        jitter = rng.randrange(SPACING_US)
        time_us = START_US + index * SPACING_US + jitter
        yield time_us, levels[rng.randrange(1000)], names[rng.randrange(len(names))]


def _bursts(workload: Workload, rng: random.Random) -> list[Skeleton]:
    """ERROR/FATAL bursts of 5 to 12 events (the rule fires at 7), four in
    five from a web host, spread over 0.2 to 3 seconds."""
    names = workload.source_names()
    web = [n for n in names if n.startswith("web-")] or names
    other = [n for n in names if not n.startswith("web-")] or names
    events: list[Skeleton] = []
    for start_us in range(START_US, START_US + workload.span_us(), BURST_EVERY_US):
        start_us += rng.randrange(BURST_EVERY_US // 2)
        source = rng.choice(web if rng.random() < 0.8 else other)
        within_us = rng.randrange(200_000, 3_000_000)
        for _ in range(rng.randint(5, 12)):
            level = "ERROR" if rng.random() < 0.85 else "FATAL"
            events.append((start_us + rng.randrange(within_us), level, source))
    return events


def _storms(workload: Workload, rng: random.Random) -> list[Skeleton]:
    """WARN storms of 250 to 400 events over 2 to 4 seconds, any host."""
    names = workload.source_names()
    events: list[Skeleton] = []
    first = START_US + STORM_EVERY_US // 2
    for start_us in range(first, START_US + workload.span_us(), STORM_EVERY_US):
        within_us = rng.randrange(2_000_000, 4_000_000)
        for _ in range(rng.randint(250, 400)):
            events.append(
                (start_us + rng.randrange(within_us), "WARN", rng.choice(names))
            )
    return events


def skeletons(workload: Workload) -> Iterator[Skeleton]:
    """Every event's time, type and source, in time order (milliseconds)."""
    rng = random.Random(workload.seed)
    injected = _bursts(workload, rng) + _storms(workload, rng)
    injected.sort(key=lambda item: item[0])
    merged = heapq.merge(_background(workload, rng), injected, key=lambda e: e[0])
    for count, (time_us, level, source) in enumerate(merged):
        if count == workload.events:
            return
        yield time_us - time_us % 1000, level, source


class _Stamps:
    """ISO-8601 text of millisecond timestamps, the date part cached."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def text(self, time_us: int) -> str:
        second, rest = divmod(time_us, 1_000_000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{rest // 1000:03d}Z"


def lines(workload: Workload) -> Iterator[str]:
    """The events as JSON lines, with a value and realistic metadata."""
    rng = random.Random(workload.seed + 1)
    stamps = _Stamps()
    for time_us, level, source in skeletons(workload):
        n, ms = rng.randrange(100_000), rng.randrange(1, 900)
        message = MESSAGES[level].format(n=n, ms=ms)
        region = REGIONS[n % 3]
        yield (
            f'{{"timestamp":"{stamps.text(time_us)}","event_type":"{level}",'
            f'"source":"{source}","value":{ms / 7:.2f},"metadata":{{'
            f'"region":"{region}","pid":{1000 + n % 5000},"message":"{message}"}}}}\n'
        )


def write_jsonl(workload: Workload, path: Path) -> None:
    """Write the workload to ``path`` once, in large writes."""
    with path.open("w", encoding="utf-8") as out:
        batch: list[str] = []
        for line in lines(workload):
            batch.append(line)
            if len(batch) == 10_000:
                out.write("".join(batch))
                batch.clear()
        out.write("".join(batch))
