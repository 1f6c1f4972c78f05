"""Restarts of the real ``engine`` command with ``state:``: killed with
SIGKILL at random points, stopped with SIGTERM, or fed from a growing file,
the alerts it writes over all its runs are those of one uninterrupted run,
repeats being exact copies (same incident id and sequence).

The Redis tests need the server at 127.0.0.1:6379 and the ``redis``
library: they are skipped without them, and fail instead when the
environment variable ``CI`` is set.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.testing import run_rules

_SCRIPT = Path(sys.executable).parent / "engine"
ENGINE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "engine"]
REDIS_URL = "redis://127.0.0.1:6379/0"
#: The longest any step waits: the engine starting, draining, stopping.
TIMEOUT_S = 15.0
SEED = 20261203
KILLS = 4
START = datetime(2026, 1, 1, tzinfo=UTC)

RULES = """version: 1
{plugins}sources:
{source}
time: {{idle_timeout: null}}
counters: {{enabled: false}}
{state}rules:
  - name: BURST
    match: {{event_type: ERROR}}
    group_by: [source]
    window: {{type: sliding, size: 10s}}
    detector: {{type: burst, threshold: 3}}
    summary: "{{count}} errors from {{source}}"
  - name: HELD
    match: {{event_type: ERROR}}
    group_by: [source, metadata.zone]
    window: {{type: sliding, size: 5s}}
    detector: {{type: burst, threshold: 2}}
    for: 2s
    keep_firing_for: 4s
    summary: "{{source}} in {{zone}}: {{count}}"
sinks:
{sink}
"""
STATE = "state: {path: state/engine.json, interval: 200ms}\n"


def redis_rules(stream: str) -> str:
    source = f"""  - type: redis
    stream: {stream}
    group: engine
    consumer: engine-1
    block: 50ms
    batch_size: 20"""
    sink = "  - type: jsonl\n    path: alerts.jsonl"
    return RULES.format(plugins="", source=source, state=STATE, sink=sink)


def reference_alerts(events: list[bytes]) -> list[dict[str, Any]]:
    """The alerts of one uninterrupted in-process run over the same lines."""
    text = RULES.format(
        plugins="", source="  - type: memory", state="", sink="  - type: console"
    ).replace("sinks:\n  - type: console", "sinks: []")
    return [alert.to_dict() for alert in run_rules(text, [events])]


# -- events ---------------------------------------------------------------------------


def make_events(seed: int, count: int) -> list[bytes]:
    """``count`` events in time order from four sources in two zones, mostly
    errors, at irregular gaps that make bursts come and go; then one event an
    hour later, which moves event time past every window."""
    rng = random.Random(seed)
    at_ms = 0
    lines = []
    for _ in range(count):
        at_ms += rng.choice([0, 250, 500, 1000, 1500, 3000, 6000])
        lines.append(
            line(
                at_ms,
                "ERROR" if rng.random() < 0.8 else "INFO",
                f"web-{rng.randrange(4)}",
                "ab"[rng.randrange(2)],
            )
        )
    lines.append(line(at_ms + 3_600_000, "INFO", "clock", "a"))
    return lines


def line(at_ms: int, event_type: str, source: str, zone: str) -> bytes:
    stamp = (START + timedelta(milliseconds=at_ms)).isoformat(timespec="milliseconds")
    event = {
        "timestamp": stamp.replace("+00:00", "Z"),
        "event_type": event_type,
        "source": source,
        "metadata": {"zone": zone},
    }
    return json.dumps(event).encode()


def burst_incidents_by_hand(events: list[bytes]) -> set[tuple[str, int, int]]:
    """(source, start, end) of every BURST incident, in microseconds, counted
    directly: the count of a source's errors in (t - 10 s, t] only changes
    when an error arrives or leaves, so checking those instants is enough."""
    window_us = 10_000_000
    times: dict[str, list[int]] = {}
    for raw in events:
        event = json.loads(raw)
        if event["event_type"] == "ERROR":
            times.setdefault(event["source"], []).append(to_us(event["timestamp"]))
    incidents = set()
    for source, stamps in times.items():
        started: int | None = None
        for instant in sorted(set(stamps) | {t + window_us for t in stamps}):
            count = sum(1 for t in stamps if instant - window_us < t <= instant)
            if count >= 3 and started is None:
                started = instant
            elif count < 3 and started is not None:
                incidents.add((source, started, instant))
                started = None
    return incidents


def to_us(stamp: str) -> int:
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


# -- the engine and the broker ------------------------------------------------------


@pytest.fixture
def redis_client() -> Iterator[Any]:
    """A client of the Redis server on this machine."""
    reason = None
    try:
        library = importlib.import_module("redis")
        socket.create_connection(("127.0.0.1", 6379), timeout=1.0).close()
    except ImportError:
        reason = "redis is not installed: pip install 'burst-engine[redis]'"
    except OSError as error:
        reason = f"Redis is not reachable at 127.0.0.1:6379: {error}"
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so broker tests must not be skipped)")
        pytest.skip(reason)
    client = library.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def stream(redis_client: Any) -> Iterator[str]:
    name = f"restart-{os.getpid()}-{time.monotonic_ns()}"
    yield name
    redis_client.delete(name)


def start(folder: Path, run: int) -> subprocess.Popen[bytes]:
    with (folder / f"run{run}.log").open("wb") as log:
        return subprocess.Popen(
            [*ENGINE, "--rules", "rules.yaml"],
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop(process: subprocess.Popen[bytes], folder: Path, run: int) -> None:
    """SIGTERM once the engine has started (and so handles it), then wait
    for a clean exit."""
    log = folder / f"run{run}.log"
    wait_until(
        lambda: process.poll() is not None or " starting: " in log.read_text(),
        "the engine to start",
    )
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, log.read_text()


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting after {TIMEOUT_S}s: {what}")
        time.sleep(0.05)


def all_acknowledged(client: Any, stream: str) -> Callable[[], bool]:
    """Whether the group has read every entry and acknowledged it, which the
    engine does only after a snapshot holds the entry's effects."""

    def check() -> bool:
        last = client.xinfo_stream(stream)["last-generated-id"]
        for group in client.xinfo_groups(stream):
            if group["name"] == b"engine":
                done: bool = (
                    group["pending"] == 0 and group["last-delivered-id"] == last
                )
                return done
        return False

    return check


