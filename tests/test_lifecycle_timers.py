"""The lifecycle's own transitions in time: for, keep_firing_for, renotify,
flap damping, and how each combines with cooldown."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from engine.alerts import FIRING, FLAPPING, RESOLVED, Alert
from engine.components import Signal
from engine.config import parse_config
from engine.lifecycle import RuleLifecycle
from engine.timeutil import END_OF_TIME

SECOND = 1_000_000
KEY: Hashable = "web-1"  # the key of a rule grouped by one field


def lifecycle(options: str = "", description: str = "") -> RuleLifecycle:
    """The lifecycle of one burst rule grouped by source, with ``options``."""
    lines = [
        "version: 1",
        "sources: [{type: generator}]",
        "rules:",
        "  - name: R",
        "    group_by: [source]",
        "    window: {type: sliding, size: 10s}",
        "    detector: {type: burst, threshold: 3}",
        "    summary: '{count} events'",
    ]
    lines += [f"    {option.strip()}" for option in options.split(";") if option]
    if description:
        lines.append(f"    description: '{description}'")
    config, _ = parse_config("\n".join(lines) + "\n", "r.yaml")
    return RuleLifecycle(config.rules[0])


def on(seconds: float, count: int = 3) -> Signal:
    return Signal(round(seconds * SECOND), True, {"count": count, "threshold": 3})


def off(seconds: float, count: int = 2) -> Signal:
    return Signal(round(seconds * SECOND), False, {"count": count, "threshold": 3})


def drive(
    life: RuleLifecycle,
    signals: Sequence[Signal],
    until_seconds: float | None = None,
    key: Hashable = KEY,
) -> list[tuple[float, Alert]]:
    """Feed signals as the rule runner does (the lifecycle's transitions
    before each signal first), then advance to ``until_seconds``; returns
    (instant in seconds, alert)."""
    out: list[tuple[int, Alert]] = []
    for signal in signals:
        out += life.advance(key, signal.at_us)
        alert = life.on_signal(key, signal, None)
        if alert is not None:
            out.append((signal.at_us, alert))
    if until_seconds is not None:
        out += life.advance(key, round(until_seconds * SECOND))
    return [(at / SECOND, alert) for at, alert in out]


def brief(notices: list[tuple[float, Alert]]) -> list[tuple[float, str, int]]:
    return [(at, alert.status, alert.sequence) for at, alert in notices]


# -- for ------------------------------------------------------------------


def test_for_fires_at_activation_plus_for_with_no_further_signal() -> None:
    """The alert fires at activation + for, starting then, with the
    activation's evidence and first_seen at the activation."""
    life = lifecycle("for: 5s")

    notices = drive(life, [on(2, count=4)], until_seconds=100)

    assert brief(notices) == [(7.0, FIRING, 1)]
    alert = notices[0][1]
    assert alert.starts_at_us == 7 * SECOND
    assert alert.first_seen_us == 2 * SECOND
    assert alert.last_seen_us == 7 * SECOND
    assert alert.evidence["count"] == 4


def test_for_waits_until_the_instant_is_passed() -> None:
    """Advancing up to activation + for (exclusive) does not fire yet; the
    wake-up names that instant."""
    life = lifecycle("for: 5s")

    assert drive(life, [on(2)], until_seconds=7) == []
    assert life.next_wakeup(KEY) == 7 * SECOND
    assert not life.is_idle(KEY)


def test_for_drops_a_condition_that_clears_before() -> None:
    """A condition active for less than for sends nothing and leaves no state."""
    life = lifecycle("for: 5s")

    notices = drive(life, [on(2), off(6)], until_seconds=100)

    assert notices == []
    assert life.is_idle(KEY)
    assert life.next_wakeup(KEY) is None


def test_for_is_not_met_by_a_clear_at_exactly_activation_plus_for() -> None:
    """The condition must still be active at activation + for."""
    life = lifecycle("for: 5s")

    assert drive(life, [on(2), off(7)], until_seconds=100) == []


def test_for_then_resolution_at_the_clear() -> None:
    """After firing, the clear resolves the same incident at its instant."""
    life = lifecycle("for: 5s")

    notices = drive(life, [on(2), off(20)], until_seconds=100)

    assert brief(notices) == [(7.0, FIRING, 1), (20.0, RESOLVED, 2)]
    firing, resolved = notices[0][1], notices[1][1]
    assert resolved.incident_id == firing.incident_id
    assert (resolved.starts_at_us, resolved.ends_at_us) == (7 * SECOND, 20 * SECOND)
    assert life.is_idle(KEY)


