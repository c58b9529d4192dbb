"""Each composer.runtime flag (configs/serve.yaml): its speed ratio against the baseline,
measured side by side, and its metric cost.

Speed: composers that differ only in the flag compose the same AllSides test articles
(500-700 words, one call, as a server micro-batch) in interleaved rounds; ratio = median
baseline time / median variant time. The baseline has every flag off (unsorted batches,
no_grad, fp32, 2 threads).
Numerics: max |delta probability| against the baseline on those articles, and whether the
cards come out the same.
Metrics (needs a trained model, --model DIR): per dataset and head, the validation
macro-F1 (token heads: F1) of the same model with and without each precision flag, on a
seeded sample of each validation split (--max-records, --max-doc-records). A flag that
costs more than 1 point on any head stays off by default. The other flags do not change a
single card (checked above), so they cannot move a metric.

  python bench/optimisations.py [--model DIR] [--articles 4] [--rounds 5] [--bf16]
"""
from __future__ import annotations

import argparse
import contextlib
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

OFF = {"length_sorted": False, "inference_mode": False, "precision": "fp32"}
ON = {"length_sorted": True, "inference_mode": True, "precision": "fp32"}


def speed_variants(with_bf16: bool) -> dict[str, tuple[dict, int]]:
    """label -> (runtime flags, threads)."""
    v = {
        "baseline (all off)": (OFF, 2),
        "+ length_sorted": ({**OFF, "length_sorted": True}, 2),
        "+ inference_mode": ({**OFF, "inference_mode": True}, 2),
        "+ int8": ({**OFF, "precision": "int8"}, 2),
        "sorted + inference_mode (shipped)": (ON, 2),
        "shipped, 1 thread": (ON, 1),
        "shipped + int8": ({**ON, "precision": "int8"}, 2),
    }
    if with_bf16:
        v["+ bf16 weights"] = ({**OFF, "precision": "bf16"}, 2)
        v["+ bf16 autocast"] = ({**OFF, "precision": "bf16_autocast"}, 2)
    return v


def max_prob_diff(a: dict, b: dict) -> float:
    import numpy as np

    return max((float(np.abs(a["probs"][h] - b["probs"][h]).max()) for h in a["probs"]), default=0.0)


# ---------------------------------------------------------------- metrics


def validation_records(names: list[str], heads: set[str], max_records: int, max_doc_records: int, seed: int):
    from biascard.data.prepare import prepare

    out = {}
    for name in names:
        val = prepare(name)["validation"]
        rows = [r for r in val if any(v is not None for h, v in (r["labels"] or {}).items() if h in heads)]
        if not rows:
            continue
        cap = max_doc_records if rows[0]["unit"] != "sentence" else max_records
        if cap and len(rows) > cap:
            rows = random.Random(seed).sample(rows, cap)
        out[name] = rows
    return out


def known_labels_only(records: list[dict], specs: dict) -> tuple[list[dict], int]:
    """Records with label values outside a head's label set removed (a model trained on a
    capped sample may lack rare ones); the same records go to every variant."""
    out, dropped = [], 0
    for r in records:
        labels = dict(r["labels"] or {})
        for h, spec in specs.items():
            v = labels.get(h)
            if v is None or spec.type in ("binary", "token", "regression", "ordinal"):
                continue
            known = set(spec.labels)
            if spec.type == "multilabel":
                kept = [x for x in v if str(x) in known]
                dropped += len(v) - len(kept)
                labels[h] = kept
            elif str(v) not in known:
                labels[h] = None
                dropped += 1
        out.append({**r, "labels": labels})
    return out, dropped


