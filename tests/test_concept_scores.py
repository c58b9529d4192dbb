"""Quote-aware, short-text-stable concept scores, their continuous expected_score and their
prose explanations (biascard/compose: calibration.py, concepts.py, explain.py, plan.py)."""
from __future__ import annotations

import json
import math
import re
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from biascard.compose.calibration import (article_statistic, expected_from_statistic, fit_values, load_calibration,
                                          score_from_statistic, sentence_weights, shrink)
from biascard.compose.concepts import concept_entries, concept_entry
from biascard.compose.explain import snippet
from biascard.compose.quotes import quoted_flags
from biascard.compose.sentences import ArticleSentences, split_sentences

from test_serve_support import ARTICLE, tiny_model  # noqa: F401 - fixture

DEFAULT_SHARE = [0.05, 0.15, 0.3, 0.5]

# ---------------------------------------------------------------- article statistic


def test_weights_leave_quotes_out_of_each_statistic():
    probs = np.array([0.9, 0.8, 0.2, 0.1])
    w = sentence_weights([True, True, False, False], 0.0)
    assert list(w) == [0.0, 0.0, 1.0, 1.0]
    assert article_statistic(probs, "share_above", 0.5, 3, weights=w) == 0.0
    assert article_statistic(probs, "mean", 0.5, 3, weights=w) == pytest.approx(0.15)
    assert article_statistic(probs, "top_k_mean", 0.5, 3, weights=w) == pytest.approx(0.15)  # k capped at 2
    # weight 1 (or none given) is the old, unweighted statistic
    ones = sentence_weights([True, True, False, False], 1.0)
    for stat in ("share_above", "mean", "top_k_mean"):
        assert article_statistic(probs, stat, 0.5, 3, weights=ones) == pytest.approx(article_statistic(probs, stat, 0.5, 3))
    assert article_statistic(probs, "top_k_mean", 0.5, 3) == pytest.approx((0.9 + 0.8 + 0.2) / 3)


def test_fractional_weights():
    probs = np.array([0.9, 0.8, 0.2, 0.1])
    w = sentence_weights([True, False, False, False], 0.5)
    assert article_statistic(probs, "share_above", 0.5, 3, weights=w) == pytest.approx(1.5 / 3.5)
    assert article_statistic(probs, "mean", 0.5, 3, weights=w) == pytest.approx((0.45 + 0.8 + 0.2 + 0.1) / 3.5)
    # top 3 units of weight: half a slot of 0.9, then 0.8 and 0.2, then half a slot of 0.1
    assert article_statistic(probs, "top_k_mean", 0.5, 3, weights=w) == pytest.approx((0.45 + 0.8 + 0.2 + 0.05) / 3)


def test_no_sentence_or_no_weight_is_no_statistic():
    assert article_statistic(np.zeros(0), "mean", 0.5, 3) is None
    assert article_statistic(np.array([0.9]), "mean", 0.5, 3, weights=[0.0]) is None
    with pytest.raises(ValueError, match="statistic"):
        article_statistic(np.array([0.9]), "median", 0.5, 3)


def test_shrinkage_toward_the_prior():
    assert shrink(1.0, 1, 0.1, 2.0) == pytest.approx(0.4)  # (1 + 0.2) / 3
    assert shrink(1.0, 100, 0.1, 2.0) == pytest.approx(100.2 / 102)  # a long article barely moves
    assert shrink(0.7, 3, 0.1, 0.0) == 0.7  # prior_weight 0: off


# ---------------------------------------------------------------- expected_score


@pytest.mark.parametrize("cuts", [DEFAULT_SHARE, [0.5, 0.65, 0.8, 0.9], [0.0, 0.0, 0.0, 0.0],
                                  [0.0, 0.0, 0.05, 0.2], [0.1, 0.1, 0.3, 0.3], [0.2, 0.4, 0.4, 1.0]])
def test_expected_score_is_the_bin_plus_its_position(cuts):
    """floor(expected_score) == score, expected_score in [1, 5], non-decreasing in the statistic,
    and no division by zero at tied cut points."""
    grid = sorted(set(np.linspace(0, 1, 201).tolist() + list(cuts)))
    prev = 1.0
    for stat in grid:
        score, expected = score_from_statistic(stat, cuts), expected_from_statistic(stat, cuts)
        assert 1.0 <= expected <= 5.0 and math.isfinite(expected)
        assert math.floor(expected) == score, (stat, score, expected)
        assert expected >= prev - 1e-9
        prev = expected


