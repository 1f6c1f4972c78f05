"""Sink ``jsonl``: one JSON object per alert edge, appended to a file.

Each line is flushed as soon as it is written, so a reader following the
file (or a crash) never sees half an alert.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any, ClassVar

from engine.alerts import Alert
from engine.components import Options, RuntimeContext, Sink
from engine.hookspecs import hookimpl


class JsonlSink(Sink):
    type_name: ClassVar[str] = "jsonl"
    description: ClassVar[str] = "appends one JSON object per alert edge to a file"
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["path"],
        "additionalProperties": False,
        "properties": {
            "path": {
                "type": "string",
                "minLength": 1,
                "description": "file to append to; '-' writes to standard output",
            },
        },
    }

    def __init__(self, options: Options, context: RuntimeContext) -> None:
        super().__init__(options, context)
        path = options["path"]
        self._file: IO[str]
        if path == "-":
            self._file = sys.stdout
            self._owns_file = False
        else:
            target = context.resolve(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            self._file = target.open("a", encoding="utf-8")
            self._owns_file = True

    def send(self, alert: Alert) -> None:
        self._file.write(json.dumps(alert.to_dict(), ensure_ascii=False) + "\n")
        self._file.flush()

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if self._owns_file:
            self._file.close()
        else:
            self._file.flush()


@hookimpl
def engine_register_sinks() -> list[type[Sink]]:
    return [JsonlSink]
