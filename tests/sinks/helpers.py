"""Reading what the sinks sent, the way a consumer would: the cloudevents package parses every body."""

from __future__ import annotations

from typing import Any

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.http import HTTPMessage, from_http_event

WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def parse(headers: dict[str, str], body: bytes | str) -> BaseCloudEvent:
    """A CloudEvent from an HTTP message (structured mode), validated by the cloudevents package."""
    raw = body.encode() if isinstance(body, str) else body
    return from_http_event(HTTPMessage(headers={k.lower(): v for k, v in headers.items()}, body=raw))


def parse_json(text: str) -> BaseCloudEvent:
    """A CloudEvent from a CMQ message or an Invoke ClientContext."""
    return parse({"content-type": "application/cloudevents+json"}, text)


def types(events: list[BaseCloudEvent]) -> list[str]:
    return [e.get_type() for e in events]


def by_type(events: list[BaseCloudEvent], suffix: str) -> list[BaseCloudEvent]:
    return [e for e in events if e.get_type().endswith(suffix)]


def data(event: BaseCloudEvent) -> dict[str, Any]:
    value = event.get_data()
    assert isinstance(value, dict)
    return value
