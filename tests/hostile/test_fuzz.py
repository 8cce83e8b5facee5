"""Fuzz every parser and the whole HTTP path: client input never causes an unhandled exception, a 5xx,
or a body that shows a traceback or a Python exception's name.

The CI set runs CI_EXAMPLES cases per test; the `longrun` twins run LONG_EXAMPLES (`pytest -m longrun`).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blueprint import logs
from blueprint.app import App, build_app
from blueprint.errors import BadRequest, Unauthorized
from blueprint.events import (
    INSTANCE_ID_PATTERN,
    REGION_PATTERN,
    HttpRequest,
    InvokeEvent,
    Job,
    named_in,
    parse_event,
    parse_job,
    parse_json,
)
from blueprint.http import Authenticator
from blueprint.localrun import LOCAL_TOKEN
from tests.conftest import EmuClock, context
from tests.hostile.conftest import CI_EXAMPLES, LEAK, LONG_EXAMPLES, FakeLighthouse
from tests.hostile.strategies import bodies, headers, http_events, jobs, json_bytes, json_like, other_events, text

FUZZ = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                                     HealthCheck.function_scoped_fixture]}
ci = settings(max_examples=CI_EXAMPLES, **FUZZ)
long = settings(max_examples=LONG_EXAMPLES, **FUZZ)


def fuzz(strategy: st.SearchStrategy[Any]) -> Callable[[Callable[..., None]], tuple[Any, Any]]:
    """One check, two tests: the CI size and the longrun size."""
    def decorate(check: Callable[..., None]) -> tuple[Any, Any]:
        return ci(given(strategy)(check)), pytest.mark.longrun(long(given(strategy)(check)))
    return decorate


def _only_bad_request(fn: Callable[[], object]) -> object:
    try:
        return fn()
    except BadRequest as err:
        assert err.status == 400
        assert not LEAK.search(err.message), err.message
        assert len(err.message) < 2000
        return err


# ---- parsers, directly -------------------------------------------------------------------------------

def _check_parse_event(event: object) -> None:
    result = _only_bad_request(lambda: parse_event(event))
    if isinstance(result, InvokeEvent):
        _only_bad_request(lambda: parse_job(result.payload))


test_parse_event, test_parse_event_long = fuzz(http_events() | other_events())(_check_parse_event)


def _check_parse_job(data: object) -> None:
    job = _only_bad_request(lambda: parse_job(data))
    if isinstance(job, Job):
        assert sum(x is not None for x in (job.InstanceId, job.InstanceIds, job.Selector)) == 1
        assert len(job.Tags) <= 8
        assert not any(t.Key.lower().startswith("scf-blueprint:") for t in job.Tags)
        assert job.BlueprintName is None or len(job.BlueprintName) <= 60


test_parse_job, test_parse_job_long = fuzz(jobs)(_check_parse_job)


def _check_named_in(data: object) -> None:
    named = named_in(data, "ap-guangzhou")
    assert len(named) <= 100 and len({(r.Region, r.InstanceId) for r in named}) == len(named)
    assert all(re.fullmatch(INSTANCE_ID_PATTERN, r.InstanceId) and re.fullmatch(REGION_PATTERN, r.Region)
               for r in named)


# What a bad job's `.failed` is reported for: only plain ids, never the caller's other text, never an error.
test_named_in, test_named_in_long = fuzz(jobs)(_check_named_in)


def _check_parse_json(raw: bytes | str) -> None:
    _only_bad_request(lambda: parse_json(raw))


raw_json = st.binary(max_size=200) | text | bodies.filter(lambda b: isinstance(b, str)) \
    | json_like.map(json_bytes) \
    | st.integers(1, 3000).map(lambda n: "[" * n + "]" * n)
test_parse_json, test_parse_json_long = fuzz(raw_json)(_check_parse_json)


def _check_raw_body(args: tuple[str, object]) -> None:
    body, flag = args
    try:
        req = HttpRequest.model_validate({"httpMethod": "POST", "body": body, "isBase64Encoded": flag})
    except ValueError:
        return
    raw = _only_bad_request(req.raw_body)
    if isinstance(raw, bytes) and not req.isBase64Encoded:
        assert raw == body.encode("utf-8", "surrogatepass")


_raw_body_args = st.tuples(text | bodies.filter(lambda b: isinstance(b, str)),
                           st.sampled_from([True, False, "true", "false", "junk", None]))
test_raw_body, test_raw_body_long = fuzz(_raw_body_args)(_check_raw_body)


def _check_authenticator(args: tuple[object, str]) -> None:
    hdrs, body = args
    try:
        req = HttpRequest.model_validate({"httpMethod": "POST", "headers": hdrs, "body": body})
    except ValueError:
        return
    raw = req.body.encode("utf-8", "surrogatepass")
    token = Authenticator("token", tokens=["the-right-token-123"], now=lambda: 1_800_000_000.0)
    signed = Authenticator("hmac", secrets=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], now=lambda: 1_800_000_000.0)
    for auth in (token, signed):
        with pytest.raises(Unauthorized) as caught:
            auth.check(req, raw)
        assert not LEAK.search(caught.value.message)


test_authenticator, test_authenticator_long = fuzz(st.tuples(headers, text))(_check_authenticator)


# ---- the HTTP path, end to end through App.handle ------------------------------------------------------

@pytest.fixture(scope="module")
def fuzz_app() -> Iterator[tuple[App, io.StringIO]]:
    stream = io.StringIO()
    logs.set_stream(stream)
    env = {"TENCENTCLOUD_SECRETID": "AKIDFUZZ", "TENCENTCLOUD_SECRETKEY": "fuzz-secret-key",
           "TENCENTCLOUD_REGION": "ap-guangzhou", "BLUEPRINT_HTTP_TOKEN": LOCAL_TOKEN}
    yield build_app(env, clock=EmuClock(None), lighthouse=FakeLighthouse()), stream
    logs.set_stream(None)


def _check_http(app_and_log: tuple[App, io.StringIO], event: dict[str, Any]) -> None:
    app, stream = app_and_log
    response = app.handle(event, context())
    assert set(response) == {"isBase64Encoded", "statusCode", "headers", "body"}
    assert response["statusCode"] < 500, response["body"]
    assert not LEAK.search(response["body"]), response["body"]
    body = orjson.loads(response["body"])
    if response["statusCode"] >= 400:
        assert set(body) == {"Error", "RequestId"} and set(body["Error"]) == {"Code", "Message"}
    for line in stream.getvalue().splitlines():
        orjson.loads(line)  # every log line stays one JSON object, whatever the input held
    stream.seek(0)
    stream.truncate()


@ci
@given(event=http_events())
def test_http_path(fuzz_app: tuple[App, io.StringIO], event: dict[str, Any]) -> None:
    _check_http(fuzz_app, event)


@pytest.mark.longrun
@long
@given(event=http_events())
def test_http_path_long(fuzz_app: tuple[App, io.StringIO], event: dict[str, Any]) -> None:
    _check_http(fuzz_app, event)


def test_chained_call_errors_name_no_python_class(fuzz_app: tuple[App, io.StringIO]) -> None:
    answer = fuzz_app[0].handle({"Job": {}, "SlotKey": "", "CorrelationId": "", "Trigger": {}}, context())
    assert not LEAK.search(orjson.dumps(answer).decode())


def _check_async(app: App, event: object) -> None:
    try:
        answer = app.handle(event, context())
    except Exception as err:  # async triggers may raise, but only our own errors, and only when a retry helps
        from blueprint.errors import BlueprintError

        assert isinstance(err, BlueprintError), repr(err)
        assert err.retryable, repr(err)
        return
    text = orjson.dumps(answer, default=str).decode()
    assert not LEAK.search(text), text


@ci
@given(event=other_events())
def test_other_triggers(fuzz_app: tuple[App, io.StringIO], event: object) -> None:
    _check_async(fuzz_app[0], event)


@pytest.mark.longrun
@long
@given(event=other_events())
def test_other_triggers_long(fuzz_app: tuple[App, io.StringIO], event: object) -> None:
    _check_async(fuzz_app[0], event)


@pytest.mark.parametrize("event", [
    {"Chained": 1, "Job": {}, "SlotKey": "", "CorrelationId": "\ud800", "Trigger": {}},
    {"Type": "Timer", "TriggerName": "t\ud800", "Time": "2026-11-27T03:00:00Z", "Message": "{}"},
    {"Records": [{"CMQ": {"msgId": "\udfff", "msgBody": "x"}}]},
])
def test_text_that_is_not_utf8_is_reported_not_a_crash(fuzz_app: tuple[App, io.StringIO], event: object) -> None:
    answer = fuzz_app[0].handle(event, context())
    assert "internal error" not in orjson.dumps(answer, default=str).decode()
