"""Sinks ``webhook`` and ``alertmanager`` against a local HTTP server that
records what it receives: payload shapes, signatures, retries, and a
receiver that never answers."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from engine.alerts import Alert
from engine.clock import SimulatedClock
from engine.components import RuntimeContext
from engine.delivery import QUEUE_FULL, DeliveryQueue
from engine.errors import UsageError
from engine.httppost import DeliveryError
from engine.timeutil import US_PER_SECOND

START_US = 1_700_000_000 * US_PER_SECOND


@dataclass
class Received:
    path: str
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """What the local server got, and how it answers: the next status in
    ``statuses`` (200 when none left); with ``hang`` set it waits for
    ``release`` before answering."""

    url: str
    requests: list[Received] = field(default_factory=list)
    statuses: deque[int] = field(default_factory=deque)
    hang: bool = False
    release: threading.Event = field(default_factory=threading.Event)


class _Handler(BaseHTTPRequestHandler):
    receiver: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.receiver.requests.append(Received(self.path, self.headers, body))
        if self.receiver.hang:
            self.receiver.release.wait(10)
        status = self.receiver.statuses.popleft() if self.receiver.statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A local HTTP server on a free port, in a thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    state = Receiver(f"http://{host!s}:{port}")
    _Handler.receiver = state
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


class RecordingClock(SimulatedClock):
    """A simulated clock that remembers every sleep."""

    def __init__(self, start_us: int = START_US) -> None:
        super().__init__(start_us)
        self.sleeps_us: list[int] = []

    def sleep_us(self, duration_us: int) -> None:
        self.sleeps_us.append(duration_us)
        super().sleep_us(duration_us)


@pytest.fixture
def clock() -> RecordingClock:
    return RecordingClock()


@pytest.fixture
def sim_context(tmp_path: Path, clock: RecordingClock) -> RuntimeContext:
    return RuntimeContext("sinks[0] (test)", clock, tmp_path)


def make_alert(status: str = "firing", **changes: Any) -> Alert:
    fields: dict[str, Any] = {
        "rule": "ERROR_BURST",
        "severity": "high",
        "status": status,
        "labels": {"source": "web-3", "metadata.region": "eu-west-1", "shard": 7},
        "group": {"source": "web-3"},
        "starts_at_us": START_US - 60 * US_PER_SECOND,
        "ends_at_us": START_US if status == "resolved" else None,
        "incident_id": "8d1c0c1e-0000-5000-8000-000000000001",
        "sequence": 1 if status == "firing" else 2,
        "evidence": {"count": 7, "threshold": 7, "window": "10s"},
        "summary": "7 ERROR events from web-3 in 10s window",
    }
    fields.update(changes)
    return Alert(**fields)


def webhook(url: str, context: RuntimeContext, **options: Any) -> Any:
    from engine.plugins.sink_webhook import WebhookSink

    return WebhookSink({"url": url, **options}, context)


# -- webhook ---------------------------------------------------------------------


def test_webhook_posts_the_alert_json_signed_with_the_secret_from_env(
    receiver: Receiver, sim_context: RuntimeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The body is the alert's JSON form; the signature header is the
    HMAC-SHA256 of the exact body under the secret; extra headers are sent."""
    monkeypatch.setenv("TEST_HOOK_SECRET", "s3cret")
    monkeypatch.setenv("TEST_HOOK_TOKEN", "Bearer abc")
    sink = webhook(
        receiver.url + "/hook",
        sim_context,
        secret_env="TEST_HOOK_SECRET",
        headers={"X-Team": "sre"},
        headers_from_env={"Authorization": "TEST_HOOK_TOKEN"},
    )
    alert = make_alert()

    sink.send(alert)
    sink.close()

    (request,) = receiver.requests
    expected = hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()
    assert request.path == "/hook"
    assert request.json() == alert.to_dict()
    assert request.headers["X-Burst-Signature"] == f"sha256={expected}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Team"] == "sre"
    assert request.headers["Authorization"] == "Bearer abc"
    assert request.headers["Idempotency-Key"] == f"{alert.incident_id}:1"


def test_webhook_retries_server_errors_with_growing_jittered_waits(
    receiver: Receiver, sim_context: RuntimeContext, clock: RecordingClock
) -> None:
    """Two 5xx answers, then 200: three requests, and the waits between them
    lie in [backoff/2, backoff] then [backoff, 2*backoff]."""
    receiver.statuses.extend([500, 503, 200])
    sink = webhook(receiver.url, sim_context, backoff="1s", retries=3)

    sink.send(make_alert())

    assert len(receiver.requests) == 3
    first, second = clock.sleeps_us
    assert 500_000 <= first <= 1_000_000
    assert 1_000_000 <= second <= 2_000_000


