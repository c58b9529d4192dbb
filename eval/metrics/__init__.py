"""Local `evaluate` metric modules (the hub is not reachable).

Each metric is a folder `<name>/<name>.py` holding one `evaluate.Metric` subclass; it is
loaded by path, so `evaluate.load` never tries the hub.
"""
from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

NAMES = ("classification", "roc_auc", "pr_auc", "multilabel", "ordinal", "span_f1", "ece")


def metric_path(name: str) -> Path:
    """The packaged `<name>/<name>.py` of a local metric module."""
    if name not in NAMES:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(NAMES)}")
    path = Path(str(resources.files(__name__) / name / f"{name}.py"))
    if not path.is_file():
        raise FileNotFoundError(f"metric module {name!r} is missing at {path}")
    return path


@functools.lru_cache(maxsize=None)
def load_metric(name: str):
    """`evaluate.load` of a local metric module (cached per process)."""
    import evaluate

    return evaluate.load(str(metric_path(name)))
