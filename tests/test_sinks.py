"""The built-in sinks: ``console`` lines and ``jsonl`` objects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.alerts import Alert
from engine.clock import SimulatedClock
from engine.components import RuntimeContext
from engine.plugins.sink_console import ConsoleSink, format_alert
from engine.plugins.sink_jsonl import JsonlSink
from engine.timeutil import US_PER_SECOND

START_US = 1_767_225_600 * US_PER_SECOND  # 2026-01-01T00:00:00Z, by hand


def firing(**changes: Any) -> Alert:
    fields: dict[str, Any] = {
        "rule": "ERROR_BURST",
        "severity": "high",
        "status": "firing",
        "labels": {"source": "web-3", "team": "ops"},
        "group": {"source": "web-3"},
        "starts_at_us": START_US + 2 * US_PER_SECOND,
        "ends_at_us": None,
        "incident_id": "incident-1",
        "sequence": 1,
        "evidence": {"count": 7, "threshold": 7, "window": "10s"},
        "summary": "7 ERROR events from web-3 in 10s window",
    }
    fields.update(changes)
    return Alert(**fields)


def resolved(**changes: Any) -> Alert:
    fields: dict[str, Any] = {
        "status": "resolved",
        "ends_at_us": START_US + 14_500_000,  # 12.5s after the start
        "sequence": 2,
        "evidence": {"count": 6, "threshold": 7, "window": "10s"},
        "summary": "6 ERROR events from web-3 in 10s window",
    }
    fields.update(changes)
    return firing(**fields)


def context(tmp_path: Path) -> RuntimeContext:
    return RuntimeContext("sinks[0]", SimulatedClock(), tmp_path)


def test_console_firing_line_is_severity_rule_and_summary() -> None:
    """A firing alert prints as ``[HIGH] RULE: summary``."""
    assert format_alert(firing()) == (
        "[HIGH] ERROR_BURST: 7 ERROR events from web-3 in 10s window"
    )
    assert format_alert(firing(severity="critical", rule="X")).startswith(
        "[CRITICAL] X: "
    )


def test_console_resolved_line_names_the_group_and_duration() -> None:
    """A resolved alert prints the group key and how long it lasted."""
    assert (
        format_alert(resolved()) == "[RESOLVED] ERROR_BURST: source=web-3 after 12.5s"
    )


def test_console_resolved_line_of_whole_numbers_and_several_keys() -> None:
    """Whole seconds print without decimals; every group key is listed."""
    alert = resolved(
        group={"source": "web-3", "metadata.region": "eu"},
        ends_at_us=START_US + 62 * US_PER_SECOND,
    )

    assert format_alert(alert) == (
        "[RESOLVED] ERROR_BURST: source=web-3, metadata.region=eu after 60s"
    )


def test_console_resolved_line_of_an_ungrouped_rule() -> None:
    """A rule without group_by resolves for 'all events'."""
    alert = resolved(group={}, labels={})

    assert format_alert(alert) == "[RESOLVED] ERROR_BURST: all events after 12.5s"


def test_console_sink_prints_one_line_per_alert_to_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The console sink writes each edge on its own stdout line."""
    sink = ConsoleSink({}, context(tmp_path))

    sink.send(firing())
    sink.send(resolved())
    sink.close()

    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "[HIGH] ERROR_BURST: 7 ERROR events from web-3 in 10s window",
        "[RESOLVED] ERROR_BURST: source=web-3 after 12.5s",
    ]
    assert err == ""


