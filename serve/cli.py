"""`biascard card`, `predict`, `calibrate` and `archive` (wired in biascard/cli.py).

Composer settings come from configs/serve.yaml composed by Hydra (configs/local/serve.yaml
included), through the Composer; these commands pass none of their own.

Which model: `--model DIR|ARCHIVE.mar`; without it, $BIASCARD_MODEL; without that, the
released model (models/biascard-minilm in the repo); without that (an install without the repo),
the most recently written `outputs/**/model` dir under the working directory. The chosen model
is printed on stderr; no model at all is an error.
`predict` (resumable, with a progress bar) lives in serve/predict_command.py.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

FORMATS = ("json", "text", "html")


def default_model(root: str | Path = "outputs") -> Path:
    from biascard.model.model_dir import released_model

    env = os.environ.get("BIASCARD_MODEL")
    if env:
        return Path(env)
    released = released_model()
    if released is not None:
        return released
    candidates = [p.parent for p in Path(root).glob("**/model/model.safetensors")]
    if not candidates:
        raise ValueError(
            "no model given: pass --model DIR|ARCHIVE, set BIASCARD_MODEL, or train one "
            f"(biascard train writes {root}/.../model)"
        )
    return max(candidates, key=lambda p: (p / "model.safetensors").stat().st_mtime)


def _model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model dir or .mar (default: $BIASCARD_MODEL, else the released "
                                          "models/biascard-minilm, else the newest outputs/**/model)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a composer setting of configs/serve.yaml for this run, e.g. --set generate.enabled=true "
                        "or --set quotes.weight=1.0 (repeatable)")


def composer_overrides(pairs: list[str]) -> dict | None:
    """`--set a.b=v` pairs as one settings layer (values parsed as YAML, as Hydra does)."""
    from omegaconf import OmegaConf

    bad = [p for p in pairs if "=" not in p or not p.split("=", 1)[0].strip()]
    if bad:
        raise SystemExit(f"biascard: error: --set wants KEY=VALUE, got {bad[0]!r}")
    return OmegaConf.to_container(OmegaConf.from_dotlist(list(pairs))) if pairs else None


def _service(args):
    from .service import ModelService

    path = Path(args.model) if args.model else default_model()
    if not args.model:
        print(f"biascard: using model {path}", file=sys.stderr)
    return ModelService(path, threads=getattr(args, "threads", None), composer=composer_overrides(args.set))


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
    from .predict_command import check_encodable

    max_chars = serve_config()["max_chars"]
    if args.file == "-":
        data, where = sys.stdin.buffer.read(), "stdin"
    else:
        data, where = Path(args.file).read_bytes(), args.file
    ctype = "application/json" if str(args.file).endswith(".json") else "text/plain"
    try:
        article = article_from_body(data, ctype, max_chars)
        for key in ("title", "source", "id"):
            if getattr(args, key):
                setattr(article, key, getattr(args, key))
        check_encodable(article)  # a lone surrogate would fail deep in the tokenizer
    except InputError as e:
        print(f"biascard: error: {where}: {e.message}" + (f" (field {e.field})" if e.field else ""), file=sys.stderr)
        return 2
    with _service(args) as service:
        (card,) = service.compose([article])
    if isinstance(card, BaseException):
        raise card
    out = render(card, args.format)
    text = json.dumps(out, indent=1, ensure_ascii=False) if args.format == "json" else out
    text += "" if text.endswith("\n") else "\n"
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as e:  # a backstop: the checks above should have caught it
        print(f"biascard: error: {where}: the card is not valid UTF-8 ({e.reason}); nothing written", file=sys.stderr)
        return 2
    if args.output:
        Path(args.output).write_bytes(data)
    else:
        sys.stdout.write(text)
    return 0


# ---------------------------------------------------------------- predict


def add_predict_arguments(p: argparse.ArgumentParser) -> None:
    from .predict_command import add_arguments

    _model_arg(p)
    add_arguments(p)


def run_predict(args) -> int:
    from .predict_command import run

    if not args.model:  # chosen here, on the driver: Ray actors would choose in their own environment
        args.model = str(default_model())
        print(f"biascard: using model {args.model}", file=sys.stderr)
    return run(args, _service)


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
