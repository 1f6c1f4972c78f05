"""Rule test files: loading and validation, the event notation, arrival
order, matching expected alerts, the diff and the JUnit report."""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from engine.alertdiff import AlertMatcher, Approx, compare, render_diff
from engine.alerts import Alert
from engine.errors import UsageError
from engine.junit import junit_tree
from engine.ruletest_files import (
    RuleTestFile,
    find_test_files,
    load_test_files,
    parse_time,
)
from engine.ruletests import RuleTestResult, run_test_files

S = 1_000_000  # microseconds per second

BURST_RULES = """\
version: 1
sources: [{type: jsonl, path: never-read.jsonl}]
time: {allowed_lateness: 2s}
rules:
  - name: ERROR_BURST
    match: {event_type: ERROR}
    group_by: [source]
    window: {type: sliding, size: 10s}
    detector: {type: burst, threshold: 3}
sinks: [{type: jsonl, path: never-written.jsonl}]
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_one(folder: Path, tests_yaml: str, rules: str = BURST_RULES) -> RuleTestFile:
    """Write rules.yaml and t.test.yaml (naming it) into folder and load them."""
    write(folder, "rules.yaml", rules)
    text = "rule_files: [rules.yaml]\n" + textwrap.dedent(tests_yaml)
    path = write(folder, "t.test.yaml", text)
    [loaded] = load_test_files([path])
    return loaded


def run_one(folder: Path, tests_yaml: str, rules: str = BURST_RULES) -> RuleTestResult:
    [result] = run_test_files([load_one(folder, tests_yaml, rules)])
    return result


def problems_of(folder: Path, tests_yaml: str, rules: str = BURST_RULES) -> list[str]:
    with pytest.raises(UsageError) as caught:
        load_one(folder, tests_yaml, rules)
    return [str(p) for p in caught.value.problems]


def alert(
    status: str = "firing",
    at_s: int = 6,
    source: str = "web-1",
    count: int = 7,
    rule: str = "ERROR_BURST",
) -> Alert:
    starts = at_s * S if status == "firing" else 0
    return Alert(
        rule=rule,
        severity="high",
        status=status,
        labels={"source": source},
        group={"source": source},
        starts_at_us=starts,
        ends_at_us=None if status == "firing" else at_s * S,
        incident_id="id",
        sequence=1,
        evidence={"count": count, "threshold": 7, "window": "10s"},
        summary=f"{count} errors",
    )


# -- times and the event notation ----------------------------------------------


def test_parse_time_reads_offsets_numbers_and_iso_times_with_a_zone() -> None:
    """Offsets and numbers of seconds add to the base; ISO times stand alone."""
    base = 1_000 * S
    assert parse_time("1.5s", base) == base + 1_500_000
    assert parse_time("250ms", base) == base + 250_000
    assert parse_time(2, base) == base + 2 * S
    assert parse_time("1970-01-01T00:01:00Z", base) == 60 * S
    assert parse_time("1970-01-01T01:00:00+01:00", base) == 0
    with pytest.raises(ValueError, match="time zone"):
        parse_time("1970-01-01T00:01:00", base)


def test_series_and_comma_lists_expand_to_exact_event_times(tmp_path: Path) -> None:
    """`every`/`count`/`start` and "a, b" lists give events at exact microseconds."""
    loaded = load_one(
        tmp_path,
        """
        base_time: 1970-01-01T00:01:00Z
        tests:
          - name: t
            events:
              - {event_type: ERROR, source: a, every: 100ms, count: 3, start: 1s}
              - {event_type: INFO, source: b, at: "0s, 0.000001s, 2s"}
        """,
    )
    events = loaded.tests[0].events
    times = [(e.source, e.time_us - 60 * S) for e in events]

    assert times == [
        ("b", 0),
        ("b", 1),
        ("a", 1_000_000),
        ("a", 1_100_000),
        ("a", 1_200_000),
        ("b", 2_000_000),
    ]


def test_values_give_each_event_of_a_series_its_own_value(tmp_path: Path) -> None:
    """`values` pairs one value with each event, and rules see it."""
    rules = BURST_RULES.replace(
        "detector: {type: burst, threshold: 3}",
        'detector: {type: burst, threshold: 3}\n    summary: "last {value}"',
    )
    result = run_one(
        tmp_path,
        """
        tests:
          - name: t
            events:
              - {event_type: ERROR, source: a, at: "1s, 2s, 3s", values: [1.5, 2, 7]}
            expect:
              - {rule: ERROR_BURST, at: 3s, summary: "last 7"}
              - {rule: ERROR_BURST, status: resolved, at: 11s}
        """,
        rules,
    )

    assert result.passed, result.details


def test_metadata_written_inline_reaches_the_rules(tmp_path: Path) -> None:
    """A rule grouping by a metadata field sees the metadata of test events."""
    rules = BURST_RULES.replace("group_by: [source]", "group_by: [metadata.zone]")
    result = run_one(
        tmp_path,
        """
        tests:
          - name: t
            events:
              - {event_type: ERROR, source: a, at: 1s, metadata: {zone: eu}}
              - {event_type: ERROR, source: b, at: "2s, 3s", metadata: {zone: eu}}
            expect:
              - {rule: ERROR_BURST, at: 3s, labels: {metadata.zone: eu}}
              - {rule: ERROR_BURST, status: resolved, at: 11s}
        """,
        rules,
    )

    assert result.passed, result.details


# -- arrival order --------------------------------------------------------------


def test_arrive_after_delays_an_event_and_arrivals_never_go_back(
    tmp_path: Path,
) -> None:
    """Events arrive at their time plus arrive_after, in that order."""
    loaded = load_one(
        tmp_path,
        """
        tests:
          - name: t
            events:
              - {event_type: ERROR, source: late, at: 1s, arrive_after: 5s}
              - {event_type: ERROR, source: a, at: "2s, 7s"}
        """,
    )
    test = loaded.tests[0]

    assert [e.source for e in test.events] == ["a", "late", "a"]
    assert test.arrivals_us == (2 * S, 6 * S, 7 * S)


def test_an_arrival_list_orders_events_by_their_written_number(
    tmp_path: Path,
) -> None:
    """`arrival: [3, 1, 2]` delivers the third written event first."""
    loaded = load_one(
        tmp_path,
        """
        tests:
          - name: t
            events:
              - {event_type: ERROR, source: a, at: "1s, 2s, 3s"}
            arrival: [3, 1, 2]
        """,
    )

    assert [e.time_us for e in loaded.tests[0].events] == [3 * S, 1 * S, 2 * S]


def test_an_arrival_list_that_is_not_a_permutation_is_reported(
    tmp_path: Path,
) -> None:
    """Missing, repeated and out-of-range event numbers are all named."""
    problems = problems_of(
        tmp_path,
        """
        tests:
          - name: t
            events:
              - {event_type: ERROR, source: a, at: "1s, 2s, 3s"}
            arrival: [1, 1, 9]
        """,
    )

    assert len(problems) == 1
    assert "t.test.yaml:7:14: tests[0].arrival:" in problems[0]
    assert "missing 2, 3; repeated 1; out of range 9" in problems[0]


def test_late_events_in_the_chosen_arrival_order_are_dropped(tmp_path: Path) -> None:
    """An event more than allowed_lateness behind the newest is dropped."""
    result = run_one(
        tmp_path,
        """
        tests:
          - name: t
            events:
              - {event_type: ERROR, source: a, at: "1s, 2s, 6s"}
            arrival: [2, 3, 1]
            expect: []
            expect_counts: {late_dropped: 1}
        """,
    )

    assert result.passed, result.details


def test_processing_time_rules_see_arrival_times(tmp_path: Path) -> None:
    """With time.mode processing, an event counts at its arrival."""
    rules = BURST_RULES.replace(
        "time: {allowed_lateness: 2s}", "time: {mode: processing}"
    )
    result = run_one(
        tmp_path,
        """
        tests:
          - name: t
            events:
              - {event_type: ERROR, source: a, at: "1s, 2s"}
              - {event_type: ERROR, source: a, at: 3s, arrive_after: 5s}
            # In event time the burst would fire at 3s; the third error
            # arrives at 8s, and at 11s the one of 1s leaves the window.
            expect:
              - {rule: ERROR_BURST, at: 8s, evidence: {count: 3}}
              - {rule: ERROR_BURST, status: resolved, at: 11s}
        """,
        rules,
    )

    assert result.passed, result.details


# -- validation -----------------------------------------------------------------


def test_every_schema_problem_is_reported_with_line_column_and_path(
    tmp_path: Path,
) -> None:
    """An unknown key, a bad time and a bad status are reported together."""
    problems = problems_of(
        tmp_path,
        """
        tests:
          - name: t
            evnts: []
            events:
              - {event_type: ERROR, source: a, at: "1s, 2x"}
            expect:
              - {rule: ERROR_BURST, status: 5}
        """,
    )

    file = tmp_path / "t.test.yaml"
    assert len(problems) == 3
    assert problems[0].startswith(f"{file}:5:5: tests[0].evnts: unknown key")
    assert "did you mean 'events'?" in problems[0]
    assert problems[1].startswith(f"{file}:7:44: tests[0].events[0].at: found")
    assert problems[2].startswith(f"{file}:9:37: tests[0].expect[0].status:")


def test_an_unquoted_time_without_a_zone_is_rejected(tmp_path: Path) -> None:
    """YAML reads 2026-01-01T00:00:00 as a date; without a zone it is refused."""
    problems = problems_of(
        tmp_path,
        """
        base_time: 2026-01-01T00:00:00
        tests: [{name: t}]
        """,
    )

    assert len(problems) == 1
    assert ":3:12: base_time: found" in problems[0]
    assert "time zone" in problems[0]


def test_semantic_problems_are_reported_together(tmp_path: Path) -> None:
    """Unknown rules, incomplete series and duplicate names, all at once."""
    problems = problems_of(
        tmp_path,
        """
        tests:
          - name: t
            events:
              - {event_type: ERROR, source: a, every: 1s}
              - {event_type: ERROR, source: a, at: 1s, count: 2}
              - {event_type: ERROR, source: a, at: "1s, 2s", values: [1]}
            expect:
              - {rule: ERROR_BRUST}
          - name: t
        """,
    )

    assert [p.split(": ", 2)[1] for p in problems] == [
        "tests[0].events[0]",
        "tests[0].events[1].count",
        "tests[0].events[2].values",
        "tests[0].expect[0].rule",
        "tests[1].name",
    ]
    assert (
        "unknown rule 'ERROR_BRUST'; the rules files define ERROR_BURST"
        in (problems[3])
    )


def test_a_problem_in_the_rules_file_is_reported_where_it_is(tmp_path: Path) -> None:
    """The rules file's own errors keep their file, line and column."""
    rules = BURST_RULES.replace("threshold: 3", "threshold: many")
    problems = problems_of(tmp_path, "tests: [{name: t}]\n", rules)

    assert len(problems) == 1
    assert problems[0].startswith(f"{tmp_path / 'rules.yaml'}:9:40: ")
    assert "rules[0].detector.threshold" in problems[0]


