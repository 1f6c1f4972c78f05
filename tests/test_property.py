"""Random streams against a brute-force reference of the burst semantics.

The reference follows DESIGN.md word for word: per group, evaluate
``C_g(t) = #{ts : t - W < ts <= t}`` at every event instant and every expiry
instant (``ts + W``) in time order; the group fires when armed and
``C_g(t) >= N``, and resolves (re-arms) at the first instant where
``C_g(t) < M`` (``M = rearm_below``, default ``N``). Timestamps are whole
milliseconds in a small range and windows are whole milliseconds, so ties and
exact boundaries are frequent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.alerts import Alert
from engine.events import Event
from engine.testing import run_rules_with_summary

MS = 1_000
GROUPS = ("a", "b", "c")

#: (status, group, starts_at ms, ends_at ms or None, count)
Edge = tuple[str, str, int, int | None, int]


@dataclass(frozen=True)
class Stream:
    """A random stream: events in arrival order and the rule that watches it."""

    window_ms: int
    threshold: int
    rearm_below: int | None
    #: (timestamp ms, group, matches the rule) in arrival order.
    arrivals: list[tuple[int, str, bool]]
    #: Where the arrivals are cut into batches.
    cuts: list[int]

    @property
    def lateness_ms(self) -> int:
        """The largest lateness the arrival order actually produces."""
        newest, worst = None, 0
        for time_ms, _, _ in self.arrivals:
            newest = time_ms if newest is None else max(newest, time_ms)
            worst = max(worst, newest - time_ms)
        return worst

    def rules(self) -> str:
        rearm = "" if self.rearm_below is None else f", rearm_below: {self.rearm_below}"
        return f"""
version: 1
sources: [{{type: memory}}]
time: {{allowed_lateness: {self.lateness_ms}ms, idle_timeout: null}}
counters: {{enabled: false}}
rules:
  - name: P
    match: {{event_type: ERROR}}
    group_by: [source]
    window: {{type: sliding, size: {self.window_ms}ms}}
    detector: {{type: burst, threshold: {self.threshold}{rearm}}}
sinks: []
"""

    def events(self) -> list[Event]:
        return [
            Event(time_ms * MS, "ERROR" if matches else "INFO", group)
            for time_ms, group, matches in self.arrivals
        ]

    def batches(self) -> list[list[Event]]:
        events = self.events()
        bounds = [0, *sorted(self.cuts), len(events)]
        return [events[lo:hi] for lo, hi in pairwise(bounds)]


@st.composite
def streams(draw: st.DrawFn) -> Stream:
    """Events in up to three groups, some not matching, packed into a span of
    a few windows; sorted, then displaced by up to a few places so that the
    disorder stays bounded."""
    window_ms = draw(st.integers(1, 12))
    threshold = draw(st.integers(1, 5))
    rearm_below = draw(st.none() | st.integers(1, threshold))
    span_ms = draw(st.integers(0, 4 * window_ms))
    groups = GROUPS[: draw(st.integers(1, len(GROUPS)))]
    size = draw(st.integers(1, 40))
    events = draw(
        st.lists(
            st.tuples(
                st.integers(0, span_ms),
                st.sampled_from(groups),
                st.booleans() | st.just(True),
            ),
            min_size=size,
            max_size=size,
        )
    )
    events.sort(key=lambda e: e[0])
    max_shift = draw(st.integers(0, 6))
    shifts = draw(
        st.lists(st.integers(0, max_shift), min_size=len(events), max_size=len(events))
    )
    order = sorted(range(len(events)), key=lambda i: i + shifts[i])
    arrivals = [events[i] for i in order]
    cuts = draw(st.lists(st.integers(0, len(arrivals)), max_size=6))
    return Stream(window_ms, threshold, rearm_below, arrivals, cuts)


def reference(stream: Stream) -> list[Edge]:
    """The alert edges DESIGN.md defines, by brute force."""
    window, threshold = stream.window_ms, stream.threshold
    rearm = threshold if stream.rearm_below is None else stream.rearm_below
    edges: list[Edge] = []
    for group in GROUPS:
        times = [t for t, g, matches in stream.arrivals if g == group and matches]
        instants = sorted(set(times) | {t + window for t in times})
        firing_since: int | None = None
        for t in instants:
            count = sum(1 for s in times if t - window < s <= t)
            if firing_since is None and count >= threshold:
                firing_since = t
                edges.append(("firing", group, t, None, count))
            elif firing_since is not None and count < rearm:
                edges.append(("resolved", group, firing_since, t, count))
                firing_since = None
    return edges


def as_edge(alert: Alert) -> Edge:
    ends = None if alert.ends_at_us is None else alert.ends_at_us // MS
    return (
        alert.status,
        alert.group["source"],
        alert.starts_at_us // MS,
        ends,
        alert.evidence["count"],
    )


def instant(edge: Edge) -> int:
    return edge[2] if edge[3] is None else edge[3]


def canonical(edges: list[Edge]) -> list[Edge]:
    """Edges in time order; ties (one instant, several groups) by group."""
    return sorted(edges, key=lambda e: (instant(e), e[1], e[0]))


@settings(max_examples=200, deadline=None)
@given(streams())
def test_engine_raises_exactly_the_reference_alerts(stream: Stream) -> None:
    """Any arrival order within the lateness raises the reference's edges."""
    alerts, summary = run_rules_with_summary(stream.rules(), stream.batches())

    edges = [as_edge(a) for a in alerts]
    assert summary.late_dropped == 0
    assert canonical(edges) == canonical(reference(stream))
    assert [instant(e) for e in edges] == sorted(instant(e) for e in edges)


@settings(max_examples=100, deadline=None)
@given(streams())
def test_alerts_do_not_depend_on_how_input_is_split_into_batches(
    stream: Stream,
) -> None:
    """The same arrivals cut into other batches raise the same alerts."""
    whole, _ = run_rules_with_summary(stream.rules(), [stream.events()])
    split, _ = run_rules_with_summary(stream.rules(), stream.batches())

    def key(alert: Alert) -> tuple[int, str]:
        at = alert.starts_at_us if alert.ends_at_us is None else alert.ends_at_us
        return at, json.dumps(alert.to_dict(), sort_keys=True)

    assert sorted(map(key, split)) == sorted(map(key, whole))
