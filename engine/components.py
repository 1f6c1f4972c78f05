"""The four kinds of component, as the core calls them.

Sources, window processors, detectors and sinks are classes that plugins
register through the ``engine_register_*`` hooks. Each class names its
``type_name`` (the ``type:`` users write) and the JSON Schema of its options;
the engine validates a rules file against those schemas before it builds a
single component, so constructors receive options that are already valid.

The per-event path calls plain methods on objects built once at start-up:
``WindowState.add`` and ``DetectorState.add`` for every matching event,
``DetectorState.advance`` when the watermark moves. Nothing here goes through
pluggy.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from engine.clock import Clock
from engine.errors import UsageError
from engine.events import Event
from engine.timeutil import parse_duration

if TYPE_CHECKING:
    from engine.alerts import Alert

Options = Mapping[str, Any]


class Component:
    """What every component class declares about itself."""

    #: The name users write as ``type:`` in a rules file.
    type_name: ClassVar[str]
    #: JSON Schema (draft 2020-12) of the component's options, without ``type``.
    options_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    #: One line for ``engine plugins``.
    description: ClassVar[str] = ""

    @classmethod
    def check_options(cls, options: Options) -> list[tuple[tuple[str, ...], str]]:
        """Checks a schema cannot express (one option against another).

        Called after the schema passed; returns ``(path inside the options,
        message)`` pairs, empty when all is well.
        """
        return []


@dataclass(frozen=True)
class RuntimeContext:
    """What the engine gives a source or sink when it builds one.

    ``base_dir`` is the folder of the rules file: relative paths in options
    are resolved against it. ``stopping`` is set when the engine shuts down.
    """

    name: str
    clock: Clock
    base_dir: Path
    stopping: threading.Event = field(default_factory=threading.Event)

    def resolve(self, path: str) -> Path:
        return self.base_dir / Path(path).expanduser()


class Source(Component, ABC):
    """Reads events from somewhere. Runs in a thread of its own.

    ``produces`` says what the batches hold: raw JSON ``"lines"`` (bytes,
    decoded by the core so that every source treats bad input alike) or
    ready ``"events"``.
    """

    produces: ClassVar[Literal["lines", "events"]] = "lines"

    def __init__(self, options: Options, context: RuntimeContext) -> None:
        self.options = options
        self.context = context

    @abstractmethod
    def batches(self) -> Iterator[list[bytes]] | Iterator[list[Event]]:
        """Yield batches until the input ends or ``context.stopping`` is set.

        Called once, from the source's thread. An empty batch means "nothing
        new yet" and lets the engine notice an idle source; returning means
        the input is exhausted. An exception stops this source only: it is
        logged and the others go on.
        """

    def position(self) -> Any:
        """Where the last yielded batch ends (offset, sequence...), or None.

        Called from the source's thread right after each batch is yielded.
        """
        return None

    def commit(self, position: Any) -> None:
        """Acknowledge everything up to ``position`` (a value of
        :meth:`position`): its effects are safely recorded.

        Called from the engine's thread, so it must be thread-safe; a broker
        source acknowledges messages here and not before.
        """

    def close(self) -> None:
        """Release files and connections; called once, after the last batch."""


class Sink(Component, ABC):
    """Receives alert edges (not events)."""

    #: Whether the sink is told about resolutions (users may override).
    send_resolved_default: ClassVar[bool] = True

    def __init__(self, options: Options, context: RuntimeContext) -> None:
        self.options = options
        self.context = context

    @abstractmethod
    def send(self, alert: Alert) -> None:
        """Deliver one alert. An exception is logged and counted; other sinks
        still receive the alert."""

    def flush(self) -> None:
        """Make everything sent so far durable or visible."""

    def close(self) -> None:
        """Flush and release resources; called once at shutdown."""


@dataclass(frozen=True)
class RuleInfo:
    """What a window or detector knows of the rule it serves."""

    name: str
    index: int
    where: str


class WindowState(ABC):
    """The events of one (rule, group) that are still inside the window.

    Timestamps arrive through :meth:`add` in any order, all at or after the
    last instant moved to; the detector then walks the instants in time
    order with :meth:`next_instant` and :meth:`move_to`.
    """

    @abstractmethod
    def add(self, time_us: int) -> None:
        """Record one event that is not yet part of a decided instant."""

    @abstractmethod
    def add_late(self, time_us: int) -> None:
        """Record an event older than instants already decided (``late: include``)."""

    @abstractmethod
    def next_instant(self) -> int | None:
        """The earliest recorded time not yet moved to, or None."""

    @abstractmethod
    def move_to(self, time_us: int) -> int:
        """Make ``time_us`` the current instant and return the count then.

        Events that left the window by ``time_us`` go; events at ``time_us``
        join. ``time_us`` must not be later than :meth:`next_instant`.
        """

    @abstractmethod
    def expire(self, until_us: int) -> None:
        """Forget events that left the window strictly before ``until_us``."""

    @abstractmethod
    def falls_below_at(self, level: int) -> int | None:
        """The instant the count drops below ``level`` if nothing new arrives."""

    @abstractmethod
    def empty_at(self) -> int | None:
        """The instant the window becomes empty if nothing new arrives."""

    def next_change(self) -> int | None:
        """The earliest instant after the current one at which the count may
        change (an event joins or one leaves), or None when it never will.

        Detectors other than ``burst`` walk the count with this and
        :meth:`move_to`; a window processor that does not provide it works
        with ``burst`` only.
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not implement next_change()"
        )

    @abstractmethod
    def snapshot(self) -> dict[str, Any]:
        """Plain data from which :meth:`Window.restore_state` rebuilds this."""


