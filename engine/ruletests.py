"""Rule unit tests (``engine test``): running tests and judging the results.

Every rules file of a test file runs on its own over each test's events, its
sources replaced by them and its sinks by a capturing sink, with a simulated
clock: a test is exact and takes milliseconds.

An alert that no expectation names fails the test unless the test says
``allow_unexpected: true`` or leaves such alerts out with ``ignore:``.
Arrival delays decide the order in which events reach the engine; the idle
timeout, which moves the watermark with the wall clock when input pauses, is
not simulated (it is turned off), so results depend on the test alone.
:mod:`engine.ruletest_files` loads and validates test files (and its loading
functions are importable from here too); :mod:`engine.alertdiff` compares.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import msgspec

from engine.alertdiff import compare, render_diff
from engine.alerts import Alert
from engine.clock import SimulatedClock
from engine.config import ComponentConfig
from engine.events import Event, event_to_json_dict
from engine.offline import notified_at_us, without_idle_timeout
from engine.ruletest_files import (
    RulesUnderTest,
    RuleTest,
    RuleTestEventsSource,
    RuleTestFile,
)
from engine.runtime import Engine
from engine.stats import RunSummary
from engine.testing import CapturingSink


@dataclass(frozen=True)
class RuleTestResult:
    """How one test went; ``details`` is the diff shown when it failed."""

    file: str
    name: str
    passed: bool
    message: str
    details: tuple[str, ...]
    seconds: float


# -- running -------------------------------------------------------------------


def run_test(test_file: RuleTestFile, test: RuleTest) -> RuleTestResult:
    """Run one test over every rules file of its file and compare."""
    started = time.perf_counter()
    alerts: list[tuple[int, int, int, Alert]] = []
    summaries: list[RunSummary] = []
    for file_index, rules in enumerate(test_file.rules):
        raised, summary = _run_rules(rules, test)
        alerts += [(notified_at_us(a), file_index, n, a) for n, a in enumerate(raised)]
        summaries.append(summary)
    alerts.sort(key=lambda entry: entry[:3])
    actual = [entry[3] for entry in alerts]
    passed, message, details = _judge(test, actual, summaries)
    return RuleTestResult(
        test_file.path,
        test.name,
        passed,
        message,
        tuple(details),
        time.perf_counter() - started,
    )


def _run_rules(rules: RulesUnderTest, test: RuleTest) -> tuple[list[Alert], RunSummary]:
    config = without_idle_timeout(rules.config)
    events: Sequence[Event] = test.events
    if config.time.mode == "processing":
        # Processing time is when each event arrives: run in event time on
        # arrival times, which is what the engine would see, without a
        # clock that has to keep pace with a thread.
        events = [
            msgspec.structs.replace(e, time_us=at)
            for e, at in zip(events, test.arrivals_us, strict=True)
        ]
        config = dataclasses.replace(
            config,
            time=dataclasses.replace(config.time, mode="event", allowed_lateness_us=0),
        )
    lines = [json.dumps(event_to_json_dict(e)).encode() for e in events]
    source = ComponentConfig(
        RuleTestEventsSource.type_name, MappingProxyType({"lines": lines}), test.where
    )
    config = dataclasses.replace(config, sources=(source,), sinks=())
    sink = CapturingSink()
    engine = Engine(
        config, rules.registry, clock=SimulatedClock(test.base_us), extra_sinks=[sink]
    )
    summary = engine.run()
    return sink.alerts, summary


def _judge(
    test: RuleTest, actual: list[Alert], summaries: list[RunSummary]
) -> tuple[bool, str, list[str]]:
    comparison = compare(test.expect, actual, test.ignore)
    faults: list[str] = []
    if comparison.missing:
        faults.append(
            _plural(len(comparison.missing), "expected alert") + " not raised"
        )
    if comparison.unexpected and not test.allow_unexpected:
        faults.append(_plural(len(comparison.unexpected), "unexpected alert"))
    counts = _counts(summaries)
    for name, wanted in test.expect_counts.items():
        if counts[name] != wanted:
            faults.append(f"{name}: expected {wanted}, got {counts[name]}")
    if not faults:
        return True, "", []
    details = render_diff(comparison, test.expect, test.base_us)
    if comparison.ignored:
        details.append(f"({_plural(comparison.ignored, 'alert')} ignored)")
    return False, "; ".join(faults), details


def _counts(summaries: list[RunSummary]) -> dict[str, int]:
    return {
        "late_dropped": sum(s.late_dropped for s in summaries),
        "late_included": sum(s.late_included for s in summaries),
        "suppressed": sum(sum(s.suppressed_by_rule.values()) for s in summaries),
    }


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def run_test_files(files: Sequence[RuleTestFile]) -> Iterator[RuleTestResult]:
    """Run every test of every file, in order, yielding each result."""
    for test_file in files:
        for test in test_file.tests:
            yield run_test(test_file, test)
