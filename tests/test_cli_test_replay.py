"""End-to-end tests of ``engine test`` and ``engine replay``: the real
command, on files in a temporary folder and on the rule tests shipped in
rules/tests."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
RULE_TESTS = REPO / "rules" / "tests"
README_EXAMPLE = RULE_TESTS / "readme-example.test.yaml"
_SCRIPT = Path(sys.executable).parent / "engine"
ENGINE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "engine"]
TIMEOUT = 60.0
PROBLEM_LINE = re.compile(
    r"^(?:error: |\s+)(?P<file>[^:\s]+):(?P<line>\d+):(?P<col>\d+): "
    r"(?P<path>\S+): (?P<message>.*)$"
)

RULES = """\
version: 1
sources: [{type: generator}]
rules:
  - name: ERROR_BURST
    match: {event_type: ERROR}
    group_by: [source]
    window: {type: sliding, size: 10s}
    detector: {type: burst, threshold: 3}
"""

PASSING_AND_FAILING = """\
rule_files: [rules.yaml]
tests:
  - name: three errors fire
    events: [{event_type: ERROR, source: a, at: "1s, 2s, 3s"}]
    expect:
      - {rule: ERROR_BURST, at: 3s, labels: {source: a}, evidence: {count: 3}}
      - {rule: ERROR_BURST, status: resolved, at: 11s, labels: {source: a}}
  - name: the resolution comes one second too early for this test
    events: [{event_type: ERROR, source: a, at: "1s, 2s, 3s"}]
    expect:
      - {rule: ERROR_BURST, at: 3s, labels: {source: a}}
      - {rule: ERROR_BURST, status: resolved, at: 12s, labels: {source: a}}
