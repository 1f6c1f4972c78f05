"""Lifecycle options in the rules file: parsing, ``defaults:`` merging, and
where errors are reported."""

from __future__ import annotations

import pytest

from engine.config import FlappingConfig, parse_config
from engine.errors import UsageError

SECOND = 1_000_000

DEFAULTS = """\
version: 1
sources: [{type: generator}]
defaults:
  severity: high
  labels: {team: ops, tier: web}
  annotations: {runbook: 'https://runbooks/{rule}'}
  window: {type: sliding, size: 30s}
  group_by: [source]
  for: 10s
  keep_firing_for: 1m
  cooldown: 5m
  renotify: 1h
  flapping: {changes: 4, within: 10m}
rules:
  - name: A
    detector: {type: burst, threshold: 3}
  - name: B
    severity: low
    labels: {tier: db}
    annotations: {dashboard: 'https://dash/{source}'}
    window: {type: sliding, size: 5s}
    for: 0s
    detector: {type: burst, threshold: 9}
"""


def problems_of(text: str) -> list[tuple[str, str, str]]:
    with pytest.raises(UsageError) as caught:
        parse_config(text, "r.yaml")
    return [(p.where, p.path, p.message) for p in caught.value.problems]


def test_rule_options_are_parsed_into_the_rule_config() -> None:
    """for, keep_firing_for, renotify and flapping become microseconds and a
    FlappingConfig."""
    config, _ = parse_config(DEFAULTS, "r.yaml")
    rule = config.rules[0]

    assert rule.for_us == 10 * SECOND
    assert rule.keep_firing_for_us == 60 * SECOND
    assert rule.cooldown_us == 300 * SECOND
    assert rule.renotify_us == 3600 * SECOND
    assert rule.flapping == FlappingConfig(changes=4, within_us=600 * SECOND)
    assert rule.timed


def test_rule_without_lifecycle_options_is_not_timed() -> None:
    """The defaults of every option leave the lifecycle without timers."""
    text = DEFAULTS.split("defaults:")[0] + (
        "rules:\n"
        "  - name: A\n"
        "    window: {type: sliding, size: 5s}\n"
        "    detector: {type: burst, threshold: 3}\n"
    )
    rule = parse_config(text, "r.yaml")[0].rules[0]

    assert (rule.for_us, rule.keep_firing_for_us, rule.renotify_us) == (0, 0, 0)
    assert rule.flapping is None
    assert dict(rule.annotations) == {}
    assert not rule.timed


def test_defaults_apply_to_a_rule_that_does_not_set_them() -> None:
    """Rule A takes every setting from defaults."""
    config, _ = parse_config(DEFAULTS, "r.yaml")
    rule = config.rules[0]

    assert rule.severity == "high"
    assert dict(rule.labels) == {"team": "ops", "tier": "web"}
    assert dict(rule.annotations) == {"runbook": "https://runbooks/{rule}"}
    assert rule.window.options["size"] == "30s"
    assert rule.group_by == ("source",)


def test_rule_keys_override_defaults_and_mappings_merge() -> None:
    """Rule B's own severity, window and for win; its labels and annotations
    merge with the defaults key by key."""
    config, _ = parse_config(DEFAULTS, "r.yaml")
    rule = config.rules[1]

    assert rule.severity == "low"
    assert rule.window.options["size"] == "5s"
    assert rule.for_us == 0
    assert rule.keep_firing_for_us == 60 * SECOND
    assert dict(rule.labels) == {"team": "ops", "tier": "db"}
    assert dict(rule.annotations) == {
        "runbook": "https://runbooks/{rule}",
        "dashboard": "https://dash/{source}",
    }


def test_window_from_defaults_is_reported_where_it_is_written() -> None:
    """A component taken from defaults says so in its location."""
    config, _ = parse_config(DEFAULTS, "r.yaml")

    assert config.rules[0].window.where.startswith("r.yaml:7:")
    assert "defaults.window" in config.rules[0].window.where
    assert "rules[1].window" in config.rules[1].window.where


def test_schema_error_in_defaults_is_located_in_defaults() -> None:
    """A bad duration under defaults points at its line in the defaults block."""
    text = DEFAULTS.replace("  for: 10s\n", "  for: soon\n")

    [(where, path, message)] = problems_of(text)

    assert (where, path) == ("r.yaml:9:8", "defaults.for")
    assert "soon" in message


def test_flapping_needs_changes_and_within() -> None:
    """flapping without within, or with zero changes, is rejected."""
    text = DEFAULTS.replace(
        "flapping: {changes: 4, within: 10m}", "flapping: {changes: 0}"
    )

    found = problems_of(text)

    paths = sorted(path for _, path, _ in found)
    assert paths == ["defaults.flapping", "defaults.flapping.changes"]
    assert any("within" in message for _, _, message in found)


def test_unknown_placeholder_in_default_annotation_is_located_in_defaults() -> None:
    """A default annotation is checked against each rule's fields; the error
    points at defaults and names the rule."""
    text = DEFAULTS.replace("https://runbooks/{rule}", "https://runbooks/{rulez}")

    found = problems_of(text)

    assert [(where, path) for where, path, _ in found] == [
        ("r.yaml:6:26", "defaults.annotations.runbook"),
        ("r.yaml:6:26", "defaults.annotations.runbook"),
    ]
    assert "{rulez}" in found[0][2] and "'A'" in found[0][2]
    assert "'B'" in found[1][2]


def test_unknown_placeholders_in_description_and_annotation_of_a_rule() -> None:
    """description and annotations are validated like summaries."""
    text = DEFAULTS.replace(
        "    severity: low\n",
        "    severity: low\n    description: 'from {sorce}'\n",
    ).replace("https://dash/{source}", "https://dash/{host}")

    found = problems_of(text)

    assert [path for _, path, _ in found] == [
        "rules[1].description",
        "rules[1].annotations.dashboard",
    ]
    assert "{sorce}" in found[0][2]
    assert "{host}" in found[1][2]


def test_alert_fields_are_known_to_templates() -> None:
    """Templates may use the alert's own fields."""
    names = "incident_id sequence starts_at ends_at first_seen last_seen suppressed"
    template = " ".join("{" + name + "}" for name in names.split())
    text = DEFAULTS.replace("https://runbooks/{rule}", template)

    config, _ = parse_config(text, "r.yaml")

    assert config.rules[0].annotations["runbook"] == template


def test_missing_window_in_rule_and_defaults_is_located_at_the_rule() -> None:
    """Without a window anywhere, the rule is reported as missing one."""
    text = DEFAULTS.replace("  window: {type: sliding, size: 30s}\n", "")

    [(where, path, message)] = problems_of(text)

    assert (where, path) == ("r.yaml:14:5", "rules[0]")
    assert "'window'" in message and "defaults" in message


def test_bad_window_option_in_defaults_is_reported_once() -> None:
    """A plugin's cross-check of a default component is reported once, at
    defaults, however many rules use it."""
    text = DEFAULTS.replace(
        "  window: {type: sliding, size: 30s}\n",
        "  window: {type: sliding, size: 0s}\n",
    ).replace("    window: {type: sliding, size: 5s}\n", "")

    found = problems_of(text)

    assert len(found) == 1
    assert found[0][1].startswith("defaults.window")


def test_unknown_key_in_defaults_is_rejected() -> None:
    """defaults takes rule settings only: not a name."""
    text = DEFAULTS.replace("  severity: high\n", "  severity: high\n  name: X\n")

    [(_, path, message)] = problems_of(text)

    assert path.startswith("defaults")
    assert "name" in message
