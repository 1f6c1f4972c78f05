"""The benchmark's measurements that each run in a child process of their own.

``bench.py`` starts ``bench.py --child KIND PARAMS`` for each of them, so
that the peak resident memory the kernel reports belongs to that
measurement alone; each prints one JSON object on its last line.
"""

from __future__ import annotations

import gc
import json
import time
import tracemalloc
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import naive
import workload
import yaml

from engine.alerts import Alert
from engine.components import Sink

REPO = Path(__file__).resolve().parent.parent.parent
DEFAULT_RULES = REPO / "rules" / "default.yaml"


# -- rules files ----------------------------------------------------------------


def default_rules() -> dict[str, Any]:
    """The default rules file, as data."""
    data: dict[str, Any] = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
    return data


def jsonl_rules(events: Path, alerts: Path) -> dict[str, Any]:
    """The default rules, reading ``events`` and writing alerts to ``alerts``."""
    rules = default_rules()
    rules["sources"] = [{"type": "jsonl", "path": str(events)}]
    rules["sinks"] = [{"type": "jsonl", "path": str(alerts)}]
    return rules


def generator_source(load: workload.Workload, **options: Any) -> dict[str, Any]:
    """The built-in generator set up like the workload: same hosts, level
    mix, ERROR bursts every 2 s and WARN storms every minute."""
    return {
        "type": "generator",
        "rate": 0,
        "count": load.events,
        "seed": load.seed,
        "start": "2026-01-01T00:00:00Z",
        "spacing": f"{workload.SPACING_US}us",
        "event_types": workload.LEVEL_MIX,
        "sources": load.source_names(),
        "bursts": [
            {"every": "2s", "count": 9, "within": "1500ms", "event_type": "ERROR"},
            {"every": "60s", "count": 300, "within": "3s", "event_type": "WARN"},
        ],
        **options,
    }


def alerts_as_json(alerts: list[naive.AlertKey]) -> list[list[Any]]:
    return [
        [str(part) if isinstance(part, datetime) else part for part in a]
        for a in alerts
    ]


def child_floor(params: dict[str, Any]) -> dict[str, Any]:
    """Read the file with the engine's own jsonl source and decode each block
    with the decoder the engine builds for these rules; nothing else."""
    from engine.clock import SystemClock
    from engine.components import RuntimeContext
    from engine.config import load_config
    from engine.plugins.source_jsonl import JsonlSource
    from engine.runtime import Engine

    config, registry = load_config(Path(params["rules"]))
    decoder = Engine(config, registry).decoder
    context = RuntimeContext("floor", SystemClock(), Path("."))
    source = JsonlSource({"path": params["events"]}, context)
    blocks = source.blocks()
    assert blocks is not None
    decoded = 0
    started = time.perf_counter()
    for block in blocks:
        lines = decoder.decode_block(block)
        assert lines is not None, "the workload has no bad lines"
        decoded += len(lines)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "events": decoded, "lean": not decoder.keep_metadata}


def child_naive(params: dict[str, Any]) -> dict[str, Any]:
    rules = json.loads(Path(params["rules"]).read_text())["rules"]
    started = time.perf_counter()
    alerts = naive.run(Path(params["events"]), rules)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "alerts": alerts_as_json(alerts)}


def _engine_in_process(rules: dict[str, Any], extra_sinks: Sequence[Any] = ()) -> Any:
    from engine.config import parse_config
    from engine.runtime import Engine

    config, registry = parse_config(json.dumps(rules), "<benchmark>", REPO)
    return Engine(config, registry, extra_sinks=extra_sinks)


def child_generator(params: dict[str, Any]) -> dict[str, Any]:
    load = workload.Workload(params["events"], params["sources"], params["seed"])
    rules = default_rules()
    rules["sources"] = [generator_source(load)]
    rules["sinks"] = [{"type": "jsonl", "path": params["alerts"]}]
    engine = _engine_in_process(rules)
    started = time.perf_counter()
    summary = engine.run()
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "events": summary.events,
        "alerts": sum(summary.alerts.values()),
    }


class LatencySink(Sink):
    """Records, for each firing alert, wall-clock now minus its ``starts_at``."""

    type_name = "bench_latency"

    def __init__(self) -> None:
        self.latencies_us: list[int] = []

    def send(self, alert: Alert) -> None:
        if alert.status == "firing":
            self.latencies_us.append(time.time_ns() // 1000 - alert.starts_at_us)


def child_latency(params: dict[str, Any]) -> dict[str, Any]:
    """A paced generator stamps each event with the wall clock when it is due;
    bursts every 25 ms make the ERROR rule fire about every 60 ms."""
    load = workload.Workload(params["rate"] * params["seconds"], params["sources"], 3)
    rules = default_rules()
    source = generator_source(load, rate=params["rate"])
    del source["start"], source["spacing"]
    source["bursts"] = [{"every": "25ms", "count": 8, "within": "20ms", "offset": "1s"}]
    rules["sources"] = [source]
    rules["sinks"] = []
    recorder = LatencySink()
    engine = _engine_in_process(rules, [recorder])
    started = time.perf_counter()
    summary = engine.run()
    seconds = time.perf_counter() - started
    return {
        "latencies_us": recorder.latencies_us,
        "events": summary.events,
        "seconds": seconds,
    }


def child_window(params: dict[str, Any]) -> dict[str, Any]:
    """Bytes per timestamp held by an exact sliding window, against a deque
    of Python ints as a reference."""
    from engine.plugins.window_sliding import SlidingWindowState

    count = params["count"]
    start = workload.START_US
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    state = SlidingWindowState(size_us=10**12)
    for time_us in range(start, start + count * 500, 500):
        state.add(time_us)
    state.move_to(start + (count - 1) * 500)
    window_bytes = tracemalloc.get_traced_memory()[0] - before
    before = tracemalloc.get_traced_memory()[0]
    reference = deque(range(start, start + count * 500, 500))
    deque_bytes = tracemalloc.get_traced_memory()[0] - before
    assert len(reference) == count
    return {"window": window_bytes / count, "deque": deque_bytes / count}


def child_many_sources(params: dict[str, Any]) -> dict[str, Any]:
    """A file whose events come from 100,000 hosts, one group per host and a
    1 s window: groups must be evicted as their windows empty."""
    from engine.config import load_config
    from engine.runtime import Engine

    config, registry = load_config(Path(params["rules"]))
    engine = Engine(config, registry)
    runner = engine.runners[0]
    peak = 0
    advance = engine._advance

    def advance_and_count(watermark_us: int) -> None:
        nonlocal peak
        advance(watermark_us)
        peak = max(peak, len(runner.groups))

    engine._advance = advance_and_count  # type: ignore[method-assign]
    gc.collect()
    before = resident_bytes()
    summary = engine.run()
    return {
        "peak_groups": peak,
        "sources_seen": len(summary.by_source),
        "groups_left": len(runner.groups),
        "rss_before_run": before,
    }


def resident_bytes() -> int:
    """This process's resident memory now (Linux), 0 when unknown."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "floor": child_floor,
    "naive": child_naive,
    "generator": child_generator,
    "latency": child_latency,
    "window": child_window,
    "many_sources": child_many_sources,
}
