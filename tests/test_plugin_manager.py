"""Building the plugin manager and the registry of component types."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest

from engine.alerts import Alert
from engine.components import Sink, Source
from engine.config import parse_config
from engine.errors import UsageError
from engine.hookspecs import hookimpl
from engine.plugin_manager import BUILTIN_MODULES, KINDS, load_plugins

#: The types the design promises; more built-ins may be added beside them.
BUILTIN_TYPES = {
    "source": ["generator", "jsonl"],
    "window": ["sliding"],
    "detector": ["burst"],
    "sink": ["console", "jsonl"],
}


class DiscardSink(Sink):
    """A sink that drops every alert."""

    type_name: ClassVar[str] = "discard"

    def send(self, alert: Alert) -> None:
        pass


def sink_plugin(name: str, *classes: Any) -> object:
    """A plugin object named ``name`` whose sink hook returns ``classes``."""

    class Plugin:
        @hookimpl
        def engine_register_sinks(self) -> list[Any]:
            return list(classes)

    plugin = Plugin()
    plugin.__name__ = name  # type: ignore[attr-defined]
    return plugin


def test_builtins_are_registered_with_the_own_distribution() -> None:
    """Every built-in module is listed as coming from burst-engine."""
    registry = load_plugins(entry_points=False)

    builtins = [info for info in registry.plugins if info.name in BUILTIN_MODULES]
    assert sorted(info.name for info in builtins) == sorted(BUILTIN_MODULES)
    assert {info.distribution for info in builtins} == {"burst-engine"}


def test_builtin_component_types_are_known() -> None:
    """The default plugin set provides the documented types, each listed under
    the built-in module that registers it."""
    registry = load_plugins(entry_points=False)
    builtins = [info for info in registry.plugins if info.name in BUILTIN_MODULES]

    for kind, names in BUILTIN_TYPES.items():
        provided = {name for info in builtins for name in info.components.get(kind, [])}
        assert set(names) <= provided
        assert set(names) <= set(registry.type_names(kind))


def test_each_call_builds_a_fresh_manager() -> None:
    """A plugin given to one call is not seen by the next one."""
    first = load_plugins(
        entry_points=False, extra_plugins=(sink_plugin("p", DiscardSink),)
    )
    second = load_plugins(entry_points=False)

    assert first.plugin_manager is not second.plugin_manager
    assert "discard" in first.type_names("sink")
    assert "discard" not in second.type_names("sink")
    assert "p" not in [info.name for info in second.plugins]


def test_registries_do_not_share_their_tables() -> None:
    """Changing one registry's components leaves another one alone."""
    first = load_plugins(entry_points=False)
    second = load_plugins(entry_points=False)

    sinks_before = second.type_names("sink")

    first.components["sink"].clear()

    assert second.type_names("sink") == sinks_before
    assert set(BUILTIN_TYPES["sink"]) <= set(sinks_before)


def test_plugin_given_in_code_is_listed_with_its_components() -> None:
    """A plugin object's components are usable and it appears in the list."""
    registry = load_plugins(
        entry_points=False, extra_plugins=(sink_plugin("discard_plugin", DiscardSink),)
    )

    assert registry.get("sink", "discard") is DiscardSink
    [info] = [info for info in registry.plugins if info.name == "discard_plugin"]
    assert info.components == {"sink": ["discard"]}
    assert info.distribution != "burst-engine"


def test_unknown_hook_is_an_error_naming_the_plugin() -> None:
    """A misspelt ``engine_*`` hook fails at start-up and names the plugin."""

    class Widgets:
        __name__ = "widgets_plugin"

        @hookimpl
        def engine_register_widgets(self) -> list[Any]:
            return []

    with pytest.raises(UsageError) as caught:
        load_plugins(entry_points=False, extra_plugins=(Widgets(),))

    message = str(caught.value)
    assert "engine_register_widgets" in message
    assert "widgets_plugin" in message


