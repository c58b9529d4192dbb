"""LOGIC and LOGICCLIMATE (Jin et al. 2022): logical fallacies; feeds `fallacy` and `false_dilemma`."""
from __future__ import annotations

import ast
from pathlib import Path

from ..errors import Report
from ..records import make_record, text_key
from .base import Adapter, iter_csv, register

SPLIT_FILES = {"train": "train", "validation": "dev", "test": "test"}
FALSE_DILEMMA = "false dilemma"
# Climate excerpts span lines (as does their masked copy).
MULTILINE = ("source_article", "masked_articles")

# The 13 classes of the official split files (mappings.csv adds 'miscellaneous', used by no row).
FALLACIES = frozenset(
    {
        "ad hominem", "ad populum", "appeal to emotion", "circular reasoning", "equivocation",
        "fallacy of credibility", "fallacy of extension", "fallacy of logic", "fallacy of relevance",
        "false causality", "false dilemma", "faulty generalization", "intentional",
    }
)


# A line inside a multi-line text that reads as a row with these fields is a row swallowed by a
# stray quote. Lines of 3-column text often parse as 3 fields, so the fields must fit too.
def _edu_row(row: dict) -> bool:
    return row.get("updated_label", "").strip() in FALLACIES


def _mh_row(row: dict) -> bool:
    names = row.get("logical_fallacies", "").strip()
    return names.startswith("[") and names.endswith("]")


def _url_row(row: dict) -> bool:
    return row.get("original_url", "").strip().startswith("http")


def _edu(split: str) -> str:
    return f"edu_{SPLIT_FILES[split]}.csv"


def _climate(split: str, multi: bool) -> str:
    return f"climate_{SPLIT_FILES[split]}{'_mh' if multi else ''}.csv"


@register
class Logic(Adapter):
    name = "logic"
    folder = "logic_fallacy_jin2022"
    files = tuple(_edu(s) for s in SPLIT_FILES) + tuple(
        _climate(s, multi) for s in SPLIT_FILES for multi in (True, False)
    )
    heads = ("fallacy", "false_dilemma")
    license = "none stated (unclear)"
    redistributable = False
    citation = (
        "Jin, Z., Lalwani, A., Vaidhya, T., Shen, X., Ding, Y., Lyu, Z., Sachan, M., Mihalcea, R., "
        "Schölkopf, B. (2022). Logical Fallacy Detection. Findings of EMNLP 2022, pp. 7180-7198."
    )
    version = "2"  # 2: rows checked against the file (stray quotes, field counts)

    def read(self, root: Path, report: Report) -> dict[str, list[dict]]:
        parts = {}
        for split in SPLIT_FILES:
            parts[split] = self._read_edu(root, split, report) + self._read_climate(root, split, report)
        # Protocol: test stays intact; a text seen in two official splits leaves the earlier
        # stage (train before validation), so no sentence is both trained on and scored.
        _drop_seen(parts, "train", ("validation", "test"), report)
        _drop_seen(parts, "validation", ("test",), report)
        return parts

    def _read_edu(self, root: Path, split: str, report: Report) -> list[dict]:
        path = root / _edu(split)
        out = []
        # quiz items hold dialogues over several lines
        for line, row in iter_csv(path, report, multiline=("source_article",), guard=_edu_row):
            text = (row.get("source_article") or "").strip()
            label = (row.get("updated_label") or "").strip()
            if not text:
                report.skip(path, line, "empty source_article")
                continue
            if label not in FALLACIES:
                report.skip(path, line, f"updated_label {label!r} is not one of the 13 fallacy classes")
                continue
            out.append(
                make_record(
                    id=f"logic-edu-{split}-{line}",
                    text=text,
                    # quiz items: one to three sentences (median 110 characters)
                    unit="sentence",
                    labels={"fallacy": label, "false_dilemma": int(label == FALSE_DILEMMA)},
                    dataset=self.name,
                    group="text:" + text_key(text),
                    outlet="edu",
                )
                | {"_line": line, "_file": str(path)}
            )
        return out

    def _read_climate(self, root: Path, split: str, report: Report) -> list[dict]:
        # The single-label file has the article URL the multi-label file lacks; excerpts of one
        # article then share a group (the official split is already by article: URLs are disjoint).
        urls = {}
        single = root / _climate(split, multi=False)
        for _, row in iter_csv(single, report, multiline=MULTILINE, guard=_url_row):
            if row.get("source_article") and row.get("original_url"):
                urls.setdefault(text_key(row["source_article"]), row["original_url"].strip())
        path = root / _climate(split, multi=True)
        out = []
        for line, row in iter_csv(path, report, multiline=MULTILINE, guard=_mh_row):
            text = (row.get("source_article") or "").strip()
            if not text:
                report.skip(path, line, "empty source_article")
                continue
            try:
                labels = ast.literal_eval(row.get("logical_fallacies") or "")
            except (ValueError, SyntaxError):
                labels = None
            if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
                report.skip(path, line, f"logical_fallacies {row.get('logical_fallacies')!r} is not a list of names")
                continue
            unknown = sorted(set(labels) - FALLACIES)
            if unknown:
                report.skip(path, line, f"unknown fallacy name(s) {unknown}")
                continue
            url = urls.get(text_key(text))
            out.append(
                make_record(
                    id=f"logic-climate-{split}-{line}",
                    text=text,
                    # news excerpts; most are one sentence (median 175 characters)
                    unit="sentence",
                    # `fallacy` stays null: these rows are multi-label (1.2 names per excerpt), so
                    # they have no single class for a multiclass head; the binary head is exact.
                    labels={"false_dilemma": int(FALSE_DILEMMA in labels)},
                    dataset=self.name,
                    group="url:" + url if url else "text:" + text_key(text),
                    outlet="climate",
                    doc_id=url,
                )
                | {"_line": line, "_file": str(path)}
            )
        return out


def _drop_seen(parts: dict[str, list[dict]], target: str, others: tuple[str, ...], report: Report) -> None:
    """Remove from `target` each record whose text is in one of `others`, reporting each."""
    where: dict[str, list[str]] = {}
    for split in others:
        for r in parts[split]:
            where.setdefault(text_key(r["text"]), []).append(f"{split} {r['id']}")
    kept = []
    for r in parts[target]:
        hits = where.get(text_key(r["text"]))
        if hits:
            report.remove(r["_file"], r["_line"], f"text also in {', '.join(sorted(set(hits)))}; kept there")
        else:
            kept.append(r)
    parts[target] = kept
