"""The model dir: the one module that writes and reads the files a trained model is made of.

| file                | written by                          | holds |
|---------------------|-------------------------------------|-------|
| config.json         | `save`, `write_thresholds`          | encoder config, heads with label maps and thresholds, chunking (max_length, stride, max_chunks) |
| model.safetensors   | `save`                              | the weights (safetensors only; pickle files are refused) |
| tokenizer files     | `save`                              | tokenizer.json, tokenizer_config.json, special_tokens_map.json, vocab.txt, ... |
| training.json       | `write_training_record`             | the training run: datasets, steps, best step, metric, run dir |
| thresholds.json     | `write_thresholds`                  | how the decision thresholds were fit on validation |
| composer.json       | `write_calibration`                 | the composer's calibrated cut points |
| README.md           | `biascard eval release`             | a released model's model card (models/) |
| SHA256SUMS          | every writer above                  | sha256 of every other file, `sha256sum` format |

A released model (`released_model()`, models/biascard-minilm in the repo) is a model dir whose
weights `save_fp16` cast to float16; `load` reads every dir back in float32.

Stages never open these files themselves: training saves through `save`, thresholds and
calibration through their writers, eval/serve load through `load`, and the archive packs
`files(dir)`.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
TRAINING = "training.json"
THRESHOLDS = "thresholds.json"
CALIBRATION = "composer.json"
CHECKSUMS = "SHA256SUMS"
MODEL_CARD = "README.md"
RELEASE_NAME = "biascard-minilm"
# the repo keeps one release in git: fp16 weights of at most this many bytes
RELEASE_MAX_BYTES = 50 * 10**6
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")


class ModelDirError(ValueError):
    """A model dir that cannot be written or read; the message names the dir and file."""


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_version(directory: str | os.PathLike) -> str:
    """A model dir's identity: the first 12 hex digits of its weights' sha256."""
    return "sha256:" + sha256_file(Path(directory) / WEIGHTS)[:12]


def refuse_pickles(names, where: str) -> None:
    for name in names:
        if str(name).lower().endswith(PICKLE_SUFFIXES):
            raise ModelDirError(f"{where}: {name} is a pickle-based weight file; only safetensors are allowed")


def files(directory: str | os.PathLike) -> list[str]:
    """Relative paths of the dir's files, checksums excluded (hidden files and caches skipped).
    Refuses pickles and a dir without config.json and model.safetensors."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelDirError(f"{directory}: not a model directory")
    out = sorted(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() and not any(part.startswith(".") or part == "__pycache__"
                                   for part in p.relative_to(directory).parts)
    )
    refuse_pickles(out, str(directory))
    for required in (CONFIG, WEIGHTS):
        if required not in out:
            raise ModelDirError(f"{directory}: missing {required}")
    return [f for f in out if f != CHECKSUMS]


def parse_checksums(text: str, where: str) -> dict[str, str]:
    out = {}
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line)
        if not m:
            raise ModelDirError(f"{where}: {CHECKSUMS} line {i} is not '<sha256>  <file>'")
        out[m.group(2)] = m.group(1)
    return out


def write_checksums(directory: str | os.PathLike) -> None:
    directory = Path(directory)
    sums = {rel: sha256_file(directory / rel) for rel in files(directory)}
    (directory / CHECKSUMS).write_text("".join(f"{d}  {rel}\n" for rel, d in sorted(sums.items())), encoding="utf-8")


def verify(directory: str | os.PathLike) -> bool:
    """Check the dir against its SHA256SUMS (False when it has none); a changed, missing or
    unlisted file raises ModelDirError naming it."""
    directory = Path(directory)
    path = directory / CHECKSUMS
    if not path.is_file():
        return False
    sums = parse_checksums(path.read_text(encoding="utf-8"), str(directory))
    for rel, digest in sums.items():
        if not (directory / rel).is_file():
            raise ModelDirError(f"{directory}: {rel} is listed in {CHECKSUMS} but missing")
        if sha256_file(directory / rel) != digest:
            raise ModelDirError(f"{directory}: {rel} does not match its sha256 in {CHECKSUMS} (changed after it was written)")
    extra = sorted(set(files(directory)) - set(sums))
    if extra:
        raise ModelDirError(f"{directory}: {extra} not listed in {CHECKSUMS}")
    return True


