"""The card composer under the real `kserve` package's ModelServer (the `kserve` extra, in the
test install), on loopback with KServe's v1 protocol: `python -m biascard.serve.kserve_model`
in its own process, its cards equal to the composer's, a bad instance failing alone, and a bad
body or an over-budget request answered 400 by KServe."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from biascard.card import validate
from biascard.compose.article import Article

from test_serve_support import close_cards, free_port, tiny_archive, tiny_model  # noqa: F401 - fixtures

ARTICLE = ("The council approved the budget on Tuesday. Critics said the plan ignores the poorest "
           "districts. \"This is a disaster,\" one resident said.")


@pytest.fixture(scope="module")
def kserve_url(tiny_archive):  # noqa: F811
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "biascard.serve.kserve_model", "--model_path", str(tiny_archive),
           "--model_name", "tiny", "--max_request_tokens", "70", "--http_port", str(port),
           "--enable_grpc", "false", "--workers", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{url}/v1/models/tiny", timeout=2).json().get("ready"):
                    break
            except (httpx.HTTPError, ValueError):
                time.sleep(0.5)
        else:
            proc.kill()
            pytest.fail(f"kserve ModelServer did not come up:\n{proc.stdout.read()[-3000:]}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def predict(url: str, **kwargs) -> httpx.Response:
    return httpx.post(f"{url}/v1/models/tiny:predict", timeout=60, **kwargs)


def test_kserve_is_the_real_package():
    import kserve

    from biascard.serve.kserve_model import build_model

    assert isinstance(build_model("x", "unused"), kserve.Model)


def test_modelserver_answers_v1_with_the_composers_cards(kserve_url, tiny_model):  # noqa: F811
    from biascard.compose.composer import Composer

    assert httpx.get(f"{kserve_url}/v1/models").json() == {"models": ["tiny"]}
    r = predict(kserve_url, json={"instances": [ARTICLE, {"text": "Second one. Short.", "id": "b"}]})
    assert r.status_code == 200 and set(r.json()) == {"predictions"}
    cards = r.json()["predictions"]
    for c in cards:
        validate(c)
    local = Composer.from_model_dir(tiny_model, name="tiny").compose(
        [Article(text=ARTICLE), Article(text="Second one. Short.", id="b")])
    for got, want in zip(cards, local, strict=True):
        close_cards(got, want)


def test_a_bad_instance_fails_alone(kserve_url):
    r = predict(kserve_url, json={"instances": ["ok.", {"text": ""}, {"text": "Third. Fine.", "id": "c"}]})
    assert r.status_code == 200
    out = r.json()
    assert out["predictions"][1] == {"error": "text is empty", "field": "instances[1].text"}
    assert out["predictions"][2]["id"] == "c" and out["field"] == "instances[1].text"
    assert out["error"].startswith("1 of 3 instances failed")


@pytest.mark.parametrize("kwargs, message", [
    ({"json": {"inputs": ["x"]}}, "instances: expected an object with `instances`"),
    ({"json": {"instances": []}}, "instances must be a non-empty list"),
    ({"json": {"instances": [ARTICLE, ARTICLE, ARTICLE]}}, "max_request_tokens"),
    # KServe passes a body that is not declared JSON through undecoded
    ({"content": b"{not json", "headers": {"content-type": "text/plain"}}, "body: the body is not JSON"),
])
def test_a_bad_request_is_400_with_its_field(kserve_url, kwargs, message):
    r = predict(kserve_url, **kwargs)
    assert r.status_code == 400 and message in r.json()["error"], r.text
