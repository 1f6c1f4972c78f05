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
    """A test for one ``match`` value: a scalar, a glob, or a list of them."""
    options = expected if isinstance(expected, list) else [expected]
    globs = [
        re.compile(fnmatch.translate(o)).match
        for o in options
        if isinstance(o, str) and _GLOB_CHARS.search(o)
    ]
    exact = [o for o in options if not (isinstance(o, str) and _GLOB_CHARS.search(o))]
    if all(isinstance(o, str) for o in exact):
        strings = frozenset(exact)
        if not globs:
            return lambda value: value in strings
        return lambda value: (
            value in strings
            or (isinstance(value, str) and any(glob(value) for glob in globs))
        )

    def test(value: Any) -> bool:
        if any(value == o and _same_kind(value, o) for o in exact):
            return True
        return isinstance(value, str) and any(glob(value) for glob in globs)

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