def test_expected_score_interpolates_between_cut_points():
    assert expected_from_statistic(0.0, DEFAULT_SHARE) == 1.0
    assert expected_from_statistic(0.025, DEFAULT_SHARE) == 1.5
    assert expected_from_statistic(0.1, DEFAULT_SHARE) == 2.5
    assert expected_from_statistic(0.15, DEFAULT_SHARE) == 2.999  # on a cut point: still a 2
    assert expected_from_statistic(0.4, DEFAULT_SHARE) == 4.5
    assert expected_from_statistic(0.9, DEFAULT_SHARE) == 5.0


# ---------------------------------------------------------------- scores from a stand-in composer


def stand_in(probs, quoted, *, statistic="share_above", cuts=DEFAULT_SHARE, cut_source="default",
             settings=None, calibrated=None):
    """A composer with one derived concept (bias_by_omission) whose sentence probabilities are
    `probs`, and an article of len(probs) sentences."""
    from biascard.compose.settings import composer_settings, merge

    plan = {"mode": "derived", "document_head": None, "heads": [{"head": "informational_bias", "type": "binary"}],
            "statistic": statistic, "threshold": 0.5, "top_k": 3, "cut_points": cuts, "cut_source": cut_source,
            "calibrated_scoring": calibrated or {}, "wanted": ["card_bias_by_omission", "informational_bias"]}
    comp = SimpleNamespace(settings=merge(composer_settings(), settings or {}), plan={"bias_by_omission": plan},
                           specs={}, token_head=None, concept_probs=lambda plan, out, idx: np.asarray(probs, float))
    text = " ".join(f"Sentence number {i} is here." for i in range(len(probs)))
    items = split_sentences(text)
    sents = ArticleSentences(text, items, list(range(len(items))), {}, {}, quoted=list(quoted))
    warnings: list[str] = []
    return concept_entry(comp, "bias_by_omission", sents, None, 0, warnings), warnings


def test_one_borderline_sentence_does_not_make_a_short_text_severe():
    entry, warnings = stand_in([0.51, 0.1, 0.1], [False] * 3)
    assert entry["score"] == 3 and not warnings  # unshrunk, 1 of 3 = 0.33 would be a 4
    raw, _ = stand_in([0.51, 0.1, 0.1], [False] * 3, settings={"short_text": {"prior_weight": 0.0}})
    assert raw["score"] == 4
    long_entry, _ = stand_in([0.51] * 10 + [0.1] * 20, [False] * 30)
    assert long_entry["score"] == 4  # a third of a long article flagged still reads as a 4


def test_too_few_sentences_is_no_score_and_a_warning():
    entry, warnings = stand_in([0.99, 0.99], [False, False])
    assert entry["score"] is None and entry["expected_score"] is None
    assert warnings and "Too short" in warnings[0] and "2 sentences" in warnings[0]
    assert "Not scored" in entry["explanation"] and "only 2 sentences" in entry["explanation"]
    entry, _ = stand_in([0.99, 0.99], [False, False], settings={"short_text": {"min_sentences": 2}})
    assert entry["score"] is not None


def test_mostly_quotes_is_too_little_own_voice():
    entry, warnings = stand_in([0.9, 0.9, 0.9, 0.9, 0.1], [True, True, True, False, False])
    assert entry["score"] is None and "own voice" in warnings[0]
    assert "only 2 of the 5 sentences are in the outlet's own voice" in entry["explanation"]
    counted, _ = stand_in([0.9, 0.9, 0.9, 0.9, 0.1], [True, True, True, False, False],
                          settings={"quotes": {"weight": 1.0}})
    assert counted["score"] == 5


def test_quotes_are_set_aside_by_default():
    probs, quoted = [0.95, 0.9, 0.1, 0.1, 0.1, 0.1], [True, True, False, False, False, False]
    own, _ = stand_in(probs, quoted)
    full, _ = stand_in(probs, quoted, settings={"quotes": {"weight": 1.0}})
    half, _ = stand_in(probs, quoted, settings={"quotes": {"weight": 0.5}})
    assert own["score"] < half["score"] <= full["score"] and own["expected_score"] < half["expected_score"]
    assert "were set aside" in own["explanation"] and "2 of the 2 flagged" not in own["explanation"]
    assert "both flagged sentences are quotes" in own["explanation"]
    assert "weight 0.5" in half["explanation"] and "count like the outlet's own" in full["explanation"]
    assert [ev["quoted"] for ev in own["evidence"]] == [True, True]