def test_console_sink_can_write_to_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``stream: stderr`` moves the lines to standard error."""
    sink = ConsoleSink({"stream": "stderr"}, context(tmp_path))

    sink.send(firing())

    out, err = capsys.readouterr()
    assert out == ""
    assert err == "[HIGH] ERROR_BURST: 7 ERROR events from web-3 in 10s window\n"


EXPECTED_FIRING = {
    "rule": "ERROR_BURST",
    "status": "firing",
    "severity": "high",
    "labels": {"source": "web-3", "team": "ops"},
    "starts_at": "2026-01-01T00:00:02.000Z",
    "ends_at": None,
    "incident_id": "incident-1",
    "sequence": 1,
    "summary": "7 ERROR events from web-3 in 10s window",
    "evidence": {"count": 7, "threshold": 7, "window": "10s"},
}
EXPECTED_RESOLVED = {
    **EXPECTED_FIRING,
    "status": "resolved",
    "ends_at": "2026-01-01T00:00:14.500Z",
    "sequence": 2,
    "summary": "6 ERROR events from web-3 in 10s window",
    "evidence": {"count": 6, "threshold": 7, "window": "10s"},
}


def read_objects(path: Path) -> list[dict[str, Any]]:
    return [json.loads(text) for text in path.read_text("utf-8").splitlines()]


def test_jsonl_sink_writes_one_object_per_alert_with_the_contract_fields(
    tmp_path: Path,
) -> None:
    """Each edge is one JSON line holding the fields DESIGN.md promises."""
    sink = JsonlSink({"path": "alerts.jsonl"}, context(tmp_path))

    sink.send(firing())
    sink.send(resolved())
    sink.close()

    written = read_objects(tmp_path / "alerts.jsonl")
    assert len(written) == 2
    for got, expected in zip(
        written, [EXPECTED_FIRING, EXPECTED_RESOLVED], strict=True
    ):
        assert {k: got[k] for k in expected} == expected


def test_jsonl_sink_flushes_each_alert_before_close(tmp_path: Path) -> None:
    """A reader sees every whole alert as soon as it is sent."""
    sink = JsonlSink({"path": "alerts.jsonl"}, context(tmp_path))

    sink.send(firing())
    after_one = (tmp_path / "alerts.jsonl").read_text("utf-8")
    sink.send(resolved())
    after_two = (tmp_path / "alerts.jsonl").read_text("utf-8")
    sink.close()

    assert after_one.endswith("\n")
    assert [json.loads(t)["status"] for t in after_one.splitlines()] == ["firing"]
    assert [json.loads(t)["status"] for t in after_two.splitlines()] == [
        "firing",
        "resolved",
    ]


def test_jsonl_sink_creates_parent_folders(tmp_path: Path) -> None:
    """A path into folders that do not exist yet is created."""
    sink = JsonlSink({"path": "out/deep/alerts.jsonl"}, context(tmp_path))

    sink.send(firing())
    sink.close()

    assert read_objects(tmp_path / "out" / "deep" / "alerts.jsonl")[0]["rule"] == (
        "ERROR_BURST"
    )


def test_jsonl_sink_appends_to_an_existing_file(tmp_path: Path) -> None:
    """Alerts from an earlier run stay; new ones follow them."""
    path = tmp_path / "alerts.jsonl"
    path.write_text('{"earlier": true}\n', encoding="utf-8")
    sink = JsonlSink({"path": "alerts.jsonl"}, context(tmp_path))

    sink.send(firing())
    sink.close()

    earlier, added = read_objects(path)
    assert earlier == {"earlier": True}
    assert added["rule"] == "ERROR_BURST"


def test_jsonl_sink_keeps_non_ascii_text_readable(tmp_path: Path) -> None:
    """Summaries with accents are written as UTF-8, not escaped."""
    sink = JsonlSink({"path": "alerts.jsonl"}, context(tmp_path))

    sink.send(firing(summary="panne à Zürich"))
    sink.close()

    assert "panne à Zürich" in (tmp_path / "alerts.jsonl").read_text("utf-8")


def test_jsonl_sink_dash_writes_to_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``path: "-"`` prints the objects on standard output and leaves it open."""
    sink = JsonlSink({"path": "-"}, context(tmp_path))

    sink.send(firing())
    sink.send(resolved())
    sink.close()
    print("still open")

    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert lines[-1] == "still open"
    objects = [json.loads(text) for text in lines[:-1]]
    assert [{k: o[k] for k in EXPECTED_FIRING} for o in objects] == [
        EXPECTED_FIRING,
        EXPECTED_RESOLVED,
    ]
    assert not (tmp_path / "-").exists()


def test_alert_times_are_utc_with_z_and_microseconds_when_needed(
    tmp_path: Path,
) -> None:
    """Times that are not whole milliseconds keep their microseconds."""
    sink = JsonlSink({"path": "alerts.jsonl"}, context(tmp_path))

    sink.send(firing(starts_at_us=START_US + 1_234_567))
    sink.close()

    [written] = read_objects(tmp_path / "alerts.jsonl")
    assert written["starts_at"] == "2026-01-01T00:00:01.234567Z"
