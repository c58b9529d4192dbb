"""The card's extractive summary and key questions (biascard/compose/summary.py, questions.py)
on a hand-written 10-sentence court story, with hand-made sentence embeddings."""
from __future__ import annotations

import numpy as np
import pytest

from biascard.compose import questions, summary
from biascard.compose.questions import key_questions, question_texts, ranking_texts
from biascard.compose.sentences import ArticleSentences, split_sentences
from biascard.compose.summary import extractive_summary

TITLE = "Court strikes down warrantless facial recognition law"
STORY = (
    "The state Supreme Court on Tuesday struck down a law that let police collect facial recognition "
    "data from public cameras without a warrant.\n\n"
    "The 5-2 ruling came after a coalition of civil liberties groups sued the state in 2022, arguing "
    "that the law violated residents' right to privacy.\n\n"
    "The challenge was brought because several people had been wrongly arrested due to faulty matches, "
    "amid growing concern over how the images were stored.\n\n"
    "\"Privacy is not a luxury,\" Justice Maria Alvarez wrote for the majority.\n\n"
    "Police departments must now stop using the system immediately and will have to delete the images "
    "collected under the law within 90 days.\n\n"
    "The decision means that prosecutors can no longer rely on such matches in pending cases.\n\n"
    "Attorney General Mark Daniels said his office was reviewing the ruling.\n\n"
    "Legal scholars said the decision could shape privacy law across the country for years to come.\n\n"
    "Lawmakers may eventually draft a narrower bill, and the future of similar programs in other states "
    "is likely to be debated in the long term.\n\n"
    "The court did not rule on a separate challenge to traffic cameras, which remains pending."
)
QUOTE = 3  # the Alvarez quotation
CAUSES, IMPLICATIONS, LONG_TERM = (1, 2), (4, 5), (7, 8)
H = 16


def article(embeddings=None, quoted=None) -> ArticleSentences:
    items = split_sentences(STORY)
    quoted = quoted if quoted is not None else [i == QUOTE for i in range(len(items))]
    return ArticleSentences(STORY, items, list(range(len(items))), None, {}, embeddings, quoted)