def test_calibration_fixes_the_prior_and_weights():
    probs, quoted = [0.95, 0.1, 0.1, 0.1], [False] * 4
    low, _ = stand_in(probs, quoted, cut_source="calibrated", calibrated={"prior": 0.0})
    high, _ = stand_in(probs, quoted, cut_source="calibrated", calibrated={"prior": 0.3})
    assert low["expected_score"] < high["expected_score"]
    assert "calibrated on validation articles" in low["explanation"]
    fitted_full, _ = stand_in([0.9, 0.9, 0.1, 0.1, 0.1], [True, True, False, False, False],
                              cut_source="calibrated", calibrated={"quote_weight": 1.0})
    assert fitted_full["score"] >= 4  # fit with quotes counting fully: they count here too


# ---------------------------------------------------------------- calibration fit and files


def test_fit_values_drop_short_articles_and_shrink_the_rest():
    scoring = {"quote_weight": 0.0, "prior_weight": 2.0, "min_sentences": 3}
    vals, info = fit_values([(0.0, 10), (0.5, 10), (1.0, 2), (0.2, 20)], scoring)
    assert info["n_articles"] == 3 and info["n_too_short"] == 1
    assert info["prior"] == pytest.approx(0.2) and info["quote_weight"] == 0.0 and info["prior_weight"] == 2.0
    assert list(vals) == pytest.approx([shrink(0.0, 10, 0.2, 2), shrink(0.5, 10, 0.2, 2), 0.2])
    # plain numbers (a composer that gives no sentence counts): no shrinkage, no weights recorded
    vals, info = fit_values([0.1, 0.3], scoring)
    assert list(vals) == [0.1, 0.3] and "prior" not in info and info["summary"]["median"] == pytest.approx(0.2)


def test_calibration_files_check_the_new_keys(tmp_path):
    good = {"statistic": "share_above", "cut_points": [0.1, 0.2, 0.3, 0.4], "prior": 0.15, "quote_weight": 0.0,
            "prior_weight": 2.0}
    path = tmp_path / "composer.json"
    path.write_text(json.dumps({"concepts": {"bias_by_omission": good}}))
    assert load_calibration(path)["concepts"]["bias_by_omission"]["prior"] == 0.15
    path.write_text(json.dumps({"concepts": {"bias_by_omission": {**good, "quote_weight": 2}}}))
    with pytest.raises(ValueError, match="quote_weight"):
        load_calibration(path)


def test_plan_takes_the_prior_from_the_calibration():
    from biascard.compose.plan import plan_concept
    from biascard.model.heads import HeadSpec

    specs = {"informational_bias": HeadSpec("informational_bias", "binary", "sentence", ["0", "1"])}
    cfg = {"heads": [{"head": "informational_bias"}], "statistic": "share_above"}
    cal = {"concepts": {"bias_by_omission": {"statistic": "share_above", "cut_points": [0.1, 0.2, 0.3, 0.4],
                                             "summary": {"median": 0.12}}}}
    plan = plan_concept("bias_by_omission", cfg, specs, cal, {"share_above": DEFAULT_SHARE})
    assert plan["calibrated_scoring"] == {"prior": 0.12}
    plan = plan_concept("bias_by_omission", cfg, specs, None, {"share_above": DEFAULT_SHARE})
    assert plan["calibrated_scoring"] == {} and plan["cut_source"] == "default"


# ---------------------------------------------------------------- composed cards


def load_composer(model_dir, settings=None):
    from biascard.compose.composer import Composer

    return Composer.from_model_dir(model_dir, settings, name="tiny")


@pytest.fixture(scope="module")
def wired(tiny_model):
    return load_composer(tiny_model)


def _concept(card, name):
    return next(c for c in card["cognitive_concepts"] if c["concept"] == name)


def test_short_text_scores_nothing_and_warns(wired):
    from biascard.card import validate
    from biascard.compose.article import Article

    (card,) = wired.compose([Article(text="Short text. Another one.")])
    validate(card)
    assert all(c["score"] is None and c["expected_score"] is None for c in card["cognitive_concepts"])
    assert any("Too short" in w for w in card["warnings"])


