"""The `explanation` text of each card concept, in prose a newsroom reader follows: what drove
the score (the strongest evidence sentence and the words the model marks in it), whether
quotations were set aside, how sure the model is, and whether the cut points between scores
are calibrated. Or why there is no score: not estimated, or too short.

Deterministic templates over the facts `concepts.py` gathers; 2-4 sentences each. Head names
and statistic names stay out of the prose (the card's numbers carry them); concepts are named
by their label."""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

PHRASES = {
    "framing_bias": "one-sided framing",
    "language_bias": "loaded or slanted wording",
    "bias_by_omission": "a one-sided selection of facts",
    "false_dichotomy": "a false either-or choice",
}
SNIPPET_CHARS = 110
MAX_WORDS = 5
_CUT_SOURCE = {
    "calibrated": "The cut points between scores are calibrated on validation articles, so the score "
                  "ranks this article against them.",
    "degenerate": "The cut points are calibrated on validation articles, but some are tied because the "
                  "measure barely varied there, so some scores cannot occur.",
    "configured": "The cut points between scores are set by hand in the configuration, not calibrated "
                  "on validation articles.",
    "default": "These are default cut points, not calibrated: run `biascard calibrate` to rank scores "
               "against validation articles.",
}


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """`text` on one line, cut at a word boundary with an ellipsis when longer than `limit`."""
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > 0 else limit].rstrip(" ,;:-–—") + "…"


def quoted_words(words: Sequence[str]) -> str:
    shown = [f"“{w}”" for w in list(words)[:MAX_WORDS]]
    if len(words) > MAX_WORDS:
        shown[-1] += " and others"
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def _sentence_clause(item: Mapping, lead: str) -> str:
    out = f"{lead} “{snippet(item['text'])}”" + (" (quoted)" if item.get("quoted") else "")
    if item.get("words"):
        out += f", where the model marks {quoted_words(item['words'])}"
    return out


def full_stop(text: str) -> str:
    """End with a period, unless a quoted sentence already ends it (“... caution.”)."""
    return text if re.search(r"[.!?…]”$", text) else text + "."


def _strongest(evidence: Sequence[Mapping], quote_weight: float) -> Mapping | None:
    """The strongest evidence sentence that counts toward the score (quotes do not at weight 0)."""
    counted = [e for e in evidence if quote_weight > 0 or not e.get("quoted")]
    return counted[0] if counted else None


def _of(k: int, n: int) -> str:
    if n == 1:
        return f"{k} of the one"
    if k == n:
        return "both" if n == 2 else f"all {n}"
    return f"{k} of the {n}"


def _n(x: float) -> str:
    return f"{x:g}" if x != int(x) else str(int(x))


def _drive(label: str, phrase: str, f: Mapping) -> str:
    partial = f["n_quoted"] > 0 and f["quote_weight"] <= 0  # quotes left out: count the own voice
    n_own = f["n_sentences"] - f["n_quoted"]
    n, flagged = (n_own, f["flagged"] - f["flagged_quoted"]) if partial else (f["n_sentences"], f["flagged"])
    which = "sentences in the outlet's own voice" if partial else "sentences"
    if flagged == 0:
        how_many = f"none of the {n} {which}"
    elif flagged == n:
        how_many = f"{_of(n, n)} {which}" if n > 1 else f"its one {'own-voice ' if partial else ''}sentence"
    else:
        how_many = f"{flagged} of the {n} {which}"
    text = f"{label} is rated {f['score']} of 5: the model flagged {how_many} for {phrase}"
    item = _strongest(f["evidence"], f["quote_weight"])
    if item is not None:
        text += "; " + _sentence_clause(item, "the strongest is" if flagged else "the closest is")
    return full_stop(text)


def _quotes(f: Mapping) -> str:
    nq, w, fq, fl = f["n_quoted"], f["quote_weight"], f["flagged_quoted"], f["flagged"]
    if nq == 0:
        return "The article has no quotations or attributed speech to set aside."
    among = (f"{_of(fq, fl)} flagged sentences {'is a quote' if fq == 1 else 'are quotes'}" if fl
             else "none of the sentences was flagged")
    if w <= 0:
        if fq == 0:
            return (f"Quotations and attributed speech ({nq} sentences) were set aside; "
                    "none of them was flagged.")
        return f"Quotations and attributed speech were set aside: {among} and do not count toward the score."
    if w < 1:
        return f"Quotations and attributed speech ({nq} sentences) count at weight {w:g} rather than fully; {among}."
    return f"Quotations and attributed speech count like the outlet's own sentences; {among}."