def evaluate(model, tokenizer, records: list[dict], precision: str, batch_tokens: int = 8192) -> dict[str, float]:
    """`val/{head}/{metric}` of `model` (already prepared for `precision`) on `records`."""
    import torch

    from biascard.compose.runtime import length_groups
    from biascard.train.evaluation import aggregate
    from biascard.model.features import encode

    specs = model.config.head_specs()
    cfg = model.config
    logits: dict[str, list] = {h: [] for h in specs}
    labels: dict[str, list] = {h: [] for h in specs}
    groups = length_groups(tokenizer, [r["text"] for r in records], cfg.max_length, cfg.stride, batch_tokens)
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16_autocast" else contextlib.nullcontext()
    with torch.inference_mode(), cast:
        for g in groups:
            part = [records[i] for i in g]
            batch = encode(part, tokenizer, specs, cfg.max_length, cfg.stride, with_labels=True,
                           max_chunks=cfg.max_chunks)  # the chunks eval and serve read
            y = batch.pop("labels")
            out = model(**batch)
            for h in specs:
                if h in y:
                    logits[h].append(out.logits[h].float())
                    labels[h].append(y[h])
    return aggregate(specs, logits, labels)  # heads without a labeled row here report nothing


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a trained model dir; without it the speed part runs on an untrained "
                    "MiniLM model and the metric part is skipped")
    ap.add_argument("--articles", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bf16", choices=["auto", "on", "off"], default="auto",
                    help="bf16 variants (auto: only when the CPU has native bf16; emulated bf16 is slow)")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--metrics", choices=["auto", "on", "off"], default="auto",
                    help="auto: only with --model (an untrained model's F1 says nothing)")
    ap.add_argument("--datasets", nargs="+", default=None, help="validation sets (default: configs/data/all.yaml)")
    ap.add_argument("--max-records", type=int, default=200, help="per sentence-level validation set")
    ap.add_argument("--max-doc-records", type=int, default=100, help="per article-level validation set")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)

    import torch
    from transformers.utils import logging as hf_logging

    from biascard.compose.runtime import native_bf16
    from biascard.model.model_dir import load as load_model_dir

    hf_logging.disable_progress_bar()
    torch.set_num_threads(2)
    with_bf16 = args.bf16 == "on" or (args.bf16 == "auto" and native_bf16())
    do_metrics = args.metrics == "on" or (args.metrics == "auto" and args.model)
    # the metric part alone keeps its own results file beside the speed table
    name = "optimisations-metrics" if args.skip_speed else "optimisations"
    with common.report(name, argv, save=not args.no_save, script="optimisations"):
        model_dir = Path(args.model) if args.model else common.default_model_dir()
        model, tok = load_model_dir(model_dir)
        print(f"model: {model_dir}{'' if args.model else ' (untrained: speed only)'}")
        if not with_bf16:
            print("bf16 variants skipped: this CPU has no native bf16 (AVX512-BF16/AMX), so bf16 is emulated "
                  "and several times slower than fp32 (bench/roofline.py); --bf16 on forces them")
        if not args.skip_speed:
            speed(model, tok, args, with_bf16)
        if not do_metrics:
            print("\nmetric deltas: skipped (no --model). They need a trained model, and none exists in this "
                  "checkout yet: run `python bench/optimisations.py --model <run>/model` (e.g. the demo's quick model).")
        else:
            metric_deltas(model, tok, args, with_bf16)


