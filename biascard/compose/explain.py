"""The `explanation` text of each card concept: what drove its score, or why there is none."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

_STATISTIC = {
    "share_above": "share of sentences with probability >= {threshold:.2f}",
    "top_k_mean": "mean of the top {top_k} sentence probabilities",
    "mean": "mean sentence probability",
}
_CUT_SOURCE = {
    "calibrated": "cut points calibrated on validation quantiles (composer.json)",
    "degenerate": "cut points calibrated on validation quantiles (composer.json), tied because "
                  "the statistic barely varied there, so some scores cannot occur",
    "configured": "configured cut points",
    "default": "default cut points, not calibrated",
}


def _heads(plan: Mapping) -> str:
    return ", ".join(h["head"] for h in plan["heads"])


def document(plan: Mapping, has_evidence: bool) -> str:
    return (f"Document head {plan['document_head']} (ordinal, CORN) over the whole article"
            + (f"; evidence from sentence heads {_heads(plan)}." if has_evidence else "."))


def derived(plan: Mapping, probs: np.ndarray, stat: float | None) -> str:
    if stat is None:
        return f"No sentence found in the text; sentence heads {_heads(plan)} had nothing to score."
    flagged = int((probs >= plan["threshold"]).sum())
    what = _STATISTIC[plan["statistic"]].format(threshold=plan["threshold"], top_k=plan["top_k"])
    return (f"Derived from sentence heads {_heads(plan)}: {flagged} of {probs.size} sentences at "
            f"probability >= {plan['threshold']:.2f}; {what} = {stat:.3f}; "
            f"{_CUT_SOURCE[plan['cut_source']]} {[round(c, 4) for c in plan['cut_points']]}.")


def not_estimated(plan: Mapping, specs: Mapping) -> str:
    wanted = [w for w in dict.fromkeys(plan["wanted"]) if w]
    missing = [w for w in wanted if w not in specs]
    present = [w for w in wanted if w in specs]
    text = "Not estimated: the model has no " + " or ".join(missing) + " head"
    if present:  # e.g. gvfc_frame names a frame but no label says "framed" vs "not"
        text += (f"; {', '.join(present)} cannot score it as configured "
                 "(composer.concepts: type, level or positive_labels)")
    return text + "."
