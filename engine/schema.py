"""The rules-file schema: the core part in schemas/, composed with the options
schema of every installed component, and errors turned into plain words."""

from __future__ import annotations

import copy
import difflib
import json
from importlib import resources
from typing import Any

import jsonschema

from engine.errors import Problem
from engine.plugin_manager import KINDS, Registry
from engine.timeutil import MAX_DURATION_US, format_duration, is_too_long
from engine.yamlfile import DocPath, LoadedYaml

CORE_SINK_OPTIONS: dict[str, Any] = {
    "send_resolved": {
        "type": "boolean",
        "description": "also send resolved notifications (default true)",
    },
    "max_pending": {
        "type": "integer",
        "minimum": 1,
        "description": "alerts queued for this sink before new ones are set aside"
        " (default 1000)",
    },
    "dead_letter": {
        "type": "string",
        "minLength": 1,
        "description": "file for alerts this sink could not deliver, with the reason",
    },
}


#: Formats the rules schema uses beyond the standard ones. A duration that
#: matches the pattern can still be too long to add to a time.
FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("engine-duration")
def _is_duration_short_enough(value: object) -> bool:
    # Malformed durations are the pattern's and the minimum's to report.
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return not is_too_long(value)
    return True


def load_core_schema(name: str = "rules.schema.json") -> dict[str, Any]:
    """A schema shipped in ``engine.schemas``."""
    text = resources.files("engine.schemas").joinpath(name).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _component_schema(kind: str, registry: Registry) -> dict[str, Any]:
    """One ``$defs`` entry: ``type`` picks the component, whose options
    schema then applies to the other keys."""
    names = registry.type_names(kind)
    branches = []
    for type_name in names:
        cls = registry.get(kind, type_name)
        options = copy.deepcopy(cls.options_schema)
        options.setdefault("type", "object")
        properties = options.setdefault("properties", {})
        properties["type"] = {"const": type_name}
        if kind == "sink":
            # Every sink takes these; the core applies them, the sink never
            # sees them.
            properties.update(CORE_SINK_OPTIONS)
        options.setdefault("additionalProperties", False)
        if cls.description:
            options.setdefault("description", cls.description)
        branches.append(
            {"if": {"properties": {"type": {"const": type_name}}}, "then": options}
        )
    return {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"enum": names, "description": f"which {kind} to use"}},
        "allOf": branches,
    }


def compose_schema(registry: Registry) -> dict[str, Any]:
    """The full rules schema with every installed component's options."""
    schema = load_core_schema()
    for kind in KINDS:
        schema["$defs"][kind] = _component_schema(kind, registry)
    return schema


def schema_problems(loaded: LoadedYaml, schema: dict[str, Any]) -> list[Problem]:
    """Every schema violation in the document, in document order."""
    validator = jsonschema.Draft202012Validator(schema, format_checker=FORMATS)
    problems: list[Problem] = []
    for error in _leaf_errors(validator.iter_errors(loaded.data)):
        problems.extend(_describe(error, loaded))
    problems.sort(key=lambda p: _sort_key(p.where))
    return _unique(problems)


def _leaf_errors(
    errors: Any,
) -> list[jsonschema.ValidationError]:
    """Unwrap ``anyOf`` failures into their most relevant alternative."""
    leaves = []
    for error in errors:
        if error.validator == "anyOf" and error.context:
            leaves.append(jsonschema.exceptions.best_match(error.context))
        else:
            leaves.append(error)
    return leaves


def _describe(error: jsonschema.ValidationError, loaded: LoadedYaml) -> list[Problem]:
    path: DocPath = tuple(error.absolute_path)
    found = error.instance
    kind = error.validator
    if kind == "additionalProperties":
        return _unknown_keys(error, path, loaded)
    if kind == "required":
        return [loaded.problem(path, f"missing key: {error.message.split()[0]}")]
    if "propertyNames" in error.relative_schema_path:
        return [
            loaded.problem(
                (*path, str(found)),
                f"found {_show(found)}, expected {_expected(error)}",
                key=True,
            )
        ]
    if kind == "propertyNames":
        return [
            loaded.problem(
                (*path, str(found)),
                f"found {found!r}, expected {error.schema.get('description')}"
                if isinstance(error.schema, dict) and error.schema.get("description")
                else error.message,
                key=True,
            )
        ]
    expected = _expected(error)
    return [loaded.problem(path, f"found {_show(found)}, expected {expected}")]


def _expected(error: jsonschema.ValidationError) -> str:
    schema = error.schema if isinstance(error.schema, dict) else {}
    value: Any = error.validator_value
    if error.validator == "pattern" and schema.get("description"):
        return str(schema["description"])
    if error.validator == "format" and error.validator_value == "engine-duration":
        return f"a duration of at most {format_duration(MAX_DURATION_US)}"
    if error.validator == "type":
        kinds = value if isinstance(value, list) else [value]
        type_words = " or ".join(_TYPE_WORDS.get(str(k), str(k)) for k in kinds)
        description = schema.get("description")
        return f"{type_words} ({description})" if description else type_words
    if error.validator == "enum":
        return "one of " + ", ".join(json.dumps(v) for v in value)
    if error.validator == "const":
        return json.dumps(value)
    if error.validator == "minItems":
        return f"at least {value} item{'s' if value != 1 else ''}"
    if error.validator in (
        "minimum",
        "exclusiveMinimum",
        "maximum",
        "exclusiveMaximum",
    ):
        words = {
            "minimum": "at least",
            "exclusiveMinimum": "more than",
            "maximum": "at most",
            "exclusiveMaximum": "less than",
        }
        return f"a number {words[error.validator]} {value}"
    if error.validator == "uniqueItems":
        return "no repeated items"
    return error.message


_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unknown_keys(
    error: jsonschema.ValidationError, path: DocPath, loaded: LoadedYaml
) -> list[Problem]:
    schema = error.schema if isinstance(error.schema, dict) else {}
    known = sorted(schema.get("properties", {}))
    problems = []
    instance: dict[str, Any] = (
        error.instance if isinstance(error.instance, dict) else {}
    )
    for key in instance:
        if key in known:
            continue
        hint = difflib.get_close_matches(str(key), known, n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        expected = ", ".join(known) if known else "no other keys"
        problems.append(
            loaded.problem(
                (*path, str(key)),
                f"unknown key {str(key)!r}, expected one of: {expected}{suggestion}",
                key=True,
            )
        )
    return problems


def _sort_key(where: str) -> tuple[int, int]:
    parts = where.rsplit(":", 2)
    try:
        return int(parts[-2]), int(parts[-1])
    except (ValueError, IndexError):
        return 0, 0


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[Problem] = set()
    result = []
    for problem in problems:
        if problem not in seen:
            seen.add(problem)
            result.append(problem)
    return result
