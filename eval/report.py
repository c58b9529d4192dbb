"""report.md and report.html (jinja2 templates in eval/templates) with PNG plots beside them."""
from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np

from .formatting import MAIN_METRICS, SYSTEM_NAMES, chunking_text, ci, delta_ci, fmt, slug
from .targets import table as targets_table
from .tasks import LOWER_IS_BETTER, Outputs, confusion, reliability
from .template_files import template_text


def load_anchors() -> list[dict]:
    return json.loads(template_text("anchors.json"))["anchors"]


def match_anchors(metrics: dict) -> list[dict]:
    """Each published anchor with our numbers on the same dataset, head and metric (when scored)."""
    out = []
    for a in load_anchors():
        task = f"{a['dataset']}/{a['head']}"
        ours = {}
        t = metrics.get("tasks", {}).get(task)
        if t:
            for system, s in t["systems"].items():
                if a["metric"] in s["metrics"]:
                    ours[system] = s["metrics"][a["metric"]]
        cv = {}
        for name, res in (metrics.get("cv") or {}).get("results", {}).items():
            if name == task:
                for system, s in res["systems"].items():
                    m = s["pooled"].get(a["metric"])
                    if m:
                        cv[system] = {"pooled": m, "fold_mean": s["fold_mean"].get(a["metric"]),
                                      "fold_sd": s["fold_sd"].get(a["metric"])}
        out.append({**a, "task": task, "ours": ours, "cv": cv})
    return out


# ------------------------------------------------------------------------- plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bound(m: dict, key: str) -> float:
    """An interval end, or the point itself where the interval is missing or not finite (no bar)."""
    b = m[key]
    return b if b is not None and math.isfinite(b) else m["value"]


