"""The run loop: batches in, watermark forward, alerts out to the sinks.

One thread owns all rule state. Sources run in their own threads
(:mod:`engine.ingest`); this loop takes their batches, decodes lines,
stamps processing time when asked to, sets late events aside, routes the
rest to the rules, moves the watermark and fans the resulting alerts out
to every sink.

Everything that can be done once per batch is (counting by type and
source, moving the watermark); what is left per event is a timestamp
comparison and one dictionary lookup by event type, because rules are
indexed by the types they match. A block of JSON lines is decoded in one
call, and its timestamps stay datetimes unless a rule wants the event.
``tests/benchmarks/bench.py`` measures the result.

With ``state:`` the loop also writes snapshots (:mod:`engine.state`)
between batches, at most once per interval and at shutdown, and commits
the sources' positions only once a snapshot holds their effects; at start
it restores the last snapshot before any source reads.
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from engine.alerts import Alert
from engine.clock import Clock, SystemClock
from engine.components import RuntimeContext, Sink, Source
from engine.config import ComponentConfig, EngineConfig
from engine.deadletter import DeadLetterFile
from engine.delivery import DEFAULT_MAX_PENDING, DeliveryQueue
from engine.errors import UsageError
from engine.events import BadEvent, DatedLine, Event, EventDecoder
from engine.ingest import QUEUE_BATCHES, Batch, Item, SourceDone, SourceThread
from engine.plugin_manager import Registry
from engine.rule_runner import RuleRunner, TimedAlert
from engine.schema import CORE_SINK_OPTIONS
from engine.state import Checkpointer, StateKeeper
from engine.stats import LiveCounters, RunSummary, count_types, sources_of
from engine.templates import placeholders
from engine.timeutil import (
    END_OF_TIME,
    EPOCH,
    US_PER_SECOND,
    datetime_to_us,
)

log = logging.getLogger(__name__)

#: How long the loop waits for a batch before it checks timers and idleness.
TICK_SECONDS = 0.05
#: At most one warning about bad or late events per this many microseconds.
WARNING_INTERVAL_US = 10 * US_PER_SECOND
#: How long a stop request waits for sources to hand over what they hold.
DRAIN_SECONDS = 2.0
#: How long shutdown waits for each sink to deliver what is queued for it.
SINK_CLOSE_SECONDS = 10.0


class Engine:
    """One run of a validated configuration."""

    def __init__(
        self,
        config: EngineConfig,
        registry: Registry,
        *,
        clock: Clock | None = None,
        extra_sinks: Sequence[Sink] = (),
    ) -> None:
        self.config = config
        self.registry = registry
        self.clock = clock or SystemClock()
        # Read the snapshot before connecting to anything: a damaged one
        # stops the run before a broker hands over a single message.
        keeper = (
            StateKeeper(config.state, config.path) if config.state is not None else None
        )
        saved = keeper.load() if keeper is not None else None
        self.stopping = threading.Event()
        self.summary = RunSummary()
        self.runners = [RuleRunner(rule, registry) for rule in config.rules]
        if saved is not None:
            assert keeper is not None
            keeper.restore_rules(saved, self.runners)
        self.sources: list[Source] = []
        #: Every sink behind a queue of its own, with its send_resolved.
        self.sinks: list[tuple[DeliveryQueue, bool]] = []
        self.dead_letter: DeadLetterFile | None = None
        self.checkpointer: Checkpointer | None = None
        self.watermark_us = -END_OF_TIME
        self._max_seen_us = -END_OF_TIME
        try:
            self._build_components(extra_sinks)
            if keeper is not None:
                self.checkpointer = self._checkpointer(keeper)
            if saved is not None:
                assert self.checkpointer is not None
                restored = self.checkpointer.restore(saved)
                self.watermark_us, self._max_seen_us = restored
        except BaseException:
            # Open files, broker connections and sink threads would outlive
            # an engine that never runs.
            self._close_built()
            raise
        self.decoder = EventDecoder(keep_metadata=_reads_metadata(self.runners))
        self._routes, self._unrouted = _route_table(self.runners)
        self.counters = LiveCounters(config.counters.window_us, config.counters.top)
        self._live_counting = self._counters_wanted()
        self._last_arrival_us: int | None = None
        self._pending_warnings: Counter[str] = Counter()
        self._last_warning_us = 0
        self._next_counters_us = 0

    # -- building -------------------------------------------------------------

    def _build_components(self, extra_sinks: Sequence[Sink]) -> None:
        """Build sources, sinks and the dead-letter file into the engine one
        by one, so that a failure leaves what was built for
        :meth:`_close_built`."""
        for index, component in enumerate(self.config.sources):
            self.sources.append(self._build_source(index, component))
        for index, component in enumerate(self.config.sinks):
            self.sinks.append(self._build_sink(index, component))
        for sink in extra_sinks:
            delivery = DeliveryQueue(sink, type(sink).__name__, clock=self.clock)
            self.sinks.append((delivery, True))
        if self.config.dead_letter:
            self.dead_letter = DeadLetterFile(self.config.dead_letter)

    def _checkpointer(self, keeper: StateKeeper) -> Checkpointer:
        return Checkpointer(
            keeper,
            self.clock,
            runners=self.runners,
            sinks=[delivery for delivery, _ in self.sinks],
            sources=self.sources,
            configs=self.config.sources,
            commit=self._commit_position,
        )

    def _context(self, component: ComponentConfig) -> RuntimeContext:
        return RuntimeContext(
            component.where, self.clock, self.config.base_dir, self.stopping
        )

    def _build_source(self, index: int, component: ComponentConfig) -> Source:
        cls = self.registry.get("source", component.type)
        try:
            source: Source = cls(component.options, self._context(component))
        except OSError as error:
            raise UsageError(f"{component.where}: {error.strerror or error}") from error
        return source

    def _build_sink(
        self, index: int, component: ComponentConfig
    ) -> tuple[DeliveryQueue, bool]:
        cls = self.registry.get("sink", component.type)
        given = component.options
        options = {k: v for k, v in given.items() if k not in CORE_SINK_OPTIONS}
        try:
            sink: Sink = cls(options, self._context(component))
        except OSError as error:
            raise UsageError(f"{component.where}: {error.strerror or error}") from error
        dead_letter = given.get("dead_letter")
        try:
            delivery = DeliveryQueue(
                sink,
                f"sinks[{index}] ({component.type})",
                given.get("max_pending", DEFAULT_MAX_PENDING),
                self.config.base_dir / dead_letter if dead_letter else None,
                clock=self.clock,
            )
        except BaseException:
            _close_quietly(sink.close, component.where)
            raise
        return delivery, given.get("send_resolved", cls.send_resolved_default)

    def _counters_wanted(self) -> bool:
        """Live counters cost a count per event, worth it only when some
        plugin receives their reports (the CLI does unless ``--quiet``)."""
        hook = self.registry.plugin_manager.hook.engine_counters
        return self.config.counters.enabled and bool(hook.get_hookimpls())

    # -- running --------------------------------------------------------------

    def wait_delivered(self, timeout_s: float) -> bool:
        """Wait until every sink has handled what was queued for it (tests and
        embedding code that drive the engine step by step); False on timeout."""
        return all(delivery.wait_idle(timeout_s) for delivery, _ in self.sinks)

    def request_stop(self) -> None:
        """Stop reading; what was read is still processed (signal-safe)."""
        self.stopping.set()

    def run(self) -> RunSummary:
        """Run until every source is exhausted or a stop is requested."""
        started_us = self.clock.monotonic_us()
        items: queue.Queue[Item] = queue.Queue(QUEUE_BATCHES)
        threads = [
            SourceThread(i, source, items, self.config.sources[i].where)
            for i, source in enumerate(self.sources)
        ]
        self.registry.plugin_manager.hook.engine_startup(config=self.config)
        self._live_counting = self._counters_wanted()
        frozen = _freeze_start_up_objects()
        if self.checkpointer is not None:
            self.checkpointer.start()
        for thread in threads:
            thread.start()
        try:
            exhausted = self._loop(items, len(threads))
            if exhausted:
                # Finite input: every pending window is decided, every alert
                # that would resolve does, so a replay is exact.
                self._advance(END_OF_TIME)
            else:
                self._drain(items, threads)
            if self.checkpointer is not None:
                self.checkpointer.save_final(
                    self.watermark_us, self._max_seen_us, SINK_CLOSE_SECONDS
                )
        finally:
            self._close()
            for runner in self.runners:
                if runner.lifecycle.suppressed:
                    self.summary.suppressed_by_rule[runner.rule.name] = (
                        runner.lifecycle.suppressed
                    )
            self.summary.elapsed_us = self.clock.monotonic_us() - started_us
            self._flush_warnings(force=True)
            if frozen:
                gc.unfreeze()
        self.registry.plugin_manager.hook.engine_shutdown(summary=self.summary)
        return self.summary

    def _loop(self, items: queue.Queue[Item], active: int) -> bool:
        while active and not self.stopping.is_set():
            try:
                item = items.get(timeout=TICK_SECONDS)
            except queue.Empty:
                self._tick()
                continue
            if isinstance(item, SourceDone):
                active -= 1
                if item.failed:
                    where = self.config.sources[item.source_index].where
                    self.summary.failed_sources.append(where)
            else:
                self._process(item)
                self._commit(item)
            self._tick()
        # Sources that ended because a stop was requested, or because they
        # failed, are not exhausted: deciding everything up to the end of time
        # would resolve alerts whose windows are still open.
        return (
            active == 0
            and not self.stopping.is_set()
            and not self.summary.failed_sources
        )

    def _drain(self, items: queue.Queue[Item], threads: list[SourceThread]) -> None:
        log.info("stopping: draining what the sources have read")
        # Wall time, not the engine's clock: a simulated clock may stand still
        # while a source thread is blocked.
        deadline = time.monotonic() + DRAIN_SECONDS
        while time.monotonic() < deadline:
            try:
                item = items.get(timeout=TICK_SECONDS)
            except queue.Empty:
                if not any(t.is_alive() for t in threads):
                    break
                continue
            if isinstance(item, Batch):
                self._process(item)
                self._commit(item)
                self._snapshot_if_due()
        self._tick()

    def _close(self) -> None:
        self._close_sources()
        for delivery, _ in self.sinks:
            delivery.close(SINK_CLOSE_SECONDS)
            counts = delivery.counts()
            if counts.undelivered:
                self.summary.sink_failures[delivery.name] += counts.undelivered
            self.summary.alerts_dead_lettered += counts.dead_lettered
        if self.dead_letter is not None:
            self.dead_letter.close()

    def _close_sources(self) -> None:
        for index, source in enumerate(self.sources):
            _close_quietly(source.close, self.config.sources[index].where)

    def _close_built(self) -> None:
        """Close what a failed start built; its error is the one to report."""
        self._close_sources()
        for delivery, _ in self.sinks:
            _close_quietly(partial(delivery.close, SINK_CLOSE_SECONDS), delivery.name)
        if self.dead_letter is not None:
            _close_quietly(self.dead_letter.close, "dead_letter")

    # -- one batch -------------------------------------------------------------

    def _commit(self, batch: Batch) -> None:
        """Note that the batch is processed. Without ``state:``, tell its
        source at once, so that a broker source can acknowledge it (window
        state then lives in memory only, and a crash loses it whatever is
        acknowledged); with ``state:``, only after the next snapshot holds
        the batch's effects."""
        if self.checkpointer is not None:
            self.checkpointer.processed(batch.source_index, batch.position)
        elif batch.position is not None:
            self._commit_position(batch.source_index, batch.position)

    def _commit_position(self, index: int, position: Any) -> None:
        try:
            self.sources[index].commit(position)
        except Exception:
            where = self.config.sources[index].where
            log.exception("source %s failed to commit its position", where)

    def _process(self, batch: Batch) -> None:
        now_us = self.clock.now_us()
        if batch.block is not None:
            if self._process_block(batch.block, batch.source_index, now_us):
                return
            lines = bytes(batch.block).split(b"\n")
            events, bad = self.decoder.decode_lines(lines)
            if bad:
                self._set_aside(bad, batch.source_index, now_us)
        elif batch.lines is not None:
            events, bad = self.decoder.decode_lines(batch.lines)
            if bad:
                self._set_aside(bad, batch.source_index, now_us)
        else:
            events = batch.events or []
        if not events:
            return
        self._last_arrival_us = now_us
        if self.config.time.mode == "processing":
            for event in events:
                event.time_us = now_us
        self._count(events, now_us)
        self._route(events)
        if self.config.time.mode == "processing":
            # Instants before now are complete; more may still arrive at now.
            self._advance(now_us)
        else:
            self._advance(self._max_seen_us - self.config.time.allowed_lateness_us)

    def _process_block(
        self, block: bytes | bytearray, source_index: int, now_us: int
    ) -> bool:
        """The fast path for a block of JSON lines in event time; False when
        the block must go line by line instead."""
        if self.config.time.mode != "event":
            return False
        dated = self.decoder.decode_block(block)
        if dated is None:
            return False
        if not dated:
            return True
        self._last_arrival_us = now_us
        self._count(dated, now_us)
        self._route_dated(dated)
        self._advance(self._max_seen_us - self.config.time.allowed_lateness_us)
        return True

    def _count(
        self, events: Sequence[Event] | Sequence[DatedLine], now_us: int
    ) -> None:
        by_type = count_types(events)
        if not self._live_counting:
            self.summary.add_batch(by_type, sources_of(events))
            return
        sources = list(sources_of(events))
        self.summary.add_batch(by_type, sources)
        self.counters.add_batch(by_type, sources, now_us)

    def _route_dated(self, lines: list[DatedLine]) -> None:
        """:meth:`_route` for decoded lines whose timestamps are still
        datetimes: comparing datetimes is several times cheaper than turning
        them into microseconds, so only the events a rule wants (and late
        ones) are converted."""
        lateness = self.config.time.allowed_lateness_us
        max_seen = self._max_seen_us
        max_stamp = _as_datetime(max_seen)
        late_stamp = _as_datetime(max(self.watermark_us, max_seen - lateness))
        routes = self._routes.get
        unrouted = self._unrouted
        make = self.decoder.event
        for line in lines:
            stamp = line.timestamp
            if stamp > max_stamp and stamp >= late_stamp:
                max_stamp = stamp
            elif stamp < late_stamp or (
                stamp < max_stamp
                and datetime_to_us(stamp) < datetime_to_us(max_stamp) - lateness
            ):
                self._late(make(line, datetime_to_us(stamp)))
                continue
            feeds = routes(line.event_type, unrouted)
            if feeds:
                event = make(line, datetime_to_us(stamp))
                for feed in feeds:
                    feed(event)
        self._max_seen_us = max(max_seen, datetime_to_us(max_stamp))

    def _route(self, events: list[Event]) -> None:
        lateness = self.config.time.allowed_lateness_us
        max_seen = self._max_seen_us
        late_before = max(self.watermark_us, max_seen - lateness)
        routes = self._routes.get
        unrouted = self._unrouted
        for event in events:
            time_us = event.time_us
            # Late: older than the watermark (which idleness may have moved
            # past every event seen), or older than the newest event allows.
            if time_us > max_seen and time_us >= late_before:
                max_seen = time_us
            elif time_us < late_before or time_us < max_seen - lateness:
                self._late(event)
                continue
            for feed in routes(event.event_type, unrouted):
                feed(event)
        self._max_seen_us = max_seen

    def _late(self, event: Event) -> None:
        if self.config.time.late == "include":
            # Offer it to every rule, even after one had no state left for it.
            taken = [runner.feed_late(event) for runner in self.runners]
            if all(taken):
                self.summary.late_included += 1
                return
        self.summary.late_dropped += 1
        self._pending_warnings["late"] += 1

    def _set_aside(self, bad: list[BadEvent], source_index: int, now_us: int) -> None:
        for item in bad:
            self.summary.bad_by_reason[item.reason] += 1
            self._pending_warnings[f"bad ({item.reason})"] += 1
        if self.dead_letter is not None:
            self.dead_letter.write(bad, self.config.sources[source_index].where, now_us)

    # -- time -----------------------------------------------------------------

    def _tick(self) -> None:
        now_us = self.clock.now_us()
        if self.config.time.mode == "processing":
            self._advance(now_us)
        else:
            self._advance_if_idle(now_us)
        self._report_counters(now_us)
        self._flush_warnings()
        self._snapshot_if_due()

    def _advance_if_idle(self, now_us: int) -> None:
        idle_timeout = self.config.time.idle_timeout_us
        if idle_timeout is None or self._last_arrival_us is None:
            return
        idle_for = now_us - self._last_arrival_us
        if idle_for >= idle_timeout:
            lateness = self.config.time.allowed_lateness_us
            self._advance(self._max_seen_us - lateness + idle_for)

    def _advance(self, watermark_us: int) -> None:
        if watermark_us <= self.watermark_us:
            return
        self.watermark_us = watermark_us
        timed: list[TimedAlert] = []
        for runner in self.runners:
            timed += runner.advance(watermark_us)
        if len(timed) > 1:
            timed.sort(key=lambda entry: entry[:3])
        for _, _, _, alert in timed:
            self._dispatch(alert)

    # -- state ------------------------------------------------------------------

    def _snapshot_if_due(self) -> None:
        """Between batches: a snapshot, when ``state:`` asks for one now."""
        if self.checkpointer is not None:
            self.checkpointer.save_if_due(self.watermark_us, self._max_seen_us)

    # -- output ---------------------------------------------------------------

    def _dispatch(self, alert: Alert) -> None:
        self.summary.alerts[(alert.rule, alert.status)] += 1
        # Each sink has its own queue and thread: a failing or slow one never
        # holds up the others, nor the engine.
        for delivery, send_resolved in self.sinks:
            if send_resolved or alert.status != "resolved":
                delivery.send(alert)
        try:
            self.registry.plugin_manager.hook.engine_alert(alert=alert)
        except Exception:
            log.exception("an engine_alert hook failed")

    def _report_counters(self, now_us: int) -> None:
        if not self.config.counters.enabled or now_us < self._next_counters_us:
            return
        if self._next_counters_us:
            report = self.counters.report(now_us)
            try:
                self.registry.plugin_manager.hook.engine_counters(report=report)
            except Exception:
                log.exception("an engine_counters hook failed")
        self._next_counters_us = now_us + self.config.counters.interval_us

    def _flush_warnings(self, force: bool = False) -> None:
        if not self._pending_warnings:
            return
        now_us = self.clock.monotonic_us()
        if not force and now_us - self._last_warning_us < WARNING_INTERVAL_US:
            return
        self._last_warning_us = now_us
        details = ", ".join(
            f"{name} {n}" for name, n in self._pending_warnings.most_common()
        )
        where = (
            f"; bad events are in {self.config.dead_letter}" if self.dead_letter else ""
        )
        log.warning("set aside events: %s%s", details, where)
        self._pending_warnings.clear()


