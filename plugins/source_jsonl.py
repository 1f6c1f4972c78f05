"""Source ``jsonl``: JSON Lines from a file or standard input.

Reads in chunks of whatever is available, so a pipe delivers events as soon
as they are written and a file is read in large batches. ``follow: true``
keeps reading a growing file (and starts over when it is truncated);
``speed`` replays in event time: ``max`` (default) as fast as possible,
``realtime``, or a factor such as ``10`` for ten times faster.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from typing import IO, Any, ClassVar

import msgspec

from engine.components import Options, RuntimeContext, Source
from engine.events import AwareDatetime, EpochSeconds, timestamp_to_us
from engine.hookspecs import hookimpl
from engine.timeutil import US_PER_SECOND, parse_duration

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20


class _Timestamp(msgspec.Struct):
    timestamp: AwareDatetime | EpochSeconds


class JsonlSource(Source):
    type_name: ClassVar[str] = "jsonl"
    description: ClassVar[str] = "JSON Lines from a file or standard input ('-')"
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["path"],
        "additionalProperties": False,
        "properties": {
            "path": {
                "type": "string",
                "minLength": 1,
                "description": "a file, or '-' for stdin",
            },
            "follow": {
                "type": "boolean",
                "description": "keep reading as the file grows",
            },
            "poll_interval": {"$ref": "#/$defs/duration"},
            "speed": {
                "anyOf": [
                    {"enum": ["max", "realtime"]},
                    {"type": "number", "exclusiveMinimum": 0},
                ],
                "description": "replay pacing: max, realtime, or a speed-up factor",
            },
        },
    }

    def __init__(self, options: Options, context: RuntimeContext) -> None:
        super().__init__(options, context)
        self.path = options["path"]
        self.follow = bool(options.get("follow", False))
        self.poll_us = parse_duration(options.get("poll_interval", "200ms"))
        speed = options.get("speed", "max")
        self.speed: float | None = (
            None if speed == "max" else (1.0 if speed == "realtime" else float(speed))
        )
        self._offset = 0
        self._file: IO[bytes] = self._open()
        self._timestamps = msgspec.json.Decoder(_Timestamp)

    def _open(self) -> IO[bytes]:
        if self.path == "-":
            return sys.stdin.buffer
        return self.context.resolve(self.path).open("rb")

    def position(self) -> int:
        return self._offset

    def close(self) -> None:
        if self.path != "-":
            self._file.close()

    def batches(self) -> Iterator[list[bytes]]:
        lines = self._lines()
        if self.speed is None:
            return lines
        return self._paced(lines, self.speed)

    def _read(self) -> bytes:
        read1 = getattr(self._file, "read1", None)
        return read1(CHUNK_BYTES) if read1 else self._file.read(CHUNK_BYTES)

    def _lines(self) -> Iterator[list[bytes]]:
        rest = b""
        read_total = 0
        stopping = self.context.stopping
        while not stopping.is_set():
            chunk = self._read()
            if not chunk:
                if not self.follow:
                    break
                if self._reopen_if_truncated():
                    rest, read_total = b"", 0
                yield []
                self.context.clock.sleep_us(self.poll_us)
                continue
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            read_total += len(chunk)
            self._offset = read_total - len(rest)
            if lines:
                yield lines
        if rest.strip():
            yield [rest]

    def _reopen_if_truncated(self) -> bool:
        if self.path == "-" or not isinstance(self._file, io.BufferedReader):
            return False
        size = self.context.resolve(self.path).stat().st_size
        if size < self._file.tell():
            log.info("%s was truncated; reading it again from the start", self.path)
            self._file.close()
            self._file = self._open()
            self._offset = 0
            return True
        return False

    def _event_time(self, line: bytes) -> int | None:
        try:
            stamp = self._timestamps.decode(line).timestamp
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None  # the engine reports the bad line; it is not paced
        return timestamp_to_us(stamp)

    def _paced(
        self, batches: Iterator[list[bytes]], speed: float
    ) -> Iterator[list[bytes]]:
        clock = self.context.clock
        first_event_us: int | None = None
        started_us = 0
        for batch in batches:
            ready: list[bytes] = []
            for line in batch:
                event_us = self._event_time(line)
                if event_us is not None:
                    if first_event_us is None:
                        first_event_us, started_us = event_us, clock.monotonic_us()
                    due_us = started_us + int((event_us - first_event_us) / speed)
                    wait_us = due_us - clock.monotonic_us()
                    if wait_us > 0:
                        if ready:
                            yield ready
                            ready = []
                        self._sleep(wait_us)
                        if self.context.stopping.is_set():
                            return
                ready.append(line)
            yield ready

    def _sleep(self, duration_us: int) -> None:
        # Sleep in slices so that a stop request is noticed quickly.
        clock = self.context.clock
        deadline = clock.monotonic_us() + duration_us
        while not self.context.stopping.is_set():
            left = deadline - clock.monotonic_us()
            if left <= 0:
                return
            clock.sleep_us(min(left, US_PER_SECOND // 10))


@hookimpl
def engine_register_sources() -> list[type[Source]]:
    return [JsonlSource]
