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

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .handler import FORMATS, format_from_accept, render
from .inputs import Article, InputError, article_from_body, article_from_obj, parse_json

log = logging.getLogger("biascard.serve")
STATIC = Path(__file__).resolve().parent / "static"

# ---------------------------------------------------------------- metrics

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class Histogram:
    def __init__(self, buckets):
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.sum += value
        self.count += 1
        for i, b in enumerate(self.buckets):
            if value <= b:
                self.counts[i] += 1


def _label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Hand-written Prometheus exposition (no extra dependency); updated from the event loop only."""

    def __init__(self):
        self.requests: dict[tuple[str, str, str], int] = {}
        self.latency: dict[str, Histogram] = {}
        self.batch = Histogram(BATCH_BUCKETS)
        self.articles = {"ok": 0, "error": 0}
        self.queue_depth: Callable[[], int] = lambda: 0

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, str(status))
        self.requests[key] = self.requests.get(key, 0) + 1
        self.latency.setdefault(route, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def render(self) -> str:
        lines = [
            "# HELP biascard_requests_total HTTP requests by route template, method and status.",
            "# TYPE biascard_requests_total counter",
        ]
        for (route, method, status), n in sorted(self.requests.items()):
            lines.append(f'biascard_requests_total{{route="{_label(route)}",method="{method}",status="{status}"}} {n}')
        lines += [
            "# HELP biascard_request_duration_seconds Request latency by route template.",
            "# TYPE biascard_request_duration_seconds histogram",
        ]
        for route, h in sorted(self.latency.items()):
            lines += _histogram_lines("biascard_request_duration_seconds", h, f'route="{_label(route)}"')
        lines += [
            "# HELP biascard_batch_size Articles per composed inference (micro-batch).",
            "# TYPE biascard_batch_size histogram",
        ]
        lines += _histogram_lines("biascard_batch_size", self.batch, "")
        lines += [
            "# HELP biascard_articles_total Articles composed into cards, by outcome.",
            "# TYPE biascard_articles_total counter",
        ]
        for outcome, n in sorted(self.articles.items()):
            lines.append(f'biascard_articles_total{{outcome="{outcome}"}} {n}')
        lines += [
            "# HELP biascard_queue_depth Articles waiting for a batch.",
            "# TYPE biascard_queue_depth gauge",
            f"biascard_queue_depth {self.queue_depth()}",
        ]
        return "\n".join(lines) + "\n"


def _histogram_lines(name: str, h: Histogram, labels: str) -> list[str]:
    sep = "," if labels else ""
    out = []
    for b, n in zip(h.buckets, h.counts):
        out.append(f'{name}_bucket{{{labels}{sep}le="{b}"}} {n}')
    out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {h.count}')
    braces = f"{{{labels}}}" if labels else ""
    out.append(f"{name}_sum{braces} {h.sum}")
    out.append(f"{name}_count{braces} {h.count}")
    return out


class MetricsMiddleware:
    """Pure ASGI: times every HTTP request and labels it by its route template."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or ("/static" if scope["path"].startswith("/static/") else "(unmatched)")
            self.metrics.request(path, scope.get("method", ""), status["code"], time.perf_counter() - start)


# ---------------------------------------------------------------- batching


class QueueFull(Exception):
    pass