def written_alerts(folder: Path) -> list[dict[str, Any]]:
    path = folder / "alerts.jsonl"
    if not path.exists():
        return []
    return [json.loads(text) for text in path.read_text().splitlines()]


def as_set(alerts: list[dict[str, Any]]) -> set[str]:
    return {json.dumps(alert, sort_keys=True) for alert in alerts}


def assert_repeats_are_exact(alerts: list[dict[str, Any]]) -> None:
    seen: dict[tuple[str, int], dict[str, Any]] = {}
    for alert in alerts:
        first = seen.setdefault((alert["incident_id"], alert["sequence"]), alert)
        assert alert == first, "the same incident id and sequence, different alert"


# -- the tests ----------------------------------------------------------------------


def test_sigkill_at_random_points_loses_no_incident_and_repeats_only_exact_copies(
    redis_client: Any, stream: str, tmp_path: Path
) -> None:
    """While 1500 events are published to a Redis stream, the engine is
    killed with SIGKILL four times at seeded random moments and restarted;
    a last run drains the stream and stops on SIGTERM. The distinct alerts
    written equal those of one uninterrupted run, every BURST incident
    counted by hand is among them, and any alert written twice is an exact
    copy with the same incident id and sequence."""
    events = make_events(SEED, 1500)
    rng = random.Random(SEED)
    (tmp_path / "rules.yaml").write_text(redis_rules(stream))

    def publish() -> None:
        for begin in range(0, len(events), 20):
            pipe = redis_client.pipeline()
            for raw in events[begin : begin + 20]:
                pipe.xadd(stream, {"event": raw})
            pipe.execute()
            time.sleep(0.06)

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    for run in range(KILLS):
        process = start(tmp_path, run)
        # Start-up takes about 0.3 s: most kills come after a few snapshots.
        time.sleep(rng.uniform(0.5, 1.5))
        process.kill()
        process.wait(TIMEOUT_S)
    publisher.join(TIMEOUT_S)
    assert not publisher.is_alive()
    process = start(tmp_path, KILLS)
    try:
        wait_until(all_acknowledged(redis_client, stream), "the stream to drain")
    finally:
        stop(process, tmp_path, KILLS)

    written = written_alerts(tmp_path)
    expected = reference_alerts(events)
    assert_repeats_are_exact(written)
    assert as_set(written) == as_set(expected)
    by_hand = burst_incidents_by_hand(events)
    resolved = {
        (a["labels"]["source"], to_us(a["starts_at"]), to_us(a["ends_at"]))
        for a in expected
        if a["rule"] == "BURST" and a["status"] == "resolved"
    }
    assert len(by_hand) > 20
    assert resolved == by_hand


