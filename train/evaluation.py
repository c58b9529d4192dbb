"""In-loop validation metrics per head, from logits and the label tensors of `features`.

The eval stage (`biascard.eval`) has the full reports; these are the numbers the loop
needs for model selection (and the decision thresholds their fit), computed with
scikit-learn on what the model saw.
"""
from __future__ import annotations

import contextlib
import math
from collections import defaultdict
from collections.abc import Mapping

import numpy as np
import torch
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, mean_absolute_error

from biascard.compose.reading import reads_sentences, with_segments
from biascard.model.features import encode
from biascard.model.heads import HeadSpec
from biascard.model.modeling import corn_rank

# the per-head number averaged into `<split>/macro_f1_mean`
MAIN_METRIC = {
    "binary": "macro_f1",
    "multiclass": "macro_f1",
    "multilabel": "macro_f1",
    "ordinal": "macro_f1",
    "token": "f1",
    "regression": None,
}


def labeled_rows(y: torch.Tensor, kind: str) -> torch.Tensor:
    """Mask of the rows of a (non-token) head's label tensor that carry a label."""
    if kind == "regression":
        return ~torch.isnan(y)
    if kind == "multilabel":
        return (y != -100).all(dim=-1)
    return y != -100


def head_metrics(spec: HeadSpec, logits: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Metrics of one head over its labeled rows (tokens for token heads); {} if none."""
    kind = spec.type
    logits = logits.float()
    if kind == "token":
        # [C, L, 2] and [C, L]; a token counts where its label is not -100
        keep = y != -100
        if not keep.any():
            return {}
        pred = logits.argmax(-1)[keep].numpy()
        true = y[keep].long().numpy()
        return {
            "f1": float(f1_score(true, pred, average="binary", zero_division=0)),
            "accuracy": float(accuracy_score(true, pred)),
            "n": int(keep.sum()),
        }
    keep = labeled_rows(y, kind)
    if not keep.any():
        return {}
    logits, y = logits[keep], y[keep]
    n = int(keep.sum())
    if kind == "regression":
        diff = (logits - y.float()).numpy()
        return {"mae": float(np.abs(diff).mean()), "rmse": float(math.sqrt((diff**2).mean())), "n": n}
    if kind == "binary":
        pred, true = (logits > 0).long().numpy(), y.long().numpy()
        labels = [0, 1]
    elif kind == "multiclass":
        pred, true = logits.argmax(-1).numpy(), y.long().numpy()
        labels = list(range(spec.num_labels))
    elif kind == "ordinal":
        pred, true = corn_rank(logits).numpy(), y.long().numpy()
        labels = list(range(spec.num_labels))
    elif kind == "multilabel":
        pred, true = (logits > 0).long().numpy(), y.long().numpy()
        return {
            "micro_f1": float(f1_score(true, pred, average="micro", zero_division=0)),
            "macro_f1": float(f1_score(true, pred, average="macro", zero_division=0)),
            "n": n,
        }
    else:
        raise ValueError(f"head {spec.name!r}: unknown type {kind!r}")
    # macro over the classes present in truth or prediction; absent classes would read as 0
    present = sorted(set(true.tolist()) | set(pred.tolist()))
    out = {
        "macro_f1": float(f1_score(true, pred, labels=present, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(true, pred)),
        "n": n,
    }
    if kind == "ordinal":
        out["mae"] = float(mean_absolute_error(true, pred))
        qwk = cohen_kappa_score(true, pred, weights="quadratic", labels=labels) if len(present) > 1 else 0.0
        out["qwk"] = float(0.0 if math.isnan(qwk) else qwk)
    return out


def aggregate(
    specs: Mapping[str, HeadSpec],
    logits: Mapping[str, list[torch.Tensor]],
    labels: Mapping[str, list[torch.Tensor]],
    prefix: str = "val",
) -> dict[str, float]:
    """`{prefix}/{head}/{metric}` for every head with labels, plus `{prefix}/macro_f1_mean`."""
    out: dict[str, float] = {}
    mains = []
    for name, spec in specs.items():
        if not labels.get(name):
            continue
        if spec.type == "token":
            # chunks differ in length across batches: pad to the widest before stacking
            width = max(t.shape[1] for t in labels[name])
            lg = torch.cat([_pad(t, width, 0.0) for t in logits[name]])
            y = torch.cat([_pad(t, width, -100) for t in labels[name]])
        else:
            lg, y = torch.cat(logits[name]), torch.cat(labels[name])
        m = head_metrics(spec, lg, y)
        for k, v in m.items():
            out[f"{prefix}/{name}/{k}"] = v
        key = MAIN_METRIC.get(spec.type)
        if key and key in m:
            mains.append(m[key])
    if mains:
        out[f"{prefix}/macro_f1_mean"] = float(np.mean(mains))
    return out


def _pad(t: torch.Tensor, width: int, value) -> torch.Tensor:
    if t.shape[1] == width:
        return t
    shape = (t.shape[0], width - t.shape[1], *t.shape[2:])
    return torch.cat([t, t.new_full(shape, value)], dim=1)


@torch.no_grad()
def collect_logits(net, val_records: dict, tokenizer, specs, batch_size: int, encode_kwargs: dict,
                   autocast=contextlib.nullcontext):
    """Logits and label tensors per head over `{dataset: (records, lengths)}`, plus the summed loss."""
    was_training = net.training
    net.eval()
    logits: dict[str, list] = defaultdict(list)
    labels: dict[str, list] = defaultdict(list)
    loss_sum, loss_n = 0.0, 0
    for _, (records, lengths) in val_records.items():
        order = np.argsort(-np.asarray(lengths), kind="stable")  # similar lengths together: less padding
        for start in range(0, len(order), batch_size):
            batch_records = [records[i] for i in order[start : start + batch_size]]
            if reads_sentences(net):  # its documents as their sentences, as in training
                batch_records = with_segments(batch_records, specs)
            batch = encode(batch_records, tokenizer, specs, **encode_kwargs)
            with autocast():
                out = net(**batch)
            if out.loss is not None:
                loss_sum += float(out.loss) * len(batch_records)
                loss_n += len(batch_records)
            for head, y in batch["labels"].items():
                logits[head].append(out.logits[head].float().cpu())
                labels[head].append(y)
    if was_training:
        net.train()
    return logits, labels, loss_sum / max(loss_n, 1)


def evaluate(model, accelerator, val_records, tokenizer, specs, cfg, encode_kwargs) -> dict[str, float]:
    """Main process only: metrics on the validation records (unwrapped model, no DDP hooks)."""
    net = accelerator.unwrap_model(model)
    logits, labels, loss = collect_logits(net, val_records, tokenizer, specs, int(cfg.trainer.eval_batch_size),
                                          encode_kwargs, autocast=accelerator.autocast)
    metrics = aggregate(specs, logits, labels, prefix="val")
    metrics["val/loss"] = loss
    return metrics


def summary(metrics: dict, specs) -> str:
    """The console line of an evaluation: the mean and each head's main number."""
    parts = [f"macro_f1_mean={metrics.get('val/macro_f1_mean', float('nan')):.4f}",
             f"loss={metrics['val/loss']:.4f}"]
    for name, spec in specs.items():
        key = f"val/{name}/{MAIN_METRIC.get(spec.type) or 'mae'}"
        if key in metrics:
            parts.append(f"{name}={metrics[key]:.3f}")
    return " ".join(parts)
