"""Fit the cut points that map sentence-level statistics to the card's 1-5 scores.

`biascard calibrate --model DIR [--datasets babe basil ...] [--output PATH]`

No public dataset gives 1-5 scores for these concepts (see ../shared/datasets/README.md),
so nothing here learns a mapping to human scores. What it does: run the model over the
validation split, group sentences into articles (real articles split into sentences; sentence
datasets grouped by doc_id, else into pseudo-articles of N sentences), compute each concept's
article statistic, and put the 4 cut points at quantiles of that distribution
(configs/serve.yaml → calibrate.quantiles, default 0.4/0.7/0.9/0.97). A score then reads as
a rank against the validation articles: 1 = at or below the 40th percentile, 5 = above the
97th. It is a heuristic calibration of the scale, not of the truth; it keeps scores from
piling up at 1 or 5 when the model's probabilities are shifted.
The result goes to <model dir>/composer.json, which the composer (and the archive) pick up.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import sys
from pathlib import Path

from biascard.compose.calibration import articles_from_split, fit
from biascard.compose.composer import Composer
from biascard.compose.settings import serve_config
from biascard.model import model_dir as md


def calibrate(model_dir: str | Path, *, datasets: list[str] | None = None, output: str | Path | None = None,
              settings: dict | None = None, data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
              max_articles: int | None = None, log=print) -> dict:
    from biascard.data.prepare import prepare

    cal = serve_config()["calibrate"]
    if datasets:
        cal["datasets"] = list(datasets)
    if max_articles is not None:
        cal["max_articles_per_dataset"] = max_articles
    composer = _composer(model_dir, settings)
    articles, counts = [], {}
    for name in cal["datasets"]:
        dsd = prepare(name, data_dir=data_dir, cache_dir=cache_dir)
        if cal["split"] not in dsd:
            raise ValueError(f"dataset {name!r} has no split {cal['split']!r}")
        arts = articles_from_split(dsd[cal["split"]], cal["pseudo_article_sentences"],
                                   cal["max_articles_per_dataset"], cal["seed"], cal.get("min_article_sentences", 5))
        counts[name] = len(arts)
        articles += arts
        log(f"{name}: {len(arts)} {cal['split']} articles, {sum(map(len, arts))} sentences")
    if not articles:
        raise ValueError("no validation articles found; nothing to calibrate on")
    concepts = fit(composer, articles, list(cal["quantiles"]))
    result = {
        "version": 1,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "method": "quantiles of the article statistic over validation articles (heuristic, no 1-5 labels)",
        "split": cal["split"],
        "quantiles": list(cal["quantiles"]),
        "datasets": counts,
        "concepts": concepts,
    }
    path = md.write_calibration(model_dir, result, output)
    log(f"wrote {path}: cut points for {', '.join(concepts) or 'no concept (the model has no sentence heads)'}")
    for name, entry in concepts.items():
        if entry.get("degenerate"):
            log(f"warning: {name}: tied cut points {entry['cut_points']} (the statistic barely varies on "
                f"validation data: {entry['summary']}); some scores cannot be reached")
    return result


def _composer(model_dir, settings: dict | None) -> Composer:
    """`settings`: a layer over the composed `composer` section (the Composer merges it)."""
    model, tokenizer = md.load(model_dir)
    # no calibration loaded: fit the statistic the config asks for, not an earlier fit's
    return Composer(model, tokenizer, settings, calibration=None)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model dir (composer.json is written into it)")
    p.add_argument("--datasets", nargs="+", help="datasets to read (default: configs/serve.yaml calibrate.datasets)")
    p.add_argument("--output", help="where to write (default: MODEL/composer.json)")
    p.add_argument("--max-articles", type=int, help="articles per dataset (default from the config)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="biascard calibrate", description=__doc__.splitlines()[0])
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        calibrate(args.model, datasets=args.datasets, output=args.output, max_articles=args.max_articles,
                  log=lambda m: print(m, file=sys.stderr))
    except (ValueError, FileNotFoundError) as e:
        print(f"calibrate: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
