"""Validating a rules file and building its frozen configuration."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest
import yaml

from engine.alerts import Alert
from engine.components import Sink
from engine.config import EngineConfig, parse_config
from engine.errors import Problem, UsageError
from engine.hookspecs import hookimpl
from engine.plugin_manager import load_plugins
from engine.schema import compose_schema

REPO = Path(__file__).resolve().parent.parent
SECOND = 1_000_000

MINIMAL = """\
version: 1
sources:
  - type: generator
rules:
  - name: A
    window: {type: sliding, size: 10s}
    detector: {type: burst, threshold: 3}
"""

FULL = """\
version: 1
sources:
  - type: jsonl
    path: events.jsonl
time:
  allowed_lateness: 2s
  late: include
  idle_timeout: 250ms
rules:
  - name: ERROR_BURST
    severity: high
    match: {event_type: [ERROR, FATAL], source: "web-*"}
    group_by: [source, metadata.zone]
    window: {type: sliding, size: 1.5m}
    detector: {type: burst, threshold: 7, rearm_below: 5}
    summary: "{count} {event_type} from {source} in {zone} ({team})"
    labels: {team: web}
    cooldown: 1m
    description: too many errors
sinks:
  - type: jsonl
    path: alerts.jsonl
    send_resolved: false
counters:
  window: 10s
  top: 3
