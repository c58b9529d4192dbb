"""TorchServe handler: a bias card per request.

TorchServe imports the archive's `biascard_handler.py`, which re-exports `handle` from here
(biascard is installed in TorchServe's Python). Contract (ts.model_loader / ts.service):
  handle(None, context) once at load → initialize(context);
  handle(requests, context) per batch → one response per request, in order.
A request item is {"data" | "body": bytes | str | dict, ...} (TorchServe decodes JSON bodies
into dicts and text/* bodies into str); JSON objects carry {"text", "title", "source", "id"}.
The card is JSON unless the JSON body has "format": "text"|"html" or the Accept header asks
for text/plain or text/html (TorchServe does not pass query parameters of a POST with a body).
A bad item gets its own error response, {"error", "field"} with a 4xx status set through
context.set_response_status(code, phrase, idx); the rest of the batch is served.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from .inputs import Article, InputError, article_from_torchserve

log = logging.getLogger(__name__)
FORMATS = {"json": "application/json", "text": "text/plain; charset=utf-8", "html": "text/html; charset=utf-8"}


def render(card: dict, fmt: str) -> Any:
    if fmt == "json":
        return card
    from biascard.card import render_html, render_text

    return render_text(card) if fmt == "text" else render_html(card)


def compose_each(composer, articles: list[Article]) -> list[Any]:
    """Cards for `articles`, one batch; if the batch fails, each article alone, so one
    article that breaks the model cannot fail the others. Failures come back as exceptions."""
    if not articles:
        return []
    try:
        return list(composer.compose(articles))
    except Exception:  # noqa: BLE001 - retried one by one below
        log.exception("batch of %d failed; composing one by one", len(articles))
    out: list[Any] = []
    for a in articles:
        try:
            out.append(composer.compose([a])[0])
        except Exception as e:  # noqa: BLE001 - reported for this article only
            log.exception("composing one article failed")
            out.append(e)
    return out


class BiasCardHandler:
    def __init__(self):
        self.initialized = False
        self.context = None
        self.composer = None
        self.max_chars = 100_000
        self._formats: list[str] = []

    def initialize(self, context) -> None:
        from .archive import model_version, read_model_config, verify_dir
        from biascard.compose.composer import Composer
        from biascard.compose.settings import serve_config

        self.context = context
        model_dir = Path(context.system_properties["model_dir"])
        verify_dir(model_dir)  # an extracted biascard archive carries SHA256SUMS
        manifest = getattr(context, "manifest", None) or {}
        yaml_cfg = getattr(context, "model_yaml_config", None) or read_model_config(model_dir)
        handler_cfg = (yaml_cfg or {}).get("handler") or {}
        self.max_chars = int(handler_cfg.get("max_chars") or serve_config()["max_chars"])
        model_info = manifest.get("model") or {}
        name = getattr(context, "model_name", None) or model_info.get("modelName") or "biascard"
        version = model_version(model_dir, manifest)  # the weights', never only the manifest's
        self.composer = Composer.from_model_dir(model_dir, handler_cfg.get("composer"), name=name, version=version)
        self.initialized = True

    def preprocess(self, requests: list) -> list[Article | InputError]:
        out: list[Article | InputError] = []
        self._formats = []
        for idx, item in enumerate(requests or []):
            fmt = "json"
            try:
                article = article_from_torchserve(item, self.max_chars)
                fmt = _format_of(item, self._accept(idx), article.format)
                out.append(article)
            except InputError as e:
                out.append(e)
            except Exception as e:  # noqa: BLE001 - a malformed item must not sink the batch
                out.append(InputError(f"unreadable request: {e}"))
            self._formats.append(fmt)
        return out

    def inference(self, batch: list[Article | InputError]) -> list[Any]:
        articles = [a for a in batch if isinstance(a, Article)]
        cards = iter(compose_each(self.composer, articles))
        return [next(cards) if isinstance(a, Article) else a for a in batch]

    def postprocess(self, outputs: list[Any]) -> list[Any]:
        responses = []
        for idx, out in enumerate(outputs):
            fmt = self._formats[idx] if idx < len(self._formats) else "json"
            if isinstance(out, InputError):
                self._status(idx, out.status, out.message)
                responses.append(out.to_dict())
            elif isinstance(out, Exception):
                self._status(idx, 500, "card composition failed")
                responses.append({"error": f"card composition failed: {type(out).__name__}"})
            else:
                self._content_type(idx, FORMATS[fmt])
                responses.append(render(out, fmt))
        return responses

    def handle(self, data: list, context) -> list[Any]:
        self.context = context
        return self.postprocess(self.inference(self.preprocess(data)))

    def _accept(self, idx: int) -> str:
        try:
            return self.context.get_request_header(idx, "Accept") or ""
        except (AttributeError, IndexError, KeyError, TypeError):  # mock contexts, no processors
            return ""

    def _status(self, idx: int, code: int, phrase: str) -> None:
        if self.context is not None and hasattr(self.context, "set_response_status"):
            try:
                self.context.set_response_status(code=code, phrase=phrase[:200], idx=idx)
            except (AttributeError, IndexError, TypeError):  # a context without request processors
                pass

    def _content_type(self, idx: int, value: str) -> None:
        if self.context is not None and hasattr(self.context, "set_response_content_type"):
            try:
                self.context.set_response_content_type(idx, value)
            except (AttributeError, IndexError, TypeError):
                pass


def format_from_accept(accept: str) -> str:
    """json, text or html: the highest-q of the three media types in an Accept header."""
    best, best_q = "json", -1.0
    for part in (accept or "").split(","):
        media, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        fmt = {"application/json": "json", "text/plain": "text", "text/html": "html"}.get(media.strip().lower())
        if fmt and q > best_q:  # first wins on ties: browsers list text/html first
            best, best_q = fmt, q
    return best


def _format_of(item: Any, accept: str = "", in_body: str | None = None) -> str:
    """A `format` item (a query parameter, should TorchServe pass one), then the JSON body's
    "format", then the Accept header."""
    fmt = item.get("format") if isinstance(item, dict) else None
    if fmt is None:
        fmt = in_body
    if fmt is None:
        return format_from_accept(accept)
    if isinstance(fmt, (bytes, bytearray)):
        fmt = fmt.decode("utf-8", "replace")
    if fmt not in FORMATS:
        raise InputError(f"format must be one of {sorted(FORMATS)}, got {str(fmt)[:40]!r}", "format")
    return fmt


_service = BiasCardHandler()


def handle(data, context):
    """TorchServe's function entry point: the first call (data None) loads the model."""
    if not _service.initialized:
        _service.initialize(context)
    if data is None:
        return None
    return _service.handle(data, context)


if __name__ == "__main__":  # pragma: no cover - manual check: python -m biascard.serve.handler DIR TEXT
    import sys
    from types import SimpleNamespace

    ctx = SimpleNamespace(system_properties={"model_dir": sys.argv[1]}, manifest={}, model_yaml_config={})
    print(json.dumps(handle([{"body": sys.argv[2]}], ctx), indent=1))
