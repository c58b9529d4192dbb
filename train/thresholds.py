"""Decision thresholds on P(label), fit on validation data and saved with the model.

`biascard train thresholds --model DIR [--mode target_precision|f1] [--target-precision 0.8]
[--min-support 10] [--types multilabel binary] [--min-positives 5]`

Two modes for multilabel heads (sdg, topic); binary heads always get the macro-F1 one:
- target_precision (the default, what the card lists): per label the lowest grid threshold
  at which at least `target_precision` of the validation examples it would list are right,
  counted over at least `min_support` such examples; a label that never gets there is never
  listed (threshold NEVER, above any probability). "Listed" then means "right about 8 times
  in 10 on validation", which a reader can be told.
- f1: per label the threshold with the best validation F1. A sigmoid head trained on a mixture
  sees few positives per label (TRAIL22: ~1 in 17), so its probabilities sit below 0.5 and a
  fixed 0.5 cut predicts almost nothing even when the ranking is good; labels with fewer than
  `min_positives` validation positives share the one threshold that maximises the head's
  macro-F1, since a per-label fit on 1-4 positives is noise.
Training runs this on its validation records after the final model dir is written
(configs/train.yaml -> thresholds); eval and serve read the result from config.json, where
each head's `threshold_fit` says which mode and target produced its thresholds.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import f1_score

from biascard.model.heads import HeadSpec

GRID = np.round(np.arange(0.02, 0.99, 0.01), 2)
FITTABLE = ("binary", "multilabel")
MODES = ("target_precision", "f1")
# a threshold no probability reaches: the label is never predicted (HeadSpec allows t > 1)
NEVER = 2.0
# the defaults of configs/train.yaml -> thresholds, for callers that pass none
DEFAULTS = {"types": ("multilabel",), "min_positives": 5, "mode": "target_precision", "target_precision": 0.8,
            "min_support": 10}


def _best(scores: np.ndarray) -> float:
    """The grid point with the highest score; ties go to the one nearest 0.5."""
    top = np.flatnonzero(scores >= scores.max() - 1e-12)
    return float(GRID[top[np.argmin(np.abs(GRID[top] - 0.5))]])


def _f1_curve(prob: np.ndarray, gold: np.ndarray, negative: bool = False) -> np.ndarray:
    """F1 at every grid threshold t (vectorised over the grid) of the positive class,
    predicted where P >= t, or with `negative` of the negative class, predicted where P < t."""
    pred = prob[None, :] >= GRID[:, None]
    want = gold[None, :] == 1
    if negative:
        pred, want = ~pred, ~want
    tp = (pred & want).sum(1)
    denom = pred.sum(1) + want.sum(1)  # 2tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def fit_binary(prob: np.ndarray, gold: np.ndarray) -> list[float]:
    prob, gold = np.asarray(prob, float), np.asarray(gold, int)
    return [_best((_f1_curve(prob, gold) + _f1_curve(prob, gold, negative=True)) / 2)]


def fit_multilabel(prob: np.ndarray, gold: np.ndarray, min_positives: int = 5) -> tuple[list[float], list[str]]:
    """Per-label thresholds and, per label, "label" or "shared" (too few positives)."""
    prob, gold = np.asarray(prob, float), np.asarray(gold, int)
    curves = np.stack([_f1_curve(prob[:, j], gold[:, j]) for j in range(prob.shape[1])])  # [C, G]
    shared = _best(curves.mean(0))
    out, how = [], []
    for j in range(prob.shape[1]):
        if gold[:, j].sum() >= min_positives:
            out.append(_best(curves[j]))
            how.append("label")
        else:
            out.append(shared)
            how.append("shared")
    return out, how


def fit_target_precision(prob: np.ndarray, gold: np.ndarray, target_precision: float = 0.8,
                         min_support: int = 10) -> tuple[list[float], list[str], list[float | None], list[int]]:
    """Per label: the lowest grid threshold whose validation precision is >= `target_precision`
    over >= `min_support` predicted examples, else NEVER. Returns thresholds, how ("label" or
    "never"), the precision reached (None for never) and the examples predicted there (0)."""
    prob, gold = np.asarray(prob, float), np.asarray(gold, int)
    if not 0.0 < target_precision <= 1.0:
        raise ValueError(f"thresholds.target_precision must lie in (0, 1], got {target_precision}")
    out, how, precision, support = [], [], [], []
    for j in range(prob.shape[1]):
        pred = prob[None, :, j] >= GRID[:, None]  # [G, N]
        n_pred = pred.sum(1)
        tp = (pred & (gold[None, :, j] == 1)).sum(1)
        prec = np.where(n_pred > 0, tp / np.maximum(n_pred, 1), 0.0)
        ok = np.flatnonzero((prec >= target_precision - 1e-12) & (n_pred >= max(int(min_support), 1)))
        if ok.size:  # the lowest passing threshold lists the most examples at the target
            g = int(ok[0])
            out.append(float(GRID[g]))
            how.append("label")
            precision.append(round(float(prec[g]), 4))
            support.append(int(n_pred[g]))
        else:
            out.append(NEVER)
            how.append("never")
            precision.append(None)
            support.append(0)
    return out, how, precision, support


def fit_options(cfg=None) -> dict:
    """The keyword arguments of `fit_heads`/`fit_model_dir` from a `thresholds` config section
    (configs/train.yaml), missing keys at DEFAULTS; a bad mode is an error, not a silent default."""
    cfg = dict(cfg or {})
    out = {k: cfg.get(k) if cfg.get(k) is not None else v for k, v in DEFAULTS.items()}
    if out["mode"] not in MODES:
        raise ValueError(f"thresholds.mode: {out['mode']!r} is not one of {MODES}")
    return {"types": tuple(out["types"]), "min_positives": int(out["min_positives"]), "mode": str(out["mode"]),
            "target_precision": float(out["target_precision"]), "min_support": int(out["min_support"])}


def macro_f1(spec: HeadSpec, prob: np.ndarray, gold: np.ndarray, thresholds) -> float:
    t = np.asarray(thresholds, float)
    if spec.type == "binary":
        return float(f1_score(gold, (prob >= t[0]).astype(int), labels=[0, 1], average="macro", zero_division=0))
    return float(f1_score(gold, (prob >= t[None, :]).astype(int), average="macro", zero_division=0))


def _fit_head(spec: HeadSpec, prob, gold, opts: dict) -> dict:
    """One head's entry of `fit_heads`; `threshold_fit` is what config.json keeps of how."""
    if spec.type == "binary":
        t, how = fit_binary(prob, gold), ["head"]
        return {"thresholds": t, "how": how, "threshold_fit": {"mode": "f1", "split": "validation"}}
    f1_t, f1_how = fit_multilabel(prob, gold, opts["min_positives"])
    if opts["mode"] == "f1":
        return {"thresholds": f1_t, "how": f1_how,
                "threshold_fit": {"mode": "f1", "min_positives": opts["min_positives"], "how": f1_how,
                                  "split": "validation"}}
    t, how, precision, support = fit_target_precision(prob, gold, opts["target_precision"], opts["min_support"])
    fit = {"mode": "target_precision", "target_precision": opts["target_precision"],
           "min_support": opts["min_support"], "how": how, "precision": precision, "support": support,
           "split": "validation"}
    # the F1-optimal thresholds stay in the record (thresholds.json) for comparison
    return {"thresholds": t, "how": how, "threshold_fit": fit, "f1_thresholds": f1_t,
            "macro_f1_f1_optimal": macro_f1(spec, prob, gold, f1_t)}