def _close_quietly(close: Callable[[], None], where: str) -> None:
    """Close one component, logging instead of raising: the others must be
    closed too."""
    try:
        close()
    except Exception:
        log.exception("closing %s failed", where)


def _freeze_start_up_objects() -> bool:
    """Hide what start-up built (modules, configuration, plugins) from the
    garbage collector for the run; True if this call did it.

    When rules read metadata, every decoded event brings a dictionary, and
    each collection of the oldest generation would walk all of start-up's
    objects again (about 5 % of the run time). A program that froze objects
    itself is left alone.
    """
    if gc.get_freeze_count():
        return False
    gc.freeze()
    return True


def _reads_metadata(runners: Sequence[RuleRunner]) -> bool:
    """Whether any rule reads event metadata: in its match, its group key,
    its summary, or through a detector that does not declare which event
    fields it reads (``event_fields``). When none does, the decoder skips
    metadata, which is most of the bytes of a typical line."""
    for runner in runners:
        rule = runner.rule
        paths = [*rule.match, *rule.group_by, *placeholders(rule.summary)]
        if any(path.startswith("metadata.") for path in paths):
            return True
        fields = getattr(type(runner.detector), "event_fields", None)
        if fields is None or "metadata" in fields:
            return True
    return False


Feed = Callable[[Event], None]
_FIRST_DATETIME = datetime.min.replace(tzinfo=UTC)
_LAST_DATETIME = datetime.max.replace(tzinfo=UTC)


def _as_datetime(time_us: int) -> datetime:
    """An instant as an aware datetime, clamped to the years datetime holds
    (the watermark starts before them and ends after them)."""
    try:
        return EPOCH + timedelta(microseconds=time_us)
    except OverflowError:
        return _FIRST_DATETIME if time_us < 0 else _LAST_DATETIME


def _route_table(
    runners: Sequence[RuleRunner],
) -> tuple[dict[str, list[Feed]], list[Feed]]:
    """Which rules to feed, by event type, and for any other type.

    A rule whose match names its event types is fed only events of those
    types, so an event no rule wants costs one dictionary lookup.
    """
    unrouted: list[Feed] = [r.feed for r in runners if r.route_types is None]
    routes: dict[str, list[Feed]] = {}
    for event_type in set().union(*(r.route_types or () for r in runners)):
        routes[event_type] = [
            runner.feed if runner.route_types is None else runner.feed_routed
            for runner in runners
            if runner.route_types is None or event_type in runner.route_types
        ]
    return routes, unrouted
