"""Chat robot formats: a short readable message instead of the raw CloudEvent.

WeCom (企业微信) and DingTalk robots take markdown, Feishu a text message, Slack incoming webhooks `text`.
DingTalk and Feishu robots may require a signature made with the robot's secret (BLUEPRINT_WEBHOOK_SECRET).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any
from urllib.parse import quote_plus

__all__ = ["format_chat", "summary_lines"]

_TITLES = {
    "created": "image started", "ready": "image ready", "failed": "image FAILED", "skipped": "image skipped",
    "pruned": "old image deleted", "completed": "run completed",
}


def summary_lines(event: dict[str, Any]) -> tuple[str, list[str]]:
    """A title and `key: value` lines for one event."""
    kind = str(event.get("type", "")).rsplit(".", 1)[-1]
    data = event.get("data") or {}
    title = f"Lighthouse {_TITLES.get(kind, kind)}"
    if kind == "completed":
        counts = ", ".join(f"{k} {v}" for k, v in sorted((data.get("Counts") or {}).items()))
        return title, [f"instances: {data.get('Matched')}", f"results: {counts or 'none'}",
                       *(f"failed: {f.get('InstanceId')} ({(f.get('Error') or {}).get('Code')})"
                         for f in data.get("Failures", [])[:10])]
    lines = [f"instance: {data.get('InstanceId')} ({data.get('Region')})",
             f"image: {data.get('BlueprintId') or '-'} {data.get('BlueprintName') or ''}".rstrip(),
             f"state: {data.get('State') or '-'}"]
    if data.get("Duration") is not None:
        lines.append(f"duration: {data['Duration']} s")
    if data.get("Error"):
        lines.append(f"error: {data['Error'].get('Code')}: {data['Error'].get('Message')}")
    return title, lines


def format_chat(fmt: str, event: dict[str, Any], url: str, secret: str | None, *,
                now: float) -> tuple[str, dict[str, Any]]:
    """The URL to post to and the robot's message body for one event."""
    title, lines = summary_lines(event)
    if fmt == "wecom":
        return url, {"msgtype": "markdown", "markdown": {"content": f"**{title}**\n" + "\n".join(
            f"> {line}" for line in lines)}}
    if fmt == "dingtalk":
        if secret:
            timestamp = str(int(now * 1000))
            mac = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
            sign = quote_plus(base64.b64encode(mac).decode())
            url = f"{url}{'&' if '?' in url else '?'}timestamp={timestamp}&sign={sign}"
        return url, {"msgtype": "markdown", "markdown": {"title": title, "text": f"#### {title}\n" + "\n".join(
            f"- {line}" for line in lines)}}
    if fmt == "feishu":
        body: dict[str, Any] = {"msg_type": "text", "content": {"text": title + "\n" + "\n".join(lines)}}
        if secret:
            timestamp = str(int(now))
            mac = hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256).digest()
            body |= {"timestamp": timestamp, "sign": base64.b64encode(mac).decode()}
        return url, body
    if fmt == "slack":
        return url, {"text": f"*{title}*\n" + "\n".join(lines)}
    raise ValueError(f"unknown webhook format {fmt!r}")
