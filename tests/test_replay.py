"""``engine replay`` as a library: what a rules file would have raised over a
recorded file, counted by rule, group and hour of event time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.errors import UsageError
from engine.replay import event_time_span, render_text, replay, report_dict

BASE = datetime(2026, 1, 1, tzinfo=UTC)

RULES = """\
version: 1
sources: [{type: kafka, brokers: "b:9092"}]
time: {allowed_lateness: 0s}
rules:
  - name: ERROR_BURST
    match: {event_type: ERROR}
    group_by: [source]
    window: {type: sliding, size: 10s}
    detector: {type: burst, threshold: 3}
  - name: NEVER
    match: {event_type: NEVER}
    window: {type: sliding, size: 10s}
    detector: {type: burst, threshold: 1}
sinks: [{type: jsonl, path: alerts.jsonl}]
"""


def line(seconds: float, event_type: str = "ERROR", source: str = "web-1") -> str:
    stamp = (BASE + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    event = {"timestamp": stamp, "event_type": event_type, "source": source}
    return json.dumps(event) + "\n"


def three(start: float, source: str) -> list[str]:
    """Three errors a second apart: a burst at start + 2s, over 8s later."""
    return [line(start + n, source=source) for n in range(3)]


def recording(folder: Path) -> Path:
    """Five bursts over three hours, one late error, one broken line.

    Bursts fire at 00:00:02 (web-1), 01:00:02 (web-1), 01:01:42 (web-2),
    02:01:42 (web-2) and 02:03:22 (web-1); the last event is at 03:00:00.
    """
    lines = [
        *three(0, "web-1"),
        *three(3600, "web-1"),
        line(5, source="web-3"),  # an hour behind the newest event: late
        *three(3700, "web-2"),
        "this is not json\n",
        *three(7300, "web-2"),
        *three(7400, "web-1"),
        line(10800, event_type="INFO"),
    ]
    path = folder / "recorded.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    return path


def test_replay_counts_alerts_by_rule_group_and_hour(
    tmp_path: Path, rules: Path
) -> None:
    """Five bursts: three from web-1, two from web-2, in three hours."""
    data = report_dict(replay(rules, recording(tmp_path)))

    assert data["alerts"] == {"firing": 5, "resolved": 5}
    assert data["rules"] == [
        {
            "rule": "ERROR_BURST",
            "alerts": {"firing": 5, "resolved": 5},
            "groups": 2,
            "suppressed": 0,
        },
        {
            "rule": "NEVER",
            "alerts": {"firing": 0, "resolved": 0},
            "groups": 0,
            "suppressed": 0,
        },
    ]
    assert [(g["group"], g["alerts"]["firing"]) for g in data["groups"]] == [
        ({"source": "web-1"}, 3),
        ({"source": "web-2"}, 2),
    ]
    assert data["alerts_per_hour"]["hours"] == [
        {"hour": "2026-01-01T00:00:00.000Z", "firing": 1},
        {"hour": "2026-01-01T01:00:00.000Z", "firing": 2},
        {"hour": "2026-01-01T02:00:00.000Z", "firing": 2},
    ]
    assert data["alerts_per_hour"]["max"] == 2
    assert data["alerts_per_hour"]["mean"] == pytest.approx(5 / 3)


def test_replay_reports_the_span_events_late_and_bad(
    tmp_path: Path, rules: Path
) -> None:
    """17 events read (the late one included), 1 late, 1 bad, 3 hours."""
    data = report_dict(replay(rules, recording(tmp_path)))

    assert data["events"] == {
        "read": 17,
        "late_dropped": 1,
        "late_included": 0,
        "bad": 1,
        "bad_by_reason": {"not_json": 1},
    }
    assert data["time_span"] == {
        "first": "2026-01-01T00:00:00.000Z",
        "last": "2026-01-01T03:00:00.000Z",
        "seconds": 10800.0,
    }


def test_replay_leaves_the_rules_file_sinks_alone_unless_kept(
    tmp_path: Path, rules: Path
) -> None:
    """The jsonl sink of the rules file is written only with keep_sinks."""
    events = recording(tmp_path)
    replay(rules, events)
    assert not (tmp_path / "alerts.jsonl").exists()

    replay(rules, events, keep_sinks=True)

    written = (tmp_path / "alerts.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(text)["status"] for text in written].count("firing") == 5
    assert len(written) == 10


def test_replay_of_processing_time_rules_uses_event_time_and_says_so(
    tmp_path: Path, rules: Path
) -> None:
    """A recording has no arrival times: the events' own times are used."""
    rules.write_text(
        RULES.replace("allowed_lateness: 0s", "mode: processing"), encoding="utf-8"
    )

    data = report_dict(replay(rules, recording(tmp_path)))

    assert data["alerts"]["firing"] == 5
    assert len(data["notes"]) == 1
    assert "processing" in data["notes"][0]


def test_the_time_span_skips_lines_that_are_not_events(tmp_path: Path) -> None:
    """Bad lines and blank lines do not move the span; no events give None."""
    path = tmp_path / "e.jsonl"
    path.write_text(
        line(30) + "\n" + '{"timestamp": "soon"}\n' + line(10), encoding="utf-8"
    )
    first, last = event_time_span(path)
    assert (first, last) == (
        int((BASE + timedelta(seconds=10)).timestamp()) * 1_000_000,
        int((BASE + timedelta(seconds=30)).timestamp()) * 1_000_000,
    )

    path.write_text("nothing here\n", encoding="utf-8")
    assert event_time_span(path) == (None, None)


def test_a_missing_recording_or_standard_input_is_a_usage_error(
    tmp_path: Path, rules: Path
) -> None:
    """Replay needs a file it can read twice."""
    with pytest.raises(UsageError, match="cannot read"):
        replay(rules, tmp_path / "absent.jsonl")
    with pytest.raises(UsageError, match="standard input"):
        replay(rules, Path("-"))


def test_the_text_report_aligns_tables_and_shows_the_busiest_first(
    tmp_path: Path, rules: Path
) -> None:
    """Totals, a row per rule, and at most `top` groups and hours."""
    text = render_text(report_dict(replay(rules, recording(tmp_path))), top=1)
    lines = text.splitlines()

    assert "alerts:     5 firing, 5 resolved" in lines
    assert "per hour:   1.7 firing per hour of event time on average, " in text
    assert "busiest groups (top 1 of 2):" in lines
    groups = lines.index("busiest groups (top 1 of 2):")
    assert lines[groups + 2].split() == ["ERROR_BURST", "source=web-1", "3", "3"]
    assert lines[groups + 3] == ""
    assert "busiest hours of event time (top 1 of 3 with alerts):" in lines
    hours = lines.index("busiest hours of event time (top 1 of 3 with alerts):")
    assert lines[hours + 2].split() == ["2026-01-01T01:00:00.000Z", "2"]
    rule_rows = lines[lines.index("alerts by rule:") + 1 :][:3]
    assert rule_rows[1].split() == ["ERROR_BURST", "5", "5", "2", "0"]
    assert rule_rows[2].split() == ["NEVER", "0", "0", "0", "0"]
    widths = {len(row) for row in rule_rows}
    assert len(widths) == 1, rule_rows


def test_replay_neither_reads_nor_writes_the_rules_file_state(tmp_path: Path) -> None:
    """A replay of a rules file with ``state:`` leaves the live snapshot alone."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES + "state: {path: live-state.json}\n", encoding="utf-8")

    data = report_dict(replay(rules, recording(tmp_path)))

    assert data["alerts"] == {"firing": 5, "resolved": 5}
    assert not (tmp_path / "live-state.json").exists()
