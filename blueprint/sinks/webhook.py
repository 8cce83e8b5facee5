"""Webhook sink: HTTP POST of each result, as a CloudEvent (signed) or as a chat robot message.

CloudEvents go out as `application/cloudevents+json` with Standard Webhooks headers when
BLUEPRINT_WEBHOOK_SECRET is set. Retries on network errors, 429 and 5xx (honouring Retry-After), never on
other 4xx; each attempt has a timeout and all of them fit in the function's time left. Redirects are not
followed: the URL comes only from configuration, and a redirect could point anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import requests

from blueprint.errors import DeliveryError
from blueprint.retry import Deadline
from blueprint.sinks import SinkContext
from blueprint.sinks.chat import format_chat

__all__ = ["WebhookSink", "from_settings", "standard_webhooks_signature"]

ATTEMPTS = 4
MAX_RETRY_AFTER = 30.0


def standard_webhooks_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` over `id.timestamp.body` with the secret after `whsec_` (base64)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


@dataclass
class WebhookSink:
    """POST results to one URL from configuration."""

    url: str
    session: requests.Session
    clock: Any
    timeout: float = 5.0
    secret: str | None = None
    format: str = "cloudevents"
    rng: Callable[[], float] = random.random
    name: str = "webhook"

    def send(self, event: dict[str, Any], body: bytes, deadline: Deadline) -> None:
        """POST one event, retrying what a retry can fix.

        Raises:
            DeliveryError: refused (4xx), or still failing when attempts or time ran out.
        """
        url, payload, headers = self._request(event, body)
        last = "not attempted: no time left"
        for attempt in range(ATTEMPTS):
            budget = deadline.remaining()
            if budget <= 0.5:
                break
            retry_after = None
            try:
                resp = self.session.post(url, data=payload, headers=headers, allow_redirects=False,
                                         timeout=min(self.timeout, budget))
            except requests.RequestException as err:
                last = f"{type(err).__name__}: the receiver could not be reached"
            else:
                if 200 <= resp.status_code < 300 and self._accepted(resp):
                    return
                last = f"HTTP {resp.status_code}"
                if resp.status_code != 429 and resp.status_code < 500:
                    raise DeliveryError(f"webhook refused the message ({last})")
                retry_after = _retry_after(resp.headers.get("Retry-After"))
            wait = retry_after if retry_after is not None else min(4.0, 0.25 * 2**attempt) * (0.5 + self.rng() / 2)
            if attempt + 1 >= ATTEMPTS or deadline.remaining() < wait + 0.5:
                break
            self.clock.sleep(wait)
        raise DeliveryError(f"webhook did not accept the message after retries ({last})")

    def _request(self, event: dict[str, Any], body: bytes) -> tuple[str, bytes, dict[str, str]]:
        if self.format != "cloudevents":
            url, message = format_chat(self.format, event, self.url, self.secret, now=self.clock.time())
            return url, orjson.dumps(message), {"Content-Type": "application/json"}
        headers = {"Content-Type": "application/cloudevents+json", "User-Agent": "lighthouse-blueprint-fn"}
        if self.secret:
            timestamp = int(self.clock.time())
            headers["webhook-id"] = str(event["id"])
            headers["webhook-timestamp"] = str(timestamp)
            headers["webhook-signature"] = standard_webhooks_signature(self.secret, str(event["id"]), timestamp, body)
        return self.url, body, headers

    def _accepted(self, resp: requests.Response) -> bool:
        """Chat robots answer 200 with an error code in the body; plain webhooks: any 2xx."""
        if self.format == "cloudevents":
            return True
        try:
            data = resp.json()
        except ValueError:
            return self.format == "slack"
        if not isinstance(data, dict):
            return True
        code = data.get("errcode", data.get("code", data.get("StatusCode", 0)))
        if code not in (0, None):
            raise DeliveryError(f"{self.format} robot refused the message (code {code})")
        return True


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        return None


def from_settings(ctx: SinkContext) -> WebhookSink | None:
    """The webhook sink when BLUEPRINT_WEBHOOK_URL is set."""
    settings = ctx.settings
    if not settings.webhook_url:
        return None
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    return WebhookSink(url=settings.webhook_url, session=ctx.session, clock=ctx.clock,
                       timeout=settings.webhook_timeout, secret=secret, format=settings.webhook_format)
