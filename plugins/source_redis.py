"""Source ``redis``: events from a Redis stream, read through a consumer group.

Each stream entry holds one JSON event in one of its fields (``field``,
default ``event``). Entries are read with XREADGROUP and acknowledged with
XACK only when the engine commits a position, that is once the effects of
the batches up to it are safely recorded. On start the source first reads
this consumer's pending entries again (those read before and never
acknowledged), then new ones; so entries read by a process that stopped or
died before committing are delivered again. The group is created (with the
stream, if need be) when it is missing.

``consumer`` must stay the same across restarts: pending entries belong to
a consumer name, and a new name would leave them to no one.

Needs the ``redis`` extra: ``pip install 'burst-engine[redis]'``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

from engine.components import Options, RuntimeContext, Source
from engine.connectors import (
    DEFAULT_POLL,
    REDIS_URL_SCHEMA,
    PendingAcks,
    RateLimitedLog,
    delivered_of,
    one_line,
    redis_connect,
)
from engine.errors import UsageError
from engine.hookspecs import hookimpl
from engine.timeutil import parse_duration

log = logging.getLogger(__name__)

#: Entry ids acknowledged per XACK call.
ACK_CHUNK = 1000


def entry_id(raw: bytes | str) -> tuple[int, int]:
    """A stream entry id ``milliseconds-sequence`` as a pair that sorts right."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    milliseconds, _, sequence = text.partition("-")
    return int(milliseconds), int(sequence or 0)


