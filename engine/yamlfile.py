"""YAML loading that remembers where every value came from.

Error messages must name the line and column of the offending key or value,
so instead of ``yaml.safe_load`` we compose the node tree and build the
Python objects ourselves, recording the position of each path on the way.
Duplicate keys, which PyYAML silently resolves in favour of the last one,
are reported as errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.errors import Problem, UsageError

DocPath = tuple[str | int, ...]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
#: Returned for a key that is not a plain value (already reported).
_NOT_A_KEY = object()


def format_path(path: DocPath) -> str:
    """``("rules", 1, "window", "size")`` -> ``rules[1].window.size``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(top level)"


@dataclass
class LoadedYaml:
    """A YAML document as plain Python data, plus where each piece stands."""

    filename: str
    data: Any
    value_marks: dict[DocPath, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[DocPath, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: DocPath, *, key: bool = False) -> str:
        """``file:line:col`` of the value at ``path`` (or of its key), falling
        back to the nearest enclosing value that has a position."""
        marks = self.key_marks if key and path in self.key_marks else self.value_marks
        probe = path
        while probe not in marks and probe:
            probe = probe[:-1]
        line, column = marks.get(probe, (1, 1))
        return f"{self.filename}:{line}:{column}"

    def problem(self, path: DocPath, message: str, *, key: bool = False) -> Problem:
        return Problem(message, self.where(path, key=key), format_path(path))


class _Builder:
    def __init__(self, loaded: LoadedYaml) -> None:
        self.loaded = loaded
        self.problems: list[Problem] = []
        self.constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: DocPath) -> Any:
        self.loaded.value_marks[path] = _position(node.start_mark)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.ScalarNode) and node.tag == _TIMESTAMP_TAG:
            return node.value  # times stay as written; the engine parses them
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        value = self.constructor.construct_object(node, deep=True)
        if isinstance(value, float) and not math.isfinite(value):
            self.problems.append(
                Problem(
                    f"found {node.value!r}, expected a finite number",
                    f"{self.loaded.filename}:{_line_col(node)}",
                    format_path(path),
                )
            )
        return value

    def _mapping(self, node: yaml.MappingNode, path: DocPath) -> dict[Any, Any]:
        explicit_count = sum(1 for key, _ in node.value if key.tag != _MERGE_TAG)
        self.constructor.flatten_mapping(node)
        # flatten_mapping puts the merged entries first. Later ones override
        # earlier ones, as PyYAML does; keys written beside `<<:` win over all.
        merged = node.value[: len(node.value) - explicit_count]
        explicit = node.value[len(merged) :]
        result: dict[Any, Any] = {}
        for key_node, value_node in merged:
            key = self._key(key_node, path)
            if key is not _NOT_A_KEY:
                result[key] = self._child(key, key_node, value_node, path)
        written: set[Any] = set()
        for key_node, value_node in explicit:
            key = self._key(key_node, path)
            if key is _NOT_A_KEY:
                continue
            if key in written:
                self._duplicate(key, key_node, path)
                continue
            written.add(key)
            result[key] = self._child(key, key_node, value_node, path)
        return result

    def _key(self, key_node: yaml.Node, path: DocPath) -> Any:
        key = self.constructor.construct_object(key_node, deep=True)
        if isinstance(key, (str, int, float, bool)) or key is None:
            return key
        self.problems.append(
            Problem(
                f"a key must be a plain value, found {type(key).__name__}",
                f"{self.loaded.filename}:{_line_col(key_node)}",
                format_path(path),
            )
        )
        return _NOT_A_KEY

    def _child(
        self, key: Any, key_node: yaml.Node, value_node: yaml.Node, path: DocPath
    ) -> Any:
        child = (*path, str(key))
        self.loaded.key_marks[child] = _position(key_node.start_mark)
        return self.build(value_node, child)

    def _duplicate(self, key: Any, key_node: yaml.Node, path: DocPath) -> None:
        child = (*path, str(key))
        first_line = self.loaded.key_marks[child][0]
        self.problems.append(
            Problem(
                f"duplicate key {key!r} (first given on line {first_line})",
                f"{self.loaded.filename}:{_line_col(key_node)}",
                format_path(child),
            )
        )


def _position(mark: yaml.Mark) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


def _line_col(node: yaml.Node) -> str:
    line, column = _position(node.start_mark)
    return f"{line}:{column}"


def load_yaml(path: Path) -> LoadedYaml:
    """Read one YAML document; raise :class:`UsageError` on any problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"{path}: cannot read: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise UsageError(f"{path}: not UTF-8 text: {error}") from error
    return parse_yaml(text, str(path))


def parse_yaml(text: str, filename: str) -> LoadedYaml:
    """Parse YAML text; ``filename`` is only used in messages."""
    loaded = LoadedYaml(filename, None)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        problem = error.problem or error.context or "not valid YAML"
        raise UsageError(Problem(f"invalid YAML: {problem}", where)) from error
    except yaml.YAMLError as error:
        raise UsageError(Problem(f"invalid YAML: {error}", filename)) from error
    if node is None:
        raise UsageError(Problem("the file is empty", filename))
    builder = _Builder(loaded)
    try:
        loaded.data = builder.build(node, ())
    except yaml.constructor.ConstructorError as error:
        mark = error.problem_mark
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        raise UsageError(Problem(f"invalid YAML: {error.problem}", where)) from error
    if builder.problems:
        raise UsageError(*builder.problems)
    return loaded
