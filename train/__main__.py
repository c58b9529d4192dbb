"""`biascard-train` / `python -m biascard.train`: the Hydra entry point of training.

Examples:
  biascard-train experiment=quick
  biascard-train debug=smoke logger=none
  biascard-train hparams_search=optuna experiment=quick hydra.sweeper.n_trials=10
  biascard-train hydra.run.dir=outputs/train/runs/<stamp> resume=auto   # continue that run
  accelerate launch --num_processes 2 --cpu -m biascard.train debug=smoke
"""
from __future__ import annotations

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="pkg://biascard.configs", config_name="train")
def _run(cfg: DictConfig) -> float | None:
    from .loop import train

    result = train(cfg)
    # Hydra sweepers (Optuna) read the return value
    return result.get(cfg.get("optimized_metric")) if cfg.get("optimized_metric") else None


def main() -> None:
    _run()


if __name__ == "__main__":
    main()