def fit_heads(specs: dict[str, HeadSpec], probs: dict[str, np.ndarray], golds: dict[str, np.ndarray],
              types=("multilabel",), min_positives: int = 5, *, mode: str = "target_precision",
              target_precision: float = 0.8, min_support: int = 10) -> dict[str, dict]:
    """{head: {thresholds, how, threshold_fit, n, macro_f1_at_0.5, macro_f1_fitted[, f1_thresholds,
    macro_f1_f1_optimal]}} for heads of `types` with validation labels; `mode` applies to
    multilabel heads (module docstring)."""
    bad = [t for t in types if t not in FITTABLE]
    if bad:
        raise ValueError(f"thresholds.types: {bad} cannot be fit (only {FITTABLE})")
    opts = fit_options({"types": types, "min_positives": min_positives, "mode": mode,
                        "target_precision": target_precision, "min_support": min_support})
    out = {}
    for name, spec in specs.items():
        if spec.type not in types or name not in probs or len(golds[name]) == 0:
            continue
        prob, gold = probs[name], golds[name]
        e = _fit_head(spec, prob, gold, opts)
        e.update({"n": int(len(gold)), "macro_f1_at_0.5": macro_f1(spec, prob, gold, [0.5] * len(e["thresholds"])),
                  "macro_f1_fitted": macro_f1(spec, prob, gold, e["thresholds"])})
        out[name] = e
    return out