def test_hook_with_unknown_argument_is_an_error_naming_the_plugin() -> None:
    """A hook implementation asking for an argument the spec lacks is refused."""

    class Greedy:
        __name__ = "greedy_plugin"

        @hookimpl
        def engine_startup(self, config: Any, extra: Any) -> None:
            pass

    with pytest.raises(UsageError, match="greedy_plugin"):
        load_plugins(entry_points=False, extra_plugins=(Greedy(),))


def test_same_type_from_two_plugins_names_both() -> None:
    """Two plugins providing one type name is an error naming each of them."""
    plugins = (
        sink_plugin("first_sinks", DiscardSink),
        sink_plugin("other_sinks", DiscardSink),
    )

    with pytest.raises(UsageError) as caught:
        load_plugins(entry_points=False, extra_plugins=plugins)

    message = str(caught.value)
    assert "'discard'" in message
    assert "first_sinks" in message
    assert "other_sinks" in message


def test_plugin_shadowing_a_builtin_type_is_an_error() -> None:
    """A plugin may not quietly replace a built-in type."""

    class OtherConsole(DiscardSink):
        type_name: ClassVar[str] = "console"

    with pytest.raises(UsageError) as caught:
        load_plugins(
            entry_points=False, extra_plugins=(sink_plugin("shadow", OtherConsole),)
        )

    assert "shadow" in str(caught.value)
    assert "engine.plugins.sink_console" in str(caught.value)


def test_class_of_the_wrong_kind_is_an_error_naming_the_plugin() -> None:
    """A sink hook must return Sink subclasses."""

    class NotASink:
        type_name = "fake"

    with pytest.raises(UsageError) as caught:
        load_plugins(
            entry_points=False, extra_plugins=(sink_plugin("fakes", NotASink),)
        )

    assert "fakes" in str(caught.value)
    assert "engine.components.Sink" in str(caught.value)


def test_sink_registered_as_a_source_is_an_error() -> None:
    """A class must extend the base of the hook it is registered through."""

    class Confused:
        __name__ = "confused"

        @hookimpl
        def engine_register_sources(self) -> list[type[Source]]:
            return [DiscardSink]  # type: ignore[list-item]

    with pytest.raises(UsageError) as caught:
        load_plugins(entry_points=False, extra_plugins=(Confused(),))

    assert "confused" in str(caught.value)
    assert "engine.components.Source" in str(caught.value)


def test_class_without_type_name_is_an_error_naming_the_plugin() -> None:
    """Every component class needs a type_name."""

    class Nameless(Sink):
        def send(self, alert: Alert) -> None:
            pass

    with pytest.raises(UsageError, match="type_name") as caught:
        load_plugins(
            entry_points=False, extra_plugins=(sink_plugin("nameless", Nameless),)
        )

    assert "nameless" in str(caught.value)


def test_invalid_options_schema_is_an_error_naming_the_plugin() -> None:
    """An options schema that is not valid JSON Schema is refused at start-up."""

    class Broken(DiscardSink):
        type_name: ClassVar[str] = "broken"
        options_schema: ClassVar[dict[str, Any]] = {"type": "nonsense"}

    with pytest.raises(UsageError) as caught:
        load_plugins(
            entry_points=False, extra_plugins=(sink_plugin("broken_schemas", Broken),)
        )

    message = str(caught.value)
    assert "broken_schemas" in message
    assert "'broken'" in message
    assert "JSON Schema" in message


@pytest.fixture
def write_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str, str], None]]:
    """Writes importable modules into tmp_path; forgets them afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    written: list[str] = []

    def write(name: str, source: str) -> None:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        written.append(name)

    yield write
    for name in written:
        sys.modules.pop(name, None)


RULES_WITH_PLUGIN = """\
version: 1
plugins:
  - {module}
sources:
  - type: generator
