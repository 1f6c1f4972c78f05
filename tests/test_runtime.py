"""The run loop: watermarks and lateness, ties, end of input, processing time,
idleness, bad events, sink failures and alert hooks."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from engine.alerts import Alert
from engine.clock import SimulatedClock
from engine.components import Sink, Source
from engine.config import parse_config
from engine.errors import UsageError
from engine.events import Event, event_to_json_dict
from engine.hookspecs import hookimpl
from engine.ingest import Batch
from engine.plugins.source_jsonl import JsonlSource
from engine.runtime import Engine
from engine.stats import RunSummary
from engine.testing import (
    CapturingSink,
    MemoryPlugin,
    RawInput,
    event,
    run_rules,
    run_rules_with_summary,
)

SECOND = 1_000_000


def rules(
    *,
    threshold: int = 3,
    time: str = "{idle_timeout: null}",
    sinks: str = "[]",
    group_by: str = "[source]",
    extra: str = "",
) -> str:
    """A rules file over the memory source: ERROR bursts in a 10 s window."""
    return f"""
version: 1
sources: [{{type: memory}}]
time: {time}
counters: {{enabled: false}}
rules:
  - name: BURST
    match: {{event_type: ERROR}}
    group_by: {group_by}
    window: {{type: sliding, size: 10s}}
    detector: {{type: burst, threshold: {threshold}}}
{extra}
sinks: {sinks}
"""


def edge(alert: Alert) -> tuple[str, str | None, float, int]:
    """An alert as (status, source, instant in seconds, count); the instant is
    the rising edge for a firing alert and the resolution for a resolved one."""
    at_us = alert.starts_at_us if alert.ends_at_us is None else alert.ends_at_us
    return (
        alert.status,
        alert.group.get("source"),
        at_us / SECOND,
        alert.evidence["count"],
    )


def run_engine(
    rules_yaml: str,
    batches: Iterable[Iterable[RawInput]],
    *,
    plugins: Sequence[object] = (),
    base_dir: Path = Path("."),
) -> tuple[list[Alert], RunSummary]:
    """Run ``rules_yaml`` over ``batches`` with extra plugins registered;
    return what a capturing sink received and the summary."""
    config, registry = parse_config(
        rules_yaml,
        "<test rules>",
        base_dir,
        extra_plugins=(MemoryPlugin(batches), *plugins),
    )
    sink = CapturingSink()
    engine = Engine(config, registry, clock=SimulatedClock(), extra_sinks=[sink])
    summary = engine.run()
    return sink.alerts, summary


def engine_to_drive(
    rules_yaml: str, clock: SimulatedClock
) -> tuple[Engine, CapturingSink]:
    """An engine whose batches and ticks the test hands over one by one."""
    config, registry = parse_config(
        rules_yaml, "<test rules>", extra_plugins=(MemoryPlugin([]),)
    )
    sink = CapturingSink()
    return Engine(config, registry, clock=clock, extra_sinks=[sink]), sink


def delivered(engine: Engine, sink: CapturingSink) -> list[Alert]:
    """What the sink has received once every queued alert is delivered."""
    assert engine.wait_delivered(5.0), "the sinks did not catch up"
    return sink.alerts


def batch(*events: Event) -> Batch:
    """A batch of raw lines, as a source thread would hand it over."""
    lines = [json.dumps(event_to_json_dict(e)).encode() for e in events]
    return Batch(source_index=0, lines=lines, events=None)


# -- lateness ------------------------------------------------------------------


def test_event_later_than_allowed_lateness_is_dropped_and_counted() -> None:
    """An event 3 s behind the newest, with 2 s allowed, is dropped and counted."""
    alerts, summary = run_rules_with_summary(
        rules(time="{allowed_lateness: 2s, idle_timeout: null}"),
        [[event(10), event(20)], [event(17), event(18)]],
    )

    # Counted, 17 s would have made 3 events at 18 s (10, 17, 18).
    assert alerts == []
    assert summary.late_dropped == 1
    assert summary.late_included == 0


def test_event_exactly_allowed_lateness_behind_is_not_late() -> None:
    """An event exactly ``allowed_lateness`` older than the newest is kept."""
    alerts, summary = run_rules_with_summary(
        rules(time="{allowed_lateness: 2s, idle_timeout: null}"),
        [[event(20)], [event(18), event(19)]],
    )

    assert summary.late_dropped == 0
    assert [edge(a) for a in alerts] == [
        ("firing", "web-1", 20, 3),
        ("resolved", "web-1", 28, 2),
    ]


def test_late_include_counts_late_event_in_a_window_that_still_exists() -> None:
    """``late: include`` counts a late event at the instants not decided yet."""
    alerts, summary = run_rules_with_summary(
        rules(time="{allowed_lateness: 2s, late: include, idle_timeout: null}"),
        [[event(10), event(20)], [event(17), event(18)]],
    )

    assert summary.late_included == 1
    assert summary.late_dropped == 0
    # Counts: 3 at 18 s (10, 17, 18) and at 20 s (17, 18, 20); 2 at 27 s.
    assert [edge(a) for a in alerts] == [
        ("firing", "web-1", 18, 3),
        ("resolved", "web-1", 27, 2),
    ]


def test_late_include_drops_event_whose_group_state_is_gone() -> None:
    """A late event for a group already evicted is dropped and counted."""
    alerts, summary = run_rules_with_summary(
        rules(time="{late: include, idle_timeout: null}"),
        [[event(0, source="a"), event(30, source="b")], [event(25, source="a")]],
    )

    assert alerts == []
    assert summary.late_dropped == 1
    assert summary.late_included == 0


def test_late_include_reaches_every_rule_whose_window_still_exists() -> None:
    """A late event reaches every rule, even after another rule dropped it."""
    text = """
