"""What a training recipe costs on this machine: time and peak memory per step, projected to the run.

Runs the real loop (`biascard.train.loop.train`) with the recipe's own Hydra overrides for
--steps optimizer steps (no checkpoints, no model dir, no threshold fit), one log row per
step. Reads CPU-seconds and wall seconds per step from its metrics.jsonl, the recipe's steps
per epoch from its "mixture per epoch" row, and the process's peak resident memory.

Projection = the recipe's total steps (trainer.max_steps, else max_epochs x steps per epoch)
x the mean CPU-seconds per step, with a ±2 standard-error band: step costs vary a lot
(a micro-batch of articles is up to max_chunks windows per record). Evaluation passes come
on top. One pass is timed on --eval-records validation records of every dataset (drawn as the
loop draws its capped subsets) and scaled by validation tokens; it is wall time, so run this
on a quiet core.

  .venv/bin/python bench/train_cost.py experiment=full --steps 12 --threads 2 --tag full
  .venv/bin/python bench/train_cost.py experiment=cpu --steps 100 --threads 1 --tag cpu
"""
from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import report  # noqa: E402


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module(config_module="biascard.configs", version_base="1.3"):
        return hydra_compose(config_name="train", overrides=overrides)


def validation_tokens(cfg, cap: int | None = None) -> int:
    """Tokens one evaluation pass of the loop reads: the recipe's validation subsets (or `cap`
    records per dataset, drawn as the loop draws them), windows capped at eval_max_chunks."""
    from biascard.data.prepare import prepare
    from biascard.model.modeling import load_tokenizer
    from biascard.train.datasets import dataset_caps, records, subset, token_lengths

    tok = load_tokenizer(cfg.model.encoder)
    chunks = cfg.data.get("eval_max_chunks", cfg.data.get("max_chunks"))
    caps = dataset_caps(cfg.data.get("eval_caps"))
    total = 0
    for name in cfg.data.datasets:
        val = subset(prepare(name)["validation"], cap or caps.get(name), int(cfg.trainer.seed) + 1)
        total += sum(token_lengths(tok, records(val), int(cfg.model.max_length), chunks))
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("overrides", nargs="*", help="the recipe, e.g. experiment=full")
    p.add_argument("--steps", type=int, default=30, help="timed optimizer steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--eval-records", type=int, default=16, help="validation records per dataset for the timed eval pass")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--tag", default=None, help="results go to bench/results/train_cost-<tag>.txt")
    args = p.parse_args()
    name = f"train_cost-{args.tag}" if args.tag else "train_cost"
    with report(name, argv=sys.argv[1:], script="train_cost"):
        run(args)


def run(args) -> None:
    from omegaconf import open_dict

    from biascard.train.logging import read_metrics
    from biascard.train.loop import train
    from biascard.train.optimization import planned_steps

    recipe = compose(list(args.overrides))
    tr = recipe.trainer
    out = tempfile.mkdtemp(prefix="bench-cost-")
    cfg = compose(list(args.overrides) + [
        f"paths.output_dir={out}", "logger=none", "save_model=false", "thresholds.types=[]",
        f"trainer.max_steps={args.steps + args.warmup}", "trainer.eval_every_n_steps=0",
        "trainer.checkpoint_every_n_steps=0", "trainer.log_every_n_steps=1",
        "trainer.early_stopping.patience=null",
    ] + ([f"trainer.num_threads={args.threads}"] if args.threads else []))
    with open_dict(cfg):
        # the loop evaluates once at its last step; keep that pass small and time it
        cfg.data.eval_caps = {n: args.eval_records for n in cfg.data.datasets}
    t0 = time.time()
    train(cfg)
    wall = time.time() - t0
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    rows = read_metrics(os.path.join(out, "metrics.jsonl"))
    steps = [r for r in rows if r["split"] == "train" and r["step"] > args.warmup]
    mix = next(r for r in rows if "steps_per_epoch" in r)
    val = next(r for r in rows if r["split"] == "val")
    cpu = [r["step_cpu_s"] for r in steps]
    wall_steps = [r["step_time_s"] for r in steps]
    mean = statistics.fmean(cpu)
    se = statistics.stdev(cpu) / math.sqrt(len(cpu)) if len(cpu) > 1 else float("nan")
    per_epoch = int(mix["steps_per_epoch"])
    total = planned_steps(tr, int(mix["batches_per_epoch"]))
    every = int(tr.eval_every_n_steps or 0)
    passes = (total // every if every else 0) + (0 if every and total % every == 0 else 1)
    eval_scale = validation_tokens(recipe) / max(1, validation_tokens(recipe, args.eval_records))
    eval_pass = float(val["val/time_s"]) * eval_scale

    print(f"recipe: {' '.join(args.overrides) or '(defaults)'}; batch {tr.batch_size} x grad_accum {tr.grad_accum}, "
          f"max_length {recipe.model.max_length}, max_chunks {recipe.data.get('max_chunks')}, "
          f"threads {args.threads or 'default'}")
    print(f"mixture per epoch: {mix['mixture']}; {per_epoch} steps/epoch, {total} steps in the run")
    print(f"timed steps: {len(cpu)} (after {args.warmup} untimed); CPU-s/step mean {mean:.2f} ± {se:.2f} (1 SE), "
          f"median {statistics.median(cpu):.2f}, max {max(cpu):.2f}; wall s/step mean {statistics.fmean(wall_steps):.2f}")
    print(f"peak resident memory of the process: {peak_gib:.1f} GiB")
    lo, hi = (mean - 2 * se) * total / 3600, (mean + 2 * se) * total / 3600
    print(f"projected training: {mean * total / 3600:.1f} CPU-hours [{lo:.1f}, {hi:.1f}] for {total} steps")
    print(f"evaluation: {passes} pass(es) of about {eval_pass / 60:.0f} min wall each "
          f"({val['val/time_s']:.1f} s for {args.eval_records} records/dataset x {eval_scale:.0f} by validation tokens)")
    print(f"bench wall time {wall:.0f} s")


if __name__ == "__main__":
    main()
