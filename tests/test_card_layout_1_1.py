"""Schema 1.1 in every format: a full realistic card (tests/golden/full_card_1_1.json, offsets
into the article it keeps in extra.article) through the text layout, the CLI and the HTML page,
the layout lines 1.1 adds, 1.0 cards and pre-1.1 text, and the page in headless Chromium.

After a deliberate layout change, rewrite the golden text with
`biascard card render tests/golden/full_card_1_1.json -o tests/golden/full_card_1_1.txt`.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import pytest
from markupsafe import escape

from biascard.card import SCHEMA_VERSION, CardError, load_schema, normalize, parse_text, render_html, render_text, validate

from conftest import SHARED

GOLDEN = Path(__file__).resolve().parent / "golden"
FULL = GOLDEN / "full_card_1_1.json"
FULL_TEXT = GOLDEN / "full_card_1_1.txt"
KINDS = ("people", "organisations", "locations")


def same(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@pytest.fixture()
def full() -> dict:
    return json.loads(FULL.read_text(encoding="utf-8"))


def _spans(card: dict):
    """(where, span) for every cited sentence of the card."""
    yield from (("summary", e) for e in card["summary"]["evidence"])
    for i, q in enumerate(card["key_questions"]):
        yield from ((f"key_questions[{i}]", e) for e in q["evidence"])
    for c in card["cognitive_concepts"]:
        yield from ((c["concept"], e) for e in c["evidence"])
    for s in card["sdgs"]:
        yield from ((f"sdg {s['goal']}", e) for e in s["evidence"])


# ---------------------------------------------------------------- the full card


def test_composer_writes_1_1():
    assert SCHEMA_VERSION == "1.1"


def test_full_card_fills_every_field(full):
    validate(full)
    schema = load_schema()
    assert set(schema["properties"]) <= set(full)
    assert all(full[k] not in (None, [], {}) for k in schema["properties"])
    assert full["summary"]["method"] == "extractive" and full["summary"]["evidence"]
    assert all(full["entities"][k] and all({"name", "mentions", "spans"} <= set(e) for e in full["entities"][k])
               for k in KINDS)
    assert {q["method"] for q in full["key_questions"]} == {"extractive", "generated"}
    assert all(q["evidence"] for q in full["key_questions"])
    evidence = [e for c in full["cognitive_concepts"] for e in c["evidence"]]
    assert {e["quoted"] for e in evidence} == {True, False}
    concept_keys = set(schema["properties"]["cognitive_concepts"]["items"]["properties"])
    assert all(concept_keys <= set(c) and c["score"] is not None for c in full["cognitive_concepts"])
    assert all(s["explanation"] and s["evidence"] and s["polarity"] and s["relevance"] for s in full["sdgs"])


def test_full_card_offsets_match_its_article(full):
    article = full["extra"]["article"]
    for where, e in _spans(full):
        assert article[e["start"]:e["end"]] == e["text"], where
    for kind in KINDS:
        for ent in full["entities"][kind]:
            assert ent["mentions"] == len(ent["spans"])
            assert all(article[s["start"]:s["end"]] == ent["name"] for s in ent["spans"]), ent
    # extractive text is the article's own sentences
    assert full["summary"]["text"] == " ".join(e["text"] for e in full["summary"]["evidence"])
    extractive = [q for q in full["key_questions"] if q["method"] == "extractive"]
    assert all(q["answer"] == q["evidence"][0]["text"] for q in extractive)


def test_full_card_text_is_the_golden_layout(full):
    text = render_text(full)
    assert text == FULL_TEXT.read_text(encoding="utf-8")
    back = parse_text(text, "full.txt")
    assert same(back, normalize(full))
    assert render_text(back) == text


def test_full_card_through_the_cli(full, tmp_path, capsys):
    from biascard.cli import main

    txt, page, back = tmp_path / "full.txt", tmp_path / "full.html", tmp_path / "back.json"
    assert main(["card", "render", str(FULL), "--format", "text", "-o", str(txt)]) == 0
    assert txt.read_text(encoding="utf-8") == FULL_TEXT.read_text(encoding="utf-8")
    assert main(["card", "parse", str(txt), "-o", str(back)]) == 0
    assert same(json.loads(back.read_text(encoding="utf-8")), normalize(full))
    assert main(["card", "render", str(FULL), "--format", "html", "-o", str(page)]) == 0
    assert "GENERATED" not in page.read_text() and "generated answer" in page.read_text()


def test_seed_through_the_cli_is_1_1(capsys):
    from biascard.cli import main

    assert main(["card", "parse", str(SHARED / "seed-card.txt")]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["schema_version"] == "1.1" and "extra" not in card
    assert card["summary"]["method"] == "generated"
    assert [e["name"] for e in card["entities"]["people"]] == ["Xu", "Li", "Wei Jingfeng"]


# ---------------------------------------------------------------- layout lines of 1.1


def _minimal(**fields) -> dict:
    return {
        "schema_version": "1.1",
        "model": {"name": "m", "version": "1"},
        "cognitive_concepts": [{"concept": c, "score": 2, "evidence": []}
                               for c in ("framing_bias", "language_bias", "bias_by_omission", "false_dichotomy")],
        "sdgs": [],
        "topics": [],
        **fields,
    }


def _details(text: str) -> list[str]:
    """The language, locations, topics, organisations and people lines."""
    return text.split("\n\n")[5].split("\n")[:5]


@pytest.mark.parametrize(
    "entities, lines",
    [
        (None, ["(none)", "(none)", "(none)"]),
        ({}, ["[]", "[]", "[]"]),  # known to be empty, which null is not
        ({"people": [{"name": "Xu"}]}, ["(none)", "(none)", "Xu"]),
        ({"locations": [{"name": "China", "mentions": 2, "spans": [{"start": 0, "end": 5}, {"start": 9, "end": 14}]}],
          "people": [{"name": "Li", "mentions": 1}, {"name": "Wei", "spans": [{"start": 3, "end": 6}]}]},
         ["China (2 mentions at 0-5, 9-14)", "(none)", "Li (1 mention) · Wei (at 3-6)"]),
        ({"organisations": [{"name": "A · B"}, {"name": "C"}]}, ["(none)", '["A · B", "C"]', "(none)"]),
        ({"people": [{"name": "X (2 mentions)"}]}, ["(none)", "(none)", '["X (2 mentions)"]']),
        ({"people": [{"name": "Zed", "spans": []}]}, ["(none)", "(none)", '[{"name": "Zed", "spans": []}]']),
    ],
)
def test_entity_lines(entities, lines):
    card = _minimal(entities=entities)
    text = render_text(card)
    got = _details(text)
    assert [got[1], got[3], got[4]] == lines
    assert same(parse_text(text), normalize(card))


def test_cited_lines_under_summary_answers_and_goals():
    span = {"text": "Two men were jailed.", "start": 0, "end": 20}
    card = _minimal(
        summary={"text": "Two men were jailed.", "method": "extractive", "evidence": [{**span, "score": 0.9}]},
        key_questions=[{"question": "Who?", "answer": "Two men.", "method": "generated", "evidence": [span]}],
        sdgs=[{"goal": 16, "name": "Peace, Justice and Strong Institutions", "probability": 0.8,
               "explanation": "Courts at work.", "evidence": [span]}],
        warnings=["Short text.", "Cognitive Concepts"],
    )
    card["cognitive_concepts"][0]["evidence"] = [{**span, "score": 0.7, "quoted": True}]
    text = render_text(card)
    assert "Two men were jailed.\nMethod: extractive\nEvidence 0-20 (0.9): Two men were jailed.\n\n" in text
    assert "Who?\nTwo men.\nMethod: generated\nEvidence 0-20: Two men were jailed.\n\nWarnings\n\n" in text
    assert 'Warnings\n\nShort text.\n"Cognitive Concepts"\n\nCognitive Concepts\n' in text
    assert "Quoted evidence 0-20 (0.7): Two men were jailed." in text
    assert "Probability: 0.8\n\nCourts at work.\n\nEvidence 0-20: Two men were jailed.\n" in text
    assert same(parse_text(text), normalize(card))


def _seed_lines() -> list[str]:
    return (SHARED / "seed-card.txt").read_text(encoding="utf-8").split("\n")


def _insert_after(lines: list[str], prefix: str, new: list[str]) -> tuple[str, int]:
    i = next(i for i, s in enumerate(lines) if s.startswith(prefix))
    return "\n".join(lines[: i + 1] + new + lines[i + 1:]), i + 2


@pytest.mark.parametrize(
    "after, new, message",
    [
        ("China's Supreme People's Court handed", ["Method: written"], "expected 'Method: extractive or generated'"),
        ("China's Supreme People's Court handed", ["Method: generated", "Method: generated"], "a second 'Method:'"),
        ("China's Supreme People's Court handed", ["Quoted evidence 1-2: x"], "only a concept's evidence"),
        ("China's Supreme People's Court handed", ["Evidence 1-x: x"], "expected 'Evidence <start>-<end>"),
        ("China's Supreme People's Court handed", ["Other words"], "expected a blank line after the summary line"),
        ("XuLiWei Jingfeng", ["Method: generated"], "belongs under the summary or an answer"),
        ("The rulings and new regulations", ["Evidence 3-9: x"], None),
    ],
)
def test_cited_line_errors_name_the_line(after, new, message):
    text, line = _insert_after(_seed_lines(), after, new)
    if message is None:
        assert parse_text(text)["key_questions"][2]["evidence"] == [{"text": "x", "start": 3, "end": 9}]
        return
    with pytest.raises(CardError) as e:
        parse_text(text, "seed.txt")
    assert str(e.value).startswith(f"seed.txt:{line + len(new) - 1 if 'second' in message else line}: "), str(e.value)
    assert message in str(e.value)


def test_seed_method_lines_are_read():
    text, _ = _insert_after(_seed_lines(), "China's Supreme People's Court handed", ["Method: extractive"])
    assert parse_text(text)["summary"]["method"] == "extractive"


# ---------------------------------------------------------------- 1.0 cards and older text


def _card_1_0() -> dict:
    """The seed as the parser read it before 1.1: a 1.0 card with its header in `extra`."""
    card = parse_text((SHARED / "seed-card.txt").read_text(encoding="utf-8"))
    extra = {
        "summary": card.pop("summary")["text"],
        "tags": {k: [e["name"] for e in card["entities"][k]] for k in ("locations", "organisations", "people")},
        "key_questions": [{"question": q["question"], "answer": q["answer"]} for q in card.pop("key_questions")],
        "sdg_explanations": [s.pop("explanation") for s in card["sdgs"]],
    }
    for s in card["sdgs"]:
        s.pop("evidence")
    for k in ("entities", "warnings"):
        card.pop(k)
    return {**card, "schema_version": "1.0", "extra": extra}


def test_1_0_card_keeps_the_seed_layout_and_round_trips():
    card = _card_1_0()
    validate(card)
    assert same(normalize(card), card)  # nothing of 1.1 is added to a 1.0 card
    text = render_text(card)
    assert "Card Metadata\n\nSchema version: 1.0\n" in text
    assert "Method:" not in text and "Extra Fields" not in text
    assert "\nXu · Li · Wei Jingfeng\nWhat are the underlying causes" in text
    back = parse_text(text)
    assert same(back, card) and render_text(back) == text
    # without the version line the same text is read as 1.1, with the header as fields
    migrated = parse_text(text.replace("\n\nCard Metadata\n\nSchema version: 1.0\nModel: human\nModel version: seed", ""))
    assert migrated["schema_version"] == "1.1" and "extra" not in migrated
    assert migrated["summary"]["text"] == card["extra"]["summary"]


def test_1_1_fields_on_a_1_0_card_are_kept_as_other_fields():
    card = {**_minimal(), "schema_version": "1.0", "warnings": ["w"], "summary": {"text": "s", "method": "generated"}}
    card["cognitive_concepts"][0]["evidence"] = [{"text": "t", "start": 0, "end": 1, "score": 0.5, "quoted": True}]
    text = render_text(card)
    assert "Other Fields" in text and "Quoted evidence" not in text and "\nWarnings\n" not in text
    assert same(parse_text(text), normalize(card))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace("Cognitive Concepts", "Warnings\n\nw\n\nCognitive Concepts"), "'Warnings' section needs schema 1.1"),
        (lambda t: t.replace("Direct Relevance\n", "Direct Relevance\nEvidence 1-2: x\n"), "evidence under a goal needs"),
        (lambda t: t.replace("XuLiWei Jingfeng\n", "XuLiWei Jingfeng\nQ?\nA.\nMethod: generated\n"), "needs schema 1.1"),
    ],
)
def test_1_1_lines_in_a_1_0_text_are_refused(edit, message):
    text = edit((SHARED / "seed-card.txt").read_text(encoding="utf-8")) + "\n\nCard Metadata\n\nSchema version: 1.0\n"
    with pytest.raises(CardError, match=message):
        parse_text(text)


def test_normalize_1_1():
    card = _minimal(summary={"text": "s", "method": "generated"}, entities={"people": [{"name": "Xu"}]},
                    key_questions=[{"question": "q", "answer": "a", "method": "extractive"}],
                    sdgs=[{"goal": 3, "name": "Good Health and Well-being", "probability": 0.5}])
    card["cognitive_concepts"][0]["evidence"] = [{"text": "t", "start": 0, "end": 1, "score": 0.5}]
    n = normalize(card)
    assert n["summary"]["evidence"] == [] and n["warnings"] == []
    assert n["entities"] == {"people": [{"name": "Xu"}], "organisations": [], "locations": []}
    assert n["key_questions"][0]["evidence"] == []
    assert n["sdgs"][0] | {} == {"goal": 3, "name": "Good Health and Well-being", "probability": 0.5,
                                 "polarity": None, "relevance": None, "explanation": None, "evidence": []}
    assert n["cognitive_concepts"][0]["evidence"][0]["quoted"] is False
    assert normalize(_minimal())["summary"] is None and normalize(_minimal())["entities"] is None
    assert "evidence" not in card["summary"]  # the input is left alone


# ---------------------------------------------------------------- html


def _text_values(card: dict) -> list[str]:
    """Every text field of the card (what the page must show, escaped)."""
    out = [card["title"], card["source"], card["language"], card["id"], card["model"]["name"], card["model"]["version"],
           *card["warnings"], card["summary"]["text"]]
    out += [e["name"] for kind in KINDS for e in card["entities"][kind]] + [t["label"] for t in card["topics"]]
    out += [x for q in card["key_questions"] for x in (q["question"], q["answer"])]
    for c in card["cognitive_concepts"]:
        out += [c["label"], c["explanation"], *(w for e in c["evidence"] for w in e["words"])]
    out += [x for s in card["sdgs"] for x in (s["name"], s["explanation"])]
    return out + [e["text"] for _, e in _spans(card)]


def _visible_values(card: dict) -> list[str]:
    """Every field's value as the page shows it: the texts, and the numbers and labels formatted."""
    out = _text_values(card) + [card["summary"]["method"] + " summary", card["political_leaning"]["label"].capitalize()]
    for kind in KINDS:
        out += [f"{e['name']} {e['mentions']} mention" + ("" if e["mentions"] == 1 else "s") for e in card["entities"][kind]]
    out += [t["label"] + (f" {100 * t['probability']:.0f}%" if t["probability"] != 1 else "") for t in card["topics"]]
    out += [q["method"] + " answer" for q in card["key_questions"]]
    out += [x for c in card["cognitive_concepts"] for x in (f"{c['label']} {c['score']}/5",
                                                             f"expected score {c['expected_score']:.2f}")]
    for s in card["sdgs"]:
        out += [f"SDG {s['goal']}: {s['name']} · probability {100 * s['probability']:.0f}%",
                f"polarity: {s['polarity'].capitalize()} · {s['relevance'].capitalize()} relevance"]
    return out


