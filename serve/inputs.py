"""Turning request payloads into articles, with errors that name the failing field.

Shared by the HTTP server, the TorchServe handler and the `predict` command, so every
entry point accepts the same inputs and rejects bad ones with the same message.
"""
from __future__ import annotations

import json
import logging
import re
from typing import Any

from biascard.compose.article import Article

log = logging.getLogger("biascard.serve")
FIELDS = ("text", "title", "source", "id")
RENDERINGS = ("json", "text", "html")  # handler.FORMATS' keys (handler imports this module)
# json.loads keeps a "\\ud800" escape without its partner as is; such a str cannot be encoded
SURROGATE = re.compile("[\ud800-\udfff]")


class InputError(ValueError):
    """Bad input from a client. `field` names the failing field when there is one."""

    def __init__(self, message: str, field: str | None = None, status: int = 400):
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"error": self.message}
        if self.field is not None:
            out["field"] = self.field
        return out


def check_surrogates(value: str, name: str, field: str) -> None:
    m = SURROGATE.search(value)
    if m:
        raise InputError(f"{name} contains an unpaired surrogate at character {m.start()}", field)


def _optional_str(obj: dict, key: str, where: str, max_chars: int) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and key == "id":
        return str(value)  # numeric ids from JSONL files are common and unambiguous
    if not isinstance(value, str):
        raise InputError(f"{key} must be a string, got {type(value).__name__}", f"{where}{key}")
    if len(value) > max_chars:
        raise InputError(f"{key} is longer than {max_chars} characters", f"{where}{key}", 413)
    check_surrogates(value, key, f"{where}{key}")
    return value


def check_text(text: Any, max_chars: int, field: str = "text") -> str:
    if not isinstance(text, str):
        raise InputError(f"text must be a string, got {type(text).__name__}", field)
    if "\x00" in text:
        raise InputError("text contains a NUL character", field)
    check_surrogates(text, "text", field)
    if not text.strip():
        raise InputError("text is empty", field)
    if len(text) > max_chars:
        raise InputError(f"text has {len(text)} characters; the limit is {max_chars}", field, 413)
    return text


def article_from_obj(obj: Any, max_chars: int, where: str = "") -> Article:
    """A JSON value (an object with `text`, or a bare string) → Article."""
    if isinstance(obj, str):
        return Article(text=check_text(obj, max_chars, f"{where}text" if where else "text"))
    if not isinstance(obj, dict):
        raise InputError(
            f"expected an object with a `text` field or a string, got {type(obj).__name__}",
            where.rstrip(".") or None,
        )
    if "text" not in obj:
        raise InputError("missing field `text`", f"{where}text")
    text = check_text(obj["text"], max_chars, f"{where}text")
    return Article(
        text=text,
        title=_optional_str(obj, "title", where, max_chars),
        source=_optional_str(obj, "source", where, max_chars),
        id=_optional_str(obj, "id", where, max_chars),
        format=_format(obj, where),
    )


def _format(obj: dict, where: str) -> str | None:
    # checked here, not only where it is used: a bad "format" is refused even when ?format= wins
    fmt = obj.get("format")
    if fmt is not None and fmt not in RENDERINGS:
        raise InputError(f"format must be one of {sorted(RENDERINGS)}, got {str(fmt)[:40]!r}", f"{where}format")
    return fmt


def decode_utf8(body: bytes, field: str = "body") -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"body is not valid UTF-8 (byte {e.start})", field) from None


def parse_json(body: bytes | str) -> Any:
    text = decode_utf8(body) if isinstance(body, (bytes, bytearray)) else body
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        # some of json's messages end in "at" ("Invalid control character at"): no doubled word
        msg = e.msg[:-3] if e.msg.endswith(" at") else e.msg
        raise InputError(f"malformed JSON: {msg} at line {e.lineno} column {e.colno}", "body") from None
    except RecursionError:
        raise InputError("malformed JSON: nested too deeply", "body") from None


