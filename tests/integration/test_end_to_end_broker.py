"""The real ``engine`` command fed by a Redis stream: events published to
the broker become alerts in a jsonl file, and SIGTERM ends the run cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from engine.plugin_manager import BUILTIN_MODULES

_SCRIPT = Path(sys.executable).parent / "engine"
ENGINE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "engine"]
#: Longest wait for the engine to start, raise alerts, or stop.
TIMEOUT_S = 15.0


def rules_file(stream: str) -> str:
    plugins = (
        ""
        if "engine.plugins.source_redis" in BUILTIN_MODULES
        else "plugins: [engine.plugins.source_redis]\n"
    )
    return f"""version: 1
{plugins}sources:
  - type: redis
    stream: {stream}
    group: engine
    consumer: engine-1
    block: 100ms
time: {{idle_timeout: null}}
counters: {{enabled: false}}
rules:
  - name: ERROR_BURST
    severity: high
    match: {{event_type: ERROR}}
    group_by: [source]
    window: {{type: sliding, size: 10s}}
    detector: {{type: burst, threshold: 3}}
    summary: "{{count}} errors from {{source}}"
sinks:
  - type: jsonl
    path: alerts.jsonl
"""


def event(seconds: int, event_type: str = "ERROR", source: str = "web-1") -> bytes:
    """An event ``seconds`` after 2026-01-01T00:00:00Z."""
    stamp = 1_767_225_600 + seconds
    return json.dumps(
        {"timestamp": stamp, "event_type": event_type, "source": source}
    ).encode()


def wait_for_lines(path: Path, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if path.exists():
            lines = path.read_text().splitlines()
            if len(lines) >= count:
                return [json.loads(line) for line in lines]
        time.sleep(0.05)
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_engine_turns_events_from_a_redis_stream_into_alerts(
    redis_server: str, unique: str, tmp_path: Path
) -> None:
    """Five errors from web-1 within 10 s (threshold 3) fire at the third and,
    once a later event moves event time past the window, resolve 10 s after
    the third; a broken entry is counted as bad; SIGTERM exits 0."""
    import redis

    client = redis.Redis.from_url(redis_server)
    (tmp_path / "rules.yaml").write_text(rules_file(unique))
    process = subprocess.Popen(
        [*ENGINE, "--rules", "rules.yaml"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for seconds in (1, 2, 3, 4, 5):
            client.xadd(unique, {"event": event(seconds)})
        client.xadd(unique, {"event": b"{broken"})
        client.xadd(unique, {"event": event(100, "INFO", "web-2")})
        alerts = wait_for_lines(tmp_path / "alerts.jsonl", 2)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        client.delete(unique)
        client.close()

    assert process.returncode == 0, stderr
    assert [
        (a["status"], a["labels"], a["starts_at"], a["ends_at"], a["summary"])
        for a in alerts
    ] == [
        (
            "firing",
            {"source": "web-1"},
            "2026-01-01T00:00:03.000Z",
            None,
            "3 errors from web-1",
        ),
        (
            "resolved",
            {"source": "web-1"},
            "2026-01-01T00:00:03.000Z",
            "2026-01-01T00:00:13.000Z",
            "2 errors from web-1",  # at 13 s only the errors at 4 and 5 remain
        ),
    ]
    assert "summary: 6 events" in stderr
    assert "1 bad" in stderr
