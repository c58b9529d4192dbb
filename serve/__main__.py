"""`biascard-serve model_path=PATH [port=8080] [key=value ...]`: the HTTP server, configured by
Hydra from configs/serve.yaml (every key there can be overridden on the command line)."""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf


@hydra.main(version_base="1.3", config_path="pkg://biascard.configs", config_name="serve")
def main(cfg: DictConfig) -> None:
    from .server import serve

    try:
        serve(OmegaConf.to_container(cfg, resolve=True))
    except (ValueError, FileNotFoundError) as e:  # missing model, bad archive or setting: one line
        print(f"biascard-serve: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
