"""The composer's settings: configs/serve.yaml composed by Hydra, merged once.

Every entry point (the `biascard` CLI, the HTTP server, the TorchServe handler, eval) gets
its settings here, through Hydra's compose API, so `configs/local/serve.yaml` and command-line
overrides reach all of them alike. `composer_settings` is the one place where layers merge:
the composed file first, then each mapping given (an archive's `handler.composer`, then the
caller's), later layers winning.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

CONFIG_MODULE = "biascard.configs"
CONFIG_NAME = "serve"


def _compose(overrides: Sequence[str]):
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    gh = GlobalHydra.instance()
    if gh.is_initialized():  # inside a Hydra app (biascard eval/serve): same search path
        return gh.hydra.compose_config(CONFIG_NAME, list(overrides), run_mode=RunMode.RUN)
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        return compose(CONFIG_NAME, overrides=list(overrides))


def serve_config(overrides: Sequence[str] = ()) -> dict:
    """Every key of the composed serve config (Hydra's own removed), resolved."""
    from omegaconf import OmegaConf, open_dict

    cfg = _compose(overrides)
    with open_dict(cfg):
        cfg.pop("hydra", None)  # inside an app it holds ${hydra.job.num}, which cannot resolve there
    return OmegaConf.to_container(cfg, resolve=True)


def merge(base: Mapping, override: Mapping | None) -> dict:
    """Recursive dict merge; lists and scalars in `override` replace."""
    out = copy.deepcopy(dict(base))
    for k, v in (override or {}).items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def composer_settings(*layers: Mapping | None, overrides: Sequence[str] = ()) -> dict:
    """The `composer` section: composed (with `overrides`, e.g. `composer.evidence_k=5`), then
    each layer merged over it in order."""
    settings = serve_config(overrides)["composer"]
    for layer in layers:
        settings = merge(settings, layer)
    return settings
