"""Micro-batching: articles from concurrent requests composed together in one worker thread,
shared fairly across requests by tokens so one big request cannot starve small ones."""
from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from .inputs import Article
from .metrics import Metrics


class QueueFull(Exception):
    pass


class Job:
    """One request's articles not yet taken by the worker: (article, tokens, future), and the
    start tag of the first (start-time fair queuing: the tokens served before it, in virtual time)."""

    def __init__(self, items: list[tuple[Article, int, asyncio.Future]], tag: float):
        self.items = deque(items)
        self.tag = tag


class Batcher:
    """Collects articles from concurrent requests into batches of up to `max_batch_size`
    articles and `max_batch_tokens` tokens (an article over it is composed alone), waiting at
    most `max_delay` seconds after the first, and composes each batch in one worker thread.
    Requests share the worker by tokens (start-time fair queuing): the next article is the
    head of the request with the smallest start tag, so a small request that arrives behind a
    big one runs after the big one's current article, not after all of them. Each article's
    future gets its own card or exception; a request that stops waiting (deadline,
    disconnect) has its queued articles dropped."""

    def __init__(self, compose: Callable[[list[Article]], list[Any]], max_batch_size: int, max_delay: float,
                 max_queue: int, metrics: Metrics, max_batch_tokens: int | None = None):
        self.compose = compose
        self.max_batch_size = max(1, int(max_batch_size))
        self.max_delay = max(0.0, float(max_delay))
        self.max_queue = int(max_queue)
        self.max_batch_tokens = int(max_batch_tokens) if max_batch_tokens else None
        self.metrics = metrics
        self.jobs: list[Job] = []  # in arrival order: ties go to the earlier request
        self.vtime = 0.0  # start tag of the article taken last
        self.wake: asyncio.Event | None = None
        self.task: asyncio.Task | None = None
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="biascard-compose")
        metrics.queue_depth = self.depth

    def depth(self) -> int:
        return sum(len(j.items) for j in self.jobs)

    async def start(self) -> None:
        self.wake = asyncio.Event()
        self.task = asyncio.create_task(self._worker())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def submit_many(self, articles: list[Article], costs: list[int] | None = None) -> list[Any]:
        """A card or exception per article; `costs` are their token counts (for batching)."""
        if self.wake is None:
            raise RuntimeError("batcher not started")
        if self.depth() + len(articles) > self.max_queue:
            raise QueueFull()
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in articles]
        job = Job(list(zip(articles, costs or [0] * len(articles), futures)), self.vtime)
        if job.items:
            self.jobs.append(job)
            self.wake.set()
        try:
            return list(await asyncio.gather(*futures, return_exceptions=True))
        finally:
            self.drop(job)

    def drop(self, job: Job) -> None:
        """Forget `job`'s articles not yet taken (no-op once all were taken)."""
        job.items.clear()
        if job in self.jobs:  # identity: Job has no __eq__
            self.jobs.remove(job)
        if not self.jobs:
            self.vtime = 0.0

    def _over_tokens(self, tokens: int) -> bool:
        return self.max_batch_tokens is not None and tokens > self.max_batch_tokens

    def take(self) -> list[tuple[Article, asyncio.Future]]:
        """The next batch: articles in start-tag order; an article that would take the batch
        over max_batch_tokens starts the next batch (alone if it is over by itself)."""
        batch, tokens = [], 0
        while self.jobs and len(batch) < self.max_batch_size:
            job = min(self.jobs, key=lambda j: j.tag)
            article, cost, future = job.items[0]
            if batch and self._over_tokens(tokens + cost):
                break
            job.items.popleft()
            self.vtime = job.tag
            job.tag += max(1, cost)  # the next article starts when this one's tokens are served
            if not job.items:
                self.jobs.remove(job)
            if not future.done():
                batch.append((article, future))
                tokens += cost
            if self._over_tokens(tokens):
                break
        return batch

    async def _gather_delay(self) -> None:
        """Wait up to max_delay for more articles, unless a full batch is already queued."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_delay
        while self.depth() < self.max_batch_size:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self.wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wake.wait(), remaining)

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.jobs:
                self.wake.clear()
                await self.wake.wait()
            await self._gather_delay()
            live = self.take()
            if not live:
                continue
            self.metrics.batch.observe(len(live))
            try:
                results = await loop.run_in_executor(self.executor, self.compose, [a for a, _ in live])
            except Exception as e:  # noqa: BLE001 - compose_each already isolates articles
                results = [e] * len(live)
            for (_, f), r in zip(live, results):
                if f.done():  # its request stopped waiting
                    continue
                if isinstance(r, BaseException):
                    self.metrics.articles["error"] += 1
                    f.set_exception(r)
                else:
                    self.metrics.articles["ok"] += 1
                    f.set_result(r)
