"""The files of `biascard predict`: JSONL, CSV or Parquet in; JSONL or Parquet out.

A reader yields a Row for every input row: its 1-based number (what --shard slices by, bad
rows included), where it is (`FILE:LINE`, or `FILE: row N` for Parquet), its value (a dict of
article fields, the InputError that makes it bad, None for a blank line, or OTHER_SHARD
unparsed) and the id it gets when it has none (`line:N`, or `row:N` for Parquet).

A Parquet output is written as a JSONL sidecar (OUTPUT.partial.jsonl, resumable like any
JSONL output) and converted at the end; the conversion is atomic and records the sidecar's
sha256, so a sidecar left by a kill after the rename is known to be in the Parquet already.
Heavy imports (pyarrow, the input checks) stay inside the functions: the CLI imports this.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from biascard.model.model_dir import sha256_file

INPUT_FORMATS = ("jsonl", "csv", "parquet")
OUTPUT_FORMATS = ("jsonl", "parquet")
EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}
COLUMNS = ("text", "title", "source", "id")  # what a CSV or Parquet row may carry; others are ignored
OTHER_SHARD = object()
SIDECAR_KEY = b"biascard.partial_sha256"
UNDECODED = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of a byte that is not UTF-8
PARQUET_ROWS = 1024  # rows per batch read or written: a big file is never held whole


class Row(NamedTuple):
    number: int
    where: str
    value: Any
    fallback_id: str

    @property
    def at(self) -> str:
        """`line 5` or `row 5`, for "stopped at ..."."""
        return self.fallback_id.replace(":", " ", 1)


def input_format(path: str, flag: str | None) -> str:
    if flag:
        return flag
    return "jsonl" if path == "-" else EXTENSIONS.get(Path(path).suffix.lower(), "jsonl")


def output_format(path: str, flag: str | None) -> str:
    return flag or ("parquet" if Path(path).suffix.lower() == ".parquet" else "jsonl")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise ValueError(f"--shard wants i/n with 0 <= i < n, got {text!r}")
    return i, n


def shard_share(total: int | None, shard: tuple[int, int] | None) -> int | None:
    """Rows 1..total that fall to the shard: row k is shard (k - 1) % n's."""
    if total is None or shard is None:
        return total
    return len(range(shard[0], total, shard[1]))


# ---------------------------------------------------------------- input


@contextlib.contextmanager
def open_input(path: str, fmt: str):
    """What the format's reader reads; stdin is read but never closed."""
    stdin = getattr(sys.stdin, "buffer", None)
    if fmt == "parquet":
        import pyarrow as pa

        # Parquet needs random access: stdin has to be read whole
        yield path if path != "-" else pa.BufferReader((stdin or sys.stdin).read())
    elif fmt == "csv":
        if path != "-":
            with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
                yield f
        elif stdin is None:
            yield sys.stdin
        else:
            wrapper = io.TextIOWrapper(stdin, encoding="utf-8-sig", errors="surrogateescape", newline="")
            try:
                yield wrapper
            finally:
                wrapper.detach()
    elif path != "-":
        with open(path, "rb") as f:
            yield f
    else:
        yield stdin or sys.stdin


def rows(fmt: str, src, name: str, want: Callable[[int], bool]) -> Iterator[Row]:
    return {"jsonl": read_jsonl, "csv": read_csv, "parquet": read_parquet}[fmt](src, name, want)


def read_jsonl(stream, name: str, want: Callable[[int], bool]) -> Iterator[Row]:
    for n, raw in enumerate(stream, 1):
        if not want(n):
            yield Row(n, f"{name}:{n}", OTHER_SHARD, f"line:{n}")
            continue
        raw = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogateescape")
        yield Row(n, f"{name}:{n}", _jsonl_value(raw), f"line:{n}")


def _jsonl_value(raw: bytes):
    from .inputs import InputError, parse_json

    if not raw.strip():
        return None  # blank lines carry nothing; they are not records
    try:
        obj = parse_json(raw)
    except InputError as e:
        return e
    if not isinstance(obj, dict):
        return InputError(f"expected a JSON object with `text`, got {type(obj).__name__}")
    return obj


