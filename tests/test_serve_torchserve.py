"""Real TorchServe 0.12 serving our archive: the same card as our own server.

TorchServe runs as a Java frontend (started here with --foreground, every listener on
127.0.0.1, token auth off, no config snapshots) plus one Python worker that imports the
archive's handler file. TMPDIR points into the test's temp dir, so the pid file and the
worker socket (.ts.sock.9000) are ours alone; the Java PID is stopped at the end.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from biascard.card import validate

from test_serve_support import ARTICLE, LiveServer, close_cards, free_port, server_cfg, tiny_archive, tiny_model  # noqa: F401

BIN = Path(sys.executable).parent
DEPLOY_CONFIG = Path(__file__).resolve().parents[1] / "serve" / "deploy" / "config.properties"
pytestmark = pytest.mark.slow  # a Java frontend and a Python worker


def _wait(url: str, seconds: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"torchserve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"torchserve did not answer {url} in {seconds}s:\n{log.read_text()[-3000:]}")


def deploy_config(ports: list[int]) -> str:
    """serve/deploy/config.properties on free ports; the test registers its own archive (tiny)
    through the management API instead of load_models, and skips system metrics."""
    keys = dict(line.split("=", 1) for line in DEPLOY_CONFIG.read_text().splitlines()
                if line and not line.startswith("#"))
    for key, port in zip(("inference_address", "management_address", "metrics_address"), ports, strict=True):
        assert keys[key].startswith("http://127.0.0.1:"), key
        keys[key] = f"http://127.0.0.1:{port}"
    del keys["load_models"]
    keys.update(disable_system_metrics="true", enable_model_api="true", number_of_netty_threads="2")
    return "".join(f"{k}={v}\n" for k, v in keys.items())


@pytest.fixture(scope="module")
def torchserve(tiny_archive, tmp_path_factory):
    if shutil.which("java") is None:
        pytest.skip("no java on PATH: TorchServe's frontend is a Java program")
    assert (BIN / "torchserve").is_file(), "torchserve is not installed: pip install -e '.[torchserve]'"
    root = tmp_path_factory.mktemp("torchserve")
    store, tmp, logs = root / "store", root / "tmp", root / "logs"
    for d in (store, tmp, logs):
        d.mkdir()
    shutil.copy(tiny_archive, store / "tiny.mar")
    ports = [free_port() for _ in range(3)]
    (root / "config.properties").write_text(deploy_config(ports))
    env = dict(os.environ, TMPDIR=str(tmp), TEMP=str(tmp), LOG_LOCATION=str(logs), METRICS_LOCATION=str(logs))
    log = root / "torchserve.out"
    start = time.monotonic()
    proc = subprocess.Popen(
        [str(BIN / "torchserve"), "--start", "--foreground", "--ncs", "--disable-token-auth",
         "--model-store", str(store), "--ts-config", str(root / "config.properties")],
        cwd=root, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
    )
    java_pid = None
    try:
        _wait(f"http://127.0.0.1:{ports[0]}/ping", 90, proc, log)
        started = time.monotonic() - start
        java_pid = int((tmp / ".model_server.pid").read_text().strip())
        r = httpx.post(f"http://127.0.0.1:{ports[1]}/models",
                       params={"url": "tiny.mar", "initial_workers": 1, "synchronous": "true"}, timeout=240)
        assert r.status_code == 200, f"{r.text}\n{(logs / 'model_log.log').read_text()[-3000:] if (logs / 'model_log.log').exists() else ''}"
        print(f"torchserve: frontend up in {started:.1f}s, model registered after {time.monotonic() - start:.1f}s")
        yield {"url": f"http://127.0.0.1:{ports[0]}", "management": f"http://127.0.0.1:{ports[1]}", "tmp": tmp,
               "logs": logs}
    finally:
        if java_pid is None and (tmp / ".model_server.pid").is_file():
            java_pid = int((tmp / ".model_server.pid").read_text().strip())
        if java_pid is not None:
            try:
                os.kill(java_pid, signal.SIGTERM)  # the Java frontend takes its workers down with it
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def ours(tiny_archive):
    from biascard.serve.service import ModelService

    with ModelService(tiny_archive) as service, LiveServer(service, server_cfg()) as srv:
        yield srv


def test_torchserve_serves_the_same_card(torchserve, ours):
    ts, our = torchserve["url"], ours.url
    requests = [
        {"json": {"text": ARTICLE, "title": "Budget", "source": "example.org", "id": "42"}},
        {"content": ARTICLE.encode(), "headers": {"Content-Type": "text/plain"}},
        {"content": "Ünïcode “quotes” and an emoji 🎉. Second sentence!".encode(), "headers": {"Content-Type": "text/plain"}},
    ]
    for kwargs in requests:
        a = httpx.post(f"{ts}/predictions/tiny", timeout=120, **kwargs)
        b = httpx.post(f"{our}/predictions/tiny", timeout=120, **kwargs)
        assert a.status_code == b.status_code == 200, a.text
        validate(a.json())
        close_cards(a.json(), b.json())
    # the text layout through TorchServe (Accept header) matches ours too
    a = httpx.post(f"{ts}/predictions/tiny", json={"text": ARTICLE}, headers={"Accept": "text/plain"}, timeout=120)
    b = httpx.post(f"{our}/predictions/tiny", json={"text": ARTICLE}, headers={"Accept": "text/plain"}, timeout=120)
    assert a.headers["content-type"].startswith("text/plain") and "Cognitive Concepts" in a.text
    assert [line for line in a.text.splitlines() if "/5" in line] == [line for line in b.text.splitlines() if "/5" in line]


def test_torchserve_bad_requests_get_their_own_error(torchserve):
    ts = torchserve["url"]
    cases = [
        ({"json": {"text": ""}}, 400, "text"),
        ({"content": b"\xff\xfe", "headers": {"Content-Type": "application/octet-stream"}}, 400, "body"),
        ({"json": {"text": 3}}, 400, "text"),
        ({"json": {"text": "fine.", "format": "pdf"}}, 400, "format"),
    ]
    for kwargs, status, field in cases:
        r = httpx.post(f"{ts}/predictions/tiny", timeout=60, **kwargs)
        assert r.status_code == status, r.text
        assert r.json()["field"] == field
    # and the worker is still healthy afterwards
    ok = httpx.post(f"{ts}/predictions/tiny", json={"text": "Still fine. Yes."}, timeout=60)
    assert ok.status_code == 200
    validate(ok.json())
    desc = httpx.get(f"{torchserve['management']}/models/tiny", timeout=30).json()
    assert desc[0]["modelVersion"] == ok.json()["model"]["version"]
    assert desc[0]["batchSize"] == 4 and desc[0]["workers"][0]["status"] == "READY"