def test_a_missing_rules_file_is_reported_at_its_name(tmp_path: Path) -> None:
    """A rule_files entry that names no file is a problem of the test file."""
    path = write(
        tmp_path, "t.test.yaml", "rule_files: [nope.yaml]\ntests: [{name: t}]\n"
    )
    with pytest.raises(UsageError) as caught:
        load_test_files([path])

    [problem] = caught.value.problems
    assert problem.where == f"{path}:1:14"
    assert "nope.yaml" in problem.message


def test_sources_and_sinks_of_the_rules_file_are_not_needed(tmp_path: Path) -> None:
    """A rules file whose source and sink plugins are not installed is tested."""
    rules = BURST_RULES.replace(
        "type: jsonl, path: never-read.jsonl", "type: kafka, brokers: x"
    ).replace("type: jsonl, path: never-written.jsonl", "type: pager")
    result = run_one(
        tmp_path,
        """
        tests:
          - name: t
            events: [{event_type: ERROR, source: a, at: "1s, 2s, 3s"}]
            expect:
              - {rule: ERROR_BURST, at: 3s}
              - {rule: ERROR_BURST, status: resolved, at: 11s}
        """,
        rules,
    )

    assert result.passed, result.details
    assert not (tmp_path / "never-written.jsonl").exists()


