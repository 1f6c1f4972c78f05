"""The alert lifecycle shared by every detector: condition changes in,
notifications out.

A detector reports when a group's condition becomes true or false
(:class:`~engine.components.Signal`). The lifecycle turns those edges into
the alert state of the group, inactive -> pending -> firing -> resolved, and
into notifications with a stable incident id and a sequence number:

- ``for``: a condition must stay active this long before the alert fires;
  it fires at activation + ``for``, and a condition that clears before is
  dropped without a word.
- ``keep_firing_for``: after the condition clears the alert stays firing
  this long; a return within it continues the same incident, otherwise the
  incident resolves at clear + ``keep_firing_for``.
- ``cooldown``: a new incident within ``cooldown`` of the group's last
  first-firing notification is tracked and counted but not notified, nor is
  its resolution (unless ``renotify`` repeats it meanwhile).
- ``renotify``: while an incident keeps firing, its firing notification is
  repeated every ``renotify`` after its last notification (or its start).
- ``flapping``: more than ``changes`` alert state changes within ``within``
  mark the group flapping: one ``flapping`` notification, then silence until
  no change for ``within``, when the actual state is notified.

Everything is decided in event time. At one instant, the detector's signals
count before the lifecycle's own transitions: the condition at instant t is
the one after every signal at t. The runner calls :meth:`advance` up to each
signal's instant before :meth:`on_signal`, then up to the watermark, and
wakes the group at :meth:`next_wakeup`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from engine.alerts import FIRING, FLAPPING, RESOLVED, Alert, incident_id
from engine.components import Signal
from engine.config import RuleConfig
from engine.events import Event
from engine.matching import field_getter, group_labels
from engine.state import decode_event, decode_key, encode_event, encode_key
from engine.templates import compile_template, placeholders
from engine.timeutil import END_OF_TIME, format_timestamp

#: An alert and the event-time instant at which it is sent.
TimedNotice = tuple[int, Alert]


@dataclass(slots=True)
class Incident:
    """An open incident of one group: from its firing to its resolution."""

    incident_id: str
    starts_at_us: int
    first_seen_us: int
    last_seen_us: int
    #: Notifications sent so far; the next one gets ``sequence + 1``.
    sequence: int = 0
    #: Whether its firing was notified (a cooldown may have held it back).
    notified: bool = False
    #: Set when it ended while its group is flapping, for the settle notice.
    ends_at_us: int | None = None


@dataclass(slots=True)
class GroupState:
    """The lifecycle of one group. Kept only while it has something to do."""

    #: The detector's condition, and the signal that last changed it.
    active: bool = False
    evidence: Mapping[str, Any] = field(default_factory=dict)
    exemplar: Event | None = None
    last_signal_us: int = -END_OF_TIME
    #: Activation instant while the condition waits for ``for``.
    pending_since_us: int | None = None
    #: The incident while the alert fires (and, while flapping, after).
    incident: Incident | None = None
    firing: bool = False
    #: When the condition cleared while ``keep_firing_for`` holds the alert.
    cleared_at_us: int | None = None
    renotify_at_us: int | None = None
    #: Rising edges not notified since the group's last notification.
    suppressed: int = 0
    #: Recent alert state changes, for flap damping.
    changes: deque[int] = field(default_factory=deque)
    flapping: bool = False
    #: When a quiet group that still holds a ``suppressed`` count is dropped.
    forget_at_us: int | None = None

    def is_quiet(self) -> bool:
        """Nothing active, pending, open or remembered for flap damping."""
        return not (
            self.active
            or self.incident
            or self.changes
            or self.pending_since_us is not None
        )


class RuleLifecycle:
    """The alert lifecycle of one rule, by group key."""

    def __init__(self, rule: RuleConfig) -> None:
        self.rule = rule
        self._for_us = rule.for_us
        self._keep_us = rule.keep_firing_for_us
        self._renotify_us = rule.renotify_us
        self._flap = rule.flapping
        self._render = compile_template(rule.summary)
        self._render_description = compile_template(rule.description)
        self._render_annotations = {
            name: compile_template(text) for name, text in rule.annotations.items()
        }
        templates = [rule.summary, rule.description, *rule.annotations.values()]
        self._metadata_fields = {
            name: field_getter(name)
            for template in templates
            for name in placeholders(template)
            if name.startswith("metadata.")
        }
        self.groups: dict[Hashable, GroupState] = {}
        #: When each group was last notified, kept only while it matters.
        self._last_notified_us: dict[Hashable, int] = {}
        #: Rising edges held back by ``cooldown`` (for the run summary).
        self.suppressed = 0
        #: How long a quiet group keeps its count of held-back edges.
        self._hold_us = max(rule.cooldown_us, self._flap.within_us if self._flap else 0)

    # -- the runner's interface ----------------------------------------------

    def on_signal(
        self, key: Hashable, signal: Signal, exemplar: Event | None
    ) -> Alert | None:
        """The alert for one condition change, or None when nothing is sent.

        The caller has advanced the group to ``signal.at_us`` first, so that
        the lifecycle's own transitions before it are already decided.
        """
        group = self.groups.get(key)
        if group is None:
            if not signal.active:
                return None  # nothing open: nothing to resolve
            group = self.groups[key] = GroupState()
        elif group.active == signal.active:
            return None  # not an edge: a firing group is not notified again
        group.active = signal.active
        group.evidence = signal.evidence
        group.exemplar = exemplar
        group.last_signal_us = signal.at_us
        alert = (
            self._on_rise(key, group, signal.at_us)
            if signal.active
            else self._on_clear(key, group, signal.at_us)
        )
        self._tidy(key, group, signal.at_us)
        return alert

    def advance(self, key: Hashable, until_us: int) -> list[TimedNotice]:
        """The lifecycle's own transitions of the group due strictly before
        ``until_us``, in time order, with the instant each is sent at.

        At the end of a finite input (``until_us`` is the end of time), a
        group whose condition is still active would fire, and repeat, forever:
        its pending ``for`` still completes, but it gets no more repeats.
        """
        notices: list[TimedNotice] = []
        group = self.groups.get(key)
        endless = until_us >= END_OF_TIME
        while group is not None:
            if endless and group.active:
                group.renotify_at_us = None
            due_us = self._due(group)
            if due_us is None or due_us >= until_us:
                break
            self._step(key, group, due_us, notices)
            group = self._tidy(key, group, due_us)
        return notices

    def next_wakeup(self, key: Hashable) -> int | None:
        """The instant of the group's next transition of its own, if any."""
        group = self.groups.get(key)
        return None if group is None else self._due(group)

    def is_idle(self, key: Hashable) -> bool:
        """True when the group has no lifecycle state left to keep."""
        return key not in self.groups

    def firing_count(self) -> int:
        """How many groups are firing now."""
        return sum(1 for group in self.groups.values() if group.firing)

    def snapshot(self) -> dict[str, Any]:
        """Every group's lifecycle as plain data for a state snapshot."""
        return {
            "groups": [
                [encode_key(key), _group_data(group)]
                for key, group in self.groups.items()
            ],
            "last_notified_us": [
                [encode_key(key), at_us]
                for key, at_us in self._last_notified_us.items()
            ],
            "suppressed": self.suppressed,
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Take back what :meth:`snapshot` saved (replacing what is here)."""
        self.groups = {
            decode_key(key): _group_from_data(group) for key, group in data["groups"]
        }
        self._last_notified_us = {
            decode_key(key): int(at_us) for key, at_us in data["last_notified_us"]
        }
        self.suppressed = int(data["suppressed"])

    def forget_cooldowns(self, before_us: int) -> None:
        """Drop cooldown records that can no longer suppress anything."""
        cooldown = self.rule.cooldown_us
        stale = [
            k for k, t in self._last_notified_us.items() if t + cooldown <= before_us
        ]
        for key in stale:
            del self._last_notified_us[key]

    # -- condition edges -------------------------------------------------------

    def _on_rise(self, key: Hashable, group: GroupState, at_us: int) -> Alert | None:
        if group.firing:
            if group.cleared_at_us is not None:
                group.cleared_at_us = None  # back within keep_firing_for
                assert group.incident is not None
                group.incident.last_seen_us = at_us
            return None
        if self._for_us:
            group.pending_since_us = at_us
            return None
        return self._start(key, group, at_us, at_us)

    def _on_clear(self, key: Hashable, group: GroupState, at_us: int) -> Alert | None:
        if group.pending_since_us is not None:
            group.pending_since_us = None  # did not last long enough
            return None
        if not group.firing:
            return None
        assert group.incident is not None
        group.incident.last_seen_us = at_us
        if self._keep_us:
            group.cleared_at_us = at_us
            return None
        return self._end(key, group, at_us)

    # -- time-driven transitions -------------------------------------------

    def _due(self, group: GroupState) -> int | None:
        """The earliest of the group's timers."""
        candidates = []
        if group.pending_since_us is not None:
            candidates.append(group.pending_since_us + self._for_us)
        if group.cleared_at_us is not None:
            candidates.append(group.cleared_at_us + self._keep_us)
        if group.renotify_at_us is not None:
            candidates.append(group.renotify_at_us)
        if group.changes and self._flap is not None:
            # While flapping: it settles; otherwise the history expires.
            candidates.append(group.changes[-1] + self._flap.within_us)
        if group.forget_at_us is not None:
            candidates.append(group.forget_at_us)
        return min(candidates) if candidates else None

    def _step(
        self, key: Hashable, group: GroupState, at_us: int, notices: list[TimedNotice]
    ) -> None:
        """Apply every transition of the group due at ``at_us``: state
        changes first, then settling, then repeats."""
        alert = None
        pending = group.pending_since_us
        if pending is not None and pending + self._for_us == at_us:
            group.pending_since_us = None
            alert = self._start(key, group, at_us, pending)
        cleared = group.cleared_at_us
        if cleared is not None and cleared + self._keep_us == at_us:
            group.cleared_at_us = None
            alert = self._end(key, group, at_us)
        if alert is not None:
            notices.append((at_us, alert))
        flap = self._flap
        if flap and group.changes and group.changes[-1] + flap.within_us == at_us:
            settled = self._settle(key, group, at_us)
            if settled is not None:
                notices.append((at_us, settled))
        if group.renotify_at_us == at_us:
            notices.append((at_us, self._repeat(key, group, at_us)))
        if group.forget_at_us == at_us:
            group.suppressed = 0

    def _tidy(self, key: Hashable, group: GroupState, at_us: int) -> GroupState | None:
        """Drop a quiet group, unless it holds a count of held-back edges for
        its next notification: that is kept for the longer of ``cooldown``
        and the flapping period, then forgotten too."""
        if not group.is_quiet():
            group.forget_at_us = None
            return group
        if group.suppressed and self._hold_us:
            if group.forget_at_us is None:
                group.forget_at_us = at_us + self._hold_us
            return group
        del self.groups[key]
        return None

    def _start(
        self, key: Hashable, group: GroupState, at_us: int, first_seen_us: int
    ) -> Alert | None:
        """The alert state rises: a new incident (or, while flapping, the
        flapping one goes on)."""
        group.firing = True
        if group.flapping:
            assert group.incident is not None
            group.incident.ends_at_us = None
            group.incident.last_seen_us = at_us
            group.suppressed += 1
            self._record_change(group, at_us)
            return None
        labels = self._labels(key)
        group.incident = Incident(
            incident_id(self.rule.name, labels, at_us), at_us, first_seen_us, at_us
        )
        if self._renotify_us:
            group.renotify_at_us = at_us + self._renotify_us
        if self._record_change(group, at_us):
            return self._notify(key, group, FLAPPING, at_us)
        last = self._last_notified_us.get(key)
        cooldown = self.rule.cooldown_us
        if cooldown and last is not None and at_us < last + cooldown:
            group.suppressed += 1
            self.suppressed += 1
            return None
        if cooldown:
            self._last_notified_us[key] = at_us
        return self._notify(key, group, FIRING, at_us)

    def _end(self, key: Hashable, group: GroupState, at_us: int) -> Alert | None:
        """The alert state falls at ``at_us``."""
        incident = group.incident
        assert incident is not None
        group.firing = False
        group.renotify_at_us = None
        incident.ends_at_us = at_us
        if group.flapping:
            self._record_change(group, at_us)
            return None
        if self._record_change(group, at_us):
            return self._notify(key, group, FLAPPING, at_us)
        group.incident = None
        if not incident.notified:
            return None
        return self._notify(key, group, RESOLVED, at_us, incident)

    def _record_change(self, group: GroupState, at_us: int) -> bool:
        """Count one alert state change; True when it starts flapping."""
        flap = self._flap
        if flap is None:
            return False
        changes = group.changes
        changes.append(at_us)
        while changes[0] < at_us - flap.within_us:
            changes.popleft()
        if group.flapping or len(changes) <= flap.changes:
            return False
        group.flapping = True
        group.renotify_at_us = None
        return True

    def _settle(self, key: Hashable, group: GroupState, at_us: int) -> Alert | None:
        """No change for ``within``: forget the history; if the group was
        flapping, notify its actual state."""
        group.changes.clear()
        if not group.flapping:
            return None
        group.flapping = False
        incident = group.incident
        assert incident is not None
        if group.firing:
            if self._renotify_us:
                group.renotify_at_us = at_us + self._renotify_us
            return self._notify(key, group, FIRING, at_us)
        group.incident = None
        return self._notify(key, group, RESOLVED, at_us, incident)

    def _repeat(self, key: Hashable, group: GroupState, at_us: int) -> Alert:
        assert group.incident is not None
        group.renotify_at_us = at_us + self._renotify_us
        return self._notify(key, group, FIRING, at_us)

    # -- notifications -------------------------------------------------------

    def _notify(
        self,
        key: Hashable,
        group: GroupState,
        status: str,
        at_us: int,
        incident: Incident | None = None,
    ) -> Alert:
        """The next notification of the incident (the group's current one
        unless given), sent at ``at_us``."""
        incident = incident or group.incident
        assert incident is not None
        incident.sequence += 1
        if status == FIRING:
            incident.notified = True
            if group.cleared_at_us is None and group.active:
                incident.last_seen_us = at_us
        suppressed, group.suppressed = group.suppressed, 0
        return self._alert(key, group, status, incident, suppressed)

    def _labels(self, key: Hashable) -> dict[str, Any]:
        return {**group_labels(self.rule.group_by, key), **self.rule.labels}

    def _alert(
        self,
        key: Hashable,
        group_state: GroupState,
        status: str,
        incident: Incident,
        suppressed: int,
    ) -> Alert:
        group = group_labels(self.rule.group_by, key)
        labels = {**group, **self.rule.labels}
        alert = Alert(
            rule=self.rule.name,
            severity=self.rule.severity,
            status=status,
            labels=labels,
            group=group,
            starts_at_us=incident.starts_at_us,
            ends_at_us=incident.ends_at_us if status == RESOLVED else None,
            incident_id=incident.incident_id,
            sequence=incident.sequence,
            evidence=group_state.evidence,
            summary="",
            first_seen_us=incident.first_seen_us,
            last_seen_us=incident.last_seen_us,
            suppressed=suppressed,
        )
        fields = self._template_fields(alert, group_state.exemplar)
        return replace(
            alert,
            summary=self._render(fields),
            description=self._render_description(fields),
            annotations={n: r(fields) for n, r in self._render_annotations.items()},
        )

    def _template_fields(self, alert: Alert, exemplar: Event | None) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if exemplar is not None:
            fields["event_type"] = exemplar.event_type
            fields["source"] = exemplar.source
            fields["value"] = exemplar.value
            for name, get in self._metadata_fields.items():
                fields[name] = get(exemplar)
        for path, value in alert.group.items():
            fields[path] = value
            fields[path.rsplit(".", 1)[-1]] = value
        fields.update(alert.labels)
        fields.update(alert.evidence)
        fields.update(
            rule=alert.rule,
            severity=alert.severity,
            status=alert.status,
            incident_id=alert.incident_id,
            sequence=alert.sequence,
            suppressed=alert.suppressed,
            starts_at=format_timestamp(alert.starts_at_us),
            ends_at=_timestamp(alert.ends_at_us),
            first_seen=_timestamp(alert.first_seen_us),
            last_seen=_timestamp(alert.last_seen_us),
        )
        return fields


def _timestamp(at_us: int | None) -> str | None:
    return None if at_us is None else format_timestamp(at_us)


def _group_data(group: GroupState) -> dict[str, Any]:
    return {
        "active": group.active,
        "evidence": dict(group.evidence),
        "exemplar": None if group.exemplar is None else encode_event(group.exemplar),
        "last_signal_us": group.last_signal_us,
        "pending_since_us": group.pending_since_us,
        "incident": None if group.incident is None else asdict(group.incident),
        "firing": group.firing,
        "cleared_at_us": group.cleared_at_us,
        "renotify_at_us": group.renotify_at_us,
        "suppressed": group.suppressed,
        "changes": list(group.changes),
        "flapping": group.flapping,
        "forget_at_us": group.forget_at_us,
    }


def _group_from_data(data: Mapping[str, Any]) -> GroupState:
    exemplar = data["exemplar"]
    incident = data["incident"]
    return GroupState(
        active=data["active"],
        evidence=dict(data["evidence"]),
        exemplar=None if exemplar is None else decode_event(exemplar),
        last_signal_us=data["last_signal_us"],
        pending_since_us=data["pending_since_us"],
        incident=None if incident is None else Incident(**incident),
        firing=data["firing"],
        cleared_at_us=data["cleared_at_us"],
        renotify_at_us=data["renotify_at_us"],
        suppressed=data["suppressed"],
        changes=deque(data["changes"]),
        flapping=data["flapping"],
        forget_at_us=data["forget_at_us"],
    )
