"""`accelerate launch` with the shipped configs/accelerate files: two CPU processes (gloo) on one
machine, and two "machines" of one process each rendezvousing on 127.0.0.1 (the multi-node
path; the GPU files differ in use_cpu, process count and mixed precision only)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from biascard.train.logging import read_metrics

from test_serve_support import free_port

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "accelerate"
ACCELERATE = Path(sys.executable).with_name("accelerate")


def launch_env() -> dict:
    """The environment at call time: smoke_inputs has pointed BIASCARD_CACHE_DIR at the
    session's cache, which holds the tiny encoder already."""
    return {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}


def train_command(config: str, run_dir: Path, *flags: str) -> list[str]:
    return [str(ACCELERATE), "launch", "--config_file", str(CONFIGS / config), *flags, "-m", "biascard.train",
            "debug=smoke", "logger=none", f"hydra.run.dir={run_dir}"]


def test_the_gpu_configs_match_the_cpu_ones_tested_here():
    files = {p.stem: yaml.safe_load(p.read_text()) for p in CONFIGS.glob("*.yaml")}
    assert set(files) == {"cpu_2proc", "cpu_2nodes", "gpu_1node", "gpu_2nodes"}
    for gpu, cpu in (("gpu_1node", "cpu_2proc"), ("gpu_2nodes", "cpu_2nodes")):
        g, c = files[gpu], files[cpu]
        assert c["use_cpu"] and "use_cpu" not in g and g["mixed_precision"] == "bf16"
        assert g["num_machines"] == c["num_machines"] and g["num_processes"] == 8 * g["num_machines"]
        same = set(g) & set(c) - {"use_cpu", "mixed_precision", "num_processes", "main_process_ip"}
        assert {k: g[k] for k in same} == {k: c[k] for k in same}


def test_two_process_cpu_launch(smoke_inputs, tmp_path):
    run_dir = tmp_path / "run"
    port = str(free_port())
    r = subprocess.run(train_command("cpu_2proc.yaml", run_dir, "--main_process_port", port),
                       env=launch_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    rows = read_metrics(run_dir / "metrics.jsonl")
    messages = [x["message"] for x in rows if x["split"] == "log"]
    assert any("2 process(es) on cpu" in m and "(gloo)" in m for m in messages)
    # only the main process writes: one line per step, one per evaluation
    assert [x["step"] for x in rows if x["split"] == "train"] == list(range(1, 9))
    assert [x["step"] for x in rows if x["split"] == "val"] == [3, 6, 8]
    assert sum("2 process(es)" in m for m in messages) == 1
    # each process saved its own RNG state into the shared checkpoint
    last = run_dir / "checkpoints/last"
    assert all((last / f"rng_{rank}.{ext}").is_file() for rank in (0, 1) for ext in ("json", "safetensors"))
    assert not list(last.glob("*.pkl"))
    assert (run_dir / "model/model.safetensors").is_file() and (run_dir / "model/config.json").is_file()
    # one run dir: the second process did not leave one of its own
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_two_machines_on_loopback(smoke_inputs, tmp_path):
    run_dir, port = tmp_path / "run", str(free_port())
    nodes = [subprocess.Popen(train_command("cpu_2nodes.yaml", run_dir, "--machine_rank", str(rank),
                                            "--main_process_ip", "127.0.0.1", "--main_process_port", port),
                              env=launch_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in (0, 1)]
    outs = [p.communicate(timeout=600)[0] for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], "\n".join(o[-3000:] for o in outs)
    rows = read_metrics(run_dir / "metrics.jsonl")
    assert any("2 process(es) on cpu" in x["message"] for x in rows if x["split"] == "log")
    assert [x["step"] for x in rows if x["split"] == "train"] == list(range(1, 9))
    last = run_dir / "checkpoints/last"
    assert all((last / f"rng_{rank}.json").is_file() for rank in (0, 1))


def test_tiny_encoder_builds_on_a_rank_where_transformers_writes_nothing(tmp_path, monkeypatch):
    """Under torch.distributed, transformers' save_pretrained writes only on rank 0. Two
    launched ranks building a cold cache raced, and rank 1 could rename a folder without
    weights into place (CI, 2026-12-02); rank 1 now writes the weights itself."""
    import torch
    from transformers import AutoModel, PreTrainedModel

    from biascard.model.tiny import make_tiny_encoder

    ref = AutoModel.from_pretrained(make_tiny_encoder(tmp_path / "rank0", seed=3))
    monkeypatch.setattr(PreTrainedModel, "save_pretrained", lambda self, *a, **k: None)
    other = AutoModel.from_pretrained(make_tiny_encoder(tmp_path / "rank1", seed=3))
    for (name, a), (_, b) in zip(ref.state_dict().items(), other.state_dict().items()):
        assert torch.equal(a, b), name
