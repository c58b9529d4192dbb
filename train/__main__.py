"""`biascard-train` / `python -m biascard.train`: the Hydra entry point of training.

Examples:
  biascard-train experiment=quick
  biascard-train debug=smoke logger=none
  biascard-train hparams_search=optuna experiment=quick hydra.sweeper.n_trials=10
  biascard-train hydra.run.dir=outputs/train/runs/<stamp> resume=auto   # continue that run
  accelerate launch --num_processes 2 --cpu -m biascard.train debug=smoke
"""
from __future__ import annotations

import os
import subprocess
import sys

import hydra
from omegaconf import DictConfig

# set for the processes started by _respawn_cpu_launch; the loop records it in metrics.jsonl
LAUNCH_NOTE = "BIASCARD_LAUNCH_NOTE"


@hydra.main(version_base="1.3", config_path="pkg://biascard.configs", config_name="train")
def _run(cfg: DictConfig) -> float | None:
    from .loop import train

    result = train(cfg)
    # Hydra sweepers (Optuna) read the return value
    return result.get(cfg.get("optimized_metric")) if cfg.get("optimized_metric") else None


def _parent_num_processes() -> int | None:
    """--num_processes of the `accelerate launch` that started us (Linux /proc), else None."""
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as fh:
            argv = [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        return None
    if "launch" not in argv:
        return None
    for i, arg in enumerate(argv):
        for flag in ("--num_processes", "--num-processes"):
            if arg == flag and i + 1 < len(argv):
                return int(argv[i + 1])
            if arg.startswith(flag + "="):
                return int(arg.split("=", 1)[1])
    return None


def _respawn_cpu_launch() -> int | None:
    """`accelerate launch --cpu --num_processes N` runs ONE process unless mpirun is set up
    (accelerate's simple launcher). Start the N gloo processes with torch.distributed.run."""
    env = os.environ
    if any(k in env for k in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE")):
        return None
    if env.get("ACCELERATE_USE_CPU", "").lower() not in ("true", "1") or "MASTER_ADDR" not in env:
        return None  # MASTER_ADDR: set by the simple launcher only for more than one process
    n = _parent_num_processes()
    if not n or n < 2:
        return None
    note = f"accelerate launch --cpu started one process; started {n} with torch.distributed.run (gloo)"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={n}",
        f"--master_addr={env['MASTER_ADDR']}", f"--master_port={env.get('MASTER_PORT', '29500')}",
        "-m", "biascard.train", *sys.argv[1:],
    ]
    return subprocess.call(cmd, env={**env, LAUNCH_NOTE: note})


def main() -> None:
    code = _respawn_cpu_launch()
    if code is not None:
        raise SystemExit(code)
    _run()


if __name__ == "__main__":
    main()
