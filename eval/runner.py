"""`biascard-eval`: score a model dir and the baselines on the same split, write the report.

Output dir: metrics.json (every metric with its bootstrap CI), predictions.jsonl (one row
per system, task and example, for paired comparisons), report.md, report.html, plots/*.png
and, with report.sample_cards > 0, cards/*.html.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .baselines import label_set, labeled, run_baselines
from .predict import predict_records
from .tasks import PRIMARY, TYPES, Outputs, dumps, merge_spans, score_with_ci

# the command line as typed (set by __main__ before Hydra rewrites sys.argv)
COMMAND: str | None = None


def _plain(cfg) -> dict:
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        # paths/hydra hold ${hydra:...} interpolations that only resolve inside a Hydra app
        keep = {k: cfg[k] for k in cfg if k not in ("hydra", "paths")}
        out = OmegaConf.to_container(OmegaConf.create(keep), resolve=True)
        out["paths"] = {k: cfg.paths.get(k) for k in ("data_dir", "cache_dir")} if "paths" in cfg else {}
        return out
    return dict(cfg)


def prepare_kwargs(c: dict) -> dict:
    paths = c.get("paths") or {}
    kw = {}
    if paths.get("data_dir"):
        kw["data_dir"] = Path(paths["data_dir"])
    if paths.get("cache_dir"):
        kw["cache_dir"] = Path(paths["cache_dir"])
    return kw


def load_dataset_dict(name: str, c: dict, notes: list[str]):
    """prepare(name), with the adapter's printed summary (skipped rows) kept as a report note."""
    from biascard.data.prepare import prepare

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        dsd = prepare(name, **prepare_kwargs(c))
    for line in buf.getvalue().splitlines():
        if line.strip():
            notes.append(f"data {name}: {line.strip()}")
    return dsd


def resolve_datasets(c: dict, model_heads: set[str] | None, model_dir: str | None) -> tuple[list[str], str]:
    """The datasets to score, and where that choice came from (shown in the report)."""
    from biascard.data.adapters import ADAPTERS

    if c.get("datasets"):
        names = c["datasets"]
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        how = "datasets="
    elif c.get("data") and c["data"].get("datasets"):
        names, how = list(c["data"]["datasets"]), "data="
    else:
        names, how = [], ""
        if model_dir and (Path(model_dir) / "training.json").is_file():
            trained = json.loads((Path(model_dir) / "training.json").read_text()).get("datasets") or []
            names, how = [n for n in trained if n in ADAPTERS], "the model's training.json"
        if not names:
            names = [n for n, a in ADAPTERS.items() if model_heads is None or set(a.heads) & model_heads]
            names = [n for n in names if n != "cards"]  # cards are user data, not a benchmark
            how = "every dataset that labels one of the model's heads"
    unknown = [n for n in names if n not in ADAPTERS]
    if unknown:
        raise ValueError(f"unknown dataset(s) {unknown}; known: {', '.join(sorted(ADAPTERS))}")
    return names, how


def _subset(records: list[dict], cap: int | None, seed: int) -> list[dict]:
    if not cap or len(records) <= cap:
        return records
    keep = np.sort(np.random.default_rng(seed).permutation(len(records))[:cap])
    return [records[i] for i in keep]


def head_labels(kind: str, spec_labels: list[str] | None, head: str, *record_lists) -> tuple[list[str], list[str]]:
    """The labels a task is scored over, and the data values the model has never seen.

    Multiclass/ordinal: the model's classes (its argmax ranges over all of them) plus unseen
    values (scored as never predicted). Multilabel: the labels this dataset annotates, as
    a head shared by datasets (topic: BABE's 23, AllSides' 108) would otherwise average in
    labels that the dataset cannot have. Binary/token: the model's two labels.
    """
    data_labels = label_set(kind, *record_lists, head=head)
    if spec_labels is None:
        return data_labels, []
    if kind in ("binary", "token"):
        return list(spec_labels), []
    extra = [x for x in data_labels if x not in spec_labels]
    if kind == "multilabel":
        return data_labels, extra
    return list(spec_labels) + extra, extra


def align_prob(prob: np.ndarray, have: list[str], want: list[str]) -> np.ndarray:
    """Probability columns named `have` rearranged to `want`; a label the model lacks gets 0."""
    if prob.ndim == 1 or list(have) == list(want):
        return prob
    out = np.zeros((prob.shape[0], len(want)))
    for j, label in enumerate(have):
        if label in want:
            out[:, want.index(label)] = prob[:, j]
    return out


