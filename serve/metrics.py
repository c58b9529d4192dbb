"""Prometheus metrics of the HTTP server: request counts and latency by route template,
micro-batch sizes, article outcomes and queue depth, in the text exposition format."""
from __future__ import annotations

import time
from typing import Callable

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
