"""YAML loading that remembers the line and column of every key and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import UsageError
from engine.yamlfile import format_path, load_yaml, parse_yaml

NESTED = """\
name: demo
rules:
  - window: {type: sliding, size: 10s}
    detector:
      threshold: 7
"""


def test_plain_data_is_built_like_a_safe_load() -> None:
    """The document becomes the same plain Python data PyYAML would give."""
    loaded = parse_yaml(NESTED, "r.yaml")

    assert loaded.data == {
        "name": "demo",
        "rules": [
            {"window": {"type": "sliding", "size": "10s"}, "detector": {"threshold": 7}}
        ],
    }


def test_where_gives_line_and_column_of_a_value() -> None:
    """Values are located at their own first character, 1-based."""
    loaded = parse_yaml(NESTED, "r.yaml")

    assert loaded.where(("name",)) == "r.yaml:1:7"
    assert loaded.where(("rules", 0, "window", "size")) == "r.yaml:3:35"
    assert loaded.where(("rules", 0, "detector", "threshold")) == "r.yaml:5:18"


def test_where_gives_line_and_column_of_a_key_when_asked() -> None:
    """With key=True the position is that of the key, not of its value."""
    loaded = parse_yaml(NESTED, "r.yaml")

    assert loaded.where(("rules", 0, "detector"), key=True) == "r.yaml:4:5"
    assert loaded.where(("rules", 0, "detector", "threshold"), key=True) == (
        "r.yaml:5:7"
    )


def test_where_falls_back_to_the_nearest_enclosing_value() -> None:
    """A path that does not exist is located at its closest existing parent."""
    loaded = parse_yaml(NESTED, "r.yaml")

    assert loaded.where(("rules", 0, "detector", "missing")) == "r.yaml:5:7"
    assert loaded.where(("nowhere",)) == "r.yaml:1:1"


def test_problem_carries_location_path_and_message() -> None:
    """A problem built from a path names the file position and document path."""
    loaded = parse_yaml(NESTED, "r.yaml")

    problem = loaded.problem(("rules", 0, "window", "size"), "too small")

    assert problem.where == "r.yaml:3:35"
    assert problem.path == "rules[0].window.size"
    assert str(problem) == "r.yaml:3:35: rules[0].window.size: too small"


def test_duplicate_key_is_reported_with_both_lines() -> None:
    """A repeated key is an error at the second one naming the first one's line."""
    text = "a: 1\nb: 2\na: 3\n"

    with pytest.raises(UsageError) as caught:
        parse_yaml(text, "r.yaml")

    [problem] = caught.value.problems
    assert problem.where == "r.yaml:3:1"
    assert problem.path == "a"
    assert "duplicate key 'a'" in problem.message
    assert "line 1" in problem.message


def test_every_duplicate_key_is_reported() -> None:
    """Duplicates in different mappings all appear in one error."""
    text = "a: 1\na: 2\nb:\n  c: 1\n  c: 2\n"

    with pytest.raises(UsageError) as caught:
        parse_yaml(text, "r.yaml")

    assert [(p.where, p.path) for p in caught.value.problems] == [
        ("r.yaml:2:1", "a"),
        ("r.yaml:5:3", "b.c"),
    ]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("a: [1, 2\n", "r.yaml:2:1"),
        ("a: 1\n  b: 2\n", "r.yaml:2:4"),
        ("a: *missing\n", "r.yaml:1:4"),
        ("a: !!python/object:os.system x\n", "r.yaml:1:4"),
    ],
)
def test_yaml_syntax_error_is_a_usage_error_with_position(
    text: str, where: str
) -> None:
    """Invalid YAML names file:line:col and says it is invalid YAML."""
    with pytest.raises(UsageError) as caught:
        parse_yaml(text, "r.yaml")

    [problem] = caught.value.problems
    assert problem.where == where
    assert problem.message.startswith("invalid YAML: ")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file_is_a_usage_error(text: str) -> None:
    """A file without a document says it is empty."""
    with pytest.raises(UsageError, match="empty") as caught:
        parse_yaml(text, "r.yaml")

    assert caught.value.problems[0].where == "r.yaml"


def test_non_scalar_key_is_a_usage_error() -> None:
    """A list used as a mapping key is refused, not silently turned to text."""
    with pytest.raises(UsageError, match="key must be a plain value") as caught:
        parse_yaml("? [1, 2]\n: x\n", "r.yaml")

    assert caught.value.problems[0].where == "r.yaml:1:3"


def test_anchor_and_alias_give_equal_values() -> None:
    """An alias repeats the anchored value."""
    loaded = parse_yaml("a: &w {type: sliding, size: 5s}\nb: *w\n", "r.yaml")

    assert loaded.data["b"] == {"type": "sliding", "size": "5s"}


def test_merge_key_brings_in_the_anchored_entries() -> None:
    """``<<: *anchor`` copies the anchored mapping's entries."""
    text = "base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  z: 3\n"

    loaded = parse_yaml(text, "r.yaml")

    assert loaded.data["derived"] == {"x": 1, "y": 2, "z": 3}


def test_merge_key_entries_can_be_overridden() -> None:
    """A key written beside ``<<:`` overrides the merged one, as in YAML 1.1."""
    text = "base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 3\n"

    loaded = parse_yaml(text, "r.yaml")

    assert loaded.data["derived"] == {"x": 1, "y": 3}


def test_load_yaml_reads_a_file_and_names_it(tmp_path: Path) -> None:
    """load_yaml uses the file's path in positions."""
    path = tmp_path / "rules.yaml"
    path.write_text("a: 1\n", encoding="utf-8")

    loaded = load_yaml(path)

    assert loaded.data == {"a": 1}
    assert loaded.where(("a",)) == f"{path}:1:4"


def test_load_yaml_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    """A file that cannot be read is a usage error naming it."""
    path = tmp_path / "absent.yaml"

    with pytest.raises(UsageError, match="cannot read") as caught:
        load_yaml(path)

    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ((), "(top level)"),
        (("rules",), "rules"),
        (("rules", 1, "window", "size"), "rules[1].window.size"),
        (("rules", 0, "match", "metadata.zone"), "rules[0].match.metadata.zone"),
        ((2, "a"), "[2].a"),
    ],
)
def test_format_path_writes_dots_and_indexes(
    path: tuple[str | int, ...], text: str
) -> None:
    """Mapping keys join with dots, list indexes go in brackets."""
    assert format_path(path) == text