def speed(model, tok, args, with_bf16: bool) -> None:
    """Cards/s of every runtime variant in interleaved rounds, with its encoder work and how far
    its cards and probabilities are from the baseline's."""
    import torch

    from biascard.compose.sentences import split_sentences

    arts = common.article_objects(common.articles(args.articles))
    variants = speed_variants(with_bf16)
    composers = {k: common.make_composer(model, tok, rt) for k, (rt, _) in variants.items()}
    threads = {k: t for k, (_, t) in variants.items()}

    def run(k):
        torch.set_num_threads(threads[k])
        try:
            return composers[k].compose(arts)
        finally:
            torch.set_num_threads(2)

    # numerics first (also the warm-up): same cards? how far apart are the probabilities?
    base_c = composers["baseline (all off)"]
    sents = [s.text for a in arts for s in split_sentences(a.text)]
    docs = [base_c.document_text(a) for a in arts]
    ref_cards = run("baseline (all off)")
    ref_s = base_c.forward(sents, offsets=False)
    ref_d = base_c.forward(docs, offsets=False, max_chunks=base_c.max_chunks)  # as compose's document pass
    same, diff = {}, {}
    for k, c in composers.items():
        same[k] = run(k) == ref_cards
        diff[k] = max(max_prob_diff(ref_s, c.forward(sents, offsets=False)),
                      max_prob_diff(ref_d, c.forward(docs, offsets=False, max_chunks=c.max_chunks)))
    work = {}
    for k, c in composers.items():
        w = common.encoder_work(c, arts)
        work[k] = (sum(v[3] for v in w.values()) / len(arts), sum(v[4] for v in w.values()) / len(arts))
    print(f"{len(arts)} articles ({len(sents)} sentences) per call; {args.rounds} interleaved rounds:")
    times = common.interleaved({k: (lambda k=k: run(k)) for k in composers}, args.rounds, warmup=0)
    base = common.median(times["baseline (all off)"])
    shipped = common.median(times["sorted + inference_mode (shipped)"])
    rows = []
    for k in composers:
        t = common.median(times[k])
        rows.append([k, f"{len(arts) / t:.3f}", f"{base / t:.2f}x", f"{shipped / t:.2f}x",
                     f"{work[k][0]:.0f}", f"{work['baseline (all off)'][1] / work[k][1]:.2f}x",
                     "yes" if same[k] else "no", f"{diff[k]:.1e}"])
    print()
    print(common.table(rows, ["variant", "cards/s", "vs baseline", "vs shipped", "padded tokens/article",
                               "fewer FLOPs", "same cards", "max |dp|"]))
    print("(medians of interleaved rounds; padded tokens and FLOPs: the encoder work of both passes, "
          "deterministic; max |dp|: largest probability change of any head, sentences and documents, "
          "against the baseline)")


def metric_deltas(model, tok, args, with_bf16: bool) -> None:
    """Validation macro-F1 of every precision against fp32, per dataset and head."""
    from omegaconf import OmegaConf

    from biascard.compose.runtime import prepare_model

    names = args.datasets or list(OmegaConf.load(common.REPO / "configs" / "data" / "all.yaml").datasets)
    recs = validation_records(names, set(model.config.head_specs()), args.max_records,
                              args.max_doc_records, args.seed)
    dropped = 0
    for name in recs:
        recs[name], d = known_labels_only(recs[name], model.config.head_specs())
        dropped += d
    if dropped:
        print(f"label values unknown to the model, ignored: {dropped}")
    precisions = ["fp32", "int8"] + (["bf16", "bf16_autocast"] if with_bf16 else [])
    models = {p: prepare_model(model, p) for p in precisions}
    print(f"\nmetrics: validation samples {', '.join(f'{n} {len(r)}' for n, r in recs.items())} (seed {args.seed})")
    scores = {p: {} for p in precisions}
    for name, rows in recs.items():
        for p in precisions:
            scores[p][name] = evaluate(models[p], tok, rows, p)
        print(f"  {name} done  [{common.load_line('now').split(': ')[1]}]", flush=True)
    table_rows, verdict = [], {}
    for name in recs:
        for key, v in sorted(scores["fp32"][name].items()):
            head, _, metric = key.removeprefix("val/").partition("/")
            if metric not in ("macro_f1", "f1"):
                continue
            row = [name, head, metric, f"{100 * v:.1f}"]
            for p in precisions[1:]:
                d = 100 * (scores[p][name][key] - v)
                verdict[p] = min(verdict.get(p, 0.0), d)
                row.append(f"{d:+.1f}")
            table_rows.append(row)
    print()
    print(common.table(table_rows, ["dataset", "head", "metric", "fp32", *[f"{p} delta (pts)" for p in precisions[1:]]]))
    for p in precisions[1:]:
        worst = verdict.get(p, 0.0)
        print(f"{p}: worst head delta {worst:+.1f} points -> "
              + ("costs more than 1 point: stays off by default" if worst < -1.0 else "within 1 point"))


if __name__ == "__main__":
    main()
