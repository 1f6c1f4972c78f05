"""State snapshots: what a restart needs to go on as if nothing happened.

A snapshot is one JSON file holding, for a position P of every source, the
effects of every batch up to P: each rule's detector states, exemplars,
undecided events and alert lifecycle, the watermark, each source's
checkpoint, and the alerts not yet delivered to each sink. The runtime's
:class:`Checkpointer` decides when to write one, writes it through a
:class:`StateKeeper` and only then commits P to the sources, so a broker
never forgets a message whose effects are not on disk.

Writing is atomic: a temporary file in the same folder is written, flushed
and synced, then renamed over the old snapshot, and the folder is synced,
so a crash leaves either the old snapshot or the new one, never a mix.

Group keys (None, strings, numbers, booleans, and tuples of them) are kept
exactly: a tuple is written as ``{"tuple": [...]}``, so it comes back a
tuple, and JSON keeps ``1``, ``1.0`` and ``true`` apart.

Each rule's state is stored with a fingerprint of what shapes it: the
window, the detector and ``group_by``. When a rule's fingerprint differs
from the rules file of the new run, or the rule is gone, its saved state is
dropped with a warning and the rule starts empty; the other rules, the
watermark and the sources' positions are restored. Refusing to start would
force the operator to delete the whole snapshot instead, losing the state
of every other rule.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.alerts import Alert
from engine.clock import Clock
from engine.components import Source
from engine.config import ComponentConfig, RuleConfig, StateConfig
from engine.errors import UsageError
from engine.events import Event
from engine.timeutil import END_OF_TIME, format_timestamp

if TYPE_CHECKING:
    from engine.delivery import DeliveryQueue
    from engine.rule_runner import RuleRunner

log = logging.getLogger(__name__)

#: What the ``format`` field of every snapshot says.
SNAPSHOT_FORMAT = "burst-engine-state"
#: Bumped when the layout changes in a way older code cannot read.
SNAPSHOT_VERSION = 1


# -- plain data ------------------------------------------------------------------


def encode_key(key: Hashable) -> Any:
    """A group key as JSON-able data that :func:`decode_key` turns back."""
    if isinstance(key, tuple):
        return {"tuple": [encode_key(part) for part in key]}
    if key is None or isinstance(key, (str, int, float)):
        return key
    raise TypeError(f"cannot save a group key of type {type(key).__name__}: {key!r}")


def decode_key(data: Any) -> Hashable:
    """The group key that :func:`encode_key` wrote."""
    if isinstance(data, dict):
        return tuple(decode_key(part) for part in data["tuple"])
    if data is None or isinstance(data, (str, int, float)):
        return data
    raise ValueError(f"not a saved group key: {data!r}")


def encode_event(event: Event) -> list[Any]:
    return [event.time_us, event.event_type, event.source, event.value, event.metadata]


def decode_event(data: list[Any]) -> Event:
    time_us, event_type, source, value, metadata = data
    return Event(int(time_us), event_type, source, value, dict(metadata))


def rule_fingerprint(rule: RuleConfig) -> str:
    """A digest of what gives the rule's saved state its meaning: its window,
    its detector and its ``group_by``. ``match``, the summary and the
    lifecycle options may change across a restart; the state still fits."""
    shape = {
        "window": [rule.window.type, dict(rule.window.options)],
        "detector": [rule.detector.type, dict(rule.detector.options)],
        "group_by": list(rule.group_by),
    }
    text = json.dumps(shape, sort_keys=True, default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    return str(value)


# -- files ------------------------------------------------------------------------


def write_snapshot(path: Path, data: Mapping[str, Any]) -> None:
    """Replace the snapshot at ``path`` with ``data``, atomically.

    Raises ``TypeError``/``ValueError`` when ``data`` is not JSON-able and
    ``OSError`` when the file cannot be written; the old snapshot is then
    untouched.
    """
    document = {"format": SNAPSHOT_FORMAT, "version": SNAPSHOT_VERSION, **data}
    text = json.dumps(document, separators=(",", ":"))
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _sync_folder(folder)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX; a no-op where folders cannot
    be opened, as on Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def remove_stale_temporaries(path: Path) -> None:
    """Delete temporary files that writes of the snapshot at ``path`` left
    behind when the process died before renaming them."""
    for stale in path.parent.glob(f".{path.name}.*"):
        try:
            stale.unlink()
        except OSError as error:
            log.warning("cannot remove %s: %s", stale, error)


def read_snapshot(path: Path) -> dict[str, Any] | None:
    """The snapshot at ``path``, or None when there is none yet.

    A file that is not a snapshot of this format and version is a
    :class:`UsageError` naming it: silently starting empty would lose or
    repeat what the snapshot was there to keep.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"state file {path}: cannot read it: {error}") from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(
            f"state file {path}: not valid JSON ({error}); it is not a snapshot "
            "of this engine or it is damaged: move it away to start without state"
        ) from error
    if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
        raise UsageError(
            f"state file {path}: not a {SNAPSHOT_FORMAT} snapshot; move it away "
            "to start without state"
        )
    if data.get("version") != SNAPSHOT_VERSION:
        raise UsageError(
            f"state file {path}: snapshot version {data.get('version')!r}, but "
            f"this engine reads version {SNAPSHOT_VERSION}; move it away to start "
            "without state"
        )
    problem = _layout_problem(data)
    if problem:
        raise UsageError(f"state file {path}: {problem}; the snapshot is damaged")
    return data


