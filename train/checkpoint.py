"""Checkpoints under `<run dir>/checkpoints/`: `last/` (full training state) and `best/`.

`last/` = accelerate's `save_state` (model as safetensors; optimizer, scheduler and the
per-process RNG states through torch.save) + `trainer_state.json` (step, epoch, sampler
position, early-stopping state, wandb id). It is written to `last.tmp/` and swapped in by
renames, with trainer_state.json written last, so a kill at any moment leaves either the
old or the new checkpoint complete (`last.prev/` covers the moment between the renames).
`best/` is a model dir (`biascard.model.model_dir.save`: safetensors only) plus `best.json`.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from omegaconf import OmegaConf

STATE_FILE = "trainer_state.json"
BEST_FILE = "best.json"
CHECKPOINTS = "checkpoints"


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _swap_in(tmp: Path, final: Path) -> None:
    prev = final.with_name(final.name + ".prev")
    if prev.exists():
        shutil.rmtree(prev)
    if final.exists():
        os.replace(final, prev)
    os.replace(tmp, final)
    if prev.exists():
        shutil.rmtree(prev)


def save_last(accelerator, run_dir: str | Path, state: dict) -> Path:
    """Every process calls this (each saves its RNG state); the main process does the rest."""
    root = Path(run_dir) / CHECKPOINTS
    tmp, final = root / "last.tmp", root / "last"
    if accelerator.is_main_process:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
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


def load_last(accelerator, checkpoint: str | Path) -> dict:
    """Restore model/optimizer/scheduler/RNG into the prepared objects; return the JSON state."""
    accelerator.load_state(str(checkpoint))
    return read_state(checkpoint)
