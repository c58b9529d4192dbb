"""Fit the cut points that map sentence-level statistics to the card's 1-5 scores.

`python -m biascard.serve.calibrate --model DIR [--datasets babe basil ...] [--output PATH]`

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
import json
import random
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from .compose import CALIBRATION_FILE, CONCEPTS, Composer, merge, serve_defaults
from .sentences import split_sentences


def articles_from_split(records, pseudo_size: int, cap: int, seed: int, min_sentences: int = 5) -> list[list[str]]:
    """Sentence lists: article records split into sentences, sentence records grouped by
    doc_id (groups under `min_sentences` join the pseudo-articles: a 1-2 sentence "article"
    only has shares of 0, 0.5 or 1)."""
    articles: list[list[str]] = []
    by_doc: dict[str, list[str]] = defaultdict(list)
    loose: list[str] = []
    for r in records:
        text = r.get("text") or ""
        if r.get("unit") == "article":
            sents = [s.text for s in split_sentences(text)]
            if sents:
                articles.append(sents)
        elif r.get("doc_id"):
            by_doc[r["doc_id"]].append(text)
        elif text.strip():
            loose.append(text)
    for _, sents in sorted(by_doc.items()):
        if len(sents) >= min_sentences:
            articles.append(sents)
        else:
            loose += sents
    rng = random.Random(seed)
    rng.shuffle(loose)  # data files are often sorted by label; pseudo-articles should mix
    size = max(1, int(pseudo_size))
    articles += [loose[i : i + size] for i in range(0, len(loose), size)]
    if cap and len(articles) > cap:
        articles = rng.sample(articles, cap)
    return articles


def fit(composer: Composer, articles: list[list[str]], quantiles: list[float], batch_articles: int = 16) -> dict:
    """Per concept with sentence heads: cut points at `quantiles` of the article statistic."""
    if len(quantiles) != 4 or any(not 0 < q < 1 for q in quantiles) or sorted(quantiles) != list(quantiles):
        raise ValueError(f"calibrate.quantiles must be 4 ascending numbers in (0, 1), got {quantiles}")
    values: dict[str, list[float]] = defaultdict(list)
    for lo in range(0, len(articles), batch_articles):
        for concept, vals in composer.sentence_statistics(articles[lo : lo + batch_articles]).items():
            values[concept] += vals
    out = {}
    for concept in CONCEPTS:
        plan = composer.plan[concept]
        vals = np.asarray(values.get(concept, []), dtype=float)
        if not plan["heads"] or vals.size == 0:
            continue
        cfg = composer.settings["concepts"][concept]
        cuts = [float(x) for x in np.quantile(vals, quantiles)]
        out[concept] = {
            "statistic": cfg.get("statistic", "share_above"),
            "threshold": float(cfg.get("threshold", 0.5)),
            "top_k": int(cfg.get("top_k", 3)),
            "heads": [h["head"] for h in plan["heads"]],
            "cut_points": [round(c, 6) for c in cuts],
            "n_articles": int(vals.size),
            "summary": {"min": float(vals.min()), "median": float(np.median(vals)), "max": float(vals.max())},
        }
        if len(set(cuts)) < 4:
            # e.g. every validation sentence above the threshold: ties leave some scores unreachable
            out[concept]["degenerate"] = True
        if plan["mode"] == "document":
            out[concept]["note"] = f"the model has {plan['document_head']}; these cut points apply only if it is dropped"
    return out


def calibrate(model_dir: str | Path, *, datasets: list[str] | None = None, output: str | Path | None = None,
              settings: dict | None = None, data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
              max_articles: int | None = None, log=print) -> dict:
    from biascard.data.prepare import prepare

    defaults = serve_defaults()
    cal = merge(defaults["calibrate"], {k: v for k, v in {"datasets": datasets}.items() if v})
    if max_articles is not None:
        cal["max_articles_per_dataset"] = max_articles
    composer_settings = merge(defaults["composer"], settings or {})
    composer = _composer(model_dir, composer_settings)
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
    path = Path(output) if output else Path(model_dir) / CALIBRATION_FILE
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    log(f"wrote {path}: cut points for {', '.join(concepts) or 'no concept (the model has no sentence heads)'}")
    for name, entry in concepts.items():
        if entry.get("degenerate"):
            log(f"warning: {name}: tied cut points {entry['cut_points']} (the statistic barely varies on "
                f"validation data: {entry['summary']}); some scores cannot be reached")
    return result


def _composer(model_dir, settings) -> Composer:
    from biascard.train.modeling import load_model_dir

    model, tokenizer = load_model_dir(model_dir)
    # no calibration loaded: fit the statistic the config asks for, not an earlier fit's
    return Composer(model, tokenizer, settings, calibration=None)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model dir (composer.json is written into it)")
    p.add_argument("--datasets", nargs="+", help="datasets to read (default: configs/serve.yaml calibrate.datasets)")
    p.add_argument("--output", help="where to write (default: MODEL/composer.json)")
    p.add_argument("--max-articles", type=int, help="articles per dataset (default from the config)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m biascard.serve.calibrate", description=__doc__.splitlines()[0])
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
