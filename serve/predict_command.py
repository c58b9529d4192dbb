"""`biascard predict`: a card for every line of a JSONL file, resumable after a kill.

Output: one card per good input line, in input order, each carrying the id that --resume
matches it by: the line's `id`, else `line:N` (N its line number). Bad lines are reported on
stderr with their number and never written, so --resume reports and skips them again; a
card whose composition failed is retried. Each card goes out in one unbuffered write() of
the whole line, so a killed run leaves at most one partial last line, which --resume cuts
off (saying so) and redoes.
"""
from __future__ import annotations

import contextlib
import json
import sys
import time
from collections import Counter
from pathlib import Path

# Article fields that reach the card, the tokenizer or the output file
ARTICLE_FIELDS = ("text", "title", "source", "id", "format")


def add_arguments(p) -> None:
    p.description = (
        "A card for every line of a JSONL file. Each line: {\"id\"?, \"text\", \"title\"?, \"source\"?}; "
        "each output line is the card, carrying the input's id (`line:N` when it has none). "
        "A bad line is reported with its number on stderr and not written; the exit code is 1 if any was. "
        "An existing non-empty output is refused unless --resume (keep its cards, do the rest: ids "
        "already there are skipped, a partial last line from a killed run is redone, bad lines are "
        "reported again) or --overwrite (start over)."
    )
    p.add_argument("--input", required=True, help="input JSONL (- for stdin)")
    p.add_argument("--output", required=True, help="output JSONL of cards")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="append to OUTPUT, skipping the ids already in it")
    again.add_argument("--overwrite", action="store_true", help="truncate OUTPUT and redo every line")
    p.add_argument("--batch-size", type=int, default=8, help="articles per composed inference (default 8)")
    p.add_argument("--strict", action="store_true", help="stop at the first bad line (exit 2)")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
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


def _card_id(raw: bytes) -> str | None:
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
            card_id = _card_id(raw)
            if card_id is None:
                bad = (n, offset, len(raw))
                continue
            done[card_id] += 1
            offset += len(raw)
    if bad is not None:
        print(f"biascard: {path}:{bad[0]}: dropped a partial last line ({bad[2]} bytes) of an "
              "interrupted run; redoing it", file=sys.stderr)
        with open(path, "r+b") as f:
            f.truncate(bad[1])
    return done


def prepare_output(args) -> tuple[Counter, str]:
    """Refuse or read the existing output before any model is loaded: (ids done, open mode)."""
    path = Path(args.output)
    if args.input != "-" and path.exists() and Path(args.input).exists() and path.samefile(args.input):
        raise ValueError(f"{path} is the input too; write the cards to another file")
    exists = path.is_file() and path.stat().st_size > 0
    if exists and not (args.resume or args.overwrite):
        raise ValueError(f"{path} exists and is not empty: pass --resume to continue it "
                         "or --overwrite to start over")
    if args.resume and exists:
        return read_done(path), "ab"
    path.parent.mkdir(parents=True, exist_ok=True)
    return Counter(), "wb"  # --overwrite truncates only once the model has loaded


def write_line(out, data: bytes) -> None:
    view = memoryview(data)
    while view:  # a raw write may be short; loop rather than lose the rest
        view = view[out.write(view):]


