"""The HTTP server: FastAPI routes over a micro-batching queue in front of the composer.

Routes
  GET  /                             the paste-an-article page (serve/static)
  GET  /ping                         {"status": "Healthy"} (TorchServe's health check)
  GET  /models                       the served model (name, version, heads)
  POST /predictions/{model}          raw text or JSON {"text","title","source","id"} → card;
                                     ?format=json|text|html, else the Accept header
  GET  /v1/models/{model}            KServe v1 readiness
  POST /v1/models/{model}:predict    KServe v1 {"instances": [...]} → {"predictions": [cards]}
  GET  /metrics                      Prometheus text format
  GET  /docs, /openapi.json          OpenAPI
Errors are JSON {"error": ..., "field"?: ...}; client mistakes are 4xx, never 5xx.
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Mapping

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .batching import Batcher, QueueFull
from .handler import FORMATS, format_from_accept, render
from .inputs import Article, InputError, article_from_body, article_from_obj, parse_json
from .metrics import Metrics, MetricsMiddleware

log = logging.getLogger("biascard.serve")
STATIC = Path(__file__).resolve().parent / "static"


def error(status: int, message: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            n = int(declared)
        except ValueError:
            raise InputError("Content-Length is not a number", "Content-Length") from None
        if n > limit:
            raise InputError(f"body of {n} bytes exceeds the limit of {limit}", "body", 413)
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:  # chunked or lying Content-Length: stop reading here
            raise InputError(f"body exceeds the limit of {limit} bytes", "body", 413)
    return bytes(buf)


def choose_format(request: Request, in_body: str | None = None) -> str:
    """?format= first, then a JSON body's "format", then the Accept header."""
    fmt = request.query_params.get("format")
    if fmt is None:
        fmt = in_body
    if fmt is not None:
        if fmt not in FORMATS:
            raise InputError(f"format must be one of {sorted(FORMATS)}, got {fmt[:40]!r}", "format")
        return fmt
    return format_from_accept(request.headers.get("accept", ""))


def respond(card: dict, fmt: str) -> Response:
    body = render(card, fmt)
    if fmt == "json":
        return JSONResponse(body)
    if fmt == "html":
        return HTMLResponse(body)
    return PlainTextResponse(body)


ARTICLE_SCHEMA = {
    "type": "object",
    "required": ["text"],
    "properties": {
        "text": {"type": "string", "description": "the article body; evidence offsets index it (Unicode code points)"},
        "title": {"type": ["string", "null"]},
        "source": {"type": ["string", "null"], "description": "outlet or domain"},
        "id": {"type": ["string", "null"], "description": "copied to the card"},
        "format": {"type": ["string", "null"], "enum": ["json", "text", "html", None],
                   "description": "rendering (POST /predictions only); ?format= wins"},
    },
}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
}


def _error_responses(*codes: int) -> dict:
    text = {400: "bad input", 404: "unknown model", 413: "body or text too large", 503: "queue full"}
    return {c: {"description": text[c], "content": {"application/json": {"schema": ERROR_SCHEMA}}} for c in codes}


class Cards:
    """What the routes share: the service, the batcher in front of it and the request limits."""

    def __init__(self, service, batcher: Batcher, cfg: Mapping):
        self.service = service
        self.batcher = batcher
        self.max_body = int(cfg.get("max_body_bytes", 1 << 20))
        self.max_chars = int(cfg.get("max_chars", 100_000))
        self.max_instances = int(cfg.get("max_instances", 32))

    async def compose(self, articles: list[Article]) -> list[Any]:
        try:
            return await self.batcher.submit_many(articles)
        except QueueFull:
            raise InputError("server busy: too many queued articles, retry later", None, 503) from None

    def check_model(self, model: str) -> None:
        name = self.service.name
        if model != name:
            raise InputError(f"unknown model {model[:100]!r}; this server serves {name!r}", "model", 404)

    async def instances(self, request: Request) -> list[Article]:
        """The articles of a KServe v1 body, {"instances": [article | text, ...]}."""
        payload = parse_json(await read_body(request, self.max_body))
        if not isinstance(payload, dict) or "instances" not in payload:
            raise InputError("expected an object with `instances`", "instances")
        instances = payload["instances"]
        if not isinstance(instances, list) or not instances:
            raise InputError("instances must be a non-empty list", "instances")
        if len(instances) > self.max_instances:
            raise InputError(f"{len(instances)} instances; the limit is {self.max_instances}", "instances", 413)
        return [article_from_obj(x, self.max_chars, f"instances[{i}].") for i, x in enumerate(instances)]


