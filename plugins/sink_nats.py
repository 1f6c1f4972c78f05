"""Sink ``nats``: publishes each alert edge as JSON to a NATS subject.

The message is the alert's JSON form (as the ``jsonl`` sink writes it).
With ``jetstream: true`` the publish waits for the stream's acknowledgement
and carries ``Nats-Msg-Id: <incident id>:<sequence>``, so JetStream drops a
notification repeated after a restart within its duplicate window. Plain
publishes wait until the server has received the message. Failures are
retried with backoff, a bounded number of times.

Needs the ``nats`` extra: ``pip install 'burst-engine[nats]'``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

from engine.alerts import Alert
from engine.asyncloop import LoopThread
from engine.components import Options, RuntimeContext, Sink
from engine.connectors import (
    GRACE_S,
    NATS_SERVERS_SCHEMA,
    import_client,
    nats_connect,
    nats_connect_failure,
    nats_servers,
    option_seconds,
)
from engine.hookspecs import hookimpl
from engine.retry import RETRY_OPTIONS, RetryPolicy, check_retry_options

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient


class NatsSink(Sink):
    type_name: ClassVar[str] = "nats"
    description: ClassVar[str] = "publishes each alert as JSON to a NATS subject"
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["subject"],
        "additionalProperties": False,
        "properties": {
            "servers": NATS_SERVERS_SCHEMA,
            "subject": {"type": "string", "pattern": r"^[^*>\s]+$"},
            "jetstream": {
                "type": "boolean",
                "description": "publish to JetStream and wait for its "
                "acknowledgement (default false)",
            },
            "connect_timeout": {"$ref": "#/$defs/duration"},
            **RETRY_OPTIONS,
        },
    }

    @classmethod
    def check_options(cls, options: Options) -> list[tuple[tuple[str, ...], str]]:
        return check_retry_options(options)

    def __init__(self, options: Options, context: RuntimeContext) -> None:
        super().__init__(options, context)
        import_client("nats", "nats", context.name)
        self.subject: str = options["subject"]
        self.jetstream = bool(options.get("jetstream", False))
        self.policy = RetryPolicy.from_options(options)
        servers = nats_servers(options)
        timeout_s = option_seconds(options, "connect_timeout", "5s")
        self._loop = LoopThread(context.name)
        try:
            self._nc: NatsClient = self._loop.run(
                nats_connect(servers, timeout_s, "burst-engine sink"),
                timeout_s + GRACE_S,
            )
        except Exception as error:
            self._loop.stop()
            raise nats_connect_failure(context.name, servers, error) from error

    def send(self, alert: Alert) -> None:
        body = json.dumps(alert.to_dict(), ensure_ascii=False).encode()
        message_id = f"{alert.incident_id}:{alert.sequence}"
        timeout_s = self.policy.timeout_s
        self.policy.call(
            lambda: self._loop.run(self._publish(body, message_id), timeout_s + 1),
            self.context.clock,
        )

    async def _publish(self, body: bytes, message_id: str) -> None:
        timeout_s = self.policy.timeout_s
        if self.jetstream:
            await self._nc.jetstream().publish(
                self.subject,
                body,
                timeout=timeout_s,
                headers={"Nats-Msg-Id": message_id},
            )
        else:
            await self._nc.publish(self.subject, body)
            await self._nc.flush(timeout=max(1, round(timeout_s)))

    def close(self) -> None:
        try:
            self._loop.run(self._close(), GRACE_S)
        finally:
            self._loop.stop()

    async def _close(self) -> None:
        if not self._nc.is_closed:
            await self._nc.flush()
            await self._nc.close()


@hookimpl
def engine_register_sinks() -> list[type[Sink]]:
    return [NatsSink]
