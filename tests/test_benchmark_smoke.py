"""The benchmark's correctness part at a tiny size: the real ``engine`` command
and the naive reference agree on the workload's alerts. No timing here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).parent / "benchmarks" / "bench.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """tests/benchmarks/bench.py, imported from its path."""
    spec = importlib.util.spec_from_file_location("burst_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_engine_command_and_naive_reference_raise_the_same_alerts(
    bench: ModuleType, tmp_path: Path
) -> None:
    """20,000 events (about ten seconds of event time, four ERROR bursts):
    every firing and resolved edge, with its instants and count, agrees."""
    load = bench.workload.Workload(events=20_000, sources=200, seed=7)

    engine_alerts, naive_alerts = bench.check_alerts(load, tmp_path)

    assert engine_alerts == naive_alerts
    firing = [a for a in naive_alerts if a[:2] == ("ERROR_BURST", "firing")]
    assert firing, "the workload should hold at least one ERROR burst that fires"
    assert all(a[2].startswith("web-") for a in firing)


def test_workload_is_the_same_for_the_same_seed(bench: ModuleType) -> None:
    """Two runs with one seed write the same events; another seed differs."""
    first = list(bench.workload.lines(bench.workload.Workload(500, 50, seed=3)))
    again = list(bench.workload.lines(bench.workload.Workload(500, 50, seed=3)))
    other = list(bench.workload.lines(bench.workload.Workload(500, 50, seed=4)))

    assert first == again
    assert first != other
    assert len(first) == 500


def test_naive_reference_fires_at_the_seventh_error_and_resolves_when_it_leaves(
    bench: ModuleType, tmp_path: Path
) -> None:
    """Worked by hand: seven ERRORs from web-1 one second apart fire at the
    seventh (count 7); with no more events the count drops below 7 when the
    first one leaves, ten seconds after it (count 6)."""
    lines = [
        f'{{"timestamp":"2026-01-01T00:00:{second:02d}.000Z",'
        f'"event_type":"ERROR","source":"web-1"}}\n'
        for second in range(7)
    ]
    events = tmp_path / "events.jsonl"
    events.write_text("".join(lines), encoding="utf-8")

    alerts = bench.naive.run(events, bench.children.default_rules()["rules"])

    assert [(a[0], a[1], a[2], a[3].second, a[5]) for a in alerts] == [
        ("ERROR_BURST", "firing", "web-1", 6, 7),
        ("ERROR_BURST", "resolved", "web-1", 6, 6),
    ]
    assert alerts[1][4].second == 10
