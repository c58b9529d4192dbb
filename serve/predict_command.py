"""`biascard predict`: a card for every row of a JSONL, CSV or Parquet file, resumable after a kill.

Output: one card per good input row, in input order, each carrying the id that --resume
matches it by: the row's `id`, else `line:N` (N its line number; for CSV the line its record
starts on) or `row:N` for Parquet (N from 1). Bad rows are reported on stderr with where they
are and never written, so --resume reports and skips them again; a card whose composition
failed is retried. Each card goes out in one unbuffered write() of the whole line, so a killed
run leaves at most one partial last line, which --resume cuts off (saying so) and redoes. A
Parquet output is that same JSONL written to OUTPUT.partial.jsonl, converted at the end
(predict_io). `--shard i/n` takes the input rows k with (k - 1) % n == i.
`--engine ray` parses the rows here as well (the same reports) and composes on Ray actors
(predict_ray); the cards are written in input order as here.
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

from .predict_io import (
    INPUT_FORMATS,
    OTHER_SHARD,
    OUTPUT_FORMATS,
    already_merged,
    count_rows,
    finish_parquet,
    input_format,
    open_input,
    output_format,
    parquet_ids,
    parse_shard,
    read_done,
    rows,
    shard_share,
    sidecar,
    write_line,
)

# Article fields that reach the card, the tokenizer or the output file
ARTICLE_FIELDS = ("text", "title", "source", "id", "format")
PRECISIONS = ("fp32", "bf16", "int8", "auto")
ENGINES = ("local", "ray")


def add_arguments(p) -> None:
    p.description = (
        "A card for every row of a JSONL, CSV or Parquet file. A row: {\"id\"?, \"text\", \"title\"?, \"source\"?} "
        "(CSV: a header row naming these columns; others are ignored); each card carries the row's id "
        "(`line:N`, or `row:N` for Parquet, when it has none). A bad row is reported on stderr with its "
        "file and line (Parquet: row) and not written; the exit code is 1 if any was. An existing non-empty "
        "output is refused unless --resume (keep its cards, do the rest: ids already there are skipped, a "
        "partial last line from a killed run is redone, bad rows are reported again) or --overwrite (start over). "
        "A .parquet output (columns id, card: the card's JSON) is written as OUTPUT.partial.jsonl first "
        "and converted when the run ends, so a killed run resumes from the sidecar."
    )
    p.add_argument("--input", required=True, help="input .jsonl/.ndjson/.json lines, .csv or .parquet (- for stdin)")
    p.add_argument("--output", required=True, help="output: JSONL of cards, or .parquet")
    p.add_argument("--input-format", choices=INPUT_FORMATS,
                   help="the input's format (default: by its extension; jsonl for stdin and unknown ones)")
    p.add_argument("--output-format", choices=OUTPUT_FORMATS, help="the output's format (default: by its extension)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="append to OUTPUT, skipping the ids already in it")
    again.add_argument("--overwrite", action="store_true", help="truncate OUTPUT and redo every row")
    p.add_argument("--shard", metavar="I/N", help="only the rows k with (k - 1) %% N == I (k from 1, bad rows counted)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="composer runtime.precision for this run (as --set runtime.precision=..., and over it)")
    p.add_argument("--batch-size", type=int, default=8, help="articles per composed inference (default 8)")
    p.add_argument("--strict", action="store_true", help="stop at the first bad row (exit 2)")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--engine", choices=ENGINES, default="local",
                   help="local: compose in this process (default); ray: on Ray Data actors (pip install 'biascard[ray]')")
    p.add_argument("--actors", type=int, default=None, help="--engine ray: actors, each with its own model (default 1)")
    p.add_argument("--address", help="--engine ray: the Ray cluster to join (default: start a local one)")
    p.add_argument("--cpus", type=int, default=None,
                   help="--engine ray: CPUs shared by the actors (default: those this process may use, "
                        "or the cluster's with --address)")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", action="store_true",
                     help="show the progress bar even when stderr is not a terminal (updated every 30 s there)")
    bar.add_argument("--no-progress", action="store_true", help="no progress bar (default when stderr is not a terminal)")


def check_encodable(article) -> None:
    """A lone surrogate (a JSON "\\ud800" escape) is not text: the tokenizer and the UTF-8
    output both fail on it, so it is refused here, naming the field."""
    from .inputs import InputError

    for field in ARTICLE_FIELDS:
        value = getattr(article, field, None)
        if not isinstance(value, str):
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InputError(f"{field} contains a lone surrogate (U+{ord(value[e.start]):04X} at character "
                             f"{e.start}), which is not valid Unicode", field) from None


def card_line(card) -> tuple[bytes | None, str | None]:
    """A composed card (or its exception) as (its output line, None) or (None, why it is not written)."""
    import json

    if isinstance(card, BaseException):
        return None, f"card composition failed: {card}"
    try:
        return (json.dumps(card, ensure_ascii=False) + "\n").encode("utf-8"), None
    except UnicodeEncodeError as e:
        return None, f"the card is not valid UTF-8 ({e.reason}); not written"


def _check_engine(args) -> None:
    engine = getattr(args, "engine", "local")
    given = [f for f in ("actors", "address", "cpus") if getattr(args, f, None) is not None]
    if engine != "ray" and given:
        raise ValueError(f"--{given[0]} needs --engine ray")
    small = [f for f in ("actors", "cpus") if getattr(args, f, None) is not None and getattr(args, f) < 1]
    if small:
        raise ValueError(f"--{small[0]} must be >= 1")


def _refuse_existing(args, paths: list[Path]) -> bool:
    """Whether one of `paths` holds cards; refused unless --resume or --overwrite."""
    found = [p for p in paths if p.is_file() and p.stat().st_size > 0]
    if found and not (args.resume or args.overwrite):
        raise ValueError(f"{found[0]} exists and is not empty: pass --resume to continue it "
                         "or --overwrite to start over")
    return bool(found)


def prepare_output(args, fmt: str = "jsonl") -> tuple[Counter, str]:
    """Refuse or read the existing output before any model is loaded: (ids done, open mode)."""
    path = Path(args.output)
    if args.input != "-" and path.exists() and Path(args.input).exists() and path.samefile(args.input):
        raise ValueError(f"{path} is the input too; write the cards to another file")
    if fmt == "parquet":
        return _prepare_parquet(args, path)
    if _refuse_existing(args, [path]) and args.resume:
        return read_done(path), "ab"
    path.parent.mkdir(parents=True, exist_ok=True)
    return Counter(), "wb"  # --overwrite truncates only once the model has loaded


def _prepare_parquet(args, path: Path) -> tuple[Counter, str]:
    side = sidecar(path)
    if not (_refuse_existing(args, [path, side]) and args.resume):
        path.parent.mkdir(parents=True, exist_ok=True)
        return Counter(), "wb"  # the Parquet file goes, and the sidecar is truncated, once the model has loaded
    has_cards = path.is_file() and path.stat().st_size > 0
    if has_cards and side.is_file() and already_merged(path, side):
        print(f"biascard: {side} is already in {path} (a run killed as it finished); removing it", file=sys.stderr)
        side.unlink()
    done = parquet_ids(path) if has_cards else Counter()
    if side.is_file() and side.stat().st_size > 0:
        done.update(read_done(side))
    return done, "ab"


class Predict:
    """One pass over the input: parse, skip what is done, batch, compose, write. With `ship`,
    each batch of (where, article) goes to ship(batch) instead of being composed here."""

    def __init__(self, args, service, out, done: Counter, max_chars: int, ship=None):
        self.args, self.service, self.out, self.done = args, service, out, done
        self.max_chars = max_chars
        self.ship = ship
        self.pending: list = []
        self.written = self.bad = self.kept = self.other = 0

    def report(self, where: str, message: str) -> None:
        self.bad += 1
        print(f"{where}: {message}", file=sys.stderr)

    def article(self, row):
        """The row's article, or None when it is bad (reported) or already in the output."""
        from .inputs import InputError, article_from_obj

        try:
            if isinstance(row.value, InputError):
                raise row.value
            article = article_from_obj(row.value, self.max_chars)
            check_encodable(article)
        except InputError as e:
            self.report(row.where, e.message + (f" (field {e.field})" if e.field else ""))
            return None
        if article.id is None:
            article.id = row.fallback_id
        if self.done[article.id] > 0:
            self.done[article.id] -= 1
            self.kept += 1
            return None
        return article

    def write(self, where: str, line: bytes | None, error: str | None) -> None:
        """One card_line() result: the card written, or the reason reported."""
        if error is not None:
            self.report(where, error)
            return
        write_line(self.out, line)
        self.written += 1

    def flush(self) -> None:
        if self.ship is not None:
            self.ship(list(self.pending))
        else:
            cards = self.service.compose([a for _, a in self.pending])
            for (where, _), card in zip(self.pending, cards):
                self.write(where, *card_line(card))
        self.pending.clear()

    def feed(self, row) -> bool:
        """Take one input row of this shard; False when --strict stops the run."""
        if row.value is None:
            return True  # a blank line carries nothing; it is no record
        bad = self.bad
        article = self.article(row)
        if self.bad > bad and self.args.strict:
            self.flush()
            return False
        if article is not None:
            self.pending.append((row.where, article))
            if len(self.pending) >= self.args.batch_size:
                self.flush()
        return True

    def run(self, source, bar) -> str | None:
        """Every row of `source`; where --strict stopped (`line N`, `row N`) or None."""
        try:
            for row in source:
                if row.value is OTHER_SHARD:
                    self.other += 1
                    continue
                if bar is not None:
                    bar.update(1)
                if not self.feed(row):
                    return row.at
            if self.pending:
                self.flush()
        finally:
            if bar is not None:
                bar.close()
        return None


