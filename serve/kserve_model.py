"""The card composer as a KServe custom model (optional extra: pip install 'biascard[kserve]').

    python -m biascard.serve.kserve_model --model_path MODEL_DIR_OR_MAR [--model_name NAME]

KServe calls `load()` once and `predict(payload, headers)` per request; payloads follow the
v1 protocol, {"instances": [article, ...]} → {"predictions": [card, ...]}, where an article
is a string or {"text", "title"?, "source"?, "id"?}. A bad instance raises kserve's
InvalidInput (a 400 naming `instances[i].field`). kserve is imported only when a model is
built, so this module imports without it. Our own server (`biascard serve`) speaks the same
v1 route, POST /v1/models/{name}:predict, without kserve installed.
"""
from __future__ import annotations

import argparse
from typing import Any


def build_model(name: str, model_path: str, *, composer: dict | None = None, max_chars: int | None = None):
    """A `kserve.Model` subclass instance serving `model_path` (a model dir or .mar) as `name`."""
    import kserve  # heavy optional dependency: imported here, not at module import
    from kserve.errors import InvalidInput

    from biascard.compose.settings import serve_config
    from .inputs import InputError, article_from_obj
    from .service import ModelService

    limit = int(max_chars or serve_config()["max_chars"])

    class BiasCardKServeModel(kserve.Model):
        def __init__(self):
            super().__init__(name)
            self.service: ModelService | None = None
            self.ready = False

        def load(self) -> bool:
            self.service = ModelService(model_path, name=name, composer=composer)
            self.ready = True
            return self.ready

        def predict(self, payload: Any, headers: dict | None = None) -> dict:
            if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list) or not payload["instances"]:
                raise InvalidInput("expected {\"instances\": [article, ...]} with at least one article")
            try:
                articles = [article_from_obj(x, limit, f"instances[{i}].") for i, x in enumerate(payload["instances"])]
            except InputError as e:
                raise InvalidInput(f"{e.field}: {e.message}" if e.field else e.message) from None
            cards = self.service.compose(articles)
            for c in cards:
                if isinstance(c, BaseException):
                    raise c
            return {"predictions": cards}

    return BiasCardKServeModel()


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - needs kserve installed
    p = argparse.ArgumentParser(description="Serve bias cards with KServe's ModelServer")
    p.add_argument("--model_path", required=True)
    p.add_argument("--model_name", default="biascard")
    args, _ = p.parse_known_args(argv)  # kserve's ModelServer parses its own flags
    import kserve

    model = build_model(args.model_name, args.model_path)
    model.load()
    kserve.ModelServer().start([model])


if __name__ == "__main__":  # pragma: no cover
    main()
