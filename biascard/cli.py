"""`biascard` command line: one sub-command per task, each implemented in its stage.

Every command module exposes `add_arguments(parser)` and `run(args) -> int`; they are
imported only when used, so `biascard data ...` never loads torch.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("data", "list"): ("biascard.data.cli", "list"),
    ("data", "prepare"): ("biascard.data.cli", "prepare"),
    ("data", "stats"): ("biascard.data.cli", "stats"),
    ("data", "fetch"): ("biascard.data.fetch", "fetch"),
    ("card", "parse"): ("biascard.data.card.cli", "parse"),
    ("card", "render"): ("biascard.data.card.cli", "render"),
    ("card", "predict"): ("biascard.serve.cli", "card"),
    ("predict",): ("biascard.serve.cli", "predict"),
    ("archive",): ("biascard.serve.cli", "archive"),
    ("calibrate",): ("biascard.serve.cli", "calibrate"),
}

HELP = {
    "data": "list, prepare, describe and fetch the datasets",
    "card": "parse or render a card file, or write the card for an article",
    "predict": "write a card for every line of a JSONL file",
    "archive": "pack a model dir into a TorchServe-layout archive",
    "calibrate": "fit the composer's score cut points on validation data",
}


def _command(module: str, name: str):
    mod = importlib.import_module(module)
    return getattr(mod, f"add_{name}_arguments"), getattr(mod, f"run_{name}")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="biascard", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    wanted = argv[:2]
    for path, (module, name) in COMMANDS.items():
        if len(path) == 1:
            p = sub.add_parser(path[0], help=HELP[path[0]])
        else:
            if path[0] not in groups:
                g = sub.add_parser(path[0], help=HELP[path[0]])
                groups[path[0]] = g.add_subparsers(dest="subcommand", required=True)
            p = groups[path[0]].add_parser(path[1])
        p.set_defaults(_target=(module, name))
        # Only the chosen command's module is imported to add its arguments.
        if list(path) == wanted[: len(path)]:
            add, _ = _command(module, name)
            add(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `biascard card [--model DIR] FILE` is the predicting form of `card`.
    if argv[:1] == ["card"] and (len(argv) < 2 or argv[1] not in ("parse", "render", "predict", "-h", "--help")):
        argv.insert(1, "predict")
    args = build_parser(argv).parse_args(argv)
    _, run = _command(*args._target)
    try:
        return int(run(args) or 0)
    except Exception as e:  # noqa: BLE001 - the CLI turns known errors into one clear line
        from biascard.data.errors import DataError

        if isinstance(e, (DataError, FileNotFoundError, ValueError)):
            print(f"biascard: error: {e}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    raise SystemExit(main())