class Batcher:
    """Collects articles from concurrent requests into batches of up to `max_batch_size`,
    waiting at most `max_delay` seconds after the first, and composes each batch in one
    worker thread. Each article's future gets its own card or exception."""

    def __init__(self, compose: Callable[[list[Article]], list[Any]], max_batch_size: int, max_delay: float,
                 max_queue: int, metrics: Metrics):
        self.compose = compose
        self.max_batch_size = max(1, int(max_batch_size))
        self.max_delay = max(0.0, float(max_delay))
        self.max_queue = int(max_queue)
        self.metrics = metrics
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="biascard-compose")
        metrics.queue_depth = lambda: self.queue.qsize() if self.queue else 0

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self.task = asyncio.create_task(self._worker())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def submit_many(self, articles: list[Article]) -> list[Any]:
        if self.queue is None:
            raise RuntimeError("batcher not started")
        if self.queue.qsize() + len(articles) > self.max_queue:
            raise QueueFull()
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in articles]
        for a, f in zip(articles, futures):
            self.queue.put_nowait((a, f))
        return list(await asyncio.gather(*futures, return_exceptions=True))

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            deadline = loop.time() + self.max_delay
            while len(batch) < self.max_batch_size:
                try:
                    batch.append(self.queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            live = [(a, f) for a, f in batch if not f.done()]  # a client may have gone away
            if not live:
                continue
            self.metrics.batch.observe(len(live))
            try:
                results = await loop.run_in_executor(self.executor, self.compose, [a for a, _ in live])
            except Exception as e:  # noqa: BLE001 - compose_each already isolates articles
                results = [e] * len(live)
            for (_, f), r in zip(live, results):
                if f.done():
                    continue
                if isinstance(r, BaseException):
                    self.metrics.articles["error"] += 1
                    f.set_exception(r)
                else:
                    self.metrics.articles["ok"] += 1
                    f.set_result(r)


# ---------------------------------------------------------------- app


def error(status: int, message: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status)


def _input_error(e: InputError) -> JSONResponse:
    return error(e.status, e.message, e.field)


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


def create_app(service, cfg: dict) -> FastAPI:
    """`service`: a ModelService (or anything with name, version, info(), compose(articles))."""
    metrics = Metrics()
    batcher = Batcher(service.compose, cfg.get("max_batch_size", 8), cfg.get("max_batch_delay_ms", 20) / 1000.0,
                      cfg.get("max_queue", 256), metrics)
    max_body = int(cfg.get("max_body_bytes", 1 << 20))
    max_chars = int(cfg.get("max_chars", 100_000))
    max_instances = int(cfg.get("max_instances", 32))

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
    app.state.metrics = metrics
    app.state.batcher = batcher
    app.state.service = service

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError):
        return _input_error(exc)

    async def cards_for(articles: list[Article]) -> list[Any]:
        try:
            return await batcher.submit_many(articles)
        except QueueFull:
            raise InputError("server busy: too many queued articles, retry later", None, 503) from None

    def check_model(model: str) -> None:
        if model != service.name:
            raise InputError(f"unknown model {model[:100]!r}; this server serves {service.name!r}", "model", 404)

    @app.get("/ping", summary="Health check")
    async def ping():
        return {"status": "Healthy"}

    @app.get("/models", summary="The served model")
    async def models():
        return {"models": [service.info()]}

    @app.post(
        "/predictions/{model}",
        summary="The bias card of one article",
        response_model=None,
        responses={200: {"description": "the card (JSON, text layout or HTML page)",
                         "content": {"application/json": {}, "text/plain": {}, "text/html": {}}},
                   **_error_responses(400, 404, 413, 503)},
        openapi_extra={
            "parameters": [{"name": "format", "in": "query", "required": False,
                            "schema": {"type": "string", "enum": sorted(FORMATS)}}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": ARTICLE_SCHEMA},
                    "text/plain": {"schema": {"type": "string"}},
                },
            },
        },
    )
    async def predictions(model: str, request: Request):
        check_model(model)
        choose_format(request)  # a bad ?format= is refused before the body is read
        body = await read_body(request, max_body)
        article = article_from_body(body, request.headers.get("content-type"), max_chars)
        fmt = choose_format(request, article.format)
        (card,) = await cards_for([article])
        if isinstance(card, BaseException):
            log.error("composition failed: %r", card)
            return error(500, "card composition failed")
        return respond(card, fmt)

    @app.get("/v1/models/{model}", summary="KServe v1 model readiness")
    async def kserve_ready(model: str):
        check_model(model)
        return {"name": service.name, "ready": True}

    @app.post(
        "/v1/models/{model}:predict",
        summary="KServe v1 predict: cards for a list of articles",
        response_model=None,
        responses=_error_responses(400, 404, 413, 503),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "required": ["instances"],
                    "properties": {"instances": {
                        "type": "array",
                        "items": {"oneOf": [ARTICLE_SCHEMA, {"type": "string"}]},
                    }},
                }}},
            },
        },
    )
    async def kserve_predict(model: str, request: Request):
        check_model(model)
        body = await read_body(request, max_body)
        payload = parse_json(body)
        if not isinstance(payload, dict) or "instances" not in payload:
            raise InputError("expected an object with `instances`", "instances")
        instances = payload["instances"]
        if not isinstance(instances, list) or not instances:
            raise InputError("instances must be a non-empty list", "instances")
        if len(instances) > max_instances:
            raise InputError(f"{len(instances)} instances; the limit is {max_instances}", "instances", 413)
        articles = [article_from_obj(x, max_chars, f"instances[{i}].") for i, x in enumerate(instances)]
        cards = await cards_for(articles)
        for c in cards:
            if isinstance(c, BaseException):
                log.error("composition failed: %r", c)
                return error(500, "card composition failed")
        return {"predictions": cards}

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def prometheus():
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def serve(cfg: dict) -> None:
    """Load the model and run uvicorn until interrupted."""
    import uvicorn

    from .service import ModelService

    if not cfg.get("model_path"):
        raise ValueError("no model: pass model_path=PATH (a model dir or .mar) or set BIASCARD_MODEL")
    with ModelService(cfg["model_path"], name=cfg.get("name"), composer=cfg.get("composer"),
                      expect_sha256=cfg.get("model_sha256"), threads=cfg.get("threads")) as service:
        app = create_app(service, cfg)
        log.info("serving %s (%s) at http://%s:%s/", service.name, service.version, cfg["host"], cfg["port"])
        uvicorn.run(app, host=cfg["host"], port=int(cfg["port"]), log_level=cfg.get("log_level", "info"))
