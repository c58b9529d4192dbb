"""How eval writes numbers, system names and chunking: shared by the report and by the
tables of compare, targets and ablations."""
from __future__ import annotations

import math
from pathlib import Path

SYSTEM_NAMES = {
    "model": "model",
    "model_unfused": "model before fusing",
    "majority": "majority class",
    "tfidf_lr": "TF-IDF + LR",
    "lexicon": "train lexicon",
}
# metrics listed in the main table, by head type (per-class ones go to a details table)
MAIN_METRICS = {
    "binary": ["macro_f1", "accuracy", "roc_auc", "pr_auc", "ece"],
    "multiclass": ["macro_f1", "accuracy", "ece"],
    "multilabel": ["macro_f1", "top1_macro_f1", "micro_f1", "mAP", "top1_accuracy"],
    "ordinal": ["qwk", "mae", "spearman", "within1", "accuracy", "ece"],
    "token": ["span_f1", "span_precision", "span_recall"],
}


def fmt(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{digits}f}"


def delta_ci(d: dict) -> str:
    """A paired bootstrap delta (`bootstrap.paired_bootstrap`'s entry) as "+0.012 [-0.003, +0.027]",
    with " *" when its CI excludes 0."""
    return f"{d['delta']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]" + (" *" if d["significant"] else "")


def ci(m: dict | None, digits: int = 3) -> str:
    if not m:
        return "–"
    if m.get("lo") is None or not math.isfinite(m.get("lo", float("nan"))):
        return fmt(m.get("value"), digits)
    mark = "†" if m.get("point_outside") else ""
    return f"{fmt(m['value'], digits)} [{fmt(m['lo'], digits)}, {fmt(m['hi'], digits)}]{mark}"


def slug(task: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in task.replace("/", "__"))


def chunks_text(max_chunks: int | None) -> str:
    return "every chunk" if max_chunks is None else f"the first {max_chunks} chunk(s)"


def chunking_text(ch: dict) -> str:
    """One line on how the model read long records (`predict.chunking`'s dict)."""
    line = (f"{ch['max_length']}-token chunks, stride {ch['stride']}; {chunks_text(ch['max_chunks'])} per record")
    if ch["overridden"]:
        return (line + f" (predict.max_chunks, an override: the model's config.json and the server read "
                       f"{chunks_text(ch['model_max_chunks'])})")
    return line + " (the model's config.json max_chunks, as the server reads)"


def write_outputs(out_dir, stem: str, markdown: str, json_text: str) -> None:
    """`<stem>.md` and `<stem>.json` of a command's result into `out_dir` (created)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text(markdown, encoding="utf-8")
    (out / f"{stem}.json").write_text(json_text, encoding="utf-8")
