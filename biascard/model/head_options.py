"""The checks of a head's lexical options (`HeadSpec.lexical`, `HeadSpec.fitted`): plain Python,
no torch, so reading a config does not load the model's modules."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# lexical: true = these; a mapping overrides them. 2**17 x 16 = 2.1M parameters, 4.2 MB in fp16,
# so one lexical head fits beside MiniLM (45.4 MB fp16) in a 50 MB release
LEXICAL_DEFAULTS = {"buckets": 2**17, "dim": 16}
LEXICAL_WEIGHTINGS = ("mean", "tfidf")  # of a bag's n-grams; absent = mean, as older config.json files

FITTED_TYPES = ("binary", "multiclass", "multilabel")  # a logit per output to mix into
FITTED_KEYS = ("features", "weight", "C", "keep")


def fitted_options(value: Any, where: str, kind: str) -> dict | None:
    """A head's `fitted` option as {features, weight[, C, keep]} (`biascard.model.fitted_lexical`), or None."""
    if value is None:
        return None
    value = to_container(value)
    if kind not in FITTED_TYPES:
        raise ValueError(f"{where}: fitted is for {list(FITTED_TYPES)} heads, not {kind}")
    if not isinstance(value, Mapping) or not {"features", "weight"} <= set(value) <= {*FITTED_KEYS}:
        raise ValueError(f"{where}: fitted must be a mapping of features, weight[, C, keep], got {value!r}")
    n, w, keep = value["features"], value["weight"], value.get("keep", 1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{where}: fitted.features must be a positive integer, got {n!r}")
    if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= n:
        raise ValueError(f"{where}: fitted.keep must be an integer in [1, features], got {keep!r}")
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0.0 <= w <= 1.0:
        raise ValueError(f"{where}: fitted.weight must be a number in [0, 1], got {w!r}")
    return {**value, "weight": float(w)}


def lexical_options(value: Any, where: str, kind: str) -> dict | None:
    """A head's `lexical` option as {buckets, dim[, weighting]}, or None when off."""
    if value is None or value is False:
        return None
    if kind == "token":
        raise ValueError(f"{where}: lexical is for sequence heads; a token head has no record-level logits to add to")
    value = {} if value is True else to_container(value)
    if not isinstance(value, Mapping) or set(value) - {*LEXICAL_DEFAULTS, "weighting"}:
        raise ValueError(f"{where}: lexical must be true, null or a mapping of {[*LEXICAL_DEFAULTS, 'weighting']}, "
                         f"got {value!r}")
    out = {**LEXICAL_DEFAULTS, **value}
    if out.get("weighting", "mean") not in LEXICAL_WEIGHTINGS:
        raise ValueError(f"{where}: lexical.weighting must be one of {list(LEXICAL_WEIGHTINGS)} not {out['weighting']!r}")
    for key, n in ((k, out[k]) for k in LEXICAL_DEFAULTS):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{where}: lexical.{key} must be a positive integer, got {n!r}")
    return out


def to_container(cfg: Any) -> Any:
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(cfg, (DictConfig, ListConfig)):
            return OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return cfg