version: 1
sources: [{type: memory}]
time: {late: include, idle_timeout: null}
counters: {enabled: false}
rules:
  - name: ONLY_A
    match: {source: a}
    window: {type: sliding, size: 10s}
    detector: {type: burst, threshold: 2}
  - name: ALL
    window: {type: sliding, size: 10s}
    detector: {type: burst, threshold: 3}
sinks: []
"""
    alerts = run_rules(
        text,
        [
            [event(0, source="a"), event(30, source="b"), event(31, source="b")],
            [event(25, source="a")],
            [event(32, source="b")],
        ],
    )

    # ALL at 31 s: 25, 30, 31 -> 3; below 3 once 25 and 30 have left, at 40 s.
    assert [(a.rule, a.status, edge(a)[2], a.evidence["count"]) for a in alerts] == [
        ("ALL", "firing", 31, 3),
        ("ALL", "resolved", 40, 2),
    ]


def test_out_of_order_input_within_lateness_gives_the_sorted_alerts() -> None:
    """Disorder within the allowed lateness gives the sorted stream's alerts."""
    times = {"a": [0, 1, 2, 3, 14, 15, 16], "b": [5, 5, 6, 30]}
    ordered = sorted((t, s) for s, ts in times.items() for t in ts)
    shuffled = [
        [("a", 3), ("b", 6), ("a", 0), ("a", 2), ("b", 5)],
        [("a", 16), ("a", 1), ("b", 5), ("a", 14)],
        [("b", 30), ("a", 15)],
    ]
    text = rules(time="{allowed_lateness: 20s, idle_timeout: null}")

    sorted_alerts, _ = run_rules_with_summary(
        text, [[event(t, source=s) for t, s in ordered]]
    )
    shuffled_alerts, summary = run_rules_with_summary(
        text, [[event(t, source=s) for s, t in part] for part in shuffled]
    )

    expected = [
        ("firing", "a", 2, 3),
        ("firing", "b", 6, 3),
        ("resolved", "a", 11, 2),
        ("resolved", "b", 15, 1),
        ("firing", "a", 16, 3),
        ("resolved", "a", 24, 2),
    ]
    assert summary.late_dropped == 0
    assert [edge(a) for a in sorted_alerts] == expected
    assert [edge(a) for a in shuffled_alerts] == expected