def _bar(total: int | None):
    from tqdm import tqdm

    return tqdm(total=total, desc="cards", unit="article", file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5 if sys.stderr.isatty() else 30.0)


def run(args, open_service) -> int:
    """`open_service(args)` → a ModelService context (serve.cli picks the model)."""
    from biascard.compose.settings import serve_config

    if args.batch_size < 1:
        raise ValueError("--batch-size must be >= 1")
    _check_engine(args)
    shard = parse_shard(getattr(args, "shard", None))
    formats = (input_format(args.input, getattr(args, "input_format", None)),
               output_format(args.output, getattr(args, "output_format", None)))
    if getattr(args, "precision", None):  # the last --set layer wins: so does --precision
        args.set = [*getattr(args, "set", []), f"runtime.precision={args.precision}"]
    done, mode = prepare_output(args, formats[1])
    kept_before = sum(done.values())
    show = not args.no_progress and (args.progress or sys.stderr.isatty())
    output = Path(args.output)
    target = sidecar(output) if formats[1] == "parquet" else output

    def open_output():
        if formats[1] == "parquet" and mode == "wb":
            output.unlink(missing_ok=True)  # --overwrite: both files go
        return open(target, mode, buffering=0)

    want = (lambda k: True) if shard is None else (lambda k: (k - 1) % shard[1] == shard[0])
    name = "stdin" if args.input == "-" else args.input
    with open_input(args.input, formats[0]) as src:
        source = rows(formats[0], src, name, want)  # a header or schema without `text` fails here
        job = Predict(args, None, None, done, serve_config()["max_chars"])
        if getattr(args, "engine", "local") == "ray":
            from .predict_ray import run_ray

            # the output opens once an actor has its model (as below once the model has loaded)
            stopped_at, seconds = run_ray(args, job, source, open_service, open_output,
                                          _bar if show else None, card_line)
        else:
            total = shard_share(count_rows(args.input, formats[0]), shard) if show else None
            with open_service(args) as job.service, open_output() as job.out:
                start = time.perf_counter()
                stopped_at = job.run(source, _bar(total) if show else None)
                seconds = time.perf_counter() - start
    if formats[1] == "parquet":
        finish_parquet(output, target)
    return _summary(args, job, seconds, kept_before, stopped_at, formats, shard)


