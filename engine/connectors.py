"""What broker sources and sinks share: loading their optional client
library, turning a message into one JSON line, hiding credentials in URLs,
and the book of messages handed to the engine but not yet acknowledged.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Hashable
from types import ModuleType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from engine.components import Options
from engine.errors import UsageError
from engine.timeutil import US_PER_SECOND, parse_duration

if TYPE_CHECKING:
    import redis
    from nats.aio.client import Client as NatsClient

K = TypeVar("K", bound=Hashable)
H = TypeVar("H")

#: How long a source waits for messages before it yields an empty batch, so
#: that the engine notices idleness and stop requests.
DEFAULT_POLL = "250ms"
#: Extra seconds a call into a client may take beyond its own timeout.
GRACE_S = 5.0
NATS_DEFAULT_SERVER = "nats://127.0.0.1:4222"
NATS_RECONNECT_WAIT_S = 2
NATS_SERVERS_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
    ],
    "description": f"server URL or list of URLs (default {NATS_DEFAULT_SERVER})",
}
REDIS_DEFAULT_URL = "redis://127.0.0.1:6379/0"
REDIS_URL_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": "^(redis|rediss|unix)://",
    "description": f"redis://host:port/db (default {REDIS_DEFAULT_URL})",
}


def import_client(module: str, extra: str, where: str) -> ModuleType:
    """Import a broker client library installed by one of our extras.

    The engine starts and lists its plugins without the extras; only a rules
    file that uses the connector needs the library.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise UsageError(
            f"{where}: this connector needs the {module!r} library, which is not "
            f"installed ({error}); install it with: pip install 'burst-engine[{extra}]'"
        ) from error


def option_seconds(options: Options, name: str, default: str) -> float:
    """A duration option in seconds, for client libraries that want floats."""
    return parse_duration(options.get(name, default)) / US_PER_SECOND


def nats_servers(options: Options) -> list[str]:
    servers = options.get("servers", NATS_DEFAULT_SERVER)
    return [servers] if isinstance(servers, str) else list(servers)


async def nats_connect(servers: list[str], timeout_s: float, name: str) -> NatsClient:
    """Connect, failing fast when no server answers; once connected, the
    client reconnects by itself after a loss, forever."""
    import nats

    warn = RateLimitedLog(logging.getLogger("engine.connectors.nats"))

    async def report(error: Exception) -> None:
        warn("%s: NATS connection problem: %s", name, error)

    client = await nats.connect(
        servers,
        name=name,
        connect_timeout=max(1, round(timeout_s)),
        max_reconnect_attempts=1,
        reconnect_time_wait=0,
        error_cb=report,
    )
    # nats-py applies one retry policy to the first connection and to later
    # ones: asked to retry forever, it would wait forever at start-up. Its
    # options are read at each reconnection, so switching them now gives a
    # fast failure at start and endless reconnection afterwards.
    client.options["max_reconnect_attempts"] = -1
    client.options["reconnect_time_wait"] = NATS_RECONNECT_WAIT_S
    return client


def nats_connect_failure(
    where: str, servers: list[str], error: BaseException
) -> UsageError:
    shown = ", ".join(redact_url(s) for s in servers)
    return UsageError(
        f"{where}: cannot connect to NATS at {shown}: "
        f"{type(error).__name__}: {error or 'no answer'}"
    )


def redis_connect(options: Options, where: str, longest_call_s: float) -> redis.Redis:
    """A Redis client, checked with a PING; its socket waits a little longer
    than the longest call it will make."""
    library = import_client("redis", "redis", where)
    url = options.get("url", REDIS_DEFAULT_URL)
    connect_s = option_seconds(options, "connect_timeout", "5s")
    client: redis.Redis = library.Redis.from_url(
        url, socket_connect_timeout=connect_s, socket_timeout=longest_call_s + connect_s
    )
    try:
        client.ping()
    except library.RedisError as error:
        client.close()
        raise UsageError(
            f"{where}: cannot connect to Redis at {redact_url(url)}: {error}"
        ) from error
    return client


