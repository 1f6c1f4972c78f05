"""Loading a rules file: YAML, plugins, schema, cross-checks, frozen config.

:func:`load_config` either returns a complete, validated
:class:`EngineConfig` or raises one :class:`UsageError` listing every problem
found, each with file, line, column and path. Nothing is built or started
before validation has finished.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from engine.errors import Problem, UsageError
from engine.plugin_manager import Registry, load_plugins
from engine.schema import compose_schema, schema_problems
from engine.templates import stray_braces, unknown_placeholders
from engine.timeutil import parse_duration
from engine.yamlfile import DocPath, LoadedYaml, format_path, load_yaml, parse_yaml

DEFAULT_IDLE_TIMEOUT = "5s"
DEFAULT_STATE_INTERVAL = "30s"
EVENT_FIELDS = ("event_type", "source", "value")
RULE_FIELDS = ("rule", "severity", "status")
#: Fields of the alert itself that templates may use (times as ISO-8601).
ALERT_FIELDS = (
    "incident_id",
    "sequence",
    "starts_at",
    "ends_at",
    "first_seen",
    "last_seen",
    "suppressed",
)
#: Rule keys whose mapping merges with the same key of ``defaults``.
MERGED_KEYS = ("labels", "annotations", "match")


@dataclass(frozen=True)
class ComponentConfig:
    """A source, window, detector or sink as written: its type and options."""

    type: str
    options: Mapping[str, Any]
    where: str


@dataclass(frozen=True)
class TimeConfig:
    mode: str = "event"
    allowed_lateness_us: int = 0
    late: str = "drop"
    idle_timeout_us: int | None = parse_duration(DEFAULT_IDLE_TIMEOUT)


@dataclass(frozen=True)
class CountersConfig:
    enabled: bool = True
    window_us: int = parse_duration("60s")
    interval_us: int = parse_duration("5s")
    top: int = 5


@dataclass(frozen=True)
class StateConfig:
    """Where snapshots go and how often (in processing time) at most."""

    path: Path
    interval_us: int = parse_duration(DEFAULT_STATE_INTERVAL)


@dataclass(frozen=True)
class FlappingConfig:
    """More than ``changes`` state changes within ``within_us``: flapping."""

    changes: int
    within_us: int


@dataclass(frozen=True)
class RuleConfig:
    name: str
    index: int
    where: str
    severity: str
    match: Mapping[str, Any]
    group_by: tuple[str, ...]
    window: ComponentConfig
    detector: ComponentConfig
    summary: str
    labels: Mapping[str, str]
    cooldown_us: int
    description: str = ""
    annotations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    for_us: int = 0
    keep_firing_for_us: int = 0
    renotify_us: int = 0
    flapping: FlappingConfig | None = None

    @property
    def timed(self) -> bool:
        """Whether the lifecycle of this rule has transitions of its own in
        time (pending, keep firing, repeats, flap damping)."""
        return bool(
            self.for_us or self.keep_firing_for_us or self.renotify_us or self.flapping
        )


@dataclass(frozen=True)
class EngineConfig:
    """A validated rules file. Relative paths resolve against ``base_dir``."""

    path: str
    base_dir: Path
    plugins: tuple[str, ...]
    sources: tuple[ComponentConfig, ...]
    time: TimeConfig
    rules: tuple[RuleConfig, ...]
    sinks: tuple[ComponentConfig, ...]
    counters: CountersConfig = field(default_factory=CountersConfig)
    dead_letter: Path | None = None
    state: StateConfig | None = None


def load_config(
    path: Path,
    *,
    entry_points: bool = True,
    extra_plugins: tuple[object, ...] = (),
) -> tuple[EngineConfig, Registry]:
    """Read, validate and build the configuration in one rules file."""
    return build_config(
        load_yaml(path),
        path.parent,
        entry_points=entry_points,
        extra_plugins=extra_plugins,
    )


def parse_config(
    text: str,
    filename: str = "<rules>",
    base_dir: Path = Path("."),
    *,
    entry_points: bool = False,
    extra_plugins: tuple[object, ...] = (),
) -> tuple[EngineConfig, Registry]:
    """Like :func:`load_config` for text held in memory (tests, embedding)."""
    return build_config(
        parse_yaml(text, filename),
        base_dir,
        entry_points=entry_points,
        extra_plugins=extra_plugins,
    )


def build_config(
    loaded: LoadedYaml,
    base_dir: Path,
    *,
    entry_points: bool = True,
    extra_plugins: tuple[object, ...] = (),
) -> tuple[EngineConfig, Registry]:
    if not isinstance(loaded.data, dict):
        raise UsageError(loaded.problem((), "expected a mapping at the top level"))
    registry = load_plugins(
        _plugin_modules(loaded), entry_points=entry_points, extra_plugins=extra_plugins
    )
    problems = schema_problems(loaded, compose_schema(registry))
    if problems:
        raise UsageError(*problems)
    rules = _merged_rules(loaded.data)
    problems = _missing_components(loaded, rules)
    if problems:
        raise UsageError(*problems)
    problems = _cross_check(loaded, registry, rules)
    if problems:
        raise UsageError(*problems)
    return _build(loaded, base_dir, registry, rules), registry


@dataclass(frozen=True)
class _MergedRule:
    """A rule with the file's ``defaults`` applied, and where each key came
    from, so that a problem points at the line that caused it."""

    index: int
    data: Mapping[str, Any]
    own: Mapping[str, Any]

    def path(self, key: str, *rest: str | int) -> DocPath:
        """The document path of ``key`` (and below), in the rule or in
        ``defaults``."""
        own = self.own.get(key)
        if key in MERGED_KEYS and rest and isinstance(own, dict):
            in_rule = rest[0] in own
        else:
            in_rule = key in self.own
        base: DocPath = ("rules", self.index) if in_rule else ("defaults",)
        return (*base, key, *rest)


def _merged_rules(data: Mapping[str, Any]) -> list[_MergedRule]:
    """Each rule over the defaults: its own keys win; mappings that describe
    sets of things (labels, annotations, match) merge key by key."""
    defaults = data.get("defaults") or {}
    merged = []
    for index, own in enumerate(data["rules"]):
        rule = {**defaults, **own}
        for key in MERGED_KEYS:
            if key in defaults and key in own:
                rule[key] = {**defaults[key], **own[key]}
        merged.append(_MergedRule(index, rule, own))
    return merged


def _missing_components(loaded: LoadedYaml, rules: list[_MergedRule]) -> list[Problem]:
    return [
        loaded.problem(
            ("rules", rule.index),
            f"missing key: {kind!r} (neither in the rule nor in defaults)",
        )
        for rule in rules
        for kind in ("window", "detector")
        if kind not in rule.data
    ]


def _plugin_modules(loaded: LoadedYaml) -> list[tuple[str, str]]:
    names = loaded.data.get("plugins") or []
    if not isinstance(names, list):
        return []  # the schema reports it
    return [
        (name, f"{loaded.where(('plugins', i))} plugins[{i}]")
        for i, name in enumerate(names)
        if isinstance(name, str)
    ]


def _cross_check(
    loaded: LoadedYaml, registry: Registry, rules: list[_MergedRule]
) -> list[Problem]:
    problems: list[Problem] = []
    data = loaded.data
    for kind, section in (("source", "sources"), ("sink", "sinks")):
        for i, options in enumerate(data.get(section) or []):
            problems += _component_problems(
                loaded, registry, kind, (section, i), options
            )
    seen_names: dict[str, int] = {}
    reported: set[tuple[str, str]] = set()
    for rule in rules:
        name = rule.data["name"]
        if name in seen_names:
            problems.append(
                loaded.problem(
                    ("rules", rule.index, "name"),
                    f"rule name {name!r} is already used by rules[{seen_names[name]}]",
                )
            )
        seen_names.setdefault(name, rule.index)
        rule_problems: list[Problem] = []
        for kind in ("window", "detector"):
            rule_problems += _component_problems(
                loaded, registry, kind, rule.path(kind), rule.data[kind]
            )
        if not rule_problems:
            rule_problems = _rule_problems(loaded, registry, rule)
        for problem in rule_problems:
            # A component in defaults is checked once, not once per rule.
            if (problem.where, problem.message) not in reported:
                reported.add((problem.where, problem.message))
                problems.append(problem)
        problems += _template_problems(loaded, registry, rule)
    return problems


def _component_problems(
    loaded: LoadedYaml,
    registry: Registry,
    kind: str,
    path: DocPath,
    options: Mapping[str, Any],
) -> list[Problem]:
    cls = registry.get(kind, options["type"])
    return [
        loaded.problem(path + sub_path, message)
        for sub_path, message in cls.check_options(_options(options))
    ]


def _rule_problems(
    loaded: LoadedYaml, registry: Registry, rule: _MergedRule
) -> list[Problem]:
    """The detector's checks against the rest of its rule (window type,
    ``expect:`` against ``group_by``)."""
    detector = registry.get("detector", rule.data["detector"]["type"])
    return [
        loaded.problem(rule.path(str(sub_path[0]), *sub_path[1:]), message)
        for sub_path, message in detector.check_rule(rule.data)
    ]


def _template_problems(
    loaded: LoadedYaml, registry: Registry, rule: _MergedRule
) -> list[Problem]:
    """Unknown placeholders in the summary, description and annotations."""
    data = rule.data
    detector = registry.get("detector", data["detector"]["type"])
    known = _template_fields(data, detector.evidence_fields)
    templates: list[tuple[DocPath, str]] = [
        (rule.path(key), data[key]) for key in ("summary", "description") if key in data
    ]
    templates += [
        (rule.path("annotations", name), text)
        for name, text in (data.get("annotations") or {}).items()
    ]
    problems = []
    for path, template in templates:
        if stray_braces(template):
            problems.append(
                loaded.problem(
                    path,
                    f"found {template!r}, expected balanced braces: a placeholder "
                    "is {name}; write {{ and }} for literal braces",
                )
            )
            continue
        unknown = unknown_placeholders(template, known)
        if not unknown:
            continue
        names = ", ".join("{" + name + "}" for name in unknown)
        in_defaults = f" (for rule {data['name']!r})" if path[0] == "defaults" else ""
        problems.append(
            loaded.problem(
                path,
                f"unknown placeholder {names}{in_defaults}; known fields are "
                + ", ".join(sorted(known))
                + " and metadata.<key>",
            )
        )
    return problems


def _template_fields(
    rule: Mapping[str, Any], evidence_fields: tuple[str, ...]
) -> set[str]:
    fields = set(RULE_FIELDS) | set(ALERT_FIELDS) | set(EVENT_FIELDS)
    fields |= set(evidence_fields)
    fields |= set(rule.get("labels") or {})
    for group_path in rule.get("group_by") or []:
        fields |= {group_path, group_path.rsplit(".", 1)[-1]}
    return fields


def _options(component: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType({k: v for k, v in component.items() if k != "type"})


def _component(
    loaded: LoadedYaml, path: DocPath, data: Mapping[str, Any]
) -> ComponentConfig:
    where = f"{loaded.where(path)} {format_path(path)} ({data['type']})"
    return ComponentConfig(data["type"], _options(data), where)


def _build_time(data: Mapping[str, Any]) -> TimeConfig:
    idle = data.get("idle_timeout", DEFAULT_IDLE_TIMEOUT)
    return TimeConfig(
        mode=data.get("mode", "event"),
        allowed_lateness_us=parse_duration(data.get("allowed_lateness", 0)),
        late=data.get("late", "drop"),
        idle_timeout_us=None if idle is None else parse_duration(idle),
    )


def _build_counters(data: Mapping[str, Any]) -> CountersConfig:
    defaults = CountersConfig()
    return CountersConfig(
        enabled=data.get("enabled", defaults.enabled),
        window_us=parse_duration(data["window"])
        if "window" in data
        else defaults.window_us,
        interval_us=(
            parse_duration(data["interval"])
            if "interval" in data
            else defaults.interval_us
        ),
        top=data.get("top", defaults.top),
    )


def _build_rule(
    loaded: LoadedYaml, registry: Registry, rule: _MergedRule
) -> RuleConfig:
    data, index = rule.data, rule.index
    detector = registry.get("detector", data["detector"]["type"])
    flapping = data.get("flapping")
    return RuleConfig(
        name=data["name"],
        index=index,
        where=f"{loaded.where(('rules', index))} rules[{index}] ({data['name']})",
        severity=data.get("severity", "medium"),
        match=MappingProxyType(dict(data.get("match") or {})),
        group_by=tuple(data.get("group_by") or ()),
        window=_component(loaded, rule.path("window"), data["window"]),
        detector=_component(loaded, rule.path("detector"), data["detector"]),
        summary=data.get("summary", detector.default_summary),
        labels=MappingProxyType(dict(data.get("labels") or {})),
        cooldown_us=parse_duration(data.get("cooldown", 0)),
        description=data.get("description", ""),
        annotations=MappingProxyType(dict(data.get("annotations") or {})),
        for_us=parse_duration(data.get("for", 0)),
        keep_firing_for_us=parse_duration(data.get("keep_firing_for", 0)),
        renotify_us=parse_duration(data.get("renotify", 0)),
        flapping=(
            FlappingConfig(flapping["changes"], parse_duration(flapping["within"]))
            if flapping
            else None
        ),
    )


def _build(
    loaded: LoadedYaml,
    base_dir: Path,
    registry: Registry,
    rules: list[_MergedRule],
) -> EngineConfig:
    data = loaded.data
    sinks = data.get("sinks")
    dead_letter = data.get("dead_letter")
    return EngineConfig(
        path=loaded.filename,
        base_dir=base_dir,
        plugins=tuple(data.get("plugins") or ()),
        sources=tuple(
            _component(loaded, ("sources", i), s) for i, s in enumerate(data["sources"])
        ),
        time=_build_time(data.get("time") or {}),
        rules=tuple(_build_rule(loaded, registry, rule) for rule in rules),
        sinks=(
            tuple(_component(loaded, ("sinks", i), s) for i, s in enumerate(sinks))
            if sinks is not None
            else (ComponentConfig("console", MappingProxyType({}), "default sink"),)
        ),
        counters=_build_counters(data.get("counters") or {}),
        dead_letter=base_dir / dead_letter["path"] if dead_letter else None,
        state=_build_state(base_dir, data.get("state")),
    )


def _build_state(base_dir: Path, data: Mapping[str, Any] | None) -> StateConfig | None:
    if not data:
        return None
    interval = data.get("interval", DEFAULT_STATE_INTERVAL)
    return StateConfig(base_dir / data["path"], parse_duration(interval))
