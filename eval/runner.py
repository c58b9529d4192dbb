"""`biascard eval`: score a model dir and the baselines on the same split, write the report.

Output dir: metrics.json (every metric with its bootstrap CI), predictions.jsonl (one row
per system, task and example, for paired comparisons), report.md, report.html, plots/*.png
and, with report.sample_cards > 0, cards/*.html (`writing.write_run`).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from biascard.data.records import HEADS
from biascard.model.model_dir import weights_version

from .baselines import label_set, labeled, run_baselines
from .cv import run_cv
from .data_loading import load_dataset_dict, resolve_datasets
from .formatting import chunking_text
from .predict import chunking, model_outputs, predict_records
from .tasks import PRIMARY, TYPES, Outputs, score_with_ci
from .writing import write_run

SYSTEMS = ("model", "majority", "tfidf_lr")
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


@dataclasses.dataclass
class EvalRun:
    """One run's config, the loaded model (None for baselines only) and what it has noted so far."""

    c: dict
    systems: list[str]
    notes: list[str] = dataclasses.field(default_factory=list)
    model: Any = None
    tokenizer: Any = None
    # "task (n of N)" for each task whose baselines were fitted on a subset
    capped: list[str] = dataclasses.field(default_factory=list)

    @property
    def specs(self) -> dict:
        return self.model.head_specs if self.model is not None else {}

    @property
    def predict_cfg(self) -> dict:
        return self.c.get("predict") or {}

    @property
    def baselines(self) -> list[str]:
        return [s for s in self.systems if s != "model"]

    def kind(self, head: str) -> str:
        return self.specs[head].type if head in self.specs else HEADS[head][0]


