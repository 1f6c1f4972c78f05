"""Builds the plugin manager and the registry of component types.

Nothing happens at import: :func:`load_plugins` builds a fresh manager for
each run and each test. Built-in components register through the same hooks
as third-party ones; the only difference is that the engine imports its own
modules directly instead of finding them through entry points.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import jsonschema
import pluggy

from engine import hookspecs
from engine.components import Component, Detector, Sink, Source, Window
from engine.errors import UsageError

BUILTIN_MODULES = (
    "engine.plugins.source_generator",
    "engine.plugins.source_jsonl",
    "engine.plugins.window_sliding",
    "engine.plugins.detector_burst",
    "engine.plugins.window_bucketed",
    "engine.plugins.window_tumbling",
    "engine.plugins.detector_sustained",
    "engine.plugins.detector_rate_ratio",
    "engine.plugins.detector_absence",
    "engine.plugins.detector_threshold",
    "engine.plugins.detector_cardinality",
    "engine.plugins.sink_console",
    "engine.plugins.sink_jsonl",
    "engine.plugins.source_nats",
    "engine.plugins.source_redis",
    "engine.plugins.source_mqtt",
    "engine.plugins.sink_webhook",
    "engine.plugins.sink_alertmanager",
    "engine.plugins.sink_nats",
    "engine.plugins.sink_redis",
)

#: kind -> (hook that registers it, base class its components must extend)
KINDS: dict[str, tuple[str, type[Component]]] = {
    "source": ("engine_register_sources", Source),
    "window": ("engine_register_windows", Window),
    "detector": ("engine_register_detectors", Detector),
    "sink": ("engine_register_sinks", Sink),
}


@dataclass(frozen=True)
class PluginInfo:
    """One registered plugin, as ``engine plugins`` lists it."""

    name: str
    distribution: str
    version: str
    components: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Registry:
    """Component classes by kind and type name, and where each came from."""

    plugin_manager: pluggy.PluginManager
    components: dict[str, dict[str, type[Any]]]
    plugins: list[PluginInfo]

    def get(self, kind: str, type_name: str) -> type[Any]:
        return self.components[kind][type_name]

    def type_names(self, kind: str) -> list[str]:
        return sorted(self.components[kind])


def _own_distribution() -> tuple[str, str]:
    try:
        return "burst-engine", importlib.metadata.version("burst-engine")
    except importlib.metadata.PackageNotFoundError:
        return "burst-engine", "unknown"


def _register(pm: pluggy.PluginManager, plugin: object, name: str, origin: str) -> None:
    try:
        pm.register(plugin, name=name)
    except ValueError as error:
        message = f"plugin {name!r} ({origin}) cannot be registered: {error}"
        raise UsageError(message) from error
    except pluggy.PluginValidationError as error:
        raise UsageError(f"plugin {name!r} ({origin}) is invalid: {error}") from error


def _load_entry_points(pm: pluggy.PluginManager) -> dict[str, tuple[str, str]]:
    origins: dict[str, tuple[str, str]] = {}
    for entry_point in importlib.metadata.entry_points(group=hookspecs.PROJECT):
        dist = entry_point.dist
        dist_name = dist.metadata["Name"] if dist else "unknown"
        version = dist.version if dist else "unknown"
        origin = f"entry point {entry_point.value!r} of {dist_name} {version}"
        try:
            plugin = entry_point.load()
        except Exception as error:  # any import failure is the plugin's fault
            raise UsageError(
                f"plugin {entry_point.name!r} failed to load ({origin}): "
                f"{type(error).__name__}: {error}"
            ) from error
        _register(pm, plugin, entry_point.name, origin)
        origins[entry_point.name] = (dist_name, version)
    return origins


def _import_module(name: str, where: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except Exception as error:  # any import failure is the plugin's fault
        raise UsageError(
            f"{where}: cannot import plugin module {name!r}: "
            f"{type(error).__name__}: {error}"
        ) from error


def load_plugins(
    extra_modules: Iterable[tuple[str, str]] = (),
    *,
    entry_points: bool = True,
    extra_plugins: Iterable[object] = (),
) -> Registry:
    """Build a fresh plugin manager and registry.

    :param extra_modules: ``(module name, where it was asked for)`` pairs from
        a rules file's ``plugins:`` list.
    :param entry_points: also load installed packages' ``burst_engine`` entry
        points (tests turn this off to stay hermetic).
    :param extra_plugins: plugin objects to register directly (tests, embedding).
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    origins: dict[str, tuple[str, str]] = {}
    own = _own_distribution()
    for module_name in BUILTIN_MODULES:
        _register(pm, importlib.import_module(module_name), module_name, "built-in")
        origins[module_name] = own
    if entry_points:
        origins.update(_load_entry_points(pm))
    for module_name, where in extra_modules:
        module = _import_module(module_name, where)
        if pm.is_registered(module):
            continue  # also installed: its entry point registered it already
        _register(pm, module, module_name, where)
        origins[module_name] = ("(rules file)", "")
    for index, plugin in enumerate(extra_plugins):
        name = getattr(plugin, "__name__", f"plugin-{index}")
        _register(pm, plugin, name, "given in code")
        origins[name] = ("(in code)", "")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as error:
        name = pm.get_name(error.plugin) or repr(error.plugin)
        raise UsageError(
            f"plugin {name!r} implements an unknown hook: {error}; "
            f"known hooks are {', '.join(hookspecs.hook_names())}"
        ) from error
    return _build_registry(pm, origins)