def _layout_problem(data: Mapping[str, Any]) -> str | None:
    """What is missing or of the wrong type at the top level, if anything."""
    expected: dict[str, type | tuple[type, ...]] = {
        "watermark_us": int,
        "max_seen_us": int,
        "rules": dict,
        "sources": list,
        "sinks": list,
    }
    for name, kind in expected.items():
        if not isinstance(data.get(name), kind):
            return f"{name!r} is missing or not of type {_type_name(kind)}"
    return None


def _type_name(kind: type | tuple[type, ...]) -> str:
    return (
        kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
    )


def usable_rule_states(
    path: Path, saved: Mapping[str, Any], rules: tuple[RuleConfig, ...]
) -> dict[str, Any]:
    """The saved state of each current rule whose fingerprint still matches,
    by rule name; every other saved rule is reported and dropped."""
    usable: dict[str, Any] = {}
    current = {rule.name: rule for rule in rules}
    for name, entry in saved.items():
        rule = current.get(name)
        if rule is None:
            log.warning(
                "state file %s: rule %s is no longer in the rules file; its "
                "state is dropped",
                path,
                name,
            )
            continue
        if not isinstance(entry, dict) or entry.get("fingerprint") != (
            rule_fingerprint(rule)
        ):
            log.warning(
                "state file %s: the window, detector or group_by of rule %s "
                "changed since the snapshot; the rule starts without state and "
                "alerts it had open are not resolved",
                path,
                name,
            )
            continue
        usable[name] = entry.get("state")
    return usable


# -- one run's snapshots --------------------------------------------------------------


