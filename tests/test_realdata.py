"""Replays of real event files through the ``engine`` command, compared with the
expected alerts computed by an independent reference (see the data README)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.realdata

#: The rules of expected/rules.json, named here so each gets a readable test id.
RULE_NAMES = [
    "bgl_fatal_node_60s_5",
    "bgl_fatal_node_3600s_5",
    "bgl_severe_all_60s_3",
    "bgl_severe_component_600s_5",
    "thunderbird_any_node_1s_10",
    "thunderbird_ntpd_all_10s_10",
    "hdfs_warn_component_600s_3",
    "hpc_error_node_3600s_2",
    "hadoop_error_component_10s_5",
    "zookeeper_warn_error_server_60s_10",
    "zookeeper_error_all_60s_2",
    "nab_realtraffic_anomaly_sensor_1800s_5",
    "nab_machine_temperature_anomaly_1500s_5",
    "nab_machine_temperature_anomaly_1200s_5",
    "nab_machine_temperature_any_300s_2",
]
#: Files whose upstream order goes back in time.
OUT_OF_ORDER_FILES = ["hpc_2k", "zookeeper_2k", "nab_machine_temperature"]

#: (rule, group, starts_at in µs, count) of one firing alert.
Firing = tuple[str, str | None, int, int]


def engine_command() -> list[str]:
    """The installed ``engine`` script beside this interpreter, else ``-m``."""
    script = Path(sys.executable).with_name("engine")
    return [str(script)] if script.exists() else [sys.executable, "-m", "engine"]


def time_us(text: str) -> int:
    """Microseconds since the epoch of an ISO-8601 UTC timestamp."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return round(moment.timestamp() * 1_000_000)


def load_rules(shared_data: Path) -> dict[str, dict[str, Any]]:
    entries = json.loads((shared_data / "expected" / "rules.json").read_text())
    return {entry["name"]: entry for entry in entries}


def rule_document(entry: dict[str, Any]) -> dict[str, Any]:
    """One rules-file rule for an entry of expected/rules.json."""
    rule: dict[str, Any] = {
        "name": entry["name"],
        "window": {"type": "sliding", "size": f"{entry['window_seconds']}s"},
        "detector": {"type": "burst", "threshold": entry["threshold"]},
    }
    if entry["event_types"] is not None:
        rule["match"] = {"event_type": entry["event_types"]}
    if entry["group_by"] is not None:
        rule["group_by"] = [entry["group_by"]]
    return rule


def run_engine(
    folder: Path, data: Path, entries: list[dict[str, Any]], send_resolved: bool
) -> list[dict[str, Any]]:
    """Run the ``engine`` command on ``data`` with the given rules and return
    the alert objects its jsonl sink wrote."""
    alerts_path = folder / "alerts.jsonl"
    document = {
        "version": 1,
        "sources": [{"type": "jsonl", "path": str(data)}],
        # Wide enough for the worst file (hpc_2k: 988 days late); no idle
        # timeout, so a slow machine cannot move the watermark mid-file.
        "time": {"allowed_lateness": "1000d", "idle_timeout": None},
        "counters": {"enabled": False},
        "rules": [rule_document(entry) for entry in entries],
        "sinks": [
            {"type": "jsonl", "path": str(alerts_path), "send_resolved": send_resolved}
        ],
    }
    rules_path = folder / "rules.yaml"
    rules_path.write_text(json.dumps(document, indent=2))  # JSON is valid YAML

    result = subprocess.run(
        [*engine_command(), "run", "--rules", str(rules_path), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "0 late dropped, 0 bad" in result.stderr
    lines = alerts_path.read_text().splitlines() if alerts_path.exists() else []
    return [json.loads(line) for line in lines]


def firing(alerts: list[dict[str, Any]], entry: dict[str, Any]) -> list[Firing]:
    """The firing alerts of one rule as (rule, group, starts_at, count)."""
    path = entry["group_by"]
    found = [
        (
            a["rule"],
            None if path is None else a["labels"][path],
            time_us(a["starts_at"]),
            a["evidence"]["count"],
        )
        for a in alerts
        if a["rule"] == entry["name"] and a["status"] == "firing"
    ]
    return sorted(found, key=lambda f: (f[2], json.dumps(f[1])))


def expected_firing(shared_data: Path, name: str) -> list[Firing]:
    lines = (shared_data / "expected" / f"{name}.jsonl").read_text().splitlines()
    found = [
        (e["rule"], e["group"], time_us(e["timestamp"]), e["count"])
        for e in map(json.loads, lines)
    ]
    return sorted(found, key=lambda f: (f[2], json.dumps(f[1])))


def test_rule_list_covers_every_expected_rule(shared_data: Path) -> None:
    """The parametrised rule names are exactly those of expected/rules.json."""
    assert sorted(load_rules(shared_data)) == sorted(RULE_NAMES)


@pytest.mark.parametrize("name", RULE_NAMES)
def test_replay_raises_exactly_the_expected_alerts(
    name: str, shared_data: Path, tmp_path: Path
) -> None:
    """Replaying the file raises exactly the reference's alerts and counts."""
    entry = load_rules(shared_data)[name]

    alerts = run_engine(tmp_path, shared_data / entry["data"], [entry], False)

    assert all(a["status"] == "firing" for a in alerts)
    assert firing(alerts, entry) == expected_firing(shared_data, name)


def sorted_copy(source: Path, target: Path) -> None:
    """Write ``source``'s lines to ``target`` stably sorted by event time."""
    lines = source.read_bytes().splitlines()
    lines.sort(key=lambda line: time_us(json.loads(line)["timestamp"]))
    target.write_bytes(b"\n".join(lines) + b"\n")


@pytest.mark.parametrize("stem", OUT_OF_ORDER_FILES)
def test_sorted_input_gives_the_same_alerts_as_file_order(
    stem: str, shared_data: Path, tmp_path: Path
) -> None:
    """The file and its time-sorted copy raise identical alert edges."""
    entries = [
        e for e in load_rules(shared_data).values() if e["data"] == f"{stem}.jsonl"
    ]
    (tmp_path / "file_order").mkdir()
    (tmp_path / "sorted").mkdir()
    sorted_data = tmp_path / "sorted" / f"{stem}.jsonl"
    sorted_copy(shared_data / f"{stem}.jsonl", sorted_data)

    in_file_order = run_engine(
        tmp_path / "file_order", shared_data / f"{stem}.jsonl", entries, True
    )
    in_time_order = run_engine(tmp_path / "sorted", sorted_data, entries, True)

    def edges(alerts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted(
            (
                a["rule"],
                a["status"],
                json.dumps(a["labels"], sort_keys=True),
                a["starts_at"],
                a["ends_at"] or "",
                a["evidence"]["count"],
            )
            for a in alerts
        )

    assert edges(in_time_order) == edges(in_file_order)
    for entry in entries:
        assert firing(in_time_order, entry) == expected_firing(
            shared_data, entry["name"]
        )