def test_sigterm_and_restart_neither_lose_nor_repeat_an_alert(
    redis_client: Any, stream: str, tmp_path: Path
) -> None:
    """Half the events, a graceful stop, the other half in a second run: the
    alerts written are those of one run over all events, each exactly once."""
    events = make_events(SEED + 1, 400)
    (tmp_path / "rules.yaml").write_text(redis_rules(stream))
    for run, half in enumerate((events[:200], events[200:])):
        for raw in half:
            redis_client.xadd(stream, {"event": raw})
        process = start(tmp_path, run)
        try:
            wait_until(all_acknowledged(redis_client, stream), "the stream to drain")
        finally:
            stop(process, tmp_path, run)
        assert (tmp_path / "state" / "engine.json").exists()

    written = written_alerts(tmp_path)
    expected = reference_alerts(events)
    assert len(expected) > 10
    assert sorted(map(json.dumps, written)) == sorted(map(json.dumps, expected))


def test_a_followed_file_restarted_from_its_snapshot_continues_where_it_stopped(
    tmp_path: Path,
) -> None:
    """A jsonl source saves its byte offset: after a graceful stop and more
    lines appended, the next run reads only the new lines, and the alerts of
    both runs are those of one run over the whole file, each exactly once."""
    events = make_events(SEED + 2, 300)
    source = (
        "  - type: jsonl\n    path: events.jsonl\n    follow: true\n"
        "    poll_interval: 50ms"
    )
    sink = "  - type: jsonl\n    path: alerts.jsonl"
    rules = RULES.format(plugins="", source=source, state=STATE, sink=sink)
    (tmp_path / "rules.yaml").write_text(rules)
    state = tmp_path / "state" / "engine.json"
    data = tmp_path / "events.jsonl"

    def offset_saved(size: int) -> Callable[[], bool]:
        def check() -> bool:
            try:
                saved = json.loads(state.read_text())
            except (OSError, ValueError):
                return False
            return bool(saved["sources"][0]["checkpoint"] == size)

        return check

    for run, half in enumerate((events[:150], events[150:])):
        with data.open("ab") as file:
            file.write(b"".join(raw + b"\n" for raw in half))
        process = start(tmp_path, run)
        try:
            wait_until(offset_saved(data.stat().st_size), "the offset to be saved")
        finally:
            stop(process, tmp_path, run)

    written = written_alerts(tmp_path)
    expected = reference_alerts(events)
    assert len(expected) > 10
    assert sorted(map(json.dumps, written)) == sorted(map(json.dumps, expected))


def test_a_damaged_state_file_stops_the_engine_before_it_reads_anything(
    tmp_path: Path,
) -> None:
    """A snapshot cut short is a usage error: exit code 2, the file named,
    no traceback, and the file left in place for the operator."""
    (tmp_path / "events.jsonl").write_bytes(line(0, "ERROR", "web-1", "a") + b"\n")
    source = "  - type: jsonl\n    path: events.jsonl"
    sink = "  - type: jsonl\n    path: alerts.jsonl"
    rules = RULES.format(plugins="", source=source, state=STATE, sink=sink)
    (tmp_path / "rules.yaml").write_text(rules)
    damaged = tmp_path / "state" / "engine.json"
    damaged.parent.mkdir()
    damaged.write_text('{"format": "burst-engine-state", "version": 1, "rul')
    result = subprocess.run(
        [*ENGINE, "--rules", "rules.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 2
    assert "error: state file state/engine.json: not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr
    assert damaged.read_text().endswith('"rul')