def test_the_same_rule_name_in_two_rules_files_is_a_problem(tmp_path: Path) -> None:
    """Expectations name rules, so two files may not share a rule name."""
    write(tmp_path, "rules.yaml", BURST_RULES)
    write(tmp_path, "again.yaml", BURST_RULES)
    path = write(
        tmp_path,
        "t.test.yaml",
        "rule_files: [rules.yaml, again.yaml]\ntests: [{name: t}]\n",
    )
    with pytest.raises(UsageError) as caught:
        load_test_files([path])

    [problem] = caught.value.problems
    assert problem.path == "rule_files[1]"
    assert "'ERROR_BURST' is defined in both" in problem.message


def test_a_bad_line_in_an_events_file_is_reported_by_line(tmp_path: Path) -> None:
    """Test input must be events: a broken line is named by file and line."""
    write(
        tmp_path,
        "in.jsonl",
        '{"timestamp": 1, "event_type": "ERROR", "source": "a"}\n\nnot json\n',
    )
    problems = problems_of(tmp_path, "tests: [{name: t, events_file: in.jsonl}]\n")

    assert len(problems) == 1
    assert problems[0].startswith(f"{tmp_path / 'in.jsonl'}:3: not an event (not_json)")


def test_a_folder_stands_for_the_test_files_in_it(tmp_path: Path) -> None:
    """Only *.test.yaml files are taken from a folder, in name order."""
    (tmp_path / "sub").mkdir()
    for name in ("b.test.yaml", "a.test.yml", "sub/c.test.yaml", "rules.yaml"):
        (tmp_path / name).write_text("", encoding="utf-8")

    found = find_test_files([tmp_path])

    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a.test.yml",
        "b.test.yaml",
        "sub/c.test.yaml",
    ]