dead_letter: {path: bad.jsonl}
"""


def problems_of(text: str, **kwargs: Any) -> list[Problem]:
    """The problems parse_config reports for ``text`` (which must be bad)."""
    with pytest.raises(UsageError) as caught:
        parse_config(text, "r.yaml", **kwargs)
    return caught.value.problems


def only_problem(text: str) -> Problem:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    return problems[0]


def rule_file(rule_lines: str, extra: str = "") -> str:
    """A rules file with one rule whose body is ``rule_lines`` (indented 4)."""
    return (
        "version: 1\nsources:\n  - type: generator\nrules:\n  - name: A\n"
        + rule_lines
        + extra
    )


def test_full_file_builds_the_expected_config() -> None:
    """Every section of a valid file lands in the config, durations in µs."""
    config, _ = parse_config(FULL, "r.yaml", Path("/base"))

    assert config.path == "r.yaml"
    assert config.base_dir == Path("/base")
    assert [(s.type, dict(s.options)) for s in config.sources] == [
        ("jsonl", {"path": "events.jsonl"})
    ]
    assert config.time.mode == "event"
    assert config.time.allowed_lateness_us == 2 * SECOND
    assert config.time.late == "include"
    assert config.time.idle_timeout_us == 250_000
    [rule] = config.rules
    assert rule.name == "ERROR_BURST"
    assert rule.index == 0
    assert rule.severity == "high"
    assert dict(rule.match) == {"event_type": ["ERROR", "FATAL"], "source": "web-*"}
    assert rule.group_by == ("source", "metadata.zone")
    assert (rule.window.type, dict(rule.window.options)) == (
        "sliding",
        {"size": "1.5m"},
    )
    assert (rule.detector.type, dict(rule.detector.options)) == (
        "burst",
        {"threshold": 7, "rearm_below": 5},
    )
    assert rule.summary == "{count} {event_type} from {source} in {zone} ({team})"
    assert dict(rule.labels) == {"team": "web"}
    assert rule.cooldown_us == 60 * SECOND
    assert rule.description == "too many errors"
    assert [(s.type, dict(s.options)) for s in config.sinks] == [
        ("jsonl", {"path": "alerts.jsonl", "send_resolved": False})
    ]
    assert config.counters.window_us == 10 * SECOND
    assert config.counters.interval_us == 5 * SECOND
    assert config.counters.top == 3
    assert config.dead_letter == Path("/base/bad.jsonl")


def test_rule_and_component_positions_name_the_file_and_line() -> None:
    """Built objects remember where they were written."""
    config, _ = parse_config(FULL, "r.yaml")

    assert config.rules[0].where.startswith("r.yaml:10:")
    assert config.rules[0].window.where.startswith("r.yaml:14:")
    assert config.sinks[0].where.startswith("r.yaml:21:")


def test_minimal_file_gets_the_documented_defaults() -> None:
    """Event time, no lateness, drop late events, 5s idle timeout, one console
    sink, no cooldown, one group."""
    config, _ = parse_config(MINIMAL, "r.yaml")

    assert config.time.mode == "event"
    assert config.time.allowed_lateness_us == 0
    assert config.time.late == "drop"
    assert config.time.idle_timeout_us == 5 * SECOND
    assert [(s.type, dict(s.options)) for s in config.sinks] == [("console", {})]
    assert config.rules[0].cooldown_us == 0
    assert config.rules[0].group_by == ()
    assert dict(config.rules[0].match) == {}
    assert config.dead_letter is None
    assert config.plugins == ()


def test_idle_timeout_null_turns_idle_advance_off() -> None:
    """``idle_timeout: null`` means the watermark never follows the clock."""
    config, _ = parse_config(MINIMAL + "time: {idle_timeout: null}\n", "r.yaml")

    assert config.time.idle_timeout_us is None


def test_empty_sinks_list_means_no_sinks() -> None:
    """An explicit empty list is kept, not replaced by the console default."""
    config, _ = parse_config(MINIMAL + "sinks: []\n", "r.yaml")

    assert config.sinks == ()


def test_config_is_frozen() -> None:
    """The built config and its option mappings cannot be changed."""
    config, _ = parse_config(FULL, "r.yaml")

    with pytest.raises(dataclasses.FrozenInstanceError):
        config.time = config.time  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.rules[0].name = "B"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.rules[0].detector.options["threshold"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        config.rules[0].labels["team"] = "db"  # type: ignore[index]
    assert isinstance(config, EngineConfig)


def test_wrong_type_names_location_path_and_found_value() -> None:
    """A bad option value is located by file:line:col and document path."""
    text = rule_file(
        "    window: {type: sliding, size: 10s}\n"
        "    detector: {type: burst, threshold: seven}\n"
    )

    problem = only_problem(text)

    assert problem.where == "r.yaml:7:40"
    assert problem.path == "rules[0].detector.threshold"
    assert 'found "seven"' in problem.message
    assert "expected" in problem.message


def test_wrong_type_says_which_type_is_expected() -> None:
    """A value of the wrong type names the type the option needs."""
    text = rule_file(
        "    window: {type: sliding, size: 10s}\n"
        "    detector: {type: burst, threshold: seven}\n"
    )

    assert "integer" in only_problem(text).message


def test_out_of_range_number_says_the_bound() -> None:
    """threshold: 0 is found 0, expected a number at least 1."""
    text = rule_file(
        "    window: {type: sliding, size: 10s}\n"
        "    detector: {type: burst, threshold: 0}\n"
    )

    problem = only_problem(text)

    assert problem.path == "rules[0].detector.threshold"
    assert problem.message == "found 0, expected a number at least 1"


def test_error_in_second_rule_names_its_index() -> None:
    """The document path counts rules from zero."""
    text = MINIMAL + (
        "  - name: B\n"
        "    window: {type: sliding, size: 10s}\n"
        "    detector: {type: burst, threshold: -2}\n"
    )

    problem = only_problem(text)

    assert problem.path == "rules[1].detector.threshold"
    assert problem.where == "r.yaml:10:40"


def test_misspelt_key_is_an_error_with_a_hint() -> None:
    """``treshold`` is unknown; the message lists the keys and suggests one."""
    text = rule_file(
        "    window: {type: sliding, size: 10s}\n"
        "    detector:\n"
        "      type: burst\n"
        "      threshold: 3\n"
        "      treshold: 4\n"
    )

    problem = only_problem(text)

    assert problem.where == "r.yaml:10:7"
    assert problem.path == "rules[0].detector.treshold"
    assert "unknown key 'treshold'" in problem.message
    assert "did you mean 'threshold'?" in problem.message
    assert "rearm_below" in problem.message


def test_unknown_key_far_from_any_known_one_has_no_hint() -> None:
    """No suggestion is made when nothing is close."""
    text = MINIMAL + "colour: blue\n"

    problem = only_problem(text)

    assert problem.path == "colour"
    assert problem.where == "r.yaml:8:1"
    assert "unknown key 'colour'" in problem.message
    assert "did you mean" not in problem.message


def test_unknown_key_in_time_section_is_an_error() -> None:
    """Unknown keys are errors everywhere, not only in components."""
    problem = only_problem(MINIMAL + "time: {mode: event, grace: 2s}\n")

    assert problem.path == "time.grace"
    assert "unknown key 'grace'" in problem.message


def test_every_schema_error_is_reported_at_once() -> None:
    """Several mistakes in one file all appear in one UsageError, in order."""
    text = (
        "version: 1\n"
        "sources:\n"
        "  - type: generator\n"
        "rules:\n"
        "  - name: A\n"
        "    window: {type: sliding, size: soon}\n"
        "    detector: {type: burst, threshold: 3}\n"
        "  - name: B\n"
        "    severity: huge\n"
        "    window: {type: sliding, size: 10s}\n"
        "    detector: {type: burst, treshold: 3}\n"
    )

    problems = problems_of(text)

    assert [p.path for p in problems] == [
        "rules[0].window.size",
        "rules[1].severity",
        "rules[1].detector",
        "rules[1].detector.treshold",
    ]
    assert all(re.fullmatch(r"r\.yaml:\d+:\d+", p.where) for p in problems)
    assert "missing key: 'threshold'" in problems[2].message


def test_every_cross_check_error_is_reported_at_once() -> None:
    """Checks beyond the schema also report every problem together."""
    text = (
        "version: 1\n"
        "sources:\n"
        "  - type: generator\n"
        "rules:\n"
        "  - name: A\n"
        "    window: {type: sliding, size: 0s}\n"
        "    detector: {type: burst, threshold: 3, rearm_below: 4}\n"
        "    summary: '{nope}'\n"
        "  - name: A\n"
        "    window: {type: sliding, size: 10s}\n"
        "    detector: {type: burst, threshold: 3}\n"
    )

    problems = problems_of(text)

    assert [p.path for p in problems] == [
        "rules[0].window.size",
        "rules[0].detector.rearm_below",
        "rules[0].summary",
        "rules[1].name",
    ]


def test_unknown_sink_type_lists_the_known_ones() -> None:
    """An unknown ``type:`` is located and every installed type is named."""
    problem = only_problem(MINIMAL + "sinks:\n  - type: slack\n")

    assert problem.path == "sinks[0].type"
    assert problem.where == "r.yaml:9:11"
    assert 'found "slack"' in problem.message
    assert '"console"' in problem.message
    assert '"jsonl"' in problem.message


def test_unknown_window_type_lists_the_known_ones() -> None:
    """A misspelt window type names the type that exists."""
    text = rule_file(
        "    window: {type: slidin, size: 10s}\n"
        "    detector: {type: burst, threshold: 3}\n"
    )

    problem = only_problem(text)

    assert problem.path == "rules[0].window.type"
    assert '"sliding"' in problem.message


def test_duplicate_rule_names_are_an_error() -> None:
    """The second rule with a name already used is reported against its name."""
    text = MINIMAL + (
        "  - name: A\n"
        "    window: {type: sliding, size: 10s}\n"
        "    detector: {type: burst, threshold: 3}\n"
    )

    problem = only_problem(text)

    assert problem.path == "rules[1].name"
    assert problem.where == "r.yaml:8:11"
    assert "'A'" in problem.message
    assert "rules[0]" in problem.message


def test_unknown_summary_placeholder_is_an_error() -> None:
    """A placeholder that no field fills is reported with the known fields."""
    text = rule_file(
        "    window: {type: sliding, size: 10s}\n"
        "    detector: {type: burst, threshold: 3}\n"
        "    summary: '{count} errors from {host}'\n"
    )

    problem = only_problem(text)

    assert problem.path == "rules[0].summary"
    assert problem.where == "r.yaml:8:14"
    assert "{host}" in problem.message
    assert "count" in problem.message
    assert "metadata.<key>" in problem.message


def test_summary_may_use_group_paths_labels_and_metadata() -> None:
    """Group paths (full and last segment), labels, evidence, event fields and
    any metadata.* name are accepted."""
    text = rule_file(
        "    group_by: [source, metadata.zone.name]\n"
        "    labels: {team: web}\n"
        "    window: {type: sliding, size: 10s}\n"
        "    detector: {type: burst, threshold: 3}\n"
        "    summary: '{count}/{threshold} {window} {source} {name}"
        " {metadata.zone.name} {team} {metadata.host} {event_type} {value}"
        " {rule} {severity} {status} {{literal}}'\n"
    )

    config, _ = parse_config(text, "r.yaml")

    assert "{metadata.host}" in config.rules[0].summary


def test_rearm_below_above_threshold_is_an_error() -> None:
    """The re-arm level may not exceed the threshold."""
    text = rule_file(
        "    window: {type: sliding, size: 10s}\n"
        "    detector: {type: burst, threshold: 3, rearm_below: 5}\n"
    )

    problem = only_problem(text)

    assert problem.path == "rules[0].detector.rearm_below"
    assert problem.where == "r.yaml:7:56"
    assert "found 5" in problem.message
    assert "(3)" in problem.message


def test_rearm_below_equal_to_threshold_is_accepted() -> None:
    """rearm_below == threshold is the same as leaving it out."""
    text = rule_file(
        "    window: {type: sliding, size: 10s}\n"
        "    detector: {type: burst, threshold: 3, rearm_below: 3}\n"
    )

    config, _ = parse_config(text, "r.yaml")

    assert config.rules[0].detector.options["rearm_below"] == 3


@pytest.mark.parametrize("size", ["0", "0s", "0ms"])
def test_window_size_zero_is_an_error(size: str) -> None:
    """A window must have a positive size."""
    text = rule_file(
        f"    window: {{type: sliding, size: {size}}}\n"
        "    detector: {type: burst, threshold: 3}\n"
    )

    problem = only_problem(text)

    assert problem.path == "rules[0].window.size"
    assert "positive" in problem.message


@pytest.mark.parametrize("size", ["-1", "-5s", "ten", "true"])
def test_bad_duration_is_an_error_with_the_duration_forms(size: str) -> None:
    """A duration that is not one is located and the accepted forms shown."""
    text = rule_file(
        f"    window: {{type: sliding, size: {size}}}\n"
        "    detector: {type: burst, threshold: 3}\n"
    )

    problem = only_problem(text)

    assert problem.path == "rules[0].window.size"
    assert problem.where == "r.yaml:6:35"
    assert "found" in problem.message


@pytest.mark.parametrize("value", [".inf", ".nan"])
def test_non_finite_duration_is_a_usage_error(value: str) -> None:
    """YAML infinity or NaN as a duration is reported, not a crash."""
    problems = problems_of(MINIMAL + f"time: {{allowed_lateness: {value}}}\n")

    assert [p.path for p in problems] == ["time.allowed_lateness"]


@pytest.mark.parametrize("field", ["metadata", "foo"])
def test_bad_match_field_path_is_located_at_its_key(field: str) -> None:
    """A match key that is not a field path is reported at that key."""
    text = rule_file(
        "    match:\n"
        "      event_type: ERROR\n"
        f"      {field}: x\n"
        "    window: {type: sliding, size: 10s}\n"
        "    detector: {type: burst, threshold: 3}\n"
    )

    problem = only_problem(text)

    assert f'found "{field}"' in problem.message
    assert "metadata.<key>" in problem.message
    assert problem.path == f"rules[0].match.{field}"
    assert problem.where == "r.yaml:8:7"


@pytest.mark.parametrize("field", ["metadata", "foo", "metadata."])
def test_bad_group_by_field_path_is_an_error(field: str) -> None:
    """group_by entries must be field paths too."""
    text = rule_file(
        f"    group_by: [source, '{field}']\n"
        "    window: {type: sliding, size: 10s}\n"
        "    detector: {type: burst, threshold: 3}\n"
    )

    problem = only_problem(text)

    assert problem.path == "rules[0].group_by[1]"
    assert f'found "{field}"' in problem.message


class NullSink(Sink):
    """A sink from a plugin, with an option of its own."""

    type_name: ClassVar[str] = "discard"
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"level": {"type": "integer"}},
    }

    def send(self, alert: Alert) -> None:
        pass


class NullSinkPlugin:
    __name__ = "null_sink_plugin"

    @hookimpl
    def engine_register_sinks(self) -> list[type[Sink]]:
        return [NullSink]


@pytest.mark.parametrize(
    "sink", ["{type: console}", "{type: jsonl, path: a.jsonl}", "{type: discard}"]
)
def test_send_resolved_is_accepted_on_every_sink(sink: str) -> None:
    """Built-in and plugin sinks all take ``send_resolved``."""
    text = MINIMAL + f"sinks:\n  - {sink[:-1]}, send_resolved: false}}\n"

    config, _ = parse_config(text, "r.yaml", extra_plugins=(NullSinkPlugin(),))

    assert config.sinks[0].options["send_resolved"] is False


def test_composed_schema_gives_send_resolved_to_every_installed_sink() -> None:
    """Whatever sinks are installed, each one's options take send_resolved."""
    registry = load_plugins(entry_points=False, extra_plugins=(NullSinkPlugin(),))
    validator = jsonschema.Draft202012Validator(compose_schema(registry))

    for sink_type in registry.type_names("sink"):
        sink = {"type": sink_type, "send_resolved": True}
        errors = validator.iter_errors({**yaml.safe_load(MINIMAL), "sinks": [sink]})
        assert [e for e in errors if "send_resolved" in str(e.message)] == []


