"""The training loop on accelerate: every head at once, across datasets, resumable exactly.

One optimizer step = `grad_accum` micro-batches from `MixtureBatchSampler` (per process).
Checkpoints are taken only at optimizer-step boundaries, so (step, sampler position,
RNG states) fully describe where a resumed run continues.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import shutil
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from . import checkpoint as ckpt
from .logging import RunLogger

MODEL_DIR = "model"


# ---------------------------------------------------------------- setup helpers


def _mixed_precision(setting: str, cpu: bool) -> str:
    setting = str(setting)
    if setting in ("no", "bf16", "fp16"):
        return setting
    if setting != "auto":
        raise ValueError(f"trainer.mixed_precision: {setting!r} is not one of auto, bf16, no")
    if torch.cuda.is_available() and not cpu:
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    # CPU: only with native bf16 (AVX512-BF16/AMX); emulated on AVX2 a training step was
    # ~4x slower than fp32 here
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return "bf16" if native else "no"


def _shared_output_dir(accelerator, output_dir: str) -> Path:
    """All processes write into rank 0's run dir (their `${now:}` stamps can differ)."""
    from accelerate.utils import broadcast_object_list

    if accelerator.num_processes == 1:
        return Path(output_dir)
    box = [str(output_dir)]
    broadcast_object_list(box, from_process=0)
    mine, shared = Path(output_dir), Path(box[0])
    if mine.resolve() != shared.resolve() and mine.is_dir():
        # Hydra made a run dir for this process too; it holds nothing but its .hydra copy
        if {p.name for p in mine.iterdir()} <= {".hydra"}:
            shutil.rmtree(mine, ignore_errors=True)
    return shared


