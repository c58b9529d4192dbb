"""The adapter contract: one class per dataset, turning its files into unified records."""
from __future__ import annotations

from pathlib import Path

import datasets

from ..errors import DataError, Report
from ..records import FEATURES
from ..splits import SPLITS, check_no_leak
from .readers import iter_csv, iter_jsonl  # noqa: F401  (the readers every adapter uses)

ADAPTERS: dict[str, "Adapter"] = {}


def register(cls):
    """Class decorator: make an adapter reachable by name from the CLI and configs."""
    ADAPTERS[cls.name] = cls()
    return cls


class Adapter:
    name: str = ""
    folder: str = ""
    files: tuple[str, ...] = ()  # paths relative to the dataset folder
    heads: tuple[str, ...] = ()
    license: str = ""
    redistributable: bool = False
    citation: str = ""
    version: str = "1"  # bump when the adapter's output changes, to invalidate the cache

    def read(self, root: Path, report: Report) -> dict[str, list[dict]]:
        """Records per split. Adapters without an official split return {'all': [...]}."""
        raise NotImplementedError

    def split(self, records: list[dict], report: Report) -> dict[str, list[dict]]:
        raise DataError(f"{self.name}: no official split and no split rule")

    def build(self, root: Path, report: Report) -> datasets.DatasetDict:
        missing = [f for f in self.files if not (root / f).is_file()]
        if missing:
            raise DataError(
                f"{self.name}: missing {', '.join(missing)} under {root}; "
                f"set BIASCARD_DATA_DIR or run `biascard data fetch {self.name}`"
            )
        parts = self.read(root, report)
        if set(parts) == {"all"}:
            parts = self.split(parts["all"], report)
        check_no_leak(parts, self.name)
        out = {}
        for split in SPLITS:
            rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in parts.get(split, [])]
            out[split] = datasets.Dataset.from_list(rows, features=FEATURES)
        return datasets.DatasetDict(out)
