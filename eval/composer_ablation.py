"""The card composer's choices checked against article-level labels.

`biascard eval composer-ablation --model DIR [--splits validation test] [--out DIR]`
(also `python -m biascard.eval.composer_ablation`). A study on eval's statistics of the core
composer (`biascard.compose`): it imports the core, data and eval only.

No dataset scores whole articles 1-5, but two have article-level signals the composer's
aggregation can be checked against:
- BASIL and the Ukraine corpus annotate every sentence of whole articles, so each article
  has a gold *ratio* (share of its sentences with lexical / informational bias, framing,
  subjectivity). A good aggregation ranks articles as those ratios do: Spearman rho.
- BASIL's article-level relative stance: partisan (left/right) articles against centre ones,
  AUROC of the article's language-bias statistic (do one-sided articles read as more biased?).
MBIC is left out: its "articles" have 1.4 annotated sentences on average (test: 211 sentences
in 150 articles), too few for a ratio.

Per concept, every aggregation the composer offers is scored on the same sentence
probabilities: share of sentences >= t (t = 0.3, 0.5, 0.7), mean of the top k (k = 1, 3, 5),
the mean, and the card's own 1-5 score (configured statistic + cut points). Articles come
from the splits the model did not train on (validation and test by default); 95% CIs by a
bootstrap over articles. The model's sentence heads are the composer's (configs/serve.yaml).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from biascard.compose.calibration import article_statistic, score_from_statistic
from biascard.compose.composer import Composer

from .bootstrap import bootstrap
from .formatting import write_outputs

# dataset: [(card concept, the head whose gold sentence labels give the article ratio)]
ARTICLE_RATIOS = {
    "basil": [("language_bias", "lexical_bias"), ("bias_by_omission", "informational_bias")],
    "ukraine": [("framing_bias", "framing"), ("language_bias", "subjectivity")],
}
VARIANTS = [("share_above", 0.3, 3), ("share_above", 0.5, 3), ("share_above", 0.7, 3),
            ("top_k_mean", 0.5, 1), ("top_k_mean", 0.5, 3), ("top_k_mean", 0.5, 5), ("mean", 0.5, 3)]


def variant_name(statistic: str, threshold: float, top_k: int) -> str:
    if statistic == "share_above":
        return f"share >= {threshold:g}"
    if statistic == "top_k_mean":
        return f"top-{top_k} mean"
    return "mean"


def articles(records: list[dict], min_sentences: int) -> dict[str, list[dict]]:
    """Sentence records grouped by doc_id, in file order; short groups dropped (and counted)."""
    by_doc: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if r.get("doc_id"):
            by_doc[r["doc_id"]].append(r)
    return {d: rs for d, rs in by_doc.items() if len(rs) >= min_sentences}


def _with_ci(fn, n: int, n_boot: int, seed: int) -> dict:
    """fn(indices) -> float (NaN where undefined), its percentile CI over resampled articles."""
    res = bootstrap(lambda idx: {"v": fn(idx)}, n, n_boot=n_boot, seed=seed)["v"]
    return {"value": res["value"], "lo": res["lo"], "hi": res["hi"], "n": int(n)}


def spearman(x: np.ndarray, y: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict:
    def rho(idx):
        if len(set(x[idx])) < 2 or len(set(y[idx])) < 2:
            return float("nan")
        return float(spearmanr(x[idx], y[idx]).statistic)

    return _with_ci(rho, len(x), n_boot, seed)


def auroc(score: np.ndarray, positive: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict:
    def auc(idx):
        if len(set(positive[idx])) < 2:
            return float("nan")
        return float(roc_auc_score(positive[idx], score[idx]))

    return _with_ci(auc, len(score), n_boot, seed)


def article_values(composer: Composer, concept: str, arts: dict[str, list[dict]]) -> dict[str, np.ndarray] | None:
    """{variant: value per article} of one concept, from one forward pass over all sentences."""
    plan = composer.plan[concept]
    if not plan["heads"]:
        return None
    docs = list(arts)
    flat = [r["text"] for d in docs for r in arts[d]]
    sent_out = composer.forward(flat, offsets=False)
    out: dict[str, list[float]] = defaultdict(list)
    pos = 0
    for d in docs:
        idx = list(range(pos, pos + len(arts[d])))
        pos += len(idx)
        probs = composer.concept_probs(plan, sent_out, idx)
        for stat, t, k in VARIANTS:
            out[variant_name(stat, t, k)].append(article_statistic(probs, stat, t, k))
        card = article_statistic(probs, plan["statistic"], plan["threshold"], plan["top_k"])
        out["card score (1-5)"].append(score_from_statistic(card, plan["cut_points"]))
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}


def run(model_dir, *, splits=("validation", "test"), min_sentences: int = 5, n_boot: int = 1000,
        data_dir=None, cache_dir=None, log=print) -> dict:
    from biascard.data.adapters.basil import BASIL, article_stances
    from biascard.data.paths import dataset_dir
    from biascard.data.prepare import prepare

    composer = Composer.from_model_dir(model_dir)
    result: dict = {"model_dir": str(model_dir), "splits": list(splits), "min_sentences": min_sentences,
                    "n_boot": n_boot, "cut_points": {c: composer.plan[c].get("cut_source") for c in composer.plan},
                    "ratios": [], "stance": []}
    kw = {k: v for k, v in {"data_dir": data_dir, "cache_dir": cache_dir}.items() if v}
    for name, pairs in ARTICLE_RATIOS.items():
        dsd = prepare(name, **kw)
        missing = [s for s in splits if s not in dsd]
        if missing:
            raise ValueError(f"dataset {name!r} has no split(s) {missing} (it has {list(dsd)})")
        records = [r for s in splits for r in dsd[s].to_list()]
        arts = articles(records, min_sentences)
        log(f"{name}: {len(arts)} articles with >= {min_sentences} sentences in {'+'.join(splits)}")
        for concept, head in pairs:
            values = article_values(composer, concept, arts)
            if values is None:
                log(f"{name}/{concept}: the model has no sentence head for it; skipped")
                continue
            gold = np.asarray([np.mean([r["labels"][head] for r in rs]) for rs in arts.values()], dtype=float)
            for variant, v in values.items():
                result["ratios"].append({"dataset": name, "concept": concept, "gold": f"share of {head} sentences",
                                         "variant": variant, "spearman": spearman(v, gold, n_boot)})
            if name == "basil" and concept == "language_bias":
                root = Path(data_dir) / BASIL.folder if data_dir else dataset_dir(BASIL.folder)
                stance = article_stances(root)
                docs = list(arts)
                keep = [i for i, d in enumerate(docs) if stance.get(d) in ("left", "right", "center")]
                partisan = np.asarray([stance[docs[i]] != "center" for i in keep], dtype=int)
                for variant, v in values.items():
                    result["stance"].append({"dataset": name, "concept": concept, "variant": variant,
                                             "positive": "left/right stance vs center",
                                             "auroc": auroc(v[keep], partisan, n_boot)})
                # the gold ratio itself, as the ceiling a sentence-level signal can reach
                result["stance"].append({"dataset": name, "concept": concept, "variant": "gold share of lexical_bias",
                                         "positive": "left/right stance vs center",
                                         "auroc": auroc(gold[keep], partisan, n_boot)})
    return result


def _ci(m: dict) -> str:
    if not np.isfinite(m["value"]):
        return "–"
    return f"{m['value']:.3f} [{m['lo']:.3f}, {m['hi']:.3f}]"


def to_markdown(res: dict) -> str:
    lines = [f"Model {res['model_dir']}; articles from {'+'.join(res['splits'])} "
             f"(>= {res['min_sentences']} sentences); 95% CIs: bootstrap over articles ({res['n_boot']}).", "",
             "| dataset | concept | gold article label | aggregation | Spearman rho [95% CI] | articles |",
             "|---|---|---|---|---|---|"]
    for r in res["ratios"]:
        lines.append(f"| {r['dataset']} | {r['concept']} | {r['gold']} | {r['variant']} | {_ci(r['spearman'])} | "
                     f"{r['spearman']['n']} |")
    if res["stance"]:
        lines += ["", "| dataset | concept | article label | aggregation | AUROC [95% CI] | articles |",
                  "|---|---|---|---|---|---|"]
        for r in res["stance"]:
            lines.append(f"| {r['dataset']} | {r['concept']} | {r['positive']} | {r['variant']} | {_ci(r['auroc'])} | "
                         f"{r['auroc']['n']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="biascard eval composer-ablation", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="model dir (its composer.json cut points are used when present)")
    p.add_argument("--splits", nargs="+", default=["validation", "test"])
    p.add_argument("--min-sentences", type=int, default=5)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--out", help="write composer_ablation.md and .json into this dir")
    args = p.parse_args(argv)
    try:
        res = run(args.model, splits=tuple(args.splits), min_sentences=args.min_sentences, n_boot=args.n_boot,
                  log=lambda m: print(m, file=sys.stderr))
    except (ValueError, FileNotFoundError) as e:
        print(f"biascard eval composer-ablation: error: {e}", file=sys.stderr)
        return 2
    md = to_markdown(res)
    print(md, end="")
    if args.out:
        write_outputs(args.out, "composer_ablation", md, json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
