"""TRAIL22-SDG: UN-document and paper passages, each labeled with one of the 17 SDGs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold

from ..errors import Report
from ..records import make_record, text_key
from .base import Adapter, iter_csv, register

TRAIN, TEST, EXTRA = "Train_data.csv", "Test_data.csv", "Final_Additional_Data.csv"
SEED = 2022
VALIDATION = 0.10


def _goals(labels) -> list[str]:
    return sorted(set(labels), key=int)


@register
class SDGTrail22(Adapter):
    name = "sdg_trail22"
    folder = "sdg_trail22"
    files = (TRAIN, TEST, EXTRA)
    heads = ("sdg",)
    license = "CC BY 4.0"
    redistributable = True
    citation = (
        "Delinte, N. et al. TRAIL22-SDG (TRAIL Workshop 2022 SDG coding challenge), GitHub, 2022. "
        "https://github.com/DelinteNicolas/TRAIL22-SDG"
    )
    version = "2"  # 2: rows checked against the file (stray quotes, field counts)

    def read(self, root: Path, report: Report) -> dict[str, list[dict]]:
        # Test is official; its own exact duplicates become one record (labels merged) so a
        # passage is scored once and a conflicting pair gets both goals as gold.
        test = self._pool([("test", root / TEST, ",", ())], {}, report)
        # Train and the additional file are mostly the same passages (1,629 of 1,664 train
        # rows): their union, each text once, minus every text of the test file.
        # 27 passages of the additional file span lines inside their quotes; the others are one line.
        sources = [("train", root / TRAIN, ",", ()), ("additional", root / EXTRA, "\t", ("text",))]
        train = self._pool(sources, test, report)
        # After dedup each text is its own group, so a plain stratified fold is group-safe
        # (and far faster than StratifiedGroupKFold over 5k singleton groups).
        rows = list(train.values())
        y = [r["labels"]["sdg"][0] for r in rows]
        folds = StratifiedKFold(n_splits=round(1 / VALIDATION), shuffle=True, random_state=SEED)
        held = set(next(folds.split(np.zeros(len(rows)), y))[1].tolist())
        return {
            "train": [r for i, r in enumerate(rows) if i not in held],
            "validation": [r for i, r in enumerate(rows) if i in held],
            "test": list(test.values()),
        }

    def _pool(self, sources, exclude: dict[str, dict], report: Report) -> dict[str, dict]:
        """Records keyed by normalized text; repeats merge into the first, texts in `exclude` go."""
        pool: dict[str, dict] = {}
        for part, path, delimiter, multiline in sources:
            for line, row in iter_csv(path, report, delimiter=delimiter, multiline=multiline):
                text = (row.get("text") or "").strip()
                goal = (row.get("SDG") or "").strip()
                if not text:
                    report.skip(path, line, "empty text")
                    continue
                if not (goal.isdigit() and 1 <= int(goal) <= 17):
                    report.skip(path, line, f"SDG {row.get('SDG')!r} is not a goal 1-17")
                    continue
                goal = str(int(goal))
                key = text_key(text)
                where = f"{path.name}:{line}"
                if key in exclude:
                    kept = exclude[key]
                    report.remove(path, line, f"text also in test ({kept['_where']}){_conflict(goal, kept)}")
                elif key in pool:
                    kept = pool[key]
                    report.remove(path, line, f"same text as {kept['_where']}{_conflict(goal, kept)}; merged")
                    kept["labels"]["sdg"] = _goals(kept["labels"]["sdg"] + [goal])
                else:
                    source = (row.get("source") or "").strip() or None
                    pool[key] = make_record(
                        id=f"{self.name}-{part}-{line}",
                        text=text,
                        unit="paragraph",
                        labels={"sdg": [goal]},
                        dataset=self.name,
                        group=key,
                        outlet=source,  # "UN" or "paper"; the additional file does not say
                    ) | {"_line": line, "_where": where}
        return pool


def _conflict(goal: str, kept: dict) -> str:
    old = kept["labels"]["sdg"]
    return "" if goal in old else f"; conflicting SDG labels: {','.join(old)} there, {goal} here"