def model_outputs(task, head, kind, labels, model_labels, records, pred, span_label=None, thresholds=None) -> Outputs:
    """The model's Outputs; `thresholds` (the head's fitted ones, in `model_labels` order) follow the columns."""
    from .baselines import encode_gold

    if kind == "token":
        spans = [merge_spans(s, r["text"]) for s, r in zip(pred["spans"], records)]
        prob = None
    else:
        prob = align_prob(np.asarray(pred["prob"], dtype=float), list(model_labels), list(labels))
        spans = None
    if thresholds is not None and kind == "multilabel":
        # a label the model lacks has P = 0: any threshold leaves it unpredicted
        by_label = dict(zip(model_labels, thresholds))
        thresholds = [by_label.get(label, 0.5) for label in labels]
    return Outputs(
        task=task, head=head, type=kind, labels=labels,
        ids=[r["id"] for r in records], dataset=[r["dataset"] for r in records],
        outlet=[r.get("outlet") for r in records],
        gold=encode_gold(records, head, kind, labels, span_label), prob=prob, spans=spans,
        thresholds=thresholds,
    )


def group_breakdown(out: Outputs, field: str, c: dict) -> dict[str, dict]:
    """Metrics with CIs per value of `field` (outlet or dataset); small groups get n only."""
    values = getattr(out, field)
    groups: dict[str, list[int]] = {}
    for i, v in enumerate(values):
        groups.setdefault(v if v is not None else "(none)", []).append(i)
    if len(groups) < 2:
        return {}
    b = c["bootstrap"]
    res = {}
    for g, idx in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        entry: dict[str, Any] = {"n": len(idx)}
        if len(idx) >= int(c.get("min_group_size") or 1):
            entry["metrics"] = score_with_ci(
                out.subset(idx), n_boot=int(b["n_boot"]), seed=int(b["seed"]), ci=float(b["ci"]), ece_bins=int(c["ece_bins"])
            )
        res[g] = entry
    return res


def score_systems(outputs: dict[str, Outputs], c: dict) -> dict[str, dict]:
    b = c["bootstrap"]
    return {
        s: {
            "metrics": score_with_ci(o, n_boot=int(b["n_boot"]), seed=int(b["seed"]), ci=float(b["ci"]), ece_bins=int(c["ece_bins"])),
            "info": dict(o.info),
        }
        for s, o in outputs.items()
    }


