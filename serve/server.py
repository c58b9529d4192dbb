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
API key, Host allow-list, body timeout and TLS: serve/security.py.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any, Mapping

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .batching import Batcher, QueueFull
from .budget import ClientGone, TokenBudget, bounded
from .handler import FORMATS, format_from_accept, render
from .inputs import Article, InputError, article_from_body, instances_from_payload, mixed_predictions, parse_json
from .metrics import Metrics, MetricsMiddleware
from .security import SecurityMiddleware, allowed_hosts, api_key, check_bind, uvicorn_options

log = logging.getLogger("biascard.serve")
STATIC = Path(__file__).resolve().parent / "static"


RETRY_AFTER_S = 1  # a full queue drains in about a batch's time


def error(status: int, message: str, field: str | None = None, headers: Mapping | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    if status == 503:
        headers = {"Retry-After": str(RETRY_AFTER_S), **(headers or {})}
    return JSONResponse(body, status_code=status, headers=dict(headers) if headers else None)


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


# text the server accepts: a character str.strip() keeps, no NUL (lone surrogates are refused
# too). Spelled out: str.strip()'s whitespace differs from both Python's and ECMA's \\s.
_SPACE = "\\t\\n\\x0b\\x0c\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
TEXT_SCHEMA = {"type": "string", "minLength": 1, "pattern": f"^[^\\x00]*[^\\x00{_SPACE}][^\\x00]*$"}
ARTICLE_SCHEMA = {
    "type": "object",
    "required": ["text"],
    "properties": {
        "text": {**TEXT_SCHEMA, "description": "the article body; evidence offsets index it (Unicode code points)"},
        "title": {"type": ["string", "null"]},
        "source": {"type": ["string", "null"], "description": "outlet or domain"},
        "id": {"type": ["string", "number", "null"], "description": "copied to the card (a number as text)"},
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
    text = {400: "bad input (or a Host header that is not allowed)", 401: "API key missing or wrong (api_key set)",
            404: "unknown model", 408: "the body did not arrive within body_timeout_s",
            413: "body, text or tokens (max_request_tokens) too large",
            415: "a JSON article sent under a non-JSON Content-Type",
            500: "card composition failed", 503: "queue full or request_timeout_s passed; see Retry-After"}
    return {c: {"description": text[c], "content": {"application/json": {"schema": ERROR_SCHEMA}}} for c in codes}


class Cards:
    """What the routes share: the service, the batcher in front of it and the request limits."""

    def __init__(self, service, batcher: Batcher, cfg: Mapping):
        self.service = service
        self.batcher = batcher
        self.max_body = int(cfg.get("max_body_bytes", 1 << 20))
        self.max_chars = int(cfg.get("max_chars", 100_000))
        self.max_instances = int(cfg.get("max_instances", 32))
        self.timeout = float(cfg["request_timeout_s"]) if cfg.get("request_timeout_s") else None
        tokenizer = getattr(getattr(service, "composer", None), "tokenizer", None)
        self.budget = TokenBudget(tokenizer, cfg.get("max_request_tokens"))

    async def compose(self, request: Request, articles: list[Article], field: str) -> list[Any]:
        """Cards for `articles`: over the token budget 413 before any work; then queued, within
        request_timeout_s, and dropped from the queue if the client goes away."""
        costs = await asyncio.to_thread(self.budget.costs, articles, field)  # ~40 ms per 100k chars: off the loop
        try:
            return await bounded(self.batcher.submit_many(articles, costs), request, self.timeout)
        except QueueFull:
            raise InputError("server busy: too many queued articles, retry later", None, 503) from None

    def check_model(self, model: str) -> None:
        name = self.service.name
        if model != name:
            raise InputError(f"unknown model {model[:100]!r}; this server serves {name!r}", "model", 404)

    async def instances(self, request: Request) -> list[Article | InputError]:
        """The articles of a KServe v1 body, {"instances": [article | text, ...]}, each an
        Article or the InputError of that instance."""
        payload = parse_json(await read_body(request, self.max_body))
        return instances_from_payload(payload, self.max_chars, self.max_instances)

    async def predictions(self, request: Request, items: list[Article | InputError]) -> JSONResponse:
        """{"predictions": [card | error object, ...]} (inputs.mixed_predictions); the token
        budget covers every instance of the request."""
        articles = [a for a in items if isinstance(a, Article)]
        body, status = mixed_predictions(items, await self.compose(request, articles, "instances"))
        return JSONResponse(body, status_code=status)


def add_error_handlers(app: FastAPI) -> None:
    """Every error is JSON {"error", "field"?}: Starlette's own (404, 405) and bad input."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail), headers=exc.headers)  # 405 keeps its Allow

    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError):
        # after a body timeout the rest of the body may still come: do not reuse the connection
        return error(exc.status, exc.message, exc.field, {"Connection": "close"} if exc.status == 408 else None)

    @app.exception_handler(ClientGone)
    async def client_gone(request: Request, exc: ClientGone):
        return error(499, "client closed the request")  # nginx's code; nobody reads it


def add_model_routes(app: FastAPI, cards: Cards) -> None:
    service = cards.service

    @app.get("/ping", summary="Health check")
    async def ping():
        return {"status": "Healthy"}

    @app.get("/models", summary="The served model", responses=_error_responses(401))
    async def models():
        return {"models": [service.info()]}

    @app.get("/v1/models/{model}", summary="KServe v1 model readiness", responses=_error_responses(401, 404))
    async def kserve_ready(model: str):
        cards.check_model(model)
        return {"name": service.name, "ready": True}


PREDICTION_DOC = {
    "summary": "The bias card of one article",
    "response_model": None,
    "responses": {200: {"description": "the card (JSON, text layout or HTML page)",
                        "content": {"application/json": {}, "text/plain": {}, "text/html": {}}},
                  **_error_responses(400, 401, 404, 408, 413, 415, 500, 503)},
    "openapi_extra": {
        "parameters": [{"name": "format", "in": "query", "required": False,
                        "schema": {"type": "string", "enum": sorted(FORMATS)}}],
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": {"oneOf": [ARTICLE_SCHEMA, TEXT_SCHEMA]}},  # a JSON string is the text
            "text/plain": {"schema": TEXT_SCHEMA},
        }},
    },
}
KSERVE_PREDICT_DOC = {
    "summary": "KServe v1 predict: cards for a list of articles",
    "description": "A bad instance fails alone: the answer then has the first failure's status, "
                   "`error` and `field` (instances[i]...), and `predictions` with every other card and "
                   "an error object in place of each failed instance.",
    "response_model": None,
    "responses": {200: {"description": "a card per instance", "content": {"application/json": {"schema": {
        "type": "object", "required": ["predictions"], "properties": {"predictions": {"type": "array"}}}}}},
                  **_error_responses(400, 401, 404, 408, 413, 500, 503)},
    "openapi_extra": {"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object",
        "required": ["instances"],
        "properties": {"instances": {"type": "array", "minItems": 1,
                                     "items": {"oneOf": [ARTICLE_SCHEMA, TEXT_SCHEMA]}}},
    }}}}},
}


def with_limits(doc: Any, max_chars: int, max_instances: int) -> Any:
    """A copy of a route doc whose text and instances schemas carry this server's limits."""
    if isinstance(doc, list):
        return [with_limits(x, max_chars, max_instances) for x in doc]
    if not isinstance(doc, dict):
        return doc
    out = {k: with_limits(v, max_chars, max_instances) for k, v in doc.items()}
    if out.get("pattern") == TEXT_SCHEMA["pattern"]:
        out["maxLength"] = max_chars
    if "minItems" in out:
        out["maxItems"] = max_instances
    return out


def add_prediction_routes(app: FastAPI, cards: Cards) -> None:
    """POST /predictions/{model} (one article, any rendering) and the KServe v1 predict route."""
    limits = (cards.max_chars, cards.max_instances)

    @app.post("/predictions/{model}", **with_limits(PREDICTION_DOC, *limits))
    async def predictions(model: str, request: Request):
        cards.check_model(model)
        choose_format(request)  # a bad ?format= is refused before the body is read
        body = await read_body(request, cards.max_body)
        article = article_from_body(body, request.headers.get("content-type"), cards.max_chars, strict_type=True)
        fmt = choose_format(request, article.format)
        (card,) = await cards.compose(request, [article], "text")
        if isinstance(card, BaseException):
            log.error("composition failed: %r", card)
            return error(500, "card composition failed")
        return respond(card, fmt)

    @app.post("/v1/models/{model}:predict", **with_limits(KSERVE_PREDICT_DOC, *limits))
    async def kserve_predict(model: str, request: Request):
        cards.check_model(model)
        return await cards.predictions(request, await cards.instances(request))


def add_page_and_metrics(app: FastAPI, metrics: Metrics) -> None:
    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse,
             responses=_error_responses(401))
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
                      cfg.get("max_queue", 256), metrics, cfg.get("max_batch_tokens"))

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
    # predictions first: `{model}` also matches "x:predict", and the first route whose path
    # matches decides the Allow header of a 405
    add_prediction_routes(app, cards)
    add_model_routes(app, cards)
    add_page_and_metrics(app, metrics)
    app.add_middleware(SecurityMiddleware, hosts=allowed_hosts(cfg), key=api_key(cfg),
                       body_timeout=cfg.get("body_timeout_s"))
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: refusals are counted too
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
    from biascard.model.model_dir import released_model

    from .service import ModelService

    path = cfg.get("model_path") or released_model()
    if not path:
        raise ValueError("no model: pass model_path=PATH (a model dir or .mar) or set BIASCARD_MODEL "
                         "(the released models/biascard-minilm is not here)")
    if not cfg.get("model_path"):
        log.info("serving the released model %s", path)
    command_line = changed_settings(serve_config()["composer"], cfg.get("composer") or {})
    return ModelService(path, name=cfg.get("name"), composer=command_line,
                        expect_sha256=cfg.get("model_sha256"), threads=cfg.get("threads"))


def _exit_on_signal(signum, frame):
    # uvicorn re-raises SIGTERM after its graceful shutdown; exiting through SystemExit (not the
    # default handler) lets `with open_service(...)` remove the extracted archive
    raise SystemExit(128 + signum)


def serve(cfg: Mapping) -> None:
    """Load the model and run uvicorn until interrupted."""
    import uvicorn

    check_bind(cfg)
    options = uvicorn_options(cfg)  # bad TLS settings fail before the model loads
    if Path(str(cfg.get("model_path") or "")).is_file() and not cfg.get("model_sha256"):
        log.warning("no model_sha256 pin for %s: SHA256SUMS inside catches corruption, not a forged archive "
                    "(pin the sha256 that `biascard archive` printed)", cfg["model_path"])
    previous = signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        with open_service(cfg) as service:
            app = create_app(service, cfg)
            scheme = "https" if "ssl_certfile" in options else "http"
            log.info("serving %s (%s) at %s://%s:%s/", service.name, service.version, scheme, cfg["host"], cfg["port"])
            uvicorn.run(app, host=cfg["host"], port=int(cfg["port"]), log_level=cfg.get("log_level", "info"),
                        **options)
    finally:
        signal.signal(signal.SIGTERM, previous)