def probabilities(specs, logits: dict, labels: dict) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """P(label) and gold of the labeled rows, for the binary and multilabel heads."""
    from biascard.model.modeling import head_probabilities

    from .evaluation import labeled_rows

    probs, golds = {}, {}
    for name, spec in specs.items():
        if spec.type not in FITTABLE or not labels.get(name):
            continue
        lg, y = torch.cat(logits[name]), torch.cat(labels[name])
        keep = labeled_rows(y, spec.type)
        probs[name] = head_probabilities(lg[keep], spec).numpy()
        golds[name] = y[keep].long().numpy()
    return probs, golds


def _summary(name: str, e: dict) -> str:
    """One log line per fitted head."""
    fit = e["threshold_fit"]
    line = (f"thresholds {name}: validation macro-F1 {e['macro_f1_at_0.5']:.3f} at 0.5 -> {e['macro_f1_fitted']:.3f} "
            f"(n={e['n']}")
    if fit["mode"] == "target_precision":
        never = e["how"].count("never")
        return (line + f"; target precision {fit['target_precision']:g} on >= {fit['min_support']} listings: "
                f"{len(e['how']) - never} of {len(e['how'])} labels can be listed; F1-optimal thresholds would give "
                f"{e['macro_f1_f1_optimal']:.3f})")
    shared = e["how"].count("shared")
    return line + f"; F1-optimal: {len(e['thresholds']) - shared} per label, {shared} shared)"


def fit_model_dir(model_dir, val_records: dict, encode_kwargs: dict, *, types=DEFAULTS["types"],
                  min_positives: int = DEFAULTS["min_positives"], mode: str = DEFAULTS["mode"],
                  target_precision: float = DEFAULTS["target_precision"], min_support: int = DEFAULTS["min_support"],
                  batch_size: int = 64, log=print) -> dict[str, dict]:
    """Load the model dir, fit thresholds on `val_records`; they and each head's `threshold_fit`
    go into its config.json, how they were fit into its thresholds.json (`model_dir.write_thresholds`)."""
    from biascard.model import model_dir as model_files

    from .evaluation import collect_logits

    model, tokenizer = model_files.load(model_dir)
    specs = model.head_specs
    logits, labels, _ = collect_logits(model, val_records, tokenizer, specs, batch_size, encode_kwargs)
    probs, golds = probabilities(specs, logits, labels)
    fitted = fit_heads(specs, probs, golds, types, min_positives, mode=mode, target_precision=target_precision,
                       min_support=min_support)
    for name, e in fitted.items():
        log(_summary(name, e))
    model_files.write_thresholds(model_dir, fitted, {
        "types": list(types), "mode": mode,
        "target_precision": target_precision if mode == "target_precision" else None,
        "min_support": min_support, "min_positives": min_positives, "split": "validation",
        "datasets": {n: len(r) for n, (r, _) in val_records.items()}, "heads": fitted})
    return fitted