def csv_records(stream) -> Iterator[tuple[int, list[str] | csv.Error]]:
    """(the file line a record starts on, its fields or the csv.Error it raised); blank
    lines are no records. The first one is the header."""
    # csv's default field limit (131072 characters) is below what a long article needs;
    # an article over max_chars is refused by the input checks, with a better message
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    reader = csv.reader(stream, strict=True)  # a stray quote is a bad record, not a silently odd one
    line = 0
    while True:
        try:
            fields: list[str] | csv.Error = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            if reader.line_num == line:
                return  # no progress: nothing more can be read
            fields = e
        start, line = line + 1, reader.line_num
        if fields != []:
            yield start, fields


def read_csv(stream, name: str, want: Callable[[int], bool]) -> Iterator[Row]:
    """The header is checked now, the records are read as the result is iterated."""
    records = csv_records(stream)
    _, header = next(records, (1, None))
    if header is None:
        return iter(())  # an empty file: no records, as an empty JSONL file
    if isinstance(header, csv.Error) or "text" not in [h.strip() for h in header]:
        raise ValueError(f"{name}:1: the CSV header names no `text` column (got {header!s:.200})")
    columns = {}
    for i, h in enumerate(header):
        if h.strip() in COLUMNS:
            columns.setdefault(h.strip(), i)  # a repeated column: the first one counts
    return _csv_rows(records, columns, name, want)


def _csv_rows(records, columns: dict[str, int], name: str, want: Callable[[int], bool]) -> Iterator[Row]:
    for n, (start, fields) in enumerate(records, 1):
        value = OTHER_SHARD if not want(n) else _csv_value(fields, columns)
        yield Row(n, f"{name}:{start}", value, f"line:{start}")


def _csv_value(fields, columns: dict[str, int]):
    from .inputs import InputError

    if isinstance(fields, csv.Error):
        return InputError(f"malformed CSV: {fields}")
    record = {}
    for key, i in columns.items():
        value = fields[i] if i < len(fields) else ""
        # the file is read with surrogateescape: a surrogate here is a byte that is not UTF-8
        bad = UNDECODED.search(value)
        if bad:
            return InputError(f"{key} is not valid UTF-8 (byte 0x{ord(bad.group()) - 0xDC00:02X} "
                              f"at character {bad.start()})", key)
        if value or key == "text":  # an empty id, title or source is no value: CSV has no null
            record[key] = value
    return record


def read_parquet(source, name: str, want: Callable[[int], bool]) -> Iterator[Row]:
    """The schema is checked now, the rows are read as the result is iterated."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(source)
    except (pa.ArrowException, OSError) as e:
        raise ValueError(f"{name}: not a readable Parquet file ({e})") from None
    names = pf.schema_arrow.names
    if "text" not in names:
        raise ValueError(f"{name}: the Parquet file has no `text` column (columns: {', '.join(names)[:200]})")
    return _parquet_rows(pf, [c for c in COLUMNS if c in names], name, want)


def _parquet_rows(pf, columns: list[str], name: str, want: Callable[[int], bool]) -> Iterator[Row]:
    n = 0
    for batch in pf.iter_batches(batch_size=PARQUET_ROWS, columns=columns):
        for record in batch.to_pylist():
            n += 1
            value = OTHER_SHARD if not want(n) else _parquet_value(record)
            yield Row(n, f"{name}: row {n}", value, f"row:{n}")


def _parquet_value(record: dict):
    from .inputs import InputError

    if record.get("text") is None:
        return InputError("text is null", "text")
    # a null or empty id, title or source is no value
    return {k: v for k, v in record.items() if v is not None and (v != "" or k == "text")}


def count_lines(path: str) -> int | None:
    """Lines of the input, for the bar's total (None for stdin: it cannot be read twice)."""
    if path == "-":
        return None
    n, last = 0, b"\n"
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


def count_rows(path: str, fmt: str) -> int | None:
    """Rows of the input as its reader numbers them (None for stdin)."""
    if path == "-":
        return None
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if fmt == "csv":
        with open_input(path, fmt) as f:
            return max(0, sum(1 for _ in csv_records(f)) - 1)  # less the header
    return count_lines(path)


# ---------------------------------------------------------------- output


