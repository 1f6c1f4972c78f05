"""Pieces shared by the detector and window tests: rules-file text, alerts as
edges, the instants at which a reference condition changes, the times at
which a window counts an event, streams that arrive in an order whose
disorder stays within the allowed lateness, and walks of window states."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from random import Random
from typing import Any, Protocol

from hypothesis import strategies as st

from engine.alerts import Alert
from engine.config import parse_config
from engine.errors import UsageError
from engine.events import Event
from engine.testing import event, run_rules

SECOND = 1_000_000
MS = 1_000


def rules_file(
    plugins: str,
    window: str,
    detector: str,
    lateness_ms: int = 0,
    match: str = "{event_type: ERROR}",
    group_by: str | None = "[source]",
    name: str = "R",
) -> str:
    """A rules file over the memory source with one rule; without ``group_by``
    the rule is ungrouped."""
    grouping = f"    group_by: {group_by}\n" if group_by is not None else ""
    return f"""
version: 1
plugins: {plugins}
sources: [{{type: memory}}]
time: {{allowed_lateness: {lateness_ms}ms}}
rules:
  - name: {name}
    match: {match}
{grouping}    window: {window}
    detector: {detector}
"""


def with_windows(detector_plugin: str) -> str:
    """The plugin list of a detector with the bucketed and tumbling windows."""
    return (
        f"[{detector_plugin}, engine.plugins.window_bucketed, "
        "engine.plugins.window_tumbling]"
    )


def edge_instant(alert: Alert) -> int | None:
    """The instant of an alert's edge: its start when firing, else its end."""
    return alert.starts_at_us if alert.status == "firing" else alert.ends_at_us


def edges(alerts: list[Alert]) -> list[tuple[str, str, int | None]]:
    """Each alert as (source, status, instant of the edge)."""
    return [(a.labels["source"], a.status, edge_instant(a)) for a in alerts]


def status_edges(alerts: list[Alert]) -> list[tuple[str, int | None]]:
    """Each alert as (status, instant of the edge)."""
    return [(a.status, edge_instant(a)) for a in alerts]


def source_edges(
    source: str, changes: Iterable[tuple[int, bool]]
) -> list[tuple[str, str, int]]:
    """Reference changes (ms, active) of one source as (source, status, µs)."""
    return [
        (source, "firing" if active else "resolved", t * MS) for t, active in changes
    ]


def changes_of(
    holds: Callable[[int], bool], instants: Iterable[int]
) -> list[tuple[int, bool]]:
    """The instants, in order, at which ``holds`` changes from its previous
    value (inactive before the first instant), with its new value."""
    found: list[tuple[int, bool]] = []
    active = False
    for t in instants:
        now = holds(t)
        if now != active:
            found.append((t, now))
            active = now
    return found


def quantised(ts: int, kind: str, size: int, resolution: int) -> int:
    """The time at which an event counts, for each window type (ms)."""
    if kind == "bucketed":
        return -(-ts // resolution) * resolution
    if kind == "tumbling":
        return (ts // size + 1) * size
    return ts


def window_yaml(kind: str, size: int, resolution: int) -> str:
    """The window of a rule, of the given type, size and resolution (ms)."""
    if kind == "bucketed":
        return f"{{type: bucketed, size: {size}ms, resolution: {resolution}ms}}"
    return f"{{type: {kind}, size: {size}ms}}"


def config_problems(text: str) -> list[tuple[str, str]]:
    """(path, message) of every problem parse_config finds in ``text``, with
    the memory source replaced by the generator so the file stands alone."""
    try:
        parse_config(text.replace("{type: memory}", "{type: generator}"), "<rules>")
    except UsageError as error:
        return [(p.path, p.message) for p in error.problems]
    return []


def delivered_within_lateness(
    draw: Any,
    stream: Sequence[tuple[Any, ...]],
    to_event: Callable[[tuple[Any, ...]], Event],
) -> tuple[int, list[list[Event]]]:
    """Draws a lateness and cuts ``stream`` (items whose first element is the
    time in ms) into batches in an arrival order where each item is delayed by
    at most that lateness; returns the lateness and the non-empty batches."""
    lateness: int = draw(st.integers(0, 20))
    delays = draw(
        st.lists(st.integers(0, lateness), min_size=len(stream), max_size=len(stream))
    )
    order = sorted(range(len(stream)), key=lambda i: (stream[i][0] + delays[i], i))
    cuts = sorted(draw(st.sets(st.integers(1, len(stream)), max_size=4)))
    batches, start = [], 0
    for cut in [*cuts, len(stream)]:
        batches.append([to_event(stream[i]) for i in order[start:cut]])
        start = cut
    return lateness, [b for b in batches if b]


@st.composite
def source_arrivals(
    draw: Any,
) -> tuple[list[tuple[int, str]], int, list[list[Event]]]:
    """ERROR events (ms, source) from two sources, a lateness, and batches in
    an arrival order whose disorder stays within that lateness."""
    stream = draw(
        st.lists(
            st.tuples(st.integers(0, 150), st.sampled_from(["web-1", "web-2"])),
            min_size=1,
            max_size=25,
        )
    )
    lateness, batches = delivered_within_lateness(
        draw, stream, lambda item: event(item[0] / 1000, "ERROR", item[1])
    )
    return stream, lateness, batches


@st.composite
def field_arrivals(
    draw: Any, values: st.SearchStrategy[Any], field: str
) -> tuple[list[tuple[int, Any]], int, list[list[Event]]]:
    """Events (ms, value of ``field``) from one source, a lateness, and batches
    in an arrival order whose disorder stays within that lateness."""
    stream = draw(
        st.lists(st.tuples(st.integers(0, 120), values), min_size=1, max_size=20)
    )
    lateness, batches = delivered_within_lateness(
        draw, stream, lambda item: event(item[0] / 1000, **{field: item[1]})
    )
    return stream, lateness, batches


def per_source_edges(
    stream: list[tuple[int, str]],
    changes_for: Callable[[list[int]], list[tuple[int, bool]]],
) -> list[tuple[str, str, int]]:
    """The expected edges of every source of ``stream``, in source order, from
    the reference changes of its times."""
    expected = []
    for source in sorted({s for _, s in stream}):
        times = [ts for ts, s in stream if s == source]
        expected += source_edges(source, changes_for(times))
    return expected


class Walkable(Protocol):
    """A window state that takes event times and is moved through its change
    instants."""

    def add(self, time_us: int) -> None: ...

    def next_change(self) -> int | None: ...

    def move_to(self, instant: int) -> int: ...


def add_shuffled(state: Walkable, times: list[int], order: Random) -> None:
    """Adds ``times`` to the state in the order ``order`` shuffles them into."""
    shuffled = list(times)
    order.shuffle(shuffled)
    for ts in shuffled:
        state.add(ts)


def run_in_two_batches(rules: str, times: list[int], cut: int) -> list[Alert]:
    """The alerts of ``rules`` over ERROR events at ``times`` (ms) in time
    order, delivered as the non-empty batches before and after ``cut``."""
    ordered = sorted(times)
    batches = [ordered[:cut], ordered[cut:]]
    return run_rules(rules, [[event(t / 1000) for t in b] for b in batches if b])


def walk(state: Walkable) -> list[tuple[int, int]]:
    """Every (instant, count) the state goes through while nothing arrives."""
    seen = []
    instant = state.next_change()
    while instant is not None:
        seen.append((instant, state.move_to(instant)))
        instant = state.next_change()
    return seen
