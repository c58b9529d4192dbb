"""`biascard train fuse --model DIR --out DIR [--heads topic=20000/500 sdg=8000 ...] [--features 5000]`

Gives trained heads a fitted lexical model (`biascard.model.fitted_lexical`): per head, the
`features` word n-grams of its train texts with the highest document frequency, their tf-idf,
and a class-balanced logistic regression on them (the TF-IDF+LR baseline's model, C = `--C`);
with `/KEEP`, each output keeps only its KEEP largest coefficients (pruned before the weight is
chosen, so the curve is the pruned model's).
Its mixing weight is chosen on the full validation split from 0, 0.1, ..., 1 by the head's
selection metric: mAP for multilabel heads (threshold-free: thresholds are refit after), macro-F1
of the argmax for multiclass, macro-F1 at the head's threshold for binary; averaged over the
datasets that label the head. A head whose best weight is 0 is left as it was. The result is a
new model dir (the source untouched) whose thresholds are then refit as training fits them,
with `fuse.json` recording every head's validation curve.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

GRID = np.round(np.linspace(0.0, 1.0, 11), 2)
RECORD = "fuse.json"


def parse_heads(items: list[str], default: int) -> dict[str, tuple[int, int | None]]:
    """["topic=20000/500", "sdg=8000", "fallacy"] -> {"topic": (20000, 500), "sdg": (8000, None),
    "fallacy": (default, None)}: (features, coefficients kept per output, None = all)."""
    out = {}
    for item in items:
        name, _, spec = item.partition("=")
        size, _, keep = spec.partition("/")
        try:
            out[name] = (int(size) if size else int(default), int(keep) if keep else None)
        except ValueError:
            raise ValueError(f"--heads {item!r}: FEATURES and KEEP in NAME=FEATURES/KEEP must be integers") from None
        if out[name][0] < 1 or (out[name][1] is not None and out[name][1] < 1):
            raise ValueError(f"--heads {item!r}: the feature and kept-coefficient counts must be positive")
    return out


def vocabulary(hashes: list[list[int]], size: int) -> tuple[np.ndarray, np.ndarray]:
    """The `size` n-gram hashes in most texts (`text_hashes` of each; ties: the smaller hash),
    sorted, and their smooth idf."""
    from collections import Counter

    df = Counter()
    for h in hashes:
        df.update(set(h))
    top = sorted(df.items(), key=lambda kv: (-kv[1], kv[0]))[:size]
    vocab = np.asarray(sorted(h for h, _ in top), dtype=np.int64)
    counts = np.asarray([df[int(h)] for h in vocab], dtype=np.float64)
    return vocab, np.log((1.0 + len(hashes)) / (1.0 + counts)) + 1.0


def design(module, hashes: list[list[int]], batch: int = 512):
    """The tf-idf rows [N, F] (scipy CSR) of texts hashed by `text_hashes`, as the module computes
    them at inference."""
    import scipy.sparse as sp

    from biascard.model.lexical import hashed_inputs

    parts = []
    for start in range(0, len(hashes), batch):
        chunk = hashes[start : start + batch]
        record, col, w = module.features(**_bag(hashed_inputs(chunk)))
        parts.append(sp.csr_matrix((w.numpy(), (record.numpy(), col.numpy())), shape=(len(chunk), module.vocab.shape[0])))
    return sp.vstack(parts).tocsr()


def _bag(inputs: dict) -> dict:
    return {"ids": inputs["lexical_ids"], "offsets": inputs["lexical_offsets"]}


def fit_linear(kind: str, x, y: np.ndarray, c: float, outputs: int) -> tuple[np.ndarray, np.ndarray]:
    """(coef [outputs, F], intercept [outputs]) of the baseline's logistic regression on `x`."""
    from sklearn.linear_model import LogisticRegression

    if kind == "multiclass":
        missing = sorted(set(range(outputs)) - set(np.unique(y).tolist()))
        if missing:
            raise ValueError(f"classes {missing} have no train example: a fitted model cannot score them")
        clf = LogisticRegression(class_weight="balanced", max_iter=2000, C=c).fit(x, y)
        return clf.coef_, clf.intercept_
    y = y.reshape(len(y), -1)
    coef, bias = np.zeros((y.shape[1], x.shape[1])), np.full(y.shape[1], -10.0)  # a label never seen: never
    for j in range(y.shape[1]):
        if 0 < y[:, j].sum() < len(y):
            # seeded: liblinear's dual solver shuffles, so unseeded fits differ run to run (by ~4e-5)
            clf = LogisticRegression(class_weight="balanced", max_iter=2000, C=c, solver="liblinear", dual=True,
                                     random_state=0)
            clf.fit(x, y[:, j])
            coef[j], bias[j] = clf.coef_[0], clf.intercept_[0]
    return coef, bias


@torch.no_grad()
def fitted_logits(module, texts: list[str]) -> np.ndarray:
    from biascard.model.lexical import lexical_inputs

    return module(**_bag(lexical_inputs(texts))).numpy()


