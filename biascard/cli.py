"""`biascard`: one command with a sub-command per job, each implemented in its stage.

Argparse commands are `add_<name>_arguments(parser)` and `run_<name>(args) -> int` in their
module. `train`, `eval` and `serve` are Hydra apps: their module's `main(argv)` parses the rest
of the line, sub-commands (its SUBCOMMANDS) included. Modules are imported by name only when
used, so `biascard data ...` never loads torch, and this module imports no stage.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import textwrap
from typing import NamedTuple

PROG = "biascard"


class Command(NamedTuple):
    module: str
    name: str  # add_<name>_arguments / run_<name>
    usage: str  # what follows the command's words in the overview
    help: str


# argparse commands, keyed by their words after `biascard`
COMMANDS: dict[tuple[str, ...], Command] = {
    ("data", "list"): Command("biascard.data.cli", "list", "", "the datasets: heads, license, where their files are"),
    ("data", "prepare"): Command("biascard.data.cli", "prepare", "[NAME ...]", "read datasets into the arrow cache"),
    ("data", "stats"): Command("biascard.data.cli", "stats", "[NAME ...]", "rows per split and label distribution per head"),
    ("data", "fetch"): Command("biascard.data.fetch", "fetch", "NAME ...", "download a dataset's files, verified by sha256"),
    ("card",): Command("biascard.serve.cli", "card", "[--model DIR] [--format json|text|html] ARTICLE",
                       "the bias card of one article (a text file, or - for stdin)"),
    ("card", "parse"): Command("biascard.serve.card_files", "parse", "FILE", "a card in its text layout -> schema JSON"),
    ("card", "render"): Command("biascard.serve.card_files", "render", "FILE --format text|html",
                                "a card JSON file -> the text layout or an HTML page"),
    ("predict",): Command("biascard.serve.cli", "predict", "--model DIR --input in.jsonl --output out.jsonl",
                          "a card for every line of a JSONL file"),
    ("calibrate",): Command("biascard.serve.cli", "calibrate", "--model DIR",
                            "fit the score cut points on validation data (MODEL/composer.json)"),
    ("archive",): Command("biascard.serve.cli", "archive", "--model DIR --output X.mar",
                          "pack a model dir into a TorchServe archive"),
}

# Hydra apps: module (main(argv); SUBCOMMANDS: name -> module, usage, help), one-line help
APPS = {
    "train": ("biascard.train.__main__", "train the multi-head model (Hydra app, configs/train.yaml)"),
    "eval": ("biascard.eval.__main__", "evaluate a model against baselines (Hydra app, configs/eval.yaml)"),
    "serve": ("biascard.serve.__main__", "the HTTP server (Hydra app, configs/serve.yaml)"),
}
ORDER = ("data", "train", "eval", "card", "predict", "calibrate", "archive", "serve")


class Formatter(argparse.HelpFormatter):
    """Wraps prose paragraphs but keeps indented ones (command lists, examples) as written."""

    def _fill_text(self, text, width, indent):
        paragraphs = textwrap.dedent(text).strip("\n").split("\n\n")
        return "\n\n".join(textwrap.indent(p, indent) if "\n  " in p or p.startswith("  ") else
                           textwrap.fill(" ".join(p.split()), width, initial_indent=indent, subsequent_indent=indent)
                           for p in paragraphs)


def _table(rows: list[tuple[str, str]]) -> str:
    width = min(max(len(left) for left, _ in rows), 44)
    return "\n".join(f"  {left:<{width}}  {right}" if len(left) <= width else f"  {left}\n  {'':<{width}}  {right}"
                     for left, right in rows)


def _command_rows(word: str | None = None) -> list[tuple[str, str]]:
    """Overview lines: every command (or those of `word`), app sub-commands included."""
    rows = []
    for top in ORDER if word is None else (word,):
        if top in APPS:
            module, text = APPS[top]
            rows.append((f"{PROG} {top} [OVERRIDES]", text))
            for name, (_, usage, sub_help) in getattr(importlib.import_module(module), "SUBCOMMANDS", {}).items():
                rows.append((f"{PROG} {top} {name} {usage}", sub_help))
            continue
        for path, cmd in COMMANDS.items():
            if path[0] == top:
                rows.append((" ".join((PROG, *path, cmd.usage)).strip(), cmd.help))
    return rows


def overview(word: str | None = None) -> str:
    if word is None:
        head = (f"usage: {PROG} COMMAND ...\n\nBias cards for news articles: data, training, evaluation "
                "and serving, one command each.\n\ncommands:\n")
        tail = f"\n\n`{PROG} COMMAND --help` describes a command; train, eval and serve take Hydra overrides.\n"
    else:
        head, tail = f"usage: {PROG} {word} SUBCOMMAND ...\n\nsubcommands:\n", "\n"
    return head + _table(_command_rows(word)) + tail


def _match(argv: list[str]) -> tuple[str, ...] | None:
    """The longest command path that `argv` starts with."""
    paths = [p for p in COMMANDS if list(p) == argv[: len(p)]]
    return max(paths, key=len) if paths else None


def _parser(path: tuple[str, ...]) -> argparse.ArgumentParser:
    cmd = COMMANDS[path]
    parser = argparse.ArgumentParser(prog=" ".join((PROG, *path)), description=cmd.help, formatter_class=Formatter)
    getattr(importlib.import_module(cmd.module), f"add_{cmd.name}_arguments")(parser)
    others = [(" ".join((PROG, *p, c.usage)), c.help) for p, c in COMMANDS.items() if p[: len(path)] == path and p != path]
    if others:  # `card` is a command and the head of `card parse|render`
        parser.epilog = "\n\n".join(filter(None, [parser.epilog, "also:\n" + _table(others)]))
    return parser


def _guarded(run, *args) -> int:
    """Known errors (bad data, missing files, bad values) as one line, exit code 2."""
    try:
        return int(run(*args) or 0)
    except Exception as e:  # noqa: BLE001 - anything else keeps its traceback
        data_error = importlib.import_module("biascard.data.errors").DataError
        if isinstance(e, (data_error, FileNotFoundError, ValueError)):
            print(f"{PROG}: error: {e}", file=sys.stderr)
            return 2
        raise


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in APPS:
        app = importlib.import_module(APPS[argv[0]][0])
        return _guarded(app.main, argv[1:])
    path = _match(argv)
    if path is not None:
        parser = _parser(path)
        args = parser.parse_args(argv[len(path):])
        cmd = COMMANDS[path]
        return _guarded(getattr(importlib.import_module(cmd.module), f"run_{cmd.name}"), args)
    # no command matched: `biascard [--help]`, `biascard data [--help]`, or a typo
    word = argv[0] if argv and any(len(p) > 1 and p[0] == argv[0] for p in COMMANDS) else None
    rest = argv[1:] if word else argv
    if rest[:1] in (["-h"], ["--help"]):
        sys.stdout.write(overview(word))
        return 0
    problem = f"unknown command {rest[0]!r}" if rest else f"a {'sub' if word else ''}command is needed"
    print(f"{' '.join(filter(None, (PROG, word)))}: error: {problem}", file=sys.stderr)
    sys.stderr.write(overview(word))
    return 2


def train_command() -> int:
    """The `biascard-train` console script: `biascard train ...`."""
    return main(["train", *sys.argv[1:]])


def eval_command() -> int:
    """The `biascard-eval` console script: `biascard eval ...`."""
    return main(["eval", *sys.argv[1:]])


def serve_command() -> int:
    """The `biascard-serve` console script: `biascard serve ...`."""
    return main(["serve", *sys.argv[1:]])


if __name__ == "__main__":
    raise SystemExit(main())
