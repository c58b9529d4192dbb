"""The training loop on accelerate: every head at once, across datasets, resumable exactly.

One optimizer step = `grad_accum` micro-batches from `MixtureBatchSampler` (per process).
Checkpoints are taken only at optimizer-step boundaries, so (step, sampler position,
RNG states) fully describe where a resumed run continues.

`train(cfg)` reads top to bottom: set up, data and model, sampler and optimizer, restore
a checkpoint, the step loop, the final model dir. What those phases share lives in `Run`.
"""
from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from biascard.compose.reading import reads_sentences, with_segments
from biascard.model import model_dir
from biascard.model.features import encode
from biascard.model.lexical import fit_idf

from . import checkpoint as ckpt
from .accelerator import make_accelerator, quiet_libraries, shared_output_dir
from .datasets import load_data, records, select_heads, token_lengths
from .evaluation import evaluate, summary
from .logging import RunLogger, TrainWindow
from .optimization import param_groups, planned_steps, warmup_steps
from .thresholds import fit_model_dir, fit_options

MODEL_DIR = "model"


@dataclass
class Run:
    """One training run: its settings, data, model, optimizer and resumable `state`."""

    cfg: DictConfig
    accelerator: Any
    out_dir: Path
    log: RunLogger
    tokenizer: Any = None
    specs: dict = field(default_factory=dict)
    model: Any = None
    names: list[str] = field(default_factory=list)
    train_records: list[list[dict]] = field(default_factory=list)  # per dataset
    flat_train: list[dict] = field(default_factory=list)  # the sampler's indices point here
    train_lengths: list[int] = field(default_factory=list)
    val_records: dict = field(default_factory=dict)  # {dataset: (records, lengths)}
    encode_kwargs: dict = field(default_factory=dict)  # training's chunking (data.max_chunks)
    eval_kwargs: dict = field(default_factory=dict)  # validation's (data.eval_max_chunks), saved with the model
    sampler: Any = None
    optimizer: Any = None
    scheduler: Any = None
    total_steps: int = 0
    state: dict = field(default_factory=dict)

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process


# ---------------------------------------------------------------- the run, top to bottom


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train as configured; return the best evaluation's metrics (plus `best_step`)."""
    accelerator, mp = make_accelerator(cfg.trainer)
    out_dir = shared_output_dir(accelerator, str(cfg.paths.output_dir))
    log = RunLogger(out_dir, enabled=accelerator.is_main_process, progress=bool(cfg.logger.get("progress", True)))
    try:
        run = Run(cfg, accelerator, out_dir, log)
        resolved = _start(run, mp)
        resume_from = _resume_point(run)
        _data_and_model(run)
        _sampler_and_optimizer(run)
        _initial_state(run, resume_from, resolved)
        _step_loop(run)
        return _final_model_dir(run)
    finally:
        log.close()
        accelerator.end_training()


def _start(run: Run, mp: str) -> dict:
    """Seed, quiet libraries, the run dir's config.yaml and the first log line; the resolved config."""
    from accelerate.utils import set_seed

    cfg, accelerator, log = run.cfg, run.accelerator, run.log
    quiet_libraries()
    set_seed(int(cfg.trainer.seed))
    resolved = OmegaConf.to_container(cfg, resolve=True)
    if run.main:
        with open(run.out_dir / "config.yaml", "w", encoding="utf-8") as fh:
            fh.write(OmegaConf.to_yaml(resolved))
    if os.environ.get("BIASCARD_LAUNCH_NOTE"):
        log.message(os.environ["BIASCARD_LAUNCH_NOTE"])
    log.message(
        f"run dir {run.out_dir}; {accelerator.num_processes} process(es) on {accelerator.device}"
        + (f" ({accelerator.state.backend})" if accelerator.num_processes > 1 else "")
        + f", mixed precision {mp}, {torch.get_num_threads()} threads",
        output_dir=str(run.out_dir), num_processes=accelerator.num_processes, mixed_precision=mp,
    )
    return resolved


def _resume_point(run: Run) -> Path | None:
    """The checkpoint `resume=` names (decided before anything consumes randomness), or None."""
    cfg = run.cfg
    if not cfg.get("resume"):
        return None
    where = run.out_dir if str(cfg.resume) == "auto" else Path(str(cfg.resume)).expanduser()
    found = ckpt.find_checkpoint(where)
    if found is None:
        if str(cfg.resume) != "auto":
            raise FileNotFoundError(f"resume={cfg.resume}: no complete checkpoint there")
        run.log.message(f"resume=auto: no checkpoint under {where}; starting fresh")
    return found


