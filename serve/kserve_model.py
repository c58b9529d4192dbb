"""The card composer as a KServe custom model (optional extra: pip install 'biascard[kserve]').

    python -m biascard.serve.kserve_model --model_path MODEL_DIR_OR_MAR [--model_name NAME] \
        [--max_request_tokens N] [--http_port 8080 --enable_grpc false ...]   # KServe's own flags

KServe calls `load()` once and `predict(payload, headers)` per request; payloads follow the
v1 protocol, {"instances": [article, ...]} → {"predictions": [card, ...]}, where an article
is a string or {"text", "title"?, "source"?, "id"?}. A bad instance fails alone, as on our
server's route: the answer then also has `error` and `field` (the first failure's, e.g.
`instances[1].text`) and an error object in place of each failed instance (KServe answers
it with 200: a custom model cannot set the status). A body without `instances`, too many
instances or tokens (max_request_tokens), or a body that is not JSON, raises InvalidInput
(400). Tested under kserve 0.21's ModelServer in tests/test_serve_kserve.py. kserve is imported only
when a model is built, so this module imports without it. Our own server (`biascard serve`)
speaks the same v1 route, POST /v1/models/{name}:predict, without kserve installed.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from .inputs import InputError


def build_model(name: str, model_path: str, *, composer: dict | None = None, max_chars: int | None = None,
                max_request_tokens: int | None = None):
    """A `kserve.Model` subclass instance serving `model_path` (a model dir or .mar) as `name`."""
    import kserve  # heavy optional dependency: imported here, not at module import
    from kserve.errors import InvalidInput

    from biascard.compose.settings import serve_config
    from .budget import TokenBudget
    from .inputs import Article, instances_from_payload, mixed_predictions
    from .service import ModelService

    defaults = serve_config()
    limit = int(max_chars or defaults["max_chars"])
    max_instances = int(defaults["max_instances"])
    max_tokens = max_request_tokens or defaults.get("max_request_tokens")

    class BiasCardKServeModel(kserve.Model):
        def __init__(self):
            super().__init__(name)
            self.service: ModelService | None = None
            self.ready = False

        def load(self) -> bool:
            self.service = ModelService(model_path, name=name, composer=composer)
            self.budget = TokenBudget(self.service.composer.tokenizer, max_tokens)
            self.ready = True
            return self.ready

        def predict(self, payload: Any, headers: dict | None = None) -> dict:
            try:
                items = instances_from_payload(json_body(payload), limit, max_instances)
                articles = [a for a in items if isinstance(a, Article)]
                self.budget.costs(articles, "instances")
            except InputError as e:
                raise InvalidInput(f"{e.field}: {e.message}" if e.field else e.message) from None
            body, _ = mixed_predictions(items, self.service.compose(articles))
            return body

    return BiasCardKServeModel()


def json_body(payload: Any) -> Any:
    """KServe hands over a body whose content-type is not JSON undecoded: decode it here."""
    if not isinstance(payload, (bytes, str)):
        return payload
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"the body is not JSON: {e}", "body") from None


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Serve bias cards with KServe's ModelServer")
    p.add_argument("--model_path", required=True)
    p.add_argument("--model_name", default="biascard")
    p.add_argument("--max_request_tokens", type=int, default=None)
    args, _ = p.parse_known_args(argv)  # kserve's ModelServer parses its own flags (--http_port ...)
    import kserve

    model = build_model(args.model_name, args.model_path, max_request_tokens=args.max_request_tokens)
    model.load()
    kserve.ModelServer().start([model])


if __name__ == "__main__":
    main()
