"""The datasets an eval run scores: which ones, and their DatasetDicts (`prepare` with the run's paths)."""
from __future__ import annotations

from pathlib import Path

from biascard.data.adapters import ADAPTERS
from biascard.data.prepare import prepare_report
from biascard.model import model_dir as model_files


def prepare_kwargs(c: dict) -> dict:
    paths = c.get("paths") or {}
    kw = {}
    if paths.get("data_dir"):
        kw["data_dir"] = Path(paths["data_dir"])
    if paths.get("cache_dir"):
        kw["cache_dir"] = Path(paths["cache_dir"])
    return kw


DATA_NOTE = "data "  # starts each note on a dataset's skipped and removed rows


def load_dataset_dict(name: str, c: dict, notes: list[str]):
    """prepare(name), with its skipped and removed rows kept as a report note."""
    dsd, report = prepare_report(name, **prepare_kwargs(c))
    if report.bad or report.removed:
        notes.append(f"{DATA_NOTE}{name}: {report.note(name)}")
    return dsd


def resolve_datasets(c: dict, model_heads: set[str] | None, model_dir: str | None) -> tuple[list[str], str]:
    """The datasets to score, and where that choice came from (shown in the report)."""
    if c.get("datasets"):
        names = c["datasets"]
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        how = "datasets="
    elif c.get("data") and c["data"].get("datasets"):
        names, how = list(c["data"]["datasets"]), "data="
    else:
        names, how = [], ""
        record = model_files.read_training_record(model_dir) if model_dir else None
        if record is not None:
            names, how = [n for n in record.get("datasets") or [] if n in ADAPTERS], "the model's training.json"
        if not names:
            names = [n for n, a in ADAPTERS.items() if model_heads is None or set(a.heads) & model_heads]
            names = [n for n in names if n != "cards"]  # cards are user data, not a benchmark
            how = "every dataset that labels one of the model's heads"
    unknown = [n for n in names if n not in ADAPTERS]
    if unknown:
        raise ValueError(f"unknown dataset(s) {unknown}; known: {', '.join(sorted(ADAPTERS))}")
    return names, how
