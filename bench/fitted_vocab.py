"""The fitted lexical models' vocabulary size and C, chosen on validation.

`biascard train fuse` fits each head's regression on the `features` n-grams in most train texts
(5,000; topic 3,500 in the release) at C = 1, both fixed before any was measured. Here every
(features, C) of a grid is fit for each head and scored as fuse scores it: the best validation
selection metric over the weight grid, against the model without a fitted part. The bytes are
what the head's buffers take in the fp16 release (int64 vocabulary, fp16 idf and coefficients),
since the release has 0.19 MB left under its 50 MB.

    python bench/fitted_vocab.py --model outputs/basil_no_lexical/train/model
    # -> bench/results/fitted_vocab.txt (validation only; the logits cache in outputs/fitted_vocab/)
    python bench/fitted_vocab.py --model outputs/basil_no_lexical/train/model --heads topic \
      --features 10000 20000 --keep 250 500 1000 2000 --C 1 --out bench/results/fitted_vocab_topic_keep.txt
    python bench/fitted_vocab.py --model outputs/basil_no_lexical/train/model --heads political_leaning \
      --test-alone --features 5000 40000 0 --out bench/results/fitted_vocab_leaning_test.txt

`--keep` also scores each vocabulary's regression pruned to its largest coefficients per output
(`fitted.keep`; the bytes then count an int32 column index per kept coefficient).
`--test-alone` explains a gap rather than choosing: the fitted model alone (weight 1, no
transformer) on the test split per vocabulary size (0: every train n-gram), beside which the
TF-IDF+LR baseline reads every n-gram of its own tokenizer.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from biascard.data.adapters import ADAPTERS
from biascard.model import model_dir as model_files
from biascard.model.features import sequence_labels
from biascard.model.fitted_lexical import FittedLexical
from biascard.train.evaluation import labeled_rows
from biascard.train.fuse import (choose_weight, encoding, fit_module, fitted_logits, fitted_parts, train_texts,
                                 validation_logits)
from biascard.train.thresholds import training_setup

OUT = Path(__file__).parent / "results" / "fitted_vocab.txt"
RELEASED = {"topic": 3500, "sdg": 5000, "fallacy": 5000, "political_leaning": 5000, "gvfc_frame": 5000}


def cached_logits(model, tokenizer, model_dir: Path, names: list[str], cache: Path) -> dict:
    """fuse's validation logits of `names`, computed once per model dir. The cache holds only
    tensors and plain containers, read back with `weights_only` (no code runs on loading)."""
    key = {"model": str(model_dir.resolve()), "names": names}
    if cache.exists():
        got = torch.load(cache, weights_only=True)
        if got["key"] == key:
            return {n: (recs, {h: tuple(t.numpy() for t in v) for h, v in heads.items()})
                    for n, (recs, heads) in got["val"].items()}
    setup = training_setup(model_dir)
    val = validation_logits(model, tokenizer, names, encoding(model, setup), setup, batch_size=32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    saved = {n: (recs, {h: tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in v) for h, v in heads.items()})
             for n, (recs, heads) in val.items()}
    torch.save({"key": key, "val": saved}, cache)
    return val


def score(spec, head: str, module, val: dict, with_head: list[str]) -> tuple[float, float, float]:
    """(weight, validation metric at it, at weight 0), as fuse chooses."""
    weight, curve = choose_weight(spec, fitted_parts(module, head, val, with_head))
    return weight, max(curve), curve[0]


def alone_on_test(head: str, spec, texts, y, sizes: list[int], with_head: list[str], setup: dict) -> list[str]:
    """The fitted model alone on the test split of `with_head`, per vocabulary size."""
    from biascard.data.prepare import prepare
    from biascard.train.datasets import records, refold_splits
    from biascard.train.fuse import selection_metric

    recs = [r for n in with_head for r in records(refold_splits(prepare(n), n, setup.get("refold"))["test"])]
    gold = sequence_labels(recs, spec, spec.label2id)
    keep = labeled_rows(gold, spec.type)
    test = [r["text"] for r, k in zip(recs, keep.tolist()) if k]
    lines = []
    for k in sizes:
        module = fit_module(spec, texts, y, k or 10**12, 1.0)
        got = selection_metric(spec, fitted_logits(module, test), gold[keep].long().numpy())
        lines.append(f"| {head} | {int(module.vocab.shape[0])} | 1 | {len(test)} | {got:.4f} | "
                     f"{head_bytes(int(module.vocab.shape[0]), spec.num_outputs) / 1e6:.3f} |")
        print(lines[-1], flush=True)
    return lines


def head_bytes(features: int, outputs: int, keep: int | None = None) -> int:
    """The fp16 release's bytes: int64 vocabulary, fp16 idf, coefficients (and int32 columns when kept)."""
    coef = 2 * outputs * features if keep is None else 6 * outputs * keep
    return features * (8 + 2) + coef + 2 * outputs


