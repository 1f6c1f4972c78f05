"""Helpers for testing rules and plugins: an in-memory source, a capturing
sink, and :func:`run_rules`, which runs a rules file over given events with a
simulated clock and returns the alerts.

Used by this project's tests and meant for plugin authors too::

    from engine.testing import event, run_rules

    alerts = run_rules(RULES_YAML, [[event(1.0, "ERROR", "web-1")] * 5])
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from engine.alerts import Alert
from engine.clock import SimulatedClock
from engine.components import Options, RuntimeContext, Sink, Source
from engine.config import parse_config
from engine.events import Event, event_to_json_dict
from engine.hookspecs import hookimpl
from engine.runtime import Engine
from engine.stats import RunSummary
from engine.timeutil import seconds_to_us

#: What a test may put in a batch: an event, its JSON form, or a raw line.
RawInput = Event | dict[str, Any] | bytes | str


def event(
    seconds: float,
    event_type: str = "ERROR",
    source: str = "web-1",
    value: float | int | None = None,
    **metadata: Any,
) -> Event:
    """An event at ``seconds`` after the epoch (exact to the microsecond)."""
    return Event(seconds_to_us(seconds), event_type, source, value, metadata)


def _as_line(item: RawInput) -> bytes:
    if isinstance(item, Event):
        return json.dumps(event_to_json_dict(item)).encode()
    if isinstance(item, dict):
        return json.dumps(item).encode()
    return item.encode() if isinstance(item, str) else item


class MemorySource(Source):
    """Source ``memory``: yields the batches given to :class:`MemoryPlugin`,
    as JSON lines, so that they go through the same decoding as real input."""

    type_name: ClassVar[str] = "memory"
    description: ClassVar[str] = "batches held in memory (tests)"
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {},
    }
    batches_to_send: ClassVar[Sequence[Sequence[RawInput]]] = ()

    def batches(self) -> Iterator[list[bytes]]:
        for batch in self.batches_to_send:
            yield [_as_line(item) for item in batch]


class CapturingSink(Sink):
    """Keeps every alert it receives, in order."""

    type_name: ClassVar[str] = "capture"
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {},
    }

    def __init__(
        self, options: Options | None = None, context: RuntimeContext | None = None
    ) -> None:
        self.alerts: list[Alert] = []
        self.closed = False

    def send(self, alert: Alert) -> None:
        self.alerts.append(alert)

    def close(self) -> None:
        self.closed = True


class MemoryPlugin:
    """A plugin providing source ``memory`` over the given batches."""

    def __init__(self, batches: Iterable[Iterable[RawInput]]) -> None:
        frozen = [list(batch) for batch in batches]
        self.source_class = type(
            "BoundMemorySource", (MemorySource,), {"batches_to_send": frozen}
        )

    @hookimpl
    def engine_register_sources(self) -> list[type[Source]]:
        return [self.source_class]


def run_rules(
    rules_yaml: str,
    batches: Iterable[Iterable[RawInput]],
    *,
    base_dir: Path = Path("."),
    clock: SimulatedClock | None = None,
) -> list[Alert]:
    """Run a rules file whose source is ``{type: memory}`` over ``batches``
    and return every alert edge, in the order the sinks received them."""
    alerts, _ = run_rules_with_summary(
        rules_yaml, batches, base_dir=base_dir, clock=clock
    )
    return alerts


def run_rules_with_summary(
    rules_yaml: str,
    batches: Iterable[Iterable[RawInput]],
    *,
    base_dir: Path = Path("."),
    clock: SimulatedClock | None = None,
) -> tuple[list[Alert], RunSummary]:
    """Like :func:`run_rules`, also returning the run's summary."""
    config, registry = parse_config(
        rules_yaml, "<test rules>", base_dir, extra_plugins=(MemoryPlugin(batches),)
    )
    sink = CapturingSink()
    engine = Engine(
        config, registry, clock=clock or SimulatedClock(), extra_sinks=[sink]
    )
    summary = engine.run()
    return sink.alerts, summary
