"""`biascard-eval` / `python -m biascard.eval`.

  biascard-eval model=DIR [data=babe | datasets=[babe,logic]] [split=test] [bootstrap.n_boot=1000]
  biascard-eval cv.folds=5 cv.dataset=babe [cv.train_model=true cv.train_overrides=[experiment=quick]]
  biascard-eval compare RUN_A RUN_B [--system model] [--b-system model] [--n-boot 1000]
  biascard-eval targets RUN [RUN ...]   (the default model's targets, templates/targets.json)
  biascard-eval ablations ROOT          (the default model's ablations, templates/ablations.json)

`compare`, `targets` and `ablations` are dispatched before Hydra (Hydra takes no positional arguments). `model=DIR` is
rewritten to `model_dir=DIR`, because `model` is also a config group of training.
"""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="pkg://biascard.configs", config_name="eval")
def _run(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from .runner import run_eval

    run_eval(cfg, HydraConfig.get().runtime.output_dir)


def rewrite_overrides(argv: list[str]) -> list[str]:
    return ["model_dir=" + a.split("=", 1)[1] if a.startswith("model=") else a for a in argv]


def main(argv: list[str] | None = None) -> int | None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["compare"]:
        from .compare import main as compare_main

        return compare_main(argv[1:])
    if argv[:1] == ["targets"]:
        from .targets import main as targets_main

        return targets_main(argv[1:])
    if argv[:1] == ["ablations"]:
        from .ablations import main as ablations_main

        return ablations_main(argv[1:])
    from . import runner

    runner.COMMAND = " ".join(["biascard-eval", *argv])
    sys.argv = [sys.argv[0]] + rewrite_overrides(argv)
    _run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
