"""`biascard train`: the Hydra app of training, and `biascard train thresholds|mlm`.

Examples:
  biascard train experiment=quick
  biascard train debug=smoke logger=none
  biascard train hparams_search=optuna experiment=quick hydra.sweeper.n_trials=10
  biascard train hydra.run.dir=outputs/train/runs/<stamp> resume=auto   # continue that run
  biascard train thresholds --model outputs/train/runs/<stamp>/model
  accelerate launch --num_processes 2 --cpu -m biascard.train debug=smoke

`biascard-train` and `python -m biascard.train` are the same command. This module also holds
what the three Hydra apps (train, eval, serve) share: sub-command dispatch and the help setup.
"""
from __future__ import annotations

import importlib
import importlib.resources
import os
import subprocess
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

PROG = "biascard train"
# argparse commands dispatched before Hydra (Hydra takes no positional arguments):
# module (its main(argv)), usage, one-line help
SUBCOMMANDS = {
    "thresholds": ("biascard.train.thresholds", "--model DIR", "fit per-label decision thresholds on validation data"),
    "fuse": ("biascard.train.fuse", "--model DIR --out DIR --heads H [H=N ...]",
             "give heads a fitted lexical model, its weight chosen on validation"),
    "mlm": ("biascard.train.mlm", "--out DIR", "continue the encoder's masked-LM pre-training on news text"),
}
# set for the processes started by _respawn_cpu_launch; the loop records it in metrics.jsonl
LAUNCH_NOTE = "BIASCARD_LAUNCH_NOTE"
HELP_FLAGS = ("--help", "-h")


@hydra.main(version_base="1.3", config_path="pkg://biascard.configs", config_name="train")
def _run(cfg: DictConfig) -> float | None:
    from .loop import train

    result = train(cfg)
    # Hydra sweepers (Optuna) read the return value
    return result.get(cfg.get("optimized_metric")) if cfg.get("optimized_metric") else None


# ---------------------------------------------------------------- shared by the Hydra apps


def run_subcommand(subcommands: dict[str, tuple[str, str, str]], argv: list[str]) -> int:
    """`argv[0]` names one of `subcommands`: its module's `main(rest)`."""
    module = importlib.import_module(subcommands[argv[0]][0])
    return int(module.main(argv[1:]) or 0)


def config_groups(choices) -> str:
    """`group: option, ...` for the config groups of an app's defaults list (Hydra's own left out),
    so each app's --help lists its own groups, not every folder of configs/."""
    root = importlib.resources.files("biascard.configs")
    lines = []
    for key, choice in sorted(choices.items()):
        group = key.split("@", 1)[0]  # `local@_global_`: the group, placed at the root
        if group == "hydra" or group.startswith("hydra/"):
            continue
        folder = root.joinpath(group)
        options = sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml")) \
            if folder.is_dir() else []
        if options:
            lines.append(f"{group}: {', '.join(options)}  (default: {choice or 'none'})")
        else:  # an optional group with no file yet (configs/local)
            lines.append(f"{group}: configs/{group}/{choice}.yaml, read when present")
    return "\n".join(lines)


def hydra_argv(prog: str, help_config: str, argv: list[str]) -> list[str]:
    """sys.argv for a Hydra app named `prog`; with --help, `hydra/help=<help_config>`
    (configs/hydra/help/) joins the overrides, which argparse wants in one run."""
    if not any(a in HELP_FLAGS for a in argv) or any(a.startswith("hydra/help=") for a in argv):
        return [prog, *argv]
    OmegaConf.register_new_resolver("biascard_config_groups", config_groups, replace=True)
    override = f"hydra/help={help_config}"
    first = next((i for i, a in enumerate(argv) if "=" in a and not a.startswith("-")), 0)
    return [prog, *argv[:first], override, *argv[first:]]


# ---------------------------------------------------------------- accelerate launch --cpu


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


def _respawn_cpu_launch(argv: list[str]) -> int | None:
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
        "-m", "biascard.train", *argv,
    ]
    return subprocess.call(cmd, env={**env, LAUNCH_NOTE: note})


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in SUBCOMMANDS:
        return run_subcommand(SUBCOMMANDS, argv)
    code = _respawn_cpu_launch(argv)
    if code is not None:
        return code
    sys.argv = hydra_argv(PROG, "train", argv)
    _run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