def run_eval(cfg, out_dir: str | Path) -> dict:
    """Evaluate as configured (a Hydra DictConfig or a plain dict) into `out_dir`; return metrics.json's dict."""
    c = _plain(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    systems = list(c.get("systems") or ["model", "majority", "tfidf_lr"])
    unknown = [s for s in systems if s not in ("model", "majority", "tfidf_lr")]
    if unknown:
        raise ValueError(f"systems: unknown {unknown}; choose from model, majority, tfidf_lr")
    cv_cfg = c.get("cv") or {}
    model_dir = c.get("model_dir")
    metrics: dict[str, Any] = {
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "model_dir": str(Path(model_dir).resolve()) if model_dir else None,
        "split": c.get("split", "test"),
        "bootstrap": c["bootstrap"],
        "config": {k: v for k, v in c.items() if k != "paths"},
        "command": COMMAND or " ".join(sys.argv),
        "notes": notes,
        "tasks": {},
    }
    if int(cv_cfg.get("folds") or 0) > 1:
        from .cv import run_cv

        metrics["cv"] = run_cv(c, out_dir, notes)
        if not model_dir:
            return write_run(metrics, {}, c, out_dir, None)

    model = tokenizer = None
    if "model" in systems:
        if not model_dir:
            raise ValueError("model=DIR is required (a model dir with config.json and model.safetensors), "
                             "or set systems=[majority,tfidf_lr] for baselines only")
        from biascard.train.modeling import load_model_dir

        if not Path(model_dir).is_dir():
            raise FileNotFoundError(f"model dir {model_dir} does not exist")
        model, tokenizer = load_model_dir(model_dir)
        if (c.get("predict") or {}).get("num_threads"):
            import torch

            torch.set_num_threads(int(c["predict"]["num_threads"]))
    specs = model.head_specs if model is not None else {}
    names, how = resolve_datasets(c, set(specs) if model is not None else None, model_dir)
    metrics["datasets"] = names
    metrics["datasets_from"] = how
    split = c.get("split", "test")
    p = c.get("predict") or {}
    outputs_all: dict[str, dict[str, Outputs]] = {}
    capped: list[str] = []
    from biascard.data.records import HEADS

    for name in names:
        dsd = load_dataset_dict(name, c, notes)
        if split not in dsd:
            raise ValueError(f"dataset {name!r} has no split {split!r} (it has {list(dsd)})")
        test = dsd[split].to_list()
        n_full = len(test)
        test = _subset(test, c.get("max_examples"), int(c["bootstrap"]["seed"]))
        if len(test) < n_full:
            notes.append(f"{name}: scored on a random subset of {len(test)} of {n_full} {split} records "
                         f"(max_examples); not comparable with full-split numbers")
        train = dsd["train"].to_list() if "train" in dsd else []
        val = dsd["validation"].to_list() if "validation" in dsd and split != "validation" else []
        labeled_heads = [h for h in HEADS if any(r["labels"][h] is not None for r in test)]
        heads = []
        for h in labeled_heads:
            kind = specs[h].type if h in specs else HEADS[h][0]
            if kind not in TYPES:
                notes.append(f"{name}/{h}: head type {kind!r} is not scored")
            elif model is not None and h not in specs:
                notes.append(f"{name}/{h}: labeled in the data but the model has no such head; not scored")
            else:
                heads.append(h)
        if not heads:
            notes.append(f"{name}: no head of the model is labeled in its {split} split")
            continue
        preds = {}
        if model is not None:
            rows = [r for r in test if any(r["labels"][h] is not None for h in heads)]
            got = predict_records(
                model, tokenizer, rows, heads, batch_size=int(p.get("batch_size") or 32),
                max_chunks=p.get("max_chunks"), token_threshold=float(p.get("token_threshold") or 0.5),
            )
            pos = {r["id"]: i for i, r in enumerate(rows)}
            preds = {"got": got, "pos": pos}
        for h in heads:
            task = f"{name}/{h}"
            kind = specs[h].type if h in specs else HEADS[h][0]
            span_label = specs[h].span_label if h in specs else None
            recs = labeled(test, h)
            tr, va = labeled(train, h), labeled(val, h)
            spec_labels = list(specs[h].labels) if h in specs else None
            labels, extra = head_labels(kind, spec_labels, h, tr, va, recs)
            if extra:
                notes.append(f"{task}: label(s) {extra} are not among the model's; scored as never predicted")
            if kind == "multilabel" and spec_labels and len(labels) < len(spec_labels):
                notes.append(f"{task}: scored over the {len(labels)} labels {name} annotates "
                             f"(the model's head has {len(spec_labels)})")
            t0 = time.time()
            outs: dict[str, Outputs] = {}
            if model is not None:
                got, pos = preds["got"][h], preds["pos"]
                sel = [pos[r["id"]] for r in recs]
                pred = {"prob": None if got["prob"] is None else got["prob"][sel],
                        "spans": None if got["spans"] is None else [got["spans"][i] for i in sel]}
                th = specs[h].thresholds if p.get("use_model_thresholds", True) else None
                if th is not None:
                    notes.append(f"{task}: the model decides at its thresholds fit on validation data "
                                 f"(config.json), not at 0.5")
                outs["model"] = model_outputs(task, h, kind, labels, spec_labels, recs, pred, span_label, th)
            base = [s for s in systems if s != "model"]
            cap = (c.get("baselines") or {}).get("max_train")
            if base and cap and len(tr) > int(cap):
                capped.append(f"{task} ({int(cap)} of {len(tr)})")
                tr = _subset(tr, int(cap), int(c["bootstrap"]["seed"]))
            if base:
                if not tr:
                    notes.append(f"{task}: no train record is labeled; baselines skipped")
                else:
                    try:
                        outs.update(run_baselines(
                            task, h, kind, tr, recs, validation=va, labels=labels, span_label=span_label, systems=base,
                            c_grid=c["baselines"]["c_grid"], multilabel_c=c["baselines"]["multilabel_c"],
                        ))
                    except ValueError as e:
                        notes.append(f"{task}: baseline failed: {e}")
            if not outs:
                notes.append(f"{task}: no system could be scored")
                continue
            outputs_all[task] = outs
            entry = {
                "dataset": name, "head": h, "type": kind, "labels": labels, "n": len(recs),
                "n_train": len(tr), "primary": PRIMARY[kind], "systems": score_systems(outs, c),
            }
            if kind != "token":
                gold = outs[next(iter(outs))].gold
                entry["gold_distribution"] = (
                    np.bincount(gold, minlength=len(labels)).tolist() if gold.ndim == 1 else gold.sum(axis=0).tolist()
                )
            if "model" in outs:
                entry["groups"] = {"outlet": group_breakdown(outs["model"], "outlet", c)}
            metrics["tasks"][task] = entry
            print(f"[eval] {task}: n={len(recs)} " + ", ".join(
                f"{s} {PRIMARY[kind]}={v['metrics'][PRIMARY[kind]]['value']:.3f}" for s, v in entry["systems"].items())
                + f" ({time.time() - t0:.0f} s)", flush=True)
    if capped:
        notes.append("baselines fitted on a random subset of the labeled train records (baselines.max_train), "
                     "so they are weaker than full-data baselines: " + ", ".join(capped))
    return write_run(metrics, outputs_all, c, out_dir, model_dir)


def _by_head(metrics: dict) -> dict:
    """head -> {dataset: task} for heads scored on more than one dataset."""
    heads: dict[str, dict[str, str]] = {}
    for task, t in metrics["tasks"].items():
        heads.setdefault(t["head"], {})[t["dataset"]] = task
    return {h: d for h, d in heads.items() if len(d) > 1}


def write_run(metrics: dict, outputs_all: dict[str, dict[str, Outputs]], c: dict, out_dir: Path, model_dir) -> dict:
    """Write predictions.jsonl, the report (plots, sample cards) and metrics.json of a run."""
    from . import report, targets

    metrics["by_head"] = _by_head(metrics)
    metrics["anchors"] = report.match_anchors(metrics)
    metrics["targets"] = [r for r in targets.match([("this run", metrics)]) if r["measured"]]
    with open(out_dir / "predictions.jsonl", "w", encoding="utf-8") as fh:
        for task, outs in outputs_all.items():
            for system, o in outs.items():
                for row in o.rows(system):
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    for task, outs in outputs_all.items():
        first = next(iter(outs.values()), None)
        if first is not None:
            metrics["tasks"][task]["meta"] = first.meta()
    cards = None
    n_cards = int((c.get("report") or {}).get("sample_cards") or 0)
    if n_cards > 0 and model_dir and metrics["tasks"]:
        cards = sample_cards(model_dir, metrics, c, n_cards)
    plots = bool((c.get("report") or {}).get("plots", True))
    report.write_report(metrics, outputs_all, out_dir, plots=plots, sample_cards=cards, ece_bins=int(c["ece_bins"]))
    (out_dir / "metrics.json").write_text(dumps(metrics), encoding="utf-8")
    print(f"[eval] report: {out_dir / 'report.html'}", flush=True)
    return metrics


def sample_cards(model_dir, metrics: dict, c: dict, n: int) -> dict:
    """Cards for a few test articles, composed by the serving stage.

    Layering exception: eval normally imports only data and train. The composer lives in
    serve, so it is imported lazily here, only when the report asks for sample cards; a
    missing or failing composer becomes a visible note in the report, never a silent gap.
    """
    try:
        from biascard.serve.compose import Composer
        from biascard.serve.inputs import Article
    except Exception as e:  # noqa: BLE001 - any import problem is reported, not raised
        return {"cards": [], "note": f"sample cards skipped: biascard.serve.compose is not available ({e})"}
    picked = _pick_articles(metrics, c, n)
    if not picked:
        return {"cards": [], "note": "sample cards skipped: no test record to show"}
    try:
        composer = Composer.from_model_dir(model_dir)
        cards = composer.compose([Article(text=r["text"], id=r["id"], source=r.get("outlet")) for r in picked])
    except Exception as e:  # noqa: BLE001
        return {"cards": [], "note": f"sample cards skipped: composing failed: {type(e).__name__}: {e}"}
    return {
        "cards": [{"record": {k: r[k] for k in ("id", "dataset", "unit", "outlet", "text")}, "card": card}
                  for r, card in zip(picked, cards)],
        "note": None,
    }


def _pick_articles(metrics: dict, c: dict, n: int) -> list[dict]:
    """Whole articles first (the card's unit), then the longest other test texts; deterministic."""
    notes: list[str] = []
    pool = []
    for name in metrics.get("datasets") or []:
        dsd = load_dataset_dict(name, c, notes)
        pool.extend(dsd[c.get("split", "test")].to_list())
    pool.sort(key=lambda r: (r["unit"] != "article", -len(r["text"]), r["id"]))
    return pool[:n]