def test_plugin_sink_rejects_unknown_options() -> None:
    """A plugin's options schema is closed to unknown keys by default."""
    problems = problems_of(
        MINIMAL + "sinks:\n  - {type: discard, levle: 3}\n",
        extra_plugins=(NullSinkPlugin(),),
    )

    assert [p.path for p in problems] == ["sinks[0].levle"]
    assert "did you mean 'level'?" in problems[0].message


def test_send_resolved_must_be_a_boolean() -> None:
    """``send_resolved: sometimes`` is an error."""
    problem = only_problem(
        MINIMAL + "sinks:\n  - {type: console, send_resolved: no1}\n"
    )

    assert problem.path == "sinks[0].send_resolved"


def test_composed_schema_is_a_valid_draft_2020_12_schema() -> None:
    """The full schema passes the draft 2020-12 meta-schema."""
    schema = compose_schema(load_plugins(entry_points=False))

    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_composed_schema_accepts_the_default_rules_file() -> None:
    """rules/default.yaml is valid against the composed schema."""
    schema = compose_schema(load_plugins(entry_points=False))
    document = yaml.safe_load((REPO / "rules" / "default.yaml").read_text("utf-8"))

    assert list(jsonschema.Draft202012Validator(schema).iter_errors(document)) == []


def test_composed_schema_holds_each_components_options() -> None:
    """Component options are checked by the composed schema itself."""
    schema = compose_schema(load_plugins(entry_points=False))
    document = yaml.safe_load(MINIMAL)
    document["rules"][0]["detector"]["treshold"] = 4

    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(document))

    assert len(errors) == 1
    assert "treshold" in errors[0].message


