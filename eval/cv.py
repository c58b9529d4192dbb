"""k-fold cross-validation on one dataset (BABE's published protocol), baselines and optionally the model.

All splits of the dataset are pooled and cut into k folds by the adapter's own fold helper
(BABE: `babe_folds`, stratified by label and grouped by article; GVFC: `cv_folds`), else by
StratifiedGroupKFold over the record groups. Fold f is the test fold, fold f+1 (mod k)
the validation fold (tfidf_lr's C, the model's early stopping), the rest the train folds.
Per system: the metrics of each fold, their mean and SD, and the pooled out-of-fold
predictions scored once with a bootstrap CI. A fold model reads the chunks its config.json
names, unless predict.max_chunks overrides it (recorded as `chunking`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from biascard.data.records import HEADS
from biascard.data.splits import fold_assignment

from .baselines import label_set, labeled, run_baselines
from .data_loading import load_dataset_dict
from .formatting import chunking_text
from .predict import chunking, model_outputs, predict_records
from .tasks import PRIMARY, TYPES, Outputs, score, score_with_ci

# with cv.fuse, the fold model before fusing, scored beside it ("model")
UNFUSED = "model_unfused"


def _concat(parts: list[Outputs]) -> Outputs:
    first = parts[0]
    if first.type == "token":
        gold = [g for p in parts for g in p.gold]
        prob = None
    else:
        gold = np.concatenate([p.gold for p in parts])
        prob = np.concatenate([p.prob for p in parts])
    return dataclasses.replace(
        first,
        ids=[i for p in parts for i in p.ids],
        dataset=[d for p in parts for d in p.dataset],
        outlet=[o for p in parts for o in p.outlet],
        gold=gold,
        prob=prob,
        spans=[s for p in parts for s in p.spans] if first.type == "token" else None,
        info={},
    )


def _training_view(train: list[dict], val: list[dict], heads: list[str]) -> tuple[list[dict], list[dict]]:
    """The fold as the training run sees it: only the evaluated heads keep labels, and
    validation values unseen in the train folds are dropped (training takes its label sets
    from train and rejects unknown validation values; they only steer early stopping)."""
    seen: dict[str, set] = {h: set() for h in heads}
    for r in train:
        for h in heads:
            v = r["labels"][h]
            if v is not None and HEADS[h][0] in ("multiclass", "multilabel"):
                seen[h].update(v if isinstance(v, list) else [v])

    def view(r: dict, is_val: bool) -> dict:
        labels = {}
        for h, v in r["labels"].items():
            if h not in heads:
                v = None
            elif is_val and v is not None and HEADS[h][0] == "multiclass" and v not in seen[h]:
                v = None
            elif is_val and v is not None and HEADS[h][0] == "multilabel":
                v = [x for x in v if x in seen[h]]
            labels[h] = v
        return {**r, "labels": labels}

    return [view(r, False) for r in train], [view(r, True) for r in val]


@contextlib.contextmanager
def fold_data(name: str, dsd):
    """Make `biascard.data.prepare` return this fold's DatasetDict for `name`.

    Training and fusing load data by dataset name; this is the narrowest seam to hand them one
    fold without a second code path. It replaces `prepare_report`, which `prepare` calls too:
    patching `prepare` alone let training (which calls `prepare_report`) read the full dataset.
    """
    import biascard.data.prepare as prep
    from biascard.data.errors import Report

    original = prep.prepare_report

    def prepare_report(n, *a, report=None, **kw):
        return (dsd, report or Report()) if n == name else original(n, *a, report=report, **kw)

    prep.prepare_report = prepare_report
    try:
        yield
    finally:
        prep.prepare_report = original


def train_fold(name: str, dsd, fold_dir: Path, overrides: list[str]) -> Path:
    """Train on one fold with the training entry (Hydra compose of configs/train.yaml); return the model dir."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from biascard.train.loop import MODEL_DIR, train

    fold_dir.mkdir(parents=True, exist_ok=True)
    # logger=none first so the caller's overrides can still choose another logger
    ov = ["logger=none", f"data={name}", *overrides, f"data.datasets=[{name}]", f"paths.output_dir={fold_dir}"]
    if GlobalHydra.instance().is_initialized():
        cfg = compose(config_name="train", overrides=ov)
    else:
        with initialize_config_module(config_module="biascard.configs", version_base="1.3"):
            cfg = compose(config_name="train", overrides=ov)
    with fold_data(name, dsd):
        train(cfg)
    # the fold's model/ is all evaluation needs; resumable checkpoints would only fill the disk
    shutil.rmtree(fold_dir / "checkpoints", ignore_errors=True)
    return fold_dir / MODEL_DIR


