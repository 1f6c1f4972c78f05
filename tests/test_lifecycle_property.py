"""``for`` and ``keep_firing_for`` against a brute-force reference on random
condition sequences, whatever the points at which the watermark moves."""

from __future__ import annotations

from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.alerts import FIRING, RESOLVED
from engine.components import Signal
from engine.config import RuleConfig, parse_config
from engine.lifecycle import RuleLifecycle

SECOND = 1_000_000
KEY = "web-1"

#: (instant, status, starts_at, ends_at, first_seen), times in whole seconds.
Notice = tuple[int, str, int, int | None, int]


@cache
def rule_config(for_s: int, keep_s: int) -> RuleConfig:
    text = (
        "version: 1\n"
        "sources: [{type: generator}]\n"
        "rules:\n"
        "  - name: R\n"
        "    group_by: [source]\n"
        "    window: {type: sliding, size: 10s}\n"
        "    detector: {type: burst, threshold: 3}\n"
        f"    for: {for_s}s\n"
        f"    keep_firing_for: {keep_s}s\n"
    )
    config, _ = parse_config(text, "r.yaml")
    return config.rules[0]


def reference(edges: list[int], for_s: int, keep_s: int, end: int) -> list[Notice]:
    """Second by second: a quiet alert fires at t when the condition was
    active at every second of [t - for, t]; a firing one resolves at t when
    it was inactive at every second of [t - keep, t]."""
    active = []
    state, pending = False, list(edges)
    for t in range(end + 1):
        while pending and pending[0] == t:
            pending.pop(0)
            state = not state
        active.append(state)

    def was(t: int) -> bool:
        return t >= 0 and active[t]

    notices: list[Notice] = []
    firing, starts_at, first_seen = False, 0, 0
    for t in range(end + 1):
        if firing and not any(was(u) for u in range(t - keep_s, t + 1)):
            firing = False
            notices.append((t, RESOLVED, starts_at, t, first_seen))
        elif not firing and all(was(u) for u in range(t - for_s, t + 1)):
            firing, starts_at = True, t
            first_seen = max(u for u in range(t + 1) if was(u) and not was(u - 1))
            notices.append((t, FIRING, t, None, first_seen))
    return notices


def run(
    edges: list[int], for_s: int, keep_s: int, end: int, stops: list[int]
) -> list[Notice]:
    """Drive the lifecycle as the rule runner does, moving the watermark to
    each of ``stops`` along the way."""
    life = RuleLifecycle(rule_config(for_s, keep_s))
    signals = [
        Signal(t * SECOND, i % 2 == 0, {"count": 3 if i % 2 == 0 else 2})
        for i, t in enumerate(edges)
    ]
    timed = []
    watermarks = sorted(set(stops) | {end + 1})
    for watermark in watermarks:
        due = [s for s in signals if s.at_us < watermark * SECOND]
        signals = signals[len(due) :]
        for signal in due:
            timed += life.advance(KEY, signal.at_us)
            alert = life.on_signal(KEY, signal, None)
            if alert is not None:
                timed.append((signal.at_us, alert))
        timed += life.advance(KEY, watermark * SECOND)
    assert life.is_idle(KEY)
    return [
        (
            at // SECOND,
            alert.status,
            alert.starts_at_us // SECOND,
            None if alert.ends_at_us is None else alert.ends_at_us // SECOND,
            (alert.first_seen_us or 0) // SECOND,
        )
        for at, alert in timed
    ]


@settings(max_examples=300, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=1, max_value=8), max_size=14),
    for_s=st.integers(min_value=0, max_value=6),
    keep_s=st.integers(min_value=0, max_value=6),
    stops=st.lists(st.integers(min_value=0, max_value=130), max_size=6),
)
def test_for_and_keep_firing_for_match_a_second_by_second_reference(
    gaps: list[int], for_s: int, keep_s: int, stops: list[int]
) -> None:
    """Firing and resolved notices, their instants, starts, ends and first
    seen times equal the reference, however the watermark advances."""
    edges, t = [], 0
    for gap in gaps:
        t += gap
        edges.append(t)
    if len(edges) % 2:
        edges.append(t + 1)  # end inactive, so that everything resolves
    end = (edges[-1] if edges else 0) + for_s + keep_s + 2

    assert run(edges, for_s, keep_s, end, stops) == reference(edges, for_s, keep_s, end)