def test_for_with_cooldown_measures_from_the_firing_instant() -> None:
    """Cooldown compares the firing instants (activation + for)."""
    life = lifecycle("for: 5s; cooldown: 30s")

    notices = drive(life, [on(0), off(10), on(20), off(40), on(50)], 200)

    # Fired at 5; 25 is within 30s of 5 (held back); 55 is not.
    assert brief(notices) == [(5.0, FIRING, 1), (10.0, RESOLVED, 2), (55.0, FIRING, 1)]
    assert notices[2][1].suppressed == 1
    assert life.suppressed == 1


# -- keep_firing_for ----------------------------------------------------------


def test_keep_firing_for_resolves_at_clear_plus_duration() -> None:
    """With no return, the incident resolves at clear + keep_firing_for, its
    last_seen at the clear."""
    life = lifecycle("keep_firing_for: 30s")

    notices = drive(life, [on(1), off(10)], until_seconds=1000)

    assert brief(notices) == [(1.0, FIRING, 1), (40.0, RESOLVED, 2)]
    resolved = notices[1][1]
    assert resolved.ends_at_us == 40 * SECOND
    assert resolved.last_seen_us == 10 * SECOND
    assert resolved.evidence["count"] == 2


def test_keep_firing_for_wakes_up_at_the_expiry() -> None:
    """While held, the group is not idle and wakes at clear + duration."""
    life = lifecycle("keep_firing_for: 30s")

    drive(life, [on(1), off(10)], until_seconds=12)

    assert life.next_wakeup(KEY) == 40 * SECOND
    assert not life.is_idle(KEY)


def test_keep_firing_for_return_continues_the_incident() -> None:
    """A return within the duration sends nothing; the one incident resolves
    after the final clear."""
    life = lifecycle("keep_firing_for: 30s")

    notices = drive(life, [on(1), off(10), on(25), off(50)], until_seconds=1000)

    assert brief(notices) == [(1.0, FIRING, 1), (80.0, RESOLVED, 2)]
    assert notices[0][1].incident_id == notices[1][1].incident_id
    assert notices[1][1].last_seen_us == 50 * SECOND


def test_keep_firing_for_return_at_the_expiry_instant_continues() -> None:
    """A return at exactly clear + duration still counts as within it."""
    life = lifecycle("keep_firing_for: 30s")

    notices = drive(life, [on(1), off(10), on(40), off(45)], until_seconds=1000)

    assert brief(notices) == [(1.0, FIRING, 1), (75.0, RESOLVED, 2)]


def test_keep_firing_for_return_is_not_a_suppressed_edge() -> None:
    """With cooldown, a return within keep_firing_for is the same incident,
    neither suppressed nor counted."""
    life = lifecycle("keep_firing_for: 30s; cooldown: 1h")

    notices = drive(life, [on(1), off(10), on(25), off(50)], until_seconds=1000)

    assert brief(notices) == [(1.0, FIRING, 1), (80.0, RESOLVED, 2)]
    assert life.suppressed == 0
    assert notices[1][1].suppressed == 0


def test_keep_firing_for_then_cooldown_holds_the_next_incident() -> None:
    """After resolution at clear + duration, a new edge within the cooldown of
    the first firing is held back, with its resolution."""
    life = lifecycle("keep_firing_for: 5s; cooldown: 60s")

    notices = drive(life, [on(1), off(10), on(30), off(40)], until_seconds=1000)

    assert brief(notices) == [(1.0, FIRING, 1), (15.0, RESOLVED, 2)]
    assert life.suppressed == 1


# -- renotify -----------------------------------------------------------------


def test_renotify_repeats_while_firing_with_next_sequence() -> None:
    """Repeats come every renotify after the last notification, then the
    resolution follows with the next sequence."""
    life = lifecycle("renotify: 10s")

    notices = drive(life, [on(1), off(35)], until_seconds=1000)

    assert brief(notices) == [
        (1.0, FIRING, 1),
        (11.0, FIRING, 2),
        (21.0, FIRING, 3),
        (31.0, FIRING, 4),
        (35.0, RESOLVED, 5),
    ]
    assert len({alert.incident_id for _, alert in notices}) == 1
    assert [alert.last_seen_us for _, alert in notices[:4]] == [
        s * SECOND for s in (1, 11, 21, 31)
    ]