def run_cv(c: dict, out_dir: Path, notes: list[str]) -> dict[str, Any]:
    """k-fold CV on `c["cv"]["dataset"]` as configured; the `cv` section of metrics.json."""
    cv = c["cv"]
    name, k = str(cv["dataset"]), int(cv["folds"])
    if k < 3:
        raise ValueError(f"cv.folds={k}: need at least 3 (one test fold, one validation fold, >= 1 train fold)")
    dsd = load_dataset_dict(name, c, notes)
    records = [r for split in ("train", "validation", "test") if split in dsd for r in dsd[split].to_list()]
    folds, how = fold_assignment(name, records, k, cv.get("seed"))
    systems = [s for s in (c.get("systems") or ["majority", "tfidf_lr"]) if s != "model"]
    fusing = fuse_spec(cv) if cv.get("train_model") else None
    if cv.get("train_model"):
        systems = ["model", *([UNFUSED] if fusing else []), *systems]
    heads = _cv_heads(cv, name, records)
    per_fold: dict[str, dict[str, list[Outputs]]] = {h: {} for h in heads}
    fold_sizes, chunkings = [], []
    for f in range(k):
        train, val, test = _fold_records(records, folds, f, k, c.get("max_examples"))
        fold_sizes.append({"train": len(train), "validation": len(val), "test": len(test)})
        models = {}
        if "model" in systems:
            fold_dir = out_dir / "cv" / f"fold_{f}"
            models = _train_fold_models(name, (train, val, test), heads, fold_dir, cv, fusing)
            chunkings.append(chunking(models["model"][0], (c.get("predict") or {}).get("max_chunks")))
        for h in heads:
            for s, o in _score_fold(c, name, h, (train, val, test), records, systems, models).items():
                per_fold[h].setdefault(s, []).append(o)
        print(f"[cv] {name} fold {f + 1}/{k}: train {len(train)}, validation {len(val)}, test {len(test)}", flush=True)
    if chunkings and chunkings[0]["overridden"]:
        notes.append(f"cv: {chunking_text(chunkings[0])}; not the chunks the fold models were validated on")
    results = {f"{name}/{h}": _pooled_results(f"{name}/{h}", h, by_system, c)
               for h, by_system in per_fold.items() if by_system}
    return {
        "dataset": name,
        "folds": k,
        "fold_sizes": fold_sizes,
        "protocol": _protocol(name, k, len(records), how, c, systems, fusing),
        "systems": systems,
        "train_overrides": [str(o) for o in cv.get("train_overrides") or []] if "model" in systems else [],
        "fuse": fusing,
        "train_cap": int(c["max_examples"]) if c.get("max_examples") else None,
        # every fold's model is trained with the same overrides, so they read alike
        "chunking": chunkings[0] if chunkings else None,
        "results": results,
    }


def _cv_heads(cv: dict, name: str, records: list[dict]) -> list[str]:
    """The scored heads: cv.heads, else every head of a scored type that the dataset labels."""
    heads = [h for h in HEADS if HEADS[h][0] in TYPES and any(r["labels"][h] is not None for r in records)]
    if not cv.get("heads"):
        return heads
    wanted = [str(h) for h in cv["heads"]]
    missing = [h for h in wanted if h not in heads]
    if missing:
        raise ValueError(f"cv.heads: {missing} are not labeled in {name} (labeled: {heads})")
    return wanted


