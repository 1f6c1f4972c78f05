"""Bounded retries with exponential backoff and jitter, for sinks.

A sink retries a failed delivery a few times on its own, waiting longer
each time; a random part of each wait keeps many engines that lost the same
receiver from all coming back at the same instant. After the last attempt
the error goes up to the caller (the delivery queue dead-letters the
alert). Waits go through the engine's clock, so tests run them instantly.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from engine.clock import Clock
from engine.components import Options
from engine.timeutil import US_PER_SECOND, parse_duration

T = TypeVar("T")

#: The options every retrying sink takes, for its ``options_schema``.
RETRY_OPTIONS: dict[str, Any] = {
    "timeout": {"$ref": "#/$defs/duration"},
    "retries": {
        "type": "integer",
        "minimum": 0,
        "maximum": 20,
        "description": "attempts after the first one (default 3)",
    },
    "backoff": {"$ref": "#/$defs/duration"},
    "max_backoff": {"$ref": "#/$defs/duration"},
}


class PermanentError(Exception):
    """A failure that another attempt cannot fix (a rejected request)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Up to ``1 + retries`` attempts; the wait before attempt ``n + 1`` is
    drawn between half and all of ``min(max_backoff, backoff * 2**(n-1))``."""

    retries: int = 3
    backoff_us: int = 500_000
    max_backoff_us: int = 30 * US_PER_SECOND
    timeout_us: int = 5 * US_PER_SECOND
    rng: random.Random = field(default_factory=random.Random, compare=False)

    @classmethod
    def from_options(cls, options: Options) -> RetryPolicy:
        defaults = cls()
        return cls(
            retries=int(options.get("retries", defaults.retries)),
            backoff_us=_duration(options, "backoff", defaults.backoff_us),
            max_backoff_us=_duration(options, "max_backoff", defaults.max_backoff_us),
            timeout_us=_duration(options, "timeout", defaults.timeout_us),
        )

    @property
    def timeout_s(self) -> float:
        return self.timeout_us / US_PER_SECOND

    def wait_us(self, failures: int) -> int:
        """How long to wait after the ``failures``-th failed attempt (from 1)."""
        ceiling = min(self.max_backoff_us, self.backoff_us << (failures - 1))
        return ceiling // 2 + self.rng.randint(0, ceiling - ceiling // 2)

    def call(
        self,
        attempt: Callable[[], T],
        clock: Clock,
        on_retry: Callable[[int, Exception], None] | None = None,
    ) -> T:
        """Run ``attempt`` until it returns; any exception but
        :class:`PermanentError` is retried, the last one is raised."""
        failures = 0
        while True:
            try:
                return attempt()
            except PermanentError:
                raise
            except Exception as error:
                failures += 1
                if failures > self.retries:
                    raise
                if on_retry is not None:
                    on_retry(failures, error)
                clock.sleep_us(self.wait_us(failures))


def _duration(options: Options, name: str, default_us: int) -> int:
    return parse_duration(options[name]) if name in options else default_us


def check_retry_options(options: Options) -> list[tuple[tuple[str, ...], str]]:
    """Cross-checks of :data:`RETRY_OPTIONS` for a sink's ``check_options``."""
    problems: list[tuple[tuple[str, ...], str]] = []
    if "timeout" in options and parse_duration(options["timeout"]) <= 0:
        problems.append((("timeout",), "expected a positive duration"))
    backoff = _duration(options, "backoff", RetryPolicy.backoff_us)
    maximum = _duration(options, "max_backoff", RetryPolicy.max_backoff_us)
    if maximum < backoff:
        problems.append((("max_backoff",), "must not be shorter than backoff"))
    return problems
