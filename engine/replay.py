"""``engine replay``: what a rules file would have raised over recorded events.

The rules file's sources are replaced by a ``jsonl`` source reading the
recorded file as fast as possible, its sinks by a capturing sink (unless
they are kept), and the idle timeout is turned off, so the result depends
on the file alone. The report counts alerts by rule, by group and by hour
of event time: a rule author's estimate of the noise before deploying.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.alerts import FIRING, RESOLVED, Alert
from engine.config import EngineConfig
from engine.errors import UsageError
from engine.events import EventDecoder
from engine.offline import load_rules_offline, notified_at_us, without_idle_timeout
from engine.runtime import Engine
from engine.stats import RunSummary
from engine.testing import CapturingSink
from engine.timeutil import US_PER_SECOND, format_timestamp

US_PER_HOUR = 3600 * US_PER_SECOND
#: Lines decoded at once when measuring the time span of the file.
SPAN_BATCH_LINES = 10_000


@dataclass
class ReplayReport:
    """Everything one replay found; :func:`report_dict` is its JSON form."""

    rules_file: str
    events_file: str
    rule_names: list[str]
    summary: RunSummary
    alerts: list[Alert]
    first_us: int | None
    last_us: int | None
    notes: list[str] = field(default_factory=list)


def replay(
    rules_path: Path, events_path: Path, *, keep_sinks: bool = False
) -> ReplayReport:
    """Run the rules over the recorded file and collect what they raise."""
    if str(events_path) == "-":
        raise UsageError("--events: a recorded file is needed, not standard input")
    first_us, last_us = event_time_span(events_path)
    source = {"type": "jsonl", "path": os.path.abspath(events_path), "speed": "max"}
    config, registry = load_rules_offline(rules_path, source, keep_sinks=keep_sinks)
    config, notes = _replayable(config)
    sink = CapturingSink()
    summary = Engine(config, registry, extra_sinks=[sink]).run()
    return ReplayReport(
        rules_file=str(rules_path),
        events_file=str(events_path),
        rule_names=[rule.name for rule in config.rules],
        summary=summary,
        alerts=sink.alerts,
        first_us=first_us,
        last_us=last_us,
        notes=notes,
    )


def _replayable(config: EngineConfig) -> tuple[EngineConfig, list[str]]:
    config = without_idle_timeout(config)
    if config.time.mode != "processing":
        return config, []
    # A recording has no arrival times worth keeping: replay in event time.
    note = "time.mode is processing; the replay used the events' own timestamps"
    event_time = dataclasses.replace(config.time, mode="event")
    return dataclasses.replace(config, time=event_time), [note]


def event_time_span(path: Path) -> tuple[int | None, int | None]:
    """The earliest and latest timestamps among the file's good events
    (judged as the engine judges them), or None for a file without any."""
    decoder = EventDecoder(keep_metadata=False)
    first: int | None = None
    last: int | None = None
    for lines in _line_batches(path):
        events, _ = decoder.decode_lines(lines)
        if not events:
            continue
        times = [event.time_us for event in events]
        low, high = min(times), max(times)
        first = low if first is None else min(first, low)
        last = high if last is None else max(last, high)
    return first, last


def _line_batches(path: Path) -> Iterator[list[bytes]]:
    try:
        with path.open("rb") as file:
            batch: list[bytes] = []
            for line in file:
                if line.strip():
                    batch.append(line.rstrip(b"\r\n"))
                if len(batch) >= SPAN_BATCH_LINES:
                    yield batch
                    batch = []
            if batch:
                yield batch
    except OSError as error:
        raise UsageError(f"{path}: cannot read: {error.strerror or error}") from error


# -- the report ------------------------------------------------------------------


def _group_key(alert: Alert) -> tuple[str, Hashable]:
    return alert.rule, tuple(sorted((k, json.dumps(v)) for k, v in alert.group.items()))


def _statuses(counts: Counter[str]) -> dict[str, int]:
    """Counts by status, firing and resolved first (even when zero)."""
    ordered = {FIRING: counts[FIRING], RESOLVED: counts[RESOLVED]}
    ordered.update(sorted((s, n) for s, n in counts.items() if s not in ordered))
    return ordered


def _by_rule(report: ReplayReport) -> list[dict[str, Any]]:
    statuses: dict[str, Counter[str]] = {name: Counter() for name in report.rule_names}
    groups: dict[str, set[Hashable]] = {name: set() for name in report.rule_names}
    for alert in report.alerts:
        statuses[alert.rule][alert.status] += 1
        groups[alert.rule].add(_group_key(alert))
    suppressed = report.summary.suppressed_by_rule
    return [
        {
            "rule": name,
            "alerts": _statuses(statuses[name]),
            "groups": len(groups[name]),
            "suppressed": suppressed.get(name, 0),
        }
        for name in report.rule_names
    ]


def _by_group(report: ReplayReport) -> list[dict[str, Any]]:
    statuses: dict[tuple[str, Hashable], Counter[str]] = {}
    labels: dict[tuple[str, Hashable], Mapping[str, Any]] = {}
    for alert in report.alerts:
        key = _group_key(alert)
        statuses.setdefault(key, Counter())[alert.status] += 1
        labels.setdefault(key, alert.group)
    ordered = sorted(statuses, key=lambda k: (-statuses[k][FIRING], k[0], str(k[1])))
    return [
        {"rule": key[0], "group": dict(labels[key]), "alerts": _statuses(statuses[key])}
        for key in ordered
    ]


def _by_hour(report: ReplayReport) -> dict[str, Any]:
    hours: Counter[int] = Counter(
        notified_at_us(a) // US_PER_HOUR for a in report.alerts if a.status == FIRING
    )
    firing = sum(hours.values())
    span = _span_us(report)
    return {
        "mean": firing * US_PER_HOUR / span if span else None,
        "max": max(hours.values(), default=0),
        "hours": [
            {"hour": format_timestamp(hour * US_PER_HOUR), "firing": hours[hour]}
            for hour in sorted(hours)
        ],
    }


def _span_us(report: ReplayReport) -> int | None:
    if report.first_us is None or report.last_us is None:
        return None
    return report.last_us - report.first_us


def report_dict(report: ReplayReport) -> dict[str, Any]:
    """The report as plain data (``engine replay --json``)."""
    summary = report.summary
    span = _span_us(report)
    return {
        "rules_file": report.rules_file,
        "events_file": report.events_file,
        "events": {
            "read": summary.events,
            "late_dropped": summary.late_dropped,
            "late_included": summary.late_included,
            "bad": sum(summary.bad_by_reason.values()),
            "bad_by_reason": dict(summary.bad_by_reason.most_common()),
        },
        "time_span": {
            "first": _stamp(report.first_us),
            "last": _stamp(report.last_us),
            "seconds": None if span is None else span / US_PER_SECOND,
        },
        "alerts": _statuses(Counter(a.status for a in report.alerts)),
        "alerts_per_hour": _by_hour(report),
        "rules": _by_rule(report),
        "groups": _by_group(report),
        "sink_failures": dict(summary.sink_failures),
        "elapsed_seconds": summary.elapsed_us / US_PER_SECOND,
        "notes": report.notes,
    }


def _stamp(time_us: int | None) -> str | None:
    return None if time_us is None else format_timestamp(time_us)


# -- the text form -----------------------------------------------------------------


def render_text(data: Mapping[str, Any], top: int = 10) -> str:
    """The report for people: totals, then the rules, and the busiest groups
    and hours (at most ``top`` of each)."""
    statuses = list(data["alerts"])
    lines = [
        *_totals_text(data),
        "",
        "alerts by rule:",
        *_table(
            ["rule", *statuses, "groups", "suppressed"],
            [
                [
                    r["rule"],
                    *_counts(r["alerts"], statuses),
                    r["groups"],
                    r["suppressed"],
                ]
                for r in data["rules"]
            ],
        ),
        *_groups_text(data["groups"], statuses, top),
        *_hours_text(data["alerts_per_hour"]["hours"], top),
    ]
    lines += [f"note: {note}" for note in data["notes"]]
    failures = data["sink_failures"]
    if failures:
        lines.append(
            "sink failures: " + ", ".join(f"{k} {n}" for k, n in failures.items())
        )
    return "\n".join(lines)


def _totals_text(data: Mapping[str, Any]) -> list[str]:
    events = data["events"]
    return [
        f"replay of {data['events_file']} with {data['rules_file']}",
        f"events:     {events['read']} read, {events['late_dropped']} late dropped, "
        f"{events['late_included']} late included, {events['bad']} bad"
        + _reasons(events["bad_by_reason"]),
        f"time span:  {_span_text(data['time_span'])}",
        "alerts:     " + ", ".join(f"{n} {s}" for s, n in data["alerts"].items()),
        f"per hour:   {_rate_text(data['alerts_per_hour'])}",
    ]


def _groups_text(
    groups: list[dict[str, Any]], statuses: list[str], top: int
) -> list[str]:
    if not groups:
        return []
    rows = [
        [g["rule"], _labels(g["group"]), *_counts(g["alerts"], statuses)]
        for g in groups[:top]
    ]
    return [
        "",
        f"busiest groups ({_top_of(top, len(groups))}):",
        *_table(["rule", "group", *statuses], rows),
    ]


def _hours_text(hours: list[dict[str, Any]], top: int) -> list[str]:
    if not hours:
        return []
    busiest = sorted(hours, key=lambda h: -h["firing"])[:top]
    rows = [[h["hour"], h["firing"]] for h in sorted(busiest, key=lambda h: h["hour"])]
    return [
        "",
        f"busiest hours of event time ({_top_of(top, len(hours))} with alerts):",
        *_table(["hour (UTC)", FIRING], rows),
    ]


def _reasons(by_reason: Mapping[str, int]) -> str:
    if not by_reason:
        return ""
    return " (" + ", ".join(f"{reason} {n}" for reason, n in by_reason.items()) + ")"


def _span_text(span: Mapping[str, Any]) -> str:
    if span["first"] is None:
        return "no events"
    return f"{span['first']} .. {span['last']} ({_duration_text(span['seconds'])})"


def _duration_text(seconds: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.3f} s"


def _rate_text(per_hour: Mapping[str, Any]) -> str:
    mean = per_hour["mean"]
    average = "-" if mean is None else f"{mean:.1f}"
    return (
        f"{average} firing per hour of event time on average, "
        f"{per_hour['max']} in the busiest hour"
    )


def _top_of(top: int, total: int) -> str:
    return f"all {total}" if total <= top else f"top {top} of {total}"


def _counts(alerts: Mapping[str, int], statuses: list[str]) -> list[int]:
    return [alerts.get(status, 0) for status in statuses]


def _labels(group: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in group.items()) or "(one group)"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """Aligned columns, two spaces in; numbers to the right."""
    cells = [header, *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [all(isinstance(row[i], int) for row in rows) for i in range(len(header))]
    return [
        "  "
        + "  ".join(
            cell.rjust(width) if is_number else cell.ljust(width)
            for cell, width, is_number in zip(row, widths, numeric, strict=True)
        ).rstrip()
        for row in cells
    ]
