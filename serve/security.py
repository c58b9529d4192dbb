"""Protection of the HTTP server off loopback: API key, Host allow-list, body timeout, TLS and
the bind check, plus JSON answers for requests uvicorn refuses before the app sees them.

Settings (configs/serve.yaml): api_key (or $BIASCARD_API_KEY), allowed_hosts, body_timeout_s,
insecure, ssl_certfile, ssl_keyfile.
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import os
import re
import time
from typing import Any, Mapping

from uvicorn.protocols.http.h11_impl import H11Protocol

from .inputs import InputError

log = logging.getLogger("biascard.serve")
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
OPEN_PATHS = frozenset({"/ping"})  # health checks work without the key
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def api_key(cfg: Mapping) -> str | None:
    """The configured key; the environment is read here so the key never shows in --help."""
    return cfg.get("api_key") or os.environ.get("BIASCARD_API_KEY") or None


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_form(host: str) -> str:
    """How `host` appears in a Host header (IPv6 in brackets), lower case."""
    host = host.lower()
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def allowed_hosts(cfg: Mapping) -> set[str]:
    """`allowed_hosts` when set, else the loopback names and the bind host; "*" allows any."""
    hosts = cfg.get("allowed_hosts")
    if hosts is None:
        hosts = list(LOOPBACK_NAMES)
        bind = str(cfg.get("host") or "")
        if bind not in WILDCARD_HOSTS:
            hosts.append(bind)
    elif isinstance(hosts, str):
        hosts = [hosts]
    return {host_form(str(h)) for h in hosts}


def check_bind(cfg: Mapping) -> None:
    """Refuse to listen beyond loopback without an API key, unless insecure=true (then warn)."""
    host = str(cfg.get("host") or "")
    if is_loopback(host) or api_key(cfg):
        return
    if not cfg.get("insecure"):
        raise ValueError(f"refusing to listen on {host!r} (not loopback) without an API key: set api_key=... "
                         "or BIASCARD_API_KEY, or pass insecure=true to serve anyone who can reach it")
    log.warning("INSECURE: listening on %r without an API key; anyone who can reach it can use it", host)
    if not cfg.get("ssl_certfile"):
        log.warning("INSECURE: no TLS (ssl_certfile/ssl_keyfile): requests and cards travel in clear text")


def uvicorn_options(cfg: Mapping) -> dict[str, Any]:
    """Keyword arguments of uvicorn.Config that the settings decide."""
    opts: dict[str, Any] = {"http": JsonErrorH11Protocol}
    cert, key = cfg.get("ssl_certfile"), cfg.get("ssl_keyfile")
    if bool(cert) != bool(key):
        raise ValueError("TLS needs both ssl_certfile and ssl_keyfile")
    if cert:
        opts.update(ssl_certfile=str(cert), ssl_keyfile=str(key))
    return opts


def _json_response(send, status: int, message: str, field: str | None, headers=()):
    body = json.dumps({"error": message, **({"field": field} if field else {})}).encode()
    start = {"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                         *headers]}

    async def go():
        await send(start)
        await send({"type": "http.response.body", "body": body})
    return go()


class SecurityMiddleware:
    """ASGI middleware: the Host allow-list (against DNS rebinding), the bearer key and the
    deadline for the request body."""

    def __init__(self, app, *, hosts: set[str], key: str | None, body_timeout: float | None):
        self.app = app
        self.any_host = "*" in hosts
        self.hosts = hosts
        self.key = key.encode() if key else None
        self.body_timeout = float(body_timeout) if body_timeout else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        host = self._host(headers.get(b"host", b""))
        if not self.any_host and host not in self.hosts:
            return await _json_response(send, 400, f"Host header {host[:100]!r} is not allowed", "Host")
        if self.key is not None and scope.get("path") not in OPEN_PATHS and not self._authorized(headers):
            return await _json_response(send, 401, "missing or wrong API key: send Authorization: Bearer <key>",
                                        "Authorization", [(b"www-authenticate", b"Bearer")])
        if self.body_timeout is not None:
            receive = _deadline_receive(receive, self.body_timeout)
        return await self.app(scope, receive, send)

    @staticmethod
    def _host(raw: bytes) -> str:
        host = raw.decode("latin-1").strip().lower()
        m = re.fullmatch(r"(\[[^\]]*\]|[^:]*)(:\d*)?", host)
        return m.group(1) if m else host

    def _authorized(self, headers: dict) -> bool:
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)


def _deadline_receive(receive, timeout: float):
    """`receive` whose body messages must all arrive within `timeout` s of the first read."""
    state = {"deadline": None, "done": False}

    async def wrapped():
        if state["done"]:
            return await receive()
        if state["deadline"] is None:
            state["deadline"] = time.monotonic() + timeout
        try:
            message = await asyncio.wait_for(receive(), max(0.0, state["deadline"] - time.monotonic()))
        except asyncio.TimeoutError:
            raise InputError(f"the request body did not arrive within {timeout:g} s", "body", 408) from None
        if message.get("type") != "http.request" or not message.get("more_body", False):
            state["done"] = True
        return message
    return wrapped


class JsonErrorH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, but a request it cannot parse gets a JSON 400 that names the
    header at fault when it is a bad Content-Length."""

    HEAD_LIMIT = 65536

    def data_received(self, data: bytes) -> None:
        head = getattr(self, "_head", b"")
        if len(head) < self.HEAD_LIMIT:
            self._head = (head + data)[: self.HEAD_LIMIT]
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        import h11

        field, message = "headers", "malformed HTTP request line or headers"
        m = re.search(rb"\r\ncontent-length:[ \t]*([^\r\n]*)", getattr(self, "_head", b""), re.IGNORECASE)
        if m and not m.group(1).strip().isdigit():
            field, message = "Content-Length", "Content-Length is not a number"
        body = json.dumps({"error": message, "field": field}).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request")))
        self.transport.write(self.conn.send(h11.Data(data=body)))
        self.transport.write(self.conn.send(h11.EndOfMessage()))
        self.transport.close()
