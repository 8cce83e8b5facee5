"""Chat robot formats: a short readable message instead of the raw CloudEvent.

Each robot's documented webhook body:
- WeCom (企业微信) group robot: `{"msgtype": "markdown", "markdown": {"content": ...}}`, content ≤ 4096 bytes;
  answers `{"errcode": 0, "errmsg": "ok"}`, 45009 when over its rate limit (20 messages a minute).
- DingTalk custom robot: `{"msgtype": "markdown", "markdown": {"title": ..., "text": ...}}`; with "加签" the
  URL carries `timestamp` (ms) and `sign` = urlencode(base64(HMAC-SHA256(key=secret, msg=timestamp+"\\n"+secret)));
  answers `{"errcode": 0, "errmsg": "ok"}`, 130101 when sending too fast.
- Feishu custom bot: `{"msg_type": "text", "content": {"text": ...}}`; with 签名校验 the body carries `timestamp`
  (s) and `sign` = base64(HMAC-SHA256(key=timestamp+"\\n"+secret, msg=b"")); answers `{"code": 0, ...}`
  (older bots `{"StatusCode": 0, ...}`), 11232 when rate limited; bodies ≤ 20 KB.
- Slack incoming webhook: `{"text": ...}` (mrkdwn); answers `ok`, errors as HTTP 4xx with a text reason.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import orjson

from blueprint.events import as_printable

__all__ = ["FORMATS", "RobotReply", "format_chat", "inert", "read_reply", "summary_lines"]

FORMATS = ("wecom", "dingtalk", "feishu", "slack")
# The smallest text limit of the four robots (WeCom markdown: 4096 bytes), with room for the title.
MAX_TEXT_BYTES = 3800
# Robot answer codes that mean "too fast, try again later".
_RATE_LIMIT_CODES = {"wecom": {45009}, "dingtalk": {130101}, "feishu": {11232}}

_TITLES = {
    "created": "image started", "ready": "image ready", "failed": "image FAILED", "skipped": "image skipped",
    "pruned": "old image deleted", "completed": "run completed",
}


# Characters a chat's markdown or mention syntax acts on (bold, links, code, headings, quotes, mentions such as
# WeCom's <@user>, Feishu's <at user_id="all">, DingTalk's @phone, Slack's <!channel>), replaced by look-alikes
# it does not act on. Applied to every value taken from a result, never to the message's own layout.
_INERT = str.maketrans({"*": "\uff0a", "_": "\uff3f", "~": "\uff5e", "`": "\uff40", "[": "\uff3b", "]": "\uff3d",
                        "(": "\uff08", ")": "\uff09", "<": "\uff1c", ">": "\uff1e", "#": "\uff03", "@": "\uff20",
                        "|": "\uff5c", "!": "\uff01", "&": "\uff06", "\\": "\uff3c"})


def inert(value: object) -> str:
    """A value as plain text for a chat message: no markup, no mention, no link, one line."""
    text = as_printable(str(value))
    # Chat clients turn scheme://host into a link on their own.
    return text.translate(_INERT).replace("://", ":\uff0f\uff0f")


def summary_lines(event: dict[str, Any]) -> tuple[str, list[str]]:
    """A title and `key: value` lines for one event: instance, image, state, duration, error.

    Every value comes from the result (names, error messages: text that callers and the cloud control) and
    passes through `inert`, so a name like `[click](https://evil)` or `<@all>` reads as text.
    """
    kind = str(event.get("type", "")).rsplit(".", 1)[-1]
    data = event.get("data") or {}
    title = f"Lighthouse {_TITLES.get(kind, kind)}"
    if kind == "completed":
        counts = ", ".join(f"{inert(k)} {inert(v)}" for k, v in sorted((data.get("Counts") or {}).items()))
        return title, [f"instances: {inert(data.get('Matched'))}", f"results: {counts or 'none'}",
                       *(f"failed: {inert(f.get('InstanceId'))} ({inert((f.get('Error') or {}).get('Code'))})"
                         for f in data.get("Failures", [])[:10])]
    lines = [f"instance: {inert(data.get('InstanceId'))} ({inert(data.get('Region'))})",
             f"image: {inert(data.get('BlueprintId') or '-')} {inert(data.get('BlueprintName') or '')}".rstrip(),
             f"state: {inert(data.get('State') or '-')}"]
    if data.get("Resent"):
        lines.append("re-sent: this image was reported before (a retry found it)")
    if data.get("Duration") is not None:
        lines.append(f"duration: {inert(data['Duration'])} s")
    if data.get("Error"):
        lines.append(f"error: {inert(data['Error'].get('Code'))}: {inert(data['Error'].get('Message'))}")
    return title, lines


def _clip(text: str, limit: int = MAX_TEXT_BYTES) -> str:
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode(errors="ignore") + "..."


def _dingtalk_url(url: str, secret: str, now: float) -> str:
    timestamp = str(int(now * 1000))
    mac = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    sign = quote_plus(base64.b64encode(mac).decode())
    return f"{url}{'&' if '?' in url else '?'}timestamp={timestamp}&sign={sign}"


def _feishu_sign(secret: str, now: float) -> dict[str, str]:
    timestamp = str(int(now))
    mac = hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return {"timestamp": timestamp, "sign": base64.b64encode(mac).decode()}


def format_chat(fmt: str, event: dict[str, Any], url: str, secret: str | None, *,
                now: float) -> tuple[str, bytes]:
    """The URL to post to and the robot's JSON body for one event.

    Raises:
        ValueError: an unknown format (settings only allow the known ones).
    """
    title, lines = summary_lines(event)
    body: dict[str, Any]
    if fmt == "wecom":
        body = {"msgtype": "markdown",
                "markdown": {"content": _clip(f"**{title}**\n" + "\n".join(f"> {line}" for line in lines))}}
    elif fmt == "dingtalk":
        text = _clip(f"#### {title}\n" + "\n".join(f"- {line}" for line in lines))
        body = {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
        if secret:
            url = _dingtalk_url(url, secret, now)
    elif fmt == "feishu":
        body = {"msg_type": "text", "content": {"text": _clip(title + "\n" + "\n".join(lines))}}
        if secret:
            body = {**_feishu_sign(secret, now), **body}
    elif fmt == "slack":
        body = {"text": _clip(f"*{title}*\n" + "\n".join(lines))}
    else:
        raise ValueError(f"unknown webhook format {fmt!r}")
    return url, orjson.dumps(body)


@dataclass(frozen=True)
class RobotReply:
    """What a robot answered with HTTP 2xx."""

    ok: bool
    code: object = 0
    message: str = ""
    retryable: bool = False


def read_reply(fmt: str, text: str) -> RobotReply:
    """Read a robot's 2xx answer: 0 means accepted; anything else is a refusal (some codes: too fast)."""
    if fmt == "slack":
        return RobotReply(ok=True)  # Slack reports errors with HTTP 4xx; a 2xx body is just "ok"
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return RobotReply(ok=False, code="not-json", message="the answer was not the robot's JSON")
    if not isinstance(data, dict):
        return RobotReply(ok=False, code="not-json", message="the answer was not the robot's JSON")
    code = next((data[k] for k in ("errcode", "code", "StatusCode") if k in data), 0)
    message = str(next((data[k] for k in ("errmsg", "msg", "StatusMessage") if k in data), ""))
    if code in (0, None):
        return RobotReply(ok=True, code=0, message=message)
    return RobotReply(ok=False, code=code, message=message, retryable=code in _RATE_LIMIT_CODES.get(fmt, set()))
