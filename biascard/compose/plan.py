"""Which heads feed which card concept, decided once per model from `composer.concepts`."""
from __future__ import annotations

from collections.abc import Mapping

from biascard.card.contract import CONCEPT_HEADS

from .calibration import STATISTICS, check_cut_points


def _usable_head(entry: Mapping, spec) -> dict | None:
    """A configured sentence head the model can use for a concept, or None."""
    if spec is None or spec.level != "sentence":
        return None
    fallback = bool(entry.get("fallback"))
    if spec.type == "binary":
        return {"head": entry["head"], "type": "binary", "index": None, "fallback": fallback}
    if spec.type == "multiclass":
        wanted = [str(x) for x in entry.get("positive_labels") or []]
        index = [i for i, lab in enumerate(spec.labels) if lab in wanted]
        if index:  # without a label meaning "present" a multiclass head says nothing here
            return {"head": entry["head"], "type": "multiclass", "index": index,
                    "labels": [spec.labels[i] for i in index], "fallback": fallback}
    return None


def _calibrated_scoring(cal: Mapping) -> dict:
    """What a calibration fixed besides the statistic: the prior of short-text shrinkage (its
    validation median) and, when it was fit with them, the quote weight and prior weight; cut
    points only mean something for the statistic they were fit on, so these win over settings."""
    out = {k: float(cal[k]) for k in ("quote_weight", "prior_weight") if cal.get(k) is not None}
    prior = cal.get("prior", (cal.get("summary") or {}).get("median"))
    if prior is not None:
        out["prior"] = float(prior)
    return out


def _cut_points(concept: str, cfg: Mapping, calibration: Mapping | None, default_cut_points: Mapping) -> dict:
    """Cut points and the statistic they apply to: configured, else calibrated, else default."""
    out = {"statistic": cfg.get("statistic", "share_above"), "threshold": float(cfg.get("threshold", 0.5)),
           "top_k": int(cfg.get("top_k", 3)), "calibrated_scoring": {}}
    cal = (calibration or {}).get("concepts", {}).get(concept)
    if cfg.get("cut_points") is not None:
        out.update(cut_points=check_cut_points(cfg["cut_points"], f"composer.concepts.{concept}"), cut_source="configured")
    elif cal is not None:
        out.update(cut_points=cal["cut_points"], statistic=cal["statistic"],
                   cut_source="calibrated" if len(set(cal["cut_points"])) == 4 else "degenerate",
                   threshold=float(cal.get("threshold", out["threshold"])), top_k=int(cal.get("top_k", out["top_k"])),
                   calibrated_scoring=_calibrated_scoring(cal))
    else:
        if out["statistic"] not in default_cut_points:
            raise ValueError(f"composer.concepts.{concept}.statistic {out['statistic']!r} is not one of {STATISTICS}")
        out.update(cut_points=check_cut_points(default_cut_points[out["statistic"]],
                                               f"default_cut_points.{out['statistic']}"), cut_source="default")
    if out["statistic"] not in STATISTICS:
        raise ValueError(f"composer.concepts.{concept}.statistic {out['statistic']!r} is not one of {STATISTICS}")
    return out


def plan_concept(concept: str, cfg: Mapping, specs: Mapping, calibration: Mapping | None,
                 default_cut_points: Mapping) -> dict:
    """mode: "document" (the concept's ordinal card head), "derived" (sentence heads) or None."""
    doc_head = CONCEPT_HEADS[concept]
    spec = specs.get(doc_head)
    mode = "document" if spec is not None and spec.type == "ordinal" else None
    usable = [u for e in cfg.get("heads") or [] if (u := _usable_head(e, specs.get(e["head"]))) is not None]
    heads = [u for u in usable if not u["fallback"]] or usable
    if mode is None and heads:
        mode = "derived"
    return {"mode": mode, "document_head": doc_head if mode == "document" else None, "heads": heads,
            **_cut_points(concept, cfg, calibration, default_cut_points),
            "wanted": [doc_head] + [e["head"] for e in cfg.get("heads") or []]}