def add_error_handlers(app: FastAPI) -> None:
    """Every error is JSON {"error", "field"?}: Starlette's own (404, 405) and bad input."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError):
        return error(exc.status, exc.message, exc.field)


def add_model_routes(app: FastAPI, cards: Cards) -> None:
    service = cards.service

    @app.get("/ping", summary="Health check")
    async def ping():
        return {"status": "Healthy"}

    @app.get("/models", summary="The served model")
    async def models():
        return {"models": [service.info()]}

    @app.get("/v1/models/{model}", summary="KServe v1 model readiness")
    async def kserve_ready(model: str):
        cards.check_model(model)
        return {"name": service.name, "ready": True}


PREDICTION_DOC = {
    "summary": "The bias card of one article",
    "response_model": None,
    "responses": {200: {"description": "the card (JSON, text layout or HTML page)",
                        "content": {"application/json": {}, "text/plain": {}, "text/html": {}}},
                  **_error_responses(400, 404, 413, 503)},
    "openapi_extra": {
        "parameters": [{"name": "format", "in": "query", "required": False,
                        "schema": {"type": "string", "enum": sorted(FORMATS)}}],
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": ARTICLE_SCHEMA},
            "text/plain": {"schema": {"type": "string"}},
        }},
    },
}
KSERVE_PREDICT_DOC = {
    "summary": "KServe v1 predict: cards for a list of articles",
    "response_model": None,
    "responses": _error_responses(400, 404, 413, 503),
    "openapi_extra": {"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object",
        "required": ["instances"],
        "properties": {"instances": {"type": "array", "items": {"oneOf": [ARTICLE_SCHEMA, {"type": "string"}]}}},
    }}}}},
}


def add_prediction_routes(app: FastAPI, cards: Cards) -> None:
    """POST /predictions/{model} (one article, any rendering) and the KServe v1 predict route."""

    @app.post("/predictions/{model}", **PREDICTION_DOC)
    async def predictions(model: str, request: Request):
        cards.check_model(model)
        choose_format(request)  # a bad ?format= is refused before the body is read
        body = await read_body(request, cards.max_body)
        article = article_from_body(body, request.headers.get("content-type"), cards.max_chars)
        fmt = choose_format(request, article.format)
        (card,) = await cards.compose([article])
        if isinstance(card, BaseException):
            log.error("composition failed: %r", card)
            return error(500, "card composition failed")
        return respond(card, fmt)

    @app.post("/v1/models/{model}:predict", **KSERVE_PREDICT_DOC)
    async def kserve_predict(model: str, request: Request):
        cards.check_model(model)
        results = await cards.compose(await cards.instances(request))
        for c in results:
            if isinstance(c, BaseException):
                log.error("composition failed: %r", c)
                return error(500, "card composition failed")
        return {"predictions": results}


def add_page_and_metrics(app: FastAPI, metrics: Metrics) -> None:
    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def prometheus():
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def create_app(service, cfg: Mapping) -> FastAPI:
    """`service`: a ModelService (or anything with name, version, info(), compose(articles))."""
    metrics = Metrics()
    batcher = Batcher(service.compose, cfg.get("max_batch_size", 8), cfg.get("max_batch_delay_ms", 20) / 1000.0,
                      cfg.get("max_queue", 256), metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(
        title="biascard",
        version=str(service.version),
        description="Bias cards for news articles: four 1-5 cognitive-bias scores with evidence, SDGs, "
        "topics and political leaning. Fields the model cannot estimate are null.",
        lifespan=lifespan,
    )
    app.state.metrics, app.state.batcher, app.state.service = metrics, batcher, service
    cards = Cards(service, batcher, cfg)
    add_error_handlers(app)
    add_model_routes(app, cards)
    add_prediction_routes(app, cards)
    add_page_and_metrics(app, metrics)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def changed_settings(base: Mapping, new: Mapping) -> dict:
    """The keys of `new` whose values differ from `base` (nested mappings compared key by key)."""
    out = {}
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            sub = changed_settings(base[key], value)
            if sub:
                out[key] = sub
        elif key not in base or base[key] != value:
            out[key] = value
    return out


def open_service(cfg: Mapping):
    """The ModelService that `serve` runs. Of the `composer` section it passes only what differs
    from the composed config files (what the command line set): the composer lays that over the
    files and an archive's handler.composer, so the archive's settings count as in TorchServe."""
    from biascard.compose.settings import serve_config

    from .service import ModelService

    if not cfg.get("model_path"):
        raise ValueError("no model: pass model_path=PATH (a model dir or .mar) or set BIASCARD_MODEL")
    command_line = changed_settings(serve_config()["composer"], cfg.get("composer") or {})
    return ModelService(cfg["model_path"], name=cfg.get("name"), composer=command_line,
                        expect_sha256=cfg.get("model_sha256"), threads=cfg.get("threads"))


def serve(cfg: Mapping) -> None:
    """Load the model and run uvicorn until interrupted."""
    import uvicorn

    with open_service(cfg) as service:
        app = create_app(service, cfg)
        log.info("serving %s (%s) at http://%s:%s/", service.name, service.version, cfg["host"], cfg["port"])
        uvicorn.run(app, host=cfg["host"], port=int(cfg["port"]), log_level=cfg.get("log_level", "info"))