def test_alerts_reach_sinks_in_time_order_across_groups() -> None:
    """Alerts decided together are sent in instant order, not group order."""
    text = rules(time="{allowed_lateness: 1m, idle_timeout: null}")
    events = [event(t, source="late") for t in (12, 13, 14)]
    events += [event(t, source="mid") for t in (10, 11, 12)]
    events += [event(t, source="early") for t in (0, 1, 2)]

    alerts = run_rules(text, [events])

    assert [edge(a) for a in alerts] == [
        ("firing", "early", 2, 3),
        ("resolved", "early", 10, 2),
        ("firing", "mid", 12, 3),
        ("firing", "late", 14, 3),
        ("resolved", "mid", 20, 2),
        ("resolved", "late", 22, 2),
    ]


# -- ties and end of input -------------------------------------------------------


def test_tied_events_across_batches_are_counted_together() -> None:
    """Seven events at one instant over two batches give one alert, count 7."""
    alerts = run_rules(rules(), [[event(5)] * 3, [event(5)] * 4])

    assert [edge(a) for a in alerts] == [
        ("firing", "web-1", 5, 7),
        ("resolved", "web-1", 15, 0),
    ]


def test_end_of_finite_input_resolves_every_firing_alert() -> None:
    """At the end of input every firing group resolves at its expiry instant."""
    events = [event(t, source="a") for t in (40, 41, 42)]
    events += [event(55, source="b")] * 3

    alerts = run_rules(rules(), [events])

    assert [edge(a) for a in alerts] == [
        ("firing", "a", 42, 3),
        ("resolved", "a", 50, 2),
        ("firing", "b", 55, 3),
        ("resolved", "b", 65, 0),
    ]
    firing = {a.incident_id for a in alerts if a.status == "firing"}
    resolved = {a.incident_id for a in alerts if a.status == "resolved"}
    assert firing == resolved


# -- processing time and idleness ----------------------------------------------


def test_processing_mode_stamps_events_with_the_clock() -> None:
    """In processing mode windows follow the clock at arrival, not event time."""
    start_us = 1_000 * SECOND
    clock = SimulatedClock(start_us)
    engine, sink = engine_to_drive(
        rules(threshold=2, time="{mode: processing, idle_timeout: null}"), clock
    )

    engine._process(batch(event(5)))
    clock.advance_us(SECOND)
    engine._process(batch(event(500)))
    clock.advance_us(1)
    engine._tick()

    assert [edge(a) for a in delivered(engine, sink)] == [("firing", "web-1", 1_001, 2)]

    clock.advance_us(9 * SECOND)
    engine._tick()

    assert [edge(a) for a in delivered(engine, sink)][1:] == [
        ("resolved", "web-1", 1_010, 1)
    ]


def test_processing_mode_counts_batches_arriving_at_one_instant_together() -> None:
    """Batches arriving at one clock instant are never late and count together."""
    alerts, summary = run_rules_with_summary(
        rules(time="{mode: processing, idle_timeout: null}"),
        [[event(1)], [event(2)], [event(3)]],
    )

    assert summary.late_dropped == 0
    assert [edge(a) for a in alerts] == [
        ("firing", "web-1", 0, 3),
        ("resolved", "web-1", 10, 0),
    ]


def test_idle_timeout_advances_the_watermark_with_the_clock() -> None:
    """After ``idle_timeout`` without events the watermark follows the clock."""
    clock = SimulatedClock()
    engine, sink = engine_to_drive(rules(time="{idle_timeout: 5s}"), clock)

    engine._process(batch(event(100), event(101), event(102)))
    assert delivered(engine, sink) == []

    clock.advance_us(5 * SECOND - 1)
    engine._tick()
    assert delivered(engine, sink) == []

    clock.advance_us(1)
    engine._tick()
    assert [edge(a) for a in delivered(engine, sink)] == [("firing", "web-1", 102, 3)]

    clock.advance_us(4 * SECOND)
    engine._tick()
    assert [edge(a) for a in delivered(engine, sink)][1:] == [
        ("resolved", "web-1", 110, 2)
    ]


def test_without_idle_timeout_a_quiet_source_decides_nothing() -> None:
    """``idle_timeout: null`` keeps the watermark where the events left it."""
    clock = SimulatedClock()
    engine, sink = engine_to_drive(rules(time="{idle_timeout: null}"), clock)

    engine._process(batch(event(100), event(101), event(102)))
    clock.advance_us(3600 * SECOND)
    engine._tick()

    assert delivered(engine, sink) == []


