"""The rate_ratio detector: short-window rate against a long baseline, with a
minimum count and a warm-up, and the multi-window SLO burn-rate mode."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from detector_harness import (
    MS,
    SECOND,
    config_problems,
    delivered_within_lateness,
    edges,
    quantised,
    rules_file,
    source_edges,
    with_windows,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config import parse_config
from engine.events import Event
from engine.testing import event, run_rules

PLUGINS = with_windows("engine.plugins.detector_rate_ratio")


def rules(window: str, detector: str, lateness_ms: int = 0) -> str:
    """A rules file with one rule over ERROR and INFO events, by source."""
    return rules_file(
        PLUGINS, window, detector, lateness_ms, match="{event_type: [ERROR, INFO]}"
    )


SPIKE = [0, 3, 6, 9, 9.2, 9.4]


def test_short_rate_against_baseline_fires_with_evidence() -> None:
    """At 9.2 s: 2 events in (8.2, 9.2] (2/s) against 5 in 10 s (0.5/s): ratio 4."""
    alerts = run_rules(
        rules(
            "{type: sliding, size: 10s}",
            "{type: rate_ratio, short: 1s, long: 10s, ratio: 3, min_count: 2, "
            "warmup: 0s}",
        ),
        [[event(t) for t in SPIKE]],
    )

    # At 10.2 s only the event at 9.4 s is left in the short window.
    assert edges(alerts) == [
        ("web-1", "firing", 9_200 * MS),
        ("web-1", "resolved", 10_200 * MS),
    ]
    assert alerts[0].evidence == {
        "short": "1s",
        "long": "10s",
        "short_count": 2,
        "long_count": 5,
        "short_rate": 2.0,
        "long_rate": 0.5,
        "ratio": 4.0,
    }


def test_warmup_holds_a_new_group_back() -> None:
    """With the default warm-up (the long window), the group may fire from
    10 s on: at 10 s the short window still holds 2 events against 5."""
    alerts = run_rules(
        rules(
            "{type: sliding, size: 10s}",
            "{type: rate_ratio, short: 1s, long: 10s, ratio: 3, min_count: 2}",
        ),
        [[event(t) for t in SPIKE]],
    )

    assert edges(alerts) == [
        ("web-1", "firing", 10 * SECOND),
        ("web-1", "resolved", 10_200 * MS),
    ]


def test_min_count_is_required_in_the_short_window() -> None:
    """With min_count 3 the group fires at the third event of the spike."""
    alerts = run_rules(
        rules(
            "{type: sliding, size: 10s}",
            "{type: rate_ratio, short: 1s, long: 10s, ratio: 3, min_count: 3, "
            "warmup: 0s}",
        ),
        [[event(t) for t in SPIKE]],
    )

    assert edges(alerts) == [
        ("web-1", "firing", 9_400 * MS),
        ("web-1", "resolved", 10 * SECOND),
    ]


def test_burn_rate_needs_both_windows_above_the_rate() -> None:
    """SLO 99 %, burn 10 (error ratio 0.1): the first error is 1/11 over the
    long window, too little; the second makes 2/12 and 2/3; the short window
    holds no error from 10.7 s."""
    batch: list[Event] = [event(t, "INFO") for t in range(10)]
    batch += [event(9.5, "ERROR"), event(9.7, "ERROR")]
    alerts = run_rules(
        rules(
            "{type: sliding, size: 10s}",
            "{type: rate_ratio, mode: burn_rate, short: 1s, long: 10s, "
            "slo: 0.99, burn_rate: 10, errors: {event_type: ERROR}, warmup: 0s}",
        ),
        [sorted(batch, key=lambda e: e.time_us)],
    )

    assert edges(alerts) == [
        ("web-1", "firing", 9_700 * MS),
        ("web-1", "resolved", 10_700 * MS),
    ]
    assert alerts[0].evidence == {
        "short": "1s",
        "long": "10s",
        "short_count": 3,
        "long_count": 12,
        "short_errors": 2,
        "long_errors": 2,
        "short_burn_rate": 66.666667,
        "long_burn_rate": 16.666667,
        "burn_rate": 10.0,
    }


def problems_of(detector: str) -> list[tuple[str, str]]:
    """(path, message) of every problem parse_config finds."""
    return config_problems(rules("{type: sliding, size: 1h}", detector))


def test_options_of_the_other_mode_are_refused() -> None:
    """mode burn_rate needs errors, slo and burn_rate, and refuses ratio."""
    found = problems_of(
        "{type: rate_ratio, mode: burn_rate, short: 5m, long: 1h, ratio: 2}"
    )

    messages = " / ".join(message for _, message in found)
    for name in ("'errors'", "'slo'", "'burn_rate'", "ratio applies"):
        assert name in messages


def test_short_must_be_shorter_than_long() -> None:
    """short 1h with long 5m is refused at rules[0].detector.short."""
    found = problems_of("{type: rate_ratio, short: 1h, long: 5m, ratio: 2}")

    assert [path for path, _ in found] == ["rules[0].detector.short"]


def test_slo_burn_rate_example_is_valid() -> None:
    """The multi-window burn-rate pattern of the README parses."""
    text = """
