"""Rule ``match`` predicates and ``group_by`` keys."""

from __future__ import annotations

from typing import Any

import pytest

from engine.matching import (
    compile_group_key,
    compile_match,
    field_getter,
    group_labels,
    value_test,
)
from engine.testing import event

WEB = event(1.0, "ERROR", "web-3", 2, zone={"name": "eu", "rack": 4}, host="h1")


def matches(match: dict[str, Any], ev: Any = WEB) -> bool:
    predicate = compile_match(match)
    assert predicate is not None
    return predicate(ev)


def test_empty_match_compiles_to_none() -> None:
    """A rule without match entries matches everything and needs no predicate."""
    assert compile_match({}) is None


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ({"event_type": "ERROR"}, True),
        ({"event_type": "WARN"}, False),
        ({"source": "web-3"}, True),
        ({"value": 2}, True),
        ({"value": 3}, False),
    ],
)
def test_scalar_match_is_equality(match: dict[str, Any], expected: bool) -> None:
    """A scalar value must equal the field."""
    assert matches(match) is expected


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ({"event_type": ["ERROR", "FATAL"]}, True),
        ({"event_type": ["WARN", "FATAL"]}, False),
        ({"value": [1, 2, 3]}, True),
        ({"source": ["db-1", "web-*"]}, True),
    ],
)
def test_list_match_is_any_of(match: dict[str, Any], expected: bool) -> None:
    """A list matches when any of its entries does."""
    assert matches(match) is expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("web-*", True),
        ("web-?", True),
        ("web-[12]", False),
        ("web-[3-5]", True),
        ("db-*", False),
        ("*-3", True),
        ("web", False),
    ],
)
def test_glob_match(pattern: str, expected: bool) -> None:
    """Strings with *, ? or [..] are globs over the whole value."""
    assert matches({"source": pattern}) is expected


def test_all_entries_must_hold() -> None:
    """Several entries are joined with and."""
    assert matches({"event_type": "ERROR", "source": "web-*"})
    assert not matches({"event_type": "ERROR", "source": "db-*"})
    assert not matches({"event_type": "WARN", "source": "web-*"})


def test_nested_metadata_path_is_followed() -> None:
    """metadata.zone.name reads metadata["zone"]["name"]."""
    assert matches({"metadata.zone.name": "eu"})
    assert matches({"metadata.zone.rack": 4})
    assert not matches({"metadata.zone.name": "us"})


def test_missing_metadata_reads_as_none() -> None:
    """An absent key, or a path through a non-mapping, reads as None."""
    assert field_getter("metadata.absent")(WEB) is None
    assert field_getter("metadata.zone.absent")(WEB) is None
    assert field_getter("metadata.host.deeper")(WEB) is None
    assert field_getter("metadata.absent.deeper")(WEB) is None
    assert matches({"metadata.absent": None})
    assert not matches({"metadata.absent": "x"})


def test_json_true_is_not_the_number_one() -> None:
    """Booleans and numbers never match each other, whatever Python says."""
    flagged = event(1.0, "ERROR", "web-1", 1, flag=True, one=1)

    assert not matches({"metadata.flag": 1}, flagged)
    assert not matches({"metadata.one": True}, flagged)
    assert not matches({"value": True}, flagged)
    assert not matches({"metadata.flag": [1, 2]}, flagged)
    assert matches({"metadata.flag": True}, flagged)
    assert matches({"metadata.one": [True, 1]}, flagged)


def test_numbers_match_numbers_of_either_kind() -> None:
    """1 and 1.0 are the same number; the string "1" is not."""
    numbered = event(1.0, "ERROR", "web-1", 1.0, n=1)

    assert matches({"value": 1}, numbered)
    assert matches({"metadata.n": 1.0}, numbered)
    assert not matches({"metadata.n": "1"}, numbered)
    assert not matches({"metadata.n": ["1", "2"]}, numbered)


def test_glob_does_not_match_non_strings() -> None:
    """A glob only applies to text values."""
    numbered = event(1.0, "ERROR", "web-1", 7, n=7)

    assert not matches({"metadata.n": "*"}, numbered)
    assert not value_test(["x", "*"])(7)


@pytest.mark.parametrize("expected", ["h1", ["h1", "h2"], "h*", ["a", "h*"]])
def test_string_match_on_list_or_mapping_metadata_is_false(expected: Any) -> None:
    """An event whose metadata holds a list or an object where the rule expects
    text simply does not match; it does not raise."""
    odd = event(1.0, "ERROR", "web-1", host=["h1"], zone={"name": "h1"})

    assert not matches({"metadata.host": expected}, odd)
    assert not matches({"metadata.zone": expected}, odd)


def test_no_group_by_means_one_group() -> None:
    """Without group_by there is no key function and no labels."""
    assert compile_group_key([]) is None
    assert group_labels([], None) == {}


def test_one_group_path_gives_the_bare_value() -> None:
    """With one path the key is the value itself."""
    key = compile_group_key(["source"])

    assert key is not None
    assert key(WEB) == "web-3"
    assert group_labels(["source"], "web-3") == {"source": "web-3"}


def test_several_group_paths_give_a_tuple() -> None:
    """With several paths the key is a tuple in group_by order."""
    group_by = ["source", "metadata.zone.name", "metadata.absent"]
    key = compile_group_key(group_by)

    assert key is not None
    assert key(WEB) == ("web-3", "eu", None)
    assert group_labels(group_by, ("web-3", "eu", None)) == {
        "source": "web-3",
        "metadata.zone.name": "eu",
        "metadata.absent": None,
    }


def test_unhashable_metadata_values_become_stable_group_values() -> None:
    """Lists and objects turn into canonical JSON text, so equal values give
    equal keys whatever the key order."""
    key = compile_group_key(["metadata.tags", "metadata.zone"])
    first = event(1.0, tags=["a", 1], zone={"name": "eu", "rack": 4})
    second = event(2.0, tags=["a", 1], zone={"rack": 4, "name": "eu"})

    assert key is not None
    assert key(first) == ('["a",1]', '{"name":"eu","rack":4}')
    assert key(first) == key(second)
    assert hash(key(first)) == hash(key(second))


def test_unhashable_single_group_value_is_hashable() -> None:
    """A single metadata path holding a list still gives a usable dict key."""
    key = compile_group_key(["metadata.tags"])

    assert key is not None
    assert {key(event(1.0, tags=[1, 2])): 1} == {"[1,2]": 1}