def one_line(payload: bytes) -> bytes:
    """One message as one line for the event decoder.

    A message is one event. JSON allows line breaks between tokens, so a
    pretty-printed event stays valid once they become spaces, and a message
    holding two events becomes one bad line instead of two events. An empty
    message stays empty and is skipped like a blank line of a file.
    """
    if b"\n" in payload or b"\r" in payload:
        return payload.replace(b"\r", b" ").replace(b"\n", b" ")
    return payload


def redact_url(url: str) -> str:
    """``url`` without a password, for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urllib.parse.urlunsplit(parts._replace(netloc=user + host))


class PendingAcks(Generic[K, H]):
    """Messages handed to the engine and not yet acknowledged, in order.

    The source's thread records each message with :meth:`add` as it yields
    it; the engine's thread later calls :meth:`take_through` with a position
    and acknowledges what comes back. Each message carries the number of
    messages delivered up to and including it, so a position is just that
    count: committing an old position again, or positions out of order,
    acknowledges nothing twice.

    ``key`` identifies a message to the broker (stream sequence, entry id,
    packet id). A message that arrives again while its key is still pending
    is a redelivery of the same message: it keeps its place and is not
    handed to the engine a second time.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[K, tuple[int, H]] = OrderedDict()
        self._delivered = 0

    def add(self, key: K, handle: H) -> bool:
        """Record a message; False when ``key`` is already pending."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries[key] = (entry[0], handle)
                return False
            self._delivered += 1
            self._entries[key] = (self._delivered, handle)
            return True

    @property
    def delivered(self) -> int:
        """How many messages were handed to the engine so far."""
        with self._lock:
            return self._delivered

    def take_through(self, delivered: int) -> list[H]:
        """Remove and return the pending messages up to position ``delivered``."""
        taken: list[H] = []
        with self._lock:
            while self._entries:
                key, (number, handle) = next(iter(self._entries.items()))
                if number > delivered:
                    break
                del self._entries[key]
                taken.append(handle)
        return taken

    def keys_through(self, delivered: int) -> list[K]:
        """The keys of the pending messages up to position ``delivered``, in
        the order they were delivered."""
        with self._lock:
            return [
                key for key, (number, _) in self._entries.items() if number <= delivered
            ]

    def clear(self) -> int:
        """Forget every pending message (its acknowledgement can no longer be
        sent); returns how many there were."""
        with self._lock:
            count = len(self._entries)
            self._entries.clear()
            return count

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class RateLimitedLog:
    """Logs a recurring problem (a broker that went away, a sink that keeps
    failing) at most once per interval, with the number of times it happened
    in between."""

    def __init__(
        self,
        logger: logging.Logger,
        level: int = logging.WARNING,
        interval_s: float = 10.0,
    ) -> None:
        self._logger = logger
        self._level = level
        self._interval_s = interval_s
        self._last = -interval_s
        self._suppressed = 0
        self._lock = threading.Lock()

    def __call__(self, message: str, *args: object) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._last < self._interval_s:
                self._suppressed += 1
                return
            if self._suppressed:
                message += " (and %d more times since the last report)"
                args = (*args, self._suppressed)
            self._last = now
            self._suppressed = 0
        self._logger.log(self._level, message, *args)


def to_ranges(numbers: list[int]) -> list[list[int]]:
    """Sorted numbers as ``[first, last]`` runs: 1, 2, 3, 7 -> [[1, 3], [7, 7]]."""
    ranges: list[list[int]] = []
    for number in sorted(numbers):
        if ranges and number == ranges[-1][1] + 1:
            ranges[-1][1] = number
        else:
            ranges.append([number, number])
    return ranges


def from_ranges(ranges: Any) -> set[int]:
    """The numbers in ``[first, last]`` runs (the inverse of :func:`to_ranges`)."""
    numbers: set[int] = set()
    for first, last in ranges or []:
        numbers.update(range(int(first), int(last) + 1))
    return numbers


def delivered_of(position: Any) -> int:
    """The message count inside a position returned by a broker source."""
    if isinstance(position, dict) and isinstance(position.get("delivered"), int):
        return int(position["delivered"])
    raise ValueError(f"not a position of this source: {position!r}")
