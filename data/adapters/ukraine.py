"""Multidimensional news bias, Ukraine crisis (Färber et al. 2020): 2,057 sentences, 90 articles.

Labels come from the authors' binary CSV; it has no article id, so each row is matched to
its sentence in the article JSON to split by article.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from ..errors import Report
from ..records import make_record, normalize_text
from ..splits import group_split
from .base import Adapter, iter_csv, iter_jsonl, register

LABELS = "sentences_binary_labels.csv"
ARTICLES = "articles_sentences_annotations.jsonl.gz"
SEED = 2020
HEADS = ("framing", "subjectivity", "hidden_assumptions")


def match_key(text: str) -> str:
    # The CSV export lost some double quotes the JSON keeps ('"I strongly condemn ...').
    return normalize_text(text.replace('"', ""))


def read_articles(path: Path, report: Report) -> list[tuple[str, str, str]]:
    """(article id, sentence id, content) in file order."""
    out = []
    for line, obj in iter_jsonl(path, report):
        art, sents = obj.get("id"), obj.get("sentences")
        if not isinstance(art, str) or not isinstance(sents, list):
            report.skip(path, line, "article without an id or a sentences list")
            continue
        for s in sents:
            if not isinstance(s, dict) or not isinstance(s.get("content"), str) or not s.get("id"):
                report.skip(path, line, f"{art}: a sentence without id or content")
                continue
            out.append((art, str(s["id"]), s["content"]))
    return out


@register
class Ukraine(Adapter):
    name = "ukraine"
    folder = "ukraine_multidim_news_bias"
    files = (LABELS, ARTICLES)
    heads = HEADS
    license = "CC BY-NC (Zenodo 3885351; no LICENSE in the repo) - non-commercial"
    redistributable = False
    citation = (
        "Färber, M., Burkard, V., Jatowt, A., Lim, S. (2020). A Multidimensional Dataset Based on "
        "Crowdsourcing for Analyzing and Detecting News Bias. CIKM 2020. doi:10.1145/3340531.3412876"
    )
    version = "2"  # 2: rows checked against the file (stray quotes, field counts)

    def read(self, root: Path, report: Report) -> dict[str, list[dict]]:
        sents = read_articles(root / ARTICLES, report)
        positions = defaultdict(list)
        for i, (_, _, content) in enumerate(sents):
            positions[match_key(content)].append(i)
        path = root / LABELS
        records, cursor, taken = [], 0, set()
        # one sentence spans lines inside its quotes (lines 175-180)
        for line, row in iter_csv(path, report, multiline=("text",)):
            text = (row.get("text") or "").strip()
            if not text:
                report.skip(path, line, "empty text")
                continue
            values = {h: (row.get(h) or "").strip() for h in HEADS}
            bad = {h: v for h, v in values.items() if v not in ("0", "1")}
            if bad:
                report.skip(path, line, f"labels {bad} are not 0/1")
                continue
            # The CSV follows the JSON order; repeated sentences (4 are shared by two articles)
            # take the next unused occurrence from the current position on.
            cands = [i for i in positions.get(match_key(text), []) if i not in taken]
            if not cands:
                report.skip(path, line, f"sentence not found in {ARTICLES} (no article to group by)")
                continue
            i = next((c for c in cands if c >= cursor), cands[0])
            taken.add(i)
            cursor = i + 1
            art, sent_id, _ = sents[i]
            records.append(
                make_record(
                    id=f"ukraine-{art}-{sent_id}",
                    text=text,
                    unit="sentence",
                    labels={h: int(v) for h, v in values.items()},
                    dataset="ukraine",
                    group=f"article:{art}",
                    doc_id=art,
                )
            )
        return {"all": records}

    def split(self, records: list[dict], report: Report) -> dict[str, list[dict]]:
        # Positives cluster in few articles (one holds 41 of 165 framing ones), so an
        # unstratified article split leaves test with 2 framing positives. Stratifying by the
        # rarest positive head gives every split positives of all three heads.
        proxies = [
            {"text": r["text"], "group": r["group"], "labels": {"stratum": stratum(r["labels"])}, "i": i}
            for i, r in enumerate(records)
        ]
        parts = group_split(proxies, seed=SEED, stratify="stratum")
        return {split: [records[p["i"]] for p in rows] for split, rows in parts.items()}


def stratum(labels: dict) -> str:
    for head in ("hidden_assumptions", "framing", "subjectivity"):  # rarest first
        if labels[head]:
            return head
    return "none"
