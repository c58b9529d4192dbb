"""The whole card (biascard/compose/composer.py) against the naive pipeline: one `transformers` pipeline
per head, each its own MiniLM encoder pass, on the same ~600-word AllSides articles.

Naive: per head an AutoModelForSequenceClassification (AutoModelForTokenClassification and a
token-classification pipeline for the token head) on the MiniLM encoder with that head's
number of labels; sentence heads run over every sentence (same splitter as the composer),
document heads over "title\\n\\nbody" truncated to the tokenizer's 512 tokens. Pipelines run
as shipped (batch_size 1) and, for reference, with batch_size=--naive-batch.
Ours: the composer with the shipped settings, one article per call and all in one call.
All variants run in interleaved rounds; cards/s are medians over rounds.

  python bench/naive_pipeline.py [--model DIR] [--articles 2] [--rounds 2] [--naive-batch 16]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def build_naive(specs: dict, encoder_dir: str):
    """head -> (pipeline, level, call kwargs): one full model per head."""
    from transformers import (AutoModelForSequenceClassification, AutoModelForTokenClassification,
                              AutoTokenizer, pipeline)

    tok = AutoTokenizer.from_pretrained(encoder_dir)
    out = {}
    for name, spec in specs.items():
        if spec.is_token:
            model = AutoModelForTokenClassification.from_pretrained(encoder_dir, num_labels=2)
            pipe = pipeline("token-classification", model=model, tokenizer=tok, device="cpu")
            kwargs = {}
        else:
            problem = "multi_label_classification" if spec.type == "multilabel" else "single_label_classification"
            model = AutoModelForSequenceClassification.from_pretrained(
                encoder_dir, num_labels=max(2, spec.num_outputs), problem_type=problem)
            pipe = pipeline("text-classification", model=model, tokenizer=tok, device="cpu")
            kwargs = {"top_k": None, "truncation": True}
            if spec.type == "multilabel":
                kwargs["function_to_apply"] = "sigmoid"
        model.eval()
        out[name] = (pipe, spec.level, kwargs)
    return out


def naive_flops(naive: dict, tok, cfg, arts: list[dict], batch_size: int) -> float:
    """Encoder FLOPs per article of the naive side: every head encodes every sentence (padded
    per batch of `batch_size` consecutive sentences), document heads the first 512 tokens."""
    from biascard.compose.sentences import split_sentences

    total = 0.0
    n_sent = sum(level == "sentence" for _, level, _ in naive.values())
    n_doc = len(naive) - n_sent
    for a in arts:
        lens = [len(x) for x in tok([s.text for s in split_sentences(a["text"])], truncation=True)["input_ids"]]
        per_head = sum(len(lens[i:i + batch_size]) * common.encoder_flops(cfg, max(lens[i:i + batch_size]))
                       for i in range(0, len(lens), batch_size))
        doc = f"{a['title']}\n\n{a['text']}" if a["title"] else a["text"]
        total += n_sent * per_head + n_doc * common.encoder_flops(cfg, len(tok(doc, truncation=True)["input_ids"]))
    return total / len(arts)


def naive_cards(naive: dict, arts: list[dict], batch_size: int) -> list[dict]:
    from biascard.compose.sentences import split_sentences

    cards = []
    for a in arts:
        sents = [s.text for s in split_sentences(a["text"])]
        doc = f"{a['title']}\n\n{a['text']}" if a["title"] else a["text"]
        card = {}
        for name, (pipe, level, kwargs) in naive.items():
            card[name] = pipe(sents if level == "sentence" else [doc], batch_size=batch_size, **kwargs)
        cards.append(card)
    return cards


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a model dir (default: an untrained MiniLM model with the default heads)")
    ap.add_argument("--articles", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--naive-batch", type=int, default=16, help="0 skips the batched naive variant")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tag", default="", help="results file bench/results/naive_pipeline[-TAG].txt")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)

    import torch
    import transformers
    from transformers.utils import logging as hf_logging

    from biascard.model.modeling import resolve_encoder
    from biascard.model.model_dir import load as load_model_dir

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()  # "newly initialized weights" x14 is expected here
    torch.set_num_threads(args.threads)
    with common.report("naive_pipeline" + (f"-{args.tag}" if args.tag else ""), argv, save=not args.no_save):
        model_dir = Path(args.model) if args.model else common.default_model_dir()
        model, tok = load_model_dir(model_dir)
        composer = common.make_composer(model, tok)
        print(f"model: {model_dir} ({len(composer.specs)} heads: "
              f"{sum(s.level == 'sentence' for s in composer.specs.values())} sentence, "
              f"{sum(s.level == 'document' for s in composer.specs.values())} document); composer runtime "
              f"{composer.runtime}; transformers {transformers.__version__}")
        arts = common.articles(args.articles)
        objs = common.article_objects(arts)
        from biascard.compose.sentences import split_sentences

        n_sent = sum(len(split_sentences(a["text"])) for a in arts)
        print(f"articles: {len(arts)} AllSides test articles, {sum(len(a['text'].split()) for a in arts) / len(arts):.0f} "
              f"words and {n_sent / len(arts):.1f} sentences on average")
        enc = (model.config.encoder or {}).get("_name_or_path")
        enc = enc if enc and Path(enc).is_dir() else resolve_encoder("minilm")  # the naive side's encoder
        naive = build_naive(composer.specs, enc)
        print(f"naive: {len(naive)} pipelines on {enc}")

        time_variants(composer, naive, arts, objs, args.naive_batch, args.rounds)
        print()
        flops_table(composer, naive, tok, arts, objs, args.naive_batch)


def time_variants(composer, naive: dict, arts: list[dict], objs, naive_batch: int, rounds: int) -> None:
    """Interleaved rounds of the naive pipelines and ours over `arts`; prints cards/s and ratios."""
    variants = {
        "naive pipelines (batch_size 1)": lambda xs: naive_cards(naive, xs, 1),
        "ours, 1 article per call": lambda xs: [composer.compose([o]) for o in xs],
        "ours, all articles in one call": lambda xs: composer.compose(xs),
    }
    if naive_batch:
        variants[f"naive pipelines (batch_size {naive_batch})"] = lambda xs: naive_cards(naive, xs, naive_batch)
    objs_of = dict(zip([a["id"] for a in arts], objs))

    def call(name, xs):
        return variants[name](xs if name.startswith("naive") else [objs_of[a["id"]] for a in xs])

    # warm-up on a short piece of one article (a whole one costs the naive side a minute)
    short = [{**arts[0], "id": "warm-up", "text": " ".join(arts[0]["text"].split()[:80])}]
    objs_of["warm-up"] = common.article_objects(short)[0]
    for name in variants:
        call(name, short)

    print(f"{rounds} interleaved rounds over {len(arts)} articles:")
    times = common.interleaved({n: (lambda n=n: call(n, arts)) for n in variants}, rounds, warmup=0)
    base = common.median(times["naive pipelines (batch_size 1)"])
    batched = f"naive pipelines (batch_size {naive_batch})"
    rows = []
    for name, ts in times.items():
        t = common.median(ts)
        row = [name, f"{len(arts) / t:.3f}", f"{t / len(arts):.2f}", f"{base / t:.1f}x"]
        if batched in times:
            row.append(f"{common.median(times[batched]) / t:.1f}x")
        rows.append(row)
    print()
    print(common.table(rows, ["variant", "cards/s", "s/article", "vs naive (batch_size 1)",
                               *([f"vs naive (batch_size {naive_batch})"] if batched in times else [])]))
    print("(medians of interleaved rounds)")


def flops_table(composer, naive: dict, tok, arts: list[dict], objs, naive_batch: int) -> None:
    """The encoder FLOPs per article of ours against the naive pipelines'."""
    cfg = composer.model.config.encoder_config()
    ours = sum(w[4] for w in common.encoder_work(composer, objs).values()) / len(arts)
    flops = [["ours (one pass per chunk, length-sorted batches)", f"{ours / 1e9:.1f}", "1.0x"]]
    for bs in (1, naive_batch) if naive_batch else (1,):
        f = naive_flops(naive, tok, cfg, arts, bs)
        flops.append([f"naive pipelines (batch_size {bs})", f"{f / 1e9:.1f}", f"{f / ours:.1f}x"])
    print(common.table(flops, ["encoder work", "GFLOP/article", "vs ours"]))
    print("(analytic FLOPs of the padded batches each side runs; the speed ratio above exceeds this FLOP "
          "ratio by what batch-1 calls lose to small GEMMs, per-call overhead and thread synchronisation)")


if __name__ == "__main__":
    main()
