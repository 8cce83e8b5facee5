"""Webhook sink: HTTP POST of each result, as a CloudEvent (signed) or as a chat robot message.

CloudEvents go out as `application/cloudevents+json` with Standard Webhooks headers when
BLUEPRINT_WEBHOOK_SECRET is set. Retries on network errors, 429 and 5xx (honouring Retry-After), never on
other 4xx; each attempt has a timeout and all of them fit in the function's time left. Redirects are not
followed: the URL comes only from configuration, and a redirect could point anywhere (and would carry the
signed body and headers with it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import random
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import requests

from blueprint.errors import ConfigError, DeliveryError
from blueprint.retry import Deadline, pause
from blueprint.sinks import SinkContext

if TYPE_CHECKING:
    from blueprint.sinks.chat import RobotReply

__all__ = ["WebhookSink", "from_settings", "standard_webhooks_key", "standard_webhooks_signature"]

ATTEMPTS = 4
# No attempt starts with less than this left: a request cut short by the deadline helps nobody.
MIN_ATTEMPT = 0.5
USER_AGENT = "lighthouse-blueprint-fn"


def standard_webhooks_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: the base64 after the `whsec_` prefix.

    Raises:
        ValueError: the secret is not base64 (or is empty).
    """
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error as err:
        raise ValueError("expected whsec_ followed by base64") from err
    if not key:
        raise ValueError("expected whsec_ followed by base64")
    return key


def standard_webhooks_signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` over `id.timestamp.body` (Standard Webhooks, symmetric signature)."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class _Retry(Exception):
    """One attempt failed in a way another attempt can fix; `after` is the server's wish, if it said."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after = after


class WebhookSink:
    """POST results to one URL from configuration."""

    # A plain class, not a dataclass: a cold start pays for every dataclass it defines (issue 18).
    def __init__(self, url: str, session: requests.Session, clock: Any, *, timeout: float = 5.0,
                 secret: str | None = None, format: str = "cloudevents", rng: Callable[[], float] = random.random,
                 name: str = "webhook") -> None:
        self.url = url
        self.session = session
        self.clock = clock
        self.timeout = timeout
        self.secret = secret
        self.format = format
        self.rng = rng
        self.name = name

    def __repr__(self) -> str:
        return f"WebhookSink(name={self.name!r}, format={self.format!r})"

    def send(self, event: dict[str, Any], body: bytes, deadline: Deadline) -> None:
        """POST one event, retrying what a retry can fix.

        Raises:
            DeliveryError: refused (4xx, robot error), or still failing when attempts or time ran out.
        """
        url, payload, headers = self._request(event, body)
        last = "not attempted: no time left"
        for attempt in range(ATTEMPTS):
            budget = deadline.remaining()
            if budget < MIN_ATTEMPT:
                break
            try:
                self._attempt(url, payload, headers, timeout=min(self.timeout, budget - 0.1))
                return
            except _Retry as retry:
                last = retry.reason
                wait = retry.after if retry.after is not None else self._backoff(attempt)
            if attempt + 1 >= ATTEMPTS or deadline.remaining() < wait + MIN_ATTEMPT:
                # Retry-After beyond our time left: retrying earlier would disobey it; SCF retries later.
                break
            pause(self.clock, wait, "a webhook retry", deadline.waits, sink=self.name, after=last)
        raise DeliveryError(f"{self.name}: not accepted after retries ({last})")

    def _backoff(self, attempt: int) -> float:
        return float(min(4.0, 0.25 * 2**attempt) * (0.5 + self.rng() / 2))

    def _attempt(self, url: str, payload: bytes, headers: dict[str, str], *, timeout: float) -> None:
        """One POST.

        Raises:
            _Retry: network error, 429 or 5xx, or a robot's rate limit.
            DeliveryError: any other refusal.
        """
        try:
            resp = self.session.post(url, data=payload, headers=headers, allow_redirects=False,
                                     timeout=(min(timeout, 3.05), timeout))
        except requests.RequestException as err:
            raise _Retry(f"{type(err).__name__}: the receiver could not be reached or did not answer") from None
        status = resp.status_code
        if status == 429 or status >= 500:
            raise _Retry(f"HTTP {status}", _retry_after(resp.headers.get("Retry-After"), self.clock.time()))
        if 300 <= status < 400:
            raise DeliveryError(f"{self.name}: HTTP {status} redirect not followed (configure the final URL)")
        if status >= 400:
            raise DeliveryError(f"{self.name}: refused with HTTP {status}")
        if self.format != "cloudevents":
            from blueprint.sinks.chat import read_reply  # noqa: PLC0415 (only chat formats pay for it)

            self._check_robot(read_reply(self.format, resp.text))

    def _check_robot(self, reply: RobotReply) -> None:
        """Chat robots answer 200 with an error code in the body."""
        if reply.ok:
            return
        if reply.retryable:
            raise _Retry(f"{self.format} robot is rate limiting (code {reply.code})")
        raise DeliveryError(f"{self.name}: {self.format} robot refused the message (code {reply.code}: "
                            f"{reply.message[:200]})")

    def _request(self, event: dict[str, Any], body: bytes) -> tuple[str, bytes, dict[str, str]]:
        if self.format != "cloudevents":
            from blueprint.sinks.chat import format_chat  # noqa: PLC0415 (only chat formats pay for it)

            url, message = format_chat(self.format, event, self.url, self.secret, now=self.clock.time())
            return url, message, {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}
        headers = {"Content-Type": "application/cloudevents+json", "User-Agent": USER_AGENT}
        if self.secret:
            # The event id is the webhook-id: the same on every retry, ours or SCF's, so receivers dedupe.
            timestamp = int(self.clock.time())
            headers["webhook-id"] = str(event["id"])
            headers["webhook-timestamp"] = str(timestamp)
            headers["webhook-signature"] = standard_webhooks_signature(
                standard_webhooks_key(self.secret), str(event["id"]), timestamp, body)
        return self.url, body, headers


def _retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - now, 0.0)


def from_settings(ctx: SinkContext) -> WebhookSink | None:
    """The webhook sink when BLUEPRINT_WEBHOOK_URL is set.

    Raises:
        ConfigError: BLUEPRINT_WEBHOOK_SECRET is not a Standard Webhooks secret (cloudevents format).
    """
    settings = ctx.settings
    if not settings.webhook_url:
        return None
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    if secret and settings.webhook_format == "cloudevents":
        try:
            standard_webhooks_key(secret)
        except ValueError as err:
            raise ConfigError(f"BLUEPRINT_WEBHOOK_SECRET: {err}") from None
    return WebhookSink(url=settings.webhook_url, session=ctx.session, clock=ctx.clock,
                       timeout=settings.webhook_timeout, secret=secret, format=settings.webhook_format)