class StateKeeper:
    """The snapshots of one run: what to restore at start, the positions
    processed since, and what goes into the next snapshot.

    The :class:`Checkpointer` owns the timing (between batches, at most
    once per interval, and at shutdown) and commits to the sources the
    positions that :meth:`write` hands back, once the snapshot holding them
    is safe.
    """

    def __init__(self, config: StateConfig, rules_file: str) -> None:
        self.path = config.path
        self.interval_us = config.interval_us
        self.rules_file = rules_file
        #: The latest processed position of each source, and those not yet
        #: committed.
        self._positions: dict[int, Any] = {}
        self._uncommitted: dict[int, Any] = {}
        #: Each source's checkpoint from the restored snapshot, kept until
        #: the source hands over a batch in this run.
        self._restored_checkpoints: dict[int, Any] = {}
        self._restored_alerts: dict[str, list[Alert]] = {}

    def load(self) -> dict[str, Any] | None:
        """The last snapshot (see :func:`read_snapshot`), after removing the
        temporary files that writes cut short by a crash left behind."""
        remove_stale_temporaries(self.path)
        return read_snapshot(self.path)

    # -- restoring ---------------------------------------------------------------

    def restore_rules(
        self, saved: Mapping[str, Any], runners: Sequence[RuleRunner]
    ) -> None:
        states = usable_rule_states(
            self.path, saved["rules"], tuple(r.rule for r in runners)
        )
        for runner in runners:
            if runner.rule.name not in states:
                continue
            try:
                runner.restore(states[runner.rule.name])
            except (KeyError, TypeError, ValueError) as error:
                raise UsageError(
                    f"state file {self.path}: the state of rule {runner.rule.name} "
                    f"cannot be restored: {type(error).__name__}: {error}"
                ) from error

    def restore_sources(
        self,
        saved: Mapping[str, Any],
        sources: Sequence[Source],
        configs: Sequence[ComponentConfig],
    ) -> None:
        """Tell each source where to resume, before it starts reading."""
        entries = saved["sources"]
        for index, (source, config) in enumerate(zip(sources, configs, strict=True)):
            entry = entries[index] if index < len(entries) else None
            if not isinstance(entry, dict) or entry.get("type") != config.type:
                log.warning(
                    "state file %s has no position for source %s; it starts "
                    "where it would without state",
                    self.path,
                    config.where,
                )
                continue
            checkpoint = entry.get("checkpoint")
            self._restored_checkpoints[index] = checkpoint
            resume = getattr(source, "resume_after", None)
            if checkpoint is None:
                continue
            if resume is None:
                log.warning(
                    "source %s cannot resume from a saved position; it starts "
                    "where it would without state",
                    config.where,
                )
                continue
            resume(checkpoint)

    def restore_alerts(self, saved: Mapping[str, Any]) -> None:
        """Keep the undelivered alerts of the snapshot for :meth:`resend`."""
        for entry in saved["sinks"]:
            self._restored_alerts[entry["name"]] = [
                Alert.from_record(record) for record in entry["pending"]
            ]

    def resend(self, sinks: Sequence[DeliveryQueue]) -> None:
        """Queue again, to the same sinks, the alerts they had not delivered
        when the snapshot was taken."""
        restored, self._restored_alerts = self._restored_alerts, {}
        for delivery in sinks:
            alerts = restored.pop(delivery.name, [])
            if alerts:
                log.info(
                    "sending %d alerts again that %s had not delivered before "
                    "the restart",
                    len(alerts),
                    delivery.name,
                )
            for alert in alerts:
                delivery.send(alert)
        for name, alerts in restored.items():
            if alerts:
                log.warning(
                    "%d undelivered alerts for %s are dropped: no such sink now",
                    len(alerts),
                    name,
                )

    # -- saving ------------------------------------------------------------------

    def processed(self, index: int, position: Any) -> None:
        """Source ``index`` handed over a batch that ends at ``position``
        and the batch is processed."""
        self._positions[index] = position
        self._uncommitted[index] = position

    def write(
        self,
        data: Mapping[str, Any],
        sources: Sequence[Source],
        configs: Sequence[ComponentConfig],
    ) -> dict[int, Any]:
        """Write a snapshot of ``data`` (watermark, rules and sinks, see the
        runtime) with every source's checkpoint and return the positions to
        commit now, by source index. Raises like :func:`write_snapshot`."""
        checkpoints = [
            {"type": config.type, "checkpoint": self._checkpoint(index, source)}
            for index, (source, config) in enumerate(zip(sources, configs, strict=True))
        ]
        document = {"rules_file": self.rules_file, **data, "sources": checkpoints}
        write_snapshot(self.path, document)
        uncommitted, self._uncommitted = self._uncommitted, {}
        return uncommitted

    def _checkpoint(self, index: int, source: Source) -> Any:
        """What the source needs to skip, after a restart, the messages whose
        effects the snapshot holds: its own checkpoint of the latest
        processed position, or that position itself."""
        if index not in self._positions:
            return self._restored_checkpoints.get(index)
        position = self._positions[index]
        checkpoint = getattr(source, "checkpoint", None)
        return position if checkpoint is None else checkpoint(position)


def rules_data(runners: Sequence[RuleRunner]) -> dict[str, Any]:
    """Each rule's state with its fingerprint, by rule name."""
    return {
        runner.rule.name: {
            "fingerprint": rule_fingerprint(runner.rule),
            "state": runner.snapshot(),
        }
        for runner in runners
    }


def sinks_data(sinks: Sequence[DeliveryQueue]) -> list[dict[str, Any]]:
    """The alerts each sink has not delivered yet."""
    return [
        {"name": d.name, "pending": [a.to_record() for a in d.pending_alerts()]}
        for d in sinks
    ]


