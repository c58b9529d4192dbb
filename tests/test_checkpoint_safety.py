"""Checkpoints hold no pickle: a smoke run writes none, a planted one is refused on resume
without running, and no source unpickles (torch.load only with weights_only=True)."""
from __future__ import annotations

import ast
import json
import os
import pickle
import random
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("biascard", "data", "train", "eval", "serve")
PICKLE_NAMES = (".pkl", ".pickle", ".bin", ".pt", ".pth", ".ckpt", ".joblib")


def _smoke(run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "biascard.train", "debug=smoke", "logger=none",
           "trainer.checkpoint_every_n_steps=2", f"hydra.run.dir={run_dir}", *extra]
    return subprocess.run(cmd, env={**os.environ, "WANDB_MODE": "disabled"}, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.fixture(scope="module")
def smoke_run(smoke_inputs, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("ckpt") / "run"
    r = _smoke(run_dir)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    return run_dir


def _is_pickle(path: Path) -> bool:
    """A raw pickle (protocol 2+ opcode) or a torch.save zip (it holds data.pkl)."""
    with open(path, "rb") as fh:
        head = fh.read(2)
    if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return any(n.endswith((".pkl", ".pickle")) for n in z.namelist())
    return False


def test_smoke_run_writes_no_pickle(smoke_run):
    files = [p for p in smoke_run.rglob("*") if p.is_file()]
    last = smoke_run / "checkpoints/last"
    assert {p.name for p in last.iterdir()} >= {
        "model.safetensors", "optimizer.safetensors", "optimizer.json", "scheduler.json",
        "rng_0.json", "rng_0.safetensors", "trainer_state.json"}
    assert [p for p in files if p.name.lower().endswith(PICKLE_NAMES)] == []
    assert [p for p in files if _is_pickle(p)] == []


class _Payload:
    """Unpickling it runs a shell command that creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("name", ["custom_checkpoint_0.pkl", "random_states_0.pkl", "optimizer.bin"])
def test_planted_pickle_is_refused_and_never_runs(smoke_run, tmp_path, name):
    run_dir, marker = tmp_path / "run", tmp_path / "pwned"
    shutil.copytree(smoke_run / "checkpoints", run_dir / "checkpoints")
    state_file = run_dir / "checkpoints/last/trainer_state.json"
    state = json.loads(state_file.read_text())
    state.update(finished=False, step=2)  # something left to train
    state_file.write_text(json.dumps(state))
    planted = run_dir / "checkpoints/last" / name
    if name.endswith(".bin"):
        torch.save({"x": _Payload(marker)}, planted)
    else:
        planted.write_bytes(pickle.dumps(_Payload(marker)))
    r = _smoke(run_dir, "resume=auto")
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-3000:]
    assert "CheckpointError" in out and str(planted) in out and "pickle" in out, out[-3000:]
    assert not marker.exists()


def test_loader_refuses_before_reading_anything(tmp_path):
    from biascard.train.checkpoint import CheckpointError, load_last

    marker = tmp_path / "pwned"
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/random_states_1.PKL").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(CheckpointError, match="random_states_1.PKL"):
        load_last(None, tmp_path, model=None, optimizer=None, scheduler=None)
    assert not marker.exists()


def test_rng_states_round_trip(tmp_path):
    from biascard.train.checkpoint import load_rng, save_rng

    random.gauss(0, 1)
    np.random.standard_normal()  # cached gaussians are part of the state
    save_rng(tmp_path, 3, {"accelerator_step": 7})
    want = (random.random(), random.gauss(0, 1), np.random.standard_normal(3).tolist(), torch.rand(3).tolist())
    assert load_rng(tmp_path, 3) == {"accelerator_step": 7}
    got = (random.random(), random.gauss(0, 1), np.random.standard_normal(3).tolist(), torch.rand(3).tolist())
    assert got == want
    assert load_rng(tmp_path, 4) is None  # written by fewer processes


def test_optimizer_and_scheduler_round_trip(tmp_path):
    from biascard.train.checkpoint import (
        from_plain,
        load_optimizer,
        save_optimizer,
        to_plain,
    )
    from transformers import get_scheduler

    def make():
        torch.manual_seed(0)
        m = torch.nn.Linear(4, 3)
        o = torch.optim.AdamW([{"params": [m.weight]}, {"params": [m.bias], "weight_decay": 0.0}], lr=1e-2)
        return m, o, get_scheduler("linear", o, num_warmup_steps=2, num_training_steps=10)

    m, o, s = make()
    for _ in range(3):
        m(torch.randn(2, 4)).sum().backward()
        o.step()
        s.step()
        o.zero_grad()
    save_optimizer(o, tmp_path)
    sched = json.loads(json.dumps(to_plain(s.state_dict())))
    m2, o2, s2 = make()
    m2.load_state_dict(m.state_dict())
    load_optimizer(o2, tmp_path)
    s2.load_state_dict(from_plain(sched))
    assert o2.param_groups[0]["betas"] == (0.9, 0.999) and s2.get_last_lr() == s.get_last_lr()
    x = torch.randn(2, 4)
    for mm, oo, ss in ((m, o, s), (m2, o2, s2)):
        mm(x).sum().backward()
        oo.step()
        ss.step()
    assert torch.equal(m.weight, m2.weight) and torch.equal(m.bias, m2.bias)


# ---------------------------------------------------------------- no source unpickles


def _kw_true(call: ast.Call, name: str) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords)


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


UNPICKLERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve"}


def _unsafe_loads(tree: ast.AST) -> list[tuple[int, str]]:
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNPICKLERS:
            bad.append((node.lineno, f"from {node.module} import ..."))
        elif isinstance(node, ast.ImportFrom) and node.module == "torch" and any(a.name == "load" for a in node.names):
            bad.append((node.lineno, "from torch import load"))
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            head, _, attr = name.rpartition(".")
            if name == "torch.load" and not _kw_true(node, "weights_only"):
                bad.append((node.lineno, "torch.load without weights_only=True"))
            elif (head.split(".")[0] in UNPICKLERS and attr.startswith(("load", "Unpickler", "open"))
                  or attr == "read_pickle" or (attr == "load" and _kw_true(node, "allow_pickle"))):
                bad.append((node.lineno, name))
            elif attr in ("load_state", "load_custom_state") and head.split(".")[-1] in ("accelerator", "self"):
                bad.append((node.lineno, f"{name} (accelerate unpickles its checkpoint files)"))
    return bad


def test_scanner_catches_unsafe_loads():
    src = ("import torch, pickle, numpy as np\nfrom pickle import loads\ntorch.load(f)\n"
           "torch.load(f, weights_only=False)\npickle.load(f)\nnp.load(f, allow_pickle=True)\n"
           "accelerator.load_state(d)\ntorch.load(f, weights_only=True)\nnp.load(f)\n")
    assert sorted(line for line, _ in _unsafe_loads(ast.parse(src))) == [2, 3, 4, 5, 6, 7]


def test_no_source_unpickles():
    bad = []
    for d in SOURCE_DIRS:
        for path in sorted((REPO / d).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            bad += [f"{path.relative_to(REPO)}:{line}: {what}" for line, what in _unsafe_loads(tree)]
    assert bad == []