def test_html_shows_every_field_escaped(full):
    card = copy.deepcopy(full)
    card["warnings"].append('<script>alert("w")</script>')
    card["entities"]["people"][0]["name"] = "<b>Xu</b>"
    card["key_questions"][1]["answer"] = "A & B <i>"
    page = render_html(card)
    assert "<script>" not in page and "<b>Xu</b>" not in page and "<i>" not in page
    unmarked = page.replace("<mark>", "").replace("</mark>", "")  # biased words are marked inside evidence
    for value in _text_values(card):
        assert str(escape(value)) in unmarked, value
    assert page.index("Warnings") < page.index("<h1>")


def test_html_says_what_is_not_estimated(full):
    card = copy.deepcopy(full)
    card.update(sdgs=[], topics=[], entities=None, language=None, summary=None)
    page = render_html(card)
    assert "No Sustainable Development Goal was detected with confidence." in page
    assert "No topic was detected with confidence." in page
    assert page.count("not estimated") == 4  # language, locations, organisations, people
    card = copy.deepcopy(full)
    card["sdgs"][0].update(polarity=None, relevance=None)
    card["entities"]["people"] = []
    page = render_html(card)
    assert "polarity: <span class=\"na\">not estimated</span>" in page
    assert "relevance: <span class=\"na\">not estimated</span>" in page and "none named" in page


