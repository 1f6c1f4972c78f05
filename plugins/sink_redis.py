"""Sink ``redis``: appends each alert edge to a Redis stream.

Each alert becomes one entry (XADD) whose field ``alert`` holds the alert's
JSON form (as the ``jsonl`` sink writes it). ``maxlen`` caps the stream
approximately (``MAXLEN ~``), which is how Redis trims cheaply. Failures
are retried with backoff, a bounded number of times.

Needs the ``redis`` extra: ``pip install 'burst-engine[redis]'``.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from engine.alerts import Alert
from engine.components import Options, RuntimeContext, Sink
from engine.connectors import REDIS_URL_SCHEMA, redis_connect
from engine.hookspecs import hookimpl
from engine.retry import RETRY_OPTIONS, RetryPolicy, check_retry_options

FIELD = "alert"


class RedisSink(Sink):
    type_name: ClassVar[str] = "redis"
    description: ClassVar[str] = "appends each alert as JSON to a Redis stream"
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["stream"],
        "additionalProperties": False,
        "properties": {
            "url": REDIS_URL_SCHEMA,
            "stream": {"type": "string", "minLength": 1},
            "maxlen": {
                "type": "integer",
                "minimum": 1,
                "description": "keep about this many entries (MAXLEN ~)",
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
        self.stream: str = options["stream"]
        self.maxlen: int | None = options.get("maxlen")
        self.policy = RetryPolicy.from_options(options)
        self.client = redis_connect(options, context.name, self.policy.timeout_s)

    def send(self, alert: Alert) -> None:
        body = json.dumps(alert.to_dict(), ensure_ascii=False)
        self.policy.call(
            lambda: self.client.xadd(
                self.stream, {FIELD: body}, maxlen=self.maxlen, approximate=True
            ),
            self.context.clock,
        )

    def close(self) -> None:
        self.client.close()


@hookimpl
def engine_register_sinks() -> list[type[Sink]]:
    return [RedisSink]
