"""Input limits and odd shapes through the whole HTTP path: every one a clear 4xx, never a 500."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from blueprint.localrun import LOCAL_TOKEN
from tests.conftest import context, http_event
from tests.hostile.conftest import LEAK

JOB = {"InstanceId": "lhins-web00001", "DryRun": True}
LIMIT = 64 * 1024


def answer(app, event: dict[str, Any]) -> tuple[int, dict]:
    response = app.handle(event, context())
    assert not LEAK.search(response["body"])
    return response["statusCode"], orjson.loads(response["body"])


def padded(size: int) -> str:
    text = orjson.dumps(JOB).decode()
    return text + " " * (size - len(text))


@pytest.fixture
def app(make_app):
    return make_app()


def test_body_limit_counts_bytes_as_received(app) -> None:
    assert answer(app, http_event(body=padded(LIMIT)))[0] == 202
    assert answer(app, http_event(body=padded(LIMIT + 1)))[0] == 413
    multibyte = '{"InstanceId": "lhins-web00001", "Description": "' + "é" * 33_000 + '"}'  # < 64 Ki chars, > 64 KiB
    assert answer(app, http_event(body=multibyte))[0] == 413


@pytest.mark.parametrize("flag", [True, "true", "TRUE", "True"])
def test_base64_bodies_are_limited_after_decoding(app, flag) -> None:
    for size, status in ((LIMIT, 202), (LIMIT + 1, 413)):
        event = http_event()
        event["body"], event["isBase64Encoded"] = base64.b64encode(padded(size).encode()).decode(), flag
        assert answer(app, event)[0] == status, size
    event = http_event()
    event["body"], event["isBase64Encoded"] = "A" * 10_000_000, flag  # refused before decoding
    assert answer(app, event)[0] == 413


@pytest.mark.parametrize("junk", ["not base64!", "YWJj\n", "é", "YQ", "\ud800", "YWJj===="])
def test_base64_junk_is_400(app, junk) -> None:
    event = http_event()
    event["body"], event["isBase64Encoded"] = junk, True
    code, body = answer(app, event)
    assert code == 400 and "base64" in body["Error"]["Message"]


@pytest.mark.parametrize("flag", ["maybe", {}, [True], 2, "junk"])
def test_junk_base64_flag_is_400(app, flag) -> None:
    event = http_event(body=JOB)
    event["isBase64Encoded"] = flag
    assert answer(app, event)[0] == 400


@pytest.mark.parametrize(("field", "value"), [
    ("headers", "Authorization: Bearer x"), ("headers", ["a", "b"]), ("headers", 7),
    ("body", 12), ("body", {"InstanceId": "lhins-web00001"}), ("body", ["x"]),
    ("httpMethod", 1), ("httpMethod", None), ("httpMethod", ["POST"]), ("httpMethod", ""),
    ("httpMethod", "P" * 100), ("path", 5), ("path", "/" + "a" * 5000), ("requestContext", "x"),
])
def test_odd_event_shapes_are_400(app, emu, field, value) -> None:
    event = http_event(body=JOB)
    event[field] = value
    code, body = answer(app, event)
    assert code == 400, body
    assert set(body) == {"Error", "RequestId"}
    assert emu.calls_of("CreateBlueprint") == []


def test_headers_in_odd_casing_duplicates_and_lists(app) -> None:
    event = http_event(body=JOB, token=None, headers={"AUTHORIZATION": [f"Bearer {LOCAL_TOKEN}", "Bearer x"],
                                                      "Content-TYPE": ["application/json"]})
    assert answer(app, event)[0] == 202
    # Two spellings of one header: the first wins, a later one can never override it.
    event = http_event(body=JOB, token=None, headers={"authorization": "Bearer wrong",
                                                      "Authorization": f"Bearer {LOCAL_TOKEN}"})
    assert answer(app, event)[0] == 401
    for value in ([], [None], [{"x": 1}], {"x": "y"}, None):
        event = http_event(body=JOB, token=None, headers={"Authorization": value})
        assert answer(app, event)[0] == 401


def test_header_values_with_lone_surrogates_are_401_not_500(app) -> None:
    event = http_event(body=JOB, token=None, headers={"Authorization": "Bearer \ud800"})
    assert answer(app, event)[0] == 401


@pytest.mark.parametrize(("depth", "status"), [(30, 400), (33, 400), (2000, 400)])
def test_json_depth(app, depth, status) -> None:
    body = '{"InstanceId": "lhins-web00001", "Tags": ' + "[" * depth + "]" * depth + "}"
    code, payload = answer(app, http_event(body=body))
    assert code == status
    if depth > 32:
        assert "nested" in payload["Error"]["Message"] or "JSON" in payload["Error"]["Message"]


@pytest.mark.parametrize("job", [
    {"InstanceId": "lhins-web00001", "Description": "bad\ud800"},
    {"InstanceId": "lhins-web00001", "Description": "line\nbreak"},
    {"InstanceId": "lhins-web00001", "Description": "nul\x00"},
    {"InstanceId": "lhins-web00001", "BlueprintName": "rtl\u202eevil"},
    {"InstanceId": "lhins-web00001", "Description": "x" * 61},
    {"InstanceId": "lhins-web00001", "IdempotencyKey": "k" * 65},
    {"InstanceId": "lhins-web00001", "Tags": [{"Key": "k" * 128, "Value": "v"}]},
    {"InstanceId": "lhins-web00001", "Tags": [{"Key": "k", "Value": "v" * 256}]},
    {"InstanceId": "lhins-web00001", "Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(9)]},
    {"InstanceId": "lhins-web00001", "Tags": [{"Key": "k", "Value": "a"}, {"Key": "k", "Value": "b"}]},
    {"InstanceIds": [f"lhins-{i:08d}" for i in range(101)]},
    {"InstanceIds": ["lhins-web00001", "lhins-web00001"]},
    {"InstanceIds": ["x" * 5000]},
    {"InstanceId": "lhins-web00001", "BlueprintName": "{Date:>999999999}"},
    {"InstanceId": "lhins-web00001\n"},
    {"InstanceId": "lhins-web00001", "Region": "ap-guangzhou\n"},
    {"x" * 10_000: 1, "InstanceId": "lhins-web00001"},
])
def test_field_limits_are_400(app, emu, job) -> None:
    try:
        raw = orjson.dumps(job)
    except orjson.JSONEncodeError:  # a lone surrogate: send it JSON-escaped, as a client would
        raw = b'{"InstanceId": "lhins-web00001", "Description": "bad\\ud800"}'
    code, body = answer(app, http_event(body=raw.decode()))
    assert code == 400, body
    assert len(body["Error"]["Message"]) < 600
    assert emu.calls_of("CreateBlueprint") == []


def test_an_unknown_field_name_is_echoed_short_and_printable(app) -> None:
    code, body = answer(app, http_event(body={"InstanceId": "lhins-web00001", "\u202e" + "z" * 500: 1}))
    assert code == 400
    message = body["Error"]["Message"]
    assert "\u202e" not in message and "z" * 41 not in message and "unknown field" in message


@pytest.mark.parametrize("path", ["/blueprints/lhbp-00000000\n", "/blueprints\n", "/blueprints/lhbp-0000000%0a"])
def test_trailing_newlines_do_not_match_routes(app, path) -> None:
    assert answer(app, http_event("GET", path))[0] in (400, 404)


def test_idempotency_header_must_be_printable(app) -> None:
    assert answer(app, http_event(body=JOB, headers={"Idempotency-Key": "a\x00b"}))[0] == 400
    assert answer(app, http_event(body=JOB, headers={"Idempotency-Key": "k" * 65}))[0] == 400
    # The spaces around a header's value are not part of it (RFC 9110): spaces alone are no key, like none.
    for blank in ("", "   ", "\t"):
        code, body = answer(app, http_event(body=JOB, headers={"Idempotency-Key": blank}))
        assert code == 400 and "Idempotency-Key" in body["Error"]["Message"]
    assert answer(app, http_event(body=JOB, headers={"Idempotency-Key": " " + "k" * 64 + " "}))[0] == 202
