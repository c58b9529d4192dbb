"""`biascard card`, `predict`, `calibrate` and `archive` (wired in biascard/cli.py).

Composer settings come from configs/serve.yaml composed by Hydra (configs/local/serve.yaml
included), through the Composer; these commands pass none of their own.

Which model: `--model DIR|ARCHIVE.mar`; without it, $BIASCARD_MODEL; without that, the most
recently written `outputs/**/model` dir (the training loop's final model) under the working
directory. The chosen model is printed on stderr; no model at all is an error.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

FORMATS = ("json", "text", "html")


def default_model(root: str | Path = "outputs") -> Path:
    env = os.environ.get("BIASCARD_MODEL")
    if env:
        return Path(env)
    candidates = [p.parent for p in Path(root).glob("**/model/model.safetensors")]
    if not candidates:
        raise ValueError(
            "no model given: pass --model DIR|ARCHIVE, set BIASCARD_MODEL, or train one "
            f"(biascard train writes {root}/.../model)"
        )
    return max(candidates, key=lambda p: (p / "model.safetensors").stat().st_mtime)


def _model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model dir or .mar (default: $BIASCARD_MODEL, else the newest outputs/**/model)")


def _service(args):
    from .service import ModelService

    path = Path(args.model) if args.model else default_model()
    if not args.model:
        print(f"biascard: using model {path}", file=sys.stderr)
    return ModelService(path, threads=getattr(args, "threads", None))


# ---------------------------------------------------------------- card


def add_card_arguments(p: argparse.ArgumentParser) -> None:
    p.description = "Write the bias card of one article (a text file, or - for stdin)."
    p.epilog = ("examples:\n  biascard card --model DIR article.txt\n  biascard card --model X.mar --format text - < article.txt\n"
                "  biascard card --format html -o card.html article.json   (newest outputs/**/model)")
    p.add_argument("file", metavar="ARTICLE",
                   help="article text file, or - for stdin; a .json file may hold {text,title,source,id}")
    _model_arg(p)
    p.add_argument("--format", choices=FORMATS, default="json", help="json (default), text (the seed layout) or html")
    p.add_argument("--title")
    p.add_argument("--source")
    p.add_argument("--id")
    p.add_argument("--output", "-o", help="write here instead of stdout")


def run_card(args) -> int:
    from biascard.compose.settings import serve_config
    from .handler import render
    from .inputs import InputError, article_from_body

    max_chars = serve_config()["max_chars"]
    if args.file == "-":
        data, where = sys.stdin.buffer.read(), "stdin"
    else:
        data, where = Path(args.file).read_bytes(), args.file
    ctype = "application/json" if str(args.file).endswith(".json") else "text/plain"
    try:
        article = article_from_body(data, ctype, max_chars)
    except InputError as e:
        print(f"biascard: error: {where}: {e.message}" + (f" (field {e.field})" if e.field else ""), file=sys.stderr)
        return 2
    for key in ("title", "source", "id"):
        if getattr(args, key):
            setattr(article, key, getattr(args, key))
    with _service(args) as service:
        (card,) = service.compose([article])
    if isinstance(card, BaseException):
        raise card
    out = render(card, args.format)
    text = json.dumps(out, indent=1, ensure_ascii=False) if args.format == "json" else out
    if args.output:
        Path(args.output).write_text(text + ("\n" if not text.endswith("\n") else ""), encoding="utf-8")
    else:
        sys.stdout.write(text + ("\n" if not text.endswith("\n") else ""))
    return 0


# ---------------------------------------------------------------- predict


def add_predict_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "A card for every line of a JSONL file. Each line: {\"id\", \"text\", \"title\"?, \"source\"?}; "
        "each output line is the card, carrying the input's id (the line number when it has none). "
        "A bad line is reported with its number on stderr and skipped; the exit code is 1 if any was."
    )
    _model_arg(p)
    p.add_argument("--input", required=True, help="input JSONL (- for stdin)")
    p.add_argument("--output", required=True, help="output JSONL of cards")
    p.add_argument("--batch-size", type=int, default=8, help="articles per composed inference (default 8)")
    p.add_argument("--strict", action="store_true", help="stop at the first bad line (exit 2)")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_predict(args) -> int:
    from tqdm import tqdm

    from biascard.compose.settings import serve_config
    from .inputs import InputError, article_from_obj, parse_json

    max_chars = serve_config()["max_chars"]
    src = sys.stdin if args.input == "-" else open(args.input, "rb")
    name = "stdin" if args.input == "-" else args.input
    if args.batch_size < 1:
        raise ValueError("--batch-size must be >= 1")
    written = bad = 0
    with _service(args) as service, open(args.output, "w", encoding="utf-8") as out:
        pending: list[tuple[int, object]] = []

        def flush():
            nonlocal written, bad
            cards = service.compose([a for _, a in pending])
            for (line_no, _), card in zip(pending, cards):
                if isinstance(card, BaseException):
                    bad += 1
                    print(f"{name}:{line_no}: card composition failed: {card}", file=sys.stderr)
                    continue
                out.write(json.dumps(card, ensure_ascii=False) + "\n")
                written += 1
            pending.clear()

        bar = tqdm(desc="cards", unit="line", disable=args.no_progress, file=sys.stderr)
        try:
            for line_no, raw in enumerate(src, 1):
                bar.update(1)
                raw_bytes = raw if isinstance(raw, bytes) else raw.encode("utf-8")
                if not raw_bytes.strip():
                    continue  # blank lines carry nothing; they are not records
                try:
                    obj = parse_json(raw_bytes)
                    if not isinstance(obj, dict):
                        raise InputError(f"expected a JSON object with `text`, got {type(obj).__name__}")
                    article = article_from_obj(obj, max_chars)
                except InputError as e:
                    bad += 1
                    msg = f"{name}:{line_no}: {e.message}" + (f" (field {e.field})" if e.field else "")
                    print(msg, file=sys.stderr)
                    if args.strict:
                        flush()
                        print(f"stopped at line {line_no} (--strict); wrote {written} cards to {args.output}", file=sys.stderr)
                        return 2
                    continue
                if article.id is None:
                    article.id = str(line_no)
                pending.append((line_no, article))
                if len(pending) >= args.batch_size:
                    flush()
            if pending:
                flush()
        finally:
            bar.close()
            if src is not sys.stdin:
                src.close()
    print(f"wrote {written} cards to {args.output}; skipped {bad} bad line(s)", file=sys.stderr)
    return 1 if bad else 0


# ---------------------------------------------------------------- archive


def add_archive_arguments(p: argparse.ArgumentParser) -> None:
    p.description = "Pack a model dir into a TorchServe archive (.mar) with sha256 sums."
    p.add_argument("--model", required=True, help="model dir (config.json, model.safetensors, tokenizer)")
    p.add_argument("--output", required=True, help="NAME.mar; NAME is the model name unless --name")
    p.add_argument("--name", help="model name (default: the output file's stem)")
    p.add_argument("--version", help="model version (default: sha256 prefix of the weights)")
    p.add_argument("--batch-size", type=int, help="TorchServe batchSize (default 4)")
    p.add_argument("--max-batch-delay", type=int, help="TorchServe maxBatchDelay in ms (default 50)")
    p.add_argument("--workers", type=int, help="TorchServe min/max workers (default 1)")


def run_archive(args) -> int:
    from .archive import write_archive

    cfg = {}
    if args.batch_size:
        cfg["batchSize"] = args.batch_size
    if args.max_batch_delay is not None:
        cfg["maxBatchDelay"] = args.max_batch_delay
    if args.workers:
        cfg["minWorkers"] = cfg["maxWorkers"] = args.workers
    info = write_archive(args.model, args.output, model_name=args.name, version=args.version, model_config=cfg)
    print(f"wrote {info['path']} (model {info['model_name']}, {len(info['files'])} files)")
    print(f"sha256 {info['sha256']}")
    return 0


# ---------------------------------------------------------------- calibrate


def add_calibrate_arguments(p: argparse.ArgumentParser) -> None:
    from .calibrate import add_arguments

    p.description = "Fit the score cut points on validation data (writes MODEL/composer.json)."
    add_arguments(p)


def run_calibrate(args) -> int:
    from .calibrate import calibrate

    calibrate(args.model, datasets=args.datasets, output=args.output, max_articles=args.max_articles,
              log=lambda m: print(m, file=sys.stderr))
    return 0
