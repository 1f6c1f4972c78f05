"""Rule test files (``engine test``): loading, validation and the event notation.

A test file names the rules files under test and holds tests. Each test
gives events (inline, with a compact notation for series, or from a JSON
Lines file), optionally the order in which they arrive, and the alerts the
rules must raise. This module reads test files into :class:`RuleTestFile`:
it validates them against the schema and reports every problem at once, with
file, line and column; it loads the rules files they name, their sources
replaced by the ``rule-test-events`` source; and it expands the event
notation (series, times relative to a base time, arrival delays and order)
into events in arrival order. :mod:`engine.ruletests` runs the tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

from engine.alertdiff import AlertMatcher, Approx
from engine.alerts import FIRING
from engine.components import Source
from engine.config import EngineConfig
from engine.errors import Problem, UsageError
from engine.events import BadEvent, Event, EventDecoder
from engine.hookspecs import hookimpl
from engine.offline import load_rules_offline
from engine.plugin_manager import Registry
from engine.schema import load_core_schema, schema_problems
from engine.timeutil import datetime_to_us, parse_duration
from engine.yamlfile import DocPath, LoadedYaml, load_yaml

SCHEMA_NAME = "rule-tests.schema.json"
#: How ``engine test FOLDER`` recognises test files.
TEST_FILE_SUFFIXES = (".test.yaml", ".test.yml")
#: 1970-01-01T00:00:00Z, the base time of tests that do not give one.
DEFAULT_BASE_US = 0
#: Alert fields an expectation compares with the alert's JSON form as is.
PLAIN_FIELDS = ("rule", "status", "severity", "summary", "description", "sequence")


# -- the input source ----------------------------------------------------------


class RuleTestEventsSource(Source):
    """Source ``rule-test-events``: one test's events, one batch per event,
    as JSON lines so that they are decoded like real input."""

    type_name: ClassVar[str] = "rule-test-events"
    description: ClassVar[str] = "the events of one rule test (engine test)"

    def batches(self) -> Iterator[list[bytes]]:
        for line in self.options.get("lines", ()):
            yield [line]


class _RuleTestEventsPlugin:
    @hookimpl
    def engine_register_sources(self) -> list[type[Source]]:
        return [RuleTestEventsSource]


# -- what a test file holds ----------------------------------------------------


@dataclass(frozen=True)
class RulesUnderTest:
    """One rules file, validated, its sources to be replaced by test events."""

    path: str
    config: EngineConfig
    registry: Registry


@dataclass(frozen=True)
class RuleTest:
    """One test: events in arrival order and the alerts they must raise.

    ``arrivals_us`` holds when each event arrives (never going back); it
    stands for processing time when a rules file uses ``time.mode:
    processing``.
    """

    name: str
    where: str
    base_us: int
    events: tuple[Event, ...]
    arrivals_us: tuple[int, ...]
    expect: tuple[AlertMatcher, ...]
    ignore: tuple[AlertMatcher, ...] = ()
    allow_unexpected: bool = False
    expect_counts: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RuleTestFile:
    path: str
    rules: tuple[RulesUnderTest, ...]
    tests: tuple[RuleTest, ...]


# -- loading -------------------------------------------------------------------


def find_test_files(paths: Sequence[Path]) -> list[Path]:
    """The files named, with each folder replaced by the test files in it."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and p.name.endswith(TEST_FILE_SUFFIXES)
            )
        else:
            found.append(path)
    return found


def load_test_files(paths: Sequence[Path]) -> list[RuleTestFile]:
    """Load and validate test files and the rules files they name.

    Raises one :class:`UsageError` listing every problem in all of them.
    """
    problems: list[Problem] = []
    files: list[RuleTestFile] = []
    rules_cache: dict[Path, RulesUnderTest | list[Problem]] = {}
    for path in find_test_files(paths):
        try:
            files.append(_TestFileReader(path, rules_cache).read())
        except UsageError as error:
            problems += error.problems
    if problems:
        raise UsageError(*_unique(problems))
    if not files:
        raise UsageError("no test files found in " + ", ".join(str(p) for p in paths))
    return files


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def _position(problem: Problem) -> tuple[str, int, int]:
    """Sorts problems by file, then line and column."""
    file, _, place = problem.where.partition(":")
    line, _, column = place.partition(":")
    return file, int(line or 0), int(column or 0)