def topic_embeddings(central: int, seed: int = 0) -> np.ndarray:
    """Each sentence its own direction plus a shared topic; `central` is mostly the topic."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(10, H)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    topic = np.zeros(H, dtype=np.float32)
    topic[0] = 1.0
    emb = 0.4 * topic + emb
    emb[central] = topic + 0.05 * emb[central]
    return emb


def themed_embeddings() -> tuple[np.ndarray, np.ndarray]:
    """Sentence and query embeddings where dims 1-3 are causes/implications/long term."""
    emb = np.zeros((10, H), dtype=np.float32)
    emb[:, 0] = 1.0  # all about the same court case
    for k, group in enumerate((CAUSES, IMPLICATIONS, LONG_TERM)):
        for j, i in enumerate(group):
            emb[i, 1 + k] = 1.5 - 0.3 * j  # the first of each group matches best
    query = np.zeros((3, H), dtype=np.float32)
    query[:, 0] = 1.0
    query[[0, 1, 2], [1, 2, 3]] = 1.0
    return emb, query


def test_the_story_has_ten_sentences():
    assert len(split_sentences(STORY)) == 10


def check_spans(entry: dict) -> None:
    for e in entry["evidence"]:
        assert STORY[e["start"]:e["end"]] == e["text"]
        assert isinstance(e["score"], float)
    starts = [e["start"] for e in entry["evidence"]]
    assert starts == sorted(starts)  # article order


def test_summary_picks_the_central_sentence():
    for central in (5, 7, 9):
        out = extractive_summary(article(topic_embeddings(central)), {"summary": {"max_sentences": 1}})
        assert out["method"] == "extractive"
        assert out["text"] == split_sentences(STORY)[central].text
        check_spans(out)


def test_summary_is_two_article_sentences_in_order():
    out = extractive_summary(article(topic_embeddings(7)), {})
    assert len(out["evidence"]) == 2
    assert out["text"] == " ".join(e["text"] for e in out["evidence"])
    assert split_sentences(STORY)[7].text in out["text"]
    check_spans(out)


def test_summary_lead_prior_breaks_near_ties():
    emb = np.ones((10, H), dtype=np.float32)  # every sentence equally central
    out = extractive_summary(article(emb), {"summary": {"max_sentences": 1}})
    assert out["evidence"][0]["start"] == 0
    out = extractive_summary(article(emb), {"summary": {"max_sentences": 1, "lead_weight": 0.0}})
    assert out["evidence"][0]["start"] == 0  # stable order: still the first


def test_summary_skips_quotes_when_it_can():
    emb = topic_embeddings(QUOTE)
    one = {"summary": {"max_sentences": 1}}
    assert extractive_summary(article(emb), one)["text"] != split_sentences(STORY)[QUOTE].text
    keep = {"summary": {"max_sentences": 1, "skip_quotes": False}}
    assert extractive_summary(article(emb), keep)["text"] == split_sentences(STORY)[QUOTE].text
    # only quotes: a quote is still better than no summary
    out = extractive_summary(article(emb, quoted=[True] * 10), one)
    assert out is not None and out["evidence"]


def test_summary_skips_short_and_long_sentences():
    text = "Breaking news\n\nOk.\n\n" + STORY
    items = split_sentences(text)
    emb = np.ones((len(items), H), dtype=np.float32)
    out = extractive_summary(ArticleSentences(text, items, [], None, {}, emb), {})
    assert all(e["text"] not in ("Breaking news", "Ok.") for e in out["evidence"])
    assert all(text[e["start"]:e["end"]] == e["text"] for e in out["evidence"])


def test_summary_none_without_sentences_or_when_disabled():
    assert extractive_summary(ArticleSentences("", [], [], None, {}), {}) is None
    assert extractive_summary(article(topic_embeddings(5)), {"summary": {"enabled": False}}) is None


def test_summary_without_embeddings_is_lexical():
    out = extractive_summary(article(None), {})
    assert out["method"] == "extractive" and out["evidence"]
    check_spans(out)


def test_question_texts_follow_the_seed_pattern():
    qs = question_texts(TITLE, article())
    assert len(qs) == 3 and all(q.endswith("?") and f"“{TITLE}”" in q for q in qs)
    assert "underlying causes" in qs[0] and "immediate implications" in qs[1] and "long-term effects" in qs[2]
    assert question_texts(TITLE, article(), {"key_questions": {"enabled": False}}) == []


def test_question_texts_without_title_name_the_subject():
    qs = question_texts(None, split_sentences(STORY))
    assert qs[0] == "What are the underlying causes of the events involving the Supreme Court?"
    assert question_texts("  ", [])[0].endswith("the events this article reports?")
    long = question_texts("word " * 60, [])[0]
    assert "…”" in long and len(long) < 220


def test_ranking_texts_hold_the_questions():
    from biascard.compose.questions import RANKING_HINTS, fixed_ranking

    hinted = {"key_questions": {"ranking": "question_hint"}}
    qs, rk = question_texts(TITLE, article()), ranking_texts(TITLE, article(), hinted)
    assert len(rk) == 3 and all(r.startswith(q) and len(r) > len(q) for q, r in zip(qs, rk))
    assert ranking_texts(TITLE, article(), {"key_questions": {"ranking": "question"}}) == qs
    # the default: the hints alone, the same for every article (embedded once per composer)
    assert ranking_texts(TITLE, article()) == ranking_texts(None, []) == list(RANKING_HINTS.values())
    assert fixed_ranking() and not fixed_ranking(hinted)


def evidence_index(entry: dict) -> list[int]:
    starts = [s.start for s in split_sentences(STORY)]
    return [starts.index(e["start"]) for e in entry["evidence"]]


def test_key_questions_follow_the_query_embeddings():
    emb, query = themed_embeddings()
    sents = article(emb)
    qs = question_texts(TITLE, sents)
    out = key_questions(sents, qs, query, {"key_questions": {"cue_weight": 0.0, "answer_sentences": 1}})
    assert [evidence_index(o) for o in out] == [[1], [4], [7]]
    for o, q in zip(out, qs):
        assert o["question"] == q and o["method"] == "extractive"
        assert o["answer"] == " ".join(e["text"] for e in o["evidence"])
        check_spans(o)


def test_key_questions_answers_differ_and_may_hold_two_sentences():
    emb, query = themed_embeddings()
    out = key_questions(article(emb), question_texts(TITLE, article()), query,
                        {"key_questions": {"cue_weight": 0.0, "second_sentence_ratio": 0.5}})
    idx = [evidence_index(o) for o in out]
    assert idx == [list(CAUSES), list(IMPLICATIONS), list(LONG_TERM)]
    assert len({o["answer"] for o in out}) == 3
    for o in out:
        check_spans(o)


def test_cue_words_steer_answers_when_embeddings_say_nothing():
    emb = np.ones((10, H), dtype=np.float32)
    query = np.random.default_rng(0).normal(size=(3, H)).astype(np.float32)
    out = key_questions(article(emb), question_texts(TITLE, article()), query,
                        {"key_questions": {"answer_sentences": 1}})
    assert [evidence_index(o) for o in out] == [[2], [4], [8]]


def test_each_question_gets_its_own_sentence_when_one_dominates():
    emb, query = np.ones((10, H), dtype=np.float32), np.ones((3, H), dtype=np.float32)
    emb[5] = np.arange(H)  # as unlike the rest as anything; cues decide the rest
    out = key_questions(article(emb), question_texts(TITLE, article()), query,
                        {"key_questions": {"answer_sentences": 1, "cue_weight": 0.0}})
    used = [evidence_index(o)[0] for o in out]
    assert len(set(used)) == 3


def test_key_questions_exclude_the_summary_sentences():
    emb, query = themed_embeddings()
    settings = {"key_questions": {"cue_weight": 0.0, "answer_sentences": 1}}
    out = key_questions(article(emb), question_texts(TITLE, article()), query, settings, exclude={1, 4})
    idx = [evidence_index(o)[0] for o in out]
    assert 1 not in idx and 4 not in idx and idx[2] == 7


def test_key_questions_without_embeddings_use_the_words():
    sents = article(None)
    out = key_questions(sents, question_texts(TITLE, sents), None, ranking=ranking_texts(TITLE, sents))
    assert [evidence_index(o)[0] for o in out] == [2, 4, 8]
    # a pass that embedded the sentences but not the questions: still lexical, no shape error
    out = key_questions(article(topic_embeddings(5)), question_texts(TITLE, sents), None)
    assert len(out) == 3


def test_key_questions_edge_cases():
    emb, query = themed_embeddings()
    qs = question_texts(TITLE, article())
    with pytest.raises(ValueError):
        key_questions(article(emb), qs, query[:2], {})
    assert key_questions(ArticleSentences("", [], [], None, {}), qs, None, {}) == []
    assert key_questions(article(emb), qs, query, {"key_questions": {"enabled": False}}) == []
    text = "The court ruled on Tuesday because the law was unfair to residents."
    items = split_sentences(text)
    one = key_questions(ArticleSentences(text, items, [], None, {}, np.ones((1, H))), qs, query, {})
    assert len(one) == 3 and all(o["answer"] == text for o in one)  # one sentence answers all


def test_cue_scores_count_distinct_phrases():
    c = questions.cue_scores(["It fell because of rain, due to storms.", "Nothing here at all."])
    assert c[0, 0] == pytest.approx(0.75) and c[1].tolist() == [0.0, 0.0, 0.0]


def test_configured_defaults_match_the_code():
    from biascard.compose.settings import composer_settings

    s = composer_settings()
    for key, value in summary.DEFAULTS.items():
        assert s["summary"][key] == value, key
    for key, value in questions.DEFAULTS.items():
        if key != "templates":
            assert s["key_questions"][key] == value, key
    assert s["generate"]["enabled"] is False


def test_generate_defaults_match_the_config():
    from biascard.compose import generate
    from biascard.compose.settings import composer_settings

    assert composer_settings()["generate"] == generate.DEFAULTS
