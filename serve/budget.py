"""Per-request limits on work: a token budget checked before any model work, and a deadline
that also ends when the client goes away (its queued articles are then dropped)."""
from __future__ import annotations

import asyncio
import copy
import threading
from typing import Any, Awaitable

from .inputs import Article, InputError


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


class TokenBudget:
    """Counts an article's tokens once with the model's tokenizer (title + text, no special
    tokens, no truncation): the fast tokenizer does 100k characters in tens of ms, far less
    than one forward pass. Without a tokenizer (a stand-in service) a token is 4 characters.

    It counts with its own copy of the tokenizer, one call at a time: a fast tokenizer's
    truncation and padding settings are state that a call sets, so sharing it with the compose
    worker's thread made counts come back truncated (bench/soak.py found it; docs/reliability.md)."""

    def __init__(self, tokenizer, max_request_tokens: int | None):
        self.tokenizer = copy.deepcopy(tokenizer) if tokenizer is not None else None
        self.lock = threading.Lock()
        self.limit = int(max_request_tokens) if max_request_tokens else None

    def count(self, article: Article) -> int:
        text = f"{article.title}\n{article.text}" if article.title else article.text
        if self.tokenizer is None:
            return len(text) // 4 + 1
        with self.lock:
            ids = self.tokenizer(text, add_special_tokens=False, return_attention_mask=False, verbose=False)
        return len(ids["input_ids"])

    def costs(self, articles: list[Article], field: str) -> list[int]:
        """Token counts of `articles`; 413 naming `field` when their sum exceeds the budget."""
        costs = [self.count(a) for a in articles]
        total = sum(costs)
        if self.limit is not None and total > self.limit:
            what = f"{len(articles)} articles have" if len(articles) > 1 else "the article has"
            raise InputError(f"{what} {total} tokens; the limit per request is max_request_tokens={self.limit}",
                             field, 413)
        return costs


async def until_disconnected(request, poll_s: float = 0.1) -> None:
    """Returns once the client has disconnected (Starlette's non-blocking check, polled)."""
    while not await request.is_disconnected():
        await asyncio.sleep(poll_s)


async def bounded(work: Awaitable, request, timeout_s: float | None) -> Any:
    """`work`'s result; cancelled (so the batcher drops its queued articles) when the client
    disconnects (ClientGone) or after `timeout_s` (503, as for a full queue: retry later)."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(until_disconnected(request))
    try:
        done, _ = await asyncio.wait({task, watch}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, watch):
            t.cancel()
        await asyncio.wait({task, watch})  # the batcher has dropped the articles before we answer
    if task in done:
        return task.result()
    if watch in done:
        raise ClientGone()
    raise InputError(f"no answer within request_timeout_s={timeout_s:g} s; its queued articles were dropped, "
                     "retry later", "request_timeout_s", 503)
