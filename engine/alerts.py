"""Alerts: what sinks receive, one per notification about an incident."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from engine.timeutil import format_timestamp

FIRING = "firing"
RESOLVED = "resolved"
#: The group changes state too often; no notification until it settles.
FLAPPING = "flapping"

_INCIDENT_NAMESPACE = uuid.UUID("6f1c2d4e-3b5a-4c8e-9f7d-2a1b0c9e8d7f")


def incident_id(rule: str, labels: Mapping[str, Any], starts_at_us: int) -> str:
    """A stable id for the incident that started at ``starts_at_us``.

    Derived from the rule, the group and the start, so replaying the same
    input, or restarting from a snapshot, gives the same id and receivers
    can deduplicate.
    """
    key = json.dumps([rule, labels, starts_at_us], sort_keys=True, default=str)
    return str(uuid.uuid5(_INCIDENT_NAMESPACE, key))


@dataclass(frozen=True)
class Alert:
    """One notification about an incident: it fired (or still fires), it
    resolved, or its group is flapping.

    ``labels`` holds the group key (field path -> value) and the rule's
    static labels; ``sequence`` counts the notifications of one incident
    from 1, so that a sink can drop a repeat after a restart.
    ``first_seen_us`` is when the condition of the incident first became
    active (before ``starts_at_us`` when the rule has ``for``),
    ``last_seen_us`` the latest instant it was known active, and
    ``suppressed`` the number of rising edges of the group that were not
    notified (cooldown, flapping) since its previous notification.
    """

    rule: str
    severity: str
    status: str
    labels: Mapping[str, Any]
    group: Mapping[str, Any]
    starts_at_us: int
    ends_at_us: int | None
    incident_id: str
    sequence: int
    evidence: Mapping[str, Any]
    summary: str
    description: str = ""
    first_seen_us: int | None = None
    last_seen_us: int | None = None
    suppressed: int = 0
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written by sinks; times are ISO-8601 UTC with ``Z``."""
        return {
            "rule": self.rule,
            "status": self.status,
            "severity": self.severity,
            "labels": dict(self.labels),
            "starts_at": format_timestamp(self.starts_at_us),
            "ends_at": _optional_timestamp(self.ends_at_us),
            "first_seen": _optional_timestamp(self.first_seen_us),
            "last_seen": _optional_timestamp(self.last_seen_us),
            "incident_id": self.incident_id,
            "sequence": self.sequence,
            "suppressed": self.suppressed,
            "summary": self.summary,
            "description": self.description,
            "annotations": dict(self.annotations),
            "evidence": dict(self.evidence),
        }

    def to_record(self) -> dict[str, Any]:
        """Every field as plain data, times in microseconds, for a state
        snapshot; :meth:`from_record` rebuilds the same alert."""
        record = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("labels", "group", "evidence", "annotations"):
            record[name] = dict(record[name])
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Alert:
        """The alert that :meth:`to_record` saved: same incident id and
        sequence, so a receiver can tell a repeat from a new notification."""
        names = {f.name for f in fields(cls)}
        unknown = set(record) - names
        if unknown:
            raise ValueError(f"unknown alert fields: {', '.join(sorted(unknown))}")
        return cls(**record)


def _optional_timestamp(at_us: int | None) -> str | None:
    return None if at_us is None else format_timestamp(at_us)
