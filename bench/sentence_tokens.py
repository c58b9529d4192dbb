"""Encoder tokens per training step: 16 AllSides train articles read as 4 windows of 128
tokens against read as their sentences (first 16, or up to 64), padded in one pass or in
the length groups of 64 chunks that `BiasCardModel` runs a sentence batch in. Counts only
(no timing): what a step of `experiment=hierarchical` costs against the windows recipe.

  python bench/sentence_tokens.py [--batches 3]
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def grouped_tokens(mask, group: int = 64) -> int:
    lengths = mask.sum(1).sort().values
    return sum(int(g.max()) * len(g) for g in lengths.split(group))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)

    from biascard.compose.reading import sentence_spans
    from biascard.data.prepare import prepare
    from biascard.model.features import encode
    from biascard.model.modeling import load_tokenizer

    with common.report("sentence_tokens", argv, save=not args.no_save):
        tok = load_tokenizer("minilm")
        train = prepare("allsides")["train"].to_list()
        specs = common.leaning_heads()
        rng = random.Random(0)
        rows = []
        for b in range(args.batches):
            recs = rng.sample(train, 16)
            w = encode([{"text": r["text"]} for r in recs], tok, specs, 128, 32, with_labels=False, max_chunks=4)
            row = [b, int(w["attention_mask"].sum()), w["input_ids"].numel()]
            for cap in (16, 64):
                s = encode([{"text": r["text"], "segments": sentence_spans(r["text"])} for r in recs], tok, specs,
                           128, 32, with_labels=False, max_chunks=cap)
                row += [s["input_ids"].shape[0], int(s["attention_mask"].sum()), s["input_ids"].numel(),
                        grouped_tokens(s["attention_mask"])]
            rows.append(row)
        print(common.table(rows, ["batch", "windows real", "windows padded",
                                  "16 sent.: chunks", "real", "one pass", "grouped",
                                  "64 sent.: chunks", "real", "one pass", "grouped"]))


if __name__ == "__main__":
    main()