def _summary(args, job: Predict, seconds: float, kept_before: int, stopped_at: str | None,
             formats: tuple[str, str], shard: tuple[int, int] | None) -> int:
    rate = job.written / seconds if seconds > 0 else 0.0
    kept = f"; kept {job.kept} cards already there" if args.resume else ""
    unit = "row" if formats[0] == "parquet" else "line"
    others = f"; skipped {job.other} rows of other shards (shard {shard[0]}/{shard[1]})" if shard else ""
    print(f"wrote {job.written} cards to {args.output} in {seconds:.1f}s ({rate:.1f} cards/s){kept}; "
          f"skipped {job.bad} bad {unit}(s){others}; {formats[0]} in, {formats[1]} out", file=sys.stderr)
    left = sum(job.done.values())
    if left:  # cards of the earlier run that this input does not have: said, not dropped
        some = ", ".join(sorted(k for k, v in job.done.items() if v)[:5])
        print(f"biascard: warning: {left} of the {kept_before} cards already in {args.output} match no "
              f"{unit} of {args.input} (ids {some}...); they were kept", file=sys.stderr)
    if stopped_at is not None:
        print(f"stopped at {stopped_at} (--strict); wrote {job.written} cards to {args.output}", file=sys.stderr)
        return 2
    return 1 if job.bad else 0
