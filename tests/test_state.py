"""State snapshots: the file format, and a run cut in two by a snapshot
that raises exactly the alerts of one uninterrupted run."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import engine.runtime
from engine.alerts import Alert
from engine.clock import SimulatedClock
from engine.components import Sink, Source
from engine.config import parse_config
from engine.errors import UsageError
from engine.events import Event
from engine.hookspecs import hookimpl
from engine.runtime import Engine
from engine.state import (
    SNAPSHOT_FORMAT,
    SNAPSHOT_VERSION,
    decode_event,
    decode_key,
    encode_event,
    encode_key,
    read_snapshot,
    write_snapshot,
)
from engine.testing import CapturingSink, _as_line, event, run_rules

RULES = """version: 1
sources: [{type: memory}]
time: {allowed_lateness: 2s, idle_timeout: null}
counters: {enabled: false}
sinks: []
rules:
  - name: BURST
    match: {event_type: ERROR}
    group_by: [source]
    window: {type: sliding, size: 10s}
    detector: {type: burst, threshold: 3}
    summary: "{count} errors from {source}, last value {value}"
  - name: HELD
    match: {event_type: ERROR}
    group_by: [source, metadata.zone]
    window: {type: sliding, size: 5s}
    detector: {type: burst, threshold: 2}
    for: 2s
    keep_firing_for: 4s
    cooldown: 30s
    summary: "{source} in {zone}: {count}"