def test_webhook_gives_up_after_the_bounded_retries_without_showing_secrets(
    receiver: Receiver, sim_context: RuntimeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A receiver that keeps failing gets 1 + retries requests; the error names
    the status and the URL without its password, never the secret."""
    monkeypatch.setenv("TEST_HOOK_SECRET", "s3cret")
    receiver.statuses.extend([500] * 10)
    url = receiver.url.replace("http://", "http://user:pa55word@")
    sink = webhook(url, sim_context, retries=2, secret_env="TEST_HOOK_SECRET")

    with pytest.raises(DeliveryError) as error:
        sink.send(make_alert())

    assert len(receiver.requests) == 3
    assert receiver.requests[0].headers["Authorization"] == "Basic dXNlcjpwYTU1d29yZA=="
    assert "HTTP 500" in str(error.value)
    assert "user:***@" in str(error.value)
    for secret in ("pa55word", "s3cret"):
        assert secret not in str(error.value)
        assert secret not in repr(sink)


def test_webhook_does_not_retry_a_rejected_request(
    receiver: Receiver, sim_context: RuntimeContext
) -> None:
    """A 4xx answer (other than 408 and 429) is final: one request."""
    receiver.statuses.append(400)
    sink = webhook(receiver.url, sim_context, retries=3)

    with pytest.raises(DeliveryError, match="HTTP 400"):
        sink.send(make_alert())

    assert len(receiver.requests) == 1


def test_webhook_without_its_secret_variable_is_a_usage_error(
    receiver: Receiver, sim_context: RuntimeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing secret variable stops start-up with a message naming it."""
    monkeypatch.delenv("TEST_HOOK_MISSING", raising=False)

    with pytest.raises(UsageError, match="TEST_HOOK_MISSING"):
        webhook(receiver.url, sim_context, secret_env="TEST_HOOK_MISSING")


def test_webhook_that_never_answers_does_not_block_the_delivery_queue(
    receiver: Receiver, tmp_path: Path
) -> None:
    """With the receiver hanging, send() keeps returning: one alert is in
    flight, max_pending wait, the rest go to the dead letters as queue_full;
    once the receiver answers, the waiting ones are delivered."""
    receiver.hang = True
    context = RuntimeContext("sinks[0] (webhook)", SimulatedClock(START_US), tmp_path)
    sink = webhook(receiver.url, context, timeout="30s", retries=0)
    dead_letters = tmp_path / "alerts.dead.jsonl"
    queue = DeliveryQueue(sink, "webhook", max_pending=2, dead_letter_path=dead_letters)
    alerts = [make_alert(sequence=n) for n in range(1, 7)]

    queue.send(alerts[0])
    assert _wait_for(lambda: len(receiver.requests) == 1)
    for alert in alerts[1:]:
        queue.send(alert)
    counts_while_hanging = queue.counts()
    receiver.release.set()
    queue.close(timeout_s=10)

    records = [json.loads(line) for line in dead_letters.read_text().splitlines()]
    assert counts_while_hanging.overflowed == 3
    assert queue.counts().delivered == 3
    assert [r["alert"]["sequence"] for r in records] == [4, 5, 6]
    assert {r["reason"] for r in records} == {QUEUE_FULL}
    assert sorted(r.json()["sequence"] for r in receiver.requests) == [1, 2, 3]


def _wait_for(condition: Any, timeout_s: float = 5.0) -> bool:
    done = threading.Event()
    for _ in range(int(timeout_s / 0.01)):
        if condition():
            return True
        done.wait(0.01)
    return bool(condition())


# -- alertmanager ----------------------------------------------------------------

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

#: Alertmanager's ``postableAlerts`` (API v2), written from its OpenAPI
#: definition: a list of alerts with string label and annotation maps.
POSTABLE_ALERTS: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["labels"],
        "additionalProperties": False,
        "properties": {
            "labels": {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": {"type": "string"},
            },
            "annotations": {
                "type": "object",
                "additionalProperties": {"type": "string"},
            },
            "startsAt": {"type": "string"},
            "endsAt": {"type": "string"},
            "generatorURL": {"type": "string"},
        },
    },
}


