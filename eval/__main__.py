"""`biascard eval`: the Hydra app of evaluation, and `biascard eval compare|targets|...`.

  biascard eval model=DIR [data=babe | datasets=[babe,logic]] [split=test] [bootstrap.n_boot=1000]
  biascard eval cv.folds=5 cv.dataset=babe [cv.train_model=true cv.train_overrides=[experiment=quick]]
  biascard eval compare RUN_A RUN_B [--system model] [--b-system model] [--n-boot 1000]
  biascard eval targets RUN [RUN ...]   (the default model's targets, templates/targets.json)
  biascard eval ablations ROOT          (the default model's ablations, templates/ablations.json)
  biascard eval composer-ablation --model DIR
  biascard eval screenshot PAGE.html OUT.png
  biascard eval release export --model DIR --out models/biascard-minilm   (fp16, <= 50 MB)
  biascard eval release card models/biascard-minilm --eval RUN [--study NAME=RUN]   (its README.md)

`biascard-eval` and `python -m biascard.eval` are the same command. The sub-commands are
dispatched before Hydra (Hydra takes no positional arguments). `model=DIR` is rewritten to
`model_dir=DIR`, because `model` is also a config group of training.
"""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from biascard.train.__main__ import hydra_argv, run_subcommand

PROG = "biascard eval"
# argparse commands: module (its main(argv)), usage, one-line help
SUBCOMMANDS = {
    "compare": ("biascard.eval.compare", "RUN_A RUN_B", "metric deltas between two eval runs, with significance"),
    "targets": ("biascard.eval.targets", "RUN [RUN ...]", "the default model's targets against what runs measured"),
    "ablations": ("biascard.eval.ablations", "ROOT", "the ablation table: paired deltas between eval runs"),
    "composer-ablation": ("biascard.eval.composer_ablation", "--model DIR",
                          "the card's aggregations against article-level labels"),
    "release": ("biascard.eval.release", "export --model DIR --out DIR | card DIR --eval RUN",
                "the released model: fp16 export and its model card"),
    "screenshot": ("biascard.eval.screenshot", "PAGE.html OUT.png", "screenshot a report page in headless Chromium"),
}


@hydra.main(version_base="1.3", config_path="pkg://biascard.configs", config_name="eval")
def _run(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from .runner import run_eval

    run_eval(cfg, HydraConfig.get().runtime.output_dir)


def rewrite_overrides(argv: list[str]) -> list[str]:
    return ["model_dir=" + a.split("=", 1)[1] if a.startswith("model=") else a for a in argv]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in SUBCOMMANDS:
        return run_subcommand(SUBCOMMANDS, argv)
    from . import runner

    runner.COMMAND = " ".join([PROG, *argv])
    sys.argv = hydra_argv(PROG, "eval", rewrite_overrides(argv))
    _run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
