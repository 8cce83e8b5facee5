"""Secrets never leak: every error path runs with known secret values set, and none of them may appear in
a log line, an HTTP body or header, or a delivered message (not even inside SDK exception text)."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from blueprint.app import App, build_app
from blueprint.cloud import read_credentials
from blueprint.errors import BlueprintError, ConfigError
from blueprint.localrun import Receiver
from blueprint.settings import load_settings
from emulator import Emulator
from tests.conftest import EmuClock, context, http_event, timer_event

SECRET_ID = "AKIDHOSTILE0000000001"
SECRET_KEY = "SK-hostile-key-9f8e7d6c5b4a"
SESSION = "ST-hostile-session-0a1b2c3d4e"
TOKEN = "tok-hostile-5e6f7a8b9c"
WEBHOOK_KEY = b"hostile-webhook-key-32-bytes-abc"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(WEBHOOK_KEY).decode()
HMAC_SECRET = "whsec_" + base64.b64encode(b"hostile-inbound-hmac-key-32bytes").decode()
SECRETS = [SECRET_KEY, SESSION, TOKEN, WEBHOOK_SECRET, WEBHOOK_SECRET.removeprefix("whsec_"), HMAC_SECRET]
LEAKY = f"leak {SECRET_KEY} {SESSION} {TOKEN} {WEBHOOK_SECRET} {HMAC_SECRET}"


@pytest.fixture
def cloud() -> Iterator[Emulator]:
    # The run role's key is a temporary one: the emulator refuses any call without its session token.
    with Emulator(image_seconds=30.0, credentials={SECRET_ID: SECRET_KEY}, tokens={SECRET_ID: SESSION}) as emu:
        yield emu


@pytest.fixture
def env(cloud: Emulator, receiver: Receiver) -> dict[str, str]:
    return {"TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
            "TENCENTCLOUD_SESSIONTOKEN": SESSION, "TENCENTCLOUD_REGION": "ap-guangzhou",
            "BLUEPRINT_API_ENDPOINT": cloud.url, "BLUEPRINT_HTTP_TOKEN": TOKEN,
            "BLUEPRINT_WEBHOOK_URL": receiver.url, "BLUEPRINT_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "BLUEPRINT_HTTP_SECRET": HMAC_SECRET}  # configured though token mode is on: redacted all the same


@pytest.fixture
def app(env: dict[str, str], cloud: Emulator, log_stream: io.StringIO) -> App:
    return build_app(env, clock=EmuClock(cloud))


def assert_clean(*texts: Any) -> None:
    for text in texts:
        blob = text if isinstance(text, str) else orjson.dumps(text, default=str).decode()
        for secret in SECRETS:
            assert secret not in blob, f"secret leaked: {blob[:300]}"


def outputs(log_stream: io.StringIO, receiver: Receiver, *answers: Any) -> list[Any]:
    delivered = [{"headers": r["headers"], "body": r["body"].decode()} for r in receiver.received]
    return [log_stream.getvalue(), delivered, *answers]


def call(app: App, event: dict[str, Any]) -> Any:
    try:
        return app.handle(event, context())
    except BlueprintError as err:  # async triggers raise when a retry helps: the text must be clean too
        return {"raised": str(err), "message": err.message, "repr": repr(err)}


def http(job: Any, token: str = TOKEN) -> dict[str, Any]:
    return http_event(body=job, token=token)


JOB = {"InstanceId": "lhins-web00001"}


@pytest.mark.parametrize(("action", "code"), [
    ("CreateBlueprint", "FailedOperation.CreateBlueprintFailed"),
    ("CreateBlueprint", "InternalError"),
    ("CreateBlueprint", "AuthFailure.SignatureFailure"),
    ("CreateBlueprint", "UnauthorizedOperation.NoPermission"),
    ("DescribeBlueprints", "InternalError"),
    ("DescribeBlueprints", "InvalidParameter"),
    ("DeleteBlueprints", "FailedOperation"),
    ("DescribeInstances", "RequestLimitExceeded"),
])
@pytest.mark.parametrize("trigger", ["http", "timer"])
def test_cloud_errors_carrying_secrets(app, cloud, receiver, log_stream, action, code, trigger) -> None:  # noqa: PLR0917
    managed = [{"Key": "scf-blueprint:instance", "Value": "lhins-web00001"},
               {"Key": "scf-blueprint:slot", "Value": "x"}]
    cloud.lighthouse.add_blueprint("old", Region="ap-guangzhou", BlueprintState="NORMAL",
                                   CreatedTime="2020-01-01T00:00:00Z", Tags=managed)
    cloud.faults.fail(action, code, times=20, message=LEAKY)
    job = {**JOB, "Keep": 1, "BlueprintName": "{InstanceName}-{Date}"}
    answer = call(app, http(job) if trigger == "http" else timer_event(job))
    assert_clean(*outputs(log_stream, receiver, answer))


def test_network_failure_and_http_5xx_from_the_cloud(app, cloud, receiver, log_stream) -> None:
    cloud.faults.drop("CreateBlueprint", times=20)
    cloud.faults.http_status("DescribeBlueprints", 502, times=20)
    answers = [call(app, http(JOB)), call(app, timer_event(JOB))]
    assert_clean(*outputs(log_stream, receiver, *answers))


def test_webhook_failing(app, receiver, log_stream) -> None:
    receiver.fail_next(50, 500)
    answers = [call(app, http(JOB)), call(app, timer_event(JOB, time_="2026-11-28T03:00:00Z"))]
    receiver.fail_next(50, 401)
    answers.append(call(app, timer_event(JOB, time_="2026-11-29T03:00:00Z")))
    assert_clean(*outputs(log_stream, receiver, *answers))


@pytest.mark.parametrize("body", [
    {"InstanceId": "lhins-web00001", "Unknown": TOKEN},
    {"InstanceId": TOKEN},
    {"InstanceId": "lhins-web00001", TOKEN: 1},
    {"InstanceId": "lhins-web00001", "Description": SECRET_KEY + "x" * 60},
    "{" + SESSION,
])
def test_bad_jobs(app, receiver, log_stream, body) -> None:
    answers = [call(app, http(body)), call(app, timer_event(body) if isinstance(body, dict) else
                                            {"Type": "Timer", "Time": "2026-11-27T03:00:00Z", "Message": body})]
    assert_clean(*outputs(log_stream, receiver, *answers))


@pytest.mark.parametrize("token", [TOKEN[:-1], TOKEN + "x", "", TOKEN.upper(), f"{TOKEN} {TOKEN}"])
def test_wrong_tokens(app, receiver, log_stream, token) -> None:
    answer = call(app, http(JOB, token=token))
    assert answer["statusCode"] == 401
    assert_clean(*outputs(log_stream, receiver, answer))


def test_unexpected_exception(app, receiver, log_stream) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(LEAKY)

    app.maker.plan = boom  # type: ignore[method-assign]
    answer = app.handle(http(JOB), context())
    assert answer["statusCode"] == 500
    assert orjson.loads(answer["body"])["Error"] == {"Code": "InternalError",
                                                     "Message": "internal error; quote the RequestId"}
    assert "Traceback" in log_stream.getvalue()  # the detail is in the log, redacted
    assert_clean(*outputs(log_stream, receiver, answer))


@pytest.mark.parametrize("bad", [
    {"BLUEPRINT_WEBHOOK_SECRET": "whsec_!!" + SECRET_KEY},
    {"BLUEPRINT_HTTP_TOKEN": f"{TOKEN},short"},
    {"BLUEPRINT_HTTP_TOKEN": f"{TOKEN} with spaces"},
    {"BLUEPRINT_HTTP_AUTH": "hmac", "BLUEPRINT_HTTP_SECRET": "whsec_" + SESSION + "!"},
    {"BLUEPRINT_WEBHOOK_URL": f"http://example.com/{TOKEN}"},
    {"BLUEPRINT_API_ENDPOINT": f"https://{SECRET_KEY}@example.com"},
    {"BLUEPRINT_JOB": orjson.dumps({"InstanceId": TOKEN}).decode()},
    {"BLUEPRINT_KEEP": SECRET_KEY},
])
def test_bad_configuration(env, log_stream, bad) -> None:
    with pytest.raises(ConfigError) as caught:
        build_app({**env, **bad})
    err = caught.value
    assert err.message.startswith("bad configuration") or "BLUEPRINT_" in err.message
    assert_clean(str(err), repr(err), err.message, log_stream.getvalue())


def test_missing_credentials(env, log_stream, receiver) -> None:
    app = build_app({k: v for k, v in env.items() if k != "TENCENTCLOUD_SECRETID"})
    answers = [call(app, http(JOB))]
    with pytest.raises(ConfigError) as caught:
        app.handle(timer_event(JOB), context())
    assert_clean(*outputs(log_stream, receiver, *answers), str(caught.value))


def test_repr_and_str_never_show_secrets(env, app) -> None:
    settings = load_settings({**env, "BLUEPRINT_HTTP_AUTH": "hmac", "BLUEPRINT_HTTP_SECRET": HMAC_SECRET,
                              "BLUEPRINT_WEBHOOK_URL": f"https://hooks.example.com/send?key={TOKEN}"})
    creds = read_credentials(env)
    assert_clean(repr(settings), str(settings), repr(creds), str(creds))
    assert "hooks.example.com" in repr(settings)


def test_repr_of_the_app_never_shows_secrets(app) -> None:
    assert_clean(repr(app))


def test_hmac_mode_errors(env, cloud, receiver, log_stream) -> None:
    app = build_app({**env, "BLUEPRINT_HTTP_AUTH": "hmac", "BLUEPRINT_HTTP_SECRET": HMAC_SECRET},
                    clock=EmuClock(cloud))
    event = http_event(body=JOB, token=None, headers={"webhook-id": HMAC_SECRET, "webhook-timestamp": "1",
                                                      "webhook-signature": f"v1,{HMAC_SECRET}"})
    answer = call(app, event)
    assert answer["statusCode"] == 401
    assert_clean(*outputs(log_stream, receiver, answer))


def test_secrets_with_json_special_characters_are_redacted_in_logs(cloud, receiver, log_stream) -> None:
    odd = 'tok"with\\quotes-and-more'
    app = build_app({"TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
                     "BLUEPRINT_API_ENDPOINT": cloud.url, "BLUEPRINT_HTTP_TOKEN": odd}, clock=EmuClock(cloud))
    app.maker.plan = _raiser(f"boom {odd}")  # type: ignore[method-assign]
    app.handle(http(JOB, token=odd), context())
    logged = log_stream.getvalue()
    assert "Traceback" in logged
    assert odd not in logged and orjson.dumps(odd).decode()[1:-1] not in logged


def _raiser(message: str) -> Callable[..., Any]:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(message)
    return boom


# ---- issue 12: the raised exception's whole chain, rotated tokens, robot keys ---------------------------

def _chain_text(err: BaseException) -> str:
    """Everything SCF's runtime would print for a raised exception: the chained traceback, causes, contexts."""
    import traceback

    texts = ["".join(traceback.format_exception(type(err), err, err.__traceback__))]
    seen: set[int] = set()
    node: BaseException | None = err
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        texts += [str(node), repr(node), repr(getattr(node, "message", ""))]
        node = node.__cause__ or node.__context__
    return "\n".join(texts)