def run_eval(cfg, out_dir: str | Path) -> dict:
    """Evaluate as configured (a Hydra DictConfig or a plain dict) into `out_dir`; return metrics.json's dict."""
    c = _plain(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = EvalRun(c, _systems(c))
    model_dir = c.get("model_dir")
    metrics = _new_metrics(c, run.notes)
    if int((c.get("cv") or {}).get("folds") or 0) > 1:
        metrics["cv"] = run_cv(c, out_dir, run.notes)
        if not model_dir:
            return write_run(metrics, {}, c, out_dir, None)
    if "model" in run.systems:
        _load_model(run, model_dir)
        metrics["chunking"] = _chunking(run)
        metrics["model_version"] = weights_version(model_dir)
    names, how = resolve_datasets(c, set(run.specs) if run.model is not None else None, model_dir)
    metrics["datasets"] = names
    metrics["datasets_from"] = how
    outputs_all: dict[str, dict[str, Outputs]] = {}
    for name in names:
        for task, entry, outs in score_dataset(run, name):
            metrics["tasks"][task] = entry
            outputs_all[task] = outs
    if run.capped:
        run.notes.append("baselines fitted on a random subset of the labeled train records (baselines.max_train), "
                         "so they are weaker than full-data baselines: " + ", ".join(run.capped))
    return write_run(metrics, outputs_all, c, out_dir, model_dir)


def _systems(c: dict) -> list[str]:
    systems = list(c.get("systems") or SYSTEMS)
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        raise ValueError(f"systems: unknown {unknown}; choose from model, majority, tfidf_lr")
    return systems


def _new_metrics(c: dict, notes: list[str]) -> dict[str, Any]:
    model_dir = c.get("model_dir")
    return {
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "model_dir": str(Path(model_dir).resolve()) if model_dir else None,
        "split": c.get("split", "test"),
        "bootstrap": c["bootstrap"],
        "config": {k: v for k, v in c.items() if k != "paths"},
        "command": COMMAND or " ".join(sys.argv),
        "notes": notes,
        "tasks": {},
    }


def _load_model(run: EvalRun, model_dir: str | None) -> None:
    from biascard.model.model_dir import load as load_model_dir

    if not model_dir:
        raise ValueError("model=DIR is required (a model dir with config.json and model.safetensors), "
                         "or set systems=[majority,tfidf_lr] for baselines only")
    if not Path(model_dir).is_dir():
        raise FileNotFoundError(f"model dir {model_dir} does not exist")
    run.model, run.tokenizer = load_model_dir(model_dir)
    if run.predict_cfg.get("num_threads"):
        import torch

        torch.set_num_threads(int(run.predict_cfg["num_threads"]))
    _study_settings(run)


def _study_settings(run: EvalRun) -> None:
    """predict.precision and predict.lexical: the model as a study reads it, noted in the report."""
    from biascard.compose.runtime import prepare_model, resolve_precision

    p = run.predict_cfg
    # bf16_autocast is a composer forward mode, not a model eval can prepare
    precision = resolve_precision(p.get("precision") or "fp32", "predict.precision", ("fp32", "bf16", "int8", "auto"))
    if precision != "fp32":
        run.model = prepare_model(run.model, precision)
        run.notes.append(f"precision: the model ran in {precision} (predict.precision), not fp32")
    if p.get("lexical", True) is False and (len(run.model.lexical) or len(run.model.fitted)):
        import torch

        run.notes.append(f"lexical branches and fitted lexical models switched off (predict.lexical=false): "
                         f"{sorted(run.model.lexical)}, {sorted(run.model.fitted)}; the transformer heads alone, "
                         "as trained beside the branches")
        run.model.lexical = torch.nn.ModuleDict()
        run.model.fitted = torch.nn.ModuleDict()


def _chunking(run: EvalRun) -> dict:
    """The chunks the model reads per record, noted in the report when they are not the model's own."""
    ch = chunking(run.model, run.predict_cfg.get("max_chunks"))
    if ch["overridden"]:
        run.notes.append(f"chunking: {chunking_text(ch)}; these numbers are not those of the served model")
    return ch


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


# ------------------------------------------------------------ one dataset


def score_dataset(run: EvalRun, name: str) -> list[tuple[str, dict, dict[str, Outputs]]]:
    """(task, metrics entry, outputs per system) for each scored head of dataset `name`."""
    records = _split_records(run, name)
    heads = _scored_heads(run, name, records["test"])
    if not heads:
        run.notes.append(f"{name}: no head of the model is labeled in its {run.c.get('split', 'test')} split")
        return []
    preds = _predict(run, records["test"], heads) if run.model is not None else None
    scored = [score_task(run, name, h, records, preds) for h in heads]
    return [s for s in scored if s is not None]


def _split_records(run: EvalRun, name: str) -> dict[str, list[dict]]:
    """The scored split (a seeded subset with max_examples), and the train and validation records."""
    split = run.c.get("split", "test")
    dsd = load_dataset_dict(name, run.c, run.notes)
    if split not in dsd:
        raise ValueError(f"dataset {name!r} has no split {split!r} (it has {list(dsd)})")
    test = dsd[split].to_list()
    n_full = len(test)
    test = _subset(test, run.c.get("max_examples"), int(run.c["bootstrap"]["seed"]))
    if len(test) < n_full:
        run.notes.append(f"{name}: scored on a random subset of {len(test)} of {n_full} {split} records "
                         f"(max_examples); not comparable with full-split numbers")
    return {
        "test": test,
        "train": dsd["train"].to_list() if "train" in dsd else [],
        "validation": dsd["validation"].to_list() if "validation" in dsd and split != "validation" else [],
    }


def _scored_heads(run: EvalRun, name: str, test: list[dict]) -> list[str]:
    heads = []
    for h in [h for h in HEADS if any(r["labels"][h] is not None for r in test)]:
        kind = run.kind(h)
        if kind not in TYPES:
            run.notes.append(f"{name}/{h}: head type {kind!r} is not scored")
        elif run.model is not None and h not in run.specs:
            run.notes.append(f"{name}/{h}: labeled in the data but the model has no such head; not scored")
        else:
            heads.append(h)
    return heads


def _predict(run: EvalRun, test: list[dict], heads: list[str]) -> dict:
    """The model's predictions on every test record labeled for one of `heads`, and each id's row."""
    p = run.predict_cfg
    rows = [r for r in test if any(r["labels"][h] is not None for h in heads)]
    got = predict_records(
        run.model, run.tokenizer, rows, heads, batch_size=int(p.get("batch_size") or 32),
        max_chunks=p.get("max_chunks"), token_threshold=float(p.get("token_threshold") or 0.5),
    )
    return {"got": got, "pos": {r["id"]: i for i, r in enumerate(rows)}}


# ------------------------------------------------------------ one task


def score_task(run: EvalRun, name: str, h: str, records: dict[str, list[dict]], preds: dict | None):
    """(task, metrics entry, outputs per system) of head `h` on dataset `name`; None if no system could run."""
    task, kind = f"{name}/{h}", run.kind(h)
    recs = labeled(records["test"], h)
    tr, va = labeled(records["train"], h), labeled(records["validation"], h)
    labels = _task_labels(run, task, h, tr, va, recs)
    t0 = time.time()
    outs: dict[str, Outputs] = {}
    if preds is not None:
        outs["model"] = _model_task_outputs(run, task, h, labels, recs, preds)
    tr = _baseline_train(run, task, tr)
    outs.update(_baseline_outputs(run, task, h, labels, tr, va, recs))
    if not outs:
        run.notes.append(f"{task}: no system could be scored")
        return None
    entry = _task_entry(run, name, h, labels, len(recs), len(tr), outs)
    print(f"[eval] {task}: n={len(recs)} " + ", ".join(
        f"{s} {PRIMARY[kind]}={v['metrics'][PRIMARY[kind]]['value']:.3f}" for s, v in entry["systems"].items())
        + f" ({time.time() - t0:.0f} s)", flush=True)
    return task, entry, outs


def _task_labels(run: EvalRun, task: str, h: str, tr, va, recs) -> list[str]:
    spec_labels = list(run.specs[h].labels) if h in run.specs else None
    kind = run.kind(h)
    labels, extra = head_labels(kind, spec_labels, h, tr, va, recs)
    if extra:
        run.notes.append(f"{task}: label(s) {extra} are not among the model's; scored as never predicted")
    if kind == "multilabel" and spec_labels and len(labels) < len(spec_labels):
        run.notes.append(f"{task}: scored over the {len(labels)} labels {task.split('/')[0]} annotates "
                         f"(the model's head has {len(spec_labels)})")
    return labels


def _model_task_outputs(run: EvalRun, task: str, h: str, labels: list[str], recs: list[dict], preds: dict) -> Outputs:
    spec = run.specs[h]
    got, pos = preds["got"][h], preds["pos"]
    sel = [pos[r["id"]] for r in recs]
    pred = {"prob": None if got["prob"] is None else got["prob"][sel],
            "spans": None if got["spans"] is None else [got["spans"][i] for i in sel]}
    th = spec.thresholds if run.predict_cfg.get("use_model_thresholds", True) else None
    if th is not None:
        run.notes.append(f"{task}: the model decides at its thresholds fit on validation data "
                         f"(config.json{_fit_mode(spec.threshold_fit)}), not at 0.5")
    return model_outputs(task, h, spec.type, labels, list(spec.labels), recs, pred, spec.span_label, th)


def _fit_mode(fit: dict | None) -> str:
    """How a head's thresholds were fit (`threshold_fit`), so that reports of two fits differ."""
    if not fit:
        return ""
    if fit.get("mode") == "target_precision" and fit.get("target_precision") is not None:
        return f"; for precision {float(fit['target_precision']):g}"
    return f"; for {'F1' if fit.get('mode') == 'f1' else fit.get('mode')}"


def _baseline_train(run: EvalRun, task: str, tr: list[dict]) -> list[dict]:
    """The labeled train records the baselines fit on (a seeded subset with baselines.max_train)."""
    cap = (run.c.get("baselines") or {}).get("max_train")
    if run.baselines and cap and len(tr) > int(cap):
        run.capped.append(f"{task} ({int(cap)} of {len(tr)})")
        return _subset(tr, int(cap), int(run.c["bootstrap"]["seed"]))
    return tr


def _baseline_outputs(run: EvalRun, task: str, h: str, labels, tr, va, recs) -> dict[str, Outputs]:
    if not run.baselines:
        return {}
    if not tr:
        run.notes.append(f"{task}: no train record is labeled; baselines skipped")
        return {}
    b = run.c["baselines"]
    span_label = run.specs[h].span_label if h in run.specs else None
    try:
        return run_baselines(task, h, run.kind(h), tr, recs, validation=va, labels=labels, span_label=span_label,
                             systems=run.baselines, c_grid=b["c_grid"], multilabel_c=b["multilabel_c"])
    except ValueError as e:
        run.notes.append(f"{task}: baseline failed: {e}")
        return {}


def _task_entry(run: EvalRun, name: str, h: str, labels: list[str], n: int, n_train: int,
                outs: dict[str, Outputs]) -> dict:
    kind = run.kind(h)
    entry = {
        "dataset": name, "head": h, "type": kind, "labels": labels, "n": n,
        "n_train": n_train, "primary": PRIMARY[kind], "systems": score_systems(outs, run.c),
    }
    if kind != "token":
        gold = outs[next(iter(outs))].gold
        entry["gold_distribution"] = (
            np.bincount(gold, minlength=len(labels)).tolist() if gold.ndim == 1 else gold.sum(axis=0).tolist()
        )
    entry["groups"] = {"outlet": group_breakdown(outs, "outlet", run.c)}
    return entry


# ------------------------------------------------------------ scores with CIs


def _ci_kwargs(c: dict) -> dict:
    b = c["bootstrap"]
    return {"n_boot": int(b["n_boot"]), "seed": int(b["seed"]), "ci": float(b["ci"]), "ece_bins": int(c["ece_bins"])}


def group_breakdown(outs: dict[str, Outputs], field: str, c: dict) -> dict[str, dict]:
    """Metrics with CIs per value of `field` (outlet or dataset) for the model and each fitted
    baseline side by side, so a gap can be traced to the groups it comes from; small groups
    get n only. The majority class is left out: within a group it says nothing new."""
    systems = {s: o for s, o in outs.items() if s != "majority"}
    if not systems:
        return {}
    values = getattr(next(iter(systems.values())), field)
    groups: dict[str, list[int]] = {}
    for i, v in enumerate(values):
        groups.setdefault(v if v is not None else "(none)", []).append(i)
    if len(groups) < 2:
        return {}
    res = {}
    for g, idx in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        entry: dict[str, Any] = {"n": len(idx)}
        if len(idx) >= int(c.get("min_group_size") or 1):
            entry["systems"] = {s: score_with_ci(o.subset(idx), **_ci_kwargs(c)) for s, o in systems.items()}
        res[g] = entry
    return res


def score_systems(outputs: dict[str, Outputs], c: dict) -> dict[str, dict]:
    return {s: {"metrics": score_with_ci(o, **_ci_kwargs(c)), "info": dict(o.info)} for s, o in outputs.items()}
