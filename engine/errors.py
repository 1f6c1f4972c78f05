"""The one error type users see, and the pieces it is made of."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a user's input, located as precisely as we can.

    ``where`` is the file (and line and column when known); ``path`` is the
    place inside the document, such as ``rules[1].detector.threshold``.
    """

    message: str
    where: str = ""
    path: str = ""

    def __str__(self) -> str:
        location = ": ".join(part for part in (self.where, self.path) if part)
        return f"{location}: {self.message}" if location else self.message


class UsageError(Exception):
    """Bad input from the user: a rules file, an option, a plugin that won't load.

    The CLI prints it once as ``error: ...`` and exits with code 2. It can
    carry several problems so that a rules file is reported in one go.
    """

    def __init__(self, *problems: Problem | str) -> None:
        self.problems = [p if isinstance(p, Problem) else Problem(p) for p in problems]
        super().__init__("\n".join(str(p) for p in self.problems))
