"""A loaded model ready to compose cards: a model dir or a verified .mar, named and versioned.

Used by the HTTP server and the `card`/`predict` commands, so both load, name and version
a model the same way as the TorchServe handler does (archive modelName and modelVersion).
"""
from __future__ import annotations

import atexit
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

from .archive import model_version, read_model_config, resolve_model
from biascard.compose.composer import Composer
from .handler import compose_each
from .inputs import Article


class ModelService:
    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        name: str | None = None,
        composer: Mapping | None = None,
        expect_sha256: str | None = None,
        threads: int | None = None,
    ):
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        self.path = Path(model_path)
        self.model_dir, manifest, self._tmp = resolve_model(self.path, expect_sha256=expect_sha256)
        if self._tmp:
            atexit.register(self.close)  # an exit without close() still removes the extraction
        try:
            info = (manifest or {}).get("model") or {}
            self.name = name or info.get("modelName") or "biascard"
            self.version = model_version(self.model_dir, manifest)
            # an archive's model-config.yaml may carry composer settings for the handler;
            # the caller's settings win over them, as in TorchServe
            handler_cfg = read_model_config(self.model_dir).get("handler") or {}
            self.composer = Composer.from_model_dir(self.model_dir, [handler_cfg.get("composer"), composer],
                                                    name=self.name, version=self.version)
        except BaseException:
            self.close()
            raise

    @property
    def heads(self) -> list[str]:
        return sorted(self.composer.specs)

    def compose(self, articles: list[Article]) -> list[Any]:
        """One card (dict) or an exception per article, in order."""
        return compose_each(self.composer, articles)

    def info(self) -> dict:
        return {
            "modelName": self.name,
            "modelVersion": self.version,
            "modelUrl": self.path.name,  # the file name only: no server paths in responses
            "heads": self.heads,
            "calibrated": sorted(
                c for c, p in self.composer.plan.items()
                if p["mode"] == "derived" and p["cut_source"] in ("calibrated", "degenerate")
            ),
        }

    def close(self) -> None:
        if getattr(self, "_tmp", None):
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
            atexit.unregister(self.close)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
