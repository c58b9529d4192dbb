"""Prepare datasets into cached arrow DatasetDicts and describe them per head."""
from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from pathlib import Path

import datasets

from . import paths
from .adapters import ADAPTERS
from .errors import BadRow, DataError, Report
from .records import HEADS

# Per-shard progress bars from save/load would drown the bad-row report.
datasets.disable_progress_bars()


def get_adapter(name: str):
    try:
        return ADAPTERS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(sorted(ADAPTERS))}") from None


def _fingerprint(adapter, root: Path) -> str:
    h = hashlib.sha256(f"{adapter.name}:{adapter.version}".encode())
    for rel in adapter.files:
        st = (root / rel).stat()
        h.update(f"{rel}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def prepare(name: str, *, report: Report | None = None, **options) -> datasets.DatasetDict:
    """Build (or load from cache) one dataset as a DatasetDict with train/validation/test.
    `options`: those of `prepare_report`.

    Skipped and removed rows go into `report` (pass one to read them, or use `prepare_report`);
    without one, their summary is printed to stderr so that no row goes unreported."""
    dsd, filled = prepare_report(name, report=report, **options)
    if report is None and (filled.bad or filled.removed):
        print(filled.note(name), file=sys.stderr)
    return dsd


def prepare_report(
    name: str,
    *,
    strict: bool = False,
    data_dir: Path | None = None,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    report: Report | None = None,
) -> tuple[datasets.DatasetDict, Report]:
    """`prepare`, returning the report of skipped and removed rows with the DatasetDict."""
    adapter = get_adapter(name)
    root = Path(data_dir) / adapter.folder if data_dir else paths.dataset_dir(adapter.folder)
    report = report or Report(strict=strict)
    target = Path(cache_dir or paths.cache_dir()) / name
    key = None
    if root.is_dir() and all((root / f).is_file() for f in adapter.files):
        key = _fingerprint(adapter, root)
        done = target / key
        if use_cache and not strict and (done / "dataset_dict.json").is_file():
            _replay(done / "report.json", report)
            return datasets.load_from_disk(str(done)), report
    dsd = adapter.build(root, report)
    if key:
        dsd.save_to_disk(str(target / key))
        rows = {kind: [vars(b) for b in getattr(report, kind)] for kind in ("bad", "removed")}
        (target / key / "report.json").write_text(json.dumps(rows, indent=1))
    return dsd, report


def _replay(path: Path, report: Report) -> None:
    """A cached build still reports the rows it skipped, so a cache hit hides nothing."""
    if not path.is_file():
        return
    rows = json.loads(path.read_text())
    for kind in ("bad", "removed"):
        getattr(report, kind).extend(BadRow(**r) for r in rows.get(kind, []))
    report.cached = str(path)


def head_stats(dsd: datasets.DatasetDict) -> dict[str, dict[str, dict[str, int]]]:
    """{head: {split: {label: count}}} for every head the dataset feeds."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for split, ds in dsd.items():
        labels = list(ds["labels"])  # a lazy Column in datasets 5: decode once, not once per head
        for head, (kind, _) in HEADS.items():
            counts: Counter = Counter()
            for row in labels:
                value = row[head]
                if value is None:
                    continue
                if kind in ("multilabel", "token"):
                    counts["(labeled)"] += 1
                    counts.update(str(v) for v in value)
                else:
                    counts[str(value)] += 1
            if counts:
                out.setdefault(head, {})[split] = dict(counts)
    return out
