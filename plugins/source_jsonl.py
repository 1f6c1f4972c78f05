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
import os
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
        #: With pacing, the offset just past the last line yielded: a block
        #: may go out in parts, and a stop can come between them.
        self._yielded_offset: int | None = None
        self._file: IO[bytes] = self._open()
        self._stdin_fd = self._fd_of_stdin() if self.path == "-" else None
        self._timestamps = msgspec.json.Decoder(_Timestamp)

    def _open(self) -> IO[bytes]:
        if self.path == "-":
            return sys.stdin.buffer
        return self.context.resolve(self.path).open("rb")

    def position(self) -> int:
        if self._yielded_offset is not None:
            return self._yielded_offset
        return self._offset

    def resume_after(self, checkpoint: Any) -> None:
        """Go on after the byte offset a state snapshot saved (a position of
        an earlier run); standard input cannot seek and starts where it is."""
        if self.path == "-" or not isinstance(checkpoint, int):
            return
        if checkpoint > self.context.resolve(self.path).stat().st_size:
            log.warning(
                "%s is shorter than the saved offset; reading it from the start",
                self.path,
            )
            return
        self._file.seek(checkpoint)
        self._offset = checkpoint

    def close(self) -> None:
        if self.path != "-":
            self._file.close()

    def batches(self) -> Iterator[list[bytes]]:
        lines = self._lines()
        if self.speed is None:
            return lines
        return self._paced(lines, self.speed)

    def blocks(self) -> Iterator[bytes | bytearray] | None:
        """The same input as :meth:`batches`, in blocks of whole lines.

        Each block is newline-separated lines as read (only the last block
        of an input without a final newline lacks one), so the engine
        decodes a block in one call instead of splitting it into lines and
        joining them again. An empty block means "nothing new yet". None
        when replay is paced, which goes line by line.
        """
        return self._blocks() if self.speed is None else None

    @staticmethod
    def _fd_of_stdin() -> int | None:
        try:
            return sys.stdin.fileno()
        except (AttributeError, OSError, ValueError):
            return None  # replaced by an object without a descriptor

    def _read_into(self, target: memoryview) -> int:
        """Fill ``target`` with what one read gives; 0 at the end of input."""
        if self._stdin_fd is not None:
            # Straight from the descriptor: a read blocked on a pipe that
            # stays open must not hold the lock of ``sys.stdin.buffer``, or
            # the interpreter cannot shut down after a stop request.
            return os.readv(self._stdin_fd, [target])
        file: Any = self._file
        read_into = getattr(file, "readinto1", None) or file.readinto
        return int(read_into(target) or 0)

    def _blocks(self) -> Iterator[bytes | bytearray]:
        rest = b""
        read_total = self._offset
        stopping = self.context.stopping
        while not stopping.is_set():
            # Read behind the partial line left over into a fresh buffer that
            # then becomes the block itself: each byte is copied only once.
            block = bytearray(len(rest) + CHUNK_BYTES)
            block[: len(rest)] = rest
            with memoryview(block) as whole, whole[len(rest) :] as free:
                count = self._read_into(free)
            if not count:
                if not self.follow:
                    break
                if self._reopen_if_truncated():
                    rest, read_total = b"", 0
                yield b""
                self.context.clock.sleep_us(self.poll_us)
                continue
            read_total += count
            filled = len(rest) + count
            end = block.rfind(b"\n", 0, filled) + 1
            rest = bytes(block[end:filled])
            if not end:
                continue
            del block[end:]
            self._offset = read_total - len(rest)
            yield block
        if rest.strip():
            # The last line has no newline: it is complete all the same, and a
            # restart from this position must not read it again.
            self._offset = read_total
            yield rest

    def _lines(self) -> Iterator[list[bytes]]:
        for block in self._blocks():
            lines = bytes(block).split(b"\n")
            if len(lines) > 1 and not lines[-1]:
                lines.pop()
            yield lines if block else []

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
        block_start = self._offset
        for batch in batches:
            # Each line took its bytes and a newline, except an unterminated
            # last line: the block's end caps the running sum.
            block_end = self._offset
            offset = block_start
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
                            self._yielded_offset = offset
                            yield ready
                            ready = []
                        self._sleep(wait_us)
                        if self.context.stopping.is_set():
                            return
                ready.append(line)
                offset = min(offset + len(line) + 1, block_end)
            self._yielded_offset = block_end
            yield ready
            block_start = block_end

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