def selection_metric(spec, logits: np.ndarray, gold: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score, f1_score

    if spec.type == "multilabel":
        cols = np.flatnonzero(gold.sum(0) > 0)
        return float(np.mean([average_precision_score(gold[:, j], logits[:, j]) for j in cols]))
    if spec.type == "multiclass":
        return float(f1_score(gold, logits.argmax(1), labels=list(range(logits.shape[1])), average="macro",
                              zero_division=0))
    t = (spec.thresholds or [0.5])[0]
    pred = (1.0 / (1.0 + np.exp(-logits.reshape(-1))) >= t).astype(int)
    return float(f1_score(gold, pred, labels=[0, 1], average="macro", zero_division=0))


def choose_weight(spec, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[float, list[float]]:
    """The grid weight with the best mean selection metric over `parts` [(model, fitted, gold)]
    (ties: the smaller weight), and the curve."""
    from biascard.model.fitted_lexical import mix

    curve = [float(np.mean([selection_metric(spec, mix(w, zm, zf), g) for zm, zf, g in parts])) for w in GRID]
    return grid_choice(curve), curve


def grid_choice(curve: list[float]) -> float:
    """The GRID weight with the best score of `curve` (one per GRID point); ties: the smaller weight."""
    return float(GRID[int(np.flatnonzero(np.asarray(curve) >= max(curve) - 1e-12)[0])])


def encoding(model, setup: dict) -> dict:
    """The model's chunking as training read it: max_length, stride, max_chunks (the run's, else the model's)."""
    c = model.config
    return dict(max_length=int(c.max_length), stride=int(c.stride),
                max_chunks=next((m for m in (setup.get("max_chunks"), c.max_chunks) if m is not None), None))


def fitted_parts(module, head: str, val: dict, names: list[str]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """[(model logits, fitted logits, gold)] of `head` per dataset of `names` labeling it in `val`
    (`validation_logits`), as `choose_weight` reads them."""
    parts = []
    for recs, heads in (val[n] for n in names if head in val[n][1]):
        zm, gold, rows = heads[head]
        parts.append((zm, fitted_logits(module, [r["text"] for r, k in zip(recs, rows) if k]), gold))
    return parts


def validation_logits(model, tokenizer, names: list[str], enc: dict, setup: dict, batch_size: int) -> dict:
    """`record_logits` over every validation record of `names`."""
    from .datasets import validation_records

    val = validation_records(names, tokenizer, enc["max_length"], enc["max_chunks"], None, seed=setup.get("seed", 43),
                             refold=setup.get("refold"))
    return record_logits(model, tokenizer, val, enc, batch_size)


def record_logits(model, tokenizer, split: dict, enc: dict, batch_size: int) -> dict:
    """{dataset: (records, {head: (logits, gold, keep)})} of `split` {dataset: (records, token
    lengths)}, the records in the order read; logits and gold of the labeled rows (`keep`) only."""
    from .evaluation import collect_logits, labeled_rows

    specs, out = model.head_specs, {}
    for name, (recs, lengths) in split.items():
        order = np.argsort(-np.asarray(lengths), kind="stable")  # the order collect_logits reads them in
        recs, lengths = [recs[i] for i in order], [lengths[i] for i in order]
        logits, labels, _ = collect_logits(model, {name: (recs, lengths)}, tokenizer, specs, batch_size, enc)
        heads = {}
        for head in logits:
            if specs[head].is_token or not labels[head]:
                continue
            lg, y = torch.cat(logits[head]), torch.cat(labels[head])
            keep = labeled_rows(y, specs[head].type)
            if keep.any():
                heads[head] = (lg[keep].numpy(), y[keep].long().numpy(), keep.numpy())
        out[name] = (recs, heads)
    return out


def train_texts(head: str, spec, names: list[str], setup: dict) -> tuple[list[str], np.ndarray]:
    """The head's train texts over `names` and their labels as training encodes them (multilabel:
    indicator rows)."""
    from biascard.data.prepare import prepare
    from biascard.model.features import sequence_labels

    from .datasets import records, refold_splits
    from .evaluation import labeled_rows

    recs = [r for name in names for r in records(refold_splits(prepare(name), name, setup.get("refold"))["train"])]
    y = sequence_labels(recs, spec, spec.label2id)
    keep = labeled_rows(y, spec.type)
    if not keep.any():
        raise ValueError(f"head {head!r}: no train record of {names} labels it")
    return [r["text"] for r, k in zip(recs, keep.tolist()) if k], y[keep].long().numpy()


def fit_module(spec, texts: list[str], y: np.ndarray, size: int, c: float, keep: int | None = None):
    """The head's FittedLexical: vocabulary and idf of `texts`, the regression on their tf-idf,
    pruned to `keep` coefficients per output (None, or as many as the vocabulary: all)."""
    from biascard.model.fitted_lexical import FittedLexical

    from biascard.model.lexical import text_hashes

    hashes = [text_hashes(t) for t in texts]  # once: the vocabulary and the features read them
    vocab, idf = vocabulary(hashes, size)
    dense = FittedLexical(len(vocab), spec.num_outputs)
    dense.set(vocab, idf, dense.coef, dense.intercept)  # the features need only these two
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        coef, bias = fit_linear(spec.type, design(dense, hashes), y, c, spec.num_outputs)
    module = FittedLexical(len(vocab), spec.num_outputs, keep if keep is not None and keep < len(vocab) else None)
    module.set(vocab, idf, coef, bias)
    return module


def fuse(model_dir: Path, out: Path, heads: dict[str, int], c: float = 1.0, batch_size: int = 32, log=print) -> dict:
    """Fit, choose and write (module docstring); returns the record written to `out`/fuse.json."""
    from biascard.data.adapters import ADAPTERS
    from biascard.model import model_dir as model_files
    from biascard.model.head_options import FITTED_TYPES

    from .thresholds import training_setup

    model, tokenizer = model_files.load(model_dir)
    specs = model.head_specs
    unknown = [h for h in heads if h not in specs or specs[h].type not in FITTED_TYPES]
    if unknown:
        raise ValueError(f"--heads {unknown}: not binary, multiclass or multilabel heads of {model_dir}")
    setup = training_setup(model_dir)
    names = setup.get("datasets") or []
    if not names:
        raise ValueError(f"{model_dir}/{model_files.TRAINING} names no datasets: the train texts are unknown")
    enc = encoding(model, setup)
    log(f"fuse: validation logits of {model_dir} on {names}")
    val = validation_logits(model, tokenizer, names, enc, setup, batch_size)
    record, fits = {"source": str(model_dir), "C": c, "grid": GRID.tolist(), "heads": {}}, {}
    for head, (size, per_output) in heads.items():
        spec = specs[head]
        with_head = [n for n in names if head in ADAPTERS[n].heads]
        texts, y = train_texts(head, spec, with_head, setup)
        module = fit_module(spec, texts, y, size, c, per_output)
        parts = fitted_parts(module, head, val, with_head)
        if not parts:
            raise ValueError(f"head {head!r}: no validation record of {with_head} labels it")
        weight, curve = choose_weight(spec, parts)
        n, kept = int(module.vocab.shape[0]), ({"keep": module.keep} if module.keep is not None else {})
        log(f"fuse: {head}: {n} n-grams from {len(texts)} train texts"
            f"{f', {module.keep} coefficients kept per output' if kept else ''}; validation "
            f"{curve[0]:.4f} -> {max(curve):.4f} at weight {weight}")
        record["heads"][head] = {"features": n, **kept, "weight": weight, "curve": curve,
                                 "train_texts": len(texts), "datasets": with_head}
        if weight > 0:
            fits[head] = (module, {"features": n, "weight": weight, "C": c, **kept})
    _write(model, model_dir, out, fits)
    (out / RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    model_files.write_checksums(out)
    return record


def _write(model, source: Path, out: Path, fits: dict) -> None:
    """`source`'s files in `out`, the model now with the fitted heads (config and weights)."""
    import copy

    from biascard.model import model_dir as model_files
    from biascard.model.modeling import BiasCardModel

    config = copy.deepcopy(model.config)
    config.heads = {n: {**s.to_dict(), **({"fitted": fits[n][1]} if n in fits else {})}
                    for n, s in model.head_specs.items()}
    fused = BiasCardModel(config)
    missing, unexpected = fused.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not k.startswith("fitted.") for k in missing):
        raise RuntimeError(f"fuse: weights do not carry over (missing {missing}, unexpected {unexpected})")
    for name, (module, _) in fits.items():
        fused.fitted[name].load_state_dict(module.state_dict())
    if out.resolve() == source.resolve():
        raise ValueError(f"--out {out} is the source model dir: fuse writes a new one")
    # the tokenizer files too, as they are: saving them again would rewrite their settings
    shutil.copytree(source, out, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(model_files.WEIGHTS, model_files.CONFIG, model_files.CHECKSUMS))
    fused.eval().save_pretrained(out, safe_serialization=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="biascard train fuse", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="trained model dir (left as it is)")
    p.add_argument("--out", required=True, help="new model dir with the fitted heads")
    p.add_argument("--heads", nargs="+", required=True,
                   help="heads to fit, each NAME, NAME=FEATURES or NAME=FEATURES/KEEP (coefficients kept per output)")
    p.add_argument("--features", type=int, default=5000, help="n-grams per head without =FEATURES (default 5000)")
    p.add_argument("--C", type=float, default=1.0, help="inverse L2 strength of the regressions (default 1.0)")
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args(argv)
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    try:
        from . import thresholds

        fuse(Path(args.model), Path(args.out), parse_heads(args.heads, args.features), args.C, args.batch_size, log)
        return thresholds.main(["--model", args.out])
    except (ValueError, FileNotFoundError) as e:
        print(f"fuse: error: {e}", file=sys.stderr)
        return 2