class RedisSource(Source):
    type_name: ClassVar[str] = "redis"
    description: ClassVar[str] = (
        "Redis stream through a consumer group (XACK on commit)"
    )
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["stream", "group", "consumer"],
        "additionalProperties": False,
        "properties": {
            "url": REDIS_URL_SCHEMA,
            "stream": {"type": "string", "minLength": 1},
            "group": {"type": "string", "minLength": 1},
            "consumer": {
                "type": "string",
                "minLength": 1,
                "description": "this reader's name in the group; keep it across "
                "restarts",
            },
            "field": {
                "type": "string",
                "minLength": 1,
                "description": "entry field holding the JSON event (default event)",
            },
            "start": {
                "enum": ["earliest", "latest"],
                "description": "where a new group starts: the stream's first entry "
                "(default) or only entries added from now on",
            },
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 100000},
            "block": {"$ref": "#/$defs/duration"},
            "connect_timeout": {"$ref": "#/$defs/duration"},
        },
    }

    @classmethod
    def check_options(cls, options: Options) -> list[tuple[tuple[str, ...], str]]:
        problems: list[tuple[tuple[str, ...], str]] = []
        for name in ("block", "connect_timeout"):
            if name in options and parse_duration(options[name]) <= 0:
                problems.append(((name,), "expected a positive duration"))
        return problems

    def __init__(self, options: Options, context: RuntimeContext) -> None:
        super().__init__(options, context)
        self.stream: str = options["stream"]
        self.group: str = options["group"]
        self.consumer: str = options["consumer"]
        self.field = options.get("field", "event").encode()
        self.batch_size = int(options.get("batch_size", 100))
        self.block_ms = max(
            1, parse_duration(options.get("block", DEFAULT_POLL)) // 1000
        )
        self.pending: PendingAcks[bytes, bytes] = PendingAcks()
        self._closed = threading.Event()
        self._to_ack: list[bytes] = []
        self._to_ack_lock = threading.Lock()
        self._already_applied: tuple[tuple[int, int], tuple[int, int]] | None = None
        self._warn = RateLimitedLog(log)
        self.client = redis_connect(options, context.name, self.block_ms / 1000)
        try:
            self._ensure_group()
        except Exception as error:
            self.client.close()
            raise UsageError(
                f"{context.name}: cannot create consumer group {self.group!r} on "
                f"stream {self.stream!r}: {error}"
            ) from error

    def _ensure_group(self) -> None:
        start = "$" if self.options.get("start") == "latest" else "0"
        try:
            self.client.xgroup_create(self.stream, self.group, id=start, mkstream=True)
            log.info("created consumer group %s on stream %s", self.group, self.stream)
        except Exception as error:
            if "BUSYGROUP" not in str(error):
                raise

    # -- reading ----------------------------------------------------------------

    def batches(self) -> Iterator[list[bytes]]:
        # This consumer's pending entries first ("0" and on), then new ones (">").
        after: bytes | None = b"0"
        stopping = self.context.stopping
        while not stopping.is_set() and not self._closed.is_set():
            self._send_acks()
            try:
                entries = self._read(after)
            except Exception as error:
                self._on_read_error(error)
                yield []
                continue
            if after is not None:
                if not entries:
                    after = None  # backlog done: from now on, new entries
                    continue
                after = entries[-1][0]
            yield self._lines(entries)

    def _read(self, after: bytes | None) -> list[tuple[bytes, dict[bytes, bytes]]]:
        # The client's declared result covers both wire protocols; with the
        # default one (RESP2) it is [[stream, [(id, fields), ...]]].
        response: Any = self.client.xreadgroup(
            self.group,
            self.consumer,
            {self.stream: after if after is not None else ">"},
            count=self.batch_size,
            block=None if after is not None else self.block_ms,
        )
        if not response:
            return []
        _, entries = response[0]
        return list(entries)

    def _on_read_error(self, error: Exception) -> None:
        self._warn("%s: reading from Redis failed: %s", self.context.name, error)
        if "NOGROUP" in str(error):
            with contextlib.suppress(Exception):
                self._ensure_group()  # the stream was deleted under us
        self.context.stopping.wait(self.block_ms / 1000)

    def _lines(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> list[bytes]:
        lines = []
        for raw_id, fields in entries:
            if not self.pending.add(raw_id, raw_id):
                continue
            if self._was_applied(raw_id):
                continue  # its effects are in the restored state; acked on commit
            if not fields:
                continue  # deleted or trimmed since it was first read
            line = self._line(fields)
            lines.append(line)
        return lines

    def _was_applied(self, raw_id: bytes) -> bool:
        if self._already_applied is None:
            return False
        first, last = self._already_applied
        return first <= entry_id(raw_id) <= last

    def _line(self, fields: dict[bytes, bytes]) -> bytes:
        value = fields.get(self.field)
        if value is not None:
            return one_line(value)
        # No event field: hand over the whole entry, which the engine then
        # reports (and dead-letters) as an event with missing fields.
        shown = {
            key.decode("utf-8", "replace"): val.decode("utf-8", "replace")
            for key, val in fields.items()
        }
        return json.dumps(shown, ensure_ascii=False).encode()

    # -- positions ----------------------------------------------------------------

    def position(self) -> dict[str, int]:
        """``delivered``: how many entries were handed over so far; what
        :meth:`commit` and :meth:`checkpoint` take."""
        return {"delivered": self.pending.delivered}

    def checkpoint(self, position: Any) -> dict[str, Any]:
        """Plain data for a state snapshot that holds the effects of every
        entry up to ``position``: the first and last ids among them not yet
        acknowledged, which this consumer reads again after a crash. Give it
        to :meth:`resume_after` in the next run.

        Two ids are enough: this consumer reads its pending entries, then new
        ones, in id order, and commits acknowledge a prefix of that order, so
        its unacknowledged entries are all of its entries between the two.
        """
        ids = self.pending.keys_through(delivered_of(position))
        if not ids:
            return {"unacknowledged": None}
        first, last = (key.decode() for key in (ids[0], ids[-1]))
        return {"unacknowledged": [first, last]}

    def commit(self, position: Any) -> None:
        """Acknowledge every entry up to ``position``; any thread may call it.

        The XACKs go out from the source's thread before its next read (at
        most ``block`` later), or from :meth:`close`, so this never waits on
        the network.
        """
        ids = self.pending.take_through(delivered_of(position))
        if ids:
            with self._to_ack_lock:
                self._to_ack.extend(ids)

    def _send_acks(self) -> None:
        with self._to_ack_lock:
            ids, self._to_ack = self._to_ack, []
        try:
            for start in range(0, len(ids), ACK_CHUNK):
                self.client.xack(
                    self.stream, self.group, *ids[start : start + ACK_CHUNK]
                )
        except Exception as error:
            # Unacknowledged entries are read again after a restart:
            # duplicates, not loss.
            self._warn("%s: XACK failed: %s", self.context.name, error)

    def resume_after(self, checkpoint: Any) -> None:
        """Skip re-read entries whose effects a restored state holds.

        ``checkpoint`` is what :meth:`checkpoint` returned in an earlier run;
        the skipped entries are acknowledged on the next commit.
        """
        span = (
            checkpoint.get("unacknowledged") if isinstance(checkpoint, dict) else None
        )
        if span:
            self._already_applied = (entry_id(span[0]), entry_id(span[1]))

    def close(self) -> None:
        """Send the acknowledgements still owed, then disconnect."""
        self._closed.set()
        self._send_acks()
        self.client.close()


@hookimpl
def engine_register_sources() -> list[type[Source]]:
    return [RedisSource]