def test_default_rules_file_parses() -> None:
    """The shipped demo file passes every check."""
    path = REPO / "rules" / "default.yaml"

    config, _ = parse_config(path.read_text("utf-8"), str(path))

    assert [rule.name for rule in config.rules] == ["ERROR_BURST", "WARN_STORM"]


def test_duration_too_long_to_add_to_a_time_is_located_and_bounded() -> None:
    """A window of a million days matches the duration pattern but is refused,
    at its line, with the longest duration accepted."""
    problem = only_problem(MINIMAL.replace("size: 10s", "size: 1000000d"))

    assert problem.where == "r.yaml:6:35"
    assert problem.path == "rules[0].window.size"
    assert "expected a duration of at most 10000d" in problem.message


def test_summary_with_an_unbalanced_brace_is_an_error() -> None:
    """'{count' is a typo, not text: it is reported at the summary."""
    problem = only_problem(MINIMAL + '    summary: "{count events"\n')

    assert problem.path == "rules[0].summary"
    assert "balanced braces" in problem.message


def test_doubled_braces_in_a_summary_are_literal_text() -> None:
    """'{{' and '}}' stand for braces and are accepted."""
    config, _ = parse_config(MINIMAL + '    summary: "{{{count}}} events"\n', "r.yaml")

    assert config.rules[0].summary == "{{{count}}} events"