def training_setup(model_dir: Path) -> dict:
    """Datasets, validation caps, chunks and seed of the run that trained `model_dir`
    (training.json -> run dir -> config.yaml), so the fit sees training's validation records."""
    import yaml

    from biascard.model import model_dir as model_files

    meta = model_files.read_training_record(model_dir)
    if meta is None:
        return {}
    out = {"datasets": meta.get("datasets")}
    cfg_path = Path(meta.get("run_dir") or "") / "config.yaml"
    if meta.get("run_dir") and cfg_path.is_file():
        cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
        data = cfg.get("data") or {}
        out.update(caps={k: int(v) for k, v in (data.get("eval_caps") or {}).items() if v is not None},
                   max_chunks=data.get("eval_max_chunks", data.get("max_chunks")),
                   seed=int((cfg.get("trainer") or {}).get("seed", 42)) + 1,
                   thresholds=cfg.get("thresholds") or {}, refold=data.get("refold"),
                   source=str(cfg_path))
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model dir; its config.json gets the thresholds")
    p.add_argument("--datasets", nargs="+", help="validation data (default: the training run's, from MODEL/training.json)")
    # each default: the training run's configs/train.yaml -> thresholds, else DEFAULTS
    p.add_argument("--types", nargs="+", default=None, choices=FITTABLE, help="head types (default: multilabel)")
    p.add_argument("--mode", default=None, choices=MODES, help="multilabel fit (default: target_precision)")
    p.add_argument("--target-precision", type=float, default=None,
                   help="target_precision mode: validation precision a listed label must reach (default 0.8)")
    p.add_argument("--min-support", type=int, default=None,
                   help="target_precision mode: validation examples that precision is counted over (default 10)")
    p.add_argument("--min-positives", type=int, default=None,
                   help="f1 mode: fewer validation positives share the head's threshold (default 5)")
    p.add_argument("--max-chunks", type=int, default=None,
                   help="chunks per record (default: the training run's validation setting, else the model's)")
    p.add_argument("--max-records", type=int, default=None,
                   help="validation records per dataset (default: the training run's data.eval_caps)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="biascard train thresholds", description=__doc__.splitlines()[0])
    add_arguments(p)
    args = p.parse_args(argv)
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    try:
        from biascard.model import model_dir as model_files
        from biascard.model.modeling import load_tokenizer

        from .datasets import validation_records

        model_dir = Path(args.model)
        if not (model_dir / model_files.CONFIG).is_file():
            raise FileNotFoundError(f"{model_dir}/{model_files.CONFIG}: not a model dir")
        config = model_files.load_config(model_dir)
        setup = training_setup(model_dir)
        names = args.datasets or setup.get("datasets")
        if not names:
            raise ValueError(f"{model_dir}/{model_files.TRAINING} is missing: pass --datasets")
        caps = {n: args.max_records for n in names} if args.max_records else setup.get("caps")
        max_chunks = next((c for c in (args.max_chunks, setup.get("max_chunks"), config.max_chunks) if c is not None),
                          None)
        if setup.get("source"):
            log(f"validation records as in {setup['source']}: caps {caps}, max_chunks {max_chunks}")
        tokenizer = load_tokenizer(model_dir)
        val = validation_records(names, tokenizer, int(config.max_length), max_chunks, caps, seed=setup.get("seed", 43),
                                 refold=setup.get("refold"))
        enc = dict(max_length=int(config.max_length), stride=int(config.stride), max_chunks=max_chunks)
        flags = {"types": args.types, "mode": args.mode, "target_precision": args.target_precision,
                 "min_support": args.min_support, "min_positives": args.min_positives}
        run_cfg = setup.get("thresholds") or {}
        opts = fit_options({k: v if v is not None else run_cfg.get(k) for k, v in flags.items()})
        opts["types"] = opts["types"] or DEFAULTS["types"]  # asked for by hand: a run's `types: []` still fits
        fit_model_dir(model_dir, val, enc, **opts, log=log)
    except (ValueError, FileNotFoundError) as e:
        print(f"thresholds: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
