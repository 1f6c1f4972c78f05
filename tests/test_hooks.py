"""The lifecycle hooks are called when their specs say, with what they say."""

from __future__ import annotations

from typing import Any

from engine.alerts import Alert
from engine.clock import SimulatedClock
from engine.components import Detector, Window
from engine.config import EngineConfig, parse_config
from engine.hookspecs import hookimpl
from engine.plugins.detector_burst import BurstDetector
from engine.plugins.window_sliding import SlidingWindow
from engine.runtime import Engine
from engine.stats import CountersReport, RunSummary
from engine.testing import MemoryPlugin, event

RULES = """\
version: 1
sources: [{type: memory}]
rules:
  - name: ERROR_BURST
    match: {event_type: ERROR}
    window: {type: sliding, size: 10s}
    detector: {type: burst, threshold: 2}
sinks: []
counters: {interval: 1s, window: 1h}
"""


class Recorder:
    """Writes down every lifecycle hook call in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def engine_startup(self, config: EngineConfig) -> None:
        self.calls.append(("startup", config))

    @hookimpl
    def engine_alert(self, alert: Alert) -> None:
        self.calls.append(("alert", alert))

    @hookimpl
    def engine_counters(self, report: CountersReport) -> None:
        self.calls.append(("counters", report))

    @hookimpl
    def engine_shutdown(self, summary: RunSummary) -> None:
        self.calls.append(("shutdown", summary))


class SteppingClock(SimulatedClock):
    """Moves on by a quarter of a second every time it is read, so that the
    engine's periodic work comes due during a run."""

    def now_us(self) -> int:
        self.advance_us(250_000)
        return super().now_us()


def run_with(recorder: Recorder, batches: list[list[Any]]) -> tuple[Engine, RunSummary]:
    config, registry = parse_config(
        RULES, "hooks.yaml", extra_plugins=(MemoryPlugin(batches), recorder)
    )
    engine = Engine(config, registry, clock=SteppingClock())
    return engine, engine.run()


def test_startup_comes_first_with_the_config_and_shutdown_last_with_the_summary() -> (
    None
):
    """engine_startup opens the run and engine_shutdown closes it."""
    recorder = Recorder()
    engine, summary = run_with(recorder, [[event(1), event(2)]])

    names = [name for name, _ in recorder.calls]
    assert names[0] == "startup" and recorder.calls[0][1] is engine.config
    assert names[-1] == "shutdown" and recorder.calls[-1][1] is summary
    assert names.count("startup") == names.count("shutdown") == 1


def test_engine_alert_receives_every_alert_edge_in_order() -> None:
    """Two errors fire the rule; the end of input resolves it: two alerts."""
    recorder = Recorder()
    run_with(recorder, [[event(1), event(2)]])

    alerts = [value for name, value in recorder.calls if name == "alert"]
    assert [(a.status, a.starts_at_us) for a in alerts] == [
        ("firing", 2_000_000),
        ("resolved", 2_000_000),
    ]
    assert alerts[1].ends_at_us == 11_000_000


def test_engine_counters_reports_the_events_counted_so_far_by_type_and_source() -> None:
    """With a one-second interval and a clock that moves, counters are reported
    during the run; within their hour-long window they only grow, and they
    break the events down by type and source."""
    recorder = Recorder()
    batches = [[event(t, "ERROR", "web-1"), event(t, "INFO", "db-1")] for t in range(8)]
    run_with(recorder, batches)

    reports = [
        value for name, value in recorder.calls if name == "counters" and value.total
    ]
    assert reports, "no counters report with events during the run"
    totals = [report.total for report in reports]
    assert totals == sorted(totals) and 0 < totals[-1] <= 16
    for report in reports:
        half = report.total // 2
        assert sorted(report.by_type) == [("ERROR", half), ("INFO", half)]
        assert sorted(report.by_source) == [("db-1", half), ("web-1", half)]


def test_a_raising_engine_alert_hook_does_not_stop_the_run() -> None:
    """An observer that fails is logged; the alerts still reach the summary."""

    class Failing:
        @hookimpl
        def engine_alert(self, alert: Alert) -> None:
            raise RuntimeError("observer broke")

    config, registry = parse_config(
        RULES,
        "hooks.yaml",
        extra_plugins=(MemoryPlugin([[event(1), event(2)]]), Failing()),
    )
    summary = Engine(config, registry, clock=SimulatedClock()).run()

    assert summary.alerts[("ERROR_BURST", "firing")] == 1
    assert summary.alerts[("ERROR_BURST", "resolved")] == 1


class RenamedWindow(SlidingWindow):
    type_name = "exact"


class RenamedDetector(BurstDetector):
    type_name = "at_least"


class WindowAndDetectorPlugin:
    """Registers a window and a detector under new names."""

    @hookimpl
    def engine_register_windows(self) -> list[type[Window]]:
        return [RenamedWindow]

    @hookimpl
    def engine_register_detectors(self) -> list[type[Detector]]:
        return [RenamedDetector]


def test_windows_and_detectors_registered_by_a_plugin_are_usable_by_type() -> None:
    """engine_register_windows and engine_register_detectors add types that
    rules can name, and they run like the built-ins they extend."""
    rules = RULES.replace("type: sliding", "type: exact").replace(
        "type: burst", "type: at_least"
    )
    plugins = (MemoryPlugin([[event(1), event(2)]]), WindowAndDetectorPlugin())
    config, registry = parse_config(rules, "hooks.yaml", extra_plugins=plugins)
    summary = Engine(config, registry, clock=SimulatedClock()).run()

    assert (config.rules[0].window.type, config.rules[0].detector.type) == (
        "exact",
        "at_least",
    )
    assert summary.alerts[("ERROR_BURST", "firing")] == 1
