"""Decision thresholds on P(label), fit on validation data and saved with the model.

`biascard train thresholds --model DIR [--types multilabel binary] [--min-positives 5]`

A sigmoid head trained on a mixture sees few positives per label (TRAIL22: ~1 in 17), so
its probabilities sit below 0.5 and a fixed 0.5 cut predicts almost nothing even when the
ranking is good. Per label, the threshold with the best validation F1 is kept (binary: the
best macro-F1); labels with fewer than `min_positives` validation positives share the one
threshold that maximises the head's macro-F1, since a per-label fit on 1-4 positives is noise.
Training runs this on its validation records after the final model dir is written
(configs/train.yaml -> thresholds); eval and serve read the result from config.json.
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


def macro_f1(spec: HeadSpec, prob: np.ndarray, gold: np.ndarray, thresholds) -> float:
    t = np.asarray(thresholds, float)
    if spec.type == "binary":
        return float(f1_score(gold, (prob >= t[0]).astype(int), labels=[0, 1], average="macro", zero_division=0))
    return float(f1_score(gold, (prob >= t[None, :]).astype(int), average="macro", zero_division=0))


def fit_heads(specs: dict[str, HeadSpec], probs: dict[str, np.ndarray], golds: dict[str, np.ndarray],
              types=("multilabel",), min_positives: int = 5) -> dict[str, dict]:
    """{head: {thresholds, how, n, macro_f1_at_0.5, macro_f1_fitted}} for heads of `types` with validation labels."""
    bad = [t for t in types if t not in FITTABLE]
    if bad:
        raise ValueError(f"thresholds.types: {bad} cannot be fit (only {FITTABLE})")
    out = {}
    for name, spec in specs.items():
        if spec.type not in types or name not in probs or len(golds[name]) == 0:
            continue
        prob, gold = probs[name], golds[name]
        if spec.type == "binary":
            t, how = fit_binary(prob, gold), ["head"]
        else:
            t, how = fit_multilabel(prob, gold, min_positives)
        out[name] = {
            "thresholds": t, "how": how, "n": int(len(gold)),
            "macro_f1_at_0.5": macro_f1(spec, prob, gold, [0.5] * len(t)),
            "macro_f1_fitted": macro_f1(spec, prob, gold, t),
        }
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


def fit_model_dir(model_dir, val_records: dict, encode_kwargs: dict, *, types=("multilabel",), min_positives: int = 5,
                  batch_size: int = 64, log=print) -> dict[str, dict]:
    """Load the model dir, fit thresholds on `val_records`; they go into its config.json, how
    they were fit into its thresholds.json (`model_dir.write_thresholds`)."""
    from biascard.model import model_dir as model_files

    from .evaluation import collect_logits

    model, tokenizer = model_files.load(model_dir)
    specs = model.head_specs
    logits, labels, _ = collect_logits(model, val_records, tokenizer, specs, batch_size, encode_kwargs)
    probs, golds = probabilities(specs, logits, labels)
    fitted = fit_heads(specs, probs, golds, types, min_positives)
    for name, e in fitted.items():
        shared = e["how"].count("shared")
        log(f"thresholds {name}: validation macro-F1 {e['macro_f1_at_0.5']:.3f} at 0.5 -> {e['macro_f1_fitted']:.3f} "
            f"(n={e['n']}, {len(e['thresholds']) - shared} per label, {shared} shared)")
    model_files.write_thresholds(model_dir, fitted, {
        "types": list(types), "min_positives": min_positives, "split": "validation",
        "datasets": {n: len(r) for n, (r, _) in val_records.items()}, "heads": fitted})
    return fitted


def _training_setup(model_dir: Path) -> dict:
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
                   types=(cfg.get("thresholds") or {}).get("types"), refold=data.get("refold"),
                   source=str(cfg_path))
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model dir; its config.json gets the thresholds")
    p.add_argument("--datasets", nargs="+", help="validation data (default: the training run's, from MODEL/training.json)")
    p.add_argument("--types", nargs="+", default=None, choices=FITTABLE, help="head types (default: multilabel)")
    p.add_argument("--min-positives", type=int, default=5)
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
        setup = _training_setup(model_dir)
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
        types = tuple(args.types or setup.get("types") or ["multilabel"])
        fit_model_dir(model_dir, val, enc, types=types, min_positives=args.min_positives, log=log)
    except (ValueError, FileNotFoundError) as e:
        print(f"thresholds: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
