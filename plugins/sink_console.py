"""Sink ``console``: one line per alert notification on standard output.

[HIGH] ERROR_BURST: 7 ERROR events from web-3 in 10s window
[HIGH] ERROR_BURST: 9 ERROR events from web-3 in 10s window (notice 2, 1 suppressed)
[FLAPPING] ERROR_BURST: source=web-3 changes state too often; quiet until it settles
[RESOLVED] ERROR_BURST: source=web-3 after 12.5s
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar, TextIO

from engine.alerts import FIRING, FLAPPING, Alert
from engine.components import Options, RuntimeContext, Sink
from engine.hookspecs import hookimpl
from engine.timeutil import US_PER_SECOND


def format_alert(alert: Alert) -> str:
    """The console line of an alert."""
    if alert.status == FIRING:
        line = f"[{alert.severity.upper()}] {alert.rule}: {alert.summary}"
        notes = [f"notice {alert.sequence}"] if alert.sequence > 1 else []
        if alert.suppressed:
            notes.append(f"{alert.suppressed} suppressed")
        return f"{line} ({', '.join(notes)})" if notes else line
    group = ", ".join(f"{k}={v}" for k, v in alert.group.items()) or "all events"
    if alert.status == FLAPPING:
        return (
            f"[FLAPPING] {alert.rule}: {group} changes state too often; "
            "quiet until it settles"
        )
    assert alert.ends_at_us is not None
    lasted = (alert.ends_at_us - alert.starts_at_us) / US_PER_SECOND
    return f"[RESOLVED] {alert.rule}: {group} after {lasted:g}s"


class ConsoleSink(Sink):
    type_name: ClassVar[str] = "console"
    description: ClassVar[str] = "prints one line per alert edge to standard output"
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "stream": {"enum": ["stdout", "stderr"]},
        },
    }

    def __init__(self, options: Options, context: RuntimeContext) -> None:
        super().__init__(options, context)
        self._stream_name = options.get("stream", "stdout")

    @property
    def stream(self) -> TextIO:
        # Looked up at each write so that a test or the CLI may swap streams.
        return sys.stdout if self._stream_name == "stdout" else sys.stderr

    def send(self, alert: Alert) -> None:
        # One write per line: print() writes the newline separately, and
        # another sink's thread may write to the same stream in between.
        stream = self.stream
        stream.write(format_alert(alert) + "\n")
        stream.flush()

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        self.flush()


@hookimpl
def engine_register_sinks() -> list[type[Sink]]:
    return [ConsoleSink]