"""


def run_engine(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ENGINE + args,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# -- the shipped rule tests ----------------------------------------------------


def test_every_shipped_rule_test_passes_through_the_real_command() -> None:
    """`engine test rules/tests` runs every test there and all pass."""
    files = sorted(RULE_TESTS.glob("*.test.yaml"))
    total = sum(
        len(yaml.safe_load(f.read_text(encoding="utf-8"))["tests"]) for f in files
    )

    done = run_engine(["test", "rules/tests"], REPO)

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert sum(line.startswith("ok    ") for line in lines) == total
    assert lines[-1] == f"{total} passed, 0 failed"
    assert done.stderr == ""


def test_every_rules_file_in_rules_is_named_by_a_test_file() -> None:
    """rules/*.yaml and rules/examples/*.yaml each have at least one test file."""
    rules_files = {
        p.resolve()
        for folder in (REPO / "rules", REPO / "rules" / "examples")
        for p in folder.glob("*.yaml")
    }
    named = {
        (test_file.parent / name).resolve()
        for test_file in RULE_TESTS.glob("*.test.yaml")
        for name in yaml.safe_load(test_file.read_text(encoding="utf-8"))["rule_files"]
    }

    assert rules_files, "no rules files found"
    assert sorted(map(str, rules_files - named)) == []


def test_the_readme_shows_the_example_test_file_as_it_is_shipped() -> None:
    """The README's rule-test example is rules/tests/readme-example.test.yaml,
    which the shipped tests run."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")

    assert README_EXAMPLE.read_text(encoding="utf-8") in readme


# -- engine test ------------------------------------------------------------------


def test_a_failing_test_exits_1_and_shows_a_diff(tmp_path: Path) -> None:
    """One ok line, one FAIL line with aligned - and + rows, and the totals."""
    write(tmp_path, "rules.yaml", RULES)
    write(tmp_path, "t.test.yaml", PASSING_AND_FAILING)

    done = run_engine(["test", "t.test.yaml"], tmp_path)

    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "ok    t.test.yaml: three errors fire"
    assert lines[1] == (
        "FAIL  t.test.yaml: the resolution comes one second too early for this test"
    )
    assert lines[2] == "      1 expected alert not raised; 1 unexpected alert"
    header, fired, raised, missing = lines[3:7]
    assert fired.split() == [
        "firing", "ERROR_BURST", "3s", "source=a", "count=3", "threshold=3",
        "window=10s",
    ]  # fmt: skip
    assert raised.split()[:4] == ["+", "resolved", "ERROR_BURST", "11s"]
    assert missing.split() == ["-", "resolved", "ERROR_BURST", "12s", "source=a", "*"]
    column = header.index(" at ") + 1
    assert fired.index(" 3s ") + 1 == column
    assert raised.index("11s") == missing.index("12s") == column
    assert lines[-1] == "1 passed, 1 failed"


def test_junit_report_is_xml_a_ci_system_can_read(tmp_path: Path) -> None:
    """--junit writes testsuites/testsuite/testcase with the failure's diff."""
    write(tmp_path, "rules.yaml", RULES)
    write(tmp_path, "t.test.yaml", PASSING_AND_FAILING)

    done = run_engine(["test", "t.test.yaml", "--junit", "report.xml"], tmp_path)

    assert done.returncode == 1
    root = ET.parse(tmp_path / "report.xml").getroot()
    assert (root.tag, root.get("tests"), root.get("failures")) == (
        "testsuites",
        "2",
        "1",
    )
    [suite] = root.findall("testsuite")
    assert suite.get("name") == "t.test.yaml"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "three errors fire",
        "the resolution comes one second too early for this test",
    ]
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure is not None and failure.text is not None
    assert failure.get("message") == "1 expected alert not raised; 1 unexpected alert"
    assert any(row.startswith("-  resolved") for row in failure.text.splitlines())


def test_all_tests_passing_exits_0_and_still_writes_junit(tmp_path: Path) -> None:
    """A passing run returns 0 and a report without failures."""
    write(tmp_path, "rules.yaml", RULES)
    passing = PASSING_AND_FAILING.split("  - name: the resolution")[0]
    write(tmp_path, "t.test.yaml", passing)

    done = run_engine(["test", ".", "--junit", "report.xml"], tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "1 passed, 0 failed"
    root = ET.parse(tmp_path / "report.xml").getroot()
    assert (root.get("tests"), root.get("failures")) == ("1", "0")


def test_an_invalid_test_file_exits_2_listing_every_problem(tmp_path: Path) -> None:
    """Every problem once, with file:line:col and path, and no traceback."""
    write(tmp_path, "rules.yaml", RULES)
    write(
        tmp_path,
        "t.test.yaml",
        "rule_files: [rules.yaml]\n"
        "tests:\n"
        "  - name: t\n"
        "    events: [{event_type: ERROR, sorce: a, at: 1s}]\n"
        "    expect: [{rule: ERROR_BURST, at: soon}]\n",
    )

    done = run_engine(["test", "t.test.yaml"], tmp_path)

    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == "error: 3 problems:"
    found = [PROBLEM_LINE.match(text) for text in lines[1:]]
    assert all(found), lines
    assert [(m["line"], m["path"]) for m in found if m] == [
        ("4", "tests[0].events[0]"),
        ("4", "tests[0].events[0].sorce"),
        ("5", "tests[0].expect[0].at"),
    ]


def test_a_broken_rules_file_under_test_exits_2_naming_it(tmp_path: Path) -> None:
    """Problems of the rules file are reported where they are in it."""
    write(tmp_path, "rules.yaml", RULES.replace("threshold: 3", "threshold: 0"))
    write(tmp_path, "t.test.yaml", PASSING_AND_FAILING)

    done = run_engine(["test", "t.test.yaml"], tmp_path)

    assert done.returncode == 2
    assert done.stderr.startswith(
        "error: rules.yaml:8:40: rules[0].detector.threshold: found 0"
    )


def test_a_folder_without_test_files_exits_2(tmp_path: Path) -> None:
    """Nothing to run is a usage error, not a pass."""
    done = run_engine(["test", "."], tmp_path)

    assert done.returncode == 2
    assert done.stderr.startswith("error: no test files found in .")


# -- engine replay ---------------------------------------------------------------


def recording(folder: Path) -> Path:
    """web-1 bursts at 00:00:02 and 01:00:02, web-2 at 00:30:02; 1 bad line."""
    starts = [(0, "web-1"), (1800, "web-2"), (3600, "web-1")]
    lines = [
        json.dumps({"timestamp": start + n, "event_type": "ERROR", "source": source})
        for start, source in starts
        for n in range(3)
    ]
    lines.insert(4, "{broken")
    return write(folder, "recorded.jsonl", "\n".join(lines) + "\n")


def test_replay_prints_what_would_have_fired(tmp_path: Path) -> None:
    """The text report counts alerts by rule, group and hour."""
    write(tmp_path, "rules.yaml", RULES)
    recording(tmp_path)

    done = run_engine(
        ["replay", "--rules", "rules.yaml", "--events", "recorded.jsonl"], tmp_path
    )

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "replay of recorded.jsonl with rules.yaml"
    assert lines[1] == (
        "events:     9 read, 0 late dropped, 0 late included, 1 bad (not_json 1)"
    )
    assert lines[2] == (
        "time span:  1970-01-01T00:00:00.000Z .. 1970-01-01T01:00:02.000Z (60.0 min)"
    )
    assert lines[3] == "alerts:     3 firing, 3 resolved"
    rule_row = lines[lines.index("alerts by rule:") + 2]
    assert rule_row.split() == ["ERROR_BURST", "3", "3", "2", "0"]
    groups = lines.index("busiest groups (all 2):")
    assert lines[groups + 2].split() == ["ERROR_BURST", "source=web-1", "2", "2"]
    assert lines[groups + 3].split() == ["ERROR_BURST", "source=web-2", "1", "1"]
    hours = lines.index("busiest hours of event time (all 2 with alerts):")
    assert [row.split() for row in lines[hours + 2 : hours + 4]] == [
        ["1970-01-01T00:00:00.000Z", "2"],
        ["1970-01-01T01:00:00.000Z", "1"],
    ]


def test_replay_json_is_one_object_with_the_same_counts(tmp_path: Path) -> None:
    """--json prints machine-readable totals."""
    write(tmp_path, "rules.yaml", RULES)
    recording(tmp_path)

    done = run_engine(
        ["replay", "--rules", "rules.yaml", "--events", "recorded.jsonl", "--json"],
        tmp_path,
    )

    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["events"]["read"] == 9
    assert data["events"]["bad"] == 1
    assert data["alerts"] == {"firing": 3, "resolved": 3}
    assert data["time_span"]["seconds"] == 3602.0
    assert [(g["group"]["source"], g["alerts"]["firing"]) for g in data["groups"]] == [
        ("web-1", 2),
        ("web-2", 1),
    ]
    assert data["alerts_per_hour"]["max"] == 2


def test_replay_of_a_missing_file_exits_2_without_a_traceback(tmp_path: Path) -> None:
    """A recording that cannot be read is a usage error."""
    write(tmp_path, "rules.yaml", RULES)

    done = run_engine(
        ["replay", "--rules", "rules.yaml", "--events", "absent.jsonl"], tmp_path
    )

    assert done.returncode == 2
    assert done.stderr.startswith("error: absent.jsonl: cannot read")
    assert "Traceback" not in done.stderr


# -- real data ------------------------------------------------------------------


def _oracle_rules(shared_data: Path, name: str, lateness: str) -> str:
    [spec] = [
        r
        for r in json.loads((shared_data / "expected" / "rules.json").read_text())
        if r["name"] == name
    ]
    return (
        "version: 1\n"
        "sources: [{type: generator}]\n"
        f"time: {{allowed_lateness: {lateness}}}\n"
        "rules:\n"
        f"  - name: {name}\n"
        f"    match: {{event_type: {json.dumps(spec['event_types'])}}}\n"
        f"    group_by: [{spec['group_by']}]\n"
        f"    window: {{type: sliding, size: {spec['window_seconds']}s}}\n"
        f"    detector: {{type: burst, threshold: {spec['threshold']}}}\n"
    )


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("name", "data", "lateness"),
    [
        ("hadoop_error_component_10s_5", "hadoop_2k.jsonl", "0s"),
        # The HPC sample is in random order, up to 988 days late.
        ("hpc_error_node_3600s_2", "hpc_2k.jsonl", "1000d"),
    ],
)
def test_replay_of_real_data_counts_the_expected_alerts_by_group_and_hour(
    tmp_path: Path, shared_data: Path, name: str, data: str, lateness: str
) -> None:
    """Alerts per group and per hour equal those of the reference alerts."""
    write(tmp_path, "rules.yaml", _oracle_rules(shared_data, name, lateness))
    expected = [
        json.loads(text)
        for text in (shared_data / "expected" / f"{name}.jsonl")
        .read_text()
        .splitlines()
        if text.strip()
    ]
    by_group = Counter(alert["group"] for alert in expected)
    by_hour = Counter(alert["timestamp"][:13] + ":00:00.000Z" for alert in expected)

    done = run_engine(
        [
            "replay",
            "--rules",
            "rules.yaml",
            "--events",
            str(shared_data / data),
            "--json",
        ],
        tmp_path,
    )

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["events"]["read"] == 2000
    assert report["events"]["late_dropped"] == 0
    assert report["alerts"]["firing"] == len(expected)
    groups = {g["group"]["source"]: g["alerts"]["firing"] for g in report["groups"]}
    assert groups == dict(by_group)
    hours = {h["hour"]: h["firing"] for h in report["alerts_per_hour"]["hours"]}
    assert hours == dict(by_hour)
