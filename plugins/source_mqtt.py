"""Source ``mqtt``: events from MQTT topics, one JSON event per message.

Subscribes at QoS 1 with a persistent session (a fixed ``client_id``, clean
session off; on MQTT 5, clean start off and a session expiry), so the broker
keeps the subscription and queues messages while the engine is down. Topic
filters may use the ``+`` and ``#`` wildcards.

Messages are acknowledged (PUBACK) only when the engine commits a position,
that is once the effects of the batches up to it are safely recorded; the
broker delivers unacknowledged messages again when the client reconnects.
What this cannot guarantee, plainly:

- The broker sends only a bounded number of unacknowledged messages at a
  time (Mosquitto's ``max_inflight_messages``, 20 by default), so between
  two commits at most that many messages arrive: commit often, or raise the
  broker's limit. Messages beyond the broker's queue limit for a client
  (``max_queued_messages``, 1000 by default in Mosquitto) are dropped by the
  broker while the engine is down or behind.
- MQTT packet ids are reused once acknowledged, so a message cannot be
  recognised after a restart: positions hold no message ids, and a message
  whose effects were saved just before a crash, but not yet acknowledged,
  is processed again (at least once, not exactly once).
- Messages published at QoS 0 are never acknowledged or re-delivered.

Needs the ``mqtt`` extra: ``pip install 'burst-engine[mqtt]'``.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from engine.components import Options, RuntimeContext, Source
from engine.connectors import (
    DEFAULT_POLL,
    PendingAcks,
    delivered_of,
    import_client,
    one_line,
)
from engine.errors import UsageError
from engine.hookspecs import hookimpl
from engine.timeutil import US_PER_SECOND, parse_duration

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt
    from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)

QOS = 1


def seconds(options: Options, name: str, default: str) -> float:
    return parse_duration(options.get(name, default)) / US_PER_SECOND


class MqttSource(Source):
    type_name: ClassVar[str] = "mqtt"
    description: ClassVar[str] = (
        "MQTT topics, QoS 1, persistent session (PUBACK on commit)"
    )
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["topics", "client_id"],
        "additionalProperties": False,
        "properties": {
            "host": {"type": "string", "minLength": 1},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "topics": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "minLength": 1},
                "description": "topic filters; '+' and '#' are wildcards",
            },
            "client_id": {
                "type": "string",
                "minLength": 1,
                "description": "fixed id of the persistent session; keep it "
                "across restarts",
            },
            "protocol": {"enum": ["3.1.1", "5"]},
            "session_expiry": {"$ref": "#/$defs/duration"},
            "username": {"type": "string"},
            "password_env": {
                "type": "string",
                "minLength": 1,
                "description": "environment variable holding the password",
            },
            "keepalive": {"$ref": "#/$defs/duration"},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 100000},
            "poll": {"$ref": "#/$defs/duration"},
            "connect_timeout": {"$ref": "#/$defs/duration"},
        },
    }

    @classmethod
    def check_options(cls, options: Options) -> list[tuple[tuple[str, ...], str]]:
        problems: list[tuple[tuple[str, ...], str]] = []
        if "session_expiry" in options and options.get("protocol") != "5":
            problems.append((("session_expiry",), "only for protocol: '5'"))
        for name in ("keepalive", "poll", "connect_timeout"):
            if name in options and parse_duration(options[name]) <= 0:
                problems.append(((name,), "expected a positive duration"))
        for index, topic in enumerate(options.get("topics", [])):
            if "#" in topic[:-1] or any(
                ("+" in level or "#" in level) and len(level) > 1
                for level in topic.split("/")
            ):
                # check_options paths hold keys only, so the index goes in words.
                problems.append(
                    (
                        ("topics",),
                        (
                            f"bad topic filter {topic!r} (item {index}): a wildcard "
                            "must fill a whole level, and '#' must come last"
                        ),
                    )
                )
        return problems

    def __init__(self, options: Options, context: RuntimeContext) -> None:
        super().__init__(options, context)
        self._mqtt = import_client("paho.mqtt.client", "mqtt", context.name)
        self.topics: list[str] = list(options["topics"])
        self.batch_size = int(options.get("batch_size", 100))
        self.poll_s = seconds(options, "poll", DEFAULT_POLL)
        self.version5 = options.get("protocol") == "5"
        self.pending: PendingAcks[int, int] = PendingAcks()
        self._closed = threading.Event()
        self._inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._connected = threading.Event()
        self._connect_error: str | None = None
        self._connections = 0
        self.client = self._client(options)
        self._connect(options)

    def _client(self, options: Options) -> mqtt.Client:
        library = self._mqtt
        client: mqtt.Client = library.Client(
            callback_api_version=library.CallbackAPIVersion.VERSION2,
            client_id=options["client_id"],
            clean_session=None if self.version5 else False,
            protocol=library.MQTTv5 if self.version5 else library.MQTTv311,
            manual_ack=True,
        )
        if "username" in options:
            client.username_pw_set(options["username"], self._password(options))
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 30)
        return client

    def _password(self, options: Options) -> str | None:
        name = options.get("password_env")
        if name is None:
            return None
        password = os.environ.get(name)
        if password is None:
            raise UsageError(
                f"{self.context.name}: environment variable {name} (password_env) "
                "is not set"
            )
        return password

    def _connect(self, options: Options) -> None:
        host = options.get("host", "127.0.0.1")
        port = int(options.get("port", 1883))
        keepalive = max(1, round(seconds(options, "keepalive", "60s")))
        timeout_s = seconds(options, "connect_timeout", "5s")
        extra: dict[str, Any] = {}
        if self.version5:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            expiry = seconds(options, "session_expiry", "1d")
            properties.SessionExpiryInterval = round(expiry)
            extra = {"clean_start": False, "properties": properties}
        try:
            self.client.connect(host, port, keepalive, **extra)
        except OSError as error:
            raise UsageError(
                f"{self.context.name}: cannot connect to MQTT broker {host}:{port}: "
                f"{error.strerror or error}"
            ) from error
        self.client.loop_start()
        if not self._connected.wait(timeout_s) or self._connect_error:
            self.client.loop_stop()
            self.client.disconnect()
            reason = self._connect_error or f"no answer within {timeout_s:g}s"
            raise UsageError(
                f"{self.context.name}: MQTT broker {host}:{port} refused the "
                f"connection: {reason}"
            )

    # -- client callbacks (paho's network thread) ---------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Any,
    ) -> None:
        if reason.is_failure:
            self._connect_error = str(reason)
            self._connected.set()
            return
        self._connections += 1
        if self._connections > 1 and not flags.session_present:
            lost = self.pending.clear()
            log.warning(
                "%s: the MQTT broker lost this client's session; %d messages can "
                "no longer be acknowledged, and messages published meanwhile "
                "are lost",
                self.context.name,
                lost,
            )
        # The subscriptions survive in a kept session; renewing them is harmless
        # and covers a broker that lost it.
        client.subscribe([(topic, QOS) for topic in self.topics])
        self._connected.set()

    def _on_message(
        self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage
    ) -> None:
        self._inbox.put(message)

    # -- reading ----------------------------------------------------------------

    def batches(self) -> Iterator[list[bytes]]:
        stopping = self.context.stopping
        while not stopping.is_set() and not self._closed.is_set():
            try:
                first = self._inbox.get(timeout=self.poll_s)
            except queue.Empty:
                yield []
                continue
            messages = [first]
            while len(messages) < self.batch_size:
                try:
                    messages.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            yield self._lines(messages)

    def _lines(self, messages: list[mqtt.MQTTMessage]) -> list[bytes]:
        lines = []
        for message in messages:
            # A packet id still pending is the same message sent again after a
            # reconnect: the broker cannot reuse an id before it is acknowledged.
            if message.qos > 0 and not self.pending.add(message.mid, message.mid):
                continue
            lines.append(one_line(bytes(message.payload)))
        return lines

    # -- positions ----------------------------------------------------------------

    def position(self) -> dict[str, int]:
        """``delivered``: QoS 1 messages handed over so far (what
        :meth:`commit` takes). No message ids: MQTT reuses them."""
        return {"delivered": self.pending.delivered}

    def checkpoint(self, position: Any) -> dict[str, Any]:
        """Nothing: MQTT gives messages no id that survives a reconnection,
        so a restored state cannot tell which re-delivered messages it holds
        (see the module's notes)."""
        return {}

    def resume_after(self, checkpoint: Any) -> None:
        """Nothing to skip: see :meth:`checkpoint`."""

    def commit(self, position: Any) -> None:
        """Acknowledge every message up to ``position``, in the order received
        (as MQTT requires); any thread may call it, nothing waits on the
        network."""
        for packet_id in self.pending.take_through(delivered_of(position)):
            self.client.ack(packet_id, QOS)

    def close(self) -> None:
        """Disconnect, keeping the session: what was not committed is sent
        again on the next connection with the same ``client_id``."""
        self._closed.set()
        self.client.disconnect()
        self.client.loop_stop()


@hookimpl
def engine_register_sources() -> list[type[Source]]:
    return [MqttSource]