def _quiet_libraries() -> None:
    """Route library output through our logger (python logging) instead of the console."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_default_handler()
    transformers.utils.logging.enable_propagation()
    transformers.utils.logging.disable_progress_bar()


def _subset(ds, cap: int | None, seed: int):
    if cap is None or len(ds) <= cap:
        return ds
    idx = np.random.default_rng(seed).permutation(len(ds))[:cap]
    return ds.select(sorted(idx.tolist()))


def _caps(node) -> dict[str, int]:
    return {str(k): int(v) for k, v in (OmegaConf.to_container(node) if node is not None else {}).items() if v is not None}


def _refold(dsd, name: str, refold):
    """data.refold={k, fold}: train+validation re-cut into k folds (biascard.data.splits.refold)."""
    if not refold:
        return dsd
    from biascard.data.splits import refold as recut

    return recut(dsd, name, int(refold["k"]), int(refold["fold"]), seed=refold.get("seed"))


def load_data(cfg: DictConfig, log: RunLogger, accelerator) -> dict[str, dict[str, Any]]:
    """{dataset: {"train": Dataset, "validation": Dataset}} with caps applied (and logged)."""
    from biascard.data.prepare import prepare

    names = list(cfg.data.datasets)
    if not names:
        raise ValueError("data.datasets is empty")
    train_caps, eval_caps = _caps(cfg.data.get("train_caps")), _caps(cfg.data.get("eval_caps"))
    kwargs = {}
    if cfg.paths.get("data_dir"):
        kwargs["data_dir"] = Path(cfg.paths.data_dir)
    if cfg.paths.get("cache_dir"):
        kwargs["cache_dir"] = Path(cfg.paths.cache_dir)
    out = {}
    seed = int(cfg.trainer.seed)
    for name in names:
        # the main process fills the arrow cache first; the others then read it
        with accelerator.main_process_first():
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                dsd = prepare(name, **kwargs)
        for line in buf.getvalue().splitlines():
            if line.strip():
                log.message(f"{name}: {line}", level="warning" if "skipped" in line or "removed" in line else "info")
        for split in ("train", "validation"):
            if split not in dsd:
                raise ValueError(f"dataset {name!r} has no {split!r} split")
        dsd = _refold(dsd, name, cfg.data.get("refold"))
        if cfg.data.get("refold"):
            log.message(f"{name}: train+validation re-cut, fold {cfg.data.refold.fold} of {cfg.data.refold.k} validates")
        train = _subset(dsd["train"], train_caps.get(name), seed)
        val = _subset(dsd["validation"], eval_caps.get(name), seed + 1)
        out[name] = {"train": train, "validation": val, "full": dsd}
        log.message(
            f"data {name}: train {len(train)}/{len(dsd['train'])}, validation {len(val)}/{len(dsd['validation'])}",
            dataset=name, train_records=len(train), validation_records=len(val),
        )
    return out


def select_heads(cfg: DictConfig, data: dict, log: RunLogger):
    """Heads from cfg.heads that have training labels, with label sets resolved from the data."""
    from .heads import load_heads, resolve_labels

    heads = load_heads(cfg.heads)
    labeled: set[str] = set()
    for parts in data.values():
        for row in parts["train"]["labels"]:  # the capped rows, not the table under select()
            labeled.update(k for k, v in row.items() if v is not None)
    missing = [h for h in heads if h not in labeled]
    if missing:
        if not cfg.data.get("drop_unlabeled_heads", True):
            raise ValueError(f"heads {missing} have no labels in the train splits of {list(cfg.data.datasets)}")
        log.message(f"heads without training labels in these datasets, not trained: {missing}",
                    level="warning", dropped_heads=missing)
        heads = {k: v for k, v in heads.items() if k not in missing}
    if not heads:
        raise ValueError(f"no head of cfg.heads has labels in {list(cfg.data.datasets)}")
    # label sets from the full train splits (not the capped ones), checked on validation
    sources = [{"train": p["full"]["train"], "validation": p["full"]["validation"]} for p in data.values()]
    return resolve_labels(heads, sources)


def _lengths(tokenizer, records: list[dict], max_length: int, max_chunks: int | None) -> list[int]:
    """Token counts (capped where chunking would cut), the key of length grouping."""
    cap = max_length * max_chunks if max_chunks else None
    out = []
    for start in range(0, len(records), 1000):
        texts = [r["text"] for r in records[start : start + 1000]]
        if cap:
            # a WordPiece token spans < 8 characters nearly always: clip long articles first
            texts = [t[: cap * 8] for t in texts]
        ids = tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        out.extend(min(len(x), cap) if cap else len(x) for x in ids)
    return out


def _records(ds) -> list[dict]:
    return ds.to_list()


def _digest(cfg: DictConfig) -> str:
    """What must not change across a resume: data, model, heads and optimisation settings."""
    keep = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("data", "model", "heads") if k in cfg}
    tr = OmegaConf.to_container(cfg.trainer, resolve=True)
    for k in ("eval_every_n_steps", "checkpoint_every_n_steps", "log_every_n_steps", "early_stopping", "num_threads"):
        tr.pop(k, None)
    keep["trainer"] = tr
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- evaluation


def evaluate(model, accelerator, val_records, tokenizer, specs, cfg, encode_kwargs) -> dict[str, float]:
    """Main process only: metrics on the validation records (unwrapped model, no DDP hooks)."""
    from .evaluation import aggregate, collect_logits

    net = accelerator.unwrap_model(model)
    logits, labels, loss = collect_logits(net, val_records, tokenizer, specs, int(cfg.trainer.eval_batch_size),
                                          encode_kwargs, autocast=accelerator.autocast)
    metrics = aggregate(specs, logits, labels, prefix="val")
    metrics["val/loss"] = loss
    return metrics


_LAYER = re.compile(r"\.layers?\.(\d+)\.")


def _lr_scale(name: str, num_layers: int, decay: float | None) -> float:
    """Layer-wise lr decay: the top encoder layer keeps lr, each layer below gets `decay` times
    the one above, embeddings the lowest; heads and anything above the layers keep 1."""
    if not decay or decay == 1.0 or not name.startswith("encoder."):
        return 1.0
    m = _LAYER.search(name)
    if m:
        depth = int(m.group(1)) + 1
    elif "embeddings" in name:
        depth = 0
    else:
        return 1.0
    return float(decay) ** (num_layers - depth)


def _param_groups(model, tr) -> list[dict]:
    """AdamW groups: no decay on biases and norms; fresh heads may take a larger lr; encoder
    layers may take a layer-wise decayed lr (`trainer.layer_decay`)."""
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    lr, head_lr = float(tr.lr), float(tr.get("head_lr") or tr.lr)
    decay = tr.get("layer_decay")
    if decay is not None and not 0.0 < float(decay) <= 1.0:
        raise ValueError(f"trainer.layer_decay: {decay!r} must be in (0, 1] or null")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    num_layers = 1 + max((int(m.group(1)) for n, _ in named if n.startswith("encoder.") and (m := _LAYER.search(n))),
                         default=-1)
    groups: dict[tuple, list] = defaultdict(list)
    for n, p in named:
        is_head = n.startswith("heads.")
        scale = 1.0 if is_head else _lr_scale(n, num_layers, decay)
        groups[(is_head, n.endswith(no_decay), scale)].append(p)
    return [
        {"params": ps, "lr": head_lr if is_head else lr * scale, "weight_decay": 0.0 if nd else float(tr.weight_decay)}
        for (is_head, nd, scale), ps in sorted(groups.items())
    ]


def planned_steps(tr, batches_per_epoch: int) -> int:
    """Optimizer steps of a run: trainer.max_steps, else max_epochs of batches / grad_accum."""
    if tr.get("max_steps"):
        return int(tr.max_steps)
    return math.ceil(float(tr.max_epochs) * batches_per_epoch / int(tr.grad_accum))


def _summary(metrics: dict, specs) -> str:
    """The console line of an evaluation: the mean and each head's main number."""
    from .evaluation import MAIN_METRIC

    parts = [f"macro_f1_mean={metrics.get('val/macro_f1_mean', float('nan')):.4f}",
             f"loss={metrics['val/loss']:.4f}"]
    for name, spec in specs.items():
        key = f"val/{name}/{MAIN_METRIC.get(spec.type) or 'mae'}"
        if key in metrics:
            parts.append(f"{name}={metrics[key]:.3f}")
    return " ".join(parts)