def test_renotify_does_not_repeat_an_endless_incident_at_end_of_input() -> None:
    """At the end of time a still-active group gets no more repeats, and the
    advance terminates."""
    life = lifecycle("renotify: 10s")
    drive(life, [on(1)], until_seconds=25)

    assert life.advance(KEY, END_OF_TIME) == []
    assert life.next_wakeup(KEY) is None


def test_renotify_continues_during_keep_firing_for() -> None:
    """The alert still fires while held, so it is still repeated."""
    life = lifecycle("renotify: 10s; keep_firing_for: 25s")

    notices = drive(life, [on(0), off(5)], until_seconds=1000)

    assert brief(notices) == [
        (0.0, FIRING, 1),
        (10.0, FIRING, 2),
        (20.0, FIRING, 3),
        (30.0, RESOLVED, 4),
    ]
    assert notices[1][1].last_seen_us == 5 * SECOND


def test_renotify_notifies_an_incident_held_back_by_cooldown() -> None:
    """An incident suppressed by cooldown that still fires renotify after its
    start is notified then (sequence 1, suppressed 1), and so resolves."""
    life = lifecycle("renotify: 20s; cooldown: 1h")

    notices = drive(life, [on(0), off(5), on(10), off(100)], until_seconds=1000)

    assert brief(notices) == [
        (0.0, FIRING, 1),
        (5.0, RESOLVED, 2),
        (30.0, FIRING, 1),
        (50.0, FIRING, 2),
        (70.0, FIRING, 3),
        (90.0, FIRING, 4),
        (100.0, RESOLVED, 5),
    ]
    assert [alert.suppressed for _, alert in notices] == [0, 0, 1, 0, 0, 0, 0]
    assert notices[2][1].starts_at_us == 10 * SECOND
    assert notices[2][1].incident_id != notices[0][1].incident_id


# -- flapping -----------------------------------------------------------------

FLAP = "flapping: {changes: 3, within: 60s}"


def test_flapping_notifies_once_then_the_settled_firing_state() -> None:
    """The fourth change within 60s sends 'flapping'; later changes are quiet;
    60s after the last change the actual state (firing) is notified, with the
    rising edges held back meanwhile."""
    life = lifecycle(FLAP)
    signals = [on(0), off(10), on(20), off(30), on(40), off(50), on(55)]

    notices = drive(life, signals, until_seconds=1000)

    assert brief(notices) == [
        (0.0, FIRING, 1),
        (10.0, RESOLVED, 2),
        (20.0, FIRING, 1),
        (30.0, FLAPPING, 2),
        (115.0, FIRING, 3),
    ]
    flapping, settled = notices[3][1], notices[4][1]
    assert flapping.incident_id == settled.incident_id == notices[2][1].incident_id
    assert settled.suppressed == 2  # the rises at 40 and 55
    assert settled.starts_at_us == 20 * SECOND


def test_flapping_settles_resolved_with_the_last_end() -> None:
    """A group that settles inactive gets one resolution, sent at the settle
    instant with ends_at at the last fall."""
    life = lifecycle(FLAP)
    signals = [on(0), off(10), on(20), off(30), on(40), off(50)]

    notices = drive(life, signals, until_seconds=1000)

    assert brief(notices)[-2:] == [(30.0, FLAPPING, 2), (110.0, RESOLVED, 3)]
    resolved = notices[-1][1]
    assert resolved.ends_at_us == 50 * SECOND
    assert resolved.suppressed == 1
    assert life.is_idle(KEY)


def test_flapping_needs_more_than_k_changes_within_the_period() -> None:
    """Changes spread wider than the period never flap; the history of a
    quiet group expires, leaving it idle."""
    life = lifecycle(FLAP)
    signals = [on(0), off(30), on(61), off(91), on(122), off(152)]

    notices = drive(life, signals, until_seconds=1000)

    assert [status for _, status, _ in brief(notices)] == [FIRING, RESOLVED] * 3
    assert life.is_idle(KEY)


def test_flapping_change_exactly_one_period_later_counts() -> None:
    """Changes at t and t + within are within the period of each other."""
    life = lifecycle("flapping: {changes: 1, within: 10s}")

    notices = drive(life, [on(0), off(10)], until_seconds=1000)

    assert brief(notices) == [
        (0.0, FIRING, 1),
        (10.0, FLAPPING, 2),
        (20.0, RESOLVED, 3),
    ]


