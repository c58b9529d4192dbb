"""The card contract: schema check, text layout (seed and round trip), HTML, CLI."""
from __future__ import annotations

import copy
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from biascard.card import (
    CONCEPT_LABELS,
    CONCEPTS,
    SDG_NAMES,
    CardError,
    load_schema,
    normalize,
    parse_text,
    render_html,
    render_text,
    sdg_goal,
    validate,
)
from biascard.card.contract import SCHEMA_PATH
from biascard.card.textlines import split_camel as _split_camel

from conftest import SHARED

SEED_PATH = SHARED / "seed-card.txt"


@pytest.fixture(scope="module")
def seed_text() -> str:
    assert SEED_PATH.is_file(), f"the seed card is read from {SEED_PATH}"
    return SEED_PATH.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def seed(seed_text) -> dict:
    return parse_text(seed_text, "seed.txt")


def same(a, b) -> bool:
    """Equality that also tells 1 from 1.0."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


# ---------------------------------------------------------------- schema


def test_shipped_schema_is_the_contract():
    Draft202012Validator.check_schema(load_schema())
    shared = SHARED / "card.schema.json"
    if shared.is_file():
        assert SCHEMA_PATH.read_bytes() == shared.read_bytes()


def test_card_error_is_a_value_error():
    # the core cannot import the data stage; the CLI turns ValueErrors into one clear line
    assert issubclass(CardError, ValueError)


def _minimal() -> dict:
    return {
        "schema_version": "1.0",
        "model": {"name": "m", "version": "1"},
        "cognitive_concepts": [{"concept": c, "score": 2, "evidence": []} for c in CONCEPTS],
        "sdgs": [],
        "topics": [],
    }


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c["cognitive_concepts"][1].update(score=7), "cognitive_concepts[1].score: 7 is greater than the maximum of 5"),
        (lambda c: c["cognitive_concepts"][0].update(score=0), "cognitive_concepts[0].score: 0 is less than the minimum of 1"),
        (lambda c: c.pop("model"), "card: 'model' is a required property"),
        (lambda c: c["sdgs"].append({"goal": 18, "name": "x", "probability": 1}), "sdgs[0].goal: 18 is greater than the maximum of 17"),
        (lambda c: c["sdgs"].append({"goal": 1, "name": "x", "probability": 1, "polarity": "good"}), "sdgs[0].polarity:"),
        (lambda c: c["topics"].append({"label": "x", "probability": 1.5}), "topics[0].probability:"),
        (lambda c: c["cognitive_concepts"][2]["evidence"].append({"text": "x", "start": -1, "end": 2, "score": 1}),
         "cognitive_concepts[2].evidence[0].start:"),
        (lambda c: c.update(schema_version="2.0"), "schema_version:"),
        (lambda c: c["cognitive_concepts"].pop(), "cognitive_concepts:"),
    ],
)
def test_validate_names_the_field(mutate, message):
    card = _minimal()
    validate(card)
    mutate(card)
    with pytest.raises(CardError) as e:
        validate(card)
    assert str(e.value).startswith(message), str(e.value)


def test_sdg_names_and_lookup():
    assert len(SDG_NAMES) == 17
    assert SDG_NAMES[1] == "No Poverty" and SDG_NAMES[17] == "Partnerships for the Goals"
    assert SDG_NAMES[16] == "Peace, Justice and Strong Institutions"
    assert sdg_goal("Peace, Justice, and Strong Institutions") == 16
    assert sdg_goal("good health & well being") == 3
    assert sdg_goal("World Peace") is None
    assert list(CONCEPT_LABELS.values()) == ["Framing Bias", "Language Bias", "Bias by Omission", "False Dichotomy"]


# ---------------------------------------------------------------- seed


def test_seed_parses_with_every_field(seed):
    validate(seed)
    assert seed["title"] == "China Cracks Down on Illegal Use of Facial Recognition Data"
    assert seed["source"] == "europe.chinadaily.com.cn"
    assert seed["language"] == "English"
    assert seed["model"] == {"name": "human", "version": "seed"}
    scores = {c["concept"]: c["score"] for c in seed["cognitive_concepts"]}
    assert scores == {"framing_bias": 2, "language_bias": 1, "bias_by_omission": 3, "false_dichotomy": 3}
    assert all(type(c["score"]) is int and c["evidence"] == [] for c in seed["cognitive_concepts"])
    assert all(c["expected_score"] is None and c["distribution"] is None for c in seed["cognitive_concepts"])
    framing = seed["cognitive_concepts"][0]
    assert framing["label"] == "Framing Bias"
    assert framing["explanation"].startswith("The article frames the issue as a serious crime")
    assert seed["cognitive_concepts"][3]["explanation"].endswith("The focus is solely on criminal prosecution.")
    sdg = {k: v for k, v in seed["sdgs"][0].items() if k not in ("explanation", "evidence")}
    assert len(seed["sdgs"]) == 1 and sdg == {
        "goal": 16, "name": "Peace, Justice and Strong Institutions", "probability": 1.0,
        "polarity": "positive", "relevance": "direct"}
    labels = [t["label"] for t in seed["topics"]]
    assert labels == ["Justice", "Technology", "China", "Cybersecurity", "Data Privacy", "Facial Recognition",
                      "Judicial Ruling", "Personal Information Protection"]
    assert {t["probability"] for t in seed["topics"]} == {1.0}
    # schema 1.1: what the seed prints beyond the scores has fields of its own, no `extra`
    assert seed["schema_version"] == "1.1" and "extra" not in seed
    assert seed["summary"]["text"].startswith("China's Supreme People's Court handed down prison sentences")
    assert seed["summary"]["method"] == "generated" and seed["summary"]["evidence"] == []
    assert seed["entities"] == {
        "people": [{"name": "Xu"}, {"name": "Li"}, {"name": "Wei Jingfeng"}],
        "organisations": [{"name": n} for n in ("Supreme People's Court", "Zhongdun Law Offices",
                                                "Cyberspace Administration Of China", "Ministry Of Public Security")],
        "locations": [{"name": "China"}],
    }
    qs = seed["key_questions"]
    assert len(qs) == 3 and all(q["method"] == "generated" and q["evidence"] == [] for q in qs)
    assert qs[0]["question"].startswith("What are the underlying causes")
    assert qs[2]["answer"].endswith("influencing global best practices.")
    assert seed["sdgs"][0]["explanation"].startswith("The Chinese government's actions")
    assert seed["sdgs"][0]["evidence"] == []
    assert seed["warnings"] == []


def test_seed_round_trip(seed, seed_text):
    text = render_text(seed)
    assert same(parse_text(text), seed)
    assert render_text(parse_text(text)) == text
    # the rendered form keeps the seed's layout; only tags gain separators and the goal its number
    assert "Supreme People's Court · Zhongdun Law Offices" in text
    assert "SDG 16: Peace, Justice and Strong Institutions Positive\nDirect Relevance" in text
    assert "\n\n2/5\n\nFraming Bias\n\n" in text


def test_seed_with_crlf_and_bom_parses_the_same(seed, seed_text):
    assert same(parse_text("\ufeff" + seed_text.replace("\n", "\r\n")), seed)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.from_regex(r"[A-Z][a-z]{1,6}( [A-Z][a-z]{1,6}){0,2}", fullmatch=True), min_size=1, max_size=6))
def test_camel_split_recovers_capitalised_tags(tags):
    assert _split_camel("".join(tags)) == tags


def test_rendered_tags_that_camel_split_would_break_round_trip(seed):
    card = copy.deepcopy(seed)
    card["entities"]["people"] = [{"name": "iPhone"}]
    card["topics"] = [{"label": "McDonald", "probability": 1.0}, {"label": "OpenAI", "probability": 0.25}]
    text = render_text(card)
    assert same(parse_text(text), card)


# ---------------------------------------------------------------- malformed text


def _edit(lines: list[str], find: str, new: str | None) -> tuple[str, int]:
    """Replace (or delete, new=None) the first line equal to `find`; return text and its line number."""
    i = lines.index(find)
    out = lines[:i] + ([] if new is None else [new]) + lines[i + 1:]
    return "\n".join(out), i + 1


@pytest.mark.parametrize(
    "find, new, line_shift, message",
    [
        ("2/5", "two/5", 0, "expected a score like '2/5' (or '-/5' for none), got 'two/5'"),
        ("1/5", "7/5", 0, "score 7 is not a whole number from 1 to 5"),
        ("1/5", "2.5/5", 0, "score 2.5 is not a whole number from 1 to 5"),
        ("Framing Bias", "Framing Bananas", 0, "expected a concept label"),
        ("Peace, Justice, and Strong Institutions Positive", "World Peace Positive", 0, "expected an SDG like"),
        ("Bias by Omission", "Evidence 1-x (0.5): foo", 0, "expected a concept label"),
        ("Cognitive Concepts", None, None, "no 'Cognitive Concepts' section"),
        ("europe.chinadaily.com.cn", "europe.chinadaily.com.cn\nsecond line", 1, "expected a blank line after the source line"),
        ("Sustainable Development Goals", "Sustainable Development Goals\n\nCognitive Concepts", 2, "section 'Cognitive Concepts' appears twice"),
        ("europe.chinadaily.com.cn", None, None, "expected the card header as 6 blocks separated by blank lines"),
    ],
)
def test_malformed_text_names_the_line(seed_text, find, new, line_shift, message):
    text, line = _edit(seed_text.split("\n"), find, new)
    with pytest.raises(CardError) as e:
        parse_text(text, "seed.txt")
    msg = str(e.value)
    if line_shift is not None:
        assert msg.startswith(f"seed.txt:{line + line_shift}: "), msg
    assert message in msg, msg


def test_missing_blank_line_names_its_line(seed_text):
    lines = seed_text.split("\n")
    i = lines.index("europe.chinadaily.com.cn")
    del lines[i + 1]  # the headline now follows the source directly, on line i + 2
    with pytest.raises(CardError, match=rf"^seed\.txt:{i + 2}: expected a blank line after the source line"):
        parse_text("\n".join(lines), "seed.txt")


def test_question_without_answer_names_its_line(seed_text):
    lines = seed_text.split("\n")
    last_answer = next(i for i, s in enumerate(lines) if s.startswith("The rulings and new regulations"))
    text = "\n".join(lines[:last_answer] + lines[last_answer + 1:])
    with pytest.raises(CardError, match=rf"^seed\.txt:{last_answer}: key question without an answer"):
        parse_text(text, "seed.txt")


def test_evidence_line_errors_name_the_line(seed_text):
    lines = seed_text.split("\n")
    i = lines.index("Framing Bias") + 2  # the explanation
    bad = lines[: i + 1] + ["Evidence 4-x (0.5): the crackdown"] + lines[i + 1:]
    with pytest.raises(CardError, match=rf"^seed\.txt:{i + 2}: expected 'Evidence <start>-<end>"):
        parse_text("\n".join(bad), "seed.txt")
    good = lines[: i + 1] + ["Evidence 4-19 (0.5): the crackdown", "Biased words: crackdown"] + lines[i + 1:]
    card = parse_text("\n".join(good), "seed.txt")
    assert card["cognitive_concepts"][0]["evidence"] == [
        {"text": "the crackdown", "start": 4, "end": 19, "score": 0.5, "words": ["crackdown"], "quoted": False}
    ]


def test_schema_errors_from_text_name_the_field(seed_text):
    lines = seed_text.split("\n")
    i = lines.index("False Dichotomy")
    text = "\n".join(lines[: i - 2] + lines[i + 3:])  # drop the last concept block
    with pytest.raises(CardError, match=r"^seed\.txt: cognitive_concepts: .* is too short"):
        parse_text(text, "seed.txt")


# ---------------------------------------------------------------- round trip on generated cards

TRICKY = [
    "", " ", "(none)", "-", "2/5", "-/5", "Framing Bias", "framing bias", "Cognitive Concepts",
    "Sustainable Development Goals", "Extra Fields", "Other Fields", "Card Metadata", "Political Leaning",
    "No Poverty", "Quality Education Negative", "SDG 3: x", "Direct Relevance", "Probability: 0.5",
    "Expected score: 3", "Distribution: [1]", "Evidence 1-2 (0.5): x", "Biased words: a", "Concept framing_bias: x",
    "Model: x", "Id: 7", '"quoted"', '""', '"a" and "b"', " lead", "trail ", "a · b", " · ", "iPhone",
    "XuLi", "[1]", '["a"]', "{}", "Foo Positive", "x (p=0.5)", "line\nbreak", "para\n\npara", "tab\there",
    "cr\rhere", "u\u2028sep", "nel\x85x", "\ufeffbom", "日本語のタイトル", "emoji 🙂", "a\\b",
    # lines of the 1.1 layout
    "Warnings", "Method: generated", "Method: x", "Schema version: 1.0", "Evidence 1-2: x", "Quoted evidence 1-2 (0.5): x",
    "Xu (2 mentions)", "Li (at 1-2)", "a (1 mention at 3-4, 5-6)", "Party (CCP)", "[]", '[{"name": "x"}]', "McDonald",
]
WORDS = ["Justice", "Data Privacy", "Wei Jingfeng", "europe.chinadaily.com.cn", "A plain sentence, with commas."]
texts = st.one_of(st.sampled_from(TRICKY), st.sampled_from(WORDS), st.text(max_size=10))
opt_texts = st.one_of(st.none(), texts)
unit = st.floats(0, 1, allow_nan=False)
probs = st.one_of(st.just(1.0), st.just(1), st.just(0), unit)
numbers = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, texts),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
    max_leaves=3,
)
leaves = st.one_of(st.none(), st.booleans(), numbers, texts)
# schema-allowed fields the layout has no place for; rare, so most draws stay cheap
unknown = st.one_of(st.just({}), st.just({}), st.just({}), st.dictionaries(st.sampled_from(["note", "rank"]), leaves, min_size=1, max_size=1))
scores = st.one_of(st.none(), st.integers(1, 5))
expected_scores = st.one_of(st.none(), st.floats(1, 5), st.integers(1, 5))
distributions = st.one_of(st.none(), st.lists(unit, min_size=5, max_size=5))
polarities = st.sampled_from(["positive", "negative", None])
relevances = st.sampled_from(["direct", "indirect", None])
text_lists = st.lists(texts, max_size=3)
tag_dicts = st.dictionaries(st.sampled_from(["locations", "organisations", "people", "other"]), text_lists, max_size=3)
qa_lists = st.lists(st.fixed_dictionaries({"question": texts, "answer": texts}), max_size=3)
headline_lists = st.one_of(st.lists(texts, min_size=2, max_size=2), text_lists)
leanings = st.one_of(st.none(), st.fixed_dictionaries(
    {}, optional={"label": st.sampled_from(["left", "center", "right"]), "distribution": st.dictionaries(texts, numbers, max_size=3)}
))


def maybe(draw, d: dict, key: str, strategy):
    """Set d[key] from strategy, or leave the key out (the schema makes it optional)."""
    if draw(st.booleans()):
        d[key] = draw(strategy)


offsets = st.integers(0, 10**6)
methods = st.sampled_from(["extractive", "generated"])


@st.composite
def evidence_items(draw):
    e = {"text": draw(texts), "start": draw(offsets), "end": draw(offsets), "score": draw(numbers)}
    maybe(draw, e, "words", text_lists)
    maybe(draw, e, "quoted", st.booleans())
    e.update(draw(unknown))
    return e


@st.composite
def spans(draw):
    """A cited sentence of a summary, answer or goal: the score is optional."""
    e = {"text": draw(texts), "start": draw(offsets), "end": draw(offsets)}
    maybe(draw, e, "score", numbers)
    e.update(draw(unknown))
    return e


span_lists = st.lists(spans(), max_size=2)


@st.composite
def summaries(draw):
    s = {"text": draw(texts), "method": draw(methods)}
    maybe(draw, s, "evidence", span_lists)
    s.update(draw(unknown))
    return s


@st.composite
def entity_items(draw):
    e = {"name": draw(texts)}
    maybe(draw, e, "mentions", st.one_of(st.integers(1, 3), st.integers(1, 10**6)))
    maybe(draw, e, "spans", st.lists(st.fixed_dictionaries({"start": offsets, "end": offsets}).flatmap(
        lambda sp: unknown.map(lambda u: {**sp, **u})), max_size=3))
    e.update(draw(unknown))
    return e


@st.composite
def entity_groups(draw):
    e = {}
    for kind in ("people", "organisations", "locations"):
        maybe(draw, e, kind, st.lists(entity_items(), max_size=3))
    e.update(draw(unknown))
    return e


@st.composite
def key_questions(draw):
    q = {"question": draw(texts), "answer": draw(texts), "method": draw(methods)}
    maybe(draw, q, "evidence", span_lists)
    q.update(draw(unknown))
    return q


evidence_lists = st.lists(evidence_items(), max_size=2)


@st.composite
def concepts(draw):
    out = []
    order = list(draw(st.permutations(CONCEPTS)))
    if draw(st.booleans()):
        order.append(draw(st.sampled_from(CONCEPTS)))  # the schema allows more than four
    for concept in order:
        c = {"concept": concept, "score": draw(scores), "evidence": draw(evidence_lists)}
        maybe(draw, c, "label", st.one_of(st.just(CONCEPT_LABELS[concept]), texts))
        maybe(draw, c, "expected_score", expected_scores)
        maybe(draw, c, "distribution", distributions)
        maybe(draw, c, "explanation", opt_texts)
        c.update(draw(unknown))
        out.append(c)
    return out


@st.composite
def sdgs(draw):
    goal = draw(st.integers(1, 17))
    s = {"goal": goal, "name": draw(st.one_of(st.just(SDG_NAMES[goal]), texts)), "probability": draw(probs)}
    maybe(draw, s, "polarity", polarities)
    maybe(draw, s, "relevance", relevances)
    maybe(draw, s, "explanation", opt_texts)
    maybe(draw, s, "evidence", span_lists)
    s.update(draw(unknown))
    return s


@st.composite
def extras(draw, n_sdgs: int):
    e = {}
    maybe(draw, e, "summary", opt_texts)
    maybe(draw, e, "headlines", headline_lists)
    maybe(draw, e, "tags", tag_dicts)
    maybe(draw, e, "key_questions", qa_lists)
    maybe(draw, e, "sdg_explanations", st.lists(opt_texts, min_size=n_sdgs, max_size=n_sdgs))
    e.update(draw(st.dictionaries(texts, json_values, max_size=2)))
    return e


@st.composite
def cards(draw):
    # a 1.0 card may carry 1.1 fields too (the schema allows it); its text keeps them as Other Fields
    card = {"schema_version": draw(st.sampled_from(["1.0", "1.1", "1.1"]))}
    for key in ("id", "title", "source", "language"):
        maybe(draw, card, key, opt_texts)
    model = {"name": draw(st.one_of(st.just("human"), texts)), "version": draw(st.one_of(st.just("seed"), texts))}
    maybe(draw, model, "heads", text_lists)
    model.update(draw(unknown))
    card["model"] = model
    card["cognitive_concepts"] = draw(concepts())
    card["sdgs"] = draw(st.lists(sdgs(), max_size=3))
    card["topics"] = [
        {"label": draw(texts), "probability": draw(probs), **draw(unknown)} for _ in range(draw(st.integers(0, 3)))
    ]
    maybe(draw, card, "political_leaning", leanings)
    maybe(draw, card, "summary", st.one_of(st.none(), summaries()))
    maybe(draw, card, "entities", st.one_of(st.none(), st.just({}), entity_groups()))
    maybe(draw, card, "key_questions", st.lists(key_questions(), max_size=3))
    maybe(draw, card, "warnings", text_lists)
    if draw(st.integers(0, 3)) > 0:
        card["extra"] = draw(st.one_of(extras(len(card["sdgs"])), json_values))
    card.update(draw(unknown))
    return card


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cards())
def test_render_parse_round_trip(card):
    validate(card)  # the strategy makes schema-valid cards
    text = render_text(card)
    back = parse_text(text)
    assert same(back, normalize(card)), text
    assert render_text(back) == text


@settings(max_examples=40, deadline=None)
@given(cards())
def test_html_renders_any_card(card):
    page = render_html(card)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page


def test_normalize_fills_optional_fields():
    card = _minimal()
    n = normalize(card)
    assert n["title"] is None and n["political_leaning"] is None
    assert n["cognitive_concepts"][0]["label"] == "Framing Bias"
    assert n["cognitive_concepts"][0]["explanation"] is None
    assert "label" not in card["cognitive_concepts"][0]  # the input is left alone
    assert same(parse_text(render_text(card)), n)


def test_render_refuses_an_invalid_card(seed):
    bad = copy.deepcopy(seed)
    bad["cognitive_concepts"][1]["score"] = 7
    with pytest.raises(CardError, match=r"^cognitive_concepts\[1\]\.score: 7 is greater than the maximum of 5"):
        render_text(bad)
    with pytest.raises(CardError, match=r"cognitive_concepts\[1\]\.score"):
        render_html(bad)


def test_evidence_layout_is_readable():
    card = _minimal()
    card["cognitive_concepts"][1].update(
        expected_score=2.4,
        distribution=[0.1, 0.5, 0.3, 0.1, 0.0],
        evidence=[{"text": "a brutal crackdown", "start": 10, "end": 28, "score": 0.87, "words": ["brutal"]}],
    )
    text = render_text(card)
    assert "Expected score: 2.4\nDistribution: [0.1, 0.5, 0.3, 0.1, 0.0]\n" in text
    assert "Evidence 10-28 (0.87): a brutal crackdown\nBiased words: brutal\n" in text
    assert same(parse_text(text), normalize(card))


# ---------------------------------------------------------------- html


def test_html_escapes_and_shows_scores(seed):
    card = copy.deepcopy(seed)
    card["title"] = '<script>alert("x")</script> & co'
    card["cognitive_concepts"][1]["evidence"] = [
        {"text": "a <b>brutal</b> crackdown", "start": 0, "end": 25, "score": 0.9, "words": ["brutal", "crackdown"]}
    ]
    card["political_leaning"] = {"label": "center", "distribution": {"left": 0.2, "center": 0.7, "right": 0.1}}
    page = render_html(card)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co" in page
    assert "a &lt;b&gt;<mark>brutal</mark>&lt;/b&gt; <mark>crackdown</mark>" in page
    for concept, score in (("framing_bias", 2), ("language_bias", 1), ("bias_by_omission", 3), ("false_dichotomy", 3)):
        block = page.split(f'id="{concept}"')[1].split('class="concept"')[0]
        assert f"{score}/5" in block
        assert len(re.findall(r'<span class="on">', block)) == score
    assert "SDG 16: Peace, Justice and Strong Institutions" in page and "Positive" in page
    assert "Direct relevance" in page
    assert "Data Privacy" in page and "Center" in page and "europe.chinadaily.com.cn" in page
    # self-contained: no external stylesheets, scripts or images
    assert not re.search(r'(src|href)=', page)


# ---------------------------------------------------------------- cli


def test_cli_parse_and_render(tmp_path, capsys):
    from biascard.cli import main

    out = tmp_path / "seed.json"
    assert main(["card", "parse", str(SEED_PATH), "-o", str(out)]) == 0
    card = json.loads(out.read_text())
    validate(card)
    assert card["title"] == "China Cracks Down on Illegal Use of Facial Recognition Data"
    assert main(["card", "parse", str(SEED_PATH)]) == 0
    assert json.loads(capsys.readouterr().out) == card
    txt, page = tmp_path / "seed.txt", tmp_path / "seed.html"
    assert main(["card", "render", str(out), "--format", "text", "-o", str(txt)]) == 0
    assert same(parse_text(txt.read_text()), card)
    assert main(["card", "render", str(out), "--format", "html", "-o", str(page)]) == 0
    assert "<mark>" not in page.read_text() and "2/5" in page.read_text()


def test_cli_errors_are_one_line(tmp_path, capsys):
    from biascard.cli import main

    bad = tmp_path / "bad.txt"
    bad.write_text(SEED_PATH.read_text().replace("\n2/5\n", "\ntwo/5\n"))
    assert main(["card", "parse", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"biascard: error: {bad}:25: expected a score like '2/5' (or '-/5' for none), got 'two/5'"
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": "1.0",\n "model": }')
    assert main(["card", "render", str(broken)]) == 2
    assert f"{broken}:2: invalid JSON" in capsys.readouterr().err
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({**_minimal(), "topics": [{"label": "x", "probability": 2}]}))
    assert main(["card", "render", str(invalid), "--format", "html"]) == 2
    assert "topics[0].probability: 2 is greater than the maximum of 1" in capsys.readouterr().err


def test_title_with_a_leading_bom_survives_the_text_layout():
    # found by the round-trip property: the parser drops a file's BOM, so a value starting with
    # one must be written as JSON
    card = {**_minimal(), "title": "\ufeffbom"}
    assert parse_text(render_text(card))["title"] == "\ufeffbom"


def test_schema_1_1_is_shipped_and_1_0_cards_stay_valid():
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["properties"]["schema_version"]["enum"] == ["1.0", "1.1"]
    validate(_minimal())  # a 1.0 card
    card_1_1 = {**_minimal(), "schema_version": "1.1", "summary": None, "entities": {"people": []}, "key_questions": [],
                "warnings": []}
    try:
        validate(card_1_1)
    except CardError as e:  # the 1.1 fields' exact shapes are the schema's; name them if this breaks
        pytest.fail(f"minimal 1.1 card rejected: {e}")
    with pytest.raises(CardError):
        validate({**_minimal(), "schema_version": "2.0"})
