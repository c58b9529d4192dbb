"""Bounded work per request: the token budget, the deadline, cancellation on disconnect,
round-robin scheduling across requests (the KServe adapter: tests/test_serve_kserve.py)."""
from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import pytest

from biascard.compose.article import Article

from test_serve_support import (  # noqa: F401 - fixtures
    ARTICLE,
    LiveServer,
    close_cards,
    server_cfg,
    tiny_archive,
    tiny_model,
)

pytestmark = pytest.mark.slow  # live servers

SMALL = "Short text. Two sentences."


class Gated:
    """The real service, whose compose waits for a permit per batch: tests decide when each
    micro-batch may run, so the order of events is deterministic. Records each batch's texts."""

    def __init__(self, service):
        self.service = service
        self.permits = threading.Semaphore(0)
        self.batches: list[list[str]] = []

    def __getattr__(self, name):
        return getattr(self.service, name)

    def compose(self, articles):
        self.batches.append([a.text for a in articles])
        assert self.permits.acquire(timeout=60), "test never released the batch"
        return self.service.compose(articles)


@pytest.fixture(scope="module")
def service(tiny_archive):
    from biascard.serve.service import ModelService

    with ModelService(tiny_archive, threads=2) as s:
        yield s


def tokens(service, text: str) -> int:
    return len(service.composer.tokenizer(text, add_special_tokens=False)["input_ids"])


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


class Background:
    """A POST in a thread; .response once done."""

    def __init__(self, url: str, path: str, **kwargs):
        self.response = None
        self.thread = threading.Thread(target=self._run, args=(url, path, kwargs), daemon=True)
        self.thread.start()

    def _run(self, url, path, kwargs):
        with httpx.Client(base_url=url, timeout=60) as c:
            self.response = c.post(path, **kwargs)

    def join(self) -> httpx.Response:
        self.thread.join(60)
        assert self.response is not None
        return self.response


# ---------------------------------------------------------------- 1. token budget


def test_token_count_is_the_tokenizers(service):
    from biascard.serve.budget import TokenBudget

    budget = TokenBudget(service.composer.tokenizer, 10_000)
    n = tokens(service, ARTICLE)
    assert budget.count(Article(text=ARTICLE)) == n > 50
    assert budget.count(Article(text=ARTICLE, title="Budget")) == tokens(service, "Budget\n" + ARTICLE)


def test_budget_counts_stay_whole_while_the_worker_tokenizes(service):
    """The budget counts in a request thread while the compose worker tokenizes with
    truncation (model/features.py): a shared fast tokenizer let the worker's max_length leak
    into counts (54 of 3541 in docs/reliability.md's check). Counts must never come back cut."""
    from biascard.serve.budget import TokenBudget

    tok = service.composer.tokenizer
    budget = TokenBudget(tok, None)
    text = "Some text to count. " * 200
    want = tokens(service, text)
    batch = [("word " * n).strip() for n in (3, 20, 80, 150, 7, 40, 9, 200)]
    done, counts = threading.Event(), set()

    def worker():
        for _ in range(1500):
            tok(batch, max_length=64, stride=16, truncation=True, padding="longest",
                return_overflowing_tokens=True, return_offsets_mapping=True)
        done.set()

    t = threading.Thread(target=worker)
    t.start()
    while not done.is_set():
        counts.add(budget.count(Article(text=text)))
    t.join()
    assert counts == {want} and want > 64


def test_over_budget_is_413_before_any_work(service):
    n = tokens(service, ARTICLE)
    limit = n + 5  # one ARTICLE fits, two do not
    with LiveServer(service, server_cfg(max_request_tokens=limit)) as live, \
            httpx.Client(base_url=live.url, timeout=60) as c:
        metrics = live.app.state.metrics
        assert c.post("/predictions/tiny", content=ARTICLE).status_code == 200
        before = (metrics.batch.count, dict(metrics.articles))
        r = c.post("/predictions/tiny", json={"text": ARTICLE, "title": "A long title " * 5})
        assert r.status_code == 413 and r.json()["field"] == "text"
        assert f"limit per request is max_request_tokens={limit}" in r.json()["error"]
        r = c.post("/v1/models/tiny:predict", json={"instances": [ARTICLE, ARTICLE]})
        body = r.json()
        assert r.status_code == 413 and body["field"] == "instances"
        assert f"2 articles have {2 * n} tokens" in body["error"] and f"={limit}" in body["error"]
        assert (metrics.batch.count, dict(metrics.articles)) == before  # nothing reached the model


# ---------------------------------------------------------------- 2. deadline and disconnect


