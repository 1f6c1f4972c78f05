"""The alert lifecycle: condition changes in, firing and resolved alerts out."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from engine.alerts import FIRING, RESOLVED, Alert
from engine.components import Signal
from engine.config import RuleConfig, parse_config
from engine.events import Event
from engine.lifecycle import RuleLifecycle
from engine.testing import event

SECOND = 1_000_000
WEB_EU: Hashable = ("web-1", "eu")


def rule_config(extra: str = "", summary: str = "{count} events") -> RuleConfig:
    """The one rule of a rules file grouped by source and metadata.zone.name."""
    text = (
        "version: 1\n"
        "sources: [{type: generator}]\n"
        "rules:\n"
        "  - name: ERROR_BURST\n"
        "    severity: high\n"
        "    description: errors pile up\n"
        "    group_by: [source, metadata.zone.name]\n"
        "    labels: {team: web}\n"
        "    window: {type: sliding, size: 10s}\n"
        "    detector: {type: burst, threshold: 3}\n"
        f"    summary: '{summary}'\n" + extra
    )
    config, _ = parse_config(text, "r.yaml")
    return config.rules[0]


def evidence(count: int) -> dict[str, Any]:
    return {"count": count, "threshold": 3, "window": "10s"}


def rise(seconds: float, count: int = 3) -> Signal:
    return Signal(int(seconds * SECOND), True, evidence(count))


def fall(seconds: float, count: int = 2) -> Signal:
    return Signal(int(seconds * SECOND), False, evidence(count))


EXEMPLAR = event(1.0, "ERROR", "web-1", 4.5, zone={"name": "eu"}, host="h1")


def send(
    lifecycle: RuleLifecycle,
    signal: Signal,
    key: Hashable = WEB_EU,
    exemplar: Event | None = EXEMPLAR,
) -> Alert | None:
    return lifecycle.on_signal(key, signal, exemplar)


def test_firing_then_resolved_share_one_incident() -> None:
    """The resolution carries the firing's incident id, with sequence 2."""
    lifecycle = RuleLifecycle(rule_config())

    firing = send(lifecycle, rise(1))
    resolved = send(lifecycle, fall(11))

    assert firing is not None and resolved is not None
    assert (firing.status, firing.sequence) == (FIRING, 1)
    assert (resolved.status, resolved.sequence) == (RESOLVED, 2)
    assert resolved.incident_id == firing.incident_id
    assert firing.starts_at_us == resolved.starts_at_us == 1 * SECOND
    assert firing.ends_at_us is None
    assert resolved.ends_at_us == 11 * SECOND


def test_alert_carries_rule_severity_description_and_evidence() -> None:
    """Rule settings and the detector's evidence are copied into the alert."""
    firing = send(RuleLifecycle(rule_config()), rise(1, count=4))

    assert firing is not None
    assert (firing.rule, firing.severity, firing.description) == (
        "ERROR_BURST",
        "high",
        "errors pile up",
    )
    assert dict(firing.evidence) == evidence(4)


def test_incident_ids_are_the_same_for_the_same_input() -> None:
    """Two lifecycles fed the same edges give the same incident ids."""
    ids = []
    for _ in range(2):
        lifecycle = RuleLifecycle(rule_config())
        alerts = [send(lifecycle, rise(1)), send(lifecycle, fall(11))]
        alerts += [send(lifecycle, rise(20)), send(lifecycle, fall(30))]
        ids.append([alert.incident_id for alert in alerts if alert is not None])

    assert len(ids[0]) == 4
    assert ids[0] == ids[1]


def test_each_rising_edge_starts_a_new_incident() -> None:
    """A second burst of the same group gets a new id and starts at sequence 1."""
    lifecycle = RuleLifecycle(rule_config())

    first = send(lifecycle, rise(1))
    send(lifecycle, fall(11))
    second = send(lifecycle, rise(20))

    assert first is not None and second is not None
    assert second.incident_id != first.incident_id
    assert second.sequence == 1


def test_groups_firing_at_the_same_instant_get_different_incidents() -> None:
    """The group is part of the incident's identity."""
    lifecycle = RuleLifecycle(rule_config())

    one = send(lifecycle, rise(1), key=("web-1", "eu"))
    other = send(lifecycle, rise(1), key=("web-2", "eu"))

    assert one is not None and other is not None
    assert one.incident_id != other.incident_id


def test_rising_signal_while_firing_sends_nothing() -> None:
    """A group already firing is not notified again."""
    lifecycle = RuleLifecycle(rule_config())
    send(lifecycle, rise(1))

    assert send(lifecycle, rise(2)) is None


def test_falling_signal_without_an_incident_sends_nothing() -> None:
    """A resolution with nothing open is ignored."""
    assert send(RuleLifecycle(rule_config()), fall(5)) is None


