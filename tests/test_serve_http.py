"""The HTTP server end to end over real sockets on 127.0.0.1: routes, batching, limits,
bad inputs, an OpenAPI fuzz run and the web page in headless Chromium."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from biascard.card import parse_text, validate
from biascard.compose.article import Article
from biascard.model.model_dir import released_model, weights_version

from test_serve_support import (  # noqa: F401 - fixtures
    ARTICLE,
    LiveServer,
    close_cards,
    free_port,
    server_cfg,
    tiny_archive,
    tiny_model,
)

pytestmark = pytest.mark.slow  # a live server (and Chromium)

MAX_BODY = 20_000
MAX_CHARS = 5_000


@pytest.fixture(scope="module")
def service(tiny_archive):
    from biascard.serve.service import ModelService

    with ModelService(tiny_archive, threads=2) as s:  # the server loads the .mar directly
        yield s


@pytest.fixture(scope="module")
def live(service):
    cfg = server_cfg(max_body_bytes=MAX_BODY, max_chars=MAX_CHARS, max_batch_size=4, max_batch_delay_ms=150,
                     max_instances=4)
    with LiveServer(service, cfg) as srv:
        yield srv


@pytest.fixture()
def client(live):
    with httpx.Client(base_url=live.url, timeout=60) as c:
        yield c


def test_ping_models_and_docs(client, service):
    assert client.get("/ping").json() == {"status": "Healthy"}
    models = client.get("/models").json()["models"]
    assert models[0]["modelName"] == "tiny" == service.name and "biased_words" in models[0]["heads"]
    assert client.get("/v1/models/tiny").json() == {"name": "tiny", "ready": True}
    spec = client.get("/openapi.json").json()
    assert {"/predictions/{model}", "/v1/models/{model}:predict", "/models", "/ping", "/metrics"} <= set(spec["paths"])
    assert "swagger" in client.get("/docs").text.lower()
    page = client.get("/")
    assert page.status_code == 200 and 'id="article"' in page.text
    assert client.get("/static/app.js").status_code == 200


def test_prediction_formats(client, service):
    r = client.post("/predictions/tiny", content=ARTICLE.encode(), headers={"Content-Type": "text/plain"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    card = r.json()
    validate(card)
    # the same article through the composer directly: the server adds nothing and loses nothing
    close_cards(card, service.compose([Article(text=ARTICLE)])[0])
    r = client.post("/predictions/tiny", json={"text": ARTICLE, "title": "Budget", "source": "example.org", "id": "7"})
    card = r.json()
    validate(card)
    assert (card["title"], card["source"], card["id"]) == ("Budget", "example.org", "7")
    text = client.post("/predictions/tiny?format=text", json={"text": ARTICLE, "title": "Budget"})
    assert text.headers["content-type"].startswith("text/plain")
    parsed = parse_text(text.text)
    assert parsed["title"] == "Budget"
    assert [c["score"] for c in parsed["cognitive_concepts"]] == [c["score"] for c in card["cognitive_concepts"]]
    html = client.post("/predictions/tiny", content=ARTICLE, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert html.headers["content-type"].startswith("text/html") and "<html" in html.text.lower()
    assert client.post("/predictions/tiny", json={"text": ARTICLE, "format": "text"}).headers["content-type"].startswith("text/plain")
    assert client.post("/predictions/tiny", content=ARTICLE, headers={"Accept": "text/plain"}).headers["content-type"].startswith("text/plain")


def test_kserve_v1(client):
    r = client.post("/v1/models/tiny:predict", json={"instances": [ARTICLE, {"text": "Second one. Short.", "id": "b"}]})
    assert r.status_code == 200
    preds = r.json()["predictions"]
    assert len(preds) == 2 and preds[1]["id"] == "b"
    for c in preds:
        validate(c)


BAD = [
    # (method/path, kwargs, status, field)
    ("/predictions/tiny", {"content": b""}, 400, "text"),
    ("/predictions/tiny", {"content": b"   \n\t "}, 400, "text"),
    ("/predictions/tiny", {"content": b"\xff\xfe\x00abc"}, 400, "body"),
    ("/predictions/tiny", {"content": b"{bad json", "headers": {"Content-Type": "application/json"}}, 400, "body"),
    ("/predictions/tiny", {"json": {"title": "no text"}}, 400, "text"),
    ("/predictions/tiny", {"json": {"text": 5}}, 400, "text"),
    ("/predictions/tiny", {"json": {"text": ["a"]}}, 400, "text"),
    ("/predictions/tiny", {"json": {"text": "ok text.", "title": {"x": 1}}}, 400, "title"),
    ("/predictions/tiny", {"json": [1, 2]}, 400, None),
    ("/predictions/tiny", {"content": b"null", "headers": {"Content-Type": "application/json"}}, 400, None),
    ("/predictions/tiny", {"json": {"text": "a\x00b"}}, 400, "text"),
    ("/predictions/tiny", {"json": {"text": "x" * (MAX_CHARS + 1)}}, 413, "text"),
    ("/predictions/tiny", {"content": b"x" * (MAX_BODY + 1)}, 413, "body"),
    ("/predictions/tiny?format=pdf", {"content": b"fine text."}, 400, "format"),
    ("/predictions/tiny", {"json": {"text": "fine.", "format": "yaml"}}, 400, "format"),
    ("/predictions/other", {"content": b"fine text."}, 404, "model"),
    ("/v1/models/tiny:predict", {"json": {"instances": []}}, 400, "instances"),
    ("/v1/models/tiny:predict", {"json": {"inputs": ["x"]}}, 400, "instances"),
    ("/v1/models/tiny:predict", {"json": {"instances": "text"}}, 400, "instances"),
    ("/v1/models/tiny:predict", {"json": {"instances": [{"text": ""}]}}, 400, "instances[0].text"),
    ("/v1/models/tiny:predict", {"json": {"instances": [3]}}, 400, "instances[0]"),
    ("/v1/models/tiny:predict", {"json": {"instances": ["a."] * 5}}, 413, "instances"),
    ("/v1/models/tiny:predict", {"content": b"[]", "headers": {"Content-Type": "application/json"}}, 400, "instances"),
    ("/v1/models/nope:predict", {"json": {"instances": ["a."]}}, 404, "model"),
]


@pytest.mark.parametrize("path, kwargs, status, field", BAD, ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)])
def test_bad_inputs_are_4xx_with_json_error(client, path, kwargs, status, field):
    r = client.post(path, **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert isinstance(body["error"], str) and body["error"]
    assert body.get("field") == field


def test_oversized_stream_is_cut_without_content_length(live, client):
    def chunks():  # chunked transfer: no Content-Length to check up front
        for _ in range(50):
            yield b"y" * 1000

    r = client.post("/predictions/tiny", content=chunks())
    assert r.status_code == 413 and r.json()["field"] == "body"
    # a declared huge body is refused before any of it is read (raw socket: httpx checks lengths)
    with socket.create_connection(("127.0.0.1", live.port), timeout=30) as sock:
        sock.sendall(b"POST /predictions/tiny HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                     b"Content-Length: 999999999\r\n\r\nabc")
        data = b""
        while b'"field":"body"' not in data:  # headers and body may come in separate packets
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 413") and b'"field":"body"' in data


def test_unknown_route_and_method(client):
    r = client.get("/nothing")
    assert r.status_code == 404 and r.json() == {"error": "Not Found"}
    assert client.get("/predictions/tiny").status_code == 405


def test_concurrent_requests_are_batched(live, client):
    texts = [f"Article number {i}. It has two sentences." for i in range(6)]

    async def go():
        async with httpx.AsyncClient(base_url=live.url, timeout=60) as c:
            return await asyncio.gather(*(c.post("/predictions/tiny", json={"text": t, "id": str(i)}) for i, t in enumerate(texts)))

    before = live.app.state.metrics.batch.count
    rs = asyncio.run(go())
    assert [r.status_code for r in rs] == [200] * 6
    assert [r.json()["id"] for r in rs] == [str(i) for i in range(6)]  # each request gets its own card
    batches = live.app.state.metrics.batch.count - before
    assert batches < 6  # some requests shared a forward pass
    metrics = client.get("/metrics").text
    assert 'biascard_requests_total{route="/predictions/{model}",method="POST",status="200"}' in metrics
    assert "biascard_batch_size_bucket" in metrics and "biascard_request_duration_seconds_bucket" in metrics
    assert "biascard_articles_total" in metrics and "biascard_queue_depth" in metrics


def test_openapi_fuzz_never_5xx(live):
    """schemathesis generates requests from /openapi.json and runs all its checks on every
    answer: no 5xx, documented statuses, content types and schemas, schema-violating requests
    refused, valid ones accepted, Allow on 405. NUL is not generated: the server refuses it in
    text, which the schema's pattern says, but schemathesis does not apply patterns to raw
    text/plain bodies (serve/README.md, Fuzzing)."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    schema.config.generation.update(allow_x00=False)
    # 413 is how the server refuses text over max_chars and instances over max_instances
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    ops = [r.ok() for r in schema.get_all_operations()]
    assert len(ops) >= 6
    seen = []
    for op in ops:
        # valid and schema-violating requests; with the real model name too, or almost
        # every generated request would stop at the 404 before its body is read
        modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        strategies = [op.as_strategy(m) for m in modes]
        if "{model}" in op.path:
            strategies += [op.as_strategy(m, path_parameters={"model": "tiny"}) for m in modes]

        @settings(max_examples=20 * len(strategies), deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=st.one_of(strategies))
        def run(case):
            r = case.call_and_validate(base_url=live.url, timeout=60)  # all checks; raises on a failure
            seen.append(r.status_code)
            assert r.status_code < 500, f"{case.method} {case.formatted_path}: {r.status_code} {r.text[:300]}"

        run()
    assert len(seen) >= 100 and seen.count(200) >= 20 and any(400 <= s < 500 for s in seen)


