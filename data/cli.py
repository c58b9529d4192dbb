"""`biascard data list|prepare|stats`."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from . import paths
from .adapters import ADAPTERS
from .errors import Report
from .prepare import head_stats, prepare


def _names(args) -> list[str]:
    return args.names or sorted(ADAPTERS)


def add_list_arguments(p) -> None:
    pass


def run_list(args) -> int:
    table = Table(title=f"datasets (data dir: {paths.data_dir()})")
    for col in ("name", "folder", "heads", "license", "found at"):
        table.add_column(col)
    for name in sorted(ADAPTERS):
        a = ADAPTERS[name]
        root = paths.dataset_dir(a.folder) if a.folder else None
        found = str(root) if root and all((root / f).is_file() for f in a.files) else "missing"
        table.add_row(name, a.folder or "-", ", ".join(a.heads), a.license, found)
    Console(width=200).print(table)
    return 0


def _add_common(p) -> None:
    p.add_argument("names", nargs="*", help="datasets (default: all)")
    p.add_argument("--strict", action="store_true", help="fail on the first bad row")
    p.add_argument("--no-cache", action="store_true", help="rebuild even if cached")


add_prepare_arguments = _add_common


def _prepare_all(args) -> dict:
    out = {}
    for name in _names(args):
        if name == "cards" and not args.names:
            continue  # card data is the user's own; prepared when named
        report = Report(strict=args.strict)
        dsd = prepare(name, strict=args.strict, use_cache=not args.no_cache, report=report)
        out[name] = dsd
        sizes = ", ".join(f"{s} {len(d)}" for s, d in dsd.items())
        print(f"{name}: {sizes}; {report.summary(name)}")
    return out


def run_prepare(args) -> int:
    _prepare_all(args)
    return 0


add_stats_arguments = _add_common


def run_stats(args) -> int:
    console = Console(width=200)
    table = Table(title="rows per split and label distribution per head")
    for col in ("dataset", "head", "train", "validation", "test", "labels (all splits)"):
        table.add_column(col, overflow="fold")
    for name, dsd in _prepare_all(args).items():
        table.add_row(name, "(rows)", *(str(len(dsd[s])) for s in ("train", "validation", "test")), "")
        for head, per_split in head_stats(dsd).items():
            total: dict[str, int] = {}
            for counts in per_split.values():
                for k, v in counts.items():
                    total[k] = total.get(k, 0) + v
            n = {s: per_split.get(s, {}) for s in ("train", "validation", "test")}
            labeled = [str(sum(v for k, v in c.items() if k != "(labeled)") if "(labeled)" not in c else c["(labeled)"]) for c in n.values()]
            dist = ", ".join(f"{k}:{v}" for k, v in sorted(total.items(), key=lambda kv: -kv[1])[:12])
            if len(total) > 12:
                dist += f", ... ({len(total)} labels)"
            table.add_row("", head, *labeled, dist)
    console.print(table)
    return 0