def _check_component(cls: Any, kind: str, plugin_name: str, built_in: bool) -> str:
    base = KINDS[kind][1]
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise UsageError(
            f"plugin {plugin_name!r} registered {cls!r} as a {kind}, "
            f"but it is not a subclass of {base.__module__}.{base.__name__}"
        )
    type_name = getattr(cls, "type_name", None)
    if not isinstance(type_name, str) or not type_name:
        raise UsageError(f"plugin {plugin_name!r}: {cls.__name__} has no type_name")
    if built_in:
        # Checking a schema costs about 6 ms, most of the start-up time; the
        # built-in schemas are checked by the test suite instead.
        return type_name
    try:
        jsonschema.Draft202012Validator.check_schema(cls.options_schema)
    except jsonschema.SchemaError as error:
        raise UsageError(
            f"plugin {plugin_name!r}: the options schema of {kind} {type_name!r} "
            f"is not a valid JSON Schema: {error.message}"
        ) from error
    return type_name


def _build_registry(
    pm: pluggy.PluginManager, origins: dict[str, tuple[str, str]]
) -> Registry:
    components: dict[str, dict[str, type[Any]]] = {kind: {} for kind in KINDS}
    provided_by: dict[tuple[str, str], str] = {}
    provides: dict[str, dict[str, list[str]]] = {}
    for kind, (hook_name, _) in KINDS.items():
        caller = getattr(pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            for cls in impl.function() or []:
                built_in = impl.plugin_name in BUILTIN_MODULES
                type_name = _check_component(cls, kind, impl.plugin_name, built_in)
                earlier = provided_by.get((kind, type_name))
                if earlier is not None:
                    raise UsageError(
                        f"{kind} type {type_name!r} is provided by two plugins: "
                        f"{earlier!r} and {impl.plugin_name!r}; uninstall one"
                    )
                provided_by[(kind, type_name)] = impl.plugin_name
                components[kind][type_name] = cls
                provides.setdefault(impl.plugin_name, {}).setdefault(kind, []).append(
                    type_name
                )
    plugins = [
        PluginInfo(name, *origins.get(name, ("unknown", "")), provides.get(name, {}))
        for name in (pm.get_name(plugin) for plugin in pm.get_plugins())
        if name is not None
    ]
    plugins.sort(key=lambda info: (info.distribution != "burst-engine", info.name))
    return Registry(pm, components, plugins)
