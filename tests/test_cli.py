"""End-to-end tests of the ``engine`` command: real processes, real files."""

from __future__ import annotations

import importlib.metadata
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DEMO_RULES = REPO / "rules" / "default.yaml"
_SCRIPT = Path(sys.executable).parent / "engine"
ENGINE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "engine"]
#: Longest wait for any one thing a process should print or do.
TIMEOUT = 15.0
BASE = datetime(2026, 1, 1, tzinfo=UTC)
ALERT_LINE = re.compile(
    r"^\[HIGH\] ERROR_BURST: (\d+) ERROR events from (web-\d+) in 10s window$"
)
PROBLEM_LINE = re.compile(
    r"^(?:error: |\s+)(?P<file>[^:\s]+):(?P<line>\d+):(?P<col>\d+): "
    r"(?P<path>\S+): (?P<message>.*)$"
)


def stamp(seconds: float) -> str:
    """ISO-8601 UTC with Z, ``seconds`` after 2026-01-01T00:00:00Z."""
    moment = BASE + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def line(seconds: float, event_type: str = "ERROR", source: str = "web-1") -> str:
    """One JSON event line, with its newline."""
    event = {"timestamp": stamp(seconds), "event_type": event_type, "source": source}
    return json.dumps(event) + "\n"


def run_engine(
    args: list[str], cwd: Path, stdin_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``engine`` to completion (or fail after TIMEOUT)."""
    return subprocess.run(
        ENGINE + args,
        cwd=cwd,
        input=stdin_text,
        stdin=subprocess.DEVNULL if stdin_text is None else None,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


class LiveEngine:
    """A running ``engine`` whose output is collected line by line as it comes."""

    def __init__(self, args: list[str], cwd: Path, *, with_stdin: bool) -> None:
        self.process = subprocess.Popen(
            ENGINE + args,
            cwd=cwd,
            stdin=subprocess.PIPE if with_stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.closed: set[str] = set()
        self.changed = threading.Condition()
        assert self.process.stdout is not None and self.process.stderr is not None
        self.readers = [
            threading.Thread(target=self._read, args=(name, stream), daemon=True)
            for name, stream in (
                ("stdout", self.process.stdout),
                ("stderr", self.process.stderr),
            )
        ]
        for reader in self.readers:
            reader.start()

    def _read(self, name: str, stream: Any) -> None:
        for text in stream:
            with self.changed:
                self.lines[name].append(text.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.closed.add(name)
            self.changed.notify_all()

    def wait_for(self, name: str, pattern: str | re.Pattern[str]) -> re.Match[str]:
        """The first line of ``name`` matching ``pattern``, waiting up to TIMEOUT."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + TIMEOUT
        with self.changed:
            while True:
                for text in self.lines[name]:
                    found = regex.search(text)
                    if found:
                        return found
                left = deadline - time.monotonic()
                if left <= 0 or name in self.closed:
                    raise AssertionError(
                        f"no line of {name} matches {regex.pattern!r}; got:\n"
                        + "\n".join(self.lines["stdout"] + self.lines["stderr"])
                    )
                self.changed.wait(left)

    def write(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text)
        self.process.stdin.flush()

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def finish(self) -> tuple[int, str, str]:
        """Wait for the exit; return the code and all of stdout and stderr."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        code = self.process.wait(TIMEOUT)
        for reader in self.readers:
            reader.join(TIMEOUT)
        return code, "\n".join(self.lines["stdout"]), "\n".join(self.lines["stderr"])


@pytest.fixture
def start_engine(tmp_path: Path) -> Iterator[Callable[..., LiveEngine]]:
    """Starts ``engine`` processes in tmp_path and kills any left running."""
    started: list[LiveEngine] = []

    def start(args: list[str], *, with_stdin: bool = False) -> LiveEngine:
        live = LiveEngine(args, tmp_path, with_stdin=with_stdin)
        started.append(live)
        return live

    yield start
    for live in started:
        if live.process.poll() is None:
            live.process.kill()
            live.process.wait(TIMEOUT)


def write_rules(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


ALERTS_BY_RULE = re.compile(r"(\S+) (\d+) firing / (\d+) resolved")


def parse_summary(stderr: str) -> dict[str, Any]:
    """The run summary printed at exit, as numbers."""
    lines = stderr.splitlines()
    starts = [i for i, text in enumerate(lines) if text.startswith("summary: ")]
    assert len(starts) == 1, f"expected one summary in:\n{stderr}"
    first = re.match(r"summary: (\d+) events in .*, (\d+) bad$", lines[starts[0]])
    assert first is not None, lines[starts[0]]
    summary: dict[str, Any] = {"events": int(first[1]), "bad": int(first[2])}
    for text in lines[starts[0] + 1 :]:
        entry = re.match(r"^  ([a-z ()]+):\s+(.*)$", text)
        if entry is None:
            break
        pairs: Counter[str] = Counter()
        body = re.sub(r" \(\+\d+ more\)$", "", entry[2])
        if entry[1] == "alerts by rule":
            for rule, fired, resolved in ALERTS_BY_RULE.findall(body):
                pairs[f"{rule} firing"] = int(fired)
                pairs[f"{rule} resolved"] = int(resolved)
        elif body != "none":
            for pair in body.split(", "):
                name, count = pair.rsplit(" ", 1)
                pairs[name] = int(count)
        summary[entry[1]] = pairs
    return summary


# -- running -------------------------------------------------------------------


def test_demo_prints_burst_alert_and_counters_then_sigint_prints_summary(
    start_engine: Callable[..., LiveEngine],
) -> None:
    """The seed demo shows a burst alert and counters; Ctrl-C ends it cleanly."""
    live = start_engine(["--rules", str(DEMO_RULES)])
    alert = live.wait_for("stdout", ALERT_LINE)
    live.wait_for("stderr", r"^counters: last \d+s: [\d.]+ events/s \| by type: ")
    live.signal(signal.SIGINT)
    code, stdout, stderr = live.finish()

    assert code == 0, stderr
    assert int(alert[1]) >= 7
    summary = parse_summary(stderr)
    assert summary["events"] > 0
    assert sum(summary["events by type"].values()) == summary["events"]
    assert set(summary["events by type"]) <= {"INFO", "WARN", "ERROR"}
    assert summary["events by source"]
    fired = [text for text in stdout.splitlines() if ALERT_LINE.match(text)]
    assert summary["alerts by rule"]["ERROR_BURST firing"] == len(fired)
    assert "Traceback" not in stderr


GENERATOR_RULES = """\
version: 1
sources:
  - type: generator
    rate: 200
    seed: 3
    event_types: {INFO: 1}
    bursts:
      - {every: 1h, offset: 0s, count: 8, within: 100ms, source: web-1}
rules:
  - name: ERROR_BURST
    severity: high
    match: {event_type: ERROR}
    group_by: [source]
    window: {type: sliding, size: 1m}
    detector: {type: burst, threshold: 5}
counters:
  interval: 100ms
"""


def test_sigterm_prints_summary_and_exits_0(
    tmp_path: Path, start_engine: Callable[..., LiveEngine]
) -> None:
    """SIGTERM stops a run like Ctrl-C: summary on stderr, exit code 0."""
    rules = write_rules(tmp_path, GENERATOR_RULES)
    live = start_engine(["--rules", str(rules)])
    live.wait_for("stderr", r"^counters: ")
    live.signal(signal.SIGTERM)
    code, _, stderr = live.finish()

    assert code == 0, stderr
    summary = parse_summary(stderr)
    assert summary["events"] > 0
    assert sum(summary["events by type"].values()) == summary["events"]
    assert "received SIGTERM" in stderr


def test_stop_does_not_resolve_alerts_still_firing(
    tmp_path: Path, start_engine: Callable[..., LiveEngine]
) -> None:
    """Stopping sends no resolution for a burst whose window has not expired."""
    events = "".join(line(s) for s in range(5)) + line(5, "INFO")
    (tmp_path / "events.jsonl").write_text(events, encoding="utf-8")
    # A followed file never ends; the quick polls let its reader notice the
    # stop at once, as most live sources do.
    rules = write_rules(
        tmp_path,
        """\
version: 1
sources:
  - {type: jsonl, path: events.jsonl, follow: true, poll_interval: 1ms}
rules:
  - name: ERROR_BURST
    severity: high
    match: {event_type: ERROR}
    group_by: [source]
    window: {type: sliding, size: 1m}
    detector: {type: burst, threshold: 5}
""",
    )
    live = start_engine(["--rules", str(rules)])
    live.wait_for("stdout", r"^\[HIGH\] ERROR_BURST: ")
    live.signal(signal.SIGINT)
    code, stdout, stderr = live.finish()

    assert code == 0, stderr
    # The 1m window of the burst cannot empty: no event came after 5s.
    assert "[RESOLVED]" not in stdout
    assert parse_summary(stderr)["alerts by rule"] == Counter({"ERROR_BURST firing": 1})


def test_second_sigint_during_drain_exits_at_once_without_summary(
    tmp_path: Path, start_engine: Callable[..., LiveEngine]
) -> None:
    """A second Ctrl-C while the first stop drains leaves at once, non-zero."""
    (tmp_path / "events.jsonl").write_text(line(0.0), encoding="utf-8")
    # The followed file never ends and its reader sleeps a minute between
    # polls, so the first stop waits out the whole drain period.
    rules = write_rules(
        tmp_path,
        """\
version: 1
sources:
  - {type: jsonl, path: events.jsonl, follow: true, poll_interval: 1m}
rules:
  - name: R
    window: {type: sliding, size: 10s}
    detector: {type: burst, threshold: 3}
counters:
  interval: 100ms
""",
    )
    live = start_engine(["--rules", str(rules)])
    live.wait_for("stderr", r"^counters: ")
    live.signal(signal.SIGINT)
    # Logged once the run loop has seen the first stop and started draining.
    live.wait_for("stderr", r"stopping: draining")
    live.signal(signal.SIGINT)
    code, _, stderr = live.finish()

    assert code != 0, stderr
    assert "summary:" not in stderr


STDIN_RULES = """\
version: 1
sources:
  - {type: jsonl, path: "-"}
rules:
  - name: ERROR_BURST
    severity: high
    match: {event_type: ERROR}
    group_by: [source]
    labels: {team: ops}
    window: {type: sliding, size: 10s}
    detector: {type: burst, threshold: 3}
    summary: "{count} {event_type} events from {source} in {window} window"
sinks:
  - type: console
  - {type: jsonl, path: out/alerts.jsonl}
"""


def test_sigint_while_stdin_stays_open_exits_0_with_summary(
    tmp_path: Path, start_engine: Callable[..., LiveEngine]
) -> None:
    """Ctrl-C stops a stdin source whose writer is still connected, cleanly."""
    rules = write_rules(tmp_path, STDIN_RULES + "counters:\n  interval: 100ms\n")
    live = start_engine(["--rules", str(rules)], with_stdin=True)
    live.write(line(0.0) + line(1.0))
    live.wait_for("stderr", r"^counters: last \d+s: [1-9]")
    live.signal(signal.SIGINT)
    live.wait_for("stderr", r"received SIGINT")
    code = live.process.wait(TIMEOUT)  # stdin stays open until the exit
    _, _, stderr = live.finish()

    assert code == 0, stderr
    assert parse_summary(stderr)["events"] == 2
    assert "Fatal Python error" not in stderr


STDIN_EVENTS = (
    line(0, source="web-1")
    + line(1, source="web-1")
    + line(2, source="web-1")
    + line(3, "INFO", "web-1")
    + line(5, source="web-2")
    + line(30, source="web-2")
    + line(30.5, source="web-2")
    + line(31, source="web-2")
)
#: Worked out by hand: three ERRORs within 10s fire at the third; the group
#: resolves when its first event leaves the window, 10s after it.
STDIN_ALERTS = [
    "[HIGH] ERROR_BURST: 3 ERROR events from web-1 in 10s window",
    "[RESOLVED] ERROR_BURST: source=web-1 after 8s",
    "[HIGH] ERROR_BURST: 3 ERROR events from web-2 in 10s window",
    "[RESOLVED] ERROR_BURST: source=web-2 after 9s",
]


def test_stdin_source_prints_alerts_and_exits_0_at_end_of_input(
    tmp_path: Path,
) -> None:
    """Events piped to a ``path: "-"`` source give the expected alert lines."""
    rules = write_rules(tmp_path, STDIN_RULES)
    result = run_engine(["--rules", str(rules)], tmp_path, STDIN_EVENTS)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == STDIN_ALERTS
    summary = parse_summary(result.stderr)
    assert summary["events"] == 8
    assert summary["alerts by rule"] == Counter(
        {"ERROR_BURST firing": 2, "ERROR_BURST resolved": 2}
    )


def test_jsonl_sink_file_holds_the_alert_objects(tmp_path: Path) -> None:
    """The jsonl sink writes every edge with the fields DESIGN.md lists."""
    rules = write_rules(tmp_path, STDIN_RULES)
    result = run_engine(["--rules", str(rules)], tmp_path, STDIN_EVENTS)
    assert result.returncode == 0, result.stderr

    written = (tmp_path / "out" / "alerts.jsonl").read_text("utf-8").splitlines()
    alerts = [json.loads(text) for text in written]
    for alert in alerts:
        del alert["incident_id"], alert["description"]
    evidence_fired = {"count": 3, "threshold": 3, "window": "10s"}
    evidence_resolved = {"count": 2, "threshold": 3, "window": "10s"}
    common = {"rule": "ERROR_BURST", "severity": "high"}
    assert alerts == [
        {
            **common,
            "status": "firing",
            "labels": {"source": "web-1", "team": "ops"},
            "starts_at": "2026-01-01T00:00:02.000Z",
            "ends_at": None,
            "first_seen": "2026-01-01T00:00:02.000Z",
            "last_seen": "2026-01-01T00:00:02.000Z",
            "sequence": 1,
            "suppressed": 0,
            "summary": "3 ERROR events from web-1 in 10s window",
            "annotations": {},
            "evidence": evidence_fired,
        },
        {
            **common,
            "status": "resolved",
            "labels": {"source": "web-1", "team": "ops"},
            "starts_at": "2026-01-01T00:00:02.000Z",
            "ends_at": "2026-01-01T00:00:10.000Z",
            "first_seen": "2026-01-01T00:00:02.000Z",
            "last_seen": "2026-01-01T00:00:10.000Z",
            "sequence": 2,
            "suppressed": 0,
            "summary": "2 ERROR events from web-1 in 10s window",
            "annotations": {},
            "evidence": evidence_resolved,
        },
        {
            **common,
            "status": "firing",
            "labels": {"source": "web-2", "team": "ops"},
            "starts_at": "2026-01-01T00:00:31.000Z",
            "ends_at": None,
            "first_seen": "2026-01-01T00:00:31.000Z",
            "last_seen": "2026-01-01T00:00:31.000Z",
            "sequence": 1,
            "suppressed": 0,
            "summary": "3 ERROR events from web-2 in 10s window",
            "annotations": {},
            "evidence": evidence_fired,
        },
        {
            **common,
            "status": "resolved",
            "labels": {"source": "web-2", "team": "ops"},
            "starts_at": "2026-01-01T00:00:31.000Z",
            "ends_at": "2026-01-01T00:00:40.000Z",
            "first_seen": "2026-01-01T00:00:31.000Z",
            "last_seen": "2026-01-01T00:00:40.000Z",
            "sequence": 2,
            "suppressed": 0,
            "summary": "2 ERROR events from web-2 in 10s window",
            "annotations": {},
            "evidence": evidence_resolved,
        },
    ]


def test_jsonl_sink_incident_id_is_shared_by_an_incident_and_new_per_edge(
    tmp_path: Path,
) -> None:
    """Firing and resolved of one incident share an id; incidents differ."""
    rules = write_rules(tmp_path, STDIN_RULES)
    result = run_engine(["--rules", str(rules)], tmp_path, STDIN_EVENTS)
    assert result.returncode == 0, result.stderr

    written = (tmp_path / "out" / "alerts.jsonl").read_text("utf-8").splitlines()
    ids = [json.loads(text)["incident_id"] for text in written]
    assert len(ids) == 4
    assert ids[0] == ids[1]
    assert ids[2] == ids[3]
    assert ids[0] != ids[2]
    assert all(isinstance(i, str) and i for i in ids)


def test_run_subcommand_and_bare_rules_option_give_the_same_run(
    tmp_path: Path,
) -> None:
    """``engine run --rules`` and ``engine --rules`` are the same command."""
    rules = write_rules(tmp_path, STDIN_RULES.replace("out/alerts.jsonl", "-"))
    bare = run_engine(["--rules", str(rules)], tmp_path, STDIN_EVENTS)
    explicit = run_engine(["run", "--rules", str(rules)], tmp_path, STDIN_EVENTS)

    assert bare.returncode == explicit.returncode == 0
    # Each sink delivers from its own thread: the two sinks' lines may
    # interleave differently, each sink's own lines keep their order.
    assert sorted(bare.stdout.splitlines()) == sorted(explicit.stdout.splitlines())
    assert len(bare.stdout.splitlines()) == 8  # console and jsonl, 4 edges each


BAD_LINES = [
    "this is not json",
    "[1, 2]",
    json.dumps({"timestamp": stamp(1), "event_type": "ERROR"}),
    json.dumps(
        {"timestamp": "2026-01-01T00:00:01", "event_type": "ERROR", "source": "a"}
    ),
    json.dumps({"timestamp": stamp(1), "event_type": "ERROR", "source": 5}),
]
BAD_REASONS = ["not_json", "not_object", "missing_field", "bad_timestamp", "wrong_type"]
BAD_INPUT_RULES = """\
version: 1
sources:
  - {type: jsonl, path: events.jsonl}
rules:
  - name: ERROR_BURST
    severity: high
    match: {event_type: ERROR}
    group_by: [source]
    window: {type: sliding, size: 10s}
    detector: {type: burst, threshold: 3}
    summary: "{count} {event_type} events from {source} in {window} window"
dead_letter: {path: dead/letters.jsonl}
"""


def test_bad_lines_are_counted_dead_lettered_and_warned_about(
    tmp_path: Path,
) -> None:
    """Bad input never stops a run: counted by reason, kept, warned, exit 0."""
    (tmp_path / "dead").mkdir()
    good = [line(0), line(1), line(2)]
    mixed = [good[0], *(text + "\n" for text in BAD_LINES), *good[1:]]
    (tmp_path / "events.jsonl").write_text("".join(mixed), encoding="utf-8")
    rules = write_rules(tmp_path, BAD_INPUT_RULES)
    result = run_engine(["--rules", str(rules)], tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        "[HIGH] ERROR_BURST: 3 ERROR events from web-1 in 10s window"
    )
    summary = parse_summary(result.stderr)
    assert summary["events"] == 3
    assert summary["bad"] == 5
    assert summary["bad events"] == Counter(dict.fromkeys(BAD_REASONS, 1))

    letters = (tmp_path / "dead" / "letters.jsonl").read_text("utf-8").splitlines()
    kept = sorted((r["reason"], r["raw"]) for r in map(json.loads, letters))
    assert kept == sorted(zip(BAD_REASONS, BAD_LINES, strict=True))

    warnings = [t for t in result.stderr.splitlines() if t.startswith("WARNING")]
    assert len(warnings) == 1
    for reason in BAD_REASONS:
        assert f"bad ({reason}) 1" in warnings[0]
    assert "letters.jsonl" in warnings[0]
    assert "Traceback" not in result.stderr


def test_bad_line_warnings_are_rate_limited_and_lose_no_count(
    tmp_path: Path, start_engine: Callable[..., LiveEngine]
) -> None:
    """After one warning, later bad lines wait and are reported together."""
    rules = write_rules(tmp_path, STDIN_RULES.replace("out/alerts.jsonl", "a.jsonl"))
    live = start_engine(["--rules", str(rules)], with_stdin=True)
    for k in (1, 2, 3):
        source = f"web-{k}"
        start = 100.0 * k
        live.write(
            "not json\n" * k
            + "".join(line(start + i, source=source) for i in range(3))
            + line(start + 3, "INFO", source)
        )
        # The alert shows this batch was processed before the next is sent.
        live.wait_for("stdout", rf"^\[HIGH\] ERROR_BURST: .* from {source} ")
        if k == 1:
            live.wait_for("stderr", r"^WARNING ")
    code, _, stderr = live.finish()

    assert code == 0, stderr
    warnings = [t for t in stderr.splitlines() if t.startswith("WARNING")]
    assert len(warnings) == 2, stderr
    assert "bad (not_json) 1" in warnings[0]
    assert "bad (not_json) 5" in warnings[1]
    assert parse_summary(stderr)["bad events"] == Counter({"not_json": 6})


QUIET_RULES = """\
version: 1
sources:
  - {type: generator, rate: 100, count: 100, seed: 1}
time:
  allowed_lateness: 2s
rules:
  - name: R
    window: {type: sliding, size: 10s}
    detector: {type: burst, threshold: 1000}
sinks:
  - type: console
  - {type: jsonl, path: alerts.jsonl}
counters:
  interval: 100ms
"""


def test_banner_names_rules_sources_sinks_and_time_settings(tmp_path: Path) -> None:
    """The start-up line says what runs: file, sources, sinks, time settings."""
    rules = write_rules(tmp_path, QUIET_RULES)
    result = run_engine(["--rules", str(rules)], tmp_path)

    assert result.returncode == 0, result.stderr
    banners = [t for t in result.stderr.splitlines() if " starting: " in t]
    assert len(banners) == 1
    banner = banners[0]
    assert banner.startswith("INFO ")
    assert str(rules) in banner
    assert "sources [generator]" in banner
    assert "sinks [console, jsonl]" in banner
    assert "time event" in banner
    assert "allowed_lateness 2s" in banner
    assert "late drop" in banner
    assert "counters: " in result.stderr


def test_quiet_suppresses_counters_and_banner(tmp_path: Path) -> None:
    """``-q`` leaves only warnings, errors and the summary on stderr."""
    rules = write_rules(tmp_path, QUIET_RULES)
    result = run_engine(["-q", "--rules", str(rules)], tmp_path)

    assert result.returncode == 0, result.stderr
    assert "counters:" not in result.stderr
    assert "starting" not in result.stderr
    assert not [t for t in result.stderr.splitlines() if t.startswith("INFO")]
    assert parse_summary(result.stderr)["events"] == 100


# -- the other commands --------------------------------------------------------


def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    """``engine --version`` prints the distribution's version and exits 0."""
    result = run_engine(["--version"], tmp_path)

    assert result.returncode == 0
    expected = importlib.metadata.version("burst-engine")
    assert result.stdout.strip() == f"engine {expected}"


def test_no_arguments_exits_2_with_usage(tmp_path: Path) -> None:
    """``engine`` alone is a usage error: usage text, exit code 2."""
    result = run_engine([], tmp_path)

    assert result.returncode == 2
    assert "usage: engine" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


GOOD_RULES = """\
version: 1
sources:
  - {type: jsonl, path: events.jsonl}
rules:
  - name: ONE
    window: {type: sliding, size: 10s}
    detector: {type: burst, threshold: 3}
"""
BAD_RULES_1 = """\
version: 1
sources:
  - type: generator
    rate: -1
rules:
  - name: A
    window: {type: sliding, size: 10s}
    detector: {type: burst, treshold: 3}
"""
BAD_RULES_2 = """\
version: 1
sources:
  - type: jsonl
rules:
  - name: B
    window: {type: sliding, size: ten}
    detector: {type: burst, threshold: 0}
"""


def problems_in(stderr: str) -> dict[tuple[str, int, int, str], str]:
    """``(file, line, column, path) -> message`` of every located problem."""
    problems = {}
    for text in stderr.splitlines():
        found = PROBLEM_LINE.match(text)
        if found:
            key = (found["file"], int(found["line"]), int(found["col"]), found["path"])
            problems[key] = found["message"]
    return problems


def test_validate_good_files_prints_ok_and_exits_0(tmp_path: Path) -> None:
    """Valid rules files are each reported ok."""
    write_rules(tmp_path, GOOD_RULES, "good.yaml")
    result = run_engine(["validate", "good.yaml", str(DEMO_RULES)], tmp_path)

    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert len(out) == 2
    assert out[0].startswith("good.yaml: ok")
    assert out[1].startswith(f"{DEMO_RULES}: ok")
    assert result.stderr == ""


def test_validate_reports_every_problem_of_every_file(tmp_path: Path) -> None:
    """Each problem names file:line:col, document path, found and expected."""
    write_rules(tmp_path, BAD_RULES_1, "bad1.yaml")
    write_rules(tmp_path, BAD_RULES_2, "bad2.yaml")
    write_rules(tmp_path, GOOD_RULES, "good.yaml")
    result = run_engine(["validate", "bad1.yaml", "good.yaml", "bad2.yaml"], tmp_path)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    assert result.stdout.startswith("good.yaml: ok")
    problems = problems_in(result.stderr)
    # Positions counted by hand in the texts above (1-based).
    assert set(problems) == {
        ("bad1.yaml", 4, 11, "sources[0].rate"),
        ("bad1.yaml", 8, 15, "rules[0].detector"),
        ("bad1.yaml", 8, 29, "rules[0].detector.treshold"),
        ("bad2.yaml", 3, 5, "sources[0]"),
        ("bad2.yaml", 6, 35, "rules[0].window.size"),
        ("bad2.yaml", 7, 40, "rules[0].detector.threshold"),
    }
    rate = problems[("bad1.yaml", 4, 11, "sources[0].rate")]
    assert "found -1" in rate
    assert "expected" in rate
    assert "0" in rate.split("expected", 1)[1]
    size = problems[("bad2.yaml", 6, 35, "rules[0].window.size")]
    assert '"ten"' in size
    assert "expected a duration" in size
    threshold = problems[("bad2.yaml", 7, 40, "rules[0].detector.threshold")]
    assert "found 0" in threshold
    assert "1" in threshold.split("expected", 1)[1]
    assert "threshold" in problems[("bad1.yaml", 8, 15, "rules[0].detector")]


def test_validate_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    """A misspelt key is named, with a 'did you mean' hint."""
    write_rules(tmp_path, BAD_RULES_1, "bad1.yaml")
    result = run_engine(["validate", "bad1.yaml"], tmp_path)

    assert result.returncode == 2
    message = problems_in(result.stderr)[
        ("bad1.yaml", 8, 29, "rules[0].detector.treshold")
    ]
    assert "unknown key 'treshold'" in message
    assert "did you mean 'threshold'?" in message


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("syntax.yaml", "version: 1\nsources: [\n", "error: syntax.yaml:3:1: "),
        ("missing.yaml", None, "error: missing.yaml: "),
    ],
    ids=["yaml-syntax-error", "missing-file"],
)
def test_validate_unreadable_file_is_one_error_line_and_exit_2(
    tmp_path: Path, name: str, text: str | None, expected: str
) -> None:
    """A YAML syntax error or a missing file is a plain ``error:``, exit 2."""
    if text is not None:
        write_rules(tmp_path, text, name)
    result = run_engine(["validate", name], tmp_path)

    assert result.returncode == 2
    assert result.stderr.startswith(expected)
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_validate_lists_syntax_errors_and_missing_files_with_the_rest(
    tmp_path: Path,
) -> None:
    """Unreadable files are reported alongside the problems of other files."""
    write_rules(tmp_path, "version: 1\nsources: [\n", "syntax.yaml")
    write_rules(tmp_path, BAD_RULES_2, "bad2.yaml")
    result = run_engine(
        ["validate", "syntax.yaml", "missing.yaml", "bad2.yaml"], tmp_path
    )

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert re.search(r"^\s+syntax\.yaml:3:1: invalid YAML", result.stderr, re.M)
    assert re.search(r"^\s+missing\.yaml: ", result.stderr, re.M)
    assert len(problems_in(result.stderr)) == 3  # the problems of bad2.yaml