# ---------------------------------------------------------------- the loop


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train as configured; return the best evaluation's metrics (plus `best_step`)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, InitProcessGroupKwargs

    tr = cfg.trainer
    if tr.get("num_threads"):
        torch.set_num_threads(int(tr.num_threads))
    mp = _mixed_precision(tr.get("mixed_precision", "auto"), bool(tr.get("cpu")))
    accelerator = Accelerator(
        cpu=bool(tr.get("cpu")),
        mixed_precision=mp,
        # heads without labels in a batch get no gradient
        kwargs_handlers=[
            DistributedDataParallelKwargs(find_unused_parameters=True),
            # the other processes wait while the main one evaluates; CPU evals can be long
            InitProcessGroupKwargs(timeout=timedelta(hours=2)),
        ],
    )
    out_dir = _shared_output_dir(accelerator, str(cfg.paths.output_dir))
    log = RunLogger(out_dir, enabled=accelerator.is_main_process, progress=bool(cfg.logger.get("progress", True)))
    try:
        return _train(cfg, accelerator, out_dir, log, mp)
    finally:
        log.close()
        accelerator.end_training()


def _train(cfg: DictConfig, accelerator, out_dir: Path, log: RunLogger, mp: str) -> dict[str, Any]:
    from accelerate.utils import broadcast_object_list, set_seed
    from transformers import get_scheduler

    from .features import encode
    from .modeling import BiasCardModel, load_tokenizer, save_model_dir
    from .sampling import MixtureBatchSampler

    tr = cfg.trainer
    main = accelerator.is_main_process
    _quiet_libraries()
    seed = int(tr.seed)
    set_seed(seed)

    resolved = OmegaConf.to_container(cfg, resolve=True)
    if main:
        with open(out_dir / "config.yaml", "w", encoding="utf-8") as fh:
            fh.write(OmegaConf.to_yaml(resolved))
    if os.environ.get("BIASCARD_LAUNCH_NOTE"):
        log.message(os.environ["BIASCARD_LAUNCH_NOTE"])
    log.message(
        f"run dir {out_dir}; {accelerator.num_processes} process(es) on {accelerator.device}"
        + (f" ({accelerator.state.backend})" if accelerator.num_processes > 1 else "")
        + f", mixed precision {mp}, {torch.get_num_threads()} threads",
        output_dir=str(out_dir), num_processes=accelerator.num_processes, mixed_precision=mp,
    )

    # ---- where to resume from (decided before anything consumes randomness)
    resume_from = None
    if cfg.get("resume"):
        where = out_dir if str(cfg.resume) == "auto" else Path(str(cfg.resume)).expanduser()
        resume_from = ckpt.find_checkpoint(where)
        if resume_from is None:
            if str(cfg.resume) != "auto":
                raise FileNotFoundError(f"resume={cfg.resume}: no complete checkpoint there")
            log.message(f"resume=auto: no checkpoint under {where}; starting fresh")

    # ---- data, heads, model
    data = load_data(cfg, log, accelerator)
    specs = select_heads(cfg, data, log)
    m = cfg.model
    max_length, stride = int(m.max_length), int(m.stride)
    max_chunks = cfg.data.get("max_chunks")
    eval_chunks = cfg.data.get("eval_max_chunks", max_chunks)
    tokenizer = load_tokenizer(m.encoder)
    model = BiasCardModel.from_encoder(
        m.encoder, specs, max_length=max_length, stride=stride,
        classifier_dropout=float(m.get("classifier_dropout", 0.1)),
    )
    log.message(
        f"heads ({len(specs)}): " + ", ".join(f"{n}:{s.type}/{len(s.labels)}" for n, s in specs.items()),
        heads={n: s.type for n, s in specs.items()},
    )

    names = list(data)
    train_records = [_records(data[n]["train"]) for n in names]
    flat_train = [r for recs in train_records for r in recs]
    lengths = _lengths(tokenizer, flat_train, max_length, max_chunks)
    val_records = {}
    for n in names:
        recs = _records(data[n]["validation"])
        if recs:
            val_records[n] = (recs, _lengths(tokenizer, recs, max_length, eval_chunks))

    accum = int(tr.grad_accum)
    sampler = MixtureBatchSampler(
        [len(r) for r in train_records], lengths, int(tr.batch_size),
        temperature=float(cfg.data.temperature), epoch_size=cfg.data.get("epoch_size"), seed=seed,
        megabatch_factor=int(cfg.data.get("megabatch_factor", 50)),
        num_replicas=accelerator.num_processes, rank=accelerator.process_index,
    )
    steps_per_epoch = max(1, len(sampler) // accum)
    total_steps = planned_steps(tr, len(sampler))
    warmup = int(tr.warmup_steps) if tr.get("warmup_steps") is not None else round(float(tr.warmup_ratio) * total_steps)
    log.message(
        "mixture per epoch: " + ", ".join(f"{n} {c}" for n, c in zip(names, sampler.counts))
        + f"; {len(sampler)} batches/epoch/process, {total_steps} steps, {warmup} warmup",
        mixture=dict(zip(names, sampler.counts)), total_steps=total_steps, steps_per_epoch=steps_per_epoch,
        batches_per_epoch=len(sampler),
    )

    optimizer = torch.optim.AdamW(_param_groups(model, tr), lr=float(tr.lr))
    scheduler = get_scheduler(str(tr.scheduler), optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    # not prepared: accelerate would step it num_processes times per step
    accelerator.register_for_checkpointing(scheduler)

    es = tr.early_stopping
    es_metric, es_mode = str(es.metric), str(es.mode)
    if es_mode not in ("max", "min"):
        raise ValueError(f"trainer.early_stopping.mode: {es_mode!r} is not max or min")
    state: dict[str, Any] = {
        "step": 0, "epoch": 0, "sampler": sampler.state_dict(), "best_value": None, "best_step": None,
        "best_metrics": None, "bad_evals": 0, "stopped_early": False, "finished": False,
        "wandb_id": None, "config_digest": _digest(cfg),
    }
    if resume_from is not None:
        saved = ckpt.load_last(accelerator, resume_from)
        if saved.get("config_digest") != state["config_digest"]:
            log.message("the checkpoint was written with different data/model/heads/trainer settings",
                        level="warning", checkpoint=str(resume_from))
        state.update(saved)
        state["config_digest"] = _digest(cfg)
        sampler.load_state_dict(state["sampler"])
        log.message(f"resumed from {resume_from} at step {state['step']} (epoch {state['epoch']}, "
                    f"batch {sampler.position})", resumed_from=str(resume_from))
    log.context.update(step=state["step"], epoch=sampler.epoch)
    if main:
        state["wandb_id"] = log.start_wandb(
            OmegaConf.to_container(cfg.logger.wandb, resolve=True) if cfg.logger.get("wandb") else None,
            resolved, run_id=state.get("wandb_id"),
        )

    encode_kwargs = dict(max_length=max_length, stride=stride, max_chunks=max_chunks)
    eval_kwargs = dict(max_length=max_length, stride=stride, max_chunks=eval_chunks)
    eval_every = int(tr.eval_every_n_steps or 0)
    ckpt_every = int(tr.checkpoint_every_n_steps or 0)
    log_every = max(1, int(tr.log_every_n_steps or 1))
    patience = es.get("patience")
    min_delta = float(es.get("min_delta") or 0.0)

    def improved(value: float) -> bool:
        best = state["best_value"]
        if best is None:
            return True
        return value > best + min_delta if es_mode == "max" else value < best - min_delta

    def run_eval() -> dict | None:
        """Evaluate on the main process; every process learns whether to stop."""
        box: list = [None]
        if main:
            t0 = time.time()
            metrics = evaluate(model, accelerator, val_records, tokenizer, specs, cfg, eval_kwargs)
            metrics["val/time_s"] = round(time.time() - t0, 3)
            if es_metric not in metrics:
                raise KeyError(f"early_stopping.metric {es_metric!r} is not among {sorted(metrics)}")
            value = metrics[es_metric]
            if improved(value):
                state.update(best_value=value, best_step=state["step"], best_metrics=metrics, bad_evals=0)
                ckpt.save_best(accelerator.unwrap_model(model), tokenizer, out_dir,
                               {"step": state["step"], "metric": es_metric, "value": value, "metrics": metrics})
            else:
                state["bad_evals"] += 1
            log.metrics(metrics, split="val", console=_summary(metrics, specs), best_value=state["best_value"],
                        bad_evals=state["bad_evals"])
            box = [{k: state[k] for k in ("best_value", "best_step", "best_metrics", "bad_evals")}]
        broadcast_object_list(box, from_process=0)
        state.update(box[0])
        return box[0]

    # ---- train
    model.train()
    batches = iter(sampler)
    window = defaultdict(float)
    window_n = defaultdict(int)
    # time spent in training steps only (tokenizing included; eval and checkpoints not)
    busy, busy_cpu, seen_window, window_steps = 0.0, 0.0, 0, 0
    bar = log.progress(total_steps, initial=state["step"])
    stop = state.get("finished", False)
    if stop:
        log.message("this run had already finished; writing the model dir again")
    while not stop and state["step"] < total_steps:
        t_step, c_step = time.time(), time.process_time()
        for micro in range(accum):
            idx = next(batches)
            batch = encode([flat_train[i] for i in idx], tokenizer, specs, **encode_kwargs)
            sync = micro == accum - 1
            ctx = contextlib.nullcontext() if sync else accelerator.no_sync(model)
            with ctx:
                out = model(**batch)
                accelerator.backward(out.loss / accum)
            loss = out.loss.item()
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"step {state['step'] + 1}: loss is {loss} (heads {sorted(out.losses)}, "
                    f"records {[flat_train[i]['id'] for i in idx][:8]}...)"
                )
            window["loss"] += loss / accum
            for head, value in out.losses.items():
                window[f"loss/{head}"] += value.item()
                window_n[head] += 1
            seen_window += len(idx)
        if tr.get("max_grad_norm"):
            accelerator.clip_grad_norm_(model.parameters(), float(tr.max_grad_norm))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        busy += time.time() - t_step
        busy_cpu += time.process_time() - c_step
        window_steps += 1
        state["step"] += 1
        state["epoch"] = sampler.epoch
        state["sampler"] = sampler.state_dict()
        log.context.update(step=state["step"], epoch=sampler.epoch)
        if bar is not None:
            bar.update(1)
        step = state["step"]
        last = step >= total_steps

        if step % log_every == 0 or last:
            n_steps = window_steps  # fewer than log_every right after a resume
            values = {"loss": window["loss"] / n_steps, "lr": scheduler.get_last_lr()[0]}
            values.update({k: window[k] / window_n[k.split("/", 1)[1]] for k in window if k.startswith("loss/")})
            values.update({
                "samples_per_s": seen_window * accelerator.num_processes / max(busy, 1e-9),
                "step_time_s": busy / n_steps,
                # CPU seconds of this process per step: comparable across loaded and idle machines
                "step_cpu_s": busy_cpu / n_steps,
                "epoch_progress": sampler.position / len(sampler),
            })
            log.metrics(values, split="train")
            if bar is not None:
                bar.set_postfix(loss=f"{values['loss']:.4f}")
            window.clear()
            window_n.clear()
            busy, busy_cpu, seen_window, window_steps = 0.0, 0.0, 0, 0

        if (eval_every and step % eval_every == 0) or last:
            run_eval()
            if patience is not None and state["bad_evals"] >= int(patience):
                state["stopped_early"] = True
                log.message(f"early stopping at step {step}: {es_metric} did not improve for "
                            f"{state['bad_evals']} evaluations (best {state['best_value']} at step {state['best_step']})")
                stop = True
        if last or stop:
            state["finished"] = True
        if (ckpt_every and step % ckpt_every == 0) or state["finished"]:
            ckpt.save_last(accelerator, out_dir, state)
    log.close_progress()

    # ---- final model dir: the best evaluation's weights
    accelerator.wait_for_everyone()
    result = dict(state["best_metrics"] or {})
    result["best_step"] = state["best_step"]
    result["steps"] = state["step"]
    if main and cfg.get("save_model", True):
        target = out_dir / MODEL_DIR
        best = out_dir / ckpt.CHECKPOINTS / "best"
        if target.exists():
            shutil.rmtree(target)
        if best.is_dir():
            shutil.copytree(best, target)
            os.remove(target / ckpt.BEST_FILE)
        else:
            save_model_dir(accelerator.unwrap_model(model), tokenizer, target)
        with open(target / "training.json", "w", encoding="utf-8") as fh:
            json.dump({
                "datasets": names, "steps": state["step"], "best_step": state["best_step"],
                "metric": es_metric, "best_value": state["best_value"], "run_dir": str(out_dir),
                "stopped_early": state["stopped_early"],
            }, fh, indent=1)
        log.message(f"model dir {target} (weights of step {state['best_step']}, {es_metric}={state['best_value']})",
                    model_dir=str(target))
        th = cfg.get("thresholds") or {}
        if th.get("types") and val_records:
            from .thresholds import fit_model_dir

            fitted = fit_model_dir(target, val_records, eval_kwargs, types=tuple(th.types),
                                   min_positives=int(th.get("min_positives", 5)),
                                   batch_size=int(tr.eval_batch_size), log=log.message)
            for name, e in fitted.items():
                result[f"val/{name}/macro_f1_fitted_thresholds"] = e["macro_f1_fitted"]
    log.metrics({k: v for k, v in result.items() if isinstance(v, (int, float))}, split="best", console=False)
    accelerator.wait_for_everyone()
    return result