def pruned(module, keep: int):
    out = FittedLexical(module.vocab.shape[0], module.coef.shape[0], keep)
    out.set(module.vocab, module.idf, module.coef, module.intercept)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a trained model dir without fitted models")
    p.add_argument("--heads", nargs="+", default=list(RELEASED))
    p.add_argument("--features", nargs="+", type=int, default=[2500, 5000, 10000, 20000, 40000])
    p.add_argument("--C", nargs="+", type=float, default=[0.3, 1.0, 3.0, 10.0])
    p.add_argument("--keep", nargs="*", type=int, default=[], help="coefficients kept per output, per C = 1 vocabulary")
    p.add_argument("--test-alone", action="store_true",
                   help="the fitted model alone on test per size (explains; chooses nothing)")
    p.add_argument("--cache", default="outputs/fitted_vocab/validation_logits.pt")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args()
    model_dir = Path(args.model)
    model, tokenizer = model_files.load(model_dir)
    setup = training_setup(model_dir)
    names = [n for n in setup["datasets"] if any(h in ADAPTERS[n].heads for h in args.heads)]
    val = None if args.test_alone else cached_logits(model, tokenizer, model_dir, names, Path(args.cache))
    lines = ([f"test splits of {names}: the fitted model alone (weight 1, no transformer), to explain a gap, "
              "not to choose", "| head | features | C | test examples | metric | MB (fp16) |", "|---|---|---|---|---|---|"]
             if args.test_alone else
             [f"model {model_dir}; validation of {names}; metric: fuse's selection metric at its chosen weight",
              "| head | features | C | kept per output | weight | validation | without fitted | MB (fp16) | fit s |",
              "|---|---|---|---|---|---|---|---|---|"])
    for head in args.heads:
        spec = model.head_specs[head]
        with_head = [n for n in setup["datasets"] if head in ADAPTERS[n].heads]
        texts, y = train_texts(head, spec, with_head, setup)
        if args.test_alone:
            lines += alone_on_test(head, spec, texts, y, args.features, with_head, setup)
            continue
        released = RELEASED.get(head, 5000)
        grid = [(k, 1.0) for k in sorted({*args.features, released})] + [(released, c) for c in args.C if c != 1.0]
        seen = set()
        for k, c in grid:
            t0 = time.time()
            module = fit_module(spec, texts, y, k, c)
            if (int(module.vocab.shape[0]), c) in seen:  # the train texts have fewer n-grams than k
                continue
            seen.add((int(module.vocab.shape[0]), c))
            n = int(module.vocab.shape[0])
            mark = " (released)" if (k, c) == (released, 1.0) else ""
            for keep in [None] + (sorted(q for q in args.keep if q < n) if c == 1.0 else []):
                weight, best, base = score(spec, head, module if keep is None else pruned(module, keep), val, with_head)
                lines.append(f"| {head} | {n}{mark} | {c:g} | {keep or 'all'} | {weight} | {best:.4f} | {base:.4f} | "
                             f"{head_bytes(n, spec.num_outputs, keep) / 1e6:.3f} | {time.time() - t0:.0f} |")
                print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text, encoding="utf-8")
    print(text, end="")


if __name__ == "__main__":
    main()