# -- running and judging --------------------------------------------------------


def test_an_alert_no_expectation_names_fails_the_test(tmp_path: Path) -> None:
    """Extra alerts fail by default; the resolution must be listed too."""
    result = run_one(
        tmp_path,
        """
        tests:
          - name: t
            events: [{event_type: ERROR, source: a, at: "1s, 2s, 3s"}]
            expect: [{rule: ERROR_BURST, at: 3s}]
        """,
    )

    assert not result.passed
    assert result.message == "1 unexpected alert"
    assert any(line.startswith("+  resolved") for line in result.details)


def test_allow_unexpected_or_ignore_lets_extra_alerts_pass(tmp_path: Path) -> None:
    """allow_unexpected and ignore each make their own test pass."""
    loaded = load_one(
        tmp_path,
        """
        tests:
          - name: allowed
            events: [{event_type: ERROR, source: a, at: "1s, 2s, 3s"}]
            expect: [{rule: ERROR_BURST, at: 3s}]
            allow_unexpected: true
          - name: ignored
            events: [{event_type: ERROR, source: a, at: "1s, 2s, 3s"}]
            expect: [{rule: ERROR_BURST, at: 3s}]
            ignore: [{status: resolved}]
        """,
    )

    results = list(run_test_files([loaded]))

    assert [(r.name, r.passed) for r in results] == [
        ("allowed", True),
        ("ignored", True),
    ]


def test_expect_counts_that_differ_fail_with_both_numbers(tmp_path: Path) -> None:
    """A wrong late count is a failure that says expected and got."""
    result = run_one(
        tmp_path,
        """
        tests:
          - name: t
            events: [{event_type: ERROR, source: a, at: "1s, 2s"}]
            expect_counts: {late_dropped: 1}
        """,
    )

    assert not result.passed
    assert result.message == "late_dropped: expected 1, got 0"


def test_every_rules_file_of_a_test_file_runs_over_the_events(tmp_path: Path) -> None:
    """Alerts of all the rules files are compared together."""
    write(tmp_path, "rules.yaml", BURST_RULES)
    write(
        tmp_path,
        "other.yaml",
        BURST_RULES.replace("ERROR_BURST", "ANY_BURST").replace(
            "match: {event_type: ERROR}", "match: {}"
        ),
    )
    path = write(
        tmp_path,
        "t.test.yaml",
        """\
        rule_files: [rules.yaml, other.yaml]
        tests:
          - name: t
            events: [{event_type: INFO, source: a, at: "1s, 2s, 3s"}]
            expect:
              - {rule: ANY_BURST, at: 3s, evidence: {count: 3}}
              - {rule: ANY_BURST, status: resolved, at: 11s}
        """,
    )

    [result] = run_test_files(load_test_files([path]))

    assert result.passed, result.details


# -- matching ---------------------------------------------------------------------


def test_a_loose_expectation_does_not_take_the_alert_a_strict_one_needs() -> None:
    """Pairing finds the most pairs, whatever order expectations come in."""
    loose = AlertMatcher("t:1:1", {"rule": "ERROR_BURST"})
    strict = AlertMatcher("t:2:1", {"rule": "ERROR_BURST"}, labels={"source": "web-1"})
    alerts = [alert(source="web-1"), alert(source="web-2")]

    comparison = compare([loose, strict], alerts)

    assert comparison.missing == []
    assert comparison.unexpected == []
    assert {(m.where, a.labels["source"]) for m, a in comparison.matched} == {
        ("t:1:1", "web-2"),
        ("t:2:1", "web-1"),
    }


