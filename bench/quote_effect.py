"""Quote-aware scores against BASIL, whose annotated bias spans say whether they sit in a quote.

1. The quote detector (`biascard.compose.quotes.quoted_flags`) against BASIL's span labels:
   every annotated span's sentence, read in its article, flagged quoted or not, against the
   span's `quote` (yes/no). No model needed.
2. With `--model DIR`: the card's Language Bias `expected_score` per BASIL article with quotes
   set aside (composer.quotes.weight 0, the default) and counted fully (1.0), against the
   article's lexical-bias spans in the outlet's own voice (quote = no) and in quotes (yes):
   Spearman's rho over articles. Setting quotes aside should follow the own-voice spans more
   and the quoted ones less. The model's composer.json is not used (it fixes the quote weight
   it was fit with); expected_score under the default cut points ranks articles by the same
   shrunk statistic.

  python bench/quote_effect.py [--model DIR] [--articles 300]
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

BASIL = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "basil"


def basil_articles(root: Path, limit: int | None) -> list[dict]:
    """{id, title, text, sentences: {sent_id: (start, end)}} with paragraphs as blank-line blocks."""
    from biascard.compose.sentences import Sentence

    out = []
    with gzip.open(root / "basil_articles_with_annotations.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            parts, spans, pos, k = [], {}, 0, 0
            for p, para in enumerate(r["article"]["body-paragraphs"]):
                if p:
                    parts.append("\n\n")
                    pos += 2
                for j, sent in enumerate(para):
                    if j:
                        parts.append(" ")
                        pos += 1
                    spans[f"p{k}"] = Sentence(pos, pos + len(sent), sent)
                    parts.append(sent)
                    pos, k = pos + len(sent), k + 1
            out.append({"id": r["file_id"], "title": r["article"]["title"], "text": "".join(parts), "sentences": spans})
            if limit and len(out) >= limit:
                break
    return out


def read_spans(root: Path) -> list[dict]:
    """Every row of basil_spans.csv (with its `quote` column, which the adapter's reader
    drops), read by the project's checked CSV reader: a bad row is an error, not a skip."""
    from biascard.data.adapters.readers import iter_csv

    return [row for _, row in iter_csv(root / "basil_spans.csv")]


def detector_agreement(articles: list[dict], spans: list[dict]) -> dict:
    from biascard.compose.quotes import quoted_flags

    flags = {}
    for a in articles:
        ids = list(a["sentences"])
        for sid, f in zip(ids, quoted_flags(a["text"], [a["sentences"][s] for s in ids])):
            flags[(a["id"], sid)] = f
    confusion = Counter()
    for s in spans:
        key = (s["file_id"], s["sent_id"])
        if key in flags and s["quote"] in ("yes", "no"):
            confusion[(s["bias"], s["quote"] == "yes", flags[key])] += 1
    return confusion


def agreement_table(confusion: Counter) -> str:
    """confusion: (bias, gold quote, flagged) -> spans; one row per bias kind and one for all."""
    rows = []
    for bias in ("lex", "inf", "all"):
        c = Counter()
        for (kind, gold, flagged), n in confusion.items():
            if bias in ("all", kind):
                c[(gold, flagged)] += n
        tp, fp, fn, tn = c[(True, True)], c[(False, True)], c[(True, False)], c[(False, False)]
        prec = tp / (tp + fp) if tp + fp else float("nan")
        rec = tp / (tp + fn) if tp + fn else float("nan")
        rows.append([bias, tp + fp + fn + tn, tp, fp, fn, tn, f"{prec:.3f}", f"{rec:.3f}",
                     f"{(tp + tn) / max(1, tp + fp + fn + tn):.3f}"])
    return common.table(rows, ["spans", "n", "quote, flagged", "no quote, flagged", "quote, missed",
                               "neither", "precision", "recall", "accuracy"])


def score_effect(model: str, articles: list[dict], spans: list[dict]) -> str:
    from scipy.stats import spearmanr

    from biascard.compose.article import Article
    from biascard.compose.composer import Composer

    own, quoted = Counter(), Counter()
    for s in spans:
        if s["bias"] == "lex":
            (quoted if s["quote"] == "yes" else own)[s["file_id"]] += 1
    arts = [Article(text=a["text"], title=a["title"], id=a["id"]) for a in articles]
    rows = []
    for weight in (0.0, 1.0):
        comp = Composer.from_model_dir(model, {"quotes": {"weight": weight}, "entities": {"enabled": False},
                                               "summary": {"enabled": False}, "key_questions": {"enabled": False}})
        # a composer.json fixes the quote weight it was fit with; the default cut points keep
        # the ranking (expected_score rises with the statistic) and let the weight act
        comp.set_calibration(None)
        scores = []
        for lo in range(0, len(arts), 8):
            for card in comp.compose(arts[lo:lo + 8]):
                c = next(c for c in card["cognitive_concepts"] if c["concept"] == "language_bias")
                scores.append(c["expected_score"])
        ok = [i for i, s in enumerate(scores) if s is not None]
        x = [scores[i] for i in ok]
        rho_own = spearmanr(x, [own[articles[i]["id"]] for i in ok]).statistic
        rho_q = spearmanr(x, [quoted[articles[i]["id"]] for i in ok]).statistic
        rows.append([weight, len(ok), f"{rho_own:+.3f}", f"{rho_q:+.3f}"])
    return common.table(rows, ["quotes.weight", "articles scored", "rho vs own-voice lex spans",
                               "rho vs quoted lex spans"])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a trained model dir: also measure the scores")
    ap.add_argument("--articles", type=int, default=300)
    ap.add_argument("--basil", default=str(BASIL))
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    with common.report("quote_effect", argv, save=not args.no_save):
        root = Path(args.basil)
        articles, spans = basil_articles(root, args.articles), read_spans(root)
        print(f"BASIL: {len(articles)} articles, {len(spans)} annotated spans")
        print("\nQuote detector vs BASIL's span labels (a span's sentence flagged quoted?):")
        print(agreement_table(detector_agreement(articles, spans)))
        if args.model:
            print(f"\nLanguage Bias expected_score vs lexical spans per article, model {args.model}:")
            print(score_effect(args.model, articles, spans))


if __name__ == "__main__":
    main()
