"""Source ``nats``: events from NATS, one JSON event per message.

With ``jetstream: true`` (the default) it reads a JetStream stream through a
durable pull consumer: messages are fetched in batches, and acknowledged
only when the engine commits a position, that is once the effects of the
batches up to it are safely recorded. Messages not acknowledged by then
come back: at once when this source closes (it declines them), after
``ack_wait`` when the process died. ``ack_wait`` must therefore be longer
than the time between two commits, and ``max_ack_pending`` larger than the
number of messages read between two commits, or the server pauses
delivery until the next commit.

With ``jetstream: false`` it subscribes to plain NATS subjects: fire and
forget, nothing is acknowledged and nothing is re-delivered.

Needs the ``nats`` extra: ``pip install 'burst-engine[nats]'``.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from engine.asyncloop import LoopThread
from engine.components import Options, RuntimeContext, Source
from engine.connectors import (
    DEFAULT_POLL,
    GRACE_S,
    NATS_SERVERS_SCHEMA,
    PendingAcks,
    RateLimitedLog,
    delivered_of,
    from_ranges,
    import_client,
    nats_connect,
    nats_connect_failure,
    nats_servers,
    one_line,
    option_seconds,
    to_ranges,
)
from engine.errors import UsageError
from engine.hookspecs import hookimpl
from engine.timeutil import parse_duration

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription
    from nats.js.client import JetStreamContext

log = logging.getLogger(__name__)

#: NATS names of streams and consumers: no dots, wildcards or white space.
NAME_PATTERN = r"^[^.*>\s]+$"


class NatsSource(Source):
    type_name: ClassVar[str] = "nats"
    description: ClassVar[str] = (
        "NATS JetStream durable consumer (acknowledged on commit) or core subjects"
    )
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["subject"],
        "additionalProperties": False,
        "properties": {
            "servers": NATS_SERVERS_SCHEMA,
            "subject": {
                "type": "string",
                "minLength": 1,
                "description": "subject to read; wildcards '*' and '>' allowed",
            },
            "jetstream": {
                "type": "boolean",
                "description": "read a JetStream stream (default true)",
            },
            "stream": {"type": "string", "pattern": NAME_PATTERN},
            "durable": {
                "type": "string",
                "pattern": NAME_PATTERN,
                "description": "durable consumer name (keep it across restarts)",
            },
            "create_stream": {
                "type": "boolean",
                "description": "create the stream on the subject if it is missing",
            },
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 10000},
            "fetch_timeout": {"$ref": "#/$defs/duration"},
            "ack_wait": {"$ref": "#/$defs/duration"},
            "max_ack_pending": {"type": "integer", "minimum": 1},
            "queue": {
                "type": "string",
                "minLength": 1,
                "description": "core NATS queue group (jetstream: false)",
            },
            "connect_timeout": {"$ref": "#/$defs/duration"},
        },
    }

    @classmethod
    def check_options(cls, options: Options) -> list[tuple[tuple[str, ...], str]]:
        problems: list[tuple[tuple[str, ...], str]] = []
        if options.get("jetstream", True):
            for name in ("stream", "durable"):
                if name not in options:
                    problems.append(
                        ((), f"missing key: {name!r} (required with jetstream)")
                    )
            if "queue" in options:
                problems.append((("queue",), "only for core NATS (jetstream: false)"))
        else:
            for name in (
                "stream",
                "durable",
                "create_stream",
                "ack_wait",
                "max_ack_pending",
            ):
                if name in options:
                    problems.append(((name,), "only for jetstream: true"))
        for name in ("fetch_timeout", "ack_wait", "connect_timeout"):
            if name in options and parse_duration(options[name]) <= 0:
                problems.append(((name,), "expected a positive duration"))
        return problems

    def __init__(self, options: Options, context: RuntimeContext) -> None:
        super().__init__(options, context)
        import_client("nats", "nats", context.name)
        self.jetstream = bool(options.get("jetstream", True))
        self.subject: str = options["subject"]
        self.batch_size = int(options.get("batch_size", 100))
        self.fetch_s = option_seconds(options, "fetch_timeout", DEFAULT_POLL)
        self.pending: PendingAcks[int, Msg] = PendingAcks()
        self._closed = threading.Event()
        self._received = 0
        self._already_applied: set[int] = set()
        self._warn = RateLimitedLog(log)
        self._core: Subscription | None = None
        self._pull: JetStreamContext.PullSubscription | None = None
        self._acks: list[concurrent.futures.Future[None]] = []
        servers = nats_servers(options)
        self._loop = LoopThread(context.name)
        timeout_s = option_seconds(options, "connect_timeout", "5s")
        try:
            self._nc: NatsClient = self._loop.run(
                nats_connect(servers, timeout_s, "burst-engine source"),
                timeout_s + GRACE_S,
            )
            self._loop.run(self._subscribe(), timeout_s + GRACE_S)
        except UsageError:
            self._shutdown_loop()
            raise
        except Exception as error:
            self._shutdown_loop()
            raise nats_connect_failure(context.name, servers, error) from error

    async def _subscribe(self) -> None:
        if not self.jetstream:
            self._core = await self._nc.subscribe(
                self.subject, queue=self.options.get("queue", "")
            )
            return
        import nats.js.api
        import nats.js.errors

        js = self._nc.jetstream()
        stream: str = self.options["stream"]
        if self.options.get("create_stream", False):
            await self._ensure_stream(js, stream)
        config = nats.js.api.ConsumerConfig(
            ack_wait=option_seconds(self.options, "ack_wait", "60s"),
            max_ack_pending=int(self.options.get("max_ack_pending", 10000)),
        )
        try:
            self._pull = await js.pull_subscribe(
                self.subject,
                durable=self.options["durable"],
                stream=stream,
                config=config,
            )
        except nats.js.errors.NotFoundError as error:
            raise UsageError(
                f"{self.context.name}: JetStream stream {stream!r} does not exist; "
                "create it, or set create_stream: true"
            ) from error

    async def _ensure_stream(self, js: JetStreamContext, stream: str) -> None:
        import nats.js.errors

        try:
            await js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            log.info("creating JetStream stream %s on %s", stream, self.subject)
            await js.add_stream(name=stream, subjects=[self.subject])

    # -- reading ----------------------------------------------------------------

    def batches(self) -> Iterator[list[bytes]]:
        stopping = self.context.stopping
        while not stopping.is_set() and not self._closed.is_set():
            try:
                messages = self._loop.run(self._fetch(), self.fetch_s + GRACE_S)
            except Exception as error:
                # The client reconnects by itself; keep polling meanwhile.
                self._warn("%s: reading from NATS failed: %s", self.context.name, error)
                stopping.wait(self.fetch_s)
                messages = []
            yield self._lines(messages)

    async def _fetch(self) -> list[Msg]:
        import nats.errors

        try:
            if self._pull is not None:
                return await self._pull.fetch(self.batch_size, timeout=self.fetch_s)
            assert self._core is not None
            return await self._next_messages(self._core)
        except nats.errors.TimeoutError:
            return []

    async def _next_messages(self, sub: Subscription) -> list[Msg]:
        messages = [await sub.next_msg(timeout=self.fetch_s)]
        while len(messages) < self.batch_size and sub.pending_msgs:
            messages.append(await sub.next_msg(timeout=None))
        return messages

    def _lines(self, messages: list[Msg]) -> list[bytes]:
        if not self.jetstream:
            self._received += len(messages)
            return [one_line(message.data) for message in messages]
        lines = []
        for message in messages:
            sequence = message.metadata.sequence.stream
            if not self.pending.add(sequence, message):
                continue  # re-delivered while still waiting for a commit
            if sequence in self._already_applied:
                self._already_applied.discard(sequence)
                continue  # its effects are in the restored state; acked on commit
            lines.append(one_line(message.data))
        return lines

    # -- positions ----------------------------------------------------------------

    def position(self) -> dict[str, int]:
        """``delivered``: how many messages were handed over so far; what
        :meth:`commit` and :meth:`checkpoint` take."""
        if not self.jetstream:
            return {"delivered": self._received}
        return {"delivered": self.pending.delivered}

    def checkpoint(self, position: Any) -> dict[str, Any]:
        """Plain data for a state snapshot that holds the effects of every
        message up to ``position``: the stream sequences among them not yet
        acknowledged, which the server may deliver again after a crash.
        Give it to :meth:`resume_after` in the next run."""
        if not self.jetstream:
            return {}
        sequences = self.pending.keys_through(delivered_of(position))
        return {"unacknowledged": to_ranges(sequences)}

    def commit(self, position: Any) -> None:
        """Acknowledge every message up to ``position``; any thread may call it.

        The acknowledgements are sent by the client's own loop, so this
        returns at once.
        """
        if not self.jetstream:
            return
        messages = self.pending.take_through(delivered_of(position))
        if messages:
            self._acks = [f for f in self._acks if not f.done()]
            self._acks.append(self._loop.submit(self._ack(messages)))

    async def _ack(self, messages: list[Msg]) -> None:
        try:
            for message in messages:
                await message.ack()
        except Exception as error:
            # They will be delivered again after ack_wait: duplicates, not loss.
            log.warning("%s: acknowledging failed: %s", self.context.name, error)

    def resume_after(self, checkpoint: Any) -> None:
        """Skip re-delivered messages whose effects a restored state holds.

        ``checkpoint`` is what :meth:`checkpoint` returned in an earlier run;
        the skipped messages are acknowledged on the next commit.
        """
        if self.jetstream and isinstance(checkpoint, dict):
            self._already_applied = from_ranges(checkpoint.get("unacknowledged"))

    # -- closing ---------------------------------------------------------------------

    def close(self) -> None:
        """Decline what was not committed (so it comes back at once), then
        disconnect."""
        self._closed.set()
        try:
            concurrent.futures.wait(self._acks, GRACE_S)
            self._loop.run(self._close(), GRACE_S)
        except Exception as error:
            log.warning(
                "%s: closing the NATS connection failed: %s", self.context.name, error
            )
        self._shutdown_loop()

    async def _close(self) -> None:
        declined = self.pending.take_through(self.pending.delivered)
        for message in declined:
            await message.nak()
        if not self._nc.is_closed:
            await self._nc.flush()
            await self._nc.close()

    def _shutdown_loop(self) -> None:
        self._loop.stop()


@hookimpl
def engine_register_sources() -> list[type[Source]]:
    return [NatsSource]