def test_deadline_is_503_and_drops_queued_work(service):
    gated = Gated(service)
    with LiveServer(gated, server_cfg(request_timeout_s=0.5, max_batch_size=1)) as live:
        batcher = live.app.state.batcher
        first = Background(live.url, "/predictions/tiny", content=SMALL)
        wait_for(lambda: len(gated.batches) == 1)  # the worker holds it
        second = Background(live.url, "/v1/models/tiny:predict", json={"instances": [SMALL] * 3})
        wait_for(lambda: batcher.depth() == 3)
        for bg in (first, second):
            r = bg.join()
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert r.json()["field"] == "request_timeout_s" and "request_timeout_s=0.5" in r.json()["error"]
        assert batcher.depth() == 0 and len(gated.batches) == 1  # queued articles dropped, never run
        gated.permits.release(10)
        with httpx.Client(base_url=live.url, timeout=60) as c:  # the worker goes on serving
            assert c.post("/predictions/tiny", content=SMALL).status_code == 200


def raw_post(port: int, path: str, body: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return s


def test_disconnect_removes_queued_articles(service):
    gated = Gated(service)
    with LiveServer(gated, server_cfg(max_batch_size=1)) as live:
        batcher = live.app.state.batcher
        first = Background(live.url, "/predictions/tiny", content=SMALL)
        wait_for(lambda: len(gated.batches) == 1)
        gone = raw_post(live.port, "/v1/models/tiny:predict", b'{"instances": ["One.", "Two.", "Three."]}')
        wait_for(lambda: batcher.depth() == 3)
        gone.close()
        wait_for(lambda: batcher.depth() == 0, timeout=5)  # while the worker is still blocked
        gated.permits.release(10)
        assert first.join().status_code == 200
        time.sleep(0.3)
        assert len(gated.batches) == 1  # the gone client's articles were never composed


# ---------------------------------------------------------------- 3. fair scheduling


def test_batcher_takes_round_robin_and_big_articles_alone():
    """Unit test of the scheduling order with a stand-in compose (the server test below uses
    the real one)."""
    from biascard.serve.batching import Batcher
    from biascard.serve.metrics import Metrics

    batches: list[list[str]] = []

    def compose(articles):
        batches.append([a.text for a in articles])
        time.sleep(0.01)
        return [a.text for a in articles]

    async def go():
        b = Batcher(compose, max_batch_size=3, max_delay=0.0, max_queue=100, metrics=Metrics(), max_batch_tokens=50)
        await b.start()
        big = asyncio.create_task(b.submit_many([Article(text=f"big{i}") for i in range(4)], [100] * 4))
        await asyncio.sleep(0)  # big is queued first
        small = [asyncio.create_task(b.submit_many([Article(text=f"s{j}{i}") for i in range(2)], [1, 1]))
                 for j in range(2)]
        out = await asyncio.gather(big, *small)
        await b.stop()
        return out

    big, s0, s1 = asyncio.run(go())
    assert big == [f"big{i}" for i in range(4)] and s0 == ["s00", "s01"] and s1 == ["s10", "s11"]
    # each big article alone; the small requests, queued behind big0, run before big1, taking
    # turns (s00, s10, s01) within a batch
    assert batches == [["big0"], ["s00", "s10", "s01"], ["s11"], ["big1"], ["big2"], ["big3"]]


def test_small_request_overtakes_a_big_one_on_the_server(service):
    gated = Gated(service)
    n = tokens(service, ARTICLE)
    cfg = server_cfg(max_batch_tokens=n - 1, max_batch_size=8, max_batch_delay_ms=0)  # each ARTICLE alone
    with LiveServer(gated, cfg) as live:
        batcher = live.app.state.batcher
        big = Background(live.url, "/v1/models/tiny:predict", json={"instances": [ARTICLE] * 4})
        wait_for(lambda: len(gated.batches) == 1)
        small = Background(live.url, "/predictions/tiny", json={"text": SMALL, "id": "small"})
        wait_for(lambda: batcher.depth() == 4)  # 3 big articles and the small one queued
        gated.permits.release(2)  # the big one's first article, then the small one's turn
        card = small.join()
        assert card.status_code == 200 and card.json()["id"] == "small"
        assert big.response is None and big.thread.is_alive()  # the big request is still waiting
        gated.permits.release(10)
        r = big.join()
        assert r.status_code == 200 and len(r.json()["predictions"]) == 4
    assert gated.batches == [[ARTICLE], [SMALL], [ARTICLE], [ARTICLE], [ARTICLE]]
    close_cards(card.json(), service.compose([Article(text=SMALL, id="small")])[0])
    close_cards(r.json()["predictions"][3], service.compose([Article(text=ARTICLE)])[0])
