"""Bad-row reporting: every skipped row is named with file:line and a reason."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path


class DataError(Exception):
    """Input data that cannot be used; the message names the file and line."""


@dataclass
class BadRow:
    file: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.reason}"


@dataclass
class Report:
    """Collects bad rows while an adapter reads; `strict` turns the first one into an error."""

    strict: bool = False
    bad: list[BadRow] = field(default_factory=list)
    stream: object = None

    def skip(self, file: str | Path, line: int | None, reason: str) -> None:
        row = BadRow(str(file), line, reason)
        if self.strict:
            raise DataError(str(row))
        self.bad.append(row)
        print(f"skipped {row}", file=self.stream or sys.stderr)

    removed: list[BadRow] = field(default_factory=list)
    # the cache's report.json when the rows come from a cached build
    cached: str | None = None

    def remove(self, file: str | Path, line: int | None, reason: str) -> None:
        """A row left out by design (deduplication the protocol asks for); reported, not an error."""
        row = BadRow(str(file), line, reason)
        self.removed.append(row)

    def note(self, name: str) -> str:
        """The summary, saying where a cached build lists each row."""
        text = self.summary(name)
        return f"{text} (cached build; each row is listed in {self.cached})" if self.cached else text

    def summary(self, name: str) -> str:
        text = f"{name}: {len(self.bad)} bad row(s) skipped"
        if self.removed:
            text += f", {len(self.removed)} duplicate row(s) removed by protocol"
        return text