# -- the run loop's side --------------------------------------------------------------


class Checkpointer:
    """When the run loop writes snapshots, what goes in them, and which
    sources' positions are committed once they are written.

    The runtime calls it between batches only, never per event: it notes
    each processed batch (:meth:`processed`), offers a snapshot at each
    tick (:meth:`save_if_due`) and takes the last one at shutdown
    (:meth:`save_final`). The watermark stays the runtime's, which hands it
    over with each call.
    """

    def __init__(
        self,
        keeper: StateKeeper,
        clock: Clock,
        *,
        runners: Sequence[RuleRunner],
        sinks: Sequence[DeliveryQueue],
        sources: Sequence[Source],
        configs: Sequence[ComponentConfig],
        commit: Callable[[int, Any], None],
    ) -> None:
        self.keeper = keeper
        self.clock = clock
        self.runners = runners
        self.sinks = sinks
        self.sources = sources
        self.configs = configs
        self._commit = commit
        #: Whether a batch was processed since the last snapshot, and the
        #: watermark that snapshot holds: the watermark only moves forward,
        #: so a different one means it moved since.
        self._processed_since = False
        self._saved_watermark_us = -END_OF_TIME
        self._next_us = 0

    def restore(self, saved: Mapping[str, Any]) -> tuple[int, int]:
        """Take back the rest of a snapshot (the rules' state is back
        already), before any source reads: where each source resumes, and the
        undelivered alerts, sent again by :meth:`start`. Returns the
        watermark and the newest event time seen, in microseconds."""
        self.keeper.restore_sources(saved, self.sources, self.configs)
        self.keeper.restore_alerts(saved)
        self._saved_watermark_us = saved["watermark_us"]
        log.info(
            "state restored from %s (written at %s)",
            self.keeper.path,
            saved.get("written_at"),
        )
        return saved["watermark_us"], saved["max_seen_us"]

    def start(self) -> None:
        """The run starts: send the restored alerts again and count the first
        interval from now."""
        self.keeper.resend(self.sinks)
        self._next_us = self.clock.monotonic_us() + self.keeper.interval_us

    def processed(self, index: int, position: Any) -> None:
        """A batch of source ``index`` is processed; it ends at ``position``
        (None when the source has no positions)."""
        self._processed_since = True
        if position is not None:
            self.keeper.processed(index, position)

    def save_if_due(self, watermark_us: int, max_seen_us: int) -> None:
        """Write a snapshot when the interval has passed and something
        changed since the last one."""
        now_us = self.clock.monotonic_us()
        changed = self._processed_since or watermark_us != self._saved_watermark_us
        if now_us < self._next_us or not changed:
            return
        self._next_us = now_us + self.keeper.interval_us
        self.save(watermark_us, max_seen_us)

    def save_final(self, watermark_us: int, max_seen_us: int, wait_s: float) -> None:
        """At shutdown, once the sinks delivered what they could within
        ``wait_s``: what is still undelivered goes into the snapshot and is
        sent after a restart (delivered alerts would otherwise be sent
        twice)."""
        if not all(delivery.wait_idle(wait_s) for delivery in self.sinks):
            log.warning("some alerts are not delivered yet; the snapshot keeps them")
        if self.save(watermark_us, max_seen_us):
            log.info("state saved to %s", self.keeper.path)

    def save(self, watermark_us: int, max_seen_us: int) -> bool:
        """Write a snapshot of everything processed so far, then commit the
        sources' positions it covers; False when it could not be written."""
        data = {
            "written_at": format_timestamp(self.clock.now_us()),
            "watermark_us": watermark_us,
            "max_seen_us": max_seen_us,
            "rules": rules_data(self.runners),
            "sinks": sinks_data(self.sinks),
        }
        try:
            positions = self.keeper.write(data, self.sources, self.configs)
        except (OSError, TypeError, ValueError):
            # The positions stay uncommitted: a broker delivers the messages
            # again after a restart, nothing is lost.
            log.exception("writing the state snapshot to %s failed", self.keeper.path)
            return False
        self._processed_since = False
        self._saved_watermark_us = watermark_us
        for index, position in positions.items():
            self._commit(index, position)
        return True
