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
from engine.templates import unknown_placeholders
from engine.timeutil import parse_duration
from engine.yamlfile import DocPath, LoadedYaml, format_path, load_yaml, parse_yaml

DEFAULT_IDLE_TIMEOUT = "5s"
EVENT_FIELDS = ("event_type", "source", "value")
RULE_FIELDS = ("rule", "severity", "status")


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
    problems = _cross_check(loaded, registry)
    if problems:
        raise UsageError(*problems)
    return _build(loaded, base_dir, registry), registry


def _plugin_modules(loaded: LoadedYaml) -> list[tuple[str, str]]:
    names = loaded.data.get("plugins") or []
    if not isinstance(names, list):
        return []  # the schema reports it
    return [
        (name, f"{loaded.where(('plugins', i))} plugins[{i}]")
        for i, name in enumerate(names)
        if isinstance(name, str)
    ]


def _cross_check(loaded: LoadedYaml, registry: Registry) -> list[Problem]:
    problems: list[Problem] = []
    data = loaded.data
    for kind, section in (("source", "sources"), ("sink", "sinks")):
        for i, options in enumerate(data.get(section) or []):
            problems += _component_problems(
                loaded, registry, kind, (section, i), options
            )
    seen_names: dict[str, int] = {}
    for i, rule in enumerate(data["rules"]):
        path: DocPath = ("rules", i)
        if rule["name"] in seen_names:
            problems.append(
                loaded.problem(
                    (*path, "name"),
                    f"rule name {rule['name']!r} is already used by "
                    f"rules[{seen_names[rule['name']]}]",
                )
            )
        seen_names.setdefault(rule["name"], i)
        for kind in ("window", "detector"):
            problems += _component_problems(
                loaded, registry, kind, (*path, kind), rule[kind]
            )
        problems += _template_problems(loaded, registry, path, rule)
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


def _template_problems(
    loaded: LoadedYaml, registry: Registry, path: DocPath, rule: Mapping[str, Any]
) -> list[Problem]:
    template = rule.get("summary")
    if template is None:
        return []
    detector = registry.get("detector", rule["detector"]["type"])
    known = _template_fields(rule, detector.evidence_fields)
    unknown = unknown_placeholders(template, known)
    if not unknown:
        return []
    names = ", ".join("{" + name + "}" for name in unknown)
    return [
        loaded.problem(
            (*path, "summary"),
            f"unknown placeholder {names}; known fields are "
            + ", ".join(sorted(known))
            + " and metadata.<key>",
        )
    ]


def _template_fields(
    rule: Mapping[str, Any], evidence_fields: tuple[str, ...]
) -> set[str]:
    fields = set(RULE_FIELDS) | set(EVENT_FIELDS) | set(evidence_fields)
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
    loaded: LoadedYaml, registry: Registry, index: int, data: Mapping[str, Any]
) -> RuleConfig:
    path: DocPath = ("rules", index)
    detector = registry.get("detector", data["detector"]["type"])
    return RuleConfig(
        name=data["name"],
        index=index,
        where=f"{loaded.where(path)} rules[{index}] ({data['name']})",
        severity=data.get("severity", "medium"),
        match=MappingProxyType(dict(data.get("match") or {})),
        group_by=tuple(data.get("group_by") or ()),
        window=_component(loaded, (*path, "window"), data["window"]),
        detector=_component(loaded, (*path, "detector"), data["detector"]),
        summary=data.get("summary", detector.default_summary),
        labels=MappingProxyType(dict(data.get("labels") or {})),
        cooldown_us=parse_duration(data.get("cooldown", 0)),
        description=data.get("description", ""),
    )


def _build(loaded: LoadedYaml, base_dir: Path, registry: Registry) -> EngineConfig:
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
        rules=tuple(
            _build_rule(loaded, registry, i, r) for i, r in enumerate(data["rules"])
        ),
        sinks=(
            tuple(_component(loaded, ("sinks", i), s) for i, s in enumerate(sinks))
            if sinks is not None
            else (ComponentConfig("console", MappingProxyType({}), "default sink"),)
        ),
        counters=_build_counters(data.get("counters") or {}),
        dead_letter=base_dir / dead_letter["path"] if dead_letter else None,
    )
