"""Rule ``match`` and ``group_by``, compiled once into plain closures.

User text is never evaluated: a match entry becomes a getter for the field
and a test for its value (equality, membership in a set, or a glob compiled
to a regular expression). Field paths are ``event_type``, ``source``,
``value`` or ``metadata.<key>[.<key>...]``; a missing metadata key reads as
``None``.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from operator import attrgetter
from typing import Any

from engine.events import Event

Getter = Callable[[Event], Any]
Predicate = Callable[[Event], bool]
KeyFunction = Callable[[Event], Hashable]

_GLOB_CHARS = re.compile(r"[*?\[]")


def field_getter(path: str) -> Getter:
    """A function reading ``path`` from an event."""
    if path in ("event_type", "source", "value"):
        return attrgetter(path)
    keys = path.split(".")[1:]
    if len(keys) == 1:
        key = keys[0]
        return lambda event: event.metadata.get(key)

    def nested(event: Event) -> Any:
        value: Any = event.metadata
        for key in keys:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value

    return nested


def _hashable(getter: Getter) -> Getter:
    """Metadata may hold lists or objects; group keys need hashable values."""

    def read(event: Event) -> Any:
        value = getter(event)
        if isinstance(value, (dict, list)):
            return json.dumps(value, sort_keys=True, separators=(",", ":"))
        return value

    return read


def _same_kind(a: Any, b: Any) -> bool:
    """JSON ``true`` is not the number 1, although Python says it is."""
    return isinstance(a, bool) == isinstance(b, bool)


def value_test(expected: Any) -> Callable[[Any], bool]:
    """A test for one ``match`` value: a scalar, a glob, or a list of them.

    A value that is not text (a number, a list or an object from metadata)
    never equals a string option and never matches a glob.
    """
    options = expected if isinstance(expected, list) else [expected]
    patterns = [
        fnmatch.translate(o)
        for o in options
        if isinstance(o, str) and _GLOB_CHARS.search(o)
    ]
    exact = [o for o in options if not (isinstance(o, str) and _GLOB_CHARS.search(o))]
    # All globs of an entry in one expression: one match call per value.
    glob = re.compile("|".join(patterns)).match if patterns else None
    if all(isinstance(o, str) for o in exact):
        strings = frozenset(exact)
        if glob is None:
            return lambda value: isinstance(value, str) and value in strings
        return lambda value: (
            isinstance(value, str) and (value in strings or glob(value) is not None)
        )

    def test(value: Any) -> bool:
        if any(value == o and _same_kind(value, o) for o in exact):
            return True
        return glob is not None and isinstance(value, str) and glob(value) is not None

    return test


def compile_match(match: Mapping[str, Any]) -> Predicate | None:
    """One predicate for the whole ``match`` (all entries must hold), or None
    when the rule matches every event."""
    checks = [(field_getter(path), value_test(value)) for path, value in match.items()]
    if not checks:
        return None
    if len(checks) == 1:
        get, test = checks[0]
        return lambda event: test(get(event))
    return lambda event: all(test(get(event)) for get, test in checks)


def split_event_types(
    match: Mapping[str, Any],
) -> tuple[frozenset[str] | None, dict[str, Any]]:
    """The event types a ``match`` accepts, and the entries left to test.

    When ``event_type`` is a plain string or a list of plain strings, the
    engine can route events to the rule by type with one dictionary lookup
    and test only the other entries. Otherwise (no ``event_type`` entry, a
    glob, a number) the types are None and the whole match stays.
    """
    expected = match.get("event_type")
    options = expected if isinstance(expected, list) else [expected]
    if "event_type" not in match or not all(
        isinstance(o, str) and not _GLOB_CHARS.search(o) for o in options
    ):
        return None, dict(match)
    rest = {path: value for path, value in match.items() if path != "event_type"}
    return frozenset(options), rest


def compile_group_key(group_by: Sequence[str]) -> KeyFunction | None:
    """The group key of an event: its value for one field, a tuple for
    several; None when the rule has a single group."""
    if not group_by:
        return None
    getters = [
        field_getter(p) if not p.startswith("metadata.") else _hashable(field_getter(p))
        for p in group_by
    ]
    if len(getters) == 1:
        return getters[0]
    return lambda event: tuple(get(event) for get in getters)


def group_labels(group_by: Sequence[str], key: Hashable) -> dict[str, Any]:
    """The labels of a group key: field path -> value."""
    if not group_by:
        return {}
    if len(group_by) == 1:
        return {group_by[0]: key}
    assert isinstance(key, tuple)
    return dict(zip(group_by, key, strict=True))
