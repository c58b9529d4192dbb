"""Micro-batching: articles from concurrent requests composed together in one worker thread."""
from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from .inputs import Article
from .metrics import Metrics


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
