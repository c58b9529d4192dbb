"""Checkpoints under `<run dir>/checkpoints/`: `last/` (full training state) and `best/`.

`last/` holds no pickle: a planted pickle must never run on `resume=`, so accelerate's
`save_state` (torch.save of optimizer, scheduler, RNG) is not used. Files:

| model.safetensors          | the unwrapped model's weights                           |
| optimizer.safetensors/.json| optimizer tensors / param groups and any non-tensor state |
| scheduler.json             | the LR scheduler's state_dict (plain numbers)           |
| rng_<rank>.safetensors/.json| per process: torch CPU (+ CUDA) RNG / python, numpy RNG |
| scaler.json                | the GradScaler's state, when there is one               |
| trainer_state.json         | step, epoch, sampler position, early stopping, wandb id |

It is written to `last.tmp/` and swapped in by renames, with trainer_state.json written
last, so a kill at any moment leaves either the old or the new checkpoint complete
(`last.prev/` covers the moment between the renames). Loading refuses a dir holding any
pickle-format file (`.pkl`, `.bin`, `.pt`, ...), e.g. one written by accelerate.
`best/` is a model dir (`biascard.model.model_dir.save`: safetensors only) plus `best.json`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, load_model, save_file, save_model

from biascard.model.model_dir import PICKLE_SUFFIXES

STATE_FILE = "trainer_state.json"
BEST_FILE = "best.json"
CHECKPOINTS = "checkpoints"
MODEL_FILE = "model.safetensors"
OPTIMIZER = "optimizer"
SCHEDULER_FILE = "scheduler.json"
SCALER_FILE = "scaler.json"
TUPLE = "__tuple__"

logger = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded safely; the message names the file."""


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_json(path: Path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _swap_in(tmp: Path, final: Path) -> None:
    prev = final.with_name(final.name + ".prev")
    if prev.exists():
        shutil.rmtree(prev)
    if final.exists():
        os.replace(final, prev)
    os.replace(tmp, final)
    if prev.exists():
        shutil.rmtree(prev)


# ---------------------------------------------------------------- plain values <-> JSON


def to_plain(obj, where: str = "state"):
    """JSON-ready copy of a state of numbers/strings/lists/dicts; tuples are tagged so they
    come back as tuples (AdamW's betas). Anything else (a tensor, an object) is an error."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, tuple):
        return {TUPLE: [to_plain(x, where) for x in obj]}
    if isinstance(obj, list):
        return [to_plain(x, where) for x in obj]
    if isinstance(obj, dict) and all(isinstance(k, str) for k in obj) and TUPLE not in obj:
        return {k: to_plain(v, f"{where}.{k}") for k, v in obj.items()}
    raise TypeError(f"{where}: {type(obj).__name__} cannot be saved as JSON")


def from_plain(obj):
    if isinstance(obj, list):
        return [from_plain(x) for x in obj]
    if isinstance(obj, dict):
        if set(obj) == {TUPLE}:
            return tuple(from_plain(x) for x in obj[TUPLE])
        return {k: from_plain(v) for k, v in obj.items()}
    return obj


# ---------------------------------------------------------------- optimizer


def save_optimizer(optimizer, directory: Path) -> None:
    """Per-parameter tensors to safetensors (`<index>/<name>`), the rest to JSON."""
    sd = optimizer.state_dict()
    tensors, other = {}, {}
    for idx, entry in sd["state"].items():
        other[str(idx)] = {}
        for name, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{idx}/{name}"] = value.detach().contiguous()  # safetensors moves it to CPU
            else:
                other[str(idx)][name] = to_plain(value, f"optimizer.state.{idx}.{name}")
    save_file(tensors, str(directory / f"{OPTIMIZER}.safetensors"))
    _write_json(directory / f"{OPTIMIZER}.json",
                {"param_groups": to_plain(sd["param_groups"], "optimizer.param_groups"), "state": other})


def load_optimizer(optimizer, directory: Path) -> None:
    meta = _read_json(directory / f"{OPTIMIZER}.json")
    state = {int(idx): from_plain(entry) for idx, entry in meta["state"].items()}
    for key, t in load_file(str(directory / f"{OPTIMIZER}.safetensors")).items():
        idx, name = key.split("/", 1)
        state[int(idx)][name] = t
    optimizer.load_state_dict({"state": state, "param_groups": from_plain(meta["param_groups"])})


# ---------------------------------------------------------------- RNG states, per process


def rng_files(directory: Path, rank: int) -> tuple[Path, Path]:
    return directory / f"rng_{rank}.json", directory / f"rng_{rank}.safetensors"


def save_rng(directory: Path, rank: int, extra: dict | None = None) -> None:
    """python, numpy, torch CPU and (where there is CUDA) every device's RNG of this process."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    meta = {"python": [version, list(internal), gauss],
            "numpy": [str(name), keys.tolist(), int(pos), int(has_gauss), float(cached)], **(extra or {})}
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    json_path, tensor_path = rng_files(directory, rank)
    save_file(tensors, str(tensor_path))
    _write_json(json_path, meta)


