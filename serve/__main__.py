"""`biascard serve model_path=PATH [port=8080] [key=value ...]`: the HTTP server, configured by
Hydra from configs/serve.yaml (every key there can be overridden on the command line).
`biascard-serve` and `python -m biascard.serve` are the same command."""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

PROG = "biascard serve"


@hydra.main(version_base="1.3", config_path="pkg://biascard.configs", config_name="serve")
def _run(cfg: DictConfig) -> None:
    from .server import serve

    try:
        serve(OmegaConf.to_container(cfg, resolve=True))
    except (ValueError, FileNotFoundError) as e:  # missing model, bad archive or setting: one line
        print(f"{PROG}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    sys.argv = [PROG, *argv]  # Hydra parses sys.argv; configs/serve.yaml picks its --help text
    _run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
