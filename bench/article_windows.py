"""Windows per AllSides article: how many 128-token windows (stride 32, the release's chunking)
each article of each split makes, what share of articles has more than 4 or 8 windows, and
what share of all windows a cap of 4 or 8 (`data.max_chunks` in training) reads. Counts only
(no timing): what `make windows-ablation` changes in what a document head trains on.

  python bench/article_windows.py
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

CAPS = (4, 8)


def window_counts(records, tok, specs, batch: int = 256) -> list[int]:
    """The number of windows `encode` makes of each record (no cap), in record order."""
    from biascard.model.features import encode

    counts: list[int] = []
    for i in range(0, len(records), batch):
        enc = encode([{"text": r["text"]} for r in records[i:i + batch]], tok, specs, 128, 32, with_labels=False)
        counts += enc["doc_index"].bincount().tolist()
    return counts


def split_row(name: str, counts: list[int]) -> list:
    import numpy as np

    c = np.asarray(counts)
    row = [name, len(c), f"{c.mean():.1f}", int(np.median(c)), int(np.percentile(c, 90)), int(c.max())]
    for cap in CAPS:
        row += [f"{(c > cap).mean():.1%}", f"{np.minimum(c, cap).sum() / c.sum():.1%}"]
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)

    from biascard.data.prepare import prepare
    from biascard.model.modeling import load_tokenizer

    with common.report("article_windows", argv, save=not args.no_save):
        tok = load_tokenizer("minilm")
        specs = common.leaning_heads()
        data = prepare("allsides")
        rows = [split_row(split, window_counts(data[split].to_list(), tok, specs))
                for split in ("train", "validation", "test")]
        head = ["split", "articles", "mean windows", "median", "p90", "max"]
        for cap in CAPS:
            head += [f"> {cap} windows", f"windows read at {cap}"]
        print(common.table(rows, head))


if __name__ == "__main__":
    main()
