"""The default model's targets (templates/targets.json) against what eval runs measured.

  biascard eval targets RUN [RUN ...] [--json]

Each target is read from the first run that measured it on its own protocol: a fixed-split
target from a run's `tasks` (the test split, whole: a run with max_examples does not count),
a k-fold target from a run's `cv` section with the model trained per fold. A run whose model
read other chunks than its config.json names (a predict.max_chunks study) does not count.
The table is what the README's default-model table is pasted from.
"""
from __future__ import annotations

import argparse
import json

from .formatting import ci, fmt
from .runs import load_metrics
from .template_files import template_text


def load_targets() -> list[dict]:
    return json.loads(template_text("targets.json"))["targets"]


def _rechunked(section: dict) -> bool:
    """The model read other chunks than its config.json names (predict.max_chunks), or ran as a
    precision or lexical-branch study (predict.precision, predict.lexical): not the served model."""
    study = ((section.get("config") or {}).get("predict") or {})
    return bool((section.get("chunking") or {}).get("overridden")) or \
        study.get("precision", "fp32") != "fp32" or study.get("lexical", True) is False


def _from_tasks(t: dict, metrics: dict) -> dict | None:
    task = f"{t['dataset']}/{t['head']}"
    entry = metrics.get("tasks", {}).get(task)
    cfg = metrics.get("config") or {}
    if not entry or metrics.get("split") != "test" or cfg.get("max_examples") or _rechunked(metrics):
        return None
    systems = entry["systems"]
    model = systems.get("model", {}).get("metrics", {}).get(t["metric"])
    if not model:
        return None
    base = systems.get("tfidf_lr", {}).get("metrics", {}).get(t["metric"])
    return {"value": model["value"], "text": ci(model), "tfidf_lr": ci(base) if base else "–", "n": entry["n"]}


def _from_cv(t: dict, metrics: dict) -> dict | None:
    cv = metrics.get("cv") or {}
    if cv.get("dataset") != t["dataset"] or int(cv.get("folds") or 0) != int(t.get("folds") or 0):
        return None
    if cv.get("train_cap") or _rechunked(cv):
        return None  # a smoke setting or a chunking study, not the protocol
    res = (cv.get("results") or {}).get(f"{t['dataset']}/{t['head']}")
    if not res or "model" not in res["systems"]:
        return None
    s = res["systems"]["model"]
    mean, sd = s["fold_mean"].get(t["metric"]), s["fold_sd"].get(t["metric"])
    if mean is None:
        return None
    base = res["systems"].get("tfidf_lr", {}).get("fold_mean", {}).get(t["metric"])
    return {"value": mean, "text": f"{fmt(mean)} ± {fmt(sd)} (pooled {ci(s['pooled'].get(t['metric']))})",
            "tfidf_lr": fmt(base) if base is not None else "–", "n": sum(f["n"] for f in s["folds"]),
            "trained_with": (" ".join(cv.get("train_overrides") or []) or "training defaults")
            + (f", fused on {sorted(cv['fuse']['heads'])}" if cv.get("fuse") else "")}


def match(runs: list[tuple[str, dict]]) -> list[dict]:
    """One row per target: the measurement (or None), its gap to the target and which run it came from."""
    rows = []
    for t in load_targets():
        found, source = None, None
        for name, metrics in runs:
            found = _from_cv(t, metrics) if t["protocol"] == "cv" else _from_tasks(t, metrics)
            if found:
                source = name
                break
        row = {**t, "task": f"{t['dataset']}/{t['head']}", "measured": found, "run": source}
        if found:
            row["gap"] = found["value"] - t["target"]
            row["status"] = "met" if row["gap"] >= 0 else "missed"
        else:
            row["gap"] = None
            row["status"] = "not measured"
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| head | dataset | protocol | floor | ours: TF-IDF+LR | model | target | gap | status |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r["measured"] or {}
        gap = "–" if r["gap"] is None else f"{r['gap']:+.3f}"
        lines.append(f"| `{r['head']}` | {r['dataset']} | {r['protocol_text']} | {r['floor']} | {m.get('tfidf_lr', '–')} "
                     f"| {m.get('text', '–')} | ≥ {r['target']} | {gap} | {r['status']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="biascard eval targets", description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="eval run dirs (or their metrics.json), searched in order")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON instead of a markdown table")
    args = ap.parse_args(argv)
    rows = match([(r, load_metrics(r)) for r in args.runs])
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(table(rows))
    for r in rows:
        if r["run"]:
            extra = f"; model trained per fold with: {r['measured']['trained_with']}" if r["protocol"] == "cv" else ""
            print(f"\n- {r['task']} from {r['run']} (n={r['measured']['n']}{extra})", end="")
    print()
    return 0
