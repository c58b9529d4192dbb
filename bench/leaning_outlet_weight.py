"""The leaning head's fitted-model weight chosen with every validation outlet counted equally.

`biascard train fuse` chose w = 0.1 for political_leaning by validation macro-F1. AllSides'
media-split validation is 59% one outlet (New York Times - News) and 70% left, so that choice
mostly reads one outlet (docs/results.md#the-leaning-gap-by-outlet). Here the same curve is also
scored with each article weighted by 1 / (its outlet's validation count), so every outlet counts
the same; the weight that rule chooses and the released one are then read once on test, paired.

    python bench/leaning_outlet_weight.py --model outputs/fused/train/model
    # -> bench/results/leaning_outlet_weight.txt (20 min here: validation and test logits)
"""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

from biascard.eval.bootstrap import paired_bootstrap
from biascard.model import model_dir as model_files
from biascard.model.fitted_lexical import mix
from biascard.train.datasets import records, token_lengths
from biascard.train.fuse import GRID, fitted_logits, grid_choice, record_logits

HEAD, NAME = "political_leaning", "allsides"
OUT = Path(__file__).parent / "results" / "leaning_outlet_weight.txt"


def split_logits(model, tokenizer, split: str, enc: dict):
    """(model logits without the fitted part, fitted logits, gold, outlets) of a split's labeled articles."""
    from biascard.data.prepare import prepare

    recs = records(prepare(NAME)[split])
    lengths = token_lengths(tokenizer, recs, enc["max_length"], enc["max_chunks"])
    got, heads = record_logits(model, tokenizer, {NAME: (recs, lengths)}, enc, batch_size=32)[NAME]
    zm, gold, keep = heads[HEAD]
    kept = [r for r, k in zip(got, keep) if k]
    return zm, fitted_logits(model.fitted[HEAD], [r["text"] for r in kept]), gold, [r["outlet"] for r in kept]


def macro_f1(z: np.ndarray, gold: np.ndarray, weight=None) -> float:
    return float(f1_score(gold, z.argmax(1), labels=list(range(z.shape[1])), average="macro",
                          sample_weight=weight, zero_division=0))


def outlet_weights(outlets: list[str]) -> np.ndarray:
    n = Counter(outlets)
    return np.asarray([1.0 / n[o] for o in outlets])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a model dir whose political_leaning head has a fitted model")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args()
    model, tokenizer = model_files.load(args.model)
    spec = model.head_specs[HEAD]  # the model's own specs: the weight set here is the one forward reads
    released = float(spec.fitted["weight"])
    spec.fitted["weight"] = 0.0  # the head's logits without the fitted part
    c = model.config
    enc = dict(max_length=int(c.max_length), stride=int(c.stride), max_chunks=c.max_chunks)

    zm, zf, gold, outlets = split_logits(model, tokenizer, "validation", enc)
    w_outlet = outlet_weights(outlets)
    plain = [macro_f1(mix(w, zm, zf), gold) for w in GRID]
    balanced = [macro_f1(mix(w, zm, zf), gold, w_outlet) for w in GRID]
    lines = [f"validation: {len(gold)} articles, {len(set(outlets))} outlets "
             f"(largest: {Counter(outlets).most_common(1)[0]})",
             "| w | " + " | ".join(f"{w:.1f}" for w in GRID) + " |",
             "|---|" + "---|" * len(GRID),
             "| macro-F1 | " + " | ".join(f"{v:.3f}" for v in plain) + " |",
             "| macro-F1, outlets equal | " + " | ".join(f"{v:.3f}" for v in balanced) + " |",
             f"chosen: {grid_choice(plain)} by macro-F1 (the release has {released}), "
             f"{grid_choice(balanced)} with outlets equal"]

    zm, zf, gold, _ = split_logits(model, tokenizer, "test", enc)
    w_new = grid_choice(balanced)

    def at(w):
        return lambda idx: {"macro_f1": macro_f1(mix(w, zm[idx], zf[idx]), gold[idx])}

    d = paired_bootstrap(at(released), at(w_new), len(gold), n_boot=1000, seed=0)["macro_f1"]
    lines += [f"test ({len(gold)} articles), read once: w = {released} (released) {d['a']:.3f}; "
              f"w = {w_new} (outlets equal) {d['b']:.3f}; delta {d['delta']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]",
              f"for reference, the fitted model alone (w = 1): {macro_f1(zf, gold):.3f}"]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