def test_html_reads_a_1_0_cards_extra():
    page = render_html(_card_1_0())
    for value in ("China's Supreme People's Court handed down", "Wei Jingfeng", "What are the underlying causes",
                  "The Chinese government's actions"):
        assert str(escape(value)) in page, value
    assert "generated summary" not in page  # a 1.0 card never said how its summary was made


@pytest.mark.slow
def test_html_in_chromium_shows_every_field(full, tmp_path):
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(chromium):
        pytest.fail("chromium is missing: `make browser` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    pages = {"full": full, "empty": {**copy.deepcopy(full), "sdgs": [], "topics": [], "entities": None}}
    for name, card in pages.items():
        (tmp_path / f"{name}.html").write_text(render_html(card), encoding="utf-8")
    shown = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            for name in pages:
                page.goto((tmp_path / f"{name}.html").as_uri())
                shown[name] = {
                    "text": " ".join(page.inner_text("body").split()),
                    "quotes": [li.inner_text() for li in page.query_selector_all(".evidence li:has(.badge.quote)")],
                    "badges": [b.text_content() for b in page.query_selector_all(".badge")],
                }
        finally:
            browser.close()
    assert not errors, errors
    text = shown["full"]["text"]
    lower = text.lower()  # badges are upper-cased by CSS
    for value in _visible_values(full):
        value = " ".join(value.split())
        assert value in text or value.lower() in lower, value
    quoted = [e["text"] for c in full["cognitive_concepts"] for e in c["evidence"] if e["quoted"]]
    assert len(shown["full"]["quotes"]) == len(quoted) and all(q in s for q, s in zip(quoted, shown["full"]["quotes"]))
    assert sorted(shown["full"]["badges"]) == sorted(
        ["extractive summary", "extractive answer", "generated answer"] + ["quote"] * len(quoted))
    assert text.index("Warnings") < text.index(full["title"]) < text.index(full["summary"]["text"])
    empty = shown["empty"]["text"]
    assert "No Sustainable Development Goal was detected with confidence." in empty
    assert "No topic was detected with confidence." in empty and empty.count("not estimated") == 3
