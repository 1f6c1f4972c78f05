"""The dead-letter file: every bad event, whole, with why it was set aside."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

from engine.errors import UsageError
from engine.events import BadEvent
from engine.timeutil import format_timestamp


class DeadLetterFile:
    """Appends one JSON object per bad event and flushes after each batch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._file: IO[str] = path.open("a", encoding="utf-8")
        except OSError as error:
            raise UsageError(
                f"dead_letter: cannot open {path}: {error.strerror or error}"
            ) from error

    def write(self, bad: list[BadEvent], source: str, received_at_us: int) -> None:
        received = format_timestamp(received_at_us)
        for item in bad:
            record = {
                "reason": item.reason,
                "detail": item.detail,
                "source": source,
                "received_at": received,
                "raw": item.raw.decode("utf-8", errors="replace"),
            }
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
