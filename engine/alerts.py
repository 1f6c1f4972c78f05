"""Alerts: what sinks receive, one per edge of a group's condition."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.timeutil import format_timestamp

FIRING = "firing"
RESOLVED = "resolved"

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
    """One notification about an incident: it fired, or it resolved.

    ``labels`` holds the group key (field path -> value) and the rule's
    static labels; ``sequence`` counts the notifications of one incident
    from 1, so that a sink can drop a repeat after a restart.
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

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written by sinks; times are ISO-8601 UTC with ``Z``."""
        return {
            "rule": self.rule,
            "status": self.status,
            "severity": self.severity,
            "labels": dict(self.labels),
            "starts_at": format_timestamp(self.starts_at_us),
            "ends_at": (
                None if self.ends_at_us is None else format_timestamp(self.ends_at_us)
            ),
            "incident_id": self.incident_id,
            "sequence": self.sequence,
            "summary": self.summary,
            "description": self.description,
            "evidence": dict(self.evidence),
        }