def save(model, tokenizer, directory: str | os.PathLike) -> str:
    """config.json + model.safetensors + tokenizer files (+ checksums); refuses to leave pickles."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    bad = [p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES]
    if bad:
        raise ModelDirError(f"{directory}: pickle-format files written: {bad}")
    write_checksums(directory)
    return str(directory)


def load(directory: str | os.PathLike, device=None):
    """(model in eval mode, fast tokenizer) from a `save` folder."""
    import torch
    from transformers import AutoTokenizer

    from .modeling import BiasCardModel

    directory = Path(directory)
    if not (directory / WEIGHTS).is_file():
        raise FileNotFoundError(f"{directory}: no {WEIGHTS} (only safetensors is loaded)")
    # float32 whatever the file holds: a release is stored in fp16, and runtime precision casts later
    model = BiasCardModel.from_pretrained(directory, use_safetensors=True, dtype=torch.float32)
    if device is not None:
        model.to(device)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(directory, use_fast=True)
    return model, tokenizer


def load_config(directory: str | os.PathLike):
    from .modeling import BiasCardConfig

    return BiasCardConfig.from_pretrained(directory)


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ModelDirError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ModelDirError(f"{path}: expected a JSON object")
    return data


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def write_training_record(directory: str | os.PathLike, record: dict[str, Any]) -> None:
    _write_json(Path(directory) / TRAINING, record)
    write_checksums(directory)


def read_training_record(directory: str | os.PathLike) -> dict | None:
    return _read_json(Path(directory) / TRAINING)


def write_thresholds(directory: str | os.PathLike, fitted: dict[str, dict], record: dict[str, Any]) -> None:
    """Store fitted thresholds in config.json's head specs and how they were fit in thresholds.json."""
    from .heads import HeadSpec

    config = load_config(directory)
    heads = dict(config.heads)
    for name, entry in fitted.items():
        heads[name] = {**heads[name], "thresholds": entry["thresholds"], "threshold_fit": entry.get("threshold_fit")}
    config.heads = {n: HeadSpec.from_dict(n, h).to_dict() for n, h in heads.items()}
    config.save_pretrained(directory)
    _write_json(Path(directory) / THRESHOLDS, record)
    write_checksums(directory)


def write_calibration(directory: str | os.PathLike, result: dict, output: str | os.PathLike | None = None) -> Path:
    """composer.json in the model dir (or at `output`, leaving the dir untouched)."""
    path = Path(output) if output else Path(directory) / CALIBRATION
    _write_json(path, result)
    if not output or path.parent.resolve() == Path(directory).resolve():
        write_checksums(directory)
    return path


def read_calibration(path: str | os.PathLike | None) -> dict | None:
    """A composer.json file, or a model dir's; None when there is none."""
    if path is None:
        return None
    path = Path(path)
    return _read_json(path / CALIBRATION if path.is_dir() else path)


def released_model(root: str | os.PathLike | None = None) -> Path | None:
    """The repo's released model dir (models/biascard-minilm beside the package), if its weights are there."""
    root = Path(root) if root is not None else Path(__file__).resolve().parents[2] / "models"
    path = root / RELEASE_NAME
    return path if (path / WEIGHTS).is_file() else None


def save_fp16(source: str | os.PathLike, directory: str | os.PathLike,
              max_bytes: int = RELEASE_MAX_BYTES) -> dict[str, int]:
    """Copy a model dir with its floating-point weights cast to float16; refuses weights over max_bytes.
    Returns {file: bytes}. The model card and checksums are the caller's next writes."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    source, directory = Path(source), Path(directory)
    names = files(source)
    tensors = load_file(str(source / WEIGHTS))
    half = {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in tensors.items()}
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / (WEIGHTS + ".tmp")
    save_file(half, str(tmp), metadata={"format": "pt"})
    if tmp.stat().st_size > max_bytes:
        size = tmp.stat().st_size
        tmp.unlink()
        raise ModelDirError(f"{source}: fp16 weights are {size / 1e6:.1f} MB, over the release limit of "
                            f"{max_bytes / 1e6:.0f} MB")
    tmp.replace(directory / WEIGHTS)
    for rel in names:
        if rel not in (WEIGHTS, MODEL_CARD):
            (directory / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / rel, directory / rel)
    return {rel: (directory / rel).stat().st_size for rel in names if rel != MODEL_CARD}