def plot_summary(metrics: dict, path: Path) -> bool:
    """The primary metric of every task and system, with its 95% CI."""
    tasks = list(metrics["tasks"].items())
    if not tasks:
        return False
    plt = _plt()
    systems = [s for s in ("model", "majority", "tfidf_lr", "lexicon") if any(s in t["systems"] for _, t in tasks)]
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(tasks) * max(1, len(systems)) / 1.6 + 1.4))
    height = 0.8 / max(1, len(systems))
    for j, s in enumerate(systems):
        ys, xs, lo, hi = [], [], [], []
        for i, (task, t) in enumerate(tasks):
            m = t["systems"].get(s, {}).get("metrics", {}).get(t["primary"])
            if not m or m["value"] is None or not math.isfinite(m["value"]):
                continue
            ys.append(i + j * height)
            xs.append(m["value"])
            # a point outside its interval (marked † in the tables) gets no bar on that side
            lo.append(max(0.0, m["value"] - _bound(m, "lo")))
            hi.append(max(0.0, _bound(m, "hi") - m["value"]))
        ax.barh(ys, xs, height=height, xerr=[lo, hi], capsize=2, label=SYSTEM_NAMES.get(s, s))
    ax.set_yticks([i + height * (len(systems) - 1) / 2 for i in range(len(tasks))])
    ax.set_yticklabels([f"{task}\n({t['primary']})" for task, t in tasks], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("primary metric (95% bootstrap CI)")
    ax.set_xlim(0, 1)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_confusion(out: Outputs, path: Path) -> bool:
    m = confusion(out)
    if m is None:
        return False
    plt = _plt()
    k = m.shape[0]
    names = out.labels if out.type != "binary" or len(out.labels) == 2 else ["0", "1"]
    size = min(9.0, 2.5 + 0.45 * k)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    ax.imshow(m, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=7)
    ax.set_yticklabels(names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(f"{out.task}: confusion matrix (model)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_reliability(outs: dict[str, Outputs], path: Path, n_bins: int) -> bool:
    curves = {s: reliability(o, n_bins) for s, o in outs.items() if s in ("model", "tfidf_lr")}
    curves = {s: r for s, r in curves.items() if r is not None}
    if not curves:
        return False
    plt = _plt()
    fig, (ax, axh) = plt.subplots(2, 1, figsize=(4.8, 5.2), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="perfect calibration")
    for s, r in curves.items():
        b = r["bins"]
        conf, acc = np.asarray(b["confidence"], float), np.asarray(b["accuracy"], float)
        ok = np.isfinite(conf)
        ax.plot(conf[ok], acc[ok], "o-", ms=3, label=f"{SYSTEM_NAMES.get(s, s)} (ECE {r['ece']:.3f})")
        edges = np.asarray(b["edges"])
        axh.bar(edges[:-1], b["count"], width=np.diff(edges), align="edge", alpha=0.5, label=SYSTEM_NAMES.get(s, s))
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    task = next(iter(outs.values())).task
    ax.set_title(f"{task}: reliability (top-label confidence)", fontsize=9)
    axh.set_xlabel("confidence")
    axh.set_ylabel("count")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_cv(cv: dict, path: Path) -> bool:
    results = cv.get("results") or {}
    if not results:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 1.2 + 0.6 * len(results) * 2))
    row = 0
    labels = []
    for task, res in results.items():
        for s, v in res["systems"].items():
            vals = [f["metrics"].get(res["primary"]) for f in v["folds"]]
            vals = [x for x in vals if x is not None and math.isfinite(x)]
            ax.plot(vals, [row] * len(vals), "o", alpha=0.6)
            pooled = v["pooled"].get(res["primary"])
            if pooled:
                ax.errorbar([pooled["value"]], [row], xerr=[[pooled["value"] - pooled["lo"]], [pooled["hi"] - pooled["value"]]],
                            fmt="k|", capsize=3)
            labels.append(f"{task} · {SYSTEM_NAMES.get(s, s)}")
            row += 1
    ax.set_yticks(range(row))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("primary metric per fold (dots); pooled out-of-fold with 95% CI (bar)")
    ax.set_title(f"{cv['folds']}-fold cross-validation on {cv['dataset']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ------------------------------------------------------------------------ render


def _group_rows(t: dict) -> tuple[list[str], list[dict]]:
    """The by-group table: per group, each system's primary metric and accuracy (where scored).
    Its columns are the systems the groups were scored for (runner.group_breakdown picks them)."""
    fields = t.get("groups") or {}
    scored = {s for gs in fields.values() for e in gs.values() for s in e.get("systems") or {}}
    order = [s for s in t["systems"] if s in scored]
    rows = []
    for field, gs in fields.items():
        for g, e in gs.items():
            per = e.get("systems") or {}
            cells = []
            for s in order:
                m = per.get(s) or {}
                cells += [ci(m.get(t["primary"])), ci(m.get("accuracy")) if "accuracy" in m else "–"]
            rows.append({"field": field, "group": g, "n": e["n"], "cells": cells})
    return [SYSTEM_NAMES.get(s, s) for s in order], rows


def _task_view(task: str, t: dict, plots: dict) -> dict:
    systems = list(t["systems"])
    rows = []
    for name in MAIN_METRICS[t["type"]]:
        cells = [t["systems"][s]["metrics"].get(name) for s in systems]
        if any(cells):
            rows.append({"metric": name + (" (lower is better)" if name in LOWER_IS_BETTER else ""),
                         "primary": name == t["primary"], "cells": [ci(m) for m in cells]})
    prefixes = ("precision/", "recall/", "f1/")
    names = [k for k in t["systems"][systems[0]]["metrics"] if k.startswith(prefixes)] if systems else []
    per_class = [{"metric": name, "cells": [ci(t["systems"][s]["metrics"].get(name)) for s in systems]}
                 for name in names]
    group_systems, groups = _group_rows(t)
    return {
        "task": task, "slug": slug(task), "type": t["type"], "n": t["n"], "n_train": t.get("n_train"),
        "primary": t["primary"], "systems": [SYSTEM_NAMES.get(s, s) for s in systems], "rows": rows,
        "per_class": per_class, "groups": groups, "group_systems": group_systems, "plots": plots.get(task, {}),
        "info": {s: v.get("info") for s, v in t["systems"].items() if v.get("info")},
        "labels": t["labels"], "gold_distribution": t.get("gold_distribution"),
    }


def _anchor_view(a: dict) -> dict:
    ours = [f"{SYSTEM_NAMES.get(s, s)} {ci(m)}" for s, m in a["ours"].items()]
    cv = [f"{SYSTEM_NAMES.get(s, s)} pooled {ci(v['pooled'])}, fold mean {fmt(v['fold_mean'])} ± {fmt(v['fold_sd'])}"
          for s, v in a["cv"].items()]
    return {**a, "ours_items": ours or ["not scored in this run"], "ours_text": "; ".join(ours) or "not scored in this run",
            "cv_items": cv, "cv_text": "; ".join(cv)}


def _by_head_view(metrics: dict) -> list[dict]:
    rows = []
    for head, ds in (metrics.get("by_head") or {}).items():
        for d, task in ds.items():
            t = metrics["tasks"][task]
            rows.append({"head": head, "dataset": d, "n": t["n"], "primary": t["primary"],
                         "cells": {s: ci(v["metrics"].get(t["primary"])) for s, v in t["systems"].items()}})
    return rows


def _cv_view(cv: dict | None, plots: dict) -> dict | None:
    if not cv:
        return None
    rows = []
    for task, res in cv["results"].items():
        for s, v in res["systems"].items():
            for name in MAIN_METRICS[res["type"]][:3]:
                if name in v["pooled"]:
                    rows.append({"task": task, "system": SYSTEM_NAMES.get(s, s), "metric": name,
                                 "mean": fmt(v["fold_mean"].get(name)), "sd": fmt(v["fold_sd"].get(name)),
                                 "pooled": ci(v["pooled"].get(name)),
                                 "folds": ", ".join(fmt(f["metrics"].get(name)) for f in v["folds"])})
    paired = [{"task": task, "system": SYSTEM_NAMES.get(s, s), "metric": res["primary"],
               "delta": delta_ci(d[res["primary"]])}
              for task, res in cv["results"].items() for s, d in (res.get("paired") or {}).items()
              if res["primary"] in d]
    chunks = chunking_text(cv["chunking"]) if cv.get("chunking") else None
    return {**cv, "rows": rows, "paired": paired, "plot": plots.get("__cv__"), "chunking_text": chunks}



def _cards_view(sample_cards: dict | None) -> dict | None:
    if sample_cards is None:
        return None
    from biascard.card import render_text

    cards = {"note": sample_cards.get("note"), "items": []}
    for item in sample_cards.get("cards") or []:
        try:
            text = render_text(item["card"])
        except Exception as e:  # noqa: BLE001 - a card the text layout rejects is shown as JSON
            text = f"(render_text failed: {e})\n" + json.dumps(item["card"], indent=1)
        cards["items"].append({**item, "text": text, "file": item.get("file"), "srcdoc": item.get("srcdoc")})
    return cards


def _view(metrics: dict, plots: dict, sample_cards: dict | None) -> dict:
    return {
        "m": metrics,
        "tasks": [_task_view(task, t, plots) for task, t in metrics["tasks"].items()],
        "anchors": [_anchor_view(a) for a in metrics.get("anchors") or []],
        "targets": targets_table(metrics["targets"]) if metrics.get("targets") else None,
        "by_head": _by_head_view(metrics),
        "cv": _cv_view(metrics.get("cv"), plots),
        "cards": _cards_view(sample_cards),
        "chunking": chunking_text(metrics["chunking"]) if metrics.get("chunking") else None,
        "summary_plot": plots.get("__summary__"), "system_names": SYSTEM_NAMES,
    }


def _write_plots(metrics: dict, outputs_all: dict[str, dict[str, Outputs]], out_dir: Path, ece_bins: int) -> dict:
    """plots/*.png; each task's plot paths also go into its metrics entry."""
    plot_paths: dict = {}
    (out_dir / "plots").mkdir(exist_ok=True)
    if plot_summary(metrics, out_dir / "plots" / "summary.png"):
        plot_paths["__summary__"] = "plots/summary.png"
    for task, outs in outputs_all.items():
        mine: dict[str, str] = {}
        s = slug(task)
        if "model" in outs and plot_confusion(outs["model"], out_dir / "plots" / f"confusion_{s}.png"):
            mine["confusion"] = f"plots/confusion_{s}.png"
        if plot_reliability(outs, out_dir / "plots" / f"reliability_{s}.png", ece_bins):
            mine["reliability"] = f"plots/reliability_{s}.png"
        plot_paths[task] = mine
        if task in metrics["tasks"]:
            metrics["tasks"][task]["plots"] = mine
    if metrics.get("cv") and plot_cv(metrics["cv"], out_dir / "plots" / "cv.png"):
        plot_paths["__cv__"] = "plots/cv.png"
    return plot_paths


def _write_cards(sample_cards: dict, out_dir: Path) -> None:
    """cards/card_<i>.html; each item gets its file and an inline copy, or the error that stopped it."""
    from biascard.card import render_html

    (out_dir / "cards").mkdir(exist_ok=True)
    for i, item in enumerate(sample_cards["cards"]):
        name = f"cards/card_{i + 1}.html"
        try:
            page = render_html(item["card"])
            (out_dir / name).write_text(page, encoding="utf-8")
            item["file"] = name
            # inline too: a same-origin srcdoc frame renders in every viewer (file:// frames are
            # cross-origin, and headless full-page captures leave them blank)
            item["srcdoc"] = html.escape(page, quote=True)
        except Exception as e:  # noqa: BLE001 - an invalid card is a finding, shown in the report
            item["error"] = f"{type(e).__name__}: {e}"


def write_report(
    metrics: dict,
    outputs_all: dict[str, dict[str, Outputs]],
    out_dir: Path,
    *,
    plots: bool = True,
    sample_cards: dict | None = None,
    ece_bins: int = 15,
) -> dict[str, Path]:
    """Write plots/, cards/, report.md and report.html into out_dir; return their paths.

    `sample_cards`: {"cards": [{"record": {...}, "card": card_dict}], "note": str | None}
    or None (not asked for). Cards are rendered with biascard.card.render_html.
    """
    import jinja2

    out_dir = Path(out_dir)
    plot_paths = _write_plots(metrics, outputs_all, out_dir, ece_bins) if plots else {}
    if sample_cards is not None and sample_cards.get("cards"):
        _write_cards(sample_cards, out_dir)
    metrics["sample_cards"] = None if sample_cards is None else {
        "note": sample_cards.get("note"),
        "ids": [c["record"]["id"] for c in sample_cards.get("cards") or []],
    }
    view = _view(metrics, plot_paths, sample_cards)
    env = jinja2.Environment(autoescape=False, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["ci"] = ci
    env.filters["fmt"] = fmt
    env.filters["e"] = lambda s: html.escape(str(s))
    md = env.from_string(template_text("report.md.j2")).render(**view)
    page = env.from_string(template_text("report.html.j2")).render(**view)
    (out_dir / "report.md").write_text(md, encoding="utf-8")
    (out_dir / "report.html").write_text(page, encoding="utf-8")
    return {"md": out_dir / "report.md", "html": out_dir / "report.html"}
