"""Example burst-engine plugin: the ``counter_file`` sink.

After every alert it rewrites a small JSON file with the number of firing and
resolved alerts seen for each rule since the engine started::

    {"ERROR_BURST": {"firing": 3, "resolved": 2}}

Use it in a rules file with::

    sinks:
      - type: counter_file
        path: alert-counts.json
"""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

from engine.alerts import Alert
from engine.components import Options, RuntimeContext, Sink
from engine.hookspecs import hookimpl


class CounterFileSink(Sink):
    """Keeps per-rule counts of alert edges in a JSON file."""

    type_name: ClassVar[str] = "counter_file"
    description: ClassVar[str] = "keeps per-rule counts of alerts in a JSON file"
    # The engine checks every rules file against this schema before it builds
    # the sink, so __init__ receives options that are already valid.
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["path"],
        "additionalProperties": False,
        "properties": {
            "path": {
                "type": "string",
                "minLength": 1,
                "description": "the JSON file to rewrite, relative to the rules file",
            },
            "indent": {
                "type": "integer",
                "minimum": 0,
                "description": "spaces of indentation in the file (default 2)",
            },
        },
    }

    def __init__(self, options: Options, context: RuntimeContext) -> None:
        super().__init__(options, context)
        self._path = context.resolve(options["path"])
        self._indent: int = options.get("indent", 2)
        self._counts: dict[str, dict[str, int]] = {}

    def send(self, alert: Alert) -> None:
        counts = self._counts.setdefault(alert.rule, {"firing": 0, "resolved": 0})
        counts[alert.status] += 1
        self._write()

    def close(self) -> None:
        # A run without alerts still leaves a file, holding {}.
        self._write()

    def _write(self) -> None:
        # Write a temporary file and rename it over the target, so that a
        # reader never sees a half-written file.
        self._path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._path.with_name(self._path.name + ".tmp")
        text = json.dumps(self._counts, indent=self._indent, sort_keys=True)
        temporary.write_text(text + "\n", encoding="utf-8")
        os.replace(temporary, self._path)


@hookimpl
def engine_register_sinks() -> list[type[Sink]]:
    return [CounterFileSink]