def card_id(raw: bytes) -> str | None:
    """The id of a whole card line, or None for a partial or foreign one."""
    if not raw.endswith(b"\n"):
        return None
    try:
        card = json.loads(raw)
    except ValueError:
        return None
    return card.get("id") if isinstance(card, dict) and isinstance(card.get("id"), str) else None


def read_done(path: Path) -> Counter:
    """The ids already in `path` (counted: an input may repeat an id). A bad last line is the
    one a kill left half written: it is cut off and redone; a bad line before it is an error."""
    done: Counter = Counter()
    offset, bad = 0, None
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if bad is not None:
                raise ValueError(f"{path}:{bad[0]}: not a whole card line with an id; cannot resume "
                                 "(fix or remove that line, or pass --overwrite)")
            line_id = card_id(raw)
            if line_id is None:
                bad = (n, offset, len(raw))
                continue
            done[line_id] += 1
            offset += len(raw)
    if bad is not None:
        print(f"biascard: {path}:{bad[0]}: dropped a partial last line ({bad[2]} bytes) of an "
              "interrupted run; redoing it", file=sys.stderr)
        with open(path, "r+b") as f:
            f.truncate(bad[1])
    return done


def write_line(out, data: bytes) -> None:
    view = memoryview(data)
    while view:  # a raw write may be short; loop rather than lose the rest
        view = view[out.write(view):]


def sidecar(output: Path) -> Path:
    return output.with_name(output.name + ".partial.jsonl")


def _card_file(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise ValueError(f"{path}: not a readable Parquet file ({e}); pass --overwrite to start over") from None
    if not {"id", "card"} <= set(pf.schema_arrow.names):
        raise ValueError(f"{path}: not a card file (it wants columns id and card); pass --overwrite to start over")
    return pf


def parquet_ids(path: Path) -> Counter:
    done: Counter = Counter()
    for batch in _card_file(path).iter_batches(batch_size=PARQUET_ROWS, columns=["id"]):
        done.update(batch.column(0).to_pylist())
    return done


def already_merged(output: Path, side: Path) -> bool:
    """Whether `side` is the very sidecar `output` was made of (a kill between the rename
    and the sidecar's removal leaves both)."""
    meta = _card_file(output).schema_arrow.metadata or {}
    return meta.get(SIDECAR_KEY) == sha256_file(side).encode()


def finish_parquet(output: Path, side: Path) -> None:
    """OUTPUT's cards, then the sidecar's, written to a temp file that replaces OUTPUT."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if output.is_file() and side.stat().st_size == 0:
        side.unlink()  # nothing new: OUTPUT stays as it is
        return
    schema = pa.schema([("id", pa.string()), ("card", pa.string())], metadata={SIDECAR_KEY: sha256_file(side).encode()})
    tmp = output.with_name(output.name + ".tmp")
    with open(tmp, "wb") as f:
        with pq.ParquetWriter(f, schema) as writer:
            if output.is_file():
                for batch in _card_file(output).iter_batches(batch_size=PARQUET_ROWS, columns=["id", "card"]):
                    writer.write_batch(pa.record_batch([batch.column(0).cast(pa.string()),
                                                        batch.column(1).cast(pa.string())], schema=schema))
            for ids, cards in _sidecar_batches(side):
                writer.write_batch(pa.record_batch([pa.array(ids, pa.string()), pa.array(cards, pa.string())],
                                                   schema=schema))
        f.flush()
        os.fsync(f.fileno())  # the bytes are on disk before the rename makes them OUTPUT
    os.replace(tmp, output)
    side.unlink()


def _sidecar_batches(side: Path) -> Iterator[tuple[list[str], list[str]]]:
    ids: list[str] = []
    cards: list[str] = []
    with open(side, "rb") as f:
        for n, raw in enumerate(f, 1):
            line_id = card_id(raw)
            if line_id is None:
                raise ValueError(f"{side}:{n}: not a whole card line with an id; {side} is kept")
            ids.append(line_id)
            cards.append(raw[:-1].decode("utf-8"))
            if len(ids) >= PARQUET_ROWS:
                yield ids, cards
                ids, cards = [], []
    if ids:
        yield ids, cards
