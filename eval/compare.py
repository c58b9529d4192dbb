"""`biascard eval compare RUN_A RUN_B`: metric deltas between two eval runs, with significance.

With predictions.jsonl in both runs, deltas get a paired bootstrap: the same resampled
examples (matched by id) score both runs, and a delta is significant when its 95% CI
excludes 0. Without predictions, the runs' own CIs are compared: significant only when
they do not overlap (conservative).
"""
from __future__ import annotations

import argparse
import math

import numpy as np

from .bootstrap import paired_bootstrap
from .formatting import MAIN_METRICS, fmt, write_outputs
from .runs import load_run, task_outputs
from .tasks import LOWER_IS_BETTER, Outputs, dumps, score


def paired_outputs(oa: Outputs, ob: Outputs, n_boot: int, seed: int, ece_bins: int) -> tuple[dict, int] | None:
    """(per metric b - a on a paired bootstrap over the ids both score, their count), or None
    when the two cannot be paired (other type or labels, no id in common)."""
    if oa.type != ob.type or list(oa.labels) != list(ob.labels):
        return None
    ids_b = {i: k for k, i in enumerate(ob.ids)}
    common = [(k, ids_b[i]) for k, i in enumerate(oa.ids) if i in ids_b]
    if not common:
        return None
    ia, ib = [a for a, _ in common], [b for _, b in common]
    a, b = oa.subset(ia), ob.subset(ib)
    same_gold = all(x == y for x, y in zip(a.gold, b.gold)) if a.type == "token" else np.array_equal(a.gold, b.gold)
    if not same_gold:
        raise ValueError(f"{oa.task}: the two runs disagree on the gold labels of the same ids")
    res = paired_bootstrap(
        lambda idx: score(a, idx, ece_bins=ece_bins, fast=True),
        lambda idx: score(b, idx, ece_bins=ece_bins, fast=True),
        len(common), n_boot=n_boot, seed=seed,
    )
    return res, len(common)


def compare(run_a, run_b, *, system: str = "model", b_system: str | None = None, n_boot: int = 1000,
            seed: int = 0, ece_bins: int = 15) -> dict:
    """{task: {metric: {a, b, delta, lo, hi, significant, better, method}}} for the tasks in both runs."""
    b_system = b_system or system
    ma, ra = load_run(run_a)
    mb, rb = load_run(run_b)
    out: dict = {"a": str(run_a), "b": str(run_b), "system_a": system, "system_b": b_system, "n_boot": n_boot,
                 "tasks": {}, "primary": {}}
    for task in [t for t in ma["tasks"] if t in mb["tasks"]]:
        ta, tb = ma["tasks"][task], mb["tasks"][task]
        if system not in ta["systems"] or b_system not in tb["systems"]:
            continue
        wanted = MAIN_METRICS.get(ta["type"], [])
        primary = ta["primary"]  # every run's metrics.json names it, as the report reads it
        wanted = [primary] + [m for m in wanted if m != primary]
        paired = None
        oa, ob = task_outputs(ma, ra, task, system), task_outputs(mb, rb, task, b_system)
        if oa is not None and ob is not None:
            paired = paired_outputs(oa, ob, n_boot, seed, ece_bins)
        rows = {}
        for name in wanted:
            if paired is not None and name in paired[0]:
                d = paired[0][name]
                row = {**{k: d[k] for k in ("a", "b", "delta", "lo", "hi", "p", "significant")},
                       "method": f"paired bootstrap (n={paired[1]})"}
            else:
                ca = ta["systems"][system]["metrics"].get(name)
                cb = tb["systems"][b_system]["metrics"].get(name)
                if not ca or not cb or ca.get("value") is None or cb.get("value") is None:
                    continue
                overlap = not (ca["hi"] is not None and cb["lo"] is not None and ca["hi"] < cb["lo"]) and \
                    not (cb["hi"] is not None and ca["lo"] is not None and cb["hi"] < ca["lo"])
                row = {"a": ca["value"], "b": cb["value"], "delta": cb["value"] - ca["value"], "lo": None, "hi": None,
                       "p": None, "significant": not overlap, "method": "CI overlap (no paired predictions)"}
            if row["significant"] and row["delta"] is not None and math.isfinite(row["delta"]) and row["delta"] != 0:
                b_better = (row["delta"] < 0) if name in LOWER_IS_BETTER else (row["delta"] > 0)
                row["better"] = "B" if b_better else "A"
            else:
                row["better"] = None
            rows[name] = row
        out["tasks"][task] = rows
        if primary in rows:
            out["primary"][task] = primary
    out["verdict"] = release_verdict(out)
    return out


def release_verdict(res: dict) -> dict:
    """The rule a release candidate B must pass against the released A: a higher mean of the tasks'
    primary metrics, and no task whose primary metric is significantly worse."""
    rows = {t: res["tasks"][t][m] for t, m in res["primary"].items()}
    sign = {t: -1.0 if m in LOWER_IS_BETTER else 1.0 for t, m in res["primary"].items()}
    gains = [sign[t] * r["delta"] for t, r in rows.items() if r["delta"] is not None and math.isfinite(r["delta"])]
    worse = sorted(t for t, r in rows.items() if r["better"] == "A")
    mean = float(np.mean(gains)) if gains else float("nan")
    return {"mean_gain": mean, "n_tasks": len(gains), "worse": worse, "b_replaces_a": bool(gains) and mean > 0 and not worse}


def to_markdown(res: dict) -> str:
    lines = [
        f"A = {res['a']} ({res['system_a']}), B = {res['b']} ({res['system_b']})",
        "`*` marks a delta whose 95% CI excludes 0 (paired bootstrap over the same examples), or, "
        "without saved predictions, CIs that do not overlap.",
        "",
        "| task | metric | A | B | B − A | 95% CI of delta | p | significant | better |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task, rows in res["tasks"].items():
        for name, r in rows.items():
            ci = f"[{fmt(r['lo'])}, {fmt(r['hi'])}]" if r["lo"] is not None else "–"
            lines.append(
                f"| {task} | {name} | {fmt(r['a'])} | {fmt(r['b'])} | {r['delta']:+.3f} | {ci} | "
                f"{fmt(r['p'])} | {'*' if r['significant'] else ''} | {r['better'] or ''} |"
            )
    if not res["tasks"]:
        lines.append("| (no task in both runs) | | | | | | | | |")
    v = res["verdict"]
    verdict = "measures better and may replace A" if v["b_replaces_a"] else "does not measure better than A"
    lines += ["", (f"Primary metrics: B − A is {v['mean_gain']:+.3f} on average over {v['n_tasks']} tasks; "
                   f"significantly worse in B: {', '.join(v['worse']) or 'none'}. B {verdict}.")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="biascard eval compare", description=__doc__.splitlines()[0])
    ap.add_argument("run_a", help="eval run dir (with metrics.json, predictions.jsonl)")
    ap.add_argument("run_b")
    ap.add_argument("--system", default="model", help="system of run A to compare (model, majority, tfidf_lr, lexicon)")
    ap.add_argument("--b-system", default=None, help="system of run B (default: --system)")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="also write compare.md and compare.json into this dir")
    args = ap.parse_args(argv)
    res = compare(args.run_a, args.run_b, system=args.system, b_system=args.b_system, n_boot=args.n_boot, seed=args.seed)
    md = to_markdown(res)
    print(md, end="")
    if args.out:
        write_outputs(args.out, "compare", md, dumps(res))
    return 0