# -- bad events ----------------------------------------------------------------


def test_bad_events_are_counted_dead_lettered_and_the_run_goes_on(
    tmp_path: Path,
) -> None:
    """Bad lines are counted by reason, dead-lettered whole; good ones alert."""
    bad = [
        "not json",
        "[1, 2]",
        '{"event_type": "ERROR", "source": "web-1"}',
        '{"timestamp": "yesterday", "event_type": "ERROR", "source": "web-1"}',
        '{"timestamp": "2024-01-01T00:00:00", "event_type": "ERROR", "source": "x"}',
        '{"timestamp": "2024-01-01T00:00:00Z", "event_type": 5, "source": "x"}',
    ]
    text = rules(extra="dead_letter: {path: dead.jsonl}")

    alerts, summary = run_engine(
        text,
        [[event(0), bad[0], bad[1], bad[2], event(1)], [*bad[3:], event(2)]],
        base_dir=tmp_path,
    )

    assert dict(summary.bad_by_reason) == {
        "not_json": 1,
        "not_object": 1,
        "missing_field": 1,
        "bad_timestamp": 2,
        "wrong_type": 1,
    }
    records = [
        json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()
    ]
    assert [(r["reason"], r["raw"]) for r in records] == [
        ("not_json", bad[0]),
        ("not_object", bad[1]),
        ("missing_field", bad[2]),
        ("bad_timestamp", bad[3]),
        ("bad_timestamp", bad[4]),
        ("wrong_type", bad[5]),
    ]
    assert [edge(a) for a in alerts] == [
        ("firing", "web-1", 2, 3),
        ("resolved", "web-1", 10, 2),
    ]


# -- sinks and hooks -------------------------------------------------------------


class RaisingSink(Sink):
    """A sink whose every delivery fails."""

    type_name: ClassVar[str] = "raising"
    options_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    def send(self, alert: Alert) -> None:
        raise ConnectionError("receiver is down")


class RaisingSinkPlugin:
    """Registers sink ``raising``."""

    @hookimpl
    def engine_register_sinks(self) -> list[type[Sink]]:
        return [RaisingSink]