def _plain_times(data: Any) -> Any:
    """YAML reads an unquoted ``2026-01-01T00:00:00Z`` as a datetime: turn
    such values back into text, checked like any other time."""
    if isinstance(data, dict):
        return {k: _plain_times(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_plain_times(v) for v in data]
    if isinstance(data, (datetime, date)):
        return data.isoformat()
    return data


def parse_time(value: str | float, base_us: int) -> int:
    """A time as tests write it: an offset from ``base_us`` (a duration or
    a number of seconds) or an ISO-8601 time with a time zone."""
    if not isinstance(value, str):
        return base_us + parse_duration(value)
    try:
        return base_us + parse_duration(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as error:
        raise ValueError(f"found {value!r}, which is not a time: {error}") from None
    if moment.tzinfo is None:
        raise ValueError(f"found {value!r}, expected a time zone (Z or +01:00)")
    return datetime_to_us(moment)


class _TestFileReader:
    """Builds a :class:`RuleTestFile`, collecting every problem on the way."""

    def __init__(
        self, path: Path, rules_cache: dict[Path, RulesUnderTest | list[Problem]]
    ) -> None:
        self.path = path
        self.rules_cache = rules_cache
        self.problems: list[Problem] = []
        self.loaded = LoadedYaml(str(path), None)
        self.rule_names: dict[str, str] = {}

    def problem(self, path: DocPath, message: str) -> None:
        self.problems.append(self.loaded.problem(path, message))

    def read(self) -> RuleTestFile:
        try:
            self.loaded = load_yaml(self.path)
        except ValueError as error:
            # PyYAML reads an impossible date such as 2026-13-01 as a
            # timestamp and fails without saying where.
            raise UsageError(
                Problem(f"invalid YAML: {error}", str(self.path))
            ) from None
        self.loaded.data = _plain_times(self.loaded.data)
        if not isinstance(self.loaded.data, dict):
            raise UsageError(
                self.loaded.problem((), "expected a mapping at the top level")
            )
        problems = schema_problems(self.loaded, load_core_schema(SCHEMA_NAME))
        if problems:
            raise UsageError(*problems)
        data = self.loaded.data
        rules = self._rules_files(data["rule_files"])
        base_us = self._time(data.get("base_time"), DEFAULT_BASE_US, ("base_time",))
        tests = [
            self._test(test, ("tests", i), base_us)
            for i, test in enumerate(data["tests"])
        ]
        self._check_unique_names(data["tests"])
        if self.problems:
            raise UsageError(*sorted(self.problems, key=_position))
        return RuleTestFile(str(self.path), tuple(rules), tuple(tests))

    # -- rules files -----------------------------------------------------------

    def _rules_files(self, names: list[str]) -> list[RulesUnderTest]:
        loaded: list[RulesUnderTest] = []
        for i, name in enumerate(names):
            rules = self._rules_file(name, ("rule_files", i))
            if rules is None:
                continue
            loaded.append(rules)
            for rule in rules.config.rules:
                other = self.rule_names.setdefault(rule.name, rules.path)
                if other != rules.path:
                    self.problem(
                        ("rule_files", i),
                        f"rule {rule.name!r} is defined in both {other} and "
                        f"{rules.path}; expectations could not tell them apart",
                    )
        return loaded

    def _rules_file(self, name: str, path: DocPath) -> RulesUnderTest | None:
        target = Path(os.path.normpath(self.path.parent / name))
        if not target.is_file():
            self.problem(path, f"rules file {str(target)!r} not found")
            return None
        key = target.resolve()
        if key not in self.rules_cache:
            try:
                config, registry = load_rules_offline(
                    target,
                    {"type": RuleTestEventsSource.type_name},
                    extra_plugins=(_RuleTestEventsPlugin(),),
                )
                self.rules_cache[key] = RulesUnderTest(str(target), config, registry)
            except UsageError as error:
                self.rules_cache[key] = error.problems
        cached = self.rules_cache[key]
        if isinstance(cached, list):
            self.problems += cached
            return None
        return cached

    def _check_unique_names(self, tests: list[dict[str, Any]]) -> None:
        seen: dict[str, int] = {}
        for i, test in enumerate(tests):
            first = seen.setdefault(test["name"], i)
            if first != i:
                self.problem(
                    ("tests", i, "name"),
                    f"test name {test['name']!r} is already used by tests[{first}]",
                )

    # -- one test --------------------------------------------------------------

    def _test(self, data: dict[str, Any], path: DocPath, file_base_us: int) -> RuleTest:
        base_us = self._time(data.get("base_time"), file_base_us, (*path, "base_time"))
        written = self._file_events(data, path) + self._inline_events(
            data, path, base_us
        )
        events, arrivals = self._arrival(data.get("arrival", "time"), written, path)
        return RuleTest(
            name=data["name"],
            where=self.loaded.where(path),
            base_us=base_us,
            events=tuple(events),
            arrivals_us=tuple(arrivals),
            expect=tuple(
                self._matcher(m, (*path, "expect", i), base_us, expected=True)
                for i, m in enumerate(data.get("expect") or [])
            ),
            ignore=tuple(
                self._matcher(m, (*path, "ignore", i), base_us, expected=False)
                for i, m in enumerate(data.get("ignore") or [])
            ),
            allow_unexpected=data.get("allow_unexpected", False),
            expect_counts=MappingProxyType(dict(data.get("expect_counts") or {})),
        )

    def _time(self, value: Any, base_us: int, path: DocPath) -> int:
        if value is None:
            return base_us
        try:
            return parse_time(value, base_us)
        except ValueError as error:
            self.problem(path, str(error))
            return base_us

    def _file_events(self, data: dict[str, Any], path: DocPath) -> list[_Written]:
        name = data.get("events_file")
        if name is None:
            return []
        target = Path(os.path.normpath(self.path.parent / name))
        try:
            lines = target.read_bytes().splitlines()
        except OSError as error:
            self.problem(
                (*path, "events_file"),
                f"cannot read {str(target)!r}: {error.strerror or error}",
            )
            return []
        decoder = EventDecoder(keep_metadata=True)
        written: list[_Written] = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            decoded = decoder.decode(line)
            if isinstance(decoded, BadEvent):
                self.problems.append(
                    Problem(
                        f"not an event ({decoded.reason}): {decoded.detail}",
                        f"{target}:{number}",
                    )
                )
                continue
            written.append(_Written(decoded, 0))
        return written

    def _inline_events(
        self, data: dict[str, Any], path: DocPath, base_us: int
    ) -> list[_Written]:
        written: list[_Written] = []
        for i, entry in enumerate(data.get("events") or []):
            written += self._entry(entry, (*path, "events", i), base_us)
        return written

    def _entry(
        self, entry: dict[str, Any], path: DocPath, base_us: int
    ) -> list[_Written]:
        times = self._entry_times(entry, path, base_us)
        if "value" in entry and "values" in entry:
            self.problem((*path, "values"), "give 'value' or 'values', not both")
            return []
        values = entry.get("values", [entry.get("value")] * len(times))
        if len(values) != len(times):
            self.problem(
                (*path, "values"),
                f"found {len(values)} values, expected one per event ({len(times)})",
            )
            return []
        delay_us = parse_duration(entry.get("arrive_after", 0))
        metadata = entry.get("metadata") or {}
        return [
            _Written(
                Event(t, entry["event_type"], entry["source"], v, dict(metadata)),
                delay_us,
            )
            for t, v in zip(times, values, strict=True)
        ]

    def _entry_times(
        self, entry: dict[str, Any], path: DocPath, base_us: int
    ) -> list[int]:
        series = [k for k in ("every", "count", "start") if k in entry]
        if "at" in entry:
            if series:
                self.problem(
                    (*path, series[0]), "give 'at', or 'every' and 'count', not both"
                )
                return []
            return [
                self._time(t, base_us, (*path, "at")) for t in _time_list(entry["at"])
            ]
        if not series:
            self.problem(path, "missing key: 'at' (or 'every' and 'count')")
            return []
        if "every" not in entry or "count" not in entry:
            missing = "count" if "every" in entry else "every"
            self.problem(
                path, f"missing key: '{missing}' (or give the times with 'at')"
            )
            return []
        start_us = self._time(entry.get("start", 0), base_us, (*path, "start"))
        every_us = parse_duration(entry["every"])
        return [start_us + n * every_us for n in range(entry["count"])]

    def _arrival(
        self, arrival: str | list[int], written: list[_Written], path: DocPath
    ) -> tuple[list[Event], list[int]]:
        delayed = any(w.delay_us for w in written)
        if arrival == "time":
            ordered = sorted(written, key=lambda w: w.event.time_us + w.delay_us)
        elif delayed:
            self.problem(
                (*path, "arrival"), "'arrive_after' needs arrival: time (the default)"
            )
            return [], []
        elif isinstance(arrival, str):  # "written"
            ordered = written
        else:
            ordered = self._permuted(arrival, written, (*path, "arrival"))
        arrivals: list[int] = []
        for item in ordered:
            due = item.event.time_us + item.delay_us
            arrivals.append(max(due, arrivals[-1]) if arrivals else due)
        return [w.event for w in ordered], arrivals

    def _permuted(
        self, order: list[int], written: list[_Written], path: DocPath
    ) -> list[_Written]:
        count = len(written)
        wanted = set(range(1, count + 1))
        if len(order) == count and set(order) == wanted:
            return [written[n - 1] for n in order]
        missing = sorted(wanted - set(order))
        extra = sorted({n for n in order if n not in wanted})
        repeated = sorted({n for n in order if order.count(n) > 1})
        details = [
            f"{label} {', '.join(map(str, numbers))}"
            for label, numbers in (
                ("missing", missing),
                ("repeated", repeated),
                ("out of range", extra),
            )
            if numbers
        ]
        self.problem(
            path,
            f"expected each event number from 1 to {count} exactly once; "
            + "; ".join(details),
        )
        return written

    # -- expectations ----------------------------------------------------------

    def _matcher(
        self, data: dict[str, Any], path: DocPath, base_us: int, *, expected: bool
    ) -> AlertMatcher:
        fields = {k: data[k] for k in PLAIN_FIELDS if k in data}
        if expected:
            fields.setdefault("status", FIRING)
        rule = fields.get("rule")
        if rule is not None and rule not in self.rule_names and self.rule_names:
            self.problem(
                (*path, "rule"),
                f"unknown rule {rule!r}; the rules files define "
                + ", ".join(sorted(self.rule_names)),
            )
        return AlertMatcher(
            where=self.loaded.where(path),
            fields=fields,
            labels=dict(data.get("labels") or {}),
            evidence=self._evidence(data.get("evidence") or {}, (*path, "evidence")),
            at_us=self._optional_time(data, "at", base_us, path),
            starts_at_us=self._optional_time(data, "starts_at", base_us, path),
        )

    def _optional_time(
        self, data: dict[str, Any], key: str, base_us: int, path: DocPath
    ) -> int | None:
        if key not in data:
            return None
        return self._time(data[key], base_us, (*path, key))

    def _evidence(self, data: dict[str, Any], path: DocPath) -> dict[str, Any]:
        evidence: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, dict) and "approx" in value:
                evidence[key] = self._approx(value, (*path, key))
            else:
                evidence[key] = value
        return evidence

    def _approx(self, data: dict[str, Any], path: DocPath) -> Approx | None:
        value, tolerance = data["approx"], data.get("tolerance", 0)
        unknown = sorted(set(data) - {"approx", "tolerance"})
        numbers = all(
            isinstance(n, (int, float)) and not isinstance(n, bool)
            for n in (value, tolerance)
        )
        if unknown or not numbers or tolerance < 0:
            self.problem(path, "expected {approx: NUMBER, tolerance: NUMBER >= 0}")
            return None
        return Approx(float(value), float(tolerance))


def _time_list(at: str | float | list[str | float]) -> Sequence[str | float]:
    """``at`` as a list: "0s, 1s" is split at its commas."""
    if isinstance(at, str):
        return at.split(",")
    return at if isinstance(at, list) else [at]


@dataclass(frozen=True)
class _Written:
    """An input event as written, and how long after its time it arrives."""

    event: Event
    delay_us: int
