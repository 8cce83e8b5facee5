"""Function URL traffic: an HTTP request into the event an event function receives, its answer back into HTTP.

Event shape (https://cloud.tencent.com/document/product/583/96099): API Gateway's minus `headerParameters`,
`isBase64Encoded`, `pathParameters`, `queryStringParameters` and `requestContext`, with lower-case header
names and `x-scf-remote-addr` for the client address. The answer: `{"statusCode", "headers", "body",
"isBase64Encoded"}` is the integrated response; any other JSON value is a 200 `application/json` body.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import parse_qsl

from emulator.server import JSON, HttpRequest, Reply

URL_PREFIX = "/_fn/"
MAX_EVENT = 6 * 1024 * 1024  # the sync request limit
# The APIGW integrated-response error text, which the Function URL shares (notice 583/107631).
BAD_FORMAT = {"errno": 403, "error": "Invalid scf response format. please check your scf response format."}


def split_path(path: str) -> tuple[str, str]:
    """`/_fn/<url-id>/rest` -> (url-id, "/rest"); the function sees "/" for the bare URL."""
    rest = path.removeprefix(URL_PREFIX)
    url_id, _, tail = rest.partition("/")
    return url_id, "/" + tail


def build_event(request: HttpRequest, path: str) -> dict[str, Any]:
    """The Function URL event for an event function."""
    query: dict[str, Any] = {}
    for key, value in parse_qsl(request.query, keep_blank_values=True):
        if key in query:
            previous = query[key]
            query[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            query[key] = value
    headers = {name.lower(): value for name, value in request.headers.items()}
    headers["x-scf-remote-addr"] = request.client
    return {
        "httpMethod": request.method,
        "path": path,
        "headers": headers,
        "queryString": query,
        "body": request.body.decode("utf-8", "replace"),
    }


def json_reply(status: int, data: Any) -> Reply:
    """A JSON answer from the URL front itself (not from the function)."""
    return Reply(status=status, body=json.dumps(data).encode("utf-8"), content_type=JSON)


def to_reply(value: Any) -> Reply:
    """The function's return value as the HTTP answer."""
    if not (isinstance(value, dict) and "statusCode" in value):
        body = value if isinstance(value, str) else json.dumps(value)
        return Reply(status=200, body=body.encode("utf-8"), content_type=JSON)
    status, headers, body = value.get("statusCode"), value.get("headers") or {}, value.get("body", "")
    if isinstance(status, bool) or not isinstance(status, int) or not isinstance(headers, dict) or not (
        isinstance(body, str)
    ):
        return json_reply(403, BAD_FORMAT)
    raw = body.encode("utf-8")
    if value.get("isBase64Encoded") in (True, "true"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return json_reply(403, BAD_FORMAT)
    pairs = _header_pairs(headers)
    content_type = next((v for k, v in pairs if k.lower() == "content-type"), "application/json")
    extra = [(k, v) for k, v in pairs if k.lower() not in ("content-type", "content-length")]
    return Reply(status=status, body=raw, content_type=content_type, headers=extra)


def _header_pairs(headers: dict[str, Any]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for name, value in headers.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((str(name), str(item)))
    return pairs