def _measure(f: Mapping, phrase: str) -> str:
    plan = f["plan"]
    if plan["statistic"] == "top_k_mean":
        return (f"Its {plan['top_k']} most strongly flagged counted sentences average a {f['raw']:.0%} "
                f"probability of {phrase}")
    if plan["statistic"] == "mean":
        return f"On average the model gives its counted sentences a {f['raw']:.0%} probability of {phrase}"
    return f"{f['raw']:.0%} of the counted sentences are flagged"


def one_decimal(x: float) -> str:
    """Rounded down, so that 2.97 (a score of 2) does not read as 3.0."""
    return f"{math.floor(x * 10 + 1e-9) / 10:.1f}"


def _position(f: Mapping, phrase: str) -> str:
    score, frac = f["score"], f["expected"] - f["score"]
    if score == 5:
        where = "beyond the highest cut point"
    elif frac > 0.75:
        where = f"close to the cut point for {score + 1}"
    elif score == 1:
        where = "below the cut point for 2"
    elif frac < 0.25:
        where = f"just past the cut point for {score}"
    else:
        where = f"in the middle of the band for {score}"
    text = f"{_measure(f, phrase)}, which puts the article {where} (expected score {one_decimal(f['expected'])})"
    a = f["prior_weight"]
    if a > 0 and a / (f["n_counted"] + a) >= 0.2:  # shrinkage moved it by a fifth or more
        text += (f"; with only {_n(f['n_counted'])} counted sentences, the score is pulled toward that of a "
                 "typical article")
    return text + "."


def derived(label: str, concept: str, facts: Mapping) -> str:
    """A score derived from sentences: what drove it, quotes, position, calibration."""
    phrase = PHRASES[concept]
    return " ".join([_drive(label, phrase, facts), _quotes(facts), _position(facts, phrase),
                     _CUT_SOURCE[facts["cut_source"]]])


def _sure(p: float) -> str:
    if p >= 0.75:
        return "confident"
    return "fairly confident" if p >= 0.5 else "unsure between neighbouring scores"


def document(label: str, concept: str, facts: Mapping) -> str:
    """A score from the model's reading of the whole article (its 1-5 head for the concept)."""
    phrase, p = PHRASES[concept], facts["probability"]
    if facts["score"] is None:
        return f"Not estimated: the model's whole-article output for {label} is not on the 1-5 scale."
    expected = f", expected score {one_decimal(facts['expected'])}" if facts.get("expected") is not None else ""
    parts = [(f"{label} is rated {facts['score']} of 5 from the model's reading of the whole article; the "
              f"model is {_sure(p)} (it gives this score a {p:.0%} probability{expected}).")]
    ev = facts["evidence"]
    if ev:
        parts.append(full_stop(_sentence_clause(ev[0], f"The sentence that reads most as {phrase} is")))
    else:
        parts.append(f"No single sentence stands out as {phrase}.")
    if facts["n_quoted"]:
        eq = sum(1 for e in ev if e.get("quoted"))
        cited = f"; {_of(eq, len(ev))} sentences cited {'is a quote' if eq == 1 else 'are quotes'}" if ev else ""
        parts.append(f"This reading includes quotations and attributed speech ({facts['n_quoted']} of "
                     f"{facts['n_sentences']} sentences), which it cannot set aside{cited}.")
    parts.append("The score comes straight from the model's own 1-5 scale, so no cut points apply.")
    return " ".join(parts)


def too_short(label: str, facts: Mapping, own_voice: bool) -> str:
    """No score: no sentence, too few sentences, or too few in the outlet's own voice."""
    n, need = facts["n_sentences"], _n(max(facts["min_sentences"], 1))
    if n == 0:
        return f"No sentence found in the text, so {label} is not scored."
    if not own_voice:
        return (f"Not scored: the text has only {n} sentence{'s' if n != 1 else ''}, too few to judge {label} "
                f"reliably (at least {need} are needed).")
    own, w = n - facts["n_quoted"], facts["quote_weight"]
    counts = "do not count" if w <= 0 else f"count at weight {w:g}"
    return (f"Not scored: only {own} of the {n} sentences {'is' if own == 1 else 'are'} in the outlet's own "
            f"voice. Quotations and attributed speech {counts} toward {label}, and at least {need} counted "
            "sentences are needed.")


def not_estimated(label: str, plan: Mapping, specs: Mapping) -> str:
    """The model has no head for the concept, or none the configuration can use."""
    wanted = [w for w in dict.fromkeys(plan["wanted"]) if w]
    text = f"Not estimated: this model was not trained to judge {label}, so the card leaves the score empty."
    if any(w in specs for w in wanted):  # e.g. gvfc_frame names a frame but no label says "framed"
        text += (" The model has a related output, but the configuration cannot use it for this "
                 "(composer.concepts: type, level or positive labels).")
    return text
