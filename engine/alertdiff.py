"""Expected alerts against raised ones: matching, and a readable diff.

An expectation names some fields of an alert; an alert matches when it has
all of them (labels and evidence: at least the given keys, with equal
values). Expectations and alerts are paired one to one with the most pairs
possible, so a loose expectation never takes the alert a stricter one needs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine.alerts import Alert
from engine.offline import notified_at_us
from engine.timeutil import US_PER_SECOND, format_timestamp

#: Extra columns of the diff, in this order, when some expectation names them.
EXTRA_COLUMNS = ("starts_at", "severity", "sequence", "summary", "description")


@dataclass(frozen=True)
class Approx:
    """A number within ``tolerance`` of ``value`` (for rates and ratios)."""

    value: float
    tolerance: float

    def accepts(self, found: Any) -> bool:
        if isinstance(found, bool) or not isinstance(found, (int, float)):
            return False
        return abs(found - self.value) <= self.tolerance

    def __str__(self) -> str:
        return f"{_show(self.value)}±{_show(self.tolerance)}"


@dataclass(frozen=True)
class AlertMatcher:
    """What an expected (or ignored) alert must look like.

    ``fields`` are compared with the alert's JSON form (``rule``,
    ``status``, ``severity``, ``summary``...); ``at_us`` is when the alert
    was sent (:func:`~engine.offline.notified_at_us`).
    """

    where: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, Any] = field(default_factory=dict)
    evidence: Mapping[str, Any] = field(default_factory=dict)
    at_us: int | None = None
    starts_at_us: int | None = None

    def matches(self, alert: Alert) -> bool:
        if self.at_us is not None and notified_at_us(alert) != self.at_us:
            return False
        if self.starts_at_us is not None and alert.starts_at_us != self.starts_at_us:
            return False
        form = alert.to_dict()
        return (
            all(k in form and _same(v, form[k]) for k, v in self.fields.items())
            and _contains(alert.labels, self.labels)
            and _contains(alert.evidence, self.evidence)
        )


def _same(expected: Any, found: Any) -> bool:
    if isinstance(expected, Approx):
        return expected.accepts(found)
    if isinstance(expected, Mapping):
        return isinstance(found, Mapping) and _contains(found, expected)
    if isinstance(expected, bool) or isinstance(found, bool):
        return type(expected) is type(found) and expected == found
    if isinstance(expected, float) and isinstance(found, (int, float)):
        return math.isclose(expected, found, rel_tol=1e-12, abs_tol=0.0)
    return bool(expected == found)


def _contains(found: Mapping[str, Any], expected: Mapping[str, Any]) -> bool:
    return all(k in found and _same(v, found[k]) for k, v in expected.items())


@dataclass
class Comparison:
    """The outcome of pairing expectations with alerts."""

    matched: list[tuple[AlertMatcher, Alert]]
    missing: list[AlertMatcher]
    unexpected: list[Alert]
    ignored: int


def compare(
    expected: Sequence[AlertMatcher],
    actual: Sequence[Alert],
    ignore: Sequence[AlertMatcher] = (),
) -> Comparison:
    """Pair each expectation with a distinct alert, as many as possible.

    Alerts that match an ``ignore`` matcher are left out first. Pairing is
    a maximum bipartite matching (augmenting paths), so the result does
    not depend on the order expectations are written in.
    """
    kept = [a for a in actual if not any(m.matches(a) for m in ignore)]
    candidates = [[j for j, a in enumerate(kept) if m.matches(a)] for m in expected]
    owner: dict[int, int] = {}  # alert index -> expectation index

    def claim(i: int, seen: set[int]) -> bool:
        for j in candidates[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or claim(owner[j], seen):
                owner[j] = i
                return True
        return False

    for i in range(len(expected)):
        claim(i, set())
    paired = {i: j for j, i in owner.items()}
    return Comparison(
        matched=[(expected[i], kept[j]) for i, j in sorted(paired.items())],
        missing=[m for i, m in enumerate(expected) if i not in paired],
        unexpected=[a for j, a in enumerate(kept) if j not in owner],
        ignored=len(actual) - len(kept),
    )


def render_diff(
    comparison: Comparison, expected: Sequence[AlertMatcher], base_us: int
) -> list[str]:
    """Expected and raised alerts in time order, in aligned columns: a
    matched alert once, unmarked; ``-`` an expectation no alert met; ``+``
    an alert no expectation named."""
    extras = [c for c in EXTRA_COLUMNS if any(_names(m, c) for m in expected)]
    header = ["", "status", "rule", "at", "labels", "evidence", *extras]
    rows: list[tuple[tuple[int, int], list[str]]] = []
    for order, (_, alert) in enumerate(comparison.matched):
        rows.append(
            ((notified_at_us(alert), order), _alert_row(" ", alert, extras, base_us))
        )
    for order, alert in enumerate(comparison.unexpected):
        rows.append(
            ((notified_at_us(alert), order), _alert_row("+", alert, extras, base_us))
        )
    for order, matcher in enumerate(comparison.missing):
        when = matcher.at_us if matcher.at_us is not None else 2**63
        rows.append(((when, order), _matcher_row(matcher, extras, base_us)))
    rows.sort(key=lambda row: row[0])
    lines = _aligned([header, *(cells for _, cells in rows)])
    if comparison.missing or comparison.unexpected:
        lines.append("(-: expected but not raised; +: raised but not expected)")
    return lines


def _names(matcher: AlertMatcher, column: str) -> bool:
    if column == "starts_at":
        return matcher.starts_at_us is not None
    return column in matcher.fields


def _alert_row(mark: str, alert: Alert, extras: list[str], base_us: int) -> list[str]:
    form = alert.to_dict()
    cells = [
        mark,
        alert.status,
        alert.rule,
        show_time(notified_at_us(alert), base_us),
        _pairs(alert.labels, ","),
        _pairs(alert.evidence, " "),
    ]
    for column in extras:
        if column == "starts_at":
            cells.append(show_time(alert.starts_at_us, base_us))
        else:
            cells.append(_show(form.get(column)))
    return cells


def _matcher_row(matcher: AlertMatcher, extras: list[str], base_us: int) -> list[str]:
    fields = matcher.fields
    cells = [
        "-",
        _show(fields["status"]) if "status" in fields else "*",
        _show(fields["rule"]) if "rule" in fields else "*",
        "*" if matcher.at_us is None else show_time(matcher.at_us, base_us),
        _pairs(matcher.labels, ",") if matcher.labels else "*",
        _pairs(matcher.evidence, " ") if matcher.evidence else "*",
    ]
    for column in extras:
        if column == "starts_at":
            starts = matcher.starts_at_us
            cells.append("*" if starts is None else show_time(starts, base_us))
        else:
            cells.append(_show(fields[column]) if column in fields else "*")
    return cells


def _aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    ]


def show_time(time_us: int, base_us: int) -> str:
    """A time as an offset from the test's base time (``6.1s``), the way
    tests write it, or as ISO-8601 when it is before the base."""
    offset = time_us - base_us
    if offset < 0:
        return format_timestamp(time_us)
    seconds = (Decimal(offset) / US_PER_SECOND).normalize()
    return f"{seconds:f}s"


def _pairs(mapping: Mapping[str, Any], separator: str) -> str:
    return separator.join(f"{k}={_show(v)}" for k, v in mapping.items()) or "-"


def _show(value: Any) -> str:
    if isinstance(value, str):
        plain = value and not any(c.isspace() or c in "\"'=,{}" for c in value)
        return value if plain else json.dumps(value)
    if isinstance(value, Approx):
        return str(value)
    if isinstance(value, Mapping):
        return "{" + _pairs(value, ",") + "}"
    return json.dumps(value, default=str)
