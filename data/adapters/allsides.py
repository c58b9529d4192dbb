"""Article-Bias-Prediction (AllSides; Baly et al. 2020): political leaning and topic per article."""
from __future__ import annotations

from pathlib import Path

from ..errors import Report
from ..records import make_record, text_key
from .base import Adapter, iter_csv, iter_jsonl, register

TEXT_FILE = "text_subset_media_split.jsonl.gz"
META_FILE = "metadata_all.csv.gz"
LEANING = {0: "left", 1: "center", 2: "right"}
SPLITS = {"train": "train", "valid": "validation", "test": "test"}


@register
class AllSides(Adapter):
    name = "allsides"
    folder = "article_bias_prediction_allsides"
    files = (TEXT_FILE, META_FILE)
    heads = ("political_leaning", "topic")
    license = "Apache-2.0 (repository); article texts are third-party news, labels are AllSides'"
    redistributable = False
    citation = (
        "Baly, R., Da San Martino, G., Glass, J., Nakov, P. (2020). We Can Detect Your Bias: "
        "Predicting the Political Ideology of News Articles. EMNLP 2020, pp. 4982-4991."
    )
    version = "2"  # 2: rows checked against the file; undecodable JSONL lines reported

    def read(self, root: Path, report: Report) -> dict[str, list[dict]]:
        # The media split is by web domain (`source_url`, only in the metadata): no domain is in
        # two splits. `source` names do recur across splits (columnists, "CNN (Web News)",
        # "Guest Writer"), so grouping by `source` would contradict the official split.
        domain = {}
        for _, row in iter_csv(root / META_FILE, report):
            if row.get("ID") and row.get("source_url"):
                domain[row["ID"]] = row["source_url"].strip()
        path = root / TEXT_FILE
        parts: dict[str, list[dict]] = {s: [] for s in SPLITS.values()}
        seen_ids: set[str] = set()
        for line, obj in iter_jsonl(path, report):
            art_id = str(obj.get("ID") or "").strip()
            split = SPLITS.get(obj.get("split_media"))
            title = (obj.get("title") or "").strip()
            body = (obj.get("content_original") or "").strip()
            topic = (obj.get("topic") or "").strip()
            bias, bias_text = obj.get("bias"), obj.get("bias_text")
            if not art_id:
                report.skip(path, line, "missing ID")
            elif art_id in seen_ids:
                report.skip(path, line, f"duplicate ID {art_id}")
            elif split is None:
                report.skip(path, line, f"split_media {obj.get('split_media')!r} is not train/valid/test")
            elif not body:
                report.skip(path, line, "empty content_original")
            elif bias not in LEANING or isinstance(bias, bool):
                report.skip(path, line, f"bias {bias!r} is not 0, 1 or 2")
            elif LEANING[bias] != bias_text:
                report.skip(path, line, f"bias {bias} ({LEANING[bias]}) contradicts bias_text {bias_text!r}")
            elif not topic:
                report.skip(path, line, "empty topic")
            else:
                seen_ids.add(art_id)
                parts[split].append(
                    make_record(
                        id=f"allsides-{art_id}",
                        # The headline carries much of the slant and is what a card reader sees first.
                        text=f"{title}\n\n{body}" if title else body,
                        unit="article",
                        labels={"political_leaning": LEANING[bias], "topic": [topic]},
                        dataset=self.name,
                        # Articles missing from the metadata fall back to their own group.
                        group="domain:" + domain[art_id] if art_id in domain else "article:" + art_id,
                        outlet=(obj.get("source") or "").strip() or None,
                        doc_id=art_id,
                    )
                    | {"_line": line}
                )
        _drop_repeats(parts, path, report)
        return parts


def _drop_repeats(parts: dict[str, list[dict]], path: Path, report: Report) -> None:
    """A text in two splits leaves the earlier one (train, then validation); test stays whole.

    None on the current file. Keys are hashed once: hashing 68M characters is the slow part.
    """
    keys = {s: [text_key(r["text"]) for r in rows] for s, rows in parts.items()}
    later: dict[str, str] = {}
    for split in ("test", "validation", "train"):
        kept = []
        for r, key in zip(parts[split], keys[split]):
            if key in later:
                report.remove(path, r["_line"], f"same text as {later[key]}, kept there")
            else:
                kept.append(r)
        for r, key in zip(parts[split], keys[split]):
            later.setdefault(key, f"{split} {r['id']}")
        parts[split] = kept
