"""Percentile bootstrap over examples: CIs for every metric, and paired deltas between runs."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

# fn(indices) -> {metric name: float}; the metric is computed on the examples at `indices`.
ScoreFn = Callable[[np.ndarray], dict[str, float]]


def _resamples(n: int, n_boot: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_boot, n))


def _interval(values: np.ndarray, ci: float) -> tuple[float, float, int]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan"), 0
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    return float(lo), float(hi), int(values.size)


def bootstrap(fn: ScoreFn, n: int, *, n_boot: int = 1000, seed: int = 0, ci: float = 0.95) -> dict[str, dict]:
    """{metric: {value, lo, hi, n_boot, point_outside}}: a percentile CI from `n_boot` resamples of n examples.

    Resamples where a metric is undefined (NaN, e.g. ROC-AUC on one class) are left out of
    its interval; `n_boot` says how many counted.
    """
    if n <= 0:
        raise ValueError("bootstrap needs at least one example")
    point = fn(np.arange(n))
    draws: dict[str, list[float]] = {k: [] for k in point}
    for idx in _resamples(n, n_boot, seed):
        scores = fn(idx)
        for k in draws:
            draws[k].append(scores.get(k, float("nan")))
    out = {}
    for k, v in point.items():
        lo, hi, used = _interval(np.asarray(draws[k], dtype=float), ci)
        out[k] = {"value": float(v), "lo": lo, "hi": hi, "n_boot": used, "point_outside": outside(float(v), lo, hi)}
    return out


def outside(value: float, lo: float, hi: float) -> bool:
    """True when the point estimate is outside its percentile interval.

    That happens for metrics that are biased under resampling: ECE grows on resamples
    (duplicates), and mAP averages over fewer labels when a rare label drops out. The
    interval is still reported, flagged, rather than widened or hidden.
    """
    return bool(np.isfinite(lo) and np.isfinite(value) and not (lo - 1e-12 <= value <= hi + 1e-12))


def paired_bootstrap(
    fn_a: ScoreFn, fn_b: ScoreFn, n: int, *, n_boot: int = 1000, seed: int = 0, ci: float = 0.95
) -> dict[str, dict]:
    """Delta b - a per metric on the same resampled examples (both runs scored on one index set).

    `significant` is true when the CI of the delta excludes 0; `p` is the two-sided share of
    resampled deltas on the other side of 0 (a bootstrap p-value, doubled, capped at 1).
    """
    pa, pb = fn_a(np.arange(n)), fn_b(np.arange(n))
    keys = [k for k in pa if k in pb]
    deltas: dict[str, list[float]] = {k: [] for k in keys}
    for idx in _resamples(n, n_boot, seed):
        sa, sb = fn_a(idx), fn_b(idx)
        for k in keys:
            deltas[k].append(sb.get(k, np.nan) - sa.get(k, np.nan))
    out = {}
    for k in keys:
        d = np.asarray(deltas[k], dtype=float)
        lo, hi, used = _interval(d, ci)
        fin = d[np.isfinite(d)]
        if fin.size:
            p = min(1.0, 2.0 * min(np.mean(fin <= 0), np.mean(fin >= 0)))
        else:
            p = float("nan")
        out[k] = {
            "a": float(pa[k]),
            "b": float(pb[k]),
            "delta": float(pb[k] - pa[k]),
            "lo": lo,
            "hi": hi,
            "p": float(p),
            "significant": bool(used and (lo > 0 or hi < 0)),
            "n_boot": used,
        }
    return out