def _fold_records(records: list[dict], folds, f: int, k: int, cap) -> tuple[list[dict], list[dict], list[dict]]:
    """(train, validation, test) of fold f: f is tested, f+1 (mod k) validates, the rest train."""
    val_f = (f + 1) % k
    test = [r for r, g in zip(records, folds) if g == f]
    val = [r for r, g in zip(records, folds) if g == val_f]
    train = [r for r, g in zip(records, folds) if g is not None and g not in (f, val_f)]
    if cap:
        # a smoke-test knob: fewer train records per fold (the test fold stays whole)
        train = [train[i] for i in sorted(np.random.default_rng(f).permutation(len(train))[: int(cap)])]
    return train, val, test


def _train_fold_models(name: str, fold, heads: list[str], fold_dir: Path, cv: dict,
                       fusing: dict | None) -> dict[str, tuple]:
    """{"model": (model, tokenizer)} trained on the fold by the training entry, as training sees
    the fold; with `fusing` (`fuse_spec`) also fused on it, the trained one then under UNFUSED."""
    import datasets

    from biascard.data.records import FEATURES
    from biascard.model.model_dir import load as load_model_dir

    train, val, test = fold
    tr_model, va_model = _training_view(train, val, heads)
    fold_dsd = datasets.DatasetDict({
        "train": datasets.Dataset.from_list(tr_model, features=FEATURES),
        "validation": datasets.Dataset.from_list(va_model, features=FEATURES),
        "test": datasets.Dataset.from_list(test, features=FEATURES),
    })
    model_dir = train_fold(name, fold_dsd, fold_dir, list(cv.get("train_overrides") or []))
    if not fusing:
        return {"model": load_model_dir(model_dir)}
    fused = fuse_fold(name, fold_dsd, model_dir, fusing)
    return {"model": load_model_dir(fused), UNFUSED: load_model_dir(model_dir)}


def fuse_spec(cv: dict) -> dict | None:
    """cv.fuse as {"heads": {head: (features, keep)}, "C": C}, or None when not fusing. cv.fuse.heads
    is a list of names (each gets cv.fuse.features) or a mapping of name to features (or "FEATURES/KEEP")."""
    from biascard.train.fuse import parse_heads

    f = cv.get("fuse") or {}
    heads = f.get("heads") or []
    items = [f"{h}={n}" for h, n in heads.items()] if isinstance(heads, dict) else [str(h) for h in heads]
    parsed = parse_heads(items, int(f.get("features") or 5000))
    return {"heads": parsed, "C": float(f.get("C") or 1.0)} if parsed else None


def fuse_fold(name: str, fold_dsd, model_dir: Path, fusing: dict) -> Path:
    """The fold model with fitted lexical models: fit on the fold's train records, weights chosen
    and thresholds refit on its validation fold, as `biascard train fuse` does on fixed splits."""
    from biascard.train import fuse, thresholds

    out = model_dir.parent / "model_fused"
    with fold_data(name, fold_dsd):
        fuse.fuse(model_dir, out, fusing["heads"], fusing["C"], log=lambda m: print(f"[cv] {m}", flush=True))
        if thresholds.main(["--model", str(out)]) != 0:
            raise RuntimeError(f"cv: refitting the thresholds of {out} failed")
    return out


def _score_fold(c: dict, name: str, h: str, fold, records: list[dict], systems: list[str],
                models: dict[str, tuple]) -> dict[str, Outputs]:
    """Each system's Outputs on fold's test records of head `h` (empty if train or test has none)."""
    kind = HEADS[h][0]
    train, val, test = fold
    tr, va, te = labeled(train, h), labeled(val, h), labeled(test, h)
    if not tr or not te:
        return {}
    # one label list over all folds, so the out-of-fold predictions can be pooled
    labels = label_set(kind, labeled(records, h), head=h)
    task = f"{name}/{h}"
    outs: dict[str, Outputs] = {}
    for system, (model, tokenizer) in models.items():
        if h not in model.head_specs:
            continue
        spec = model.head_specs[h]
        p = c["predict"]
        got = predict_records(model, tokenizer, te, [h], batch_size=int(p["batch_size"]),
                              max_chunks=p.get("max_chunks"))[h]
        outs[system] = model_outputs(task, h, kind, labels, list(spec.labels), te, got, spec.span_label,
                                     spec.thresholds)
    base = [s for s in systems if s not in ("model", UNFUSED)]
    if base:
        outs.update(run_baselines(task, h, kind, tr, te, validation=va, labels=labels, systems=base,
                                  c_grid=c["baselines"]["c_grid"], multilabel_c=c["baselines"]["multilabel_c"],
                                  refit=bool(c["cv"].get("refit_baselines", True))))
    return outs


