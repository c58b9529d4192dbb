"""The card's SDGs and topics (biascard.compose.goals): listed only at their thresholds, each SDG
with sentence evidence and an explanation that says what the threshold means and what is not
estimated. Unit tests drive goals with a stand-in composer (settings + head specs); one test
composes a card with a tiny model whose thresholds were written like training writes them."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from biascard.compose import goals
from biascard.compose.sentences import ArticleSentences, split_sentences
from biascard.model.heads import HeadSpec
from biascard.train.thresholds import NEVER

TEXT = ("The court jailed two men for selling facial recognition data. "
        "Judges said privacy must be protected by strong institutions.\n\n"
        "The weather in the capital was mild on Tuesday.")
GOALS = [str(g) for g in range(1, 18)]
SETTINGS = {"sdg_threshold": 0.3, "sdg_max": 3, "topic_k": 2, "topic_threshold": 0.0, "evidence_k": 2,
            "use_model_thresholds": True}
FIT = {"mode": "target_precision", "target_precision": 0.8, "min_support": 10, "split": "validation"}


def col(goal: int) -> int:
    return goal - 1


def fitted_spec(**over) -> HeadSpec:
    """The sdg head as target-precision fitting leaves it: 16 and 9 listable, the rest never."""
    th, prec, sup = [NEVER] * 17, [None] * 17, [0] * 17
    th[col(16)], prec[col(16)], sup[col(16)] = 0.55, 0.84, 25
    th[col(9)], prec[col(9)], sup[col(9)] = 0.4, 0.8, 12
    fit = {**FIT, "precision": prec, "support": sup}
    return HeadSpec("sdg", "multilabel", "document", GOALS, **{"thresholds": th, "threshold_fit": fit, **over})


def composer(*specs: HeadSpec, **settings) -> SimpleNamespace:
    return SimpleNamespace(settings={**SETTINGS, **settings}, specs={s.name: s for s in specs})


def doc_probs(**goal_p) -> dict:
    p = np.full((1, 17), 0.1)
    for g, v in goal_p.items():
        p[0, col(int(g[1:]))] = v
    return {"sdg": p}


def article(sentence_p: dict[int, list[float]] | None = None) -> ArticleSentences:
    items = split_sentences(TEXT)
    sp = np.full((len(items), 17), 0.05)
    for g, v in (sentence_p or {}).items():
        sp[:, col(g)] = v
    return ArticleSentences(TEXT, items, list(range(len(items))), {"probs": {"sdg": sp}}, {})


def test_goals_are_listed_only_at_their_fitted_thresholds():
    comp = composer(fitted_spec())
    # 16 above its 0.55; 9 above its 0.40; 3 below the default 0.3 would not matter: it is never listed
    got = goals.sdgs(comp, doc_probs(g16=0.82, g9=0.41, g3=0.99, g5=0.5), 0, article({16: [0.3, 0.7, 0.1]}))
    assert [g["goal"] for g in got] == [16, 9]
    assert got[0]["name"] == "Peace, Justice and Strong Institutions" and got[0]["probability"] == 0.82
    assert goals.sdgs(comp, doc_probs(g16=0.54, g9=0.39, g3=0.99), 0, article()) == []


def test_explanation_states_the_threshold_the_evidence_and_what_is_not_estimated():
    (g16, _) = goals.sdgs(composer(fitted_spec()), doc_probs(g16=0.82, g9=0.41), 0,
                          article({16: [0.3, 0.7, 0.1], 9: [0.2, 0.1, 0.05]}))
    text = g16["explanation"]
    assert "probability of 0.82, above the threshold of 0.55 fit for 80% precision on validation data" in text
    assert "84% of the 25 texts" in text
    assert "“Judges said privacy must be protected by strong institutions.” (0.70 on its own)" in text
    assert goals.POLARITY_NOT_ESTIMATED in text and goals.RELEVANCE_NOT_ESTIMATED in text
    assert g16["polarity"] is None and g16["relevance"] is None
    assert 2 <= text.count(". ") + 1 <= 5  # a short paragraph, not a log line


def test_evidence_offsets_index_the_text_strongest_first():
    items = goals.sdgs(composer(fitted_spec()), doc_probs(g16=0.9), 0, article({16: [0.6, 0.7, 0.1]}))[0]["evidence"]
    assert [e["score"] for e in items] == [0.7, 0.6]  # the third is below 0.55 on its own
    for e in items:
        assert TEXT[e["start"]:e["end"]] == e["text"] and set(e) == {"text", "start", "end", "score"}


def test_without_a_sentence_above_the_threshold_the_strongest_is_quoted_as_the_closest():
    (_, g9) = goals.sdgs(composer(fitted_spec()), doc_probs(g16=0.82, g9=0.41), 0, article({9: [0.2, 0.1, 0.05]}))
    assert len(g9["evidence"]) == 1 and g9["evidence"][0]["start"] == 0
    assert "No single sentence reaches the threshold on its own; the closest is “The court jailed" in g9["explanation"]
    # without a sentence pass there is no evidence, and the explanation says so
    (alone,) = goals.sdgs(composer(fitted_spec()), doc_probs(g16=0.82), 0, None)
    assert alone["evidence"] == [] and "No sentence-level evidence is available." in alone["explanation"]


def test_uncalibrated_defaults_are_used_and_called_uncalibrated():
    plain = HeadSpec("sdg", "multilabel", "document", GOALS)
    got = goals.sdgs(composer(plain), doc_probs(g16=0.82, g9=0.41, g3=0.29), 0, article({16: [0.3, 0.7, 0.1]}))
    assert [g["goal"] for g in got] == [16, 9]  # composer.sdg_threshold 0.3
    assert "the configured threshold of 0.30, which is not calibrated" in got[0]["explanation"]
    assert "no thresholds fit on validation data" in got[0]["explanation"]
    off = goals.sdgs(composer(fitted_spec(), use_model_thresholds=False), doc_probs(g16=0.82, g3=0.99), 0, article())
    assert [g["goal"] for g in off] == [3, 16] and "use_model_thresholds is off" in off[0]["explanation"]
    assert len(goals.sdgs(composer(plain, sdg_max=1), doc_probs(g16=0.82, g9=0.41), 0, article())) == 1


def test_f1_fit_and_unrecorded_fit_are_described_as_such():
    th = [0.35] * 17
    f1 = fitted_spec(thresholds=th, threshold_fit={"mode": "f1", "how": ["shared"] * 15 + ["label", "shared"]})
    (g16,) = goals.sdgs(composer(f1), doc_probs(g16=0.82), 0, article())
    assert "best F1 on validation data; it was not fit for a precision" in g16["explanation"]
    assert "shared" not in g16["explanation"]
    (g17,) = goals.sdgs(composer(f1), doc_probs(g17=0.82), 0, article())
    assert "the head's shared threshold of 0.35" in g17["explanation"]
    old = fitted_spec(thresholds=th, threshold_fit=None)  # fit before threshold_fit was recorded
    (g,) = goals.sdgs(composer(old), doc_probs(g16=0.82), 0, article())
    assert "fit on validation data (how it was fit is not recorded)" in g["explanation"]


def test_polarity_and_relevance_come_only_from_their_heads():
    pol = HeadSpec("sdg_polarity", "multiclass", "document", ["negative", "positive"])
    probs = {**doc_probs(g16=0.82), "sdg_polarity": np.array([[0.2, 0.8]])}
    (g,) = goals.sdgs(composer(fitted_spec(), pol), probs, 0, article())
    assert g["polarity"] == "positive" and goals.POLARITY_NOT_ESTIMATED not in g["explanation"]
    assert "Polarity (positive) comes from the model's sdg_polarity head" in g["explanation"]
    assert g["relevance"] is None and goals.RELEVANCE_NOT_ESTIMATED in g["explanation"]


def test_topics_respect_per_label_thresholds_before_topic_k():
    spec = HeadSpec("topic", "multilabel", "document", ["a", "b", "c", "d"], thresholds=[0.9, NEVER, 0.2, 0.3])
    comp = composer(spec)
    got = goals.topics(comp, {"topic": np.array([[0.8, 0.99, 0.5, 0.4]])}, 0)
    # a (0.8 < 0.9) and b (never) are out; c and d fill topic_k=2
    assert [t["label"] for t in got] == ["c", "d"]
    assert goals.topics(comp, {"topic": np.array([[0.8, 0.99, 0.1, 0.2]])}, 0) == []


def test_none_detected_note():
    assert goals.none_detected_note("sdg") == "No Sustainable Development Goal was detected with confidence."
    assert goals.none_detected_note("sdg", heads=["sdg", "topic"]) == goals.NONE_DETECTED["sdg"]
    assert goals.none_detected_note("sdg", heads=["topic"]) == goals.NOT_ESTIMATED["sdg"]
    assert goals.none_detected_note("topic", heads=["topic"]) == "No topic was detected with confidence."
    with pytest.raises(ValueError):
        goals.none_detected_note("leaning")


def test_a_tiny_model_card_lists_only_its_fitted_goal(tmp_path):
    """The sdg head is constant (P = sigmoid(2) = 0.88 for every goal, document and sentence);
    the thresholds written as training writes them leave goal 16 alone listable."""
    import torch

    from biascard.card.contract import validate
    from biascard.compose.article import Article
    from biascard.compose.composer import Composer
    from biascard.model import model_dir
    from biascard.model.modeling import BiasCardModel, load_tokenizer
    from biascard.model.tiny import make_tiny_encoder

    enc = make_tiny_encoder(tmp_path / "enc")
    heads = {"sdg": HeadSpec("sdg", "multilabel", "document", GOALS),
             "language_bias": HeadSpec("language_bias", "binary", "sentence")}
    model = BiasCardModel.from_encoder(enc, heads, max_length=64, stride=16)
    with torch.no_grad():
        model.heads["sdg"].proj.weight.zero_()
        model.heads["sdg"].proj.bias.fill_(2.0)
    model_dir.save(model, load_tokenizer(enc), tmp_path / "m")
    spec = fitted_spec()
    model_dir.write_thresholds(tmp_path / "m", {"sdg": {"thresholds": [0.9 if t == 0.4 else t for t in spec.thresholds],
                                                        "threshold_fit": spec.threshold_fit}}, {"mode": "by hand"})
    assert model_dir.load(tmp_path / "m")[0].head_specs["sdg"].threshold_fit == spec.threshold_fit
    (card,) = Composer.from_model_dir(tmp_path / "m").compose([Article(text=TEXT, title="Court ruling")])
    validate(card)
    (g,) = card["sdgs"]
    assert g["goal"] == 16 and g["probability"] == pytest.approx(0.8808, abs=1e-4)
    assert "fit for 80% precision on validation data" in g["explanation"]
    assert [TEXT[e["start"]:e["end"]] for e in g["evidence"]] == [e["text"] for e in g["evidence"]]
    assert len(g["evidence"]) == 3 and f"“{g['evidence'][0]['text']}”" in g["explanation"]
    (off,) = Composer.from_model_dir(tmp_path / "m", settings={"use_model_thresholds": False}).compose(
        [Article(text=TEXT)])
    assert len(off["sdgs"]) == 3 and all("not calibrated" in s["explanation"] for s in off["sdgs"])


def test_a_near_certain_probability_is_not_written_as_certain():
    (g,) = goals.sdgs(composer(fitted_spec()), doc_probs(g16=0.9953), 0, article({16: [0.999, 0.7, 0.1]}))
    assert "a probability of over 0.99, above the threshold" in g["explanation"]
    assert "(over 0.99 on its own)" in g["explanation"] and "1.00" not in g["explanation"]
