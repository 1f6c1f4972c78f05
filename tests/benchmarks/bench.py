"""Throughput, memory, latency and start-up of the engine, in one run.

    python tests/benchmarks/bench.py [--events N] [--sources S] [--repeat K]

Generates a deterministic workload (see ``workload.py``), writes it once as
JSON Lines into a temporary folder, and measures, each ``K`` times in a
child process of its own (``children.py``; so that its peak resident memory
can be read):

* the decode floor: reading the file and decoding it with the decoder the
  engine builds for the default rules, nothing else;
* the naive reference of ``naive.py`` on the same file;
* the real ``engine -q`` command on the file, with the default rules and a
  ``jsonl`` sink, timed from the outside (start-up included), and on an
  empty file for the command's fixed cost;
* the engine fed by its built-in generator in-process (``rate: 0``);
* alert latency at a sustained, paced rate in event time;
* ``engine validate rules/default.yaml``;
* bytes per event held in an exact sliding window, and groups kept alive
  with 100,000 distinct sources.

It prints medians with the range, and ratios against the reference runs of
the same invocation (the machine may be shared and noisy, so only ratios
travel). It exits with status 1 when the engine's alerts differ from the
naive reference's. ElastAlert2's frequency rule runs as a peer when
``elastalert`` is importable.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import children  # noqa: E402
import naive  # noqa: E402
import workload  # noqa: E402
from children import DEFAULT_RULES, alerts_as_json, jsonl_rules  # noqa: E402

MIB = 1024 * 1024
#: The issue's targets, checked at the end of a run.
TARGET_VS_NAIVE = 6.0
TARGET_VS_FLOOR = 0.5
TARGET_GENERATOR = 1_500_000
TARGET_WINDOW_BYTES = 32
TARGET_RSS_MIB = 64
TARGET_LATENCY_MS = 10.0
TARGET_STARTUP_S = 0.3


def engine_command() -> list[str]:
    script = Path(sys.executable).parent / "engine"
    return [str(script)] if script.exists() else [sys.executable, "-m", "engine"]


# -- alerts ---------------------------------------------------------------------


def engine_alerts(path: Path) -> list[naive.AlertKey]:
    """The alerts a jsonl sink wrote, in the naive reference's shape."""
    alerts: list[naive.AlertKey] = []
    if not path.exists():
        return alerts
    for line in path.read_text(encoding="utf-8").splitlines():
        alert = json.loads(line)
        ends_at = alert["ends_at"]
        alerts.append(
            (
                alert["rule"],
                alert["status"],
                alert["labels"].get("source"),
                datetime.fromisoformat(alert["starts_at"]),
                None if ends_at is None else datetime.fromisoformat(ends_at),
                alert["evidence"]["count"],
            )
        )
    return sorted(alerts, key=repr)