def _pooled_results(task: str, h: str, by_system: dict[str, list[Outputs]], c: dict) -> dict:
    """Per system: each fold's metrics, their mean and SD, and the pooled out-of-fold predictions with a CI."""
    kind = HEADS[h][0]
    b = c["bootstrap"]
    res: dict[str, Any] = {"type": kind, "primary": PRIMARY[kind], "systems": {}}
    pooled_outputs = {s: _concat(parts) for s, parts in by_system.items()}
    for s, parts in by_system.items():
        fold_metrics = [{"fold": i, "n": len(o), "metrics": score(o, ece_bins=int(c["ece_bins"])),
                         "info": dict(o.info)} for i, o in enumerate(parts)]
        keys = fold_metrics[0]["metrics"].keys()
        vals = {m: np.array([fm["metrics"].get(m, np.nan) for fm in fold_metrics], dtype=float) for m in keys}
        pooled = score_with_ci(pooled_outputs[s], n_boot=int(b["n_boot"]), seed=int(b["seed"]), ci=float(b["ci"]),
                               ece_bins=int(c["ece_bins"]))
        res["systems"][s] = {
            "folds": fold_metrics,
            "fold_mean": {m: float(np.nanmean(v)) if np.isfinite(v).any() else None for m, v in vals.items()},
            "fold_sd": {m: float(np.nanstd(v, ddof=1)) if np.isfinite(v).sum() > 1 else None for m, v in vals.items()},
            "pooled": pooled,
        }
    res["paired"] = _paired_with_model(pooled_outputs, c)
    print(f"[cv] {task}: " + ", ".join(
        f"{s} {res['primary']} fold mean {v['fold_mean'][res['primary']]:.3f} ± {v['fold_sd'][res['primary']] or 0:.3f}"
        for s, v in res["systems"].items()), flush=True)
    return res


def _paired_with_model(pooled: dict[str, Outputs], c: dict) -> dict:
    """{system: per-metric delta model - system} on the pooled out-of-fold predictions, paired by id."""
    from .compare import paired_outputs

    if "model" not in pooled:
        return {}
    b, out = c["bootstrap"], {}
    for s, o in pooled.items():
        got = None if s == "model" else paired_outputs(o, pooled["model"], int(b["n_boot"]), int(b["seed"]),
                                                       int(c["ece_bins"]))
        if got is not None:
            out[s] = got[0]
    return out


def _protocol(name: str, k: int, n: int, how: str, c: dict, systems: list[str], fusing: dict | None) -> str:
    cap = c.get("max_examples")
    return (
        f"{k}-fold cross-validation over all {n} records of {name} ({how}). Fold f is tested, "
        f"fold f+1 (mod {k}) is the validation fold (tfidf_lr's C; the model's early stopping), the other "
        f"{k - 2} folds are trained on"
        + (f"; tfidf_lr is then refit on all {k - 1} non-test folds, as in the published k-fold protocol"
           if c["cv"].get("refit_baselines", True) else "")
        + ". Reported: mean ± SD of the per-fold metrics, and the pooled out-of-fold predictions "
        "scored once with a bootstrap CI."
        + (f" Train folds capped at {cap} records (max_examples): a smoke setting." if cap else "")
        + ("" if "model" in systems else " The model is not trained per fold (cv.train_model=false): baselines only.")
        + (f" Each fold model is then fused (fitted lexical models on {sorted(fusing['heads'])}, fit on its "
           f"train folds, weights chosen on its validation fold): `model` is the fused one, `{UNFUSED}` the "
           "model as trained." if fusing else "")
    )
