"""The naive reference: the same rules, written the straightforward way.

Standard-library JSON, one dataclass per event, ``datetime.fromisoformat``,
a deque of timestamps per group, and the edge-triggered burst check of
DESIGN.md (ties count together, the group re-arms whenever the count falls
below the re-arm level, even between events). It shares no code with the
engine, so agreeing alerts are evidence that both are right.

It expects its input in time order, which the benchmark's workload is.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

#: (rule, status, group value or None, starts_at, ends_at or None, count)
AlertKey = tuple[str, str, str | None, datetime, datetime | None, int]

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def parse_seconds(text: str | float) -> timedelta:
    """``"10s"``, ``"250ms"``, ``"5m"`` or a number of seconds."""
    if isinstance(text, (int, float)):
        return timedelta(seconds=text)
    found = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s|m|h)\s*", text)
    if found is None:
        raise ValueError(f"not a duration the naive reference reads: {text!r}")
    return timedelta(seconds=float(found[1]) * _UNITS[found[2]])


@dataclass
class Event:
    timestamp: datetime
    event_type: str
    source: str
    value: float | None
    metadata: dict[str, Any]


@dataclass
class Group:
    """One group's decided timestamps and the instant still collecting ties."""

    times: deque[datetime] = field(default_factory=deque)
    instant: datetime | None = None
    at_instant: int = 0
    active: bool = False
    started: datetime | None = None


class Rule:
    """A burst rule of the shape the default rules use."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.name = spec["name"]
        match = spec.get("match", {})
        types = match.get("event_type")
        self.types = (
            None
            if types is None
            else set(types if isinstance(types, list) else [types])
        )
        self.source_glob = match.get("source")
        self.by_source = list(spec.get("group_by", [])) == ["source"]
        self.window = parse_seconds(spec["window"]["size"])
        self.threshold = spec["detector"]["threshold"]
        self.rearm = spec["detector"].get("rearm_below", self.threshold)
        self.groups: dict[str | None, Group] = {}
        self.alerts: list[AlertKey] = []

    def matches(self, event: Event) -> bool:
        if self.types is not None and event.event_type not in self.types:
            return False
        return self.source_glob is None or fnmatchcase(event.source, self.source_glob)

    def feed(self, event: Event) -> None:
        key = event.source if self.by_source else None
        group = self.groups.setdefault(key, Group())
        if group.instant is not None and event.timestamp > group.instant:
            self.decide(key, group)
        if group.instant == event.timestamp:
            group.at_instant += 1
        else:
            group.instant, group.at_instant = event.timestamp, 1

    def decide(self, key: str | None, group: Group) -> None:
        """The instant collecting ties is complete: apply it."""
        now = group.instant
        assert now is not None
        times = group.times
        if group.active:
            self.resolve_before(key, group, now)
        while times and times[0] <= now - self.window:
            times.popleft()
        times.extend([now] * group.at_instant)
        group.instant, group.at_instant = None, 0
        if group.active and len(times) < self.rearm:
            self.resolve(key, group, now, len(times))
        elif not group.active and len(times) >= self.threshold:
            group.active, group.started = True, now
            self.alerts.append((self.name, "firing", key, now, None, len(times)))

    def resolve_before(
        self, key: str | None, group: Group, limit: datetime | None
    ) -> None:
        """Resolve if the count fell below the re-arm level strictly before
        ``limit`` (None: ever), which happens when the ``rearm``-th newest
        event leaves."""
        times = group.times
        if len(times) < self.rearm:
            return
        falls_at = times[len(times) - self.rearm] + self.window
        if limit is None or falls_at < limit:
            left = [t for t in times if t > falls_at - self.window]
            self.resolve(key, group, falls_at, len(left))

    def resolve(self, key: str | None, group: Group, at: datetime, count: int) -> None:
        assert group.started is not None
        group.active = False
        self.alerts.append((self.name, "resolved", key, group.started, at, count))

    def finish(self) -> None:
        """End of input: decide the last instants and let every alert resolve."""
        for key, group in self.groups.items():
            if group.instant is not None:
                self.decide(key, group)
            if group.active:
                self.resolve_before(
                    key, group, datetime.max.replace(tzinfo=group.times[0].tzinfo)
                )


def read_events(path: Path) -> Iterable[Event]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            data = json.loads(line)
            yield Event(
                datetime.fromisoformat(data["timestamp"]),
                data["event_type"],
                data["source"],
                data.get("value"),
                data.get("metadata", {}),
            )


def run(path: Path, rule_specs: Iterable[Mapping[str, Any]]) -> list[AlertKey]:
    """Every alert edge the rules raise over the file, sorted."""
    rules = [Rule(spec) for spec in rule_specs]
    for event in read_events(path):
        for rule in rules:
            if rule.matches(event):
                rule.feed(event)
    alerts: list[AlertKey] = []
    for rule in rules:
        rule.finish()
        alerts += rule.alerts
    return sorted(alerts, key=repr)
