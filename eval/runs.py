"""Eval run dirs read back: metrics.json and predictions.jsonl (for compare, targets, ablations)."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from .tasks import Outputs

Rows = dict[tuple[str, str], list[dict]]


def run_dir(run: str | Path) -> Path:
    """An eval run dir, given the dir or its metrics.json."""
    run = Path(run)
    if (run / "metrics.json").is_file():
        return run
    if run.name == "metrics.json" and run.is_file():
        return run.parent
    raise FileNotFoundError(f"{run}: no metrics.json (pass an eval run dir)")


def load_metrics(run: str | Path) -> dict:
    return json.loads((run_dir(run) / "metrics.json").read_text(encoding="utf-8"))


def load_run(run: str | Path) -> tuple[dict, Rows | None]:
    """metrics.json and the prediction rows by (task, system); None without predictions.jsonl."""
    run = run_dir(run)
    metrics = load_metrics(run)
    pred_file = run / "predictions.jsonl"
    if not pred_file.is_file():
        return metrics, None
    rows: Rows = defaultdict(list)
    with open(pred_file, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                rows[(r["task"], r["system"])].append(r)
            except (json.JSONDecodeError, KeyError) as e:
                raise ValueError(f"{pred_file}:{n}: not a prediction row ({e})") from None
    return metrics, rows


def task_outputs(metrics: dict, rows: Rows | None, task: str, system: str) -> Outputs | None:
    """One system's Outputs on one task, rebuilt from its prediction rows (None if not saved)."""
    t = metrics["tasks"].get(task)
    if rows is None or t is None or (task, system) not in rows:
        return None
    meta = t.get("meta") or {"head": t["head"], "type": t["type"], "labels": t["labels"]}
    if system != "model":  # the saved thresholds are the model's; baselines decide at 0.5, as eval scored them
        meta = {**meta, "thresholds": None}
    return Outputs.from_rows(task, meta, rows[(task, system)])