rules:
  - name: A
    window: {{type: sliding, size: 10s}}
    detector: {{type: burst, threshold: 3}}
sinks:
  - type: {sink}
"""

DISCARD_MODULE = """
from engine.components import Sink
from engine.hookspecs import hookimpl


class DiscardSink(Sink):
    type_name = "discard"
    options_schema = {"type": "object", "properties": {"quiet": {"type": "boolean"}}}

    def send(self, alert):
        pass


@hookimpl
def engine_register_sinks():
    return [DiscardSink]
"""


def test_module_from_plugins_list_is_registered_and_usable(
    write_module: Callable[[str, str], None],
) -> None:
    """A module named under ``plugins:`` provides types usable by ``type:``."""
    write_module("engine_test_discard_sink", DISCARD_MODULE)
    text = RULES_WITH_PLUGIN.format(module="engine_test_discard_sink", sink="discard")

    config, registry = parse_config(text, "r.yaml")

    assert config.plugins == ("engine_test_discard_sink",)
    assert config.sinks[0].type == "discard"
    assert registry.get("sink", "discard").__module__ == "engine_test_discard_sink"
    assert "engine_test_discard_sink" in [info.name for info in registry.plugins]


def test_options_of_a_module_plugin_are_validated(
    write_module: Callable[[str, str], None],
) -> None:
    """The plugin's options schema applies like a built-in's."""
    write_module("engine_test_discard_sink_2", DISCARD_MODULE)
    text = RULES_WITH_PLUGIN.format(
        module="engine_test_discard_sink_2", sink="discard\n    quiet: maybe"
    )

    with pytest.raises(UsageError) as caught:
        parse_config(text, "r.yaml")

    assert [p.path for p in caught.value.problems] == ["sinks[0].quiet"]


def test_missing_plugin_module_names_the_file_and_line() -> None:
    """A ``plugins:`` entry that cannot be imported is located in the file."""
    text = RULES_WITH_PLUGIN.format(module="engine_test_no_such_module", sink="console")

    with pytest.raises(UsageError) as caught:
        parse_config(text, "r.yaml")

    message = str(caught.value)
    assert "r.yaml:3:5" in message
    assert "engine_test_no_such_module" in message


def test_plugin_module_failing_at_import_names_the_file_and_line(
    write_module: Callable[[str, str], None],
) -> None:
    """A module that raises while importing is a usage error, not a crash."""
    write_module("engine_test_exploding", "raise RuntimeError('no config found')\n")
    text = RULES_WITH_PLUGIN.format(module="engine_test_exploding", sink="console")

    with pytest.raises(UsageError) as caught:
        parse_config(text, "r.yaml")

    message = str(caught.value)
    assert "r.yaml:3:5" in message
    assert "engine_test_exploding" in message
    assert "no config found" in message


def test_plugin_module_with_unknown_hook_is_an_error_naming_it(
    write_module: Callable[[str, str], None],
) -> None:
    """A module plugin with a misspelt hook is refused and named."""
    write_module(
        "engine_test_misspelt",
        """
        from engine.hookspecs import hookimpl


        @hookimpl
        def engine_register_sink():
            return []
        """,
    )
    text = RULES_WITH_PLUGIN.format(module="engine_test_misspelt", sink="console")

    with pytest.raises(UsageError) as caught:
        parse_config(text, "r.yaml")

    assert "engine_test_misspelt" in str(caught.value)
    assert "engine_register_sink" in str(caught.value)


def test_every_builtin_options_schema_is_a_valid_json_schema() -> None:
    """Start-up trusts the built-in schemas without checking them, so they are
    checked here, each against the draft 2020-12 meta-schema."""
    registry = load_plugins(entry_points=False)
    checked = 0
    for kind in KINDS:
        for type_name in registry.type_names(kind):
            cls = registry.get(kind, type_name)
            jsonschema.Draft202012Validator.check_schema(cls.options_schema)
            checked += 1

    assert checked >= 20
