"""The ``generator`` source, built directly with a simulated clock."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from engine.clock import SimulatedClock
from engine.components import RuntimeContext
from engine.config import parse_config
from engine.errors import UsageError
from engine.events import Event
from engine.plugins.source_generator import GeneratorSource
from engine.timeutil import US_PER_SECOND

START = "2026-01-01T00:00:00Z"
START_US = 1_767_225_600 * US_PER_SECOND  # 2026-01-01T00:00:00Z, by hand
CLOCK_US = 5_000 * US_PER_SECOND


def make_source(clock: SimulatedClock | None = None, **options: Any) -> GeneratorSource:
    context = RuntimeContext(
        "sources[0] (generator)", clock or SimulatedClock(CLOCK_US), Path(".")
    )
    return GeneratorSource(options, context)


def generate(**options: Any) -> list[Event]:
    """Every event of an unpaced generator (``count`` must be given)."""
    source = make_source(**{"rate": 0, "start": START, **options})
    return [event for batch in source.batches() for event in batch]


def test_same_seed_gives_the_same_events() -> None:
    """Two generators with one seed produce identical streams."""
    options = {"count": 500, "seed": 42, "bursts": [{"every": "1s", "count": 3}]}

    first = generate(**options)
    second = generate(**options)

    assert first == second
    assert first != generate(**{**options, "seed": 43})


def test_count_stops_after_exactly_that_many_events() -> None:
    """``count`` caps the stream, across several batches and with bursts."""
    source = make_source(
        rate=0,
        start=START,
        count=10_001,
        spacing="10ms",
        bursts=[{"every": "5s", "count": 20}],
    )

    batches = list(source.batches())

    assert sum(len(batch) for batch in batches) == 10_001
    assert len(batches) > 1
    assert source.position() == 10_001


def test_events_are_spaced_by_spacing_from_start() -> None:
    """Without bursts, event k is at start + k * spacing."""
    events = generate(count=50, spacing="250ms")

    assert [e.time_us for e in events] == [START_US + k * 250_000 for k in range(50)]


def test_spacing_defaults_to_one_over_rate() -> None:
    """A paced generator spaces events 1/rate apart in event time."""
    source = make_source(rate=4, count=9, start=START)

    events = [event for batch in source.batches() for event in batch]

    assert [e.time_us for e in events] == [START_US + k * 250_000 for k in range(9)]


def test_start_defaults_to_the_clock_now() -> None:
    """Without ``start`` the first event is stamped with the clock's time."""
    source = make_source(SimulatedClock(CLOCK_US), rate=0, count=3, spacing="1s")

    events = [event for batch in source.batches() for event in batch]

    assert [e.time_us for e in events] == [
        CLOCK_US,
        CLOCK_US + US_PER_SECOND,
        CLOCK_US + 2 * US_PER_SECOND,
    ]


def test_timestamps_never_go_back_with_bursts_merged_in() -> None:
    """Burst events are merged into the background in time order."""
    events = generate(
        count=3_000,
        spacing="7ms",
        bursts=[
            {"every": "1s", "count": 9, "within": "300ms"},
            {"every": "1.3s", "offset": "0.5s", "count": 4, "within": "50ms"},
        ],
    )

    times = [e.time_us for e in events]
    assert times == sorted(times)


def burst_groups(events: list[Event], event_type: str) -> list[list[Event]]:
    """Events of ``event_type`` split where the gap exceeds one second."""
    chosen = [e for e in events if e.event_type == event_type]
    groups: list[list[Event]] = []
    for event in chosen:
        if groups and event.time_us - groups[-1][-1].time_us <= US_PER_SECOND:
            groups[-1].append(event)
        else:
            groups.append([event])
    return groups


def test_bursts_put_count_events_from_one_source_within_the_span() -> None:
    """Burst k: ``count`` events of one source in [start+offset+k*every, +within)."""
    sources = ["web-1", "web-2", "db-1"]
    events = generate(
        count=400,
        seed=5,
        spacing="100ms",
        event_types={"INFO": 1},
        sources=sources,
        bursts=[
            {
                "every": "10s",
                "offset": "2s",
                "count": 5,
                "within": "1s",
                "event_type": "ERROR",
            }
        ],
    )
    # 380 background events reach 37.9s: bursts at 2s, 12s, 22s and 32s.
    groups = burst_groups(events, "ERROR")

    assert len(groups) == 4
    for k, group in enumerate(groups):
        begins = START_US + 2 * US_PER_SECOND + k * 10 * US_PER_SECOND
        assert len(group) == 5
        assert len({e.source for e in group}) == 1
        assert group[0].source in sources
        assert group[0].time_us == begins
        assert all(begins <= e.time_us < begins + US_PER_SECOND for e in group)


