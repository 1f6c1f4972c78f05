"""The lifecycle options through the rule runner and the whole engine: timers
decide transitions with no further event, alerts come out in time order."""

from __future__ import annotations

from engine.alerts import FIRING, FLAPPING, RESOLVED, Alert
from engine.config import parse_config
from engine.rule_runner import RuleRunner
from engine.testing import event, run_rules
from plugins.sink_console import format_alert

SECOND = 1_000_000


def rules(options: str, threshold: int = 3, size: str = "10s") -> str:
    return (
        "version: 1\n"
        "sources: [{type: memory}]\n"
        "rules:\n"
        "  - name: R\n"
        "    group_by: [source]\n"
        f"    window: {{type: sliding, size: {size}}}\n"
        f"    detector: {{type: burst, threshold: {threshold}}}\n"
        + "".join(f"    {option.strip()}\n" for option in options.split(";") if option)
        + "sinks: []\n"
    )


def runner(options: str, threshold: int = 3, size: str = "10s") -> RuleRunner:
    text = rules(options, threshold, size).replace("memory", "generator")
    config, registry = parse_config(text, "r.yaml")
    return RuleRunner(config.rules[0], registry)


def brief(alerts: list[Alert]) -> list[tuple[str, str, int, float]]:
    """(group, status, sequence, starts_at or, for resolutions, ends_at)."""
    return [
        (
            alert.group["source"],
            alert.status,
            alert.sequence,
            (alert.ends_at_us if alert.ends_at_us is not None else alert.starts_at_us)
            / SECOND,
        )
        for alert in alerts
    ]


def test_pending_fires_on_the_watermark_alone() -> None:
    """After the activation, moving the watermark past activation + for fires
    the alert though no further event arrives."""
    rule = runner("for: 5s", size="60s")
    for seconds in (1, 2, 3):
        rule.feed(event(seconds))

    assert rule.advance(4 * SECOND) == []
    assert rule.advance(8 * SECOND) == []  # the instant 8 is not yet decided
    timed = rule.advance(9 * SECOND)

    assert [(at, alert.status) for at, _, _, alert in timed] == [(8 * SECOND, FIRING)]
    assert timed[0][3].first_seen_us == 3 * SECOND


def test_keep_firing_for_resolves_by_timer_after_the_detector_emptied() -> None:
    """The detector's state is evicted when its window empties; the held
    alert still resolves at clear + keep_firing_for, then nothing is left."""
    rule = runner("keep_firing_for: 30s")
    for seconds in (1, 2, 3):
        rule.feed(event(seconds))

    first = rule.advance(20 * SECOND)
    assert [alert.status for *_, alert in first] == [FIRING]
    assert rule.groups == {}  # the window is empty: detector state evicted
    assert rule.snapshot_groups()["firing"] == 1

    later = rule.advance(60 * SECOND)

    # The condition cleared at 11 (the event at 1 left the 10s window).
    assert [(at, alert.status) for at, _, _, alert in later] == [
        (41 * SECOND, RESOLVED)
    ]
    assert rule.lifecycle.is_idle("web-1")
    assert rule.snapshot_groups() == {"groups": 0, "firing": 0}


def test_renotify_repeats_by_timer_between_watermarks() -> None:
    """Repeats are decided by the watermark, one per period passed."""
    rule = runner("renotify: 10s", threshold=1, size="1h")
    rule.feed(event(0))

    statuses = []
    for watermark in (1, 15, 35):
        statuses += [
            (at / SECOND, a.sequence)
            for at, _, _, a in rule.advance(watermark * SECOND)
        ]

    assert statuses == [(0, 1), (10, 2), (20, 3), (30, 4)]


def test_for_keep_firing_for_and_renotify_together_in_a_run() -> None:
    """Events at 1, 2, 3, 9 with threshold 2 in 10s: active from 2 to 13;
    fires at 7, repeats at 11 and 15, resolves at 13 + 3."""
    text = rules("for: 5s; keep_firing_for: 3s; renotify: 4s", threshold=2)

    alerts = run_rules(text, [[event(1), event(2), event(3), event(9)]])

    assert brief(alerts) == [
        ("web-1", FIRING, 1, 7.0),
        ("web-1", FIRING, 2, 7.0),
        ("web-1", FIRING, 3, 7.0),
        ("web-1", RESOLVED, 4, 16.0),
    ]
    assert [alert.last_seen_us for alert in alerts] == [
        s * SECOND for s in (7, 11, 13, 13)
    ]
    assert len({alert.incident_id for alert in alerts}) == 1


def test_alerts_of_timers_and_signals_come_out_in_time_order() -> None:
    """A firing decided by a timer in one group and a signal in another are
    interleaved by instant."""
    text = rules("for: 5s")
    batch = [event(s, source="a") for s in (1, 2, 3)]
    batch += [event(s, source="b") for s in (3.5, 4, 5)]

    alerts = run_rules(text, [sorted(batch, key=lambda e: e.time_us)])

    assert brief(alerts) == [
        ("a", FIRING, 1, 8.0),
        ("b", FIRING, 1, 10.0),
        ("a", RESOLVED, 2, 11.0),
        ("b", RESOLVED, 2, 13.5),
    ]


def test_flapping_group_in_a_run_and_its_console_lines() -> None:
    """One-second blips at 0, 2 and 4 with flapping {changes: 3, within: 10s}:
    the fourth change (3) sends 'flapping', the group settles resolved at
    5 + 10."""
    text = rules("flapping: {changes: 3, within: 10s}", threshold=1, size="1s")

    alerts = run_rules(text, [[event(0), event(2), event(4)]])

    assert [(a.status, a.sequence) for a in alerts] == [
        (FIRING, 1),
        (RESOLVED, 2),
        (FIRING, 1),
        (FLAPPING, 2),
        (RESOLVED, 3),
    ]
    settled = alerts[-1]
    assert (settled.ends_at_us, settled.suppressed) == (5 * SECOND, 1)
    assert format_alert(alerts[3]) == (
        "[FLAPPING] R: source=web-1 changes state too often; quiet until it settles"
    )


def test_console_lines_of_repeats_show_notice_and_suppressed() -> None:
    """A blip at 0, then events every 5s from 10 to 80 (active 10..85): the
    second incident is held back by the cooldown, notified by its repeats at
    40 and 70, and resolves at 85."""
    text = rules("cooldown: 1h; renotify: 30s", threshold=1, size="5s")
    batch = [event(0)] + [event(s) for s in range(10, 81, 5)]

    alerts = run_rules(text, [batch])

    summary = "1 matching events in 5s window (threshold 1)"
    assert [format_alert(alert) for alert in alerts] == [
        f"[MEDIUM] R: {summary}",
        "[RESOLVED] R: source=web-1 after 5s",
        f"[MEDIUM] R: {summary} (1 suppressed)",
        f"[MEDIUM] R: {summary} (notice 2)",
        "[RESOLVED] R: source=web-1 after 75s",
    ]