def test_labels_hold_group_labels_and_static_labels() -> None:
    """labels = group key by field path + the rule's labels; group = key only."""
    firing = send(RuleLifecycle(rule_config()), rise(1))

    assert firing is not None
    assert dict(firing.group) == {"source": "web-1", "metadata.zone.name": "eu"}
    assert dict(firing.labels) == {
        "source": "web-1",
        "metadata.zone.name": "eu",
        "team": "web",
    }


def test_summary_renders_evidence_and_rule_fields() -> None:
    """Evidence, rule name, severity and status fill the template."""
    template = "{rule} {severity} {status}: {count}/{threshold} in {window}"
    lifecycle = RuleLifecycle(rule_config(summary=template))

    firing = send(lifecycle, rise(1, count=4))
    resolved = send(lifecycle, fall(11, count=2))

    assert firing is not None and resolved is not None
    assert firing.summary == "ERROR_BURST high firing: 4/3 in 10s"
    assert resolved.summary == "ERROR_BURST high resolved: 2/3 in 10s"


def test_summary_renders_group_labels_by_full_path_and_last_segment() -> None:
    """A group path is usable whole and by its last segment, labels by name."""
    template = "{source} {metadata.zone.name} {name} {team}"
    firing = send(RuleLifecycle(rule_config(summary=template)), rise(1))

    assert firing is not None
    assert firing.summary == "web-1 eu eu web"


def test_summary_renders_event_fields_from_the_exemplar() -> None:
    """event_type, source, value and metadata come from the exemplar event."""
    template = "{event_type} {value} {metadata.host}"
    firing = send(RuleLifecycle(rule_config(summary=template)), rise(1))

    assert firing is not None
    assert firing.summary == "ERROR 4.5 h1"


def test_summary_renders_nested_metadata_from_the_exemplar() -> None:
    """metadata.a.b in a template reads the nested value of the exemplar."""
    config = rule_config(summary="{metadata.build.tag}")
    exemplar = event(1.0, "ERROR", "web-1", build={"tag": "v2"})

    firing = send(RuleLifecycle(config), rise(1), exemplar=exemplar)

    assert firing is not None
    assert firing.summary == "v2"


def test_summary_without_exemplar_renders_event_fields_as_dashes() -> None:
    """With no exemplar, event fields are '-' while group labels still render."""
    template = "{event_type} {metadata.host} {source}"
    lifecycle = RuleLifecycle(rule_config(summary=template))

    firing = send(lifecycle, rise(1), exemplar=None)

    assert firing is not None
    assert firing.summary == "- - web-1"


def cooled(cooldown: str = "60s") -> RuleLifecycle:
    return RuleLifecycle(rule_config(extra=f"    cooldown: {cooldown}\n"))


def test_cooldown_suppresses_an_edge_and_its_resolution() -> None:
    """An edge within the cooldown of the last notification is not sent, nor
    is its resolution; it is counted as suppressed."""
    lifecycle = cooled("60s")
    assert send(lifecycle, rise(1)) is not None
    assert send(lifecycle, fall(11)) is not None

    suppressed_firing = send(lifecycle, rise(20))
    suppressed_resolution = send(lifecycle, fall(30))

    assert suppressed_firing is None
    assert suppressed_resolution is None
    assert lifecycle.suppressed == 1


def test_edge_after_the_cooldown_is_sent() -> None:
    """Once the cooldown has passed since the last notification, edges go out;
    a suppressed edge does not extend the cooldown."""
    lifecycle = cooled("60s")
    send(lifecycle, rise(1))
    send(lifecycle, fall(11))
    send(lifecycle, rise(20))
    send(lifecycle, fall(30))

    later = send(lifecycle, rise(70))
    later_resolution = send(lifecycle, fall(80))

    assert later is not None and later_resolution is not None
    assert later.status == FIRING
    assert later.starts_at_us == 70 * SECOND
    assert later_resolution.incident_id == later.incident_id
    assert later_resolution.sequence == 2
    assert lifecycle.suppressed == 1


def test_cooldown_is_per_group() -> None:
    """One group's notification does not silence another group."""
    lifecycle = cooled("60s")
    send(lifecycle, rise(1), key=("web-1", "eu"))

    other = send(lifecycle, rise(2), key=("web-2", "eu"))

    assert other is not None
    assert lifecycle.suppressed == 0


def test_without_cooldown_every_edge_is_sent() -> None:
    """With no cooldown, quick successive bursts are all notified."""
    lifecycle = RuleLifecycle(rule_config())
    statuses = []
    for start in (1, 3, 5):
        for alert in (send(lifecycle, rise(start)), send(lifecycle, fall(start + 1))):
            assert alert is not None
            statuses.append(alert.status)

    assert statuses == [FIRING, RESOLVED] * 3
    assert lifecycle.suppressed == 0


def test_forget_cooldowns_keeps_records_that_still_matter() -> None:
    """Forgetting stale cooldowns does not let an edge inside one through."""
    lifecycle = cooled("60s")
    send(lifecycle, rise(1))
    send(lifecycle, fall(11))

    lifecycle.forget_cooldowns(30 * SECOND)

    assert send(lifecycle, rise(40)) is None
    assert lifecycle.suppressed == 1