def test_labels_and_evidence_match_as_subsets_with_exact_values() -> None:
    """Named keys must be present and equal; others are free."""
    raised = alert(count=7)

    assert AlertMatcher("w", evidence={"count": 7}).matches(raised)
    assert AlertMatcher("w", evidence={"count": 7.0}).matches(raised)
    assert not AlertMatcher("w", evidence={"count": 8}).matches(raised)
    assert not AlertMatcher("w", evidence={"rate": 7}).matches(raised)
    assert not AlertMatcher("w", labels={"source": "web-2"}).matches(raised)
    assert not AlertMatcher("w", labels={"team": "web"}).matches(raised)


def test_approx_matches_a_number_within_its_tolerance() -> None:
    """{approx, tolerance} accepts rates that are not exact decimals."""
    raised = alert(count=7)

    assert AlertMatcher("w", evidence={"count": Approx(7.04, 0.05)}).matches(raised)
    assert not AlertMatcher("w", evidence={"count": Approx(7.1, 0.05)}).matches(raised)
    assert not AlertMatcher("w", evidence={"window": Approx(10, 1)}).matches(raised)


def test_true_does_not_match_one() -> None:
    """Booleans and numbers are different values, as in JSON."""
    raised = alert(count=1)

    assert not AlertMatcher("w", evidence={"count": True}).matches(raised)


def test_any_status_string_can_be_expected() -> None:
    """Statuses are compared as text, so new lifecycle states need no change."""
    raised = alert(status="flapping")

    assert AlertMatcher("w", {"status": "flapping"}).matches(raised)
    assert not AlertMatcher("w", {"status": "firing"}).matches(raised)


def test_at_is_the_start_of_a_firing_alert_and_the_end_of_a_resolved_one() -> None:
    """`at` names when each notification was sent."""
    assert AlertMatcher("w", at_us=6 * S).matches(alert("firing", at_s=6))
    assert AlertMatcher("w", at_us=10 * S).matches(alert("resolved", at_s=10))
    assert not AlertMatcher("w", at_us=0).matches(alert("resolved", at_s=10))


# -- the diff and the report ------------------------------------------------------


def test_the_diff_marks_missing_and_unexpected_alerts_in_aligned_columns() -> None:
    """Rows come in time order, `-` for missing, `+` for unexpected."""
    expected = [
        AlertMatcher("w", {"rule": "ERROR_BURST", "status": "firing"}, at_us=6 * S),
        AlertMatcher(
            "w",
            {"rule": "ERROR_BURST", "status": "resolved"},
            evidence={"count": 5},
            at_us=12 * S,
        ),
    ]
    raised = [alert("firing", at_s=6), alert("resolved", at_s=10, count=6)]

    lines = render_diff(compare(expected, raised), expected, base_us=0)

    assert [line[:1] for line in lines[1:4]] == [" ", "+", "-"]
    assert "10s" in lines[2] and "12s" in lines[3]
    assert lines[3].rstrip().endswith("count=5")
    columns = [line.index("ERROR_BURST") for line in lines[1:4]]
    assert columns == [lines[0].index("rule")] * 3
    assert lines[-1].startswith("(-: expected")


def test_junit_report_has_a_suite_per_file_and_a_failure_with_the_diff() -> None:
    """The XML holds counts, test names and the failure text."""
    results = [
        RuleTestResult("a.test.yaml", "one", True, "", (), 0.01),
        RuleTestResult(
            "a.test.yaml", "two", False, "1 unexpected alert", ("+ x",), 0.02
        ),
        RuleTestResult("b.test.yaml", "three", True, "", (), 0.0),
    ]

    root = ET.fromstring(ET.tostring(junit_tree(results).getroot()))

    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures")) == ("3", "1")
    suites = root.findall("testsuite")
    assert [(s.get("name"), s.get("tests"), s.get("failures")) for s in suites] == [
        ("a.test.yaml", "2", "1"),
        ("b.test.yaml", "1", "0"),
    ]
    failure = suites[0].findall("testcase")[1].find("failure")
    assert failure is not None
    assert failure.get("message") == "1 unexpected alert"
    assert failure.text == "1 unexpected alert\n+ x"
    assert suites[1].find("testcase/failure") is None