class Predict:
    """One pass over the input: parse, skip what is done, batch, compose, write."""

    def __init__(self, args, service, out, done: Counter, max_chars: int):
        self.args, self.service, self.out, self.done = args, service, out, done
        self.max_chars = max_chars
        self.name = "stdin" if args.input == "-" else args.input
        self.pending: list = []
        self.written = self.bad = self.kept = 0

    def report(self, line_no: int, message: str) -> None:
        self.bad += 1
        print(f"{self.name}:{line_no}: {message}", file=sys.stderr)

    def article(self, line_no: int, raw: bytes):
        """The line's article, or None when it is bad (reported) or already in the output."""
        from .inputs import InputError, article_from_obj, parse_json

        try:
            obj = parse_json(raw)
            if not isinstance(obj, dict):
                raise InputError(f"expected a JSON object with `text`, got {type(obj).__name__}")
            article = article_from_obj(obj, self.max_chars)
            check_encodable(article)
        except InputError as e:
            self.report(line_no, e.message + (f" (field {e.field})" if e.field else ""))
            return None
        if article.id is None:
            article.id = f"line:{line_no}"
        if self.done[article.id] > 0:
            self.done[article.id] -= 1
            self.kept += 1
            return None
        return article

    def flush(self) -> None:
        cards = self.service.compose([a for _, a in self.pending])
        for (line_no, _), card in zip(self.pending, cards):
            if isinstance(card, BaseException):
                self.report(line_no, f"card composition failed: {card}")
                continue
            try:
                data = (json.dumps(card, ensure_ascii=False) + "\n").encode("utf-8")
            except UnicodeEncodeError as e:
                self.report(line_no, f"the card is not valid UTF-8 ({e.reason}); not written")
                continue
            write_line(self.out, data)
            self.written += 1
        self.pending.clear()

    def feed(self, line_no: int, raw) -> bool:
        """Take one input line; False when --strict stops the run."""
        raw = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogateescape")
        if not raw.strip():
            return True  # blank lines carry nothing; they are not records
        bad = self.bad
        article = self.article(line_no, raw)
        if self.bad > bad and self.args.strict:
            self.flush()
            return False
        if article is not None:
            self.pending.append((line_no, article))
            if len(self.pending) >= self.args.batch_size:
                self.flush()
        return True


def _bar(total: int | None):
    from tqdm import tqdm

    return tqdm(total=total, desc="cards", unit="line", file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5 if sys.stderr.isatty() else 30.0)


def _open_input(path: str):
    if path != "-":
        return open(path, "rb")
    return contextlib.nullcontext(getattr(sys.stdin, "buffer", sys.stdin))  # stdin stays open


def run(args, open_service) -> int:
    """`open_service(args)` → a ModelService context (serve.cli picks the model)."""
    from biascard.compose.settings import serve_config

    if args.batch_size < 1:
        raise ValueError("--batch-size must be >= 1")
    done, mode = prepare_output(args)
    kept_before = sum(done.values())
    show = not args.no_progress and (args.progress or sys.stderr.isatty())
    total = count_lines(args.input) if show else None
    stopped_at = None
    with _open_input(args.input) as src, open_service(args) as service, open(args.output, mode, buffering=0) as out:
        job = Predict(args, service, out, done, serve_config()["max_chars"])
        bar = _bar(total) if show else None
        start = time.perf_counter()
        try:
            for line_no, raw in enumerate(src, 1):
                if bar is not None:
                    bar.update(1)
                if not job.feed(line_no, raw):
                    stopped_at = line_no
                    break
            if job.pending:
                job.flush()
        finally:
            if bar is not None:
                bar.close()
        seconds = time.perf_counter() - start
    return _summary(args, job, seconds, kept_before, stopped_at)


def _summary(args, job: Predict, seconds: float, kept_before: int, stopped_at: int | None) -> int:
    rate = job.written / seconds if seconds > 0 else 0.0
    kept = f"; kept {job.kept} cards already there" if args.resume else ""
    print(f"wrote {job.written} cards to {args.output} in {seconds:.1f}s ({rate:.1f} cards/s){kept}; "
          f"skipped {job.bad} bad line(s)", file=sys.stderr)
    left = sum(job.done.values())
    if left:  # cards of the earlier run that this input does not have: said, not dropped
        some = ", ".join(sorted(k for k, v in job.done.items() if v)[:5])
        print(f"biascard: warning: {left} of the {kept_before} cards already in {args.output} match no "
              f"line of {args.input} (ids {some}...); they were kept", file=sys.stderr)
    if stopped_at is not None:
        print(f"stopped at line {stopped_at} (--strict); wrote {job.written} cards to {args.output}", file=sys.stderr)
        return 2
    return 1 if job.bad else 0
