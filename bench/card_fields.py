"""What the schema-1.1 fields cost per card: the full card (entities, language, quote marking,
summary, key questions, prose) against the same composer with those fields switched off,
side by side in one run (interleaved rounds, medians), on ~600-word AllSides test articles
composed as one server micro-batch.

The 1.1 work shares the one sentence pass: the question queries ride in it, and the summary
and the answers read its pooled sentence embeddings. So the cost is spaCy NER, language ID,
a few extra short texts in the pass, and numpy.

  python bench/card_fields.py [--model DIR] [--articles 8] [--rounds 5]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

# the schema-1.0 card: what the composer computed before the 1.1 fields
OFF = {"entities": {"enabled": False}, "language": {"enabled": False},
       "summary": {"enabled": False}, "key_questions": {"enabled": False}}
VARIANTS = {
    "1.0 fields only": OFF,
    "+ language": {**OFF, "language": {"enabled": True}},
    "+ entities": {**OFF, "entities": {"enabled": True}},
    "+ summary and key questions": {**OFF, "summary": {"enabled": True}, "key_questions": {"enabled": True}},
    "full 1.1 card (shipped)": {},
}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a model dir (default: an untrained MiniLM model with the default heads)")
    ap.add_argument("--articles", type=int, default=8, help="articles per call (the server's max_batch_size)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)

    import torch

    from biascard.model.model_dir import load as load_model_dir

    torch.set_num_threads(2)
    with common.report("card_fields", argv, save=not args.no_save):
        model, tok = load_model_dir(args.model or common.default_model_dir())
        arts = common.article_objects(common.articles(args.articles))
        composers = {name: common.make_composer(model, tok, settings=s) for name, s in VARIANTS.items()}
        for c in composers.values():
            c.compose(arts[:1])  # loads spaCy and langid once, outside the timing
        times = common.interleaved({n: (lambda c=c: c.compose(arts)) for n, c in composers.items()}, args.rounds)
        base = common.median(times["1.0 fields only"])
        rows = [[n, f"{common.median(t):.3f}", f"{common.median(t) / len(arts) * 1000:.0f}",
                 f"{(common.median(t) / base - 1) * 100:+.1f}%"] for n, t in times.items()]
        print(f"\n{len(arts)} articles per call, {args.rounds} rounds, median seconds per call:")
        print(common.table(rows, ["variant", "s per call", "ms per card", "vs 1.0 fields"]))


if __name__ == "__main__":
    main()