def run_engine_cli(rules_file: Path, alerts_file: Path) -> tuple[float, int, str]:
    """Run ``engine --rules``; wall seconds, peak RSS in bytes, stderr."""
    alerts_file.unlink(missing_ok=True)
    started = time.perf_counter()
    process = subprocess.Popen(
        [*engine_command(), "-q", "--rules", str(rules_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    stderr = process.stderr.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"engine exited {process.returncode}: {stderr}")
    return elapsed, usage.ru_maxrss * 1024, stderr


def check_alerts(load: workload.Workload, folder: Path) -> tuple[list[Any], list[Any]]:
    """Write the workload, run the engine command and the naive reference on
    it; return both alert lists (the benchmark's correctness part)."""
    events = folder / "events.jsonl"
    workload.write_jsonl(load, events)
    rules = jsonl_rules(events, folder / "alerts.jsonl")
    rules_file = folder / "rules.json"
    rules_file.write_text(json.dumps(rules), encoding="utf-8")
    run_engine_cli(rules_file, folder / "alerts.jsonl")
    return engine_alerts(folder / "alerts.jsonl"), naive.run(events, rules["rules"])


def many_sources_files(args: argparse.Namespace, folder: Path) -> dict[str, str]:
    """The workload from 100,000 hosts, and a rules file with one group per
    host over a 1 s window."""
    events = folder / "many-sources.jsonl"
    workload.write_jsonl(workload.Workload(args.events, 100_000, args.seed), events)
    rules = jsonl_rules(events, folder / "many-sources-alerts.jsonl")
    rules["rules"] = [
        {
            "name": "PER_HOST",
            "group_by": ["source"],
            "window": {"type": "sliding", "size": "1s"},
            "detector": {"type": "burst", "threshold": 50},
        }
    ]
    path = folder / "many-sources.json"
    path.write_text(json.dumps(rules), encoding="utf-8")
    return {"rules": str(path)}


def run_child(kind: str, params: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Run one measurement in a fresh interpreter: its result and peak RSS."""
    process = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            kind,
            json.dumps(params),
        ],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"benchmark child {kind} exited {process.returncode}")
    result: dict[str, Any] = json.loads(output.splitlines()[-1])
    return result, usage.ru_maxrss * 1024


# -- the report -----------------------------------------------------------------


@dataclass
class Series:
    """Repeated measurements of one quantity."""

    values: list[float] = field(default_factory=list)
    peak_rss: list[int] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def spread(self, fmt: Callable[[float], str]) -> str:
        return f"{fmt(self.median)} [{fmt(min(self.values))}-{fmt(max(self.values))}]"

    def rss(self) -> str:
        return f"{max(self.peak_rss) / MIB:.0f} MiB" if self.peak_rss else "-"


def rate(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    return f"{value / 1e3:.0f}k"


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}"


def elastalert_line(events: Path, limit: int) -> str:
    if importlib.util.find_spec("elastalert") is None:
        return "elastalert2: skipped: elastalert2 not installed"
    try:
        return elastalert_peer(events, limit)
    except Exception as error:  # a peer that fails must not hide our figures
        return f"elastalert2: installed but its frequency rule failed: {error!r}"


def elastalert_peer(events: Path, limit: int) -> str:
    """ElastAlert2's FrequencyRule (7 ERROR/FATAL per web host in 10 s) fed
    the same events in-process, as ElastAlert feeds it query results."""
    from datetime import timedelta

    from elastalert.ruletypes import FrequencyRule  # type: ignore[import-not-found]

    rule = FrequencyRule(
        {
            "num_events": 7,
            "timeframe": timedelta(seconds=10),
            "query_key": "source",
            "timestamp_field": "@timestamp",
            "attach_related": False,
        }
    )
    documents = []
    with events.open(encoding="utf-8") as lines:
        for count, line in enumerate(lines):
            if count == limit:
                break
            data = json.loads(line)
            if data["event_type"] in ("ERROR", "FATAL") and data["source"].startswith(
                "web-"
            ):
                stamp = datetime.fromisoformat(data["timestamp"])
                documents.append({"@timestamp": stamp, "source": data["source"]})
    started = time.perf_counter()
    for index in range(0, len(documents), 1000):
        rule.add_data(documents[index : index + 1000])
    seconds = time.perf_counter() - started
    return (
        f"elastalert2: FrequencyRule took the {len(documents):,} ERROR/FATAL events"
        f" of web hosts (Elasticsearch would filter them for it; reading and"
        f" decoding not counted) at {len(documents) / seconds:,.0f} events/s and"
        f" matched {len(rule.matches)} times"
    )


# -- one run --------------------------------------------------------------------


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--sources", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency-rate", type=int, default=20_000)
    parser.add_argument("--latency-seconds", type=int, default=10)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


@dataclass
class Results:
    """Everything one invocation measured."""

    floor: Series = field(default_factory=Series)
    naive: Series = field(default_factory=Series)
    cli: Series = field(default_factory=Series)
    cli_run: Series = field(default_factory=Series)
    fixed_cost: Series = field(default_factory=Series)
    generator: Series = field(default_factory=Series)
    latency_p99: Series = field(default_factory=Series)
    latency_p50: Series = field(default_factory=Series)
    startup: Series = field(default_factory=Series)
    alerts_differ: bool = False
    alert_count: int = 0
    notes: list[str] = field(default_factory=list)
    extras: list[str] = field(default_factory=list)
    window_bytes: float = 0.0


@dataclass(frozen=True)
class Files:
    folder: Path
    events: Path
    rules: Path
    alerts: Path
    empty_rules: Path


def prepare(args: argparse.Namespace, folder: Path) -> Files:
    """Write the workload and the rules files, once."""
    files = Files(
        folder,
        folder / "events.jsonl",
        folder / "rules.json",
        folder / "alerts.jsonl",
        folder / "empty-rules.json",
    )
    print(f"writing {args.events:,} events from {args.sources:,} sources ...")
    load = workload.Workload(args.events, args.sources, args.seed)
    workload.write_jsonl(load, files.events)
    rules = jsonl_rules(files.events, files.alerts)
    files.rules.write_text(json.dumps(rules), encoding="utf-8")
    empty = folder / "empty.jsonl"
    empty.touch()
    rules = jsonl_rules(empty, folder / "empty-alerts.jsonl")
    files.empty_rules.write_text(json.dumps(rules), encoding="utf-8")
    return files


def measure(args: argparse.Namespace, files: Files) -> Results:
    results = Results()
    for attempt in range(1, args.repeat + 1):
        print(f"round {attempt} of {args.repeat} ...")
        reference = time_floor_and_naive(args, files, results)
        time_engine_command(args, files, results, reference)
        time_generator(args, files, results)
        time_latency(args, results, attempt)
        results.startup.values.append(time_validate())
    return results


def time_floor_and_naive(
    args: argparse.Namespace, files: Files, results: Results
) -> list[Any]:
    """The two reference runs; returns the naive reference's alerts."""
    paths = {"events": str(files.events), "rules": str(files.rules)}
    floor, rss = run_child("floor", paths)
    results.floor.values.append(floor["events"] / floor["seconds"])
    results.floor.peak_rss.append(rss)
    reference, rss = run_child("naive", paths)
    results.naive.values.append(args.events / reference["seconds"])
    results.naive.peak_rss.append(rss)
    alerts: list[Any] = reference["alerts"]
    return alerts


def time_engine_command(
    args: argparse.Namespace, files: Files, results: Results, reference: list[Any]
) -> None:
    """The command on the workload, and on an empty file for its fixed cost
    (interpreter, imports, validation, threads, exit)."""
    fixed, _, _ = run_engine_cli(files.empty_rules, files.folder / "empty-alerts.jsonl")
    results.fixed_cost.values.append(fixed)
    seconds, rss, _ = run_engine_cli(files.rules, files.alerts)
    results.cli.values.append(args.events / seconds)
    results.cli.peak_rss.append(rss)
    results.cli_run.values.append(args.events / (seconds - fixed))
    got = alerts_as_json(engine_alerts(files.alerts))
    results.alert_count = len(got)
    if got != reference:
        results.alerts_differ = True
        results.notes.append(alert_difference(got, reference))


def time_generator(args: argparse.Namespace, files: Files, results: Results) -> None:
    params = {
        "events": args.events,
        "sources": args.sources,
        "seed": args.seed,
        "alerts": str(files.folder / "generator-alerts.jsonl"),
    }
    generated, rss = run_child("generator", params)
    results.generator.values.append(generated["events"] / generated["seconds"])
    results.generator.peak_rss.append(rss)


def time_latency(args: argparse.Namespace, results: Results, attempt: int) -> None:
    params = {
        "rate": args.latency_rate,
        "seconds": args.latency_seconds,
        "sources": args.sources,
    }
    latency, rss = run_child("latency", params)
    samples = sorted(latency["latencies_us"])
    results.latency_p50.values.append(percentile(samples, 50) / 1000)
    results.latency_p99.values.append(percentile(samples, 99) / 1000)
    results.latency_p99.peak_rss.append(rss)
    results.notes.append(
        f"latency round {attempt}: {len(samples)} alerts, "
        f"{latency['events'] / latency['seconds']:,.0f} events/s sustained, "
        f"max {samples[-1] / 1000:.1f} ms"
    )


def measure_once(args: argparse.Namespace, files: Files, results: Results) -> None:
    """Window memory, ElastAlert2, and 100,000 sources (one run each)."""
    window, _ = run_child("window", {"count": 1_000_000})
    results.window_bytes = window["window"]
    results.extras.append(
        f"exact window memory:        {window['window']:.1f} bytes/event"
        f" (a deque of ints: {window['deque']:.1f}; target <= {TARGET_WINDOW_BYTES})"
    )
    results.extras.append(elastalert_line(files.events, args.events))
    files.events.unlink()  # room for the next file
    many, rss = run_child("many_sources", many_sources_files(args, files.folder))
    results.extras.append(
        f"100,000 sources, 1 s window: at most {many['peak_groups']:,} live groups"
        f" after {many['sources_seen']:,} sources, {many['groups_left']} left at the"
        f" end; RSS {many['rss_before_run'] / MIB:.0f} MiB after start-up,"
        f" peak {rss / MIB:.0f} MiB (the run summary counts every source)"
    )


def alert_difference(got: list[Any], reference: list[Any]) -> str:
    engine_only = [a for a in got if a not in reference]
    naive_only = [a for a in reference if a not in got]
    return (
        f"ALERTS DIFFER: {len(engine_only)} only from the engine (first: "
        f"{engine_only[:1]}), {len(naive_only)} only from the naive reference "
        f"(first: {naive_only[:1]})"
    )


def percentile(samples: list[int], share: float) -> float:
    if not samples:
        return float("nan")
    index = min(len(samples) - 1, round(share / 100 * (len(samples) - 1)))
    return float(samples[index])


def time_validate() -> float:
    started = time.perf_counter()
    subprocess.run(
        [*engine_command(), "validate", str(DEFAULT_RULES)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


# -- the report -------------------------------------------------------------------


def report(args: argparse.Namespace, results: Results) -> list[str]:
    return [
        (
            f"burst-engine benchmark: {args.events:,} events, {args.sources:,} sources,"
            f" seed {args.seed}, {args.repeat} rounds, median [min-max]"
        ),
        f"machine: {machine()}",
        "",
        *table(results),
        "",
        *ratios(args, results),
        *results.extras,
        "",
        *results.notes,
        "",
        alert_verdict(results),
        *targets(results),
    ]


def table(results: Results) -> list[str]:
    rows = [
        ("decode floor (read + msgspec, no rules)", results.floor),
        ("naive reference (json, dataclass, deque)", results.naive),
        ("engine command, JSONL -> alerts", results.cli),
        ("  same, less the fixed cost of the command", results.cli_run),
        ("engine + generator in-process", results.generator),
    ]
    lines = [f"{'measurement':44s} {'events/s':26s} peak RSS"]
    for name, series in rows:
        lines.append(f"{name:44s} {series.spread(rate):26s} {series.rss()}")
    return lines


def ratios(args: argparse.Namespace, results: Results) -> list[str]:
    vs_floor = results.cli_run.median / results.floor.median
    latency = (
        f"{results.latency_p99.spread(_ms)}, p50 {results.latency_p50.spread(_ms)}"
    )
    return [
        (
            f"engine / naive reference:   {_vs_naive(results):.1f}x"
            f" (target >= {TARGET_VS_NAIVE:.0f}x)"
        ),
        (
            f"engine / decode floor:      {_vs_floor(results):.2f}"
            f" (target >= {TARGET_VS_FLOOR}); without start-up {vs_floor:.2f}"
        ),
        (
            f"alert latency p99 at {args.latency_rate:,} events/s: {latency}"
            f" (target <= {TARGET_LATENCY_MS:.0f} ms)"
        ),
        (
            f"engine validate start-up:   {results.startup.spread(_seconds)}"
            f" (target < {TARGET_STARTUP_S} s); engine command on an empty file:"
            f" {results.fixed_cost.spread(_seconds)}"
        ),
    ]


def _vs_naive(results: Results) -> float:
    return results.cli.median / results.naive.median


def _vs_floor(results: Results) -> float:
    return results.cli.median / results.floor.median


def _ms(value: float) -> str:
    return f"{value:.1f} ms"


def _seconds(value: float) -> str:
    return f"{value:.2f} s"


def alert_verdict(results: Results) -> str:
    if results.alerts_differ:
        return "alerts: the engine's alerts DIFFER from the naive reference's"
    return (
        "alerts: the engine and the naive reference agree"
        f" ({results.alert_count} alert edges)"
    )


def targets(results: Results) -> list[str]:
    checks = [
        ("JSONL -> alerts >= 6x naive", _vs_naive(results) >= TARGET_VS_NAIVE,
         f"{_vs_naive(results):.1f}x"),
        ("JSONL -> alerts >= 0.5x decode floor", _vs_floor(results) >= TARGET_VS_FLOOR,
         f"{_vs_floor(results):.2f}x"),
        ("generator -> alerts >= 1.5M events/s",
         results.generator.median >= TARGET_GENERATOR, rate(results.generator.median)),
        ("<= 32 bytes per event in an exact window",
         results.window_bytes <= TARGET_WINDOW_BYTES, f"{results.window_bytes:.1f}"),
        ("peak RSS < 64 MiB (engine command)",
         max(results.cli.peak_rss) < TARGET_RSS_MIB * MIB, results.cli.rss()),
        ("alert latency p99 <= 10 ms",
         results.latency_p99.median <= TARGET_LATENCY_MS,
         _ms(results.latency_p99.median)),
        ("engine validate < 300 ms", results.startup.median < TARGET_STARTUP_S,
         f"{results.startup.median * 1000:.0f} ms"),
    ]  # fmt: skip
    return [
        f"target {'met   ' if ok else 'MISSED'} {name}: {got}"
        for name, ok, got in checks
    ]


def main(argv: Sequence[str] | None = None) -> int:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    args = arguments(argv)
    if args.child:
        kind, params = args.child
        gc.collect()
        print(json.dumps(children.CHILDREN[kind](json.loads(params))))
        return 0
    with tempfile.TemporaryDirectory(prefix="burst-bench-") as name:
        files = prepare(args, Path(name))
        results = measure(args, files)
        measure_once(args, files, results)
    print("\n".join(report(args, results)))
    return 1 if results.alerts_differ else 0


if __name__ == "__main__":
    sys.exit(main())
