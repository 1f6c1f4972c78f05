"""One rule at run time: its groups, their detector states, their timers.

The runtime hands every decoded event to :meth:`RuleRunner.feed`; when the
watermark moves it calls :meth:`RuleRunner.advance`, which decides every
instant before the watermark for the groups that got events or whose timer
is due, and returns the resulting alerts in time order. A group's timer is
the earliest of its detector's and its lifecycle's wake-ups (``for``,
``keep_firing_for``, ``renotify``, flap damping). A detector state that has
emptied is evicted, and the lifecycle drops a group that has nothing left
to do, so memory follows the live keys.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Mapping
from typing import Any

from engine.alerts import Alert
from engine.components import Detector, DetectorState, RuleInfo, Window
from engine.config import RuleConfig
from engine.events import Event
from engine.lifecycle import RuleLifecycle
from engine.matching import compile_group_key, compile_match, split_event_types
from engine.plugin_manager import Registry
from engine.state import decode_event, decode_key, encode_event, encode_key

#: An alert with what orders it among the alerts of one watermark move.
TimedAlert = tuple[int, int, int, Alert]


class RuleRunner:
    """Routes one rule's events to per-group detector states."""

    def __init__(self, rule: RuleConfig, registry: Registry) -> None:
        self.rule = rule
        info = RuleInfo(rule.name, rule.index, rule.where)
        window_cls = registry.get("window", rule.window.type)
        detector_cls = registry.get("detector", rule.detector.type)
        self.window: Window = window_cls(rule.window.options, info)
        self.detector: Detector = detector_cls(rule.detector.options, info, self.window)
        self.matches = compile_match(rule.match)
        #: The event types this rule takes (None: any), and the rest of its
        #: match, for events the runtime has already routed by type.
        self.route_types, rest = split_event_types(rule.match)
        self._rest_matches = compile_match(rest)
        self.group_key = compile_group_key(rule.group_by)
        self.lifecycle = RuleLifecycle(rule)
        #: Whether the lifecycle has timers of its own; without them a group
        #: is advanced exactly as its detector says.
        self._timed_lifecycle = rule.timed or bool(rule.cooldown_us)
        self.groups: dict[Hashable, DetectorState] = {}
        #: The newest event of each group among those already decided, for
        #: event fields in summaries.
        self.exemplars: dict[Hashable, Event] = {}
        #: Events of each group not yet decided, in arrival order: an alert
        #: at instant t takes the newest of them at or before t, so that its
        #: summary does not depend on how the input was cut into batches.
        self._undecided: dict[Hashable, list[Event]] = {}
        #: Groups fed since the last advance.
        self.dirty: dict[Hashable, DetectorState] = {}
        self._timers: list[tuple[int, int, Hashable]] = []
        self._scheduled: dict[Hashable, int] = {}
        self._timer_sequence = 0
        self._alert_sequence = 0
        # Groups watched before any event of theirs arrives (``absence``):
        # dirty, so that the first watermark decides them and sets a timer.
        for key in self.detector.expected_keys(rule.group_by):
            self.groups[key] = self.dirty[key] = self.detector.new_expected_state()

    def feed(self, event: Event) -> None:
        """Route one event that is not late."""
        if self.matches is not None and not self.matches(event):
            return
        self._add(event)

    def feed_routed(self, event: Event) -> None:
        """Route one event that is not late and whose type is one of
        :attr:`route_types` (the hot path: the type is not tested again)."""
        if self._rest_matches is not None and not self._rest_matches(event):
            return
        self._add(event)

    def _add(self, event: Event) -> None:
        key = None if self.group_key is None else self.group_key(event)
        state = self.groups.get(key)
        if state is None:
            state = self.groups[key] = self.detector.new_state()
        state.add(event)
        self.dirty[key] = state
        undecided = self._undecided.get(key)
        if undecided is None:
            self._undecided[key] = [event]
        else:
            undecided.append(event)

    def feed_late(self, event: Event) -> bool:
        """Offer a late event (``late: include``); False when its group's
        state no longer exists and the event is dropped."""
        if self.matches is not None and not self.matches(event):
            return True
        key = None if self.group_key is None else self.group_key(event)
        state = self.groups.get(key)
        if state is None:
            return False
        state.add_late(event)
        return True

    def advance(self, watermark_us: int) -> list[TimedAlert]:
        """Decide all instants before the watermark; alerts come back with
        ``(instant, rule index, sequence)`` so the runtime can order them."""
        alerts: list[TimedAlert] = []
        dirty, self.dirty = self.dirty, {}
        for key, state in dirty.items():
            self._advance_group(key, state, watermark_us, alerts)
        timers = self._timers
        while timers and timers[0][0] < watermark_us:
            due_us, _, key = heapq.heappop(timers)
            if self._scheduled.get(key) != due_us:
                continue  # superseded by an earlier timer for the same group
            del self._scheduled[key]
            timed_state = self.groups.get(key)
            if timed_state is not None or self._timed_lifecycle:
                self._advance_group(key, timed_state, watermark_us, alerts)
        if self.rule.cooldown_us:
            self.lifecycle.forget_cooldowns(watermark_us)
        return alerts

    def _advance_group(
        self,
        key: Hashable,
        state: DetectorState | None,
        watermark_us: int,
        alerts: list[TimedAlert],
    ) -> None:
        """Decide the group up to the watermark: the detector's signals and,
        in time order between them, the lifecycle's own transitions.

        ``state`` is None when only the lifecycle still has work for the group
        (``keep_firing_for`` after the detector emptied, say).
        """
        undecided = self._undecided.pop(key, None)
        lifecycle = self.lifecycle
        timed = self._timed_lifecycle
        for signal in state.advance(watermark_us) if state is not None else ():
            if timed:
                self._add_notices(lifecycle.advance(key, signal.at_us), alerts)
            exemplar = self._exemplar(key, undecided, signal.at_us)
            alert = lifecycle.on_signal(key, signal, exemplar)
            if alert is not None:
                self._alert_sequence += 1
                alerts.append(
                    (signal.at_us, self.rule.index, self._alert_sequence, alert)
                )
        if timed:
            self._add_notices(lifecycle.advance(key, watermark_us), alerts)
        if undecided:
            newest = undecided[-1]
            if len(undecided) == 1 and newest.time_us < watermark_us:
                self.exemplars[key] = newest  # the common case, in short
            else:
                self._keep_undecided(key, undecided, watermark_us)
        if state is not None and state.is_idle():
            del self.groups[key]
            self.exemplars.pop(key, None)
            state = None
        self._schedule(key, self._wakeup(key, state))

    def _add_notices(
        self, notices: list[tuple[int, Alert]], alerts: list[TimedAlert]
    ) -> None:
        for at_us, alert in notices:
            self._alert_sequence += 1
            alerts.append((at_us, self.rule.index, self._alert_sequence, alert))

    def _exemplar(
        self, key: Hashable, undecided: list[Event] | None, instant_us: int
    ) -> Event | None:
        """The newest event of the group at or before ``instant_us``."""
        for event in reversed(undecided or ()):
            if event.time_us <= instant_us:
                return event
        return self.exemplars.get(key)

    def _keep_undecided(
        self, key: Hashable, events: list[Event], watermark_us: int
    ) -> None:
        """Events before the watermark are decided now; keep the rest."""
        decided = [event for event in events if event.time_us < watermark_us]
        if decided:
            self.exemplars[key] = decided[-1]
        if len(decided) < len(events):
            self._undecided[key] = [e for e in events if e.time_us >= watermark_us]

    def snapshot(self) -> dict[str, Any]:
        """The rule's state as plain data, taken between batches: detector
        states, exemplars, undecided events and the alert lifecycle. Timers
        are not saved; :meth:`restore` rebuilds them from the wake-ups."""
        return {
            "groups": [
                [encode_key(key), state.snapshot()]
                for key, state in self.groups.items()
            ],
            "exemplars": [
                [encode_key(key), encode_event(event)]
                for key, event in self.exemplars.items()
            ],
            "undecided": [
                [encode_key(key), [encode_event(event) for event in events]]
                for key, events in self._undecided.items()
            ],
            "lifecycle": self.lifecycle.snapshot(),
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Take back what :meth:`snapshot` saved, before any event is fed.

        Raises ``ValueError`` (or ``KeyError``, ``TypeError``) when the data
        does not fit this rule's detector.
        """
        restore_state = self.detector.restore_state
        self.groups = {decode_key(k): restore_state(s) for k, s in data["groups"]}
        self.exemplars = {decode_key(k): decode_event(e) for k, e in data["exemplars"]}
        self._undecided = {
            decode_key(key): [decode_event(event) for event in events]
            for key, events in data["undecided"]
        }
        self.lifecycle.restore(data["lifecycle"])
        # Groups with undecided events are decided at the next advance, as if
        # fed since the last one; every other group waits for its wake-up.
        self.dirty = {k: self.groups[k] for k in self._undecided if k in self.groups}
        self._timers, self._scheduled = [], {}
        keys = set(self.groups)
        if self._timed_lifecycle:
            keys.update(self.lifecycle.groups)
        for key in keys:
            self._schedule(key, self._wakeup(key, self.groups.get(key)))

    def _wakeup(self, key: Hashable, state: DetectorState | None) -> int | None:
        wakeup = None if state is None else state.next_wakeup()
        if self._timed_lifecycle:
            wakeup = _earliest(wakeup, self.lifecycle.next_wakeup(key))
        return wakeup

    def _schedule(self, key: Hashable, wakeup: int | None) -> None:
        if wakeup is None:
            return
        scheduled = self._scheduled.get(key)
        if scheduled is None or wakeup < scheduled:
            self._scheduled[key] = wakeup
            self._timer_sequence += 1
            heapq.heappush(self._timers, (wakeup, self._timer_sequence, key))

    def snapshot_groups(self) -> dict[str, Any]:
        """How many groups are alive and how many are firing (for summaries)."""
        return {"groups": len(self.groups), "firing": self.lifecycle.firing_count()}


def _earliest(one: int | None, other: int | None) -> int | None:
    if one is None:
        return other
    return one if other is None or one <= other else other