def _data_and_model(run: Run) -> None:
    """Capped datasets, the heads they label, tokenizer and model, records and token lengths."""
    from biascard.model.modeling import BiasCardModel, load_tokenizer

    cfg, log = run.cfg, run.log
    data = load_data(cfg, log, run.accelerator)
    run.specs = select_heads(cfg, data, log)
    m = cfg.model
    max_length, stride = int(m.max_length), int(m.stride)
    max_chunks = cfg.data.get("max_chunks")
    eval_chunks = cfg.data.get("eval_max_chunks", max_chunks)
    run.encode_kwargs = dict(max_length=max_length, stride=stride, max_chunks=max_chunks)
    run.eval_kwargs = dict(max_length=max_length, stride=stride, max_chunks=eval_chunks)
    run.tokenizer = load_tokenizer(m.encoder)
    # the config keeps validation's chunking, so eval and serve read what model selection saw
    run.model = BiasCardModel.from_encoder(
        m.encoder, run.specs, max_length=max_length, stride=stride,
        classifier_dropout=float(m.get("classifier_dropout", 0.1)),
        max_chunks=None if eval_chunks is None else int(eval_chunks),
        document_reading=str(m.get("document_reading", "windows")),
    )
    log.message(
        f"heads ({len(run.specs)}): " + ", ".join(f"{n}:{s.type}/{len(s.labels)}" for n, s in run.specs.items()),
        heads={n: s.type for n, s in run.specs.items()},
    )
    run.names = list(data)
    # a sentence-reading model's documents carry their sentence spans (compose.reading)
    read = (lambda rs: with_segments(rs, run.specs)) if reads_sentences(run.model) else (lambda rs: rs)
    run.train_records = [read(records(data[n]["train"])) for n in run.names]
    run.flat_train = [r for recs in run.train_records for r in recs]
    run.train_lengths = token_lengths(run.tokenizer, run.flat_train, max_length, max_chunks)
    _fit_lexical_idf(run)
    for n in run.names:
        recs = records(data[n]["validation"])
        if recs:
            run.val_records[n] = (recs, token_lengths(run.tokenizer, recs, max_length, eval_chunks))


def _fit_lexical_idf(run: Run) -> None:
    """The idf of tf-idf lexical branches, from the train records that label each head (a checkpoint
    being resumed holds the same values)."""
    texts = {h: [r["text"] for r in run.flat_train if r["labels"].get(h) is not None] for h in run.model.lexical}
    fitted = fit_idf(run.model.lexical, texts)
    if fitted:
        run.log.message("lexical idf fit on train texts: " + ", ".join(f"{h} {n}" for h, n in fitted.items()),
                        lexical_idf=fitted)