def test_web_page_in_chromium(live, client):
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(chromium):
        pytest.fail("chromium is missing: `make browser` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    article = "Café owners “protest” loudly. 🎉 The mayor said nothing.\n\n" + ARTICLE
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(live.url + "/")
            page.wait_for_function("document.getElementById('model-name').textContent.includes('tiny')")
            page.fill("#title", "Budget")
            page.fill("#article", article)
            page.click("#submit")
            page.wait_for_selector("#card:not([hidden])", timeout=60_000)
            card = json.loads(page.text_content("#card-json"))
            shown = {el.get_attribute("data-concept"): el.get_attribute("data-score")
                     for el in page.query_selector_all("#concepts .concept")}
            marked = "".join(m.text_content() for m in page.query_selector_all("#highlighted mark.ev"))
            bold = [b.text_content() for b in page.query_selector_all("#highlighted b.word")]
            highlighted = page.text_content("#highlighted")
            # an empty article shows the server's error, not a card
            page.fill("#article", " ")
            page.eval_on_selector("#article", "e => e.removeAttribute('required')")
            page.click("#submit")
            page.wait_for_selector("#error:not([hidden])")
            error_text = page.text_content("#error")
        finally:
            browser.close()
    assert not errors, errors
    validate(card)
    api = client.post("/predictions/tiny", json={"text": article, "title": "Budget"}).json()
    close_cards(card, api)
    assert shown == {c["concept"]: ("null" if c["score"] is None else str(c["score"])) for c in api["cognitive_concepts"]}
    assert highlighted == article  # the page shows the article itself, highlighted in place
    evidence = [ev for c in api["cognitive_concepts"] for ev in c["evidence"]]
    assert evidence
    for ev in evidence:  # code-point offsets land on the same text in the browser (emoji above)
        assert ev["text"] in marked
    words = {w for ev in evidence for w in ev.get("words", [])}
    assert set(bold) == words
    assert "400" in error_text and "text is empty" in error_text


@contextlib.contextmanager
def running_server(cmd: list[str], cwd, env: dict, port: int):
    """A `biascard serve` process, once /ping answers; its base URL. Stopped by PID."""
    log = cwd / "serve.log"
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(url + "/ping", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_biascard_serve_command(tiny_archive, tmp_path):
    """The console script: Hydra config, overrides, model from a .mar, clean stop by PID."""
    exe = str(Path(sys.executable).parent / "biascard-serve")
    env = {k: v for k, v in os.environ.items() if k != "BIASCARD_MODEL"}
    if released_model() is None:  # an install without the repo's models/: no model is an error
        r = subprocess.run([exe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and "no model" in r.stderr
    else:  # no model_path: the released model
        port = free_port()
        with running_server([exe, f"port={port}"], tmp_path, env, port) as url:
            card = httpx.post(url + "/predictions/biascard", content="Short text. Two sentences here.", timeout=60).json()
            validate(card)
            assert card["model"]["version"] == weights_version(released_model())
    port = free_port()
    with running_server([exe, f"model_path={tiny_archive}", f"port={port}", "name=bias", "max_chars=50",
                         "composer.evidence_k=1"], tmp_path, env, port) as url:
        card = httpx.post(url + "/predictions/bias", content="Short text. Two sentences here.", timeout=60).json()
        validate(card)
        assert card["model"]["name"] == "bias" and all(len(c["evidence"]) <= 1 for c in card["cognitive_concepts"])
        assert httpx.post(url + "/predictions/bias", content="x" * 51, timeout=60).status_code == 413
    assert sorted(p.name for p in tmp_path.iterdir()) == ["serve.log"]  # Hydra wrote no run dir or log file


# A Hydra search-path plugin that puts a folder holding local/serve.yaml first: the same
# `optional local: serve` entry of configs/serve.yaml reads it, in the processes that get the
# plugin on PYTHONPATH only (so the shared configs/local/ is never written).
LOCAL_PLUGIN = '''
from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class LocalServeConfig(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.prepend("biascard-test-local", "file://{conf}")
'''

CLI_AND_HANDLER = '''
import json, sys
from types import SimpleNamespace
from biascard.cli import main
from biascard.serve.archive import extract_archive, read_manifest
from biascard.serve.handler import handle

mar, article, out, extract = sys.argv[1:5]
assert main(["card", "--model", mar, "-o", out, article]) == 0
model_dir = extract_archive(mar, extract)
ctx = SimpleNamespace(system_properties={"model_dir": str(model_dir)}, manifest=read_manifest(mar), model_yaml_config={})
handle(None, ctx)
(card,) = handle([{"body": open(article, "rb").read()}], ctx)
print(json.dumps(card))
'''


def _language_evidence(card: dict) -> int:
    validate(card)
    (concept,) = [c for c in card["cognitive_concepts"] if c["concept"] == "language_bias"]
    return len(concept["evidence"])


def test_local_serve_config_reaches_cli_handler_and_server(tiny_archive, service, tmp_path):
    """configs/local/serve.yaml-style overrides (composer.evidence_k: 1) reach `biascard card`,
    the TorchServe handler and `biascard serve` alike."""
    assert _language_evidence(service.compose([Article(text=ARTICLE)])[0]) > 1  # without the file
    conf = tmp_path / "conf"
    (conf / "local").mkdir(parents=True)
    (conf / "local" / "serve.yaml").write_text("composer:\n  evidence_k: 1\n")
    plugin = tmp_path / "plugins" / "hydra_plugins" / "biascard_test_local"
    plugin.mkdir(parents=True)
    (plugin / "__init__.py").write_text(LOCAL_PLUGIN.format(conf=conf))
    env = {k: v for k, v in os.environ.items() if k != "BIASCARD_MODEL"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path / "plugins"), env.get("PYTHONPATH")]))
    article = tmp_path / "article.txt"
    article.write_text(ARTICLE)

    r = subprocess.run([sys.executable, "-c", CLI_AND_HANDLER, str(tiny_archive), str(article),
                        str(tmp_path / "cli.json"), str(tmp_path / "extracted")],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert _language_evidence(json.loads((tmp_path / "cli.json").read_text())) == 1  # biascard card
    assert _language_evidence(json.loads(r.stdout.splitlines()[-1])) == 1  # the TorchServe handler
    port = free_port()
    exe = str(Path(sys.executable).parent / "biascard")
    with running_server([exe, "serve", f"model_path={tiny_archive}", f"port={port}"], tmp_path, env, port) as url:
        card = httpx.post(url + f"/predictions/{service.name}", content=ARTICLE.encode(), timeout=60).json()
    assert _language_evidence(card) == 1  # biascard serve