@pytest.fixture(scope="module")
def golden_card(tmp_path_factory):
    """The seeded model of tests/golden on serve/samples/article.txt (quotes, long sentences)."""
    from test_golden_card import build_golden_model, sample_article

    model_dir = build_golden_model(tmp_path_factory.mktemp("concept-scores"))
    return load_composer(model_dir).compose([sample_article()])[0]


def test_explanations_are_prose_about_the_evidence(golden_card):
    from biascard.card import validate

    card = golden_card
    validate(card)
    heads = [h for h in card["model"]["heads"] if "_" in h] + ["share_above", "top_k_mean"]
    for c in card["cognitive_concepts"]:
        text = c["explanation"]
        assert 1 <= len(re.findall(r"[.!?](?:\s|$)", text)) <= 5, text
        assert not [h for h in heads if re.search(rf"\b{h}\b", text)], text
        assert " = " not in text
        for ev in c["evidence"]:
            assert isinstance(ev["quoted"], bool)
    dich = _concept(card, "false_dichotomy")
    strongest = next(e for e in dich["evidence"] if not e["quoted"])
    assert f"“{snippet(strongest['text'])}”" in dich["explanation"]
    assert all(f"“{w}”" in dich["explanation"] for w in strongest["words"][:5])
    assert "False Dichotomy is rated" in dich["explanation"] and "set aside" in dich["explanation"]
    assert "default cut points, not calibrated" in dich["explanation"] and "biascard calibrate" in dich["explanation"]
    assert math.floor(dich["expected_score"]) == dich["score"]
    lang = _concept(card, "language_bias")
    assert "whole article" in lang["explanation"] and "no cut points apply" in lang["explanation"]
    assert "quotations" in lang["explanation"]
    assert "Not estimated" in _concept(card, "framing_bias")["explanation"]


def test_attributed_sentences_are_flagged_in_evidence(wired):
    from biascard.compose.article import Article

    (card,) = wired.compose([Article(text=ARTICLE)])
    quoted = {ev["text"]: ev["quoted"] for c in card["cognitive_concepts"] for ev in c["evidence"]}
    for text, q in quoted.items():
        assert q == ("said" in text), text  # the two attributed sentences of ARTICLE say "said"


def test_calibrated_explanation(tiny_model, tmp_path):
    from biascard.compose.article import Article

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model, model_dir)
    entry = {"statistic": "top_k_mean", "threshold": 0.5, "top_k": 3, "cut_points": [0.3, 0.4, 0.6, 0.9],
             "summary": {"min": 0.1, "median": 0.35, "max": 0.95}}
    (model_dir / "composer.json").write_text(json.dumps({"concepts": {"false_dichotomy": entry}}))
    (card,) = load_composer(model_dir).compose([Article(text=ARTICLE)])
    dich = _concept(card, "false_dichotomy")
    assert "calibrated on validation articles" in dich["explanation"] and "not calibrated" not in dich["explanation"]


def test_snippet_shortens_long_sentences():
    long = "word " * 60
    out = snippet(long)
    assert out.endswith("…") and len(out) <= 111 and "  " not in out
    assert snippet("Short and sweet.") == "Short and sweet."


def test_fit_with_quote_weights_and_counts(tiny_model, tmp_path):
    from biascard.compose.article import Article
    from biascard.compose.calibration import fit
    from biascard.compose.composer import Composer

    comp = Composer.from_model_dir(tiny_model)
    sentences = [s.text for s in split_sentences(ARTICLE)]
    articles = [sentences[: 2 + i % 6] for i in range(12)]
    concepts = fit(comp, articles, [0.4, 0.7, 0.9, 0.97])
    for entry in concepts.values():
        # ARTICLE's 4th and 5th sentences are attributed: only the 2-sentence articles are too short
        assert entry["n_articles"] == 10 and entry["n_too_short"] == 2
        assert entry["quote_weight"] == 0.0 and entry["prior_weight"] == 2.0 and 0 <= entry["prior"] <= 1
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model, model_dir)
    (model_dir / "composer.json").write_text(json.dumps({"concepts": concepts}))
    (card,) = load_composer(model_dir).compose([Article(text=ARTICLE)])
    dich = _concept(card, "false_dichotomy")
    assert "calibrated on validation" in dich["explanation"] and dich["expected_score"] is not None