@pytest.mark.parametrize("code", ["InternalError", "RequestLimitExceeded"])
def test_no_secret_in_the_chain_of_what_the_handler_raises(app, cloud, code) -> None:
    cloud.faults.fail("CreateBlueprint", code, times=20, message=LEAKY)
    with pytest.raises(BlueprintError) as caught:
        app.handle(timer_event(JOB), context())
    err = caught.value
    assert err.__cause__ is None and err.__context__ is None
    assert_clean(_chain_text(err))


def test_no_secret_in_the_chain_of_a_delivery_failure(app, cloud, receiver) -> None:
    receiver.then(*[__import__("blueprint.localrun", fromlist=["Answer"]).Answer(
        503, body=LEAKY.encode()) for _ in range(20)])
    with pytest.raises(BlueprintError) as caught:
        app.handle(timer_event(JOB), context())
    assert caught.value.__context__ is None
    assert_clean(_chain_text(caught.value))


def test_a_rotated_session_token_is_redacted_too(env, cloud, log_stream, monkeypatch) -> None:
    app = build_app(env, clock=EmuClock(cloud))
    app.handle(timer_event(JOB), context())
    rotated = "ST-rotated-session-77aa88bb99cc"
    cloud.add_temporary_key(SECRET_ID, SECRET_KEY, rotated)
    app.env = {**env, "TENCENTCLOUD_SESSIONTOKEN": rotated}  # SCF rotated the role's keys in this container
    cloud.faults.fail("CreateBlueprint", "InternalError", times=20, message=f"token {rotated} expired")
    with pytest.raises(BlueprintError) as caught:
        app.handle(timer_event({"InstanceId": "lhins-db000001"}), context())
    assert rotated not in _chain_text(caught.value)
    assert rotated not in log_stream.getvalue()