version: 1
plugins: [engine.plugins.detector_rate_ratio]
sources: [{type: generator}]
rules:
  - name: SLO_FAST_BURN
    match: {event_type: [REQUEST, ERROR]}
    group_by: [source]
    window: {type: sliding, size: 1h}
    detector:
      type: rate_ratio
      mode: burn_rate
      errors: {event_type: ERROR}
      slo: 0.999
      burn_rate: 14.4
      long: 1h
      short: 5m
"""
    config, _ = parse_config(text, "<rules>")

    assert config.rules[0].detector.options["burn_rate"] == 14.4


# -- property: the engine against the definition, on a grid of milliseconds --


def window_yaml(kind: str, resolution: int) -> str:
    if kind == "bucketed":
        return f"{{type: bucketed, size: 1h, resolution: {resolution}ms}}"
    return f"{{type: {kind}, size: 1h}}"


def count(times: list[int], kind: str, size: int, resolution: int, t: int) -> int:
    return sum(
        1 for ts in times if t - size < quantised(ts, kind, size, resolution) <= t
    )


def reference(
    stream: list[tuple[int, bool]],
    kind: str,
    resolution: int,
    short: int,
    long: int,
    options: dict[str, Any],
) -> list[tuple[int, bool]]:
    """Edges of the documented condition at every millisecond, for the events
    (ms, is_error) of one group: warm once the long count has been non-zero
    without a break for ``warmup``."""
    times = [ts for ts, _ in stream]
    errors = [ts for ts, is_error in stream if is_error]
    warmup = options["warmup"]
    found: list[tuple[int, bool]] = []
    active, run_start = False, None
    for t in range(min(times), max(times) + 2 * long + warmup + 2):
        s = count(times, kind, short, resolution, t)
        lg = count(times, kind, long, resolution, t)
        run_start = (t if run_start is None else run_start) if lg else None
        if "ratio" in options:
            holds = (
                s >= options["min_count"]
                and lg > 0
                and Fraction(s, short) / Fraction(lg, long)
                >= Fraction(str(options["ratio"]))
            )
        else:
            es = count(errors, kind, short, resolution, t)
            el = count(errors, kind, long, resolution, t)
            level = Fraction(str(options["burn_rate"])) * (
                1 - Fraction(str(options["slo"]))
            )
            holds = (
                es >= options["min_count"]
                and lg > 0
                and Fraction(es, s) >= level
                and Fraction(el, lg) >= level
            )
        now = run_start is not None and t - run_start >= warmup and holds
        if now != active:
            found.append((t, now))
            active = now
    return found


@st.composite
def arrivals(
    draw: Any,
) -> tuple[list[tuple[int, str, bool]], int, list[list[Event]]]:
    """Events (ms, source, is_error), a lateness, and batches in an arrival
    order whose disorder stays within that lateness."""
    stream = draw(
        st.lists(
            st.tuples(
                st.integers(0, 120), st.sampled_from(["web-1", "web-2"]), st.booleans()
            ),
            min_size=1,
            max_size=25,
        )
    )
    lateness, batches = delivered_within_lateness(
        draw,
        stream,
        lambda item: event(item[0] / 1000, "ERROR" if item[2] else "INFO", item[1]),
    )
    return stream, lateness, batches


@settings(max_examples=60, deadline=None)
@given(
    data=arrivals(),
    kind=st.sampled_from(["sliding", "bucketed", "tumbling"]),
    resolution=st.integers(1, 5),
    short_buckets=st.integers(1, 4),
    factor=st.integers(2, 4),
    burn_mode=st.booleans(),
    ratio=st.sampled_from([1, 1.5, 2, 3]),
    slo=st.sampled_from([0.5, 0.9]),
    burn_rate=st.sampled_from([1, 1.5, 2]),
    min_count=st.integers(1, 3),
    warmup=st.integers(0, 30),
)
def test_alerts_match_the_reference_for_any_arrival_order(
    data: tuple[list[tuple[int, str, bool]], int, list[list[Event]]],
    kind: str,
    resolution: int,
    short_buckets: int,
    factor: int,
    burn_mode: bool,
    ratio: float,
    slo: float,
    burn_rate: float,
    min_count: int,
    warmup: int,
) -> None:
    """For every window type and both modes, the alerts are the edges of the
    definition."""
    stream, lateness, batches = data
    short = short_buckets * resolution
    long = short * factor
    options: dict[str, Any] = {"min_count": min_count, "warmup": warmup}
    text = (
        f"{{type: rate_ratio, short: {short}ms, long: {long}ms, "
        f"min_count: {min_count}, warmup: {warmup}ms, "
    )
    if burn_mode:
        options.update(slo=slo, burn_rate=burn_rate)
        text += (
            f"mode: burn_rate, slo: {slo}, burn_rate: {burn_rate}, "
            "errors: {event_type: ERROR}}"
        )
    else:
        options["ratio"] = ratio
        text += f"ratio: {ratio}}}"

    alerts = run_rules(rules(window_yaml(kind, resolution), text, lateness), batches)

    expected = []
    for source in sorted({s for _, s, _ in stream}):
        own = [(ts, is_error) for ts, s, is_error in stream if s == source]
        changes = reference(own, kind, resolution, short, long, options)
        expected += source_edges(source, changes)
    assert sorted(edges(alerts)) == sorted(expected)


def test_snapshot_survives_json_and_restores_both_modes() -> None:
    """A state saved as JSON and restored decides the same edges."""
    import json

    from engine.components import RuleInfo
    from engine.plugins.detector_rate_ratio import RateRatioDetector
    from engine.plugins.window_bucketed import BucketedWindow

    rule = RuleInfo("R", 0, "<test>")
    window = BucketedWindow({"size": "10s", "resolution": "100ms"}, rule)
    for options in (
        {"short": "1s", "long": "10s", "ratio": 3, "warmup": "0s"},
        {
            "mode": "burn_rate",
            "short": "1s",
            "long": "10s",
            "errors": {"event_type": "ERROR"},
            "slo": 0.9,
            "burn_rate": 2,
            "warmup": "0s",
        },
    ):
        detector = RateRatioDetector(options, rule, window)
        state = detector.new_state()
        for t in SPIKE:
            state.add(event(t, "ERROR" if t > 9 else "INFO"))
        state.advance(9_100 * MS)

        restored = detector.restore_state(json.loads(json.dumps(state.snapshot())))

        assert restored.advance(60 * SECOND) == state.advance(60 * SECOND)
        assert restored.snapshot() == state.snapshot()


def test_warmup_starts_again_after_the_long_window_empties() -> None:
    """A group silent for longer than the long window is new again: its
    second spike, at 30 s, may fire only from 40 s."""
    batch = [event(t) for t in SPIKE] + [event(30 + t) for t in SPIKE]
    alerts = run_rules(
        rules(
            "{type: sliding, size: 10s}",
            "{type: rate_ratio, short: 1s, long: 10s, ratio: 3, min_count: 2}",
        ),
        [batch],
    )

    assert edges(alerts) == [
        ("web-1", "firing", 10 * SECOND),
        ("web-1", "resolved", 10_200 * MS),
        ("web-1", "firing", 40 * SECOND),
        ("web-1", "resolved", 40_200 * MS),
    ]