class AlertRecorder:
    """An ``engine_alert`` observer keeping every alert it is shown."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    @hookimpl
    def engine_alert(self, alert: Alert) -> None:
        self.alerts.append(alert)


def test_a_raising_sink_does_not_stop_the_others_and_is_counted(
    tmp_path: Path,
) -> None:
    """A raising sink is counted in the summary; the next sink gets every alert."""
    text = rules(sinks="[{type: raising}, {type: jsonl, path: alerts.jsonl}]")

    alerts, summary = run_engine(
        text,
        [[event(0), event(1), event(2)]],
        plugins=[RaisingSinkPlugin()],
        base_dir=tmp_path,
    )

    written = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert [json.loads(line)["status"] for line in written] == ["firing", "resolved"]
    assert [a.status for a in alerts] == ["firing", "resolved"]
    assert dict(summary.sink_failures) == {"sinks[0] (raising)": 2}


def test_engine_alert_hook_receives_every_alert() -> None:
    """An ``engine_alert`` hookimpl sees every edge, firing and resolved."""
    recorder = AlertRecorder()

    alerts, _ = run_engine(
        rules(),
        [[event(0), event(1), event(2), event(20), event(21), event(22)]],
        plugins=[recorder],
    )

    assert [a.status for a in alerts] == ["firing", "resolved"] * 2
    assert recorder.alerts == alerts


def test_send_resolved_false_keeps_resolved_alerts_from_that_sink(
    tmp_path: Path,
) -> None:
    """``send_resolved: false`` keeps resolved alerts from that sink only."""
    text = rules(
        sinks="[{type: jsonl, path: firing.jsonl, send_resolved: false},"
        " {type: jsonl, path: all.jsonl}]"
    )

    run_engine(
        text,
        [[event(0), event(1), event(2), event(20), event(21), event(22)]],
        base_dir=tmp_path,
    )

    def statuses(name: str) -> list[str]:
        lines = (tmp_path / name).read_text().splitlines()
        return [json.loads(line)["status"] for line in lines]

    assert statuses("firing.jsonl") == ["firing", "firing"]
    assert statuses("all.jsonl") == ["firing", "resolved", "firing", "resolved"]


class BrokenSource(Source):
    """Hands over three errors, then fails as a lost connection would."""

    type_name: ClassVar[str] = "broken"
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
    }

    def batches(self) -> Iterator[list[bytes]]:
        yield [
            json.dumps(event_to_json_dict(e)).encode()
            for e in (event(1), event(2), event(3))
        ]
        raise ConnectionError("connection lost")


class BrokenSourcePlugin:
    @hookimpl
    def engine_register_sources(self) -> list[type[Source]]:
        return [BrokenSource]


def test_a_failed_source_is_reported_and_not_taken_for_the_end_of_input() -> None:
    """A source that fails is named in the summary, and the burst it fed stays
    firing (it fired at 2 s, decided by the event at 3 s): only exhausted
    input moves the watermark to the end of time and resolves it."""
    text = rules(threshold=2).replace("type: memory", "type: broken")
    config, registry = parse_config(
        text, "<test rules>", extra_plugins=(BrokenSourcePlugin(),)
    )
    sink = CapturingSink()
    summary = Engine(config, registry, clock=SimulatedClock(), extra_sinks=[sink]).run()

    assert len(summary.failed_sources) == 1
    assert "sources[0] (broken)" in summary.failed_sources[0]
    assert "failed sources:" in summary.render()
    assert [a.status for a in sink.alerts] == ["firing"]


# -- a start that fails ----------------------------------------------------------


class ClosingJsonlSource(JsonlSource):
    """Source ``jsonl`` that keeps every instance built, to see it closed."""

    type_name: ClassVar[str] = "recorded_jsonl"
    built: ClassVar[list[ClosingJsonlSource]] = []

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.closed = False
        ClosingJsonlSource.built.append(self)

    def close(self) -> None:
        self.closed = True
        super().close()


class UnreachableSink(Sink):
    """A sink whose connection fails while it is built."""

    type_name: ClassVar[str] = "unreachable"

    def __init__(self, *args: Any) -> None:
        raise OSError("connection refused")

    def send(self, alert: Alert) -> None:
        raise AssertionError("never built, never sent to")


class StartFailurePlugin:
    @hookimpl
    def engine_register_sources(self) -> list[type[Source]]:
        return [ClosingJsonlSource]

    @hookimpl
    def engine_register_sinks(self) -> list[type[Sink]]:
        return [UnreachableSink]


def test_a_sink_failing_to_build_closes_the_sources_already_built(
    tmp_path: Path,
) -> None:
    """When a sink cannot be built, the engine is not built either, and the
    file its jsonl source had opened is closed."""
    (tmp_path / "events.jsonl").write_text("")
    text = rules(sinks="[{type: unreachable}]").replace(
        "{type: memory}", "{type: recorded_jsonl, path: events.jsonl}"
    )
    config, registry = parse_config(
        text, "<test rules>", tmp_path, extra_plugins=(StartFailurePlugin(),)
    )
    ClosingJsonlSource.built.clear()

    with pytest.raises(UsageError, match="connection refused"):
        Engine(config, registry, clock=SimulatedClock())

    [source] = ClosingJsonlSource.built
    assert source.closed
    assert source._file.closed


def test_a_dead_letter_file_failing_to_open_closes_the_sinks_already_built(
    tmp_path: Path,
) -> None:
    """When the dead-letter file cannot be opened, every sink built before it
    is closed and its delivery thread ends."""
    text = (
        rules(sinks="[{type: jsonl, path: alerts.jsonl}]")
        + "dead_letter: {path: no/such/bad.jsonl}\n"
    )
    config, registry = parse_config(
        text, "<test rules>", tmp_path, extra_plugins=(MemoryPlugin([]),)
    )
    extra = CapturingSink()
    before = set(threading.enumerate())

    with pytest.raises(UsageError, match="dead_letter"):
        Engine(config, registry, clock=SimulatedClock(), extra_sinks=[extra])

    assert extra.closed
    started = [t for t in threading.enumerate() if t not in before]
    assert [t.name for t in started if t.is_alive()] == []