class Window(Component, ABC):
    """A window processor: makes the per-group window state for one rule.

    Every window has a ``size`` option (a positive duration); subclasses add
    their own options to ``options_schema`` and ``check_options``.
    """

    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["size"],
        "additionalProperties": False,
        "properties": {"size": {"$ref": "#/$defs/duration"}},
    }

    def __init__(self, options: Options, rule: RuleInfo) -> None:
        self.options = options
        self.rule = rule
        #: The length of the window, for evidence and summaries.
        self.size_us = parse_duration(options["size"])

    @classmethod
    def check_options(cls, options: Options) -> list[tuple[tuple[str, ...], str]]:
        if parse_duration(options["size"]) <= 0:
            found = options["size"]
            return [(("size",), f"found {found!r}, expected a positive duration")]
        return []

    @abstractmethod
    def new_state(self) -> WindowState: ...

    @abstractmethod
    def restore_state(self, data: Mapping[str, Any]) -> WindowState: ...

    def resized(self, size_us: int) -> Window:
        """The same kind of window (same resolution...) with another length.

        Detectors that compare several windows (``rate_ratio``) open them
        through this. The default rebuilds the window with its ``size``
        option replaced.
        """
        options = {**self.options, "size": f"{size_us}us"}
        return type(self)(options, self.rule)


@dataclass(frozen=True, slots=True)
class Signal:
    """A change of a group's condition, decided at event time ``at_us``."""

    at_us: int
    active: bool
    evidence: dict[str, Any]


class DetectorState(ABC):
    """The condition of one (rule, group): a pure, serialisable state machine.

    The same object can run in this process, in a worker, or inside a
    distributed stream engine's keyed operator: feed events with :meth:`add`,
    apply everything due with :meth:`advance`, ask :meth:`next_wakeup` when
    to come back, and save it with :meth:`snapshot`.
    """

    @abstractmethod
    def add(self, event: Event) -> None:
        """Feed one matching event that is not late."""

    @abstractmethod
    def add_late(self, event: Event) -> None:
        """Feed one late event (``late: include``); decided instants stay."""

    @abstractmethod
    def advance(self, until_us: int) -> list[Signal]:
        """Decide every instant strictly before ``until_us``, in time order.

        Calling it again with the same or an earlier time does nothing, so
        wake-ups may arrive late or twice.
        """

    @abstractmethod
    def next_wakeup(self) -> int | None:
        """The earliest time at which :meth:`advance` may have work, or None."""

    @abstractmethod
    def is_idle(self) -> bool:
        """True when the state holds nothing worth keeping (it can be evicted)."""

    @abstractmethod
    def snapshot(self) -> dict[str, Any]:
        """Plain, versioned data that :meth:`Detector.restore_state` accepts."""


