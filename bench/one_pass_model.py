"""A one-pass copy of a model dir, for speed only: the same weights with
`document_reading: sentences` and a fresh (untrained) attention pool, so a card takes one
encoder pass instead of two. Its document heads are not trained to read sentences: compare
its cards/s, never its cards.

  python bench/one_pass_model.py [--model models/biascard-minilm] [--out outputs/bench/one-pass]
  python bench/serve_throughput.py --model models/biascard-minilm --variant one_pass=model_path=outputs/bench/one-pass
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/biascard-minilm")
    ap.add_argument("--out", default="outputs/bench/one-pass")
    args = ap.parse_args(argv)

    from biascard.model import model_dir
    from biascard.model.modeling import BiasCardConfig, BiasCardModel

    model, _ = model_dir.load(args.model)
    config = BiasCardConfig(**{**model.config.to_dict(), "document_reading": "sentences"})
    one_pass = BiasCardModel(config)
    missing, unexpected = one_pass.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not k.startswith("document_pool.") for k in missing):
        raise SystemExit(f"weights do not carry over: missing {missing}, unexpected {unexpected}")
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(args.model, out)  # tokenizer, thresholds, calibration
    one_pass.save_pretrained(out)
    model_dir.write_checksums(out)
    print(f"{out}: {args.model} with document_reading=sentences (fresh pool: {missing})")


if __name__ == "__main__":
    main()