def test_run_with_bad_rules_prints_errors_and_exits_2(tmp_path: Path) -> None:
    """``engine --rules`` on a bad file reports like validate and runs nothing."""
    rules = write_rules(tmp_path, BAD_RULES_2, "bad2.yaml")
    result = run_engine(["--rules", rules.name], tmp_path)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(problems_in(result.stderr)) == 3
    assert "summary:" not in result.stderr


def test_schema_is_a_draft_2020_12_schema_that_accepts_the_demo(tmp_path: Path) -> None:
    """``engine schema`` prints a valid schema the demo rules file satisfies."""
    result = run_engine(["schema"], tmp_path)

    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    demo = yaml.safe_load(DEMO_RULES.read_text("utf-8"))
    assert list(validator.iter_errors(demo)) == []
    demo["sources"][0]["rate"] = -1  # the generator's own option schema applies
    assert list(validator.iter_errors(demo)) != []


def test_schema_names_every_built_in_component_type(tmp_path: Path) -> None:
    """The printed schema offers each built-in type under its kind."""
    result = run_engine(["schema"], tmp_path)
    assert result.returncode == 0, result.stderr

    defs = json.loads(result.stdout)["$defs"]
    kinds = ("source", "window", "detector", "sink")
    types = {kind: set(defs[kind]["properties"]["type"]["enum"]) for kind in kinds}
    assert {"generator", "jsonl"} <= types["source"]
    assert "sliding" in types["window"]
    assert "burst" in types["detector"]
    assert {"console", "jsonl"} <= types["sink"]


def test_plugins_lists_the_built_ins_with_distribution_and_version(
    tmp_path: Path,
) -> None:
    """``engine plugins`` shows each built-in component and where it comes from."""
    result = run_engine(["plugins"], tmp_path)

    assert result.returncode == 0, result.stderr
    origin = f"[burst-engine {importlib.metadata.version('burst-engine')}]"
    provided = set()
    for text in result.stdout.splitlines():
        if origin in text:
            for part in text.split(origin, 1)[1].strip().split("; "):
                kind, names = part.split(": ", 1)
                provided |= {(kind, name) for name in names.split(", ")}
    assert provided >= {
        ("source", "generator"),
        ("source", "jsonl"),
        ("window", "sliding"),
        ("detector", "burst"),
        ("sink", "console"),
        ("sink", "jsonl"),
    }