def load_rng(directory: Path, rank: int) -> dict | None:
    """Restore this process's RNGs; returns the extra fields saved with them (None if the
    checkpoint has no state for this rank: it was written by fewer processes)."""
    json_path, tensor_path = rng_files(directory, rank)
    if not json_path.is_file():
        logger.warning("%s: no RNG state for process %d; its RNGs are not restored", directory, rank)
        return None
    meta = _read_json(json_path)
    version, internal, gauss = meta.pop("python")
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = meta.pop("numpy")
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    tensors = load_file(str(tensor_path))
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[f"cuda.{i}"] for i in range(len(tensors) - 1) if f"cuda.{i}" in tensors]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    return meta


# ---------------------------------------------------------------- last/


def refuse_pickles(directory: str | Path) -> None:
    """No code path here unpickles; a pickle-format file in a checkpoint is refused outright
    (an old accelerate checkpoint, or a planted payload)."""
    for p in sorted(Path(directory).rglob("*")):
        if p.name.lower().endswith(PICKLE_SUFFIXES):
            raise CheckpointError(f"{p}: pickle-format file in checkpoint {directory}; refusing to load it "
                                  "(checkpoints hold only safetensors and JSON; delete it or start fresh)")


def _save_training_objects(accelerator, model, optimizer, scheduler, directory: Path) -> None:
    save_model(accelerator.unwrap_model(model), str(directory / MODEL_FILE), metadata={"format": "pt"})
    save_optimizer(optimizer, directory)
    _write_json(directory / SCHEDULER_FILE, to_plain(scheduler.state_dict(), "scheduler"))
    if getattr(accelerator, "scaler", None) is not None:
        _write_json(directory / SCALER_FILE, to_plain(accelerator.scaler.state_dict(), "scaler"))


def save_last(accelerator, run_dir: str | Path, state: dict, *, model, optimizer, scheduler) -> Path:
    """Every process calls this (each saves its RNG state); the main process does the rest."""
    root = Path(run_dir) / CHECKPOINTS
    tmp, final = root / "last.tmp", root / "last"
    if accelerator.is_main_process:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _save_training_objects(accelerator, model, optimizer, scheduler, tmp)
    save_rng(tmp, accelerator.process_index, {"accelerator_step": int(accelerator.step)})
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _write_json(tmp / STATE_FILE, state)
        _swap_in(tmp, final)
    accelerator.wait_for_everyone()
    return final


def config_digest(cfg) -> str:
    """What must not change across a resume: data, model, heads and optimisation settings."""
    keep = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("data", "model", "heads") if k in cfg}
    tr = OmegaConf.to_container(cfg.trainer, resolve=True)
    for k in ("eval_every_n_steps", "checkpoint_every_n_steps", "log_every_n_steps", "early_stopping", "num_threads"):
        tr.pop(k, None)
    keep["trainer"] = tr
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


def save_best(model, tokenizer, run_dir: str | Path, info: dict) -> Path:
    """Main process only: the current weights as a model dir, plus what made them best."""
    from biascard.model import model_dir

    root = Path(run_dir) / CHECKPOINTS
    tmp, final = root / "best.tmp", root / "best"
    if tmp.exists():
        shutil.rmtree(tmp)
    model_dir.save(model, tokenizer, tmp)
    _write_json(tmp / BEST_FILE, info)
    model_dir.write_checksums(tmp)  # best.json too, so best/ verifies as written
    _swap_in(tmp, final)
    return final


def _complete(path: Path) -> bool:
    return (path / STATE_FILE).is_file()


def find_checkpoint(path: str | Path) -> Path | None:
    """The checkpoint to resume from: `path` itself if it is one, else the newest complete
    `last` under `path` or `path/checkpoints` (a run dir). None if there is none."""
    path = Path(path)
    if _complete(path):
        return path
    for root in (path / CHECKPOINTS, path):
        for name in ("last", "last.prev"):
            if _complete(root / name):
                return root / name
    return None


def read_state(checkpoint: str | Path) -> dict:
    with open(Path(checkpoint) / STATE_FILE, encoding="utf-8") as fh:
        return json.load(fh)


def load_last(accelerator, checkpoint: str | Path, *, model, optimizer, scheduler) -> dict:
    """Restore model/optimizer/scheduler/RNG into the prepared objects; return the JSON state.
    Every process calls this; each reads the shared files and its own RNG state."""
    checkpoint = Path(checkpoint)
    refuse_pickles(checkpoint)
    load_model(accelerator.unwrap_model(model), str(checkpoint / MODEL_FILE), strict=True)
    load_optimizer(optimizer, checkpoint)
    scheduler.load_state_dict(from_plain(_read_json(checkpoint / SCHEDULER_FILE)))
    if getattr(accelerator, "scaler", None) is not None and (checkpoint / SCALER_FILE).is_file():
        accelerator.scaler.load_state_dict(from_plain(_read_json(checkpoint / SCALER_FILE)))
    extra = load_rng(checkpoint, accelerator.process_index)
    if extra and "accelerator_step" in extra:
        accelerator.step = int(extra["accelerator_step"])
    return read_state(checkpoint)
