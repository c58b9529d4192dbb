"""Kill a debug=smoke run with SIGKILL mid-epoch, resume it, and get the same run.

Two runs with the same seed start together: A runs through, B is killed once it has
logged step >= 5 and holds a checkpoint, then resumed with `resume=auto` in its run dir.
Final validation metrics, every train loss after the resume point and the final weights
must match A's to 1e-6. Gradient accumulation 2 and dropout are on, and the run crosses
epoch boundaries after the resume.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from biascard.train.logging import read_metrics

OVERRIDES = [
    "debug=smoke",
    "logger=none",
    "trainer.max_steps=24",  # 10 optimizer steps per epoch here: crosses two epoch ends
    "trainer.grad_accum=2",
    "trainer.eval_every_n_steps=6",
    "trainer.checkpoint_every_n_steps=2",
]




def _cmd(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "biascard.train", *OVERRIDES, f"hydra.run.dir={run_dir}", *extra]


def _last_by_step(rows: list[dict], split: str) -> dict[int, dict]:
    out = {}
    for r in rows:
        if r["split"] == split:
            out[r["step"]] = r  # a resumed run re-logs the steps after its checkpoint
    return out


def _numbers(row: dict) -> dict[str, float]:
    skip = {"step", "epoch", "elapsed_s", "samples_per_s", "step_time_s", "step_cpu_s", "val/time_s"}
    return {k: v for k, v in row.items() if isinstance(v, (int, float)) and k not in skip}


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a)), load_file(str(b))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6, rtol=0), k


def test_killed_run_resumes_to_the_same_result(smoke_inputs, tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled"}
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a = subprocess.Popen(_cmd(a_dir), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    b = subprocess.Popen(_cmd(b_dir), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_after = None
    deadline = time.time() + 300
    try:
        while time.time() < deadline and b.poll() is None:
            if (b_dir / "checkpoints/last/trainer_state.json").is_file() and (b_dir / "metrics.jsonl").is_file():
                steps = [r["step"] for r in read_metrics(b_dir / "metrics.jsonl") if r["split"] == "train"]
                if steps and max(steps) >= 5:
                    os.kill(b.pid, signal.SIGKILL)
                    b.wait()
                    killed_after = max(steps)
                    break
            time.sleep(0.02)
    finally:
        if b.poll() is None:
            b.kill()
            b.wait()
    out_a, _ = a.communicate(timeout=300)
    assert a.returncode == 0, out_a[-3000:]
    assert killed_after is not None, "run B finished before it could be killed"
    assert b.returncode == -signal.SIGKILL

    state = json.loads((b_dir / "checkpoints/last/trainer_state.json").read_text())
    assert 2 <= state["step"] < 24 and not state["finished"]
    resume_step = state["step"]

    r = subprocess.run(_cmd(b_dir, "resume=auto"), env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert f"resumed from {b_dir / 'checkpoints' / 'last'} at step {resume_step}" in r.stdout

    rows_a, rows_b = read_metrics(a_dir / "metrics.jsonl"), read_metrics(b_dir / "metrics.jsonl")
    train_a, train_b = _last_by_step(rows_a, "train"), _last_by_step(rows_b, "train")
    assert sorted(train_a) == sorted(train_b) == list(range(1, 25))
    for step in range(resume_step + 1, 25):
        na, nb = _numbers(train_a[step]), _numbers(train_b[step])
        assert na.keys() == nb.keys()
        for k in na:
            assert nb[k] == pytest.approx(na[k], abs=1e-6), (step, k)
    val_a, val_b = _last_by_step(rows_a, "val"), _last_by_step(rows_b, "val")
    assert sorted(val_a) == sorted(val_b) == [6, 12, 18, 24]
    final_a, final_b = _numbers(val_a[24]), _numbers(val_b[24])
    assert final_a.keys() == final_b.keys() and "val/macro_f1_mean" in final_a
    for k in final_a:
        assert final_b[k] == pytest.approx(final_a[k], abs=1e-6), k

    _assert_same_weights(a_dir / "checkpoints/last/model.safetensors", b_dir / "checkpoints/last/model.safetensors")
    _assert_same_weights(a_dir / "model/model.safetensors", b_dir / "model/model.safetensors")
    assert json.loads((a_dir / "model/training.json").read_text())["best_step"] == \
        json.loads((b_dir / "model/training.json").read_text())["best_step"]
    # every console line of run A is in its metrics.jsonl (messages, or an evaluation summary)
    messages = {x["message"] for x in rows_a if x["split"] == "log"}
    printed = [line for line in out_a.splitlines() if line.strip()]
    assert printed
    for line in printed:
        if line.startswith("[val step "):
            assert int(line.split()[2].rstrip("]")) in val_a, line
        else:
            text = line.split(": ", 1)[-1] if line.startswith(("WARNING: ", "ERROR: ")) else line
            assert any(text in m for m in messages), line
    # the run dir holds Hydra's resolved config and ours
    assert (a_dir / ".hydra/config.yaml").is_file() and (a_dir / "config.yaml").is_file()


def test_resume_from_a_path_without_checkpoint_fails(smoke_inputs, tmp_path):
    from hydra import compose, initialize_config_module

    from biascard.train.checkpoint import find_checkpoint
    from biascard.train.loop import train

    assert find_checkpoint(tmp_path) is None
    with initialize_config_module(config_module="biascard.configs", version_base="1.3"):
        cfg = compose(config_name="train", overrides=[
            "debug=smoke", "logger=none", f"paths.output_dir={tmp_path / 'run'}", f"resume={tmp_path / 'nothing'}"])
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        train(cfg)


def test_wandb_offline_run_id_is_kept_in_the_run_dir(tmp_path, monkeypatch):
    from biascard.train.logging import WANDB_ID_FILE, RunLogger

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    cfg = {"project": "biascard-test", "mode": None, "dir": str(tmp_path)}
    first = RunLogger(tmp_path, progress=False)
    run_id = first.start_wandb(cfg, {"x": 1})
    first.metrics({"loss": 1.0}, split="train")
    first.close()
    assert (tmp_path / WANDB_ID_FILE).read_text().strip() == run_id
    assert list((tmp_path / "wandb").glob("offline-run-*"))  # no API key: offline
    second = RunLogger(tmp_path, progress=False)
    assert second.start_wandb(cfg, {"x": 1}) == run_id
    second.close()
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert any(f"wandb offline run {run_id}" in r.get("message", "") for r in rows)