"""


def _minimal_snapshot(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "format": SNAPSHOT_FORMAT,
        "version": SNAPSHOT_VERSION,
        "watermark_us": 0,
        "max_seen_us": 0,
        "rules": {},
        "sources": [],
        "sinks": [],
    }
    return {**data, **changes}


# -- the file -----------------------------------------------------------------------


def test_group_keys_of_every_json_shape_come_back_equal_and_of_the_same_type() -> None:
    """None, strings, ints, floats, booleans and nested tuples survive a trip
    through JSON text unchanged, with 1, 1.0 and True kept apart."""
    keys: list[Any] = [None, "web-1", 1, 1.0, True, False, -2.5, ()]
    keys.append(("a", 1, None, (True, 2.0)))
    for key in keys:
        back: Any = decode_key(json.loads(json.dumps(encode_key(key))))
        assert back == key
        assert type(back) is type(key)
        if isinstance(key, tuple):
            assert [type(part) for part in back] == [type(part) for part in key]


def test_a_group_key_that_json_cannot_hold_is_refused() -> None:
    """A frozenset key is not silently turned into something else."""
    with pytest.raises(TypeError, match="frozenset"):
        encode_key(frozenset({1}))


def test_events_come_back_with_exact_times_values_and_metadata() -> None:
    """Microsecond times, float and missing values, nested metadata."""
    events = [
        Event(1_767_225_600_000_001, "ERROR", "web-1", 2.5, {"zone": "a", "n": [1]}),
        Event(-5, "INFO", "db", None, {}),
    ]
    for original in events:
        back = decode_event(json.loads(json.dumps(encode_event(original))))
        assert back == original


def test_an_alert_record_rebuilds_the_same_alert() -> None:
    """Incident id, sequence, times, labels, evidence: all identical."""
    alert = Alert(
        rule="R",
        severity="high",
        status="resolved",
        labels={"source": "web-1", "team": "ops"},
        group={"source": "web-1"},
        starts_at_us=10,
        ends_at_us=20_000_001,
        incident_id="abc",
        sequence=3,
        evidence={"count": 2, "window": "10s"},
        summary="s",
        description="d",
        first_seen_us=9,
        last_seen_us=19,
        suppressed=1,
        annotations={"runbook": "x"},
    )
    record = json.loads(json.dumps(alert.to_record()))
    assert Alert.from_record(record) == alert


def test_a_snapshot_is_replaced_whole_and_leaves_no_temporary_file(
    tmp_path: Path,
) -> None:
    """The second write replaces the first; only the snapshot is left."""
    path = tmp_path / "state" / "engine.json"
    write_snapshot(path, _minimal_snapshot(watermark_us=1))
    write_snapshot(path, _minimal_snapshot(watermark_us=2))
    loaded = read_snapshot(path)
    assert loaded is not None and loaded["watermark_us"] == 2
    assert [p.name for p in path.parent.iterdir()] == ["engine.json"]


def test_a_failed_write_keeps_the_previous_snapshot(tmp_path: Path) -> None:
    """Data JSON cannot hold raises, and the old file is untouched."""
    path = tmp_path / "engine.json"
    write_snapshot(path, _minimal_snapshot(watermark_us=1))
    before = path.read_bytes()
    with pytest.raises(TypeError):
        write_snapshot(path, _minimal_snapshot(rules={"R": object()}))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["engine.json"]


def test_a_missing_snapshot_reads_as_none(tmp_path: Path) -> None:
    """The first run starts without state."""
    assert read_snapshot(tmp_path / "absent.json") is None


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"format": "burst-engine-state", "vers', "not valid JSON"),
        ('{"hello": 1}', "not a burst-engine-state snapshot"),
        (json.dumps(_minimal_snapshot(version=99)), "snapshot version 99"),
        (json.dumps(_minimal_snapshot(rules=[])), "'rules' is missing or not"),
    ],
)
def test_a_damaged_or_foreign_snapshot_is_a_usage_error_naming_the_file(
    tmp_path: Path, content: str, expected: str
) -> None:
    """Cut short, foreign, too new, or of the wrong shape: refused, named."""
    path = tmp_path / "engine.json"
    path.write_text(content)
    with pytest.raises(UsageError) as error:
        read_snapshot(path)
    assert str(path) in str(error.value)
    assert expected in str(error.value)


def test_the_state_section_is_parsed_with_a_default_interval(tmp_path: Path) -> None:
    """``path`` resolves against the rules folder; ``interval`` defaults to 30s."""
    text = RULES + "state: {path: run/state.json}\n"
    config, _ = parse_config(text, base_dir=tmp_path, extra_plugins=(_plugin([]),))
    assert config.state is not None
    assert config.state.path == tmp_path / "run" / "state.json"
    assert config.state.interval_us == 30_000_000


def test_the_state_section_refuses_unknown_keys_and_a_missing_path() -> None:
    """Both mistakes are reported, with their place in the document."""
    text = RULES + "state: {interval: 1s, every: 2s}\n"
    with pytest.raises(UsageError) as error:
        parse_config(text, extra_plugins=(_plugin([]),))
    message = str(error.value)
    assert "path" in message and "every" in message


# -- a run cut in two -----------------------------------------------------------------


class _StopAfterSource(Source):
    """Yields its batches, then asks the engine to stop: the run ends like
    one stopped by a signal, without deciding everything to the end of time."""

    type_name: ClassVar[str] = "memory"
    options_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    batches_to_send: ClassVar[list[list[Event]]] = []
    stop_at_end: ClassVar[bool] = True
    committed: ClassVar[list[Any]] = []

    def batches(self) -> Iterator[list[bytes]]:
        for number, batch in enumerate(self.batches_to_send, start=1):
            self._number = number
            yield [_as_line(item) for item in batch]
        if self.stop_at_end:
            self.context.stopping.set()

    def position(self) -> int:
        return self._number

    def commit(self, position: Any) -> None:
        self.committed.append(position)


def _plugin(batches: list[list[Event]], *, stop_at_end: bool = True) -> object:
    source = type(
        "Source",
        (_StopAfterSource,),
        {"batches_to_send": batches, "stop_at_end": stop_at_end, "committed": []},
    )

    class Plugin:
        source_class = source

        @hookimpl
        def engine_register_sources(self) -> list[type[Source]]:
            return [source]

    return Plugin()


def _run(
    rules: str,
    batches: list[list[Event]],
    tmp_path: Path,
    *,
    stop_at_end: bool,
    sink: Sink | None = None,
) -> tuple[list[Alert], list[Any]]:
    plugin = _plugin(batches, stop_at_end=stop_at_end)
    config, registry = parse_config(rules, base_dir=tmp_path, extra_plugins=(plugin,))
    capture = CapturingSink()
    run = Engine(
        config, registry, clock=SimulatedClock(), extra_sinks=[sink or capture]
    )
    run.run()
    committed = plugin.source_class.committed  # type: ignore[attr-defined]
    return capture.alerts, committed


def _stream() -> list[list[Event]]:
    """Bursts from two sources in two zones, a little out of order, in
    batches of five."""
    times = [0, 1, 1.5, 3, 2.5, 4, 12, 13, 13.5, 30, 31, 31.2, 31.4, 45, 46, 47.5]
    events = [
        event(t, "ERROR", f"web-{i % 2}", value=i, zone="ab"[i % 3 == 0])
        for i, t in enumerate(times)
    ]
    events += [event(t, "ERROR", "web-0", value=99, zone="a") for t in (48, 48, 49)]
    return [events[i : i + 5] for i in range(0, len(events), 5)]


def test_a_run_stopped_and_restarted_from_its_snapshot_raises_the_alerts_of_one_run(
    tmp_path: Path,
) -> None:
    """Stop after the second batch, restart with the rest: the alerts of both
    runs, in order, equal those of one uninterrupted run, summaries,
    sequences and ``for``/``keep_firing_for``/``cooldown`` included."""
    batches = _stream()
    reference = run_rules(RULES, batches, base_dir=tmp_path)
    rules = RULES + "state: {path: state.json, interval: 1h}\n"

    first, _ = _run(rules, batches[:2], tmp_path, stop_at_end=True)
    saved = read_snapshot(tmp_path / "state.json")
    assert saved is not None and saved["rules"]["BURST"]["state"]["groups"]
    second, _ = _run(rules, batches[2:], tmp_path, stop_at_end=False)

    assert len(reference) >= 6
    assert [a.to_dict() for a in first + second] == [a.to_dict() for a in reference]


def test_with_state_positions_are_committed_only_after_a_snapshot(
    tmp_path: Path,
) -> None:
    """With a long interval, the only snapshot is the one at shutdown, so the
    only commit is the last position; without ``state:`` every batch is
    committed as it is processed."""
    batches = _stream()
    rules = RULES + "state: {path: state.json, interval: 1h}\n"
    _, committed = _run(rules, batches, tmp_path, stop_at_end=True)
    assert committed == [len(batches)]
    saved = read_snapshot(tmp_path / "state.json")
    assert saved is not None
    assert saved["sources"] == [{"type": "memory", "checkpoint": len(batches)}]

    _, committed = _run(RULES, batches, tmp_path / "none", stop_at_end=True)
    assert committed == list(range(1, len(batches) + 1))


def test_a_zero_interval_snapshots_and_commits_after_every_batch(
    tmp_path: Path,
) -> None:
    """Each batch boundary is a snapshot when the interval has passed."""
    batches = _stream()
    rules = RULES + "state: {path: state.json, interval: 0s}\n"
    _, committed = _run(rules, batches, tmp_path, stop_at_end=True)
    assert committed == list(range(1, len(batches) + 1))


def test_a_rule_whose_window_changed_starts_empty_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The changed rule loses its state (and says so); the other keeps it."""
    batches = _stream()
    rules = RULES + "state: {path: state.json, interval: 1h}\n"
    _run(rules, batches[:2], tmp_path, stop_at_end=True)
    changed = rules.replace("size: 5s", "size: 6s")
    config, registry = parse_config(
        changed, base_dir=tmp_path, extra_plugins=(_plugin([]),)
    )
    with caplog.at_level(logging.WARNING, logger="engine.state"):
        run = Engine(config, registry, clock=SimulatedClock())
    burst, held = run.runners
    assert burst.groups and not held.groups and not held.lifecycle.groups
    assert "rule HELD" in caplog.text and "changed" in caplog.text
    for delivery, _ in run.sinks:
        delivery.close(1.0)