def _sampler_and_optimizer(run: Run) -> None:
    """The mixture sampler, the run's steps, AdamW and its schedule, prepared by accelerate."""
    from transformers import get_scheduler

    from .sampling import MixtureBatchSampler

    cfg, tr, accelerator = run.cfg, run.cfg.trainer, run.accelerator
    run.sampler = sampler = MixtureBatchSampler(
        [len(r) for r in run.train_records], run.train_lengths, int(tr.batch_size),
        temperature=float(cfg.data.temperature), epoch_size=cfg.data.get("epoch_size"), seed=int(tr.seed),
        megabatch_factor=int(cfg.data.get("megabatch_factor", 50)),
        num_replicas=accelerator.num_processes, rank=accelerator.process_index,
    )
    steps_per_epoch = max(1, len(sampler) // int(tr.grad_accum))
    run.total_steps = planned_steps(tr, len(sampler))
    warmup = warmup_steps(tr, run.total_steps)
    run.log.message(
        "mixture per epoch: " + ", ".join(f"{n} {c}" for n, c in zip(run.names, sampler.counts))
        + f"; {len(sampler)} batches/epoch/process, {run.total_steps} steps, {warmup} warmup",
        mixture=dict(zip(run.names, sampler.counts)), total_steps=run.total_steps, steps_per_epoch=steps_per_epoch,
        batches_per_epoch=len(sampler),
    )
    optimizer = torch.optim.AdamW(param_groups(run.model, tr), lr=float(tr.lr))
    run.scheduler = get_scheduler(str(tr.scheduler), optimizer, num_warmup_steps=warmup,
                                  num_training_steps=run.total_steps)
    # the scheduler is not prepared: accelerate would step it num_processes times per step
    run.model, run.optimizer = accelerator.prepare(run.model, optimizer)


def _initial_state(run: Run, resume_from: Path | None, resolved: dict) -> None:
    """A fresh run's state, or the checkpoint's (model, optimizer and RNGs restored); wandb started."""
    cfg, log, sampler = run.cfg, run.log, run.sampler
    if str(cfg.trainer.early_stopping.mode) not in ("max", "min"):
        raise ValueError(f"trainer.early_stopping.mode: {cfg.trainer.early_stopping.mode!r} is not max or min")
    digest = ckpt.config_digest(cfg)
    state: dict[str, Any] = {
        "step": 0, "epoch": 0, "sampler": sampler.state_dict(), "best_value": None, "best_step": None,
        "best_metrics": None, "bad_evals": 0, "stopped_early": False, "finished": False,
        "wandb_id": None, "config_digest": digest,
    }
    if resume_from is not None:
        saved = ckpt.load_last(run.accelerator, resume_from, model=run.model, optimizer=run.optimizer,
                               scheduler=run.scheduler)
        if saved.get("config_digest") != digest:
            log.message("the checkpoint was written with different data/model/heads/trainer settings",
                        level="warning", checkpoint=str(resume_from))
        state.update(saved)
        state["config_digest"] = digest
        sampler.load_state_dict(state["sampler"])
        log.message(f"resumed from {resume_from} at step {state['step']} (epoch {state['epoch']}, "
                    f"batch {sampler.position})", resumed_from=str(resume_from))
    log.context.update(step=state["step"], epoch=sampler.epoch)
    if run.main:
        state["wandb_id"] = log.start_wandb(
            OmegaConf.to_container(cfg.logger.wandb, resolve=True) if cfg.logger.get("wandb") else None,
            resolved, run_id=state.get("wandb_id"),
        )
    run.state = state


# ---------------------------------------------------------------- the step loop


def _step_loop(run: Run) -> None:
    """Optimizer steps until the run's last (or early stopping); logs, evaluations, checkpoints."""
    tr, state, log, sampler = run.cfg.trainer, run.state, run.log, run.sampler
    eval_every = int(tr.eval_every_n_steps or 0)
    ckpt_every = int(tr.checkpoint_every_n_steps or 0)
    log_every = max(1, int(tr.log_every_n_steps or 1))
    patience = tr.early_stopping.get("patience")
    run.model.train()
    batches = iter(sampler)
    window = TrainWindow()
    bar = log.progress(run.total_steps, initial=state["step"])
    stop = state.get("finished", False)
    if stop:
        log.message("this run had already finished; writing the model dir again")
    while not stop and state["step"] < run.total_steps:
        _optimizer_step(run, batches, window)
        state["step"] += 1
        state["epoch"] = sampler.epoch
        state["sampler"] = sampler.state_dict()
        log.context.update(step=state["step"], epoch=sampler.epoch)
        if bar is not None:
            bar.update(1)
        step = state["step"]
        last = step >= run.total_steps

        if step % log_every == 0 or last:
            values = window.values(run.scheduler.get_last_lr()[0], run.accelerator.num_processes,
                                   sampler.position / len(sampler))
            log.metrics(values, split="train")
            if bar is not None:
                bar.set_postfix(loss=f"{values['loss']:.4f}")
            window.reset()

        if (eval_every and step % eval_every == 0) or last:
            _evaluate_and_select(run)
            if patience is not None and state["bad_evals"] >= int(patience):
                state["stopped_early"] = True
                log.message(f"early stopping at step {step}: {tr.early_stopping.metric} did not improve for "
                            f"{state['bad_evals']} evaluations (best {state['best_value']} at step {state['best_step']})")
                stop = True
        if last or stop:
            state["finished"] = True
        if (ckpt_every and step % ckpt_every == 0) or state["finished"]:
            ckpt.save_last(run.accelerator, run.out_dir, state, model=run.model, optimizer=run.optimizer,
                           scheduler=run.scheduler)
    log.close_progress()


def _optimizer_step(run: Run, batches, window: TrainWindow) -> None:
    """`grad_accum` micro-batches (gradients synced on the last), clipping, one optimizer step."""
    tr, accelerator, model = run.cfg.trainer, run.accelerator, run.model
    accum = int(tr.grad_accum)
    t_step, c_step = time.time(), time.process_time()
    for micro in range(accum):
        idx = next(batches)
        batch = encode([run.flat_train[i] for i in idx], run.tokenizer, run.specs, **run.encode_kwargs)
        sync = micro == accum - 1
        with contextlib.nullcontext() if sync else accelerator.no_sync(model):
            out = model(**batch)
            accelerator.backward(out.loss / accum)
        loss = out.loss.item()
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"step {run.state['step'] + 1}: loss is {loss} (heads {sorted(out.losses)}, "
                f"records {[run.flat_train[i]['id'] for i in idx][:8]}...)"
            )
        window.sums["loss"] += loss / accum
        for head, value in out.losses.items():
            window.sums[f"loss/{head}"] += value.item()
            window.counts[head] += 1
        window.samples += len(idx)
    if tr.get("max_grad_norm"):
        accelerator.clip_grad_norm_(model.parameters(), float(tr.max_grad_norm))
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    window.busy += time.time() - t_step
    window.busy_cpu += time.process_time() - c_step
    window.steps += 1


