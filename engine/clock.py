"""Clocks: where "now" comes from, injectable so tests and replays are exact."""

from __future__ import annotations

import time
from typing import Protocol

from engine.timeutil import US_PER_SECOND


class Clock(Protocol):
    """Processing time, in integer microseconds since the Unix epoch."""

    def now_us(self) -> int: ...

    def monotonic_us(self) -> int:
        """A clock that never goes back, for measuring intervals."""
        ...

    def sleep_us(self, duration_us: int) -> None: ...


class SystemClock:
    """The machine's clocks."""

    def now_us(self) -> int:
        return time.time_ns() // 1000

    def monotonic_us(self) -> int:
        return time.monotonic_ns() // 1000

    def sleep_us(self, duration_us: int) -> None:
        if duration_us > 0:
            time.sleep(duration_us / US_PER_SECOND)


class SimulatedClock:
    """A clock that moves only when told to; sleeping advances it instantly."""

    def __init__(self, start_us: int = 0) -> None:
        self._now_us = start_us

    def now_us(self) -> int:
        return self._now_us

    def monotonic_us(self) -> int:
        return self._now_us

    def sleep_us(self, duration_us: int) -> None:
        self.advance_us(duration_us)

    def advance_us(self, duration_us: int) -> None:
        if duration_us < 0:
            raise ValueError(f"a clock cannot go back, asked for {duration_us} us")
        self._now_us += duration_us
