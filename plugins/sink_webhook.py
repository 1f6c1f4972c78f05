"""Sink ``webhook``: POSTs each alert edge as JSON to a URL.

The body is the alert's JSON form (as the ``jsonl`` sink writes it). A
failed POST is retried with exponential backoff and jitter, a bounded
number of times. With ``secret_env`` the body is signed: the header
``signature_header`` (default ``X-Burst-Signature``) carries
``sha256=<hex HMAC-SHA256 of the exact body>``, keyed with the value of
that environment variable, so the receiver can check who sent it. The
secret is read once at start-up and never logged or shown in errors.

Every request also carries ``Idempotency-Key: <incident id>:<sequence>``:
a notification repeated after a restart has the same key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, ClassVar

from engine.alerts import Alert
from engine.components import Options, RuntimeContext, Sink
from engine.hookspecs import hookimpl
from engine.httppost import (
    HEADER_OPTIONS,
    JsonPoster,
    env_secret,
    request_headers,
)
from engine.retry import RETRY_OPTIONS, RetryPolicy, check_retry_options

URL_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": "^https?://",
    "description": "an http:// or https:// URL",
}


def signature(secret: bytes, body: bytes) -> str:
    """The signature header's value for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookSink(Sink):
    type_name: ClassVar[str] = "webhook"
    description: ClassVar[str] = "POSTs each alert as JSON, with retries and signing"
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["url"],
        "additionalProperties": False,
        "properties": {
            "url": URL_SCHEMA,
            **RETRY_OPTIONS,
            **HEADER_OPTIONS,
            "secret_env": {
                "type": "string",
                "minLength": 1,
                "description": "environment variable holding the HMAC secret",
            },
            "signature_header": {"type": "string", "minLength": 1},
        },
    }

    @classmethod
    def check_options(cls, options: Options) -> list[tuple[tuple[str, ...], str]]:
        problems = check_retry_options(options)
        if "signature_header" in options and "secret_env" not in options:
            problems.append((("signature_header",), "needs secret_env"))
        return problems

    def __init__(self, options: Options, context: RuntimeContext) -> None:
        super().__init__(options, context)
        self.poster = JsonPoster(
            options["url"],
            RetryPolicy.from_options(options),
            context.clock,
            request_headers(options, context.name),
            context.name,
        )
        self._secret: bytes | None = None
        if "secret_env" in options:
            secret = env_secret(options["secret_env"], context.name, "secret_env")
            self._secret = secret.encode()
        self.signature_header = options.get("signature_header", "X-Burst-Signature")

    def send(self, alert: Alert) -> None:
        body = json.dumps(alert.to_dict(), ensure_ascii=False).encode()
        headers = {"Idempotency-Key": f"{alert.incident_id}:{alert.sequence}"}
        if self._secret is not None:
            headers[self.signature_header] = signature(self._secret, body)
        self.poster.post(body, headers)

    def __repr__(self) -> str:
        # Never show the secret, even in a debugger or a traceback.
        return f"WebhookSink({self.poster.shown_url!r})"


@hookimpl
def engine_register_sinks() -> list[type[Sink]]:
    return [WebhookSink]
