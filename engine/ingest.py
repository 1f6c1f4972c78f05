"""Runs each source in a thread of its own and hands its batches to the
engine through one bounded queue.

Threads let blocking sources (stdin, a followed file, a broker client) sit
side by side without any of them knowing about the others; the bounded
queue makes a slow engine slow the sources down instead of filling memory.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from engine.components import Source
from engine.events import Event

log = logging.getLogger(__name__)

QUEUE_BATCHES = 4


@runtime_checkable
class BlockReader(Protocol):
    """A source of JSON lines that can also hand them over in blocks.

    ``blocks()`` yields newline-separated lines as read, in large blocks (an
    empty block means "nothing new yet"), or returns None when the source
    must go line by line; the engine then decodes a block in one call.
    """

    def blocks(self) -> Iterator[bytes | bytearray] | None: ...


@dataclass(frozen=True, slots=True)
class Batch:
    """What one source hands over: JSON lines, ready events, or a block of
    newline-separated JSON lines (exactly one of the three is set)."""

    source_index: int
    lines: list[bytes] | None
    events: list[Event] | None
    block: bytes | bytearray | None = None
    #: ``source.position()`` right after this batch was yielded, read in the
    #: source's thread: what the engine commits once the batch is processed.
    position: Any = None


@dataclass(frozen=True, slots=True)
class SourceDone:
    source_index: int
    failed: bool


Item = Batch | SourceDone


class SourceThread(threading.Thread):
    """Pulls batches from one source until it ends, fails or is stopped."""

    def __init__(
        self, index: int, source: Source, items: queue.Queue[Item], name: str
    ) -> None:
        super().__init__(name=f"source-{index}", daemon=True)
        self.index = index
        self.source = source
        self.items = items
        self.source_name = name

    def run(self) -> None:
        failed = False
        try:
            blocks = (
                self.source.blocks() if isinstance(self.source, BlockReader) else None
            )
            if blocks is not None:
                self._hand_over_blocks(blocks)
            else:
                self._hand_over_batches()
        except Exception:
            failed = True
            log.exception("source %s failed and stopped", self.source_name)
        self._put(SourceDone(self.index, failed), None)

    def _hand_over_batches(self) -> None:
        stopping = self.source.context.stopping
        produces_events = self.source.produces == "events"
        for batch in self.source.batches():
            if batch:
                position = self.source.position()
                item = (
                    Batch(self.index, None, batch, position=position)  # type: ignore[arg-type]
                    if produces_events
                    else Batch(self.index, batch, None, position=position)  # type: ignore[arg-type]
                )
                self._put(item, stopping)
            if stopping.is_set():
                break

    def _hand_over_blocks(self, blocks: Iterator[bytes | bytearray]) -> None:
        stopping = self.source.context.stopping
        for block in blocks:
            if block:
                batch = Batch(self.index, None, None, block, self.source.position())
                self._put(batch, stopping)
            if stopping.is_set():
                break

    def _put(self, item: Item, stopping: threading.Event | None) -> None:
        # Poll so that a stop request frees a thread blocked on a full queue.
        while True:
            try:
                self.items.put(item, timeout=0.1)
                return
            except queue.Full:
                if stopping is not None and stopping.is_set():
                    return
