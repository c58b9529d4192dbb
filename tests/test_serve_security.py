"""Hardening of the HTTP server and the archive loader, all on 127.0.0.1: lone surrogates,
API key, Host allow-list, the bind check, body timeout, TLS, forged archives, cleanup of
extracted archives, and the smaller protocol defects (415, JSON 400, Retry-After, Allow)."""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from biascard.card import validate

from test_serve_support import (  # noqa: F401 - fixtures
    ARTICLE,
    LiveServer,
    free_port,
    server_cfg,
    tiny_archive,
    tiny_model,
)

pytestmark = pytest.mark.slow  # live servers and `biascard serve` processes


@pytest.fixture(scope="module")
def service(tiny_archive):
    from biascard.serve.service import ModelService

    with ModelService(tiny_archive, threads=1) as s:
        yield s


def live(service, **over):
    return LiveServer(service, server_cfg(**over))


def raw_request(port: int, data: bytes, wait_for: bytes = b"}", timeout: float = 30) -> bytes:
    """Send raw bytes to 127.0.0.1:port; what comes back once `wait_for` arrives or the peer closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        out = b""
        while wait_for not in out.partition(b"\r\n\r\n")[2]:
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
    return out


# ---------------------------------------------------------------- item 1: lone surrogates


def test_lone_surrogate_is_a_400_naming_the_field(service):
    with live(service) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        post = lambda body: c.post("/predictions/tiny", content=body, headers={"Content-Type": "application/json"})
        r = post(b'{"text": "ab\\ud800 more text."}')
        assert r.status_code == 400, r.text
        assert r.json() == {"error": "text contains an unpaired surrogate at character 2", "field": "text"}
        r = post(b'{"text": "Fine text. Two.", "title": "x\\udfff"}')
        assert r.status_code == 400 and r.json()["field"] == "title" and "surrogate" in r.json()["error"]
        assert post(b'{"text": "A pair \\ud83d\\ude00 is one emoji. Fine."}').status_code == 200
        # KServe v1: the bad instance fails alone; the good one still has its card
        r = c.post("/v1/models/tiny:predict", content=b'{"instances": ["Good text. Two.", {"text": "x\\ud800"}, '
                   b'"Third text. Fine."]}', headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text
        body = r.json()
        assert body["field"] == "instances[1].text" and body["error"].startswith("1 of 3 instances failed")
        good0, bad, good2 = body["predictions"]
        validate(good0)
        validate(good2)
        assert bad == {"error": "text contains an unpaired surrogate at character 1", "field": "instances[1].text"}


def test_torchserve_handler_fails_a_surrogate_item_alone(tiny_archive, tmp_path):
    from types import SimpleNamespace

    from biascard.serve.archive import extract_archive, read_manifest
    from biascard.serve.handler import BiasCardHandler

    model_dir = extract_archive(tiny_archive, tmp_path / "x")
    ctx = SimpleNamespace(system_properties={"model_dir": str(model_dir)}, manifest=read_manifest(tiny_archive),
                          model_yaml_config={})
    h = BiasCardHandler()
    h.initialize(ctx)
    bad, good, bad_bytes = h.handle([{"body": {"text": "a\ud800"}}, {"body": "Fine text. Two sentences."},
                                     {"body": b'{"text": "\\udc00"}'}], ctx)
    assert bad == {"error": "text contains an unpaired surrogate at character 1", "field": "text"}
    assert bad_bytes["field"] == "text" and "surrogate" in bad_bytes["error"]
    validate(good)


# ---------------------------------------------------------------- item 2: protection


def test_api_key(service, monkeypatch):
    with live(service, api_key="s3cret") as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        assert c.get("/ping").status_code == 200  # health checks stay open
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
            r = c.get("/models", headers=headers)
            assert r.status_code == 401 and r.json()["field"] == "Authorization"
            assert r.headers["www-authenticate"] == "Bearer"
        assert c.post("/predictions/tiny", content=b"Some text. Two.").status_code == 401
        ok = {"Authorization": "Bearer s3cret"}
        assert c.get("/models", headers=ok).status_code == 200
        assert c.post("/predictions/tiny", content=b"Some text. Two.", headers=ok).status_code == 200
    monkeypatch.setenv("BIASCARD_API_KEY", "from-env")
    with live(service, api_key=None) as srv:
        assert httpx.get(srv.url + "/models", timeout=60).status_code == 401
        assert httpx.get(srv.url + "/models", headers={"Authorization": "Bearer from-env"}, timeout=60).status_code == 200


def test_host_allow_list(service):
    from biascard.serve.security import allowed_hosts

    assert allowed_hosts({"host": "10.1.2.3"}) == {"127.0.0.1", "localhost", "[::1]", "10.1.2.3"}
    assert allowed_hosts({"host": "0.0.0.0", "allowed_hosts": ["Cards.Example"]}) == {"cards.example"}
    with live(service) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        for host in ("evil.example", f"evil.example:{srv.port}", "127.0.0.2"):
            r = c.get("/models", headers={"Host": host})
            assert r.status_code == 400 and r.json()["field"] == "Host", host
        for host in (f"localhost:{srv.port}", "[::1]", f"127.0.0.1:{srv.port}"):
            assert c.get("/models", headers={"Host": host}).status_code == 200, host
    with live(service, allowed_hosts=["cards.example"]) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        assert c.get("/ping", headers={"Host": "cards.example"}).status_code == 200
        assert c.get("/ping").status_code == 400  # 127.0.0.1 is no longer listed


def test_bind_beyond_loopback_needs_a_key_or_insecure(caplog, monkeypatch):
    from biascard.serve.security import check_bind

    monkeypatch.delenv("BIASCARD_API_KEY", raising=False)
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.5"):
        check_bind({"host": host})
    with pytest.raises(ValueError, match="refusing to listen on '0.0.0.0'.*api_key"):
        check_bind({"host": "0.0.0.0"})
    check_bind({"host": "0.0.0.0", "api_key": "k"})
    with caplog.at_level(logging.WARNING, logger="biascard.serve"):
        check_bind({"host": "0.0.0.0", "insecure": True})
    assert "INSECURE" in caplog.text


def test_serve_command_refuses_a_public_bind_before_loading(tmp_path):
    exe = str(Path(sys.executable).parent / "biascard-serve")
    env = {k: v for k, v in os.environ.items() if k not in ("BIASCARD_API_KEY",)}
    r = subprocess.run([exe, "model_path=/nonexistent.mar", "host=0.0.0.0"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "refusing to listen on '0.0.0.0'" in r.stderr, r.stderr


def test_slow_body_gets_408(service):
    with live(service, body_timeout_s=1) as srv:
        start = time.monotonic()
        out = raw_request(srv.port, b"POST /predictions/tiny HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                    b"Content-Type: text/plain\r\nContent-Length: 100\r\n\r\nonly ten b")
        assert out.startswith(b"HTTP/1.1 408"), out
        assert json.loads(out.partition(b"\r\n\r\n")[2])["field"] == "body"
        assert time.monotonic() - start < 15
        # a body that arrives in time is served as usual
        assert httpx.post(srv.url + "/predictions/tiny", content=b"Fine text. Two.", timeout=60).status_code == 200


def test_tls(service, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    with live(service, ssl_certfile=str(cert), ssl_keyfile=str(key)) as srv:
        assert srv.url.startswith("https://")
        ctx = ssl.create_default_context(cafile=str(cert))
        r = httpx.post(srv.url + "/predictions/tiny", content=b"Fine text. Two.", verify=ctx, timeout=60)
        assert r.status_code == 200
        validate(r.json())
        with pytest.raises(httpx.HTTPError):  # an unverified certificate is refused by the client
            httpx.get(srv.url + "/ping", timeout=10)
    from biascard.serve.security import uvicorn_options

    with pytest.raises(ValueError, match="both ssl_certfile and ssl_keyfile"):
        uvicorn_options({"ssl_certfile": str(cert)})


# ---------------------------------------------------------------- item 3: forged archives


def test_forged_archive_is_served_under_its_weights_version(tiny_archive, tmp_path, caplog):
    import hashlib

    from safetensors.torch import load_file, save_file

    from biascard.model.model_dir import weights_version
    from biascard.serve.archive import extract_archive, read_manifest
    from biascard.serve.service import ModelService

    work = extract_archive(tiny_archive, tmp_path / "work")
    weights = work / "model.safetensors"
    tensors = load_file(weights)
    first = sorted(tensors)[0]
    tensors[first] = tensors[first] + 0.5  # the forger's change
    save_file(tensors, weights)
    sums = "".join(f"{hashlib.sha256((work / n).read_bytes()).hexdigest()}  {n}\n"
                   for n in sorted(p.relative_to(work).as_posix() for p in work.rglob("*") if p.is_file())
                   if n != "SHA256SUMS")
    (work / "SHA256SUMS").write_text(sums)  # ... who rewrites SHA256SUMS too
    forged = tmp_path / "forged.mar"
    with zipfile.ZipFile(forged, "w") as z:
        for p in sorted(work.rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(work).as_posix())
    original = read_manifest(tiny_archive)["model"]["modelVersion"]
    assert read_manifest(forged)["model"]["modelVersion"] == original
    with caplog.at_level(logging.WARNING), ModelService(forged) as s:
        assert s.version == weights_version(work) != original
        assert s.info()["modelVersion"] == s.version
    assert "is not the weights'" in caplog.text
    with ModelService(tiny_archive) as s:  # an honest archive keeps its version
        assert s.version == original


# ---------------------------------------------------------------- item 4: extracted archives


def _start(archive: Path, cwd: Path, env: dict) -> tuple[subprocess.Popen, Path]:
    port = free_port()
    exe = str(Path(sys.executable).parent / "biascard-serve")
    log = cwd / f"serve-{port}.log"
    proc = subprocess.Popen([exe, f"model_path={archive}", f"port={port}"], cwd=cwd, env=env,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                return proc, log
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


def test_extracted_archive_is_removed_on_sigterm_and_swept_after_sigkill(tiny_archive, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("BIASCARD_MODEL", "BIASCARD_API_KEY")}
    env["TMPDIR"] = str(tmp)
    root = tmp / "biascard-archives"
    owned = lambda proc: [d for d in root.iterdir() if d.name.startswith(f"{proc.pid}-")]

    proc, log = _start(tiny_archive, tmp_path, env)
    assert len(owned(proc)) == 1 and (owned(proc)[0] / "model.safetensors").is_file()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert not owned(proc), log.read_text()
    assert "no model_sha256 pin" in log.read_text()

    killed, _ = _start(tiny_archive, tmp_path, env)
    (left,) = owned(killed)
    killed.kill()
    killed.wait(timeout=60)
    assert left.is_dir()  # SIGKILL leaves it behind ...
    third, log = _start(tiny_archive, tmp_path, env)
    try:
        assert not left.exists(), log.read_text()  # ... and the next start sweeps it
        assert len(owned(third)) == 1
    finally:
        third.send_signal(signal.SIGINT)
        third.wait(timeout=60)
    assert not owned(third)
    assert sorted(root.iterdir()) == []


# ---------------------------------------------------------------- item 5: smaller defects


def test_protocol_details(service):
    with live(service, max_queue=0) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        # a JSON article sent as text/plain (or curl's default form type) is refused, not scored
        for ctype in ("text/plain", "application/x-www-form-urlencoded"):
            r = c.post("/predictions/tiny", content=json.dumps({"text": ARTICLE}), headers={"Content-Type": ctype})
            assert r.status_code == 415 and r.json()["field"] == "Content-Type", r.text
            assert "application/json" in r.json()["error"]
        # the queue admits nothing here: 503 with Retry-After; text starting with "{" is still text
        r = c.post("/predictions/tiny", content=b"{braces} in prose. Fine.", headers={"Content-Type": "text/plain"})
        assert r.status_code == 503 and r.headers["retry-after"] == "1" and r.json()["error"]
        r = c.request("TRACE", "/predictions/tiny")
        assert r.status_code == 405 and "POST" in r.headers["allow"] and r.json()["error"]
        assert c.request("TRACE", "/ping").headers["allow"].startswith("GET")
        r = c.post("/predictions/tiny", content=b'{"text": "a\x01b"}', headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and " at at " not in r.json()["error"]
        assert r.json()["error"] == "malformed JSON: Invalid control character at line 1 column 12"
        out = raw_request(srv.port, b"POST /predictions/tiny HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                    b"Content-Type: text/plain\r\nContent-Length: abc\r\n\r\nhello")
        assert out.startswith(b"HTTP/1.1 400") and b"application/json" in out.partition(b"\r\n\r\n")[0].lower()
        assert json.loads(out.partition(b"\r\n\r\n")[2]) == {"error": "Content-Length is not a number",
                                                             "field": "Content-Length"}


def test_openapi_matches_the_server(service):
    with live(service) as srv:
        spec = httpx.get(srv.url + "/openapi.json", timeout=60).json()
    pred = spec["paths"]["/predictions/{model}"]["post"]
    article = pred["requestBody"]["content"]["application/json"]["schema"]["oneOf"][0]
    assert article["properties"]["text"]["minLength"] == 1
    assert pred["requestBody"]["content"]["text/plain"]["schema"]["minLength"] == 1
    assert {"400", "401", "404", "408", "413", "415", "503"} <= set(pred["responses"])
    kserve = spec["paths"]["/v1/models/{model}:predict"]["post"]
    instances = kserve["requestBody"]["content"]["application/json"]["schema"]["properties"]["instances"]
    assert instances["minItems"] == 1
    assert {"400", "401", "404", "408", "413", "503"} <= set(kserve["responses"])
    assert "404" in spec["paths"]["/v1/models/{model}"]["get"]["responses"]
