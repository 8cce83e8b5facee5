"""Chat robots: each message has the shape the service documents (fixtures), signed the documented way."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from blueprint.errors import DeliveryError
from blueprint.localrun import Answer
from tests.conftest import EmuClock, context, timer_event
from tests.sinks.conftest import Hook, fixture

JOB = {"InstanceId": "lhins-web00001"}
ROBOT_SECRET = "SEC0123456789abcdef"  # a robot's signing secret is a plain string
FIXTURES = {"wecom": "wecom_markdown.json", "dingtalk": "dingtalk_markdown.json",
            "feishu": "feishu_text_signed.json", "slack": "slack_text.json"}


def shape(value: Any) -> Any:
    """The JSON structure without the values: keys and types."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    return type(value).__name__


def reply(fmt: str, kind: str) -> bytes:
    value = fixture("replies.json")[fmt][kind]
    return value.encode() if isinstance(value, str) else orjson.dumps(value)


def send(make_app, hook: Hook, fmt: str, secret: str | None = None, **env: str) -> dict[str, Any]:
    hook.default = Answer(200, {"Content-Type": "application/json"}, reply(fmt, "ok"))
    extra = {"BLUEPRINT_WEBHOOK_SECRET": secret} if secret else {}
    app = make_app(BLUEPRINT_WEBHOOK_URL=hook.url + "?access_token=abc", BLUEPRINT_WEBHOOK_FORMAT=fmt,
                   **extra, **env)
    app.handle(timer_event(JOB), context())
    [request] = hook.accepted()
    return request


@pytest.mark.parametrize("fmt", ["wecom", "dingtalk", "slack"])
def test_messages_have_the_documented_shape(make_app, hook, fmt) -> None:
    request = send(make_app, hook, fmt)
    assert request["headers"]["Content-Type"].startswith("application/json")
    body = orjson.loads(request["body"])
    assert shape(body) == shape(fixture(FIXTURES[fmt]))


def test_feishu_signed_message_has_the_documented_shape_and_signature(make_app, hook) -> None:
    body = orjson.loads(send(make_app, hook, "feishu", ROBOT_SECRET)["body"])
    assert shape(body) == shape(fixture(FIXTURES["feishu"]))
    # Feishu: HMAC-SHA256 keyed by timestamp + "\n" + secret, over an empty message, base64.
    key = f"{body['timestamp']}\n{ROBOT_SECRET}".encode()
    assert body["sign"] == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    assert len(body["timestamp"]) == 10  # seconds


def test_feishu_without_a_secret_is_not_signed(make_app, hook) -> None:
    body = orjson.loads(send(make_app, hook, "feishu")["body"])
    assert set(body) == {"msg_type", "content"}


def test_dingtalk_signature_in_the_query(make_app, hook) -> None:
    request = send(make_app, hook, "dingtalk", ROBOT_SECRET)
    query = parse_qs(urlsplit(request["path"]).query)
    assert query["access_token"] == ["abc"]
    [timestamp], [sign] = query["timestamp"], query["sign"]
    assert len(timestamp) == 13  # milliseconds
    # DingTalk: HMAC-SHA256 keyed by the secret over timestamp + "\n" + secret, base64, URL-encoded.
    mac = hmac.new(ROBOT_SECRET.encode(), f"{timestamp}\n{ROBOT_SECRET}".encode(), hashlib.sha256).digest()
    assert sign == base64.b64encode(mac).decode()
    raw_sign = request["path"].split("sign=")[1].split("&")[0]
    assert not set(raw_sign) & set("+/=")  # URL-encoded


@pytest.mark.parametrize("fmt", ["wecom", "dingtalk", "feishu", "slack"])
def test_the_text_says_instance_image_state(make_app, hook, fmt) -> None:
    text = send(make_app, hook, fmt)["body"].decode()
    assert "lhins-web00001" in text and "lhbp-" in text and "CREATING" in text and "duration" in text


@pytest.mark.parametrize("fmt", ["wecom", "dingtalk", "feishu"])
def test_a_robot_error_code_in_a_200_is_a_refusal_not_retried(make_app, hook, log_stream, fmt) -> None:
    hook.default = Answer(200, {"Content-Type": "application/json"}, reply(fmt, "refused"))
    app = make_app(BLUEPRINT_WEBHOOK_URL=hook.url, BLUEPRINT_WEBHOOK_FORMAT=fmt)
    with pytest.raises(DeliveryError, match="webhook"):
        app.handle(timer_event(JOB), context())
    assert len(hook.received) == 1
    assert "robot refused the message" in log_stream.getvalue()


@pytest.mark.parametrize("fmt", ["wecom", "dingtalk", "feishu"])
def test_a_robot_rate_limit_is_retried(make_app, hook, emu, fmt) -> None:
    clock = EmuClock(emu)
    hook.then(Answer(200, {"Content-Type": "application/json"}, reply(fmt, "rate_limited")))
    hook.default = Answer(200, {"Content-Type": "application/json"}, reply(fmt, "ok"))
    app = make_app(clock=clock, BLUEPRINT_WEBHOOK_URL=hook.url, BLUEPRINT_WEBHOOK_FORMAT=fmt)
    app.handle(timer_event(JOB), context())
    assert len(hook.received) == 2 and len(clock.slept) == 1


def test_slack_errors_come_as_http_4xx(make_app, hook) -> None:
    hook.default = Answer(400, {"Content-Type": "text/plain"}, reply("slack", "refused"))
    app = make_app(BLUEPRINT_WEBHOOK_URL=hook.url, BLUEPRINT_WEBHOOK_FORMAT="slack")
    with pytest.raises(DeliveryError):
        app.handle(timer_event(JOB), context())
    assert len(hook.received) == 1


HOSTILE_NAME = "[pay](https://evil.example) <@all> **x** @13800000000"


@pytest.mark.parametrize("fmt", ["wecom", "dingtalk", "feishu", "slack"])
def test_caller_text_is_inert_in_every_chat_format(make_app, hook, emu, fmt) -> None:
    """Names, descriptions and error messages come from callers and the cloud: no link, mention or markup
    of theirs reaches a team's chat."""
    hook.default = Answer(200, {"Content-Type": "application/json"}, reply(fmt, "ok"))
    emu.faults.fail("CreateBlueprint", "FailedOperation.CreateBlueprintFailed", message="see <!channel> `rm` #x")
    app = make_app(BLUEPRINT_WEBHOOK_URL=hook.url + "?access_token=abc", BLUEPRINT_WEBHOOK_FORMAT=fmt)
    app.handle(timer_event({**JOB, "BlueprintName": HOSTILE_NAME[:60]}), context())
    [request] = hook.accepted()
    text = request["body"].decode()
    for fragment in ("](", "https://", "<@", "**x**", "<!channel>", "`rm`", "@138", "#x"):
        assert fragment not in text, (fmt, fragment)
    assert "pay" in text and "evil.example" in text  # still readable as text
