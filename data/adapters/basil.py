"""BASIL (Fan et al. 2019): 300 articles on 100 events (Fox, NYT, HuffPost), bias spans.

Split by event triplet, never by sentence: the three articles of a triplet report the
same event, often with near-identical sentences.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import Report
from ..records import make_record
from ..splits import group_split
from .base import Adapter, iter_csv, register

SENTENCES = "basil_sentences.csv.gz"
SPANS = "basil_spans.csv"
SEED = 2019
BIAS = ("lex", "inf")


def _int(value: str | None) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def article_stances(root: Path) -> dict[str, str]:
    """{file_id: article_relative_stance} (left/right and liberal/conservative folded), the
    article-level label BASIL has beside its sentence labels; not a head, used by the card
    composer's ablation (biascard.eval.composer_ablation)."""
    fold = {"liberal": "left", "conservative": "right"}
    out = {}
    for _, row in iter_csv(root / SENTENCES):
        file_id = (row.get("file_id") or "").strip()
        stance = (row.get("article_relative_stance") or "").strip().lower()
        if file_id and stance:
            out[file_id] = fold.get(stance, stance)
    return out


def read_spans(path: Path, report: Report) -> dict[tuple[str, str], list[dict]]:
    """Spans per (file_id, sent_id), each checked against its own copy of the sentence."""
    spans: dict[tuple[str, str], list[dict]] = {}
    for line, row in iter_csv(path, report):
        start, end, bias = _int(row.get("start")), _int(row.get("end")), (row.get("bias") or "").strip()
        sentence, txt = row.get("sentence") or "", row.get("txt") or ""
        if bias not in BIAS:
            report.skip(path, line, f"bias {bias!r} is not one of {BIAS}")
            continue
        if start is None or end is None or not 0 <= start < end <= len(sentence):
            where = f"{row.get('start')!r}:{row.get('end')!r}"
            report.skip(path, line, f"span {where} out of range for its sentence")
            continue
        if sentence[start:end] != txt:
            report.skip(path, line, f"sentence[{start}:{end}] is {sentence[start:end]!r}, not txt {txt!r}")
            continue
        key = ((row.get("file_id") or "").strip(), (row.get("sent_id") or "").strip())
        spans.setdefault(key, []).append(
            {"start": start, "end": end, "label": bias, "_sentence": sentence, "_line": line}
        )
    return spans


@register
class BASIL(Adapter):
    name = "basil"
    folder = "basil"
    files = (SENTENCES, SPANS)
    heads = ("informational_bias", "lexical_bias")
    license = "none stated (unclear); article texts are third-party news"
    redistributable = False
    citation = (
        "Fan, L., White, M., Sharma, E., Su, R., Choubey, P. K., Huang, R., Wang, L. (2019). In Plain "
        "Sight: Media Bias Through the Lens of Factual Reporting. EMNLP-IJCNLP 2019. arXiv:1909.02670"
    )
    version = "2"  # 2: rows checked against the file (stray quotes, field counts)

    def read(self, root: Path, report: Report) -> dict[str, list[dict]]:
        spans = read_spans(root / SPANS, report)
        path = root / SENTENCES
        records, used = [], set()
        for line, row in iter_csv(path, report):
            file_id, sent_id = (row.get("file_id") or "").strip(), (row.get("sent_id") or "").strip()
            triplet = (row.get("triplet_uuid") or "").strip()
            raw = row.get("text") or ""
            # Offsets index the raw sentence, so it is kept unstripped.
            if not raw.strip():
                report.skip(path, line, "empty text")
                continue
            if not file_id or not sent_id or not triplet:
                report.skip(path, line, "missing file_id, sent_id or triplet_uuid")
                continue
            n_inf, n_lex = _int(row.get("n_inf")), _int(row.get("n_lex"))
            if n_inf is None or n_lex is None or n_inf < 0 or n_lex < 0:
                report.skip(path, line, f"n_inf {row.get('n_inf')!r} / n_lex {row.get('n_lex')!r} not counts")
                continue
            mine = spans.get((file_id, sent_id), [])
            used.add((file_id, sent_id))
            if any(s["_sentence"] != raw for s in mine):
                report.skip(path, line, f"text differs from the sentence its spans in {SPANS} were marked on")
                continue
            got_inf = sum(s["label"] == "inf" for s in mine)
            got_lex = sum(s["label"] == "lex" for s in mine)
            if (got_inf, got_lex) != (n_inf, n_lex):
                # A span row skipped in read_spans, or counts out of date: either way the
                # sentence's labels are not trustworthy.
                report.skip(
                    path, line,
                    f"n_inf/n_lex {n_inf}/{n_lex} but {got_inf}/{got_lex} valid spans in {SPANS}",
                )
                continue
            records.append(
                make_record(
                    id=f"basil-{file_id}-{sent_id}",
                    text=raw,
                    unit="headline" if sent_id == "title" else "sentence",
                    labels={"informational_bias": int(got_inf > 0), "lexical_bias": int(got_lex > 0)},
                    spans=[
                        {"start": s["start"], "end": s["end"], "label": s["label"]}
                        for s in sorted(mine, key=lambda s: s["start"])
                    ],
                    dataset="basil",
                    group=f"triplet:{triplet}",
                    outlet=(row.get("source") or "").strip().lower() or None,
                    doc_id=file_id,
                )
            )
        for key in sorted(set(spans) - used):
            for s in spans[key]:
                why = f"span's sentence {key[0]} {key[1]} is not in {SENTENCES}"
                report.skip(root / SPANS, s["_line"], why)
        return {"all": records}

    def split(self, records: list[dict], report: Report) -> dict[str, list[dict]]:
        return group_split(records, seed=SEED)