def test_burst_offset_defaults_to_three_seconds_and_source_can_be_fixed() -> None:
    """A burst without ``offset`` starts 3s in; ``source`` pins its sender."""
    events = generate(
        count=120,
        spacing="100ms",
        event_types={"INFO": 1},
        bursts=[{"every": "1h", "count": 4, "event_type": "FATAL", "source": "db-9"}],
    )

    fatal = [e for e in events if e.event_type == "FATAL"]
    assert len(fatal) == 4
    assert fatal[0].time_us == START_US + 3 * US_PER_SECOND
    assert {e.source for e in fatal} == {"db-9"}


def test_event_types_follow_their_weights() -> None:
    """A 3:1 weighting gives about three times as many of the first type."""
    events = generate(count=20_000, seed=11, event_types={"A": 3, "B": 1})

    counts = Counter(e.event_type for e in events)
    assert set(counts) == {"A", "B"}
    # The seed fixes the sample, so this bound (over six standard
    # deviations wide) cannot flake.
    assert 0.72 < counts["A"] / len(events) < 0.78


def test_a_single_event_type_is_all_there_is() -> None:
    """With one weighted type every background event has that type."""
    events = generate(count=300, event_types={"ONLY": 0.5})

    assert {e.event_type for e in events} == {"ONLY"}


def test_sources_and_metadata_come_from_the_given_choices() -> None:
    """Every event uses a configured source and one value per metadata key."""
    events = generate(
        count=2_000,
        seed=9,
        sources=["a", "b"],
        metadata={"region": ["eu", "us"], "tier": [1, 2, 3]},
    )

    assert {e.source for e in events} == {"a", "b"}
    combos = {(e.metadata["region"], e.metadata["tier"]) for e in events}
    assert combos == set(itertools.product(["eu", "us"], [1, 2, 3]))
    assert all(isinstance(e.value, float) for e in events)


def test_positive_rate_releases_each_event_when_it_is_due() -> None:
    """With ``rate`` > 0 an event comes out once its offset of simulated time
    has passed, never before."""
    clock = SimulatedClock(CLOCK_US)
    source = make_source(clock, rate=10, count=12, start=START)

    released = []
    for batch in source.batches():
        elapsed = clock.monotonic_us() - CLOCK_US
        released += [(event.time_us - START_US, elapsed) for event in batch]

    assert [offset for offset, _ in released] == [k * 100_000 for k in range(12)]
    assert all(elapsed == offset for offset, elapsed in released)
    assert source.position() == 12


def test_paced_generator_stops_when_the_engine_is_stopping() -> None:
    """Setting context.stopping ends an endless paced stream."""
    clock = SimulatedClock(CLOCK_US)
    source = make_source(clock, rate=1000, start=START)
    batches = source.batches()
    pulled = [next(batches) for _ in range(5)]

    source.context.stopping.set()

    assert sum(len(b) for b in pulled) >= 1
    assert list(batches) == []


@pytest.mark.parametrize("start", ["2026-01-01T00:00:00", "next tuesday"])
def test_check_options_rejects_a_start_without_time_zone(start: str) -> None:
    """``start`` must be an ISO-8601 time with a zone; anything else is refused."""
    problems = GeneratorSource.check_options({"start": start})

    assert len(problems) == 1
    path, message = problems[0]
    assert path == ("start",)
    assert repr(start) in message
    assert "time zone" in message


def test_check_options_accepts_a_zoned_start() -> None:
    """A start with Z or an offset passes."""
    assert GeneratorSource.check_options({"start": START}) == []
    assert GeneratorSource.check_options({"start": "2026-01-01T01:00:00+01:00"}) == []


def test_rules_file_with_a_naive_start_is_a_located_error() -> None:
    """Loading a rules file reports the naive start with its path."""
    text = """\
version: 1
sources:
  - type: generator
    start: "2026-01-01T00:00:00"
rules:
  - name: R
    window: {type: sliding, size: 10s}
    detector: {type: burst, threshold: 3}
"""
    with pytest.raises(UsageError) as caught:
        parse_config(text, "gen.yaml")

    [problem] = caught.value.problems
    assert problem.path == "sources[0].start"
    assert problem.where == "gen.yaml:4:12"
