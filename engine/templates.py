"""Alert templates: ``{count} errors from {source} in {window}``.

Used for a rule's summary, description and annotations. A deliberately small
language: ``{name}`` is replaced by a field, ``{{`` and ``}}`` stand for
braces. Names are checked when the rules file is validated, so a typo fails
at start-up instead of printing a broken alert at 3 a.m.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_-]+)*$")


def placeholders(template: str) -> list[str]:
    """The names a template uses, in order."""
    return [
        m.group(1) for m in _PLACEHOLDER.finditer(template) if m.group(1) is not None
    ]


def unknown_placeholders(template: str, known: Iterable[str]) -> list[str]:
    """Names in the template that are neither known nor ``metadata.*``."""
    allowed = set(known)
    return [
        name
        for name in placeholders(template)
        if name not in allowed
        and not (name.startswith("metadata.") and _NAME.match(name))
    ]


def stray_braces(template: str) -> bool:
    """True when a ``{`` or ``}`` is neither doubled nor part of a
    placeholder: almost always a typo such as ``{count``."""
    rest = _PLACEHOLDER.sub("", template)
    return "{" in rest or "}" in rest


def compile_template(template: str) -> Callable[[Mapping[str, Any]], str]:
    """A function that renders the template from a mapping of fields.

    A field missing at render time (``metadata.x`` absent from the event)
    renders as ``-`` rather than failing the alert.
    """
    parts: list[str | tuple[str]] = []
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        parts.append(template[position : match.start()])
        token = match.group(0)
        if token in ("{{", "}}"):
            parts.append(token[0])
        else:
            parts.append((match.group(1),))
        position = match.end()
    parts.append(template[position:])

    def render(fields: Mapping[str, Any]) -> str:
        out = []
        for part in parts:
            if isinstance(part, tuple):
                value = fields.get(part[0])
                out.append("-" if value is None else str(value))
            else:
                out.append(part)
        return "".join(out)

    return render
