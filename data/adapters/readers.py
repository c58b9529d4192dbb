"""CSV/TSV and JSONL readers that account for every physical line of the file.

A row is yielded, or reported with file:line and a reason; nothing is merged or dropped
silently. A stray quote makes the csv module read on to the next quote, merging the rows in
between into one field; so a row spanning lines is checked against what the file allows
and, when it is wrong, its first line is reported and the swallowed lines are read again.
"""
from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, Report

# Bytes that are not UTF-8 decode to lone surrogates, so a bad line can be named, not fatal.
_UNDECODABLE = re.compile("[\udc80-\udcff]")
_SHOW = 60  # characters of a value quoted in a reason


def open_text(path: Path) -> io.TextIOBase:
    """Text of a file or .gz file; invalid UTF-8 is kept as surrogates for `undecodable`."""
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")


def undecodable(text: str) -> str | None:
    """A reason if `text` holds bytes that were not UTF-8, else None."""
    m = _UNDECODABLE.search(text)
    return f"not valid UTF-8 (byte 0x{ord(m.group()) - 0xDC00:02x})" if m else None


def read_lines(path: Path) -> list[str]:
    """Physical lines, split as the csv module counts them (\\n, \\r\\n or \\r)."""
    try:
        with open_text(path) as fh:
            return list(fh)
    except (OSError, EOFError) as e:  # a truncated or corrupt .gz
        raise DataError(f"{path}: cannot be read: {e}") from None


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= _SHOW else text[: _SHOW - 3] + "..."


def _where(first: int, last: int) -> str:
    return f"line {first}" if first == last else f"lines {first}-{last}"


def field_count_error(fields: list[str], header: list[str]) -> str | None:
    """A reason if the row does not have one value per column, else None."""
    n, k = len(header), len(fields)
    if k > n:
        return f"{k} fields, expected {n}: extra value(s) {_short(fields[n:])}"
    if k < n:
        return f"{k} fields, expected {n}: missing {', '.join(header[k:])}"
    return None


def bare_quote(line: str, delimiter: str) -> bool:
    """Whether a quote sits inside an unquoted field, as where a multi-line value closes."""
    i, n = 0, len(line.rstrip("\r\n"))
    while i < n:
        if line[i] == '"':  # a quoted field: skip to its closing quote ("" is an escaped one)
            i += 1
            while i < n and not (line[i] == '"' and line[i + 1 : i + 2] != '"'):
                i += 2 if line[i] == '"' else 1
            i += 1
        while i < n and line[i] != delimiter:
            if line[i] == '"':
                return True
            i += 1
        i += 1
    return False


def reads_as_row(line: str, header: list[str], rules: CsvRules) -> bool:
    """Whether one physical line parses on its own into a complete row (that the guard accepts)."""
    if bare_quote(line, rules.delimiter):
        return False
    try:
        rows = list(csv.reader([line], delimiter=rules.delimiter, strict=True))
    except csv.Error:
        return False
    if len(rows) != 1 or len(rows[0]) != len(header):
        return False
    return rules.guard is True or bool(rules.guard(dict(zip(header, rows[0]))))


@dataclass
class CsvRules:
    """What a file's rows may look like.

    multiline: columns whose quoted values may hold line breaks (empty: rows are one line).
    guard: when a multi-line value swallows a line that reads as a complete row on its own,
    take it for rows merged by a stray quote. Where free text often has such lines
    (articles, dialogues), pass a check of the row instead (say, "its label is a label"):
    only a swallowed line that passes it counts. False: no guard.
    """

    delimiter: str = ","
    multiline: tuple[str, ...] = ()
    guard: bool | Callable[[dict], bool] = True


def merge_error(fields, header, lines, first, last, rules: CsvRules) -> str | None:
    """A reason if a row over lines first..last (1-based) is rows merged by a stray quote."""
    if first == last:
        return None
    span = f"quoted field opened on line {first} runs on to line {last}"
    again = f"{_where(first + 1, last)} read again separately"
    if not rules.multiline:
        return f"{span}, but rows are one line each in this file (stray quote?); {again}"
    broken = [c for c, v in zip(header, fields) if ("\n" in v or "\r" in v) and c not in rules.multiline]
    if broken:
        allowed = ", ".join(rules.multiline)
        return f"{span}: a line break in {broken[0]}, only {allowed} may span lines (stray quote?); {again}"
    if rules.guard is not False:
        for k in range(first + 1, last + 1):
            if reads_as_row(lines[k - 1], header, rules):
                return f"{span}, swallowing line {k}, a complete row on its own (stray quote?); {again}"
    return None


def _parse_from(lines: list[str], start: int, delimiter: str) -> Iterator[tuple[int, int, list[str] | csv.Error]]:
    """(first line, last line, fields or the parse error) from 0-based line index `start`."""
    reader = csv.reader(itertools.islice(lines, start, None), delimiter=delimiter)
    done = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield start + done + 1, start + reader.line_num, e
            return
        yield start + done + 1, start + reader.line_num, fields
        done = reader.line_num


def _problem(report: Report | None, path: Path, line: int, reason: str) -> None:
    if report is None:
        raise DataError(f"{path}:{line}: {reason}")
    report.skip(path, line, reason)


def iter_csv(
    path: Path,
    report: Report | None = None,
    delimiter: str = ",",
    multiline: tuple[str, ...] = (),
    guard: bool | Callable[[dict], bool] = True,
) -> Iterator[tuple[int, dict]]:
    """Yield (line number where the row starts, row) from a csv or csv.gz file.

    Every row has one str per column. Rows with too many or too few fields, undecodable
    bytes, unparsable quoting, or line breaks the file's rules do not allow go to `report`
    with file:line (without a report they raise DataError). Blank lines are not rows.
    """
    rules = CsvRules(delimiter, tuple(multiline), guard)
    lines = read_lines(path)
    if not lines:
        return
    header = next(csv.reader(lines[:1], delimiter=delimiter), [])
    if not header or any("\n" in h or "\r" in h for h in header):
        raise DataError(f"{path}:1: the header is not one line of column names")
    start = 1
    while start < len(lines):
        restart = None
        for first, last, fields in _parse_from(lines, start, delimiter):
            if isinstance(fields, csv.Error):
                _problem(report, path, first, f"cannot be parsed: {fields}; line {first + 1} on read again")
                restart = first
                break
            if not fields:  # a blank line
                continue
            merged = merge_error(fields, header, lines, first, last, rules)
            if merged:
                _problem(report, path, first, merged)
                restart = first  # 0-based index of line first + 1
                break
            reason = undecodable("".join(fields)) or field_count_error(fields, header)
            if reason:
                _problem(report, path, first, reason if first == last else f"{_where(first, last)}: {reason}")
                continue
            yield first, dict(zip(header, fields))
        if restart is None:
            return
        start = restart


def iter_jsonl(path: Path, report: Report) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object); undecodable, invalid or non-object lines go to the report."""
    try:
        with open_text(path) as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                bad = undecodable(line)
                if bad:
                    report.skip(path, n, bad)
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    report.skip(path, n, f"invalid JSON: {e.msg} at column {e.colno}")
                    continue
                if not isinstance(obj, dict):
                    report.skip(path, n, f"expected a JSON object, got {type(obj).__name__}")
                    continue
                yield n, obj
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot be read: {e}") from None
