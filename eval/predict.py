"""Run a saved model over records: per-head probabilities (and token-head spans) per record,
read with the model's own chunking, and turned into the `Outputs` that eval scores."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from biascard.compose.reading import reads_sentences, with_segments

from .baselines import encode_gold
from .tasks import Outputs, merge_spans, token_runs


def chunking(model, max_chunks: int | None = None) -> dict:
    """How the model reads long records: the model's config.json max_chunks (what training
    validated on and the server reads), unless `max_chunks` overrides it for a study."""
    cfg = model.config
    own = cfg.max_chunks
    used = own if max_chunks is None else int(max_chunks)
    return {"max_length": int(cfg.max_length), "stride": int(cfg.stride), "max_chunks": used,
            "model_max_chunks": own, "overridden": used != own}


def predict_records(
    model,
    tokenizer,
    records: Sequence[dict],
    heads: Sequence[str] | None = None,
    *,
    batch_size: int = 32,
    max_chunks: int | None = None,
    token_threshold: float = 0.5,
) -> dict[str, dict]:
    """{head: {"prob": ..., "spans": ...}} aligned with `records`.

    Sequence heads: "prob" is `head_probabilities` per record (binary float[N],
    multiclass/ordinal/multilabel float[N, C]). Token heads: "spans" holds the character
    spans of contiguous runs of tokens with P >= `token_threshold`; where chunks overlap
    (stride), a token's probability is the mean over the chunks that hold it.
    `max_chunks`: chunks read per record; None = the model's config.max_chunks (`chunking`).
    Records are batched by length so padding stays small; the output order is the input's.
    A `document_reading: sentences` model reads documents as their sentences, as in training
    (`biascard.compose.reading`).
    """
    specs = model.head_specs
    heads = list(specs) if heads is None else list(heads)
    unknown = [h for h in heads if h not in specs]
    if unknown:
        raise ValueError(f"the model has no head(s) {unknown}; it has {sorted(specs)}")
    if not records:
        return {h: {"prob": None, "spans": []} for h in heads}
    per_record: dict[str, list] = {h: [None] * len(records) for h in heads}
    n_chunks = chunking(model, max_chunks)["max_chunks"]
    if reads_sentences(model):
        records = with_segments(records, specs)
    order = np.argsort([-len(r["text"]) for r in records], kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        got = _predict_batch(model, tokenizer, [records[i] for i in idx], heads, n_chunks, token_threshold)
        for h in heads:
            for i, value in zip(idx, got[h]):
                per_record[h][i] = value
    return {h: {"prob": None, "spans": per_record[h]} if specs[h].is_token
            else {"prob": np.stack(per_record[h]), "spans": None} for h in heads}


def _predict_batch(model, tokenizer, batch_records, heads, max_chunks, token_threshold) -> dict[str, list]:
    """One forward pass: {head: per record, its probabilities (sequence heads) or spans (token heads)}."""
    import torch

    from biascard.model.features import encode
    from biascard.model.modeling import head_probabilities

    specs, cfg = model.head_specs, model.config
    batch = encode(
        [{"id": r.get("id"), "text": r["text"], "segments": r.get("segments")} for r in batch_records],
        tokenizer, specs,
        int(cfg.max_length), int(cfg.stride), with_labels=False, return_offsets=True, max_chunks=max_chunks,
    )
    offsets = batch.pop("offset_mapping")
    doc_index = batch["doc_index"]
    device = next(model.parameters()).device
    with torch.inference_mode():
        out = model(**{k: v.to(device) for k, v in batch.items()})
    got: dict[str, list] = {}
    for h in heads:
        p = head_probabilities(out.logits[h].float(), specs[h]).cpu().numpy()
        if not specs[h].is_token:
            got[h] = list(p[: len(batch_records)])
            continue
        got[h] = [_token_spans(p, offsets, (doc_index == j).nonzero().flatten().tolist(), token_threshold)
                  for j in range(len(batch_records))]
    return got


def _token_spans(p: np.ndarray, offsets, chunks: list[int], threshold: float) -> list[list[int]]:
    """Character spans of one record from its chunks' token probabilities (overlaps averaged)."""
    acc: dict[tuple[int, int], list[float]] = {}
    for c in chunks:
        for (s, e), pr in zip(offsets[c].tolist(), p[c].tolist()):
            if e > s:  # (0, 0): special or pad token
                acc.setdefault((s, e), []).append(pr)
    toks = sorted(acc)
    return token_runs([float(np.mean(acc[t])) for t in toks], toks, threshold)


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
