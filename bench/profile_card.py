"""Where the time of a card goes: a server-size batch of ~600-word AllSides articles composed
with the shipped settings, profiled three ways:
  1. shares of the composer's stages (sentence pass, document pass, everything else),
     measured side by side in the same run;
  2. torch.profiler: the operators, by self CPU time;
  3. cProfile: the Python functions, by cumulative time.
Plus the encoder work per article (real and padded tokens, GFLOPs), which bounds throughput.

  python bench/profile_card.py [--model DIR] [--articles 8] [--runtime key=value ...]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a model dir (default: an untrained MiniLM model with the default heads)")
    ap.add_argument("--articles", type=int, default=8, help="the server's max_batch_size")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runtime", nargs="*", default=[], metavar="KEY=VALUE", help="composer.runtime overrides")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)

    import torch
    from omegaconf import OmegaConf
    from transformers.utils import logging as hf_logging

    from biascard.model.model_dir import load as load_model_dir

    hf_logging.disable_progress_bar()
    torch.set_num_threads(2)
    runtime = OmegaConf.to_container(OmegaConf.from_dotlist(args.runtime)) if args.runtime else {}
    with common.report("profile_card", argv, save=not args.no_save):
        model_dir = Path(args.model) if args.model else common.default_model_dir()
        model, tok = load_model_dir(model_dir)
        composer = common.make_composer(model, tok, runtime)
        arts = common.article_objects(common.articles(args.articles))
        print(f"model: {model_dir}; runtime {composer.runtime}; {len(arts)} articles in one compose call")
        total_flops = work_table(composer, arts)
        stage_shares(composer, arts, args.rounds, total_flops)
        operators(composer, arts)


def work_table(composer, arts) -> float:
    """Print the encoder work per article, as the composer batches it; return its FLOPs per article."""
    work = common.encoder_work(composer, arts)
    rows = [[k, n, g, f"{r / len(arts):.0f}", f"{p / len(arts):.0f}", f"{f / len(arts) / 1e9:.1f}"]
            for k, (n, g, r, p, f) in work.items()]
    total_flops = sum(w[4] for w in work.values()) / len(arts)
    rows.append(["total", "", "", f"{sum(w[2] for w in work.values()) / len(arts):.0f}",
                 f"{sum(w[3] for w in work.values()) / len(arts):.0f}", f"{total_flops / 1e9:.1f}"])
    print()
    print(common.table(rows, ["pass", "texts", "batches", "real tokens/article", "padded tokens/article",
                               "GFLOP/article"]))
    return total_flops


def stage_shares(composer, arts, rounds: int, total_flops: float) -> None:
    """1. The forward passes' and the rest's shares of a compose call, side by side."""
    stamps: dict[str, list[float]] = {"sentence pass": [], "document pass": []}
    orig = composer.forward

    def timed_forward(texts, *, offsets, **kwargs):
        t = time.perf_counter()
        try:
            return orig(texts, offsets=offsets, **kwargs)
        finally:
            # compose passes the documents last, one text per article, without offsets
            doc = not offsets and len(texts) == len(current)
            stamps["document pass" if doc else "sentence pass"].append(time.perf_counter() - t)

    composer.forward = timed_forward
    current = arts[:1]
    composer.compose(current)  # warm-up
    current = arts
    for k in stamps:
        stamps[k].clear()
    totals, rests = [], []
    for r in range(rounds):
        t = time.perf_counter()
        composer.compose(arts)
        totals.append(time.perf_counter() - t)
        rests.append(totals[-1] - sum(v[-1] for v in stamps.values() if v))  # a one-pass model has no document pass
        print(f"  round {r + 1}/{rounds}: {totals[-1]:.2f}s  [{common.load_line('now').split(': ')[1]}]",
              flush=True)
    composer.forward = orig
    total = common.median(totals)
    shares = {k: common.median(v) for k, v in stamps.items() if v}
    rest = common.median(rests)
    print()
    print(common.table([[k, f"{v:.2f}", f"{100 * v / total:.0f}%"] for k, v in
                         [*shares.items(), ("splitting, card building, validation", rest), ("total", total)]],
                        ["stage", "s (median)", "share"]))
    print("(medians per stage over rounds, so the shares need not add up to 100%)")
    achieved = total_flops * len(arts) / total
    print(f"{len(arts) / total:.3f} cards/s; encoder {achieved / 1e9:.1f} GFLOP/s achieved over the whole compose call")


def operators(composer, arts) -> None:
    """2. torch operators and 3. Python functions of one compose call."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        composer.compose(arts)
    print("\ntorch.profiler, top operators by self CPU time:")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=40))

    pr = cProfile.Profile()
    pr.enable()
    composer.compose(arts)
    pr.disable()
    buf = io.StringIO()
    pstats.Stats(pr, stream=buf).sort_stats("cumulative").print_stats(25)
    print("cProfile, top 25 by cumulative time:")
    print("\n".join(line for line in buf.getvalue().splitlines() if line.strip())[:6000])


if __name__ == "__main__":
    main()