def test_every_call_carries_the_session_token_and_a_rotated_one_replaces_it(env, cloud, app) -> None:
    assert app.handle(timer_event(JOB), context())["Results"][0]["BlueprintId"].startswith("lhbp-")
    rotated = "ST-rotated-session-11aa22bb33cc"
    cloud.add_temporary_key(SECRET_ID, SECRET_KEY, rotated)  # the old token is refused from now on
    app.env = {**env, "TENCENTCLOUD_SESSIONTOKEN": rotated}  # a warm container sees the new one
    answer = app.handle(timer_event({"InstanceId": "lhins-db000001"}), context())
    assert answer["Results"][0]["BlueprintId"].startswith("lhbp-")
    assert [c.error for c in cloud.calls if (c.error or "").startswith("AuthFailure")] == []
    assert len(cloud.calls_of("CreateBlueprint")) == 2


def test_a_robot_key_is_redacted_on_its_own(receiver, cloud, log_stream) -> None:
    from blueprint import logs

    key = "0a1b2c3d-4e5f-6789-abcd-ef0123456789"
    build_app({"TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
               "BLUEPRINT_API_ENDPOINT": cloud.url, "BLUEPRINT_WEBHOOK_FORMAT": "wecom",
               "BLUEPRINT_WEBHOOK_URL": receiver.url + f"?key={key}&debug=1"}, clock=EmuClock(cloud))
    assert key not in logs.redact(f"the robot refused key {key}")
    slack = "XXXXxxxxYYYYyyyyZZZZzzzz"
    build_app({"TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
               "BLUEPRINT_API_ENDPOINT": cloud.url, "BLUEPRINT_WEBHOOK_FORMAT": "slack",
               "BLUEPRINT_WEBHOOK_URL": f"https://hooks.slack.com/services/T0000/B0000/{slack}"}, clock=EmuClock(cloud))
    assert slack not in logs.redact(f"invalid_token {slack}")
