"""What a run has seen: live counters while it runs, a summary at the end."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Protocol

from engine.events import Event
from engine.timeutil import US_PER_SECOND

_event_type = attrgetter("event_type")
_source = attrgetter("source")


class _Named(Protocol):
    @property
    def event_type(self) -> str: ...
    @property
    def source(self) -> str: ...


def count_types(events: Sequence[_Named]) -> Counter[str]:
    """One batch's events counted by type (once, for every total).

    A batch holds few types, so adding its counts to a total costs almost
    nothing; it holds about as many distinct sources as events, so sources
    are counted straight into each total instead (:func:`sources_of`).
    """
    return Counter(map(_event_type, events))


def sources_of(events: Iterable[_Named]) -> Iterator[str]:
    return map(_source, events)


@dataclass(frozen=True)
class CountersReport:
    """Event rates over the counters window, by event type and by source.

    ``window_us`` is the span the rates were measured over: the configured
    window, or less when the run is younger than that.
    """

    window_us: int
    total: int
    by_type: list[tuple[str, int]]
    by_source: list[tuple[str, int]]

    def rate(self, count: int) -> float:
        return count * US_PER_SECOND / self.window_us if self.window_us else 0.0

    def render(self) -> str:
        def entries(pairs: list[tuple[str, int]]) -> str:
            return " ".join(f"{name}={self.rate(n):.1f}/s" for name, n in pairs) or "-"

        return (
            f"last {self.window_us / US_PER_SECOND:.0f}s: "
            f"{self.rate(self.total):.1f} events/s"
            f" | by type: {entries(self.by_type)}"
            f" | top sources: {entries(self.by_source)}"
        )


class LiveCounters:
    """Counts by event type and source over a sliding processing-time window.

    Counts are kept in one-second buckets, so memory stays bounded by the
    window length and the number of distinct names seen in it.
    """

    def __init__(self, window_us: int, top: int) -> None:
        self.window_us = window_us
        self.top = top
        self._buckets: deque[tuple[int, Counter[str], Counter[str]]] = deque()
        self._started_us: int | None = None

    def count(self, events: list[Event], now_us: int) -> None:
        """Add one batch of events arriving at ``now_us``."""
        self.add_batch(count_types(events), sources_of(events), now_us)

    def add_batch(
        self, by_type: Counter[str], sources: Iterable[str], now_us: int
    ) -> None:
        """Add one batch arriving at ``now_us``: its counts by type and the
        source of each event."""
        if self._started_us is None:
            self._started_us = now_us
        second = now_us // US_PER_SECOND
        if not self._buckets or self._buckets[-1][0] != second:
            self._buckets.append((second, Counter(), Counter()))
        _, types, bucket_sources = self._buckets[-1]
        types.update(by_type)
        bucket_sources.update(sources)

    def report(self, now_us: int) -> CountersReport:
        oldest = (now_us - self.window_us) // US_PER_SECOND
        while self._buckets and self._buckets[0][0] <= oldest:
            self._buckets.popleft()
        types: Counter[str] = Counter()
        sources: Counter[str] = Counter()
        for _, bucket_types, bucket_sources in self._buckets:
            types.update(bucket_types)
            sources.update(bucket_sources)
        started = self._started_us if self._started_us is not None else now_us
        span = min(self.window_us, max(now_us - started, 1))
        return CountersReport(
            span,
            sum(types.values()),
            types.most_common(self.top),
            sources.most_common(self.top),
        )


@dataclass
class RunSummary:
    """Totals of one run, printed at exit and handed to ``engine_shutdown``."""

    events: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    by_source: Counter[str] = field(default_factory=Counter)
    alerts: Counter[tuple[str, str]] = field(default_factory=Counter)
    suppressed_by_rule: Counter[str] = field(default_factory=Counter)
    late_dropped: int = 0
    late_included: int = 0
    bad_by_reason: Counter[str] = field(default_factory=Counter)
    #: Alerts a sink did not deliver (it failed, its queue was full, or
    #: shutdown came first), by sink.
    sink_failures: Counter[str] = field(default_factory=Counter)
    #: How many of those went to a sink's dead-letter file.
    alerts_dead_lettered: int = 0
    elapsed_us: int = 0
    #: Sources that stopped with an error (their input is not exhausted).
    failed_sources: list[str] = field(default_factory=list)

    def count_events(self, events: Iterable[Event]) -> None:
        batch = list(events)
        self.events += len(batch)
        self.by_type.update(map(_event_type, batch))
        self.by_source.update(map(_source, batch))

    def add_batch(self, by_type: Counter[str], sources: Iterable[str]) -> None:
        """Add one batch: its counts by type and the source of each event."""
        self.events += sum(by_type.values())
        self.by_type.update(by_type)
        self.by_source.update(sources)

    def render(self, top: int = 5) -> str:
        seconds = self.elapsed_us / US_PER_SECOND
        lines = [
            (
                f"summary: {self.events} events in {seconds:.1f}s, "
                f"{_count(sum(self.alerts.values()), 'alert notification')}, "
                f"{self.late_dropped} late dropped, "
                f"{sum(self.bad_by_reason.values())} bad"
            ),
            "  events by type:   " + _pairs(self.by_type.most_common()),
            f"  events by source: {_pairs(self.by_source.most_common(top))}"
            + (
                f" (+{len(self.by_source) - top} more)"
                if len(self.by_source) > top
                else ""
            ),
            "  alerts by rule:   " + self._alerts_by_rule(),
        ]
        if self.suppressed_by_rule:
            lines.append(
                "  suppressed (cooldown): " + _pairs(self.suppressed_by_rule.items())
            )
        if self.failed_sources:
            lines.append("  failed sources:   " + ", ".join(self.failed_sources))
        if self.late_included:
            lines.append(f"  late events included: {self.late_included}")
        if self.bad_by_reason:
            lines.append(
                "  bad events:       " + _pairs(self.bad_by_reason.most_common())
            )
        if self.sink_failures:
            lines.append(
                "  undelivered alerts: "
                + _pairs(self.sink_failures.most_common())
                + f" ({self.alerts_dead_lettered} in dead-letter files)"
            )
        return "\n".join(lines)

    def _alerts_by_rule(self) -> str:
        rules = sorted({rule for rule, _ in self.alerts})
        return (
            ", ".join(
                f"{rule} {self.alerts[(rule, 'firing')]} firing"
                f" / {self.alerts[(rule, 'resolved')]} resolved"
                for rule in rules
            )
            or "none"
        )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _pairs(pairs: Iterable[tuple[str, int]]) -> str:
    return ", ".join(f"{name} {count}" for name, count in pairs) or "none"
