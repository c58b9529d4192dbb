"""Two CPU processes (gloo) through `accelerate launch --num_processes 2 --cpu`."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


from biascard.train.logging import read_metrics




def test_two_process_cpu_launch(smoke_inputs, tmp_path):
    accelerate = Path(sys.executable).with_name("accelerate")
    run_dir = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "disabled", "MASTER_PORT": "29517"}
    r = subprocess.run(
        [str(accelerate), "launch", "--num_processes", "2", "--cpu", "-m", "biascard.train",
         "debug=smoke", "logger=none", f"hydra.run.dir={run_dir}"],
        env=env, capture_output=True, text=True, timeout=600,
    )
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
