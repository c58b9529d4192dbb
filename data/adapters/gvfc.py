"""GVFC (Liu et al. 2019): 2,990 gun-violence news headlines, 9 issue frames."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from sklearn.model_selection import StratifiedGroupKFold

from ..errors import Report
from ..records import make_record, text_key
from ..splits import group_split
from .base import Adapter, iter_csv, register

FILE = "gvfc_headlines_annotations.csv"
SEED = 20190
NO_FRAME = 99

# Q3 Theme1 codes, in the order of the paper (SOURCE.md; the codebook itself was not available).
FRAMES: dict[int, str] = {
    1: "gun_rights",
    2: "gun_control",
    3: "politics",
    4: "mental_health",
    5: "public_safety",
    6: "race_ethnicity",
    7: "public_opinion",
    8: "society_culture",
    9: "economic",
}


def _code(value: str | None) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


@register
class GVFC(Adapter):
    name = "gvfc"
    folder = "gvfc"
    files = (FILE,)
    heads = ("gvfc_frame",)
    license = "none stated (unclear)"
    redistributable = False
    citation = (
        "Liu, S., Guo, L., Mays, K., Betke, M., Wijaya, D. T. (2019). Detecting Frames in News "
        "Headlines and Its Application to Analyzing News Framing Trends Surrounding U.S. Gun "
        "Violence. CoNLL 2019, pp. 504-514."
    )
    version = "2"  # 2: rows checked against the file (stray quotes, field counts)

    def read(self, root: Path, report: Report) -> dict[str, list[dict]]:
        path = root / FILE
        records = []
        for line, row in iter_csv(path, report):
            title = (row.get("news_title") or "").strip()
            relevant, theme = _code(row.get("Q1 Relevant")), _code(row.get("Q3 Theme1"))
            if not title:
                report.skip(path, line, "empty news_title")
                continue
            if relevant not in (1, 2):
                report.skip(path, line, f"Q1 Relevant {row.get('Q1 Relevant')!r} is not 1 or 2")
                continue
            if theme not in FRAMES and theme != NO_FRAME:
                report.skip(path, line, f"Q3 Theme1 {row.get('Q3 Theme1')!r} is not 1-9 or 99")
                continue
            if relevant == 2 and theme != NO_FRAME:
                report.skip(path, line, f"frame {theme} coded on a headline marked not relevant")
                continue
            # Headlines without a frame stay, with the head null: they are still real headlines
            # (useful for other heads and for a "no frame" analysis), just not frame-labeled.
            # Topic stays null: the topic head's label space is AllSides' 108 tags, and a constant
            # tag on every row here would teach nothing and mark every other topic as absent.
            frame = FRAMES.get(theme) if relevant == 1 else None
            records.append(
                make_record(
                    id=f"gvfc-{line}",
                    text=title,
                    unit="headline",
                    labels={"gvfc_frame": frame},
                    dataset=self.name,
                    # duplicate titles (11 in the file, some coded differently) share a group
                    group=text_key(title),
                )
                | {"_line": line}
            )
        return {"all": records}

    def split(self, records: list[dict], report: Report) -> dict[str, list[dict]]:
        return group_split(records, seed=SEED, test=0.15, validation=0.15, stratify="gvfc_frame")


def cv_folds(records: Iterable[dict], k: int = 5, seed: int = SEED) -> list[int | None]:
    """Fold index (0..k-1) per record for k-fold CV on the frame-labeled headlines, else None.

    The published GVFC numbers are accuracy over relevant headlines with k-fold CV, so
    evaluation pools all splits and uses these folds; duplicate titles share a fold.
    """
    rows = list(records)
    idx = [i for i, r in enumerate(rows) if r["labels"]["gvfc_frame"] is not None]
    folds: list[int | None] = [None] * len(rows)
    if not idx:
        return folds
    y = [rows[i]["labels"]["gvfc_frame"] for i in idx]
    groups = [text_key(rows[i]["text"]) for i in idx]
    skf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for fold, (_, held) in enumerate(skf.split(idx, y, groups)):
        for j in held:
            folds[idx[j]] = fold
    return folds
