"""The `cards` adapter: card-labeled JSONL -> article records, bad lines reported by line."""
from __future__ import annotations

import copy
import io
import json

import pytest

from biascard.data.adapters.cards import ENV_FILE, card_labels
from biascard.card import parse_text
from biascard.data.errors import DataError, Report
from biascard.data.prepare import prepare
from biascard.data.records import HEADS

from conftest import SHARED


@pytest.fixture(scope="module")
def seed() -> dict:
    return parse_text((SHARED / "seed-card.txt").read_text(encoding="utf-8"), "seed.txt")


def _variant(seed: dict, scores: tuple[int, int, int, int], **top) -> dict:
    card = copy.deepcopy(seed)
    for c, s in zip(card["cognitive_concepts"], scores):
        c["score"] = s
    card.update(top)
    return card


def _write(path, lines: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8")


@pytest.fixture()
def jsonl(tmp_path, seed):
    bad_score = copy.deepcopy(seed)
    bad_score["cognitive_concepts"][1]["score"] = 7
    twice = copy.deepcopy(seed)
    twice["cognitive_concepts"][3]["concept"] = "framing_bias"
    no_sdg = _variant(seed, (5, 4, 1, 2), sdgs=[], topics=[], political_leaning={"label": "left"}, source=None)
    lines = [
        {"id": "seed", "text": "Article one about facial recognition.", "card": seed},  # 1
        {"id": "b", "text": "Article two.", "card": no_sdg, "source": "example.org"},  # 2
        '{"id": "broken", "text": ',  # 3: invalid JSON
        {"id": "c", "text": "Article three.", "card": bad_score},  # 4: score 7
        {"id": "d", "card": seed},  # 5: no text
        "",  # 6: blank lines are not rows
        {"id": "e", "text": "Article one about  facial recognition.", "card": seed},  # 7: same text as line 1
        {"id": "f", "text": "Article four.", "card": twice},  # 8: a concept twice
        {"id": "b", "text": "Article five.", "card": seed},  # 9: id used on line 2
        {"text": "Article six.", "card": _variant(seed, (1, 1, 1, 1))},  # 10: no id
        {"id": "g", "text": "Article seven.", "card": "not a card"},  # 11
        {"id": "h", "text": "Article eight.", "card": _variant(seed, (2, 2, 2, 2))},  # 12
        {"id": "i", "text": "Article nine.", "card": _variant(seed, (3, 3, 3, 3))},  # 13
    ]
    path = tmp_path / "cards" / "cards.jsonl"
    _write(path, lines)
    return path


def test_cards_records_and_reported_lines(jsonl, tmp_path, seed):
    report = Report(stream=io.StringIO())
    dsd = prepare("cards", data_dir=tmp_path, cache_dir=tmp_path / "cache", report=report, use_cache=False)
    bad = {b.line: b.reason for b in report.bad}
    assert all(b.file == str(jsonl) for b in report.bad)
    assert set(bad) == {3, 4, 5, 8, 9, 11}
    assert bad[3].startswith("invalid JSON")
    assert bad[4] == "invalid card: cognitive_concepts[1].score: 7 is greater than the maximum of 5"
    assert "'text'" in bad[5]
    assert "framing_bias appears twice" in bad[8]
    assert "id 'b' already used on line 2" in bad[9]
    assert "'card' must be a JSON object" in bad[11]
    assert str(report.bad[0]) == f"{jsonl}:3: {bad[3]}"

    rows = {r["id"]: (split, r) for split, ds in dsd.items() for r in ds}
    assert set(rows) == {"seed", "b", "e", "cards-10", "h", "i"}
    _, r = rows["seed"]
    assert r["unit"] == "article" and r["dataset"] == "cards" and r["outlet"] == "europe.chinadaily.com.cn"
    assert r["doc_id"] == "seed" and r["group"] == "id:seed"
    labels = r["labels"]
    assert set(labels) == set(HEADS)
    assert (labels["card_framing_bias"], labels["card_language_bias"],
            labels["card_bias_by_omission"], labels["card_false_dichotomy"]) == (2, 1, 3, 3)
    assert labels["sdg"] == ["16"]
    assert labels["sdg_polarity"] == "positive" and labels["sdg_relevance"] == "direct"
    assert labels["topic"] == [t["label"] for t in seed["topics"]]
    assert labels["political_leaning"] is None
    assert labels["language_bias"] is None and labels["biased_words"] is None and labels["fallacy"] is None

    _, b = rows["b"]
    assert b["outlet"] == "example.org"
    assert [b["labels"][h] for h in ("card_framing_bias", "card_language_bias", "card_bias_by_omission",
                                     "card_false_dichotomy")] == [5, 4, 1, 2]
    assert b["labels"]["sdg"] == [] and b["labels"]["topic"] == []
    assert b["labels"]["sdg_polarity"] is None and b["labels"]["political_leaning"] == "left"
    assert rows["cards-10"][1]["group"] != "id:None" and rows["cards-10"][1]["doc_id"] is None

    # the same article under two ids never sits in two splits
    assert rows["seed"][0] == rows["e"][0]


def test_cards_split_is_deterministic(jsonl, tmp_path):
    quiet = io.StringIO()
    a = prepare("cards", data_dir=tmp_path, cache_dir=tmp_path / "c1", report=Report(stream=quiet), use_cache=False)
    b = prepare("cards", data_dir=tmp_path, cache_dir=tmp_path / "c2", report=Report(stream=quiet), use_cache=False)
    assert {s: sorted(d["id"]) for s, d in a.items()} == {s: sorted(d["id"]) for s, d in b.items()}
    assert sum(len(d) for d in a.values()) == 6


def test_cards_strict_fails_on_the_first_bad_line(jsonl, tmp_path):
    with pytest.raises(DataError, match=rf"^{jsonl}:3: invalid JSON"):
        prepare("cards", data_dir=tmp_path, cache_dir=tmp_path / "cache", strict=True)


def test_cards_file_from_env(tmp_path, seed, monkeypatch):
    path = tmp_path / "elsewhere" / "mine.jsonl"
    _write(path, [{"id": str(i), "text": f"Text number {i}.", "card": seed} for i in range(5)])
    monkeypatch.setenv(ENV_FILE, str(path))
    dsd = prepare("cards", data_dir=tmp_path / "no-data-here", cache_dir=tmp_path / "cache")
    assert sorted(i for d in dsd.values() for i in d["id"]) == ["0", "1", "2", "3", "4"]
    monkeypatch.setenv(ENV_FILE, str(tmp_path / "missing.jsonl"))
    with pytest.raises(DataError, match="missing.jsonl"):
        prepare("cards", data_dir=tmp_path, cache_dir=tmp_path / "cache")


def test_too_few_cards_to_split(tmp_path, seed):
    _write(tmp_path / "cards" / "cards.jsonl", [{"text": "Only one.", "card": seed}, {"text": "only ONE.", "card": seed}])
    with pytest.raises(DataError, match="need at least 3 distinct articles"):
        prepare("cards", data_dir=tmp_path, cache_dir=tmp_path / "cache")


def test_card_labels_topics_threshold_and_goal_order(seed):
    card = copy.deepcopy(seed)
    card["sdgs"] = [
        {"goal": 13, "name": "Climate Action", "probability": 0.9, "polarity": None, "relevance": "indirect"},
        {"goal": 3, "name": "Good Health and Well-being", "probability": 0.6},
        {"goal": 13, "name": "Climate Action", "probability": 0.7},
    ]
    card["topics"] = [{"label": "a", "probability": 0.49}, {"label": "b", "probability": 0.5}, {"label": "b", "probability": 1.0}]
    labels = card_labels(card)
    assert labels["sdg"] == ["3", "13"]
    assert labels["sdg_polarity"] is None and labels["sdg_relevance"] == "indirect"
    assert labels["topic"] == ["b"]
