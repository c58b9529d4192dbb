"""`biascard card parse FILE [-o OUT]` and `biascard card render FILE.json --format text|html [-o OUT]`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from biascard.card import CardError, validate


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    p = Path(path)
    if not p.is_file():
        raise CardError(f"{path}: no such file")
    try:
        return p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise CardError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _write(text: str, out: str | None) -> None:
    if out and out != "-":
        Path(out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def add_parse_arguments(p) -> None:
    p.description = "Read a card in its text layout and print it as schema JSON (validated)."
    p.add_argument("file", help="card text file ('-' for stdin)")
    p.add_argument("-o", "--output", help="write the JSON here instead of stdout")


def run_parse(args) -> int:
    from biascard.card import parse_text

    card = parse_text(_read(args.file), source_name=args.file)
    _write(json.dumps(card, indent=2, ensure_ascii=False) + "\n", args.output)
    return 0


def add_render_arguments(p) -> None:
    p.description = "Render a card JSON file as the text layout or as an HTML page."
    p.add_argument("file", help="card JSON file ('-' for stdin)")
    p.add_argument("--format", choices=("text", "html"), default="text")
    p.add_argument("-o", "--output", help="write here instead of stdout")


def run_render(args) -> int:
    raw = _read(args.file)
    try:
        card = json.loads(raw)
    except json.JSONDecodeError as e:
        raise CardError(f"{args.file}:{e.lineno}: invalid JSON: {e.msg} at column {e.colno}") from None
    try:
        validate(card)
    except CardError as e:
        raise CardError(f"{args.file}: {e}", path=e.path) from None
    if args.format == "html":
        from biascard.card import render_html

        out = render_html(card)
    else:
        from biascard.card import render_text

        out = render_text(card)
    _write(out, args.output)
    return 0
