"""The alert lifecycle shared by every detector: condition changes in, alert
edges out.

A detector reports when a group's condition becomes true or false
(:class:`~engine.components.Signal`). The lifecycle turns each rising signal
into an incident with a stable id and a ``firing`` alert, and the matching
falling signal into a ``resolved`` alert for the same incident. A rising
edge within ``cooldown`` of the previous notification of the same group is
suppressed: the incident is tracked and counted, but neither its firing nor
its resolution is sent.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.alerts import FIRING, RESOLVED, Alert, incident_id
from engine.components import Signal
from engine.config import RuleConfig
from engine.events import Event
from engine.matching import field_getter, group_labels
from engine.templates import compile_template, placeholders


@dataclass(slots=True)
class Incident:
    """An open incident of one group: from its rising edge to its resolution."""

    incident_id: str
    starts_at_us: int
    sequence: int
    notified: bool


class RuleLifecycle:
    """The incidents of one rule, by group key."""

    def __init__(self, rule: RuleConfig) -> None:
        self.rule = rule
        self._render = compile_template(rule.summary)
        self._metadata_fields = {
            name: field_getter(name)
            for name in placeholders(rule.summary)
            if name.startswith("metadata.")
        }
        self.open: dict[Hashable, Incident] = {}
        #: When each group was last notified, kept only while it matters.
        self._last_notified_us: dict[Hashable, int] = {}
        self.suppressed = 0

    def on_signal(
        self, key: Hashable, signal: Signal, exemplar: Event | None
    ) -> Alert | None:
        """The alert for one condition change, or None when nothing is sent."""
        if signal.active:
            return self._fire(key, signal, exemplar)
        return self._resolve(key, signal, exemplar)

    def _fire(
        self, key: Hashable, signal: Signal, exemplar: Event | None
    ) -> Alert | None:
        if key in self.open:
            return None
        group = group_labels(self.rule.group_by, key)
        last = self._last_notified_us.get(key)
        cooling = (
            self.rule.cooldown_us > 0
            and last is not None
            and signal.at_us < last + self.rule.cooldown_us
        )
        labels = {**group, **self.rule.labels}
        incident = Incident(
            incident_id(self.rule.name, labels, signal.at_us),
            signal.at_us,
            1,
            notified=not cooling,
        )
        self.open[key] = incident
        if cooling:
            self.suppressed += 1
            return None
        if self.rule.cooldown_us > 0:
            self._last_notified_us[key] = signal.at_us
        return self._alert(FIRING, incident, group, labels, signal, exemplar)

    def _resolve(
        self, key: Hashable, signal: Signal, exemplar: Event | None
    ) -> Alert | None:
        incident = self.open.pop(key, None)
        if incident is None or not incident.notified:
            return None
        incident.sequence += 1
        group = group_labels(self.rule.group_by, key)
        labels = {**group, **self.rule.labels}
        return self._alert(RESOLVED, incident, group, labels, signal, exemplar)

    def forget_cooldowns(self, before_us: int) -> None:
        """Drop cooldown records that can no longer suppress anything."""
        cooldown = self.rule.cooldown_us
        stale = [
            k for k, t in self._last_notified_us.items() if t + cooldown <= before_us
        ]
        for key in stale:
            del self._last_notified_us[key]

    def _alert(
        self,
        status: str,
        incident: Incident,
        group: Mapping[str, Any],
        labels: Mapping[str, Any],
        signal: Signal,
        exemplar: Event | None,
    ) -> Alert:
        fields = self._template_fields(status, group, labels, signal, exemplar)
        return Alert(
            rule=self.rule.name,
            severity=self.rule.severity,
            status=status,
            labels=labels,
            group=group,
            starts_at_us=incident.starts_at_us,
            ends_at_us=signal.at_us if status == RESOLVED else None,
            incident_id=incident.incident_id,
            sequence=incident.sequence,
            evidence=signal.evidence,
            summary=self._render(fields),
            description=self.rule.description,
        )

    def _template_fields(
        self,
        status: str,
        group: Mapping[str, Any],
        labels: Mapping[str, Any],
        signal: Signal,
        exemplar: Event | None,
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if exemplar is not None:
            fields["event_type"] = exemplar.event_type
            fields["source"] = exemplar.source
            fields["value"] = exemplar.value
            for name, get in self._metadata_fields.items():
                fields[name] = get(exemplar)
        for path, value in group.items():
            fields[path] = value
            fields[path.rsplit(".", 1)[-1]] = value
        fields.update(labels)
        fields.update(signal.evidence)
        fields.update(rule=self.rule.name, severity=self.rule.severity, status=status)
        return fields