class Detector(Component, ABC):
    """Makes the per-group condition state for one rule."""

    #: Names of the evidence fields, usable in summary templates.
    evidence_fields: ClassVar[tuple[str, ...]] = ()
    #: The summary of rules that do not write their own.
    default_summary: ClassVar[str] = "{rule} is {status}"
    #: The event fields the states read (``time_us``, ``event_type``,
    #: ``source``, ``value``, ``metadata``), or None for "any of them". When no
    #: rule reads ``metadata``, the decoder skips it, which saves most of the
    #: decoding time; so declare the smallest set that holds.
    event_fields: ClassVar[frozenset[str] | None] = None
    #: The window types (``type:``) this detector works with, or None for any
    #: window that implements :meth:`WindowState.next_change`.
    window_types: ClassVar[frozenset[str] | None] = None

    def __init__(self, options: Options, rule: RuleInfo, window: Window) -> None:
        if self.window_types is not None and window.type_name not in self.window_types:
            # Validation refuses this already (check_rule); this guards
            # detectors built by other means.
            raise UsageError(
                f"{rule.where}: detector {self.type_name!r} works with window type "
                f"{', '.join(sorted(self.window_types))} only, not {window.type_name!r}"
            )
        self.options = options
        self.rule = rule
        self.window = window

    @abstractmethod
    def new_state(self) -> DetectorState: ...

    @abstractmethod
    def restore_state(self, data: Mapping[str, Any]) -> DetectorState: ...

    @classmethod
    def check_rule(
        cls, rule: Mapping[str, Any]
    ) -> list[tuple[tuple[str | int, ...], str]]:
        """Checks of the detector's options against the rest of its rule.

        Called with the rule as written (``window``, ``group_by``,
        ``detector``...) after :meth:`check_options` passed; returns ``(path
        inside the rule, message)`` pairs. The default refuses a window type
        outside :attr:`window_types`.
        """
        problems: list[tuple[tuple[str | int, ...], str]] = []
        window_type = rule["window"]["type"]
        if cls.window_types is not None and window_type not in cls.window_types:
            allowed = ", ".join(sorted(cls.window_types))
            problems.append(
                (
                    ("window", "type"),
                    (
                        f"found {window_type!r}, but detector {cls.type_name!r} "
                        f"works with window type {allowed} only"
                    ),
                )
            )
        return problems

    def expected_groups(self) -> list[Any]:
        """Groups to watch from the start of the run even if no event of
        theirs ever arrives (``absence``); empty for most detectors.

        Each entry is a mapping of the rule's ``group_by`` paths to values,
        or a bare value when ``group_by`` has one path.
        """
        return []

    def expected_keys(self, group_by: Sequence[str]) -> list[Hashable]:
        """The group keys of :meth:`expected_groups`, in the form the rule
        runner uses (see :func:`engine.matching.compile_group_key`); the rule
        runner makes their states with :meth:`new_expected_state`."""
        keys: list[Hashable] = []
        for entry in self.expected_groups():
            values = (
                [entry[path] for path in group_by]
                if isinstance(entry, Mapping)
                else [entry]
            )
            values = [
                json.dumps(value, sort_keys=True, separators=(",", ":"))
                if isinstance(value, (dict, list))
                else value
                for value in values
            ]
            keys.append(values[0] if len(values) == 1 else tuple(values))
        return keys

    def new_expected_state(self) -> DetectorState:
        """The state of a group from :meth:`expected_groups`, made before any
        event of it arrived."""
        return self.new_state()