def test_a_rule_state_that_does_not_fit_is_a_usage_error(tmp_path: Path) -> None:
    """A fingerprint that matches over a broken state names file and rule."""
    batches = _stream()
    rules = RULES + "state: {path: state.json, interval: 1h}\n"
    _run(rules, batches[:2], tmp_path, stop_at_end=True)
    path = tmp_path / "state.json"
    saved = json.loads(path.read_text())
    saved["rules"]["BURST"]["state"]["groups"][0][1] = {"version": 999}
    path.write_text(json.dumps(saved))
    config, registry = parse_config(
        rules, base_dir=tmp_path, extra_plugins=(_plugin([]),)
    )
    with pytest.raises(UsageError) as error:
        Engine(config, registry, clock=SimulatedClock())
    assert str(path) in str(error.value) and "rule BURST" in str(error.value)


class _StuckSink(Sink):
    """Accepts nothing until released: its alerts stay undelivered."""

    type_name: ClassVar[str] = "stuck"

    def __init__(self) -> None:
        self.release = threading.Event()

    def send(self, alert: Alert) -> None:
        self.release.wait(5.0)


def test_undelivered_alerts_are_saved_and_sent_again_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alerts a sink did not take before shutdown come back, with the same
    incident id and sequence, to that sink in the next run."""
    monkeypatch.setattr(engine.runtime, "SINK_CLOSE_SECONDS", 0.2)
    batches = _stream()
    rules = RULES + "state: {path: state.json, interval: 1h}\n"
    reference = run_rules(RULES, batches[:2], base_dir=tmp_path)
    stuck = _StuckSink()
    try:
        _run(rules, batches[:2], tmp_path, stop_at_end=True, sink=stuck)
    finally:
        stuck.release.set()
    saved = read_snapshot(tmp_path / "state.json")
    assert saved is not None
    pending = [Alert.from_record(r) for r in saved["sinks"][0]["pending"]]
    assert pending and saved["sinks"][0]["name"] == "_StuckSink"

    class _Resent(CapturingSink):
        pass

    _Resent.__name__ = "_StuckSink"  # the same sink, as far as the snapshot goes
    resent = _Resent()
    config, registry = parse_config(
        rules, base_dir=tmp_path, extra_plugins=(_plugin([]),)
    )
    Engine(config, registry, clock=SimulatedClock(), extra_sinks=[resent]).run()
    expected = [(a.incident_id, a.sequence, a.status) for a in pending]
    assert [(a.incident_id, a.sequence, a.status) for a in resent.alerts] == expected
    reference_ids = {(a.incident_id, a.sequence) for a in reference}
    assert set((i, s) for i, s, _ in expected) <= reference_ids