# ---------------------------------------------------------------- evaluation


def _improved(es, best: float | None, value: float) -> bool:
    if best is None:
        return True
    min_delta = float(es.get("min_delta") or 0.0)
    return value > best + min_delta if str(es.mode) == "max" else value < best - min_delta


def _evaluate_and_select(run: Run) -> None:
    """Evaluate on the main process (an improvement is saved as checkpoints/best); every
    process then holds the same early-stopping state."""
    from accelerate.utils import broadcast_object_list

    state, es = run.state, run.cfg.trainer.early_stopping
    metric = str(es.metric)
    box: list = [None]
    if run.main:
        t0 = time.time()
        metrics = evaluate(run.model, run.accelerator, run.val_records, run.tokenizer, run.specs, run.cfg,
                           run.eval_kwargs)
        metrics["val/time_s"] = round(time.time() - t0, 3)
        if metric not in metrics:
            raise KeyError(f"early_stopping.metric {metric!r} is not among {sorted(metrics)}")
        value = metrics[metric]
        if _improved(es, state["best_value"], value):
            state.update(best_value=value, best_step=state["step"], best_metrics=metrics, bad_evals=0)
            ckpt.save_best(run.accelerator.unwrap_model(run.model), run.tokenizer, run.out_dir,
                           {"step": state["step"], "metric": metric, "value": value, "metrics": metrics})
        else:
            state["bad_evals"] += 1
        run.log.metrics(metrics, split="val", console=summary(metrics, run.specs), best_value=state["best_value"],
                        bad_evals=state["bad_evals"])
        box = [{k: state[k] for k in ("best_value", "best_step", "best_metrics", "bad_evals")}]
    broadcast_object_list(box, from_process=0)
    state.update(box[0])


# ---------------------------------------------------------------- the final model dir


def _final_model_dir(run: Run) -> dict[str, Any]:
    """`<run dir>/model`: the best evaluation's weights, training.json and the fitted
    thresholds; returns the best metrics plus `best_step` and `steps`."""
    cfg, state, log, tr = run.cfg, run.state, run.log, run.cfg.trainer
    metric = str(tr.early_stopping.metric)
    run.accelerator.wait_for_everyone()
    result = dict(state["best_metrics"] or {})
    result["best_step"] = state["best_step"]
    result["steps"] = state["step"]
    if run.main and cfg.get("save_model", True):
        target = run.out_dir / MODEL_DIR
        best = run.out_dir / ckpt.CHECKPOINTS / "best"
        if target.exists():
            shutil.rmtree(target)
        if best.is_dir():
            shutil.copytree(best, target)
            os.remove(target / ckpt.BEST_FILE)
        else:
            model_dir.save(run.accelerator.unwrap_model(run.model), run.tokenizer, target)
        model_dir.write_training_record(target, {
            "datasets": run.names, "steps": state["step"], "best_step": state["best_step"],
            "metric": metric, "best_value": state["best_value"], "run_dir": str(run.out_dir),
            "stopped_early": state["stopped_early"],
        })
        log.message(f"model dir {target} (weights of step {state['best_step']}, {metric}={state['best_value']})",
                    model_dir=str(target))
        th = cfg.get("thresholds") or {}
        if th.get("types") and run.val_records:
            fitted = fit_model_dir(target, run.val_records, run.eval_kwargs, **fit_options(th),
                                   batch_size=int(tr.eval_batch_size), log=log.message)
            for name, e in fitted.items():
                result[f"val/{name}/macro_f1_fitted_thresholds"] = e["macro_f1_fitted"]
    log.metrics({k: v for k, v in result.items() if isinstance(v, (int, float))}, split="best", console=False)
    run.accelerator.wait_for_everyone()
    return result
