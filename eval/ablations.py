"""The default model's ablations (templates/ablations.json) as one table of paired deltas.

  biascard eval ablations ROOT [--json] [--n-boot 1000]

Each ablation names a task, a metric and two eval runs by their path under ROOT (the
`outputs/` dir of `make default-model` and `make ablations`): A, the reference, and B, the
variant. B may be a list of runs: their probabilities are averaged per example (an ensemble).
A row gets the paired bootstrap delta B - A over the examples both scored, or "not run" when
a run dir is missing, so the table shows what was and was not measured.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from .bootstrap import paired_bootstrap
from .formatting import delta_ci, fmt
from .runs import load_run, task_outputs
from .tasks import Outputs, score
from .template_files import template_text


def load_ablations() -> list[dict]:
    return json.loads(template_text("ablations.json"))["ablations"]


def _run_outputs(root: Path, rel: str, task: str) -> Outputs | None:
    path = root / rel
    if not (path / "metrics.json").is_file():
        return None
    metrics, rows = load_run(path)
    if rows is None:
        raise ValueError(f"{path}: no predictions.jsonl, so no paired comparison is possible")
    return task_outputs(metrics, rows, task, "model")


def ensemble(outs: list[Outputs]) -> Outputs:
    """Mean probabilities over runs, on the examples every run scored (same labels required);
    a multilabel/binary ensemble decides at the mean of the members' thresholds."""
    first = outs[0]
    if first.type == "token":
        raise ValueError(f"{first.task}: token heads cannot be ensembled by probability")
    for o in outs[1:]:
        if o.type != first.type or list(o.labels) != list(first.labels):
            raise ValueError(f"{first.task}: ensemble members differ in head type or labels")
    common = [i for i in first.ids if all(i in set(o.ids) for o in outs[1:])]
    subs = []
    for o in outs:
        pos = {i: k for k, i in enumerate(o.ids)}
        subs.append(o.subset([pos[i] for i in common]))
    ths = [o.threshold for o in subs]
    return dataclasses.replace(subs[0], prob=np.mean([o.prob for o in subs], axis=0),
                               thresholds=np.mean(ths, axis=0) if first.type in ("binary", "multilabel") else None)


def measure(root: Path, ab: dict, n_boot: int = 1000, seed: int = 0) -> dict:
    task, metric = ab["task"], ab["metric"]
    a = _run_outputs(root, ab["a"], task)
    b_runs = ab["b"] if isinstance(ab["b"], list) else [ab["b"]]
    bs = [_run_outputs(root, r, task) for r in b_runs]
    if a is None or any(o is None for o in bs):
        missing = [r for r, o in zip([ab["a"], *b_runs], [a, *bs]) if o is None]
        return {**ab, "status": "not run", "missing": missing}
    b = bs[0] if len(bs) == 1 else ensemble(bs)
    pos_b = {i: k for k, i in enumerate(b.ids)}
    common = [(k, pos_b[i]) for k, i in enumerate(a.ids) if i in pos_b]
    if not common:
        raise ValueError(f"{ab['name']}: runs {ab['a']} and {ab['b']} share no example of {task}")
    sa, sb = a.subset([x for x, _ in common]), b.subset([y for _, y in common])
    res = paired_bootstrap(lambda idx: score(sa, idx, fast=True), lambda idx: score(sb, idx, fast=True),
                           len(common), n_boot=n_boot, seed=seed)[metric]
    # point estimates through the reported (scikit-learn) path
    return {**ab, "status": "measured", "n": len(common), "value_a": score(sa)[metric], "value_b": score(sb)[metric],
            "delta": res["delta"], "lo": res["lo"], "hi": res["hi"], "significant": res["significant"]}


def table(rows: list[dict]) -> str:
    lines = ["| ablation | task | metric | A | B | A value | B value | B − A [95% CI] | n |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        head = f"| {r['name']} | {r['task']} | {r['metric']} | {r['a_label']} | {r['b_label']} |"
        if r["status"] != "measured":
            lines.append(head + f" not run | not run | – ({', '.join(r['missing'])} missing) | – |")
            continue
        lines.append(head + f" {fmt(r['value_a'])} | {fmt(r['value_b'])} | {delta_ci(r)} | {r['n']} |")
    lines.append("")
    lines.append("`*`: the 95% CI of the paired bootstrap delta excludes 0.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="biascard eval ablations", description=__doc__.splitlines()[0])
    ap.add_argument("root", help="the dir the ablation run paths are relative to (e.g. outputs)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON instead of a markdown table")
    ap.add_argument("--n-boot", type=int, default=1000)
    args = ap.parse_args(argv)
    root = Path(args.root)
    if not root.is_dir():
        print(f"biascard eval ablations: error: {root} is not a directory")
        return 2
    try:
        rows = [measure(root, ab, n_boot=args.n_boot) for ab in load_ablations()]
    except ValueError as e:
        print(f"biascard eval ablations: error: {e}")
        return 2
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(table(rows))
    return 0