def check_postable(payload: Any) -> None:
    jsonschema.validate(payload, POSTABLE_ALERTS)
    for alert in payload:
        assert all(LABEL_NAME.match(name) for name in alert["labels"])
        for key in ("startsAt", "endsAt"):
            if key in alert:
                assert RFC3339.match(alert[key]), alert[key]
                datetime.fromisoformat(alert[key].replace("Z", "+00:00"))


def alertmanager(url: str, context: RuntimeContext, **options: Any) -> Any:
    from engine.plugins.sink_alertmanager import AlertmanagerSink

    return AlertmanagerSink({"url": url, "resend_interval": "1m", **options}, context)


def test_alertmanager_receives_postable_alerts_for_firing_and_resolved(
    receiver: Receiver, sim_context: RuntimeContext
) -> None:
    """A firing and a resolved alert arrive at /api/v2/alerts in Alertmanager's
    shape, with the same labels; endsAt is four resend intervals ahead while
    firing and the resolution time once resolved."""
    sink = alertmanager(
        receiver.url + "/", sim_context, generator_url="http://engine/rules"
    )

    sink.send(make_alert("firing"))
    sink.send(make_alert("resolved"))
    sink.close()

    firing, resolved = (request.json() for request in receiver.requests)
    for request, payload in zip(receiver.requests, (firing, resolved), strict=True):
        assert request.path == "/api/v2/alerts"
        check_postable(payload)
    labels = {
        "alertname": "ERROR_BURST",
        "severity": "high",
        "source": "web-3",
        "metadata_region": "eu-west-1",
        "shard": "7",
    }
    assert firing[0]["labels"] == labels
    assert resolved[0]["labels"] == labels
    assert firing[0]["startsAt"] == "2023-11-14T22:12:20.000Z"
    assert firing[0]["endsAt"] == "2023-11-14T22:17:20.000Z"
    assert resolved[0]["endsAt"] == "2023-11-14T22:13:20.000Z"
    assert firing[0]["generatorURL"] == "http://engine/rules"
    assert firing[0]["annotations"]["summary"] == (
        "7 ERROR events from web-3 in 10s window"
    )
    assert resolved[0]["annotations"]["sequence"] == "2"


def test_alertmanager_resends_firing_alerts_until_they_resolve(
    receiver: Receiver, sim_context: RuntimeContext, clock: RecordingClock
) -> None:
    """Each resend posts the alerts still firing with endsAt moved forward;
    a resolved alert is no longer sent again."""
    sink = alertmanager(receiver.url, sim_context, resend_interval="1h")
    other = make_alert(labels={"source": "web-4"}, incident_id="other")
    sink.send(make_alert("firing"))
    sink.send(other)

    clock.advance_us(3600 * US_PER_SECOND)
    sink.resend()
    sink.send(make_alert("resolved"))
    sink.resend()
    sink.close()

    first_resend, second_resend = (receiver.requests[i].json() for i in (2, 4))
    assert sorted(a["labels"]["source"] for a in first_resend) == ["web-3", "web-4"]
    # now (22:13:20 plus the hour advanced) plus four intervals of one hour
    assert first_resend[0]["endsAt"] == "2023-11-15T03:13:20.000Z"
    assert [a["labels"]["source"] for a in second_resend] == ["web-4"]


def test_alertmanager_keeps_a_flapping_incident_open_with_its_annotations(
    receiver: Receiver, sim_context: RuntimeContext
) -> None:
    """A flapping notice is an open incident: it is posted with endsAt ahead,
    resent like a firing alert, and carries the rule's annotations."""
    sink = alertmanager(receiver.url, sim_context)
    flapping = make_alert(
        "flapping", sequence=3, annotations={"runbook": "https://runbooks/x"}
    )

    sink.send(flapping)
    sink.resend()
    sink.close()

    notice, resent = (request.json() for request in receiver.requests)
    check_postable(notice)
    assert notice[0]["endsAt"] == "2023-11-14T22:17:20.000Z"
    assert notice[0]["annotations"]["runbook"] == "https://runbooks/x"
    assert [a["labels"]["source"] for a in resent] == ["web-3"]


def test_alertmanager_without_resending_leaves_ends_at_out_while_firing(
    receiver: Receiver, sim_context: RuntimeContext
) -> None:
    """With resend_interval: 0 a firing alert carries no endsAt."""
    sink = alertmanager(receiver.url, sim_context, resend_interval=0)

    sink.send(make_alert("firing"))
    sink.close()

    (payload,) = (r.json() for r in receiver.requests)
    check_postable(payload)
    assert "endsAt" not in payload[0]
