"""Continued masked-LM pre-training of the encoder on the project's news text (DA-RoBERTa's recipe).

`biascard train mlm --out DIR [--encoder minilm] [--datasets allsides mbic basil] [--steps 1000]`

Reads the *train* splits only (no validation/test text leaks into the encoder), cuts every
text into windows of `--max-length` tokens, masks 15% of the tokens (80/10/10, the
transformers collator) and trains `AutoModelForMaskedLM` with accelerate. The packaged
all-MiniLM-L6-v2 ships only `BertModel` weights: the MLM head's transform layer starts
random (its decoder is tied to the word embeddings), so `--head-warmup-steps` first trains the
head alone on a frozen encoder: gradients through a random head would only push noise into the
encoder. DIR gets the encoder alone
(`save_pretrained`, safetensors) plus its tokenizer, so `biascard train model.encoder=DIR`
fine-tunes from it.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np


def texts_of(names: list[str], **prepare_kwargs) -> list[str]:
    from biascard.data.prepare import prepare

    out = []
    for name in names:
        dsd = prepare(name, **prepare_kwargs)
        out += [t for t in dsd["train"]["text"] if t and t.strip()]
    return out


def windows(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Token id windows of at most max_length (special tokens included), no overlap."""
    out = []
    for start in range(0, len(texts), 1000):
        enc = tokenizer(texts[start : start + 1000], truncation=True, max_length=max_length,
                        return_overflowing_tokens=True, stride=0, verbose=False)
        out += [ids for ids in enc["input_ids"] if len(ids) > 4]
    return out


def masked_loss(model, head, batch):
    """Cross-entropy at the masked positions only. The vocabulary projection dominates the step
    (30k outputs per token), and only ~15% of the tokens carry a label."""
    import torch.nn.functional as F

    if head is None:  # an architecture whose MLM head we don't know: the full forward
        return model(**batch).loss
    labels = batch.pop("labels")
    hidden = model.base_model(**batch).last_hidden_state
    keep = labels != -100
    return F.cross_entropy(head(hidden[keep]), labels[keep])


def pretrain(out_dir, *, encoder="minilm", datasets=("allsides", "mbic", "basil"), steps: int = 1000,
             batch_size: int = 32, max_length: int = 128, lr: float = 5e-5, seed: int = 0,
             head_warmup_steps: int = 0, head_lr: float | None = None, num_threads: int | None = None,
             log=print, **prepare_kwargs) -> dict:
    import torch
    from accelerate import Accelerator
    from transformers import AutoModelForMaskedLM, DataCollatorForLanguageModeling, get_scheduler

    from biascard.model.modeling import load_tokenizer, resolve_encoder

    if num_threads:
        torch.set_num_threads(int(num_threads))
    torch.manual_seed(seed)
    src = resolve_encoder(encoder)
    tokenizer = load_tokenizer(encoder)
    data = windows(tokenizer, texts_of(list(datasets), **prepare_kwargs), max_length)
    if not data:
        raise ValueError(f"no train text in {list(datasets)}")
    model = AutoModelForMaskedLM.from_pretrained(src)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, return_tensors="pt")
    base_params = list(model.base_model.parameters())
    base_ids = {id(p) for p in base_params}
    head_params = [p for p in model.parameters() if id(p) not in base_ids]
    optimizer = torch.optim.AdamW([{"params": base_params, "lr": lr},
                                   {"params": head_params, "lr": head_lr or lr}], weight_decay=0.01)
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=max(1, steps // 20), num_training_steps=steps)
    acc = Accelerator(cpu=not torch.cuda.is_available())
    model, optimizer = acc.prepare(model, optimizer)
    head = next((getattr(model, a) for a in ("cls", "lm_head") if hasattr(model, a)), None)
    rng = np.random.default_rng(seed)
    order, pos = rng.permutation(len(data)), 0
    log(f"mlm: {len(data)} windows of <= {max_length} tokens from {list(datasets)} (train splits), {steps} steps")
    model.train()
    losses, t0 = [], time.time()
    for step in range(1, steps + 1):
        if step in (1, head_warmup_steps + 1):
            for p in base_params:  # frozen while the random head warms up (tied decoder included)
                p.requires_grad_(step > head_warmup_steps)
        if pos + batch_size > len(order):
            order, pos = rng.permutation(len(data)), 0
        batch = collator([{"input_ids": data[i]} for i in order[pos : pos + batch_size]])
        pos += batch_size
        loss = masked_loss(model, head, {k: v.to(acc.device) for k, v in batch.items()})
        acc.backward(loss)
        acc.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
        if step % 50 == 0 or step == steps:
            log(f"mlm step {step}/{steps}: loss {np.mean(losses[-50:]):.3f} ({time.time() - t0:.0f} s)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = acc.unwrap_model(model).base_model  # the encoder without the MLM head
    base.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    info = {"source_encoder": str(encoder), "datasets": list(datasets), "windows": len(data), "steps": steps,
            "head_warmup_steps": head_warmup_steps, "batch_size": batch_size, "max_length": max_length,
            "lr": lr, "head_lr": head_lr or lr, "seed": seed,
            "loss_first_50": float(np.mean(losses[:50])), "loss_last_50": float(np.mean(losses[-50:])),
            "elapsed_s": round(time.time() - t0, 1)}
    (out / "mlm.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    log(f"mlm: encoder saved to {out} (loss {info['loss_first_50']:.3f} -> {info['loss_last_50']:.3f})")
    return info


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="dir for the adapted encoder (use as model.encoder=DIR)")
    p.add_argument("--encoder", default="minilm", help="minilm, tiny, a Hugging Face id or a local path")
    p.add_argument("--datasets", nargs="+", default=["allsides", "mbic", "basil"])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--head-warmup-steps", type=int, default=0,
                   help="first steps train only the MLM head (the encoder frozen); counted in --steps")
    p.add_argument("--head-lr", type=float, default=None, help="learning rate of the MLM head (default: --lr)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-threads", type=int, default=None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="biascard train mlm", description=__doc__.splitlines()[0])
    add_arguments(p)
    args = p.parse_args(argv)
    lrs = [args.lr] + ([args.head_lr] if args.head_lr is not None else [])
    if (args.steps < 1 or args.batch_size < 1 or args.max_length < 8 or not all(math.isfinite(x) and x > 0 for x in lrs)
            or not 0 <= args.head_warmup_steps < args.steps):
        print("mlm: error: --steps, --batch-size must be >= 1, --max-length >= 8, --lr/--head-lr > 0, "
              "0 <= --head-warmup-steps < --steps", file=sys.stderr)
        return 2
    from biascard.data.errors import DataError

    try:
        pretrain(args.out, encoder=args.encoder, datasets=tuple(args.datasets), steps=args.steps,
                 batch_size=args.batch_size, max_length=args.max_length, lr=args.lr, seed=args.seed,
                 head_warmup_steps=args.head_warmup_steps, head_lr=args.head_lr, num_threads=args.num_threads,
                 log=lambda m: print(m, file=sys.stderr))
    except (ValueError, FileNotFoundError, DataError) as e:
        print(f"mlm: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