def _json_article(text: str) -> bool:
    """Whether raw text is really a JSON article object sent under the wrong content type."""
    if not text.lstrip().startswith("{"):
        return False
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and "text" in obj


def article_from_body(body: bytes, content_type: str | None, max_chars: int, *, strict_type: bool = False) -> Article:
    """An HTTP body: JSON when the content type says so (or it looks like an object), else raw text.

    strict_type: a JSON object with `text` under a non-JSON content type is refused (415)
    rather than scored as an article that reads `{"text": ...`."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype == "application/json" or ctype.endswith("+json"):
        return article_from_obj(parse_json(body), max_chars)
    text = decode_utf8(body)
    if not ctype and text.lstrip().startswith("{"):
        return article_from_obj(parse_json(text), max_chars)
    if strict_type and _json_article(text):
        raise InputError(f"the body is a JSON object with `text` but the Content-Type is {ctype!r}; "
                         "send it as application/json (or send the article as plain text)", "Content-Type", 415)
    return Article(text=check_text(text, max_chars))


def instances_from_payload(payload: Any, max_chars: int, max_instances: int) -> list[Article | InputError]:
    """KServe v1 {"instances": [article | text, ...]}: an Article or the InputError of each
    instance (a bad instance fails alone); a body that is not such an object raises."""
    if not isinstance(payload, dict) or "instances" not in payload:
        raise InputError("expected an object with `instances`", "instances")
    instances = payload["instances"]
    if not isinstance(instances, list) or not instances:
        raise InputError("instances must be a non-empty list", "instances")
    if len(instances) > max_instances:
        raise InputError(f"{len(instances)} instances; the limit is {max_instances}", "instances", 413)
    out: list[Article | InputError] = []
    for i, x in enumerate(instances):
        try:
            out.append(article_from_obj(x, max_chars, f"instances[{i}]."))
        except InputError as e:
            out.append(e)
    return out


def article_from_torchserve(item: Any, max_chars: int) -> Article:
    """One item of TorchServe's request list: {"data"|"body": bytes | str | dict}."""
    if not isinstance(item, dict):
        raise InputError(f"request item is a {type(item).__name__}, expected a dict with data/body")
    payload = item.get("data")
    if payload is None:
        payload = item.get("body")
    if payload is None:
        raise InputError("request has neither `data` nor `body`", "body")
    if isinstance(payload, (bytes, bytearray)):
        text = decode_utf8(bytes(payload))
        if text.lstrip().startswith("{"):
            return article_from_obj(parse_json(text), max_chars)
        return Article(text=check_text(text, max_chars))
    if isinstance(payload, str):
        if payload.lstrip().startswith("{"):
            return article_from_obj(parse_json(payload), max_chars)
        return Article(text=check_text(payload, max_chars))
    return article_from_obj(payload, max_chars)


def mixed_predictions(items: list[Article | InputError], results: list[Any]) -> tuple[dict, int]:
    """The KServe v1 answer and its status for `items` (an Article or the InputError of each
    instance) and `results` (a card or exception per Article, in order): 200 when every
    instance has a card; else the first failure's status, its error and field, and still
    every other card with an error object in place of each failed instance."""
    cards = iter(results)
    out, failures = [], []
    for i, item in enumerate(items):
        result = next(cards) if isinstance(item, Article) else item
        if isinstance(result, BaseException) and not isinstance(result, InputError):
            log.error("composition failed: %r", result)
            result = InputError("card composition failed", f"instances[{i}]", 500)
        if isinstance(result, InputError):
            failures.append(result)
            result = result.to_dict()
        out.append(result)
    if not failures:
        return {"predictions": out}, 200
    first = failures[0]
    return ({"error": f"{len(failures)} of {len(out)} instances failed; first: {first.message}",
             "field": first.field, "predictions": out}, first.status)
