"""Sink ``alertmanager``: posts alerts to a Prometheus Alertmanager.

Each edge becomes one postable alert sent to ``<url>/api/v2/alerts``, so it
flows into the Alertmanager's existing routes, silences, inhibitions and
receivers:

- ``labels``: ``alertname`` (the rule), ``severity``, and the alert's labels
  (its group key and the rule's static labels). Alertmanager identifies an
  alert by its labels, which is how a resolution finds its firing alert and
  how a notification repeated after a restart is recognised. Label names
  must be identifiers there, so other characters become ``_``
  (``metadata.region`` is sent as ``metadata_region``); values are strings,
  and labels with an empty value are left out, as Prometheus does.
- ``annotations``: ``summary``, ``description`` (when the rule has one),
  ``incident_id``, ``sequence`` and the detector's evidence as JSON.
- ``startsAt`` and, for resolved alerts, ``endsAt`` (RFC 3339).
- ``generatorURL`` from the option of that name.

Alertmanager resolves a firing alert by itself when it is not sent again
before its ``endsAt`` (or, without one, ``resolve_timeout``, 5 minutes by
default). Like Prometheus, this sink therefore sends every firing alert
again each ``resend_interval`` (default 1m) with ``endsAt`` four intervals
ahead: a long incident stays firing, and one whose engine died resolves on
its own. ``resend_interval: 0`` sends each edge once and leaves ``endsAt``
out of firing alerts.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

from engine.alerts import RESOLVED, Alert
from engine.components import Options, RuntimeContext, Sink
from engine.connectors import RateLimitedLog
from engine.hookspecs import hookimpl
from engine.httppost import HEADER_OPTIONS, JsonPoster, request_headers
from engine.retry import RETRY_OPTIONS, RetryPolicy, check_retry_options
from engine.timeutil import US_PER_SECOND, format_timestamp, parse_duration

log = logging.getLogger(__name__)

API_PATH = "/api/v2/alerts"
#: A firing alert's ``endsAt`` is this many resend intervals ahead.
ENDS_AT_INTERVALS = 4
_NOT_IN_NAME = re.compile(r"[^a-zA-Z0-9_]")


def label_name(name: str) -> str:
    """``name`` as an Alertmanager label name: ``[a-zA-Z_][a-zA-Z0-9_]*``."""
    cleaned = _NOT_IN_NAME.sub("_", name)
    return "_" + cleaned if not cleaned or cleaned[0].isdigit() else cleaned


def label_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def alert_labels(alert: Alert) -> dict[str, str]:
    labels: dict[str, str] = {}
    for name, value in alert.labels.items():
        text = label_value(value)
        if text:
            labels.setdefault(label_name(str(name)), text)
    # The rule and severity win over a group key that happens to share the name.
    labels["alertname"] = alert.rule
    labels["severity"] = alert.severity
    return labels


def alert_annotations(alert: Alert) -> dict[str, str]:
    annotations = {
        **alert.annotations,
        "summary": alert.summary,
        "incident_id": alert.incident_id,
        "sequence": str(alert.sequence),
        "evidence": json.dumps(dict(alert.evidence), sort_keys=True, default=str),
    }
    if alert.description:
        annotations["description"] = alert.description
    return annotations


def postable(
    alert: Alert, generator_url: str | None, ends_at_us: int | None
) -> dict[str, Any]:
    """One alert in the shape of Alertmanager's ``postableAlert``."""
    body: dict[str, Any] = {
        "labels": alert_labels(alert),
        "annotations": alert_annotations(alert),
        "startsAt": format_timestamp(alert.starts_at_us),
    }
    if ends_at_us is not None:
        body["endsAt"] = format_timestamp(ends_at_us)
    if generator_url:
        body["generatorURL"] = generator_url
    return body


class AlertmanagerSink(Sink):
    type_name: ClassVar[str] = "alertmanager"
    description: ClassVar[str] = "posts alerts to Alertmanager's /api/v2/alerts"
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["url"],
        "additionalProperties": False,
        "properties": {
            "url": {
                "type": "string",
                "pattern": "^https?://",
                "description": "the Alertmanager's base URL, "
                "such as http://alertmanager:9093",
            },
            "generator_url": {"type": "string", "minLength": 1},
            "resend_interval": {"$ref": "#/$defs/duration"},
            **RETRY_OPTIONS,
            **HEADER_OPTIONS,
        },
    }

    @classmethod
    def check_options(cls, options: Options) -> list[tuple[tuple[str, ...], str]]:
        return check_retry_options(options)

    def __init__(self, options: Options, context: RuntimeContext) -> None:
        super().__init__(options, context)
        self.poster = JsonPoster(
            options["url"].rstrip("/") + API_PATH,
            RetryPolicy.from_options(options),
            context.clock,
            request_headers(options, context.name),
            context.name,
        )
        self.generator_url: str | None = options.get("generator_url")
        self.resend_us = parse_duration(options.get("resend_interval", "1m"))
        #: Firing alerts by label set, sent again each resend interval.
        self._firing: dict[tuple[tuple[str, str], ...], Alert] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._warn = RateLimitedLog(log)
        self._resender: threading.Thread | None = None
        if self.resend_us > 0:
            self._resender = threading.Thread(
                target=self._resend_loop, name=f"resend-{context.name}", daemon=True
            )
            self._resender.start()

    def send(self, alert: Alert) -> None:
        key = tuple(sorted(alert_labels(alert).items()))
        with self._lock:
            # A flapping incident is still open: Alertmanager must keep it.
            if alert.status == RESOLVED:
                self._firing.pop(key, None)
            else:
                self._firing[key] = alert
        self._post([alert])

    def _post(self, alerts: list[Alert]) -> None:
        body = [postable(a, self.generator_url, self._ends_at(a)) for a in alerts]
        self.poster.post(json.dumps(body, ensure_ascii=False).encode())

    def _ends_at(self, alert: Alert) -> int | None:
        if alert.status == RESOLVED:
            return alert.ends_at_us
        if self.resend_us <= 0:
            return None
        # Never before the start: Alertmanager would take it as resolved.
        now_us = self.context.clock.now_us()
        return max(now_us, alert.starts_at_us) + ENDS_AT_INTERVALS * self.resend_us

    def _resend_loop(self) -> None:
        while not self._closing.wait(self.resend_us / US_PER_SECOND):
            self.resend()

    def resend(self) -> None:
        """Send every firing alert again (the resend thread calls it)."""
        with self._lock:
            firing = list(self._firing.values())
        if not firing:
            return
        try:
            self._post(firing)
        except Exception as error:
            self._warn(
                "%s: sending firing alerts again failed: %s", self.context.name, error
            )

    def firing(self) -> Mapping[tuple[tuple[str, str], ...], Alert]:
        """The alerts this sink keeps sending again, by label set."""
        with self._lock:
            return dict(self._firing)

    def close(self) -> None:
        self._closing.set()
        if self._resender is not None:
            self._resender.join(self.poster.policy.timeout_s + 1)


@hookimpl
def engine_register_sinks() -> list[type[Sink]]:
    return [AlertmanagerSink]