def test_flapping_with_cooldown_counts_held_back_incidents_as_changes() -> None:
    """Incidents held back by cooldown still change the state: they count
    toward flapping, and the flapping notice goes out despite the cooldown."""
    life = lifecycle(FLAP + "; cooldown: 1h")
    signals = [on(0), off(10), on(20), off(30), on(40)]

    notices = drive(life, signals, until_seconds=1000)

    assert brief(notices) == [
        (0.0, FIRING, 1),
        (10.0, RESOLVED, 2),
        (30.0, FLAPPING, 1),
        (100.0, FIRING, 2),
    ]
    assert notices[2][1].suppressed == 1  # the held-back rise at 20
    assert notices[3][1].suppressed == 1  # the rise at 40, during flapping


def test_flapping_stops_repeats_until_it_settles() -> None:
    """No repeat is sent while flapping; repeats resume after the settle."""
    life = lifecycle(FLAP + "; renotify: 25s")
    signals = [on(0), off(10), on(20), off(30), on(40)]

    notices = drive(life, signals, until_seconds=150)

    assert brief(notices) == [
        (0.0, FIRING, 1),
        (10.0, RESOLVED, 2),
        (20.0, FIRING, 1),
        (30.0, FLAPPING, 2),
        (100.0, FIRING, 3),
        (125.0, FIRING, 4),
    ]


def test_for_keeps_flapping_away_from_short_blips() -> None:
    """Blips shorter than for change no alert state, so they never flap."""
    life = lifecycle(FLAP + "; for: 5s")
    signals = [s for t in range(0, 50, 10) for s in (on(t), off(t + 2))]

    assert drive(life, signals, until_seconds=1000) == []
    assert life.is_idle(KEY)


# -- suppressed counts and templates --------------------------------------------


def test_next_notification_reports_edges_held_back_by_cooldown() -> None:
    """Two incidents held back by cooldown show as suppressed 2 on the next
    notification of the group."""
    life = lifecycle("cooldown: 60s")
    signals = [on(0), off(5), on(10), off(15), on(20), off(25), on(70)]

    notices = drive(life, signals, until_seconds=71)

    assert brief(notices) == [(0.0, FIRING, 1), (5.0, RESOLVED, 2), (70.0, FIRING, 1)]
    assert notices[-1][1].suppressed == 2


def test_a_quiet_group_forgets_its_suppressed_count_after_the_cooldown() -> None:
    """The count is kept for cooldown after the group goes quiet, then the
    group is dropped."""
    life = lifecycle("cooldown: 60s")
    drive(life, [on(0), off(5), on(10), off(15)], until_seconds=16)

    assert life.next_wakeup(KEY) == 75 * SECOND
    assert drive(life, [], until_seconds=76) == []
    assert life.is_idle(KEY)


def test_description_and_annotations_render_alert_fields() -> None:
    """description and annotations are templates over the alert's fields."""
    text = (
        "version: 1\n"
        "sources: [{type: generator}]\n"
        "rules:\n"
        "  - name: R\n"
        "    group_by: [source]\n"
        "    window: {type: sliding, size: 10s}\n"
        "    detector: {type: burst, threshold: 3}\n"
        "    for: 5s\n"
        "    labels: {team: web}\n"
        "    description: '{source} since {first_seen}'\n"
        "    annotations:\n"
        "      runbook: 'https://runbooks/{rule}/{team}'\n"
        "      state: '{status} #{sequence} ({suppressed} held, {count} events)'\n"
    )
    config, _ = parse_config(text, "r.yaml")
    life = RuleLifecycle(config.rules[0])

    notices = drive(life, [on(2, count=4)], until_seconds=100)

    alert = notices[0][1]
    assert alert.description == "web-1 since 1970-01-01T00:00:02.000Z"
    assert dict(alert.annotations) == {
        "runbook": "https://runbooks/R/web",
        "state": "firing #1 (0 held, 4 events)",
    }
    form = alert.to_dict()
    assert form["first_seen"] == "1970-01-01T00:00:02.000Z"
    assert form["last_seen"] == "1970-01-01T00:00:07.000Z"
    assert form["suppressed"] == 0
    assert form["annotations"]["runbook"] == "https://runbooks/R/web"
