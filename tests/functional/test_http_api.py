"""Every HTTP status of the README's HTTP API, through both HTTP event shapes, with the Tencent error envelope."""

from __future__ import annotations

import orjson
import pytest

from blueprint.localrun import LOCAL_TOKEN
from tests.conftest import context, http_event


def call(app, event) -> tuple[int, dict | list]:
    response = app.handle(event, context())
    assert set(response) == {"isBase64Encoded", "statusCode", "headers", "body"}
    assert response["isBase64Encoded"] is False
    assert response["headers"]["Content-Type"] == "application/json"
    body = orjson.loads(response["body"])
    if response["statusCode"] >= 400:
        assert set(body) >= {"Error", "RequestId"}
        assert set(body["Error"]) == {"Code", "Message"}
        assert "Traceback" not in response["body"]
    return response["statusCode"], body


JOB = {"InstanceId": "lhins-web00001"}


@pytest.mark.parametrize("apigw", [True, False])
def test_post_202(make_app, apigw: bool) -> None:
    status, body = call(make_app(), http_event(body=JOB, apigw=apigw))
    assert status == 202
    assert body["InstanceId"] == "lhins-web00001"
    assert body["BlueprintId"].startswith("lhbp-")


@pytest.mark.parametrize("path", ["/blueprints", "/release/blueprints", "/prefix/x/blueprints/", "blueprints"])
def test_stage_prefixes(make_app, path: str) -> None:
    assert call(make_app(), http_event(path=path, body=JOB))[0] == 202


@pytest.mark.parametrize(("body", "fragment"), [
    ("{not json", "not valid JSON"),
    ({"InstanceId": "lhins-web00001", "Unknown": 1}, "Unknown: unknown field"),
    ({"InstanceId": "lhins-BAD"}, "InstanceId"),
    ({"InstanceId": "lhins-web00001", "BlueprintName": "x" * 61}, "BlueprintName"),
    ({"InstanceId": "lhins-web00001", "Description": "x" * 61}, "Description"),
    ({"InstanceId": "lhins-web00001", "InstanceIds": ["lhins-db000001"]}, "exactly one"),
    ({}, "exactly one"),
    ([1, 2], "JSON object"),
    ("", "empty"),
    ({"InstanceId": "lhins-web00001", "Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(9)]}, "Tags"),
    ({"InstanceId": "lhins-web00001", "BlueprintName": "{Nope}"}, "placeholder"),
    ({"InstanceId": "lhins-web00001", "Keep": 0}, "Keep"),
])
def test_bad_jobs_are_400(make_app, emu, body, fragment: str) -> None:
    status, answer = call(make_app(), http_event(body=body))
    assert status == 400
    assert fragment in answer["Error"]["Message"]
    assert emu.calls_of("CreateBlueprint") == []


def test_selector_is_accepted_and_resolved(make_app, emu) -> None:
    job = {"Selector": {"Regions": ["ap-guangzhou"], "Tags": [{"Key": "backup", "Value": "daily"}]}}
    status, body = call(make_app(), http_event(body=job))
    assert status == 202
    assert sorted(r["InstanceId"] for r in body) == ["lhins-db000001", "lhins-web00001"]


@pytest.mark.parametrize("token", [None, "wrong", ""])
def test_missing_or_wrong_token_is_401(make_app, emu, token) -> None:
    status, _ = call(make_app(), http_event(body=JOB, token=token))
    assert status == 401
    assert emu.calls == []


def test_non_bearer_scheme_is_401(make_app) -> None:
    event = http_event(body=JOB, token=None, headers={"Authorization": f"Basic {LOCAL_TOKEN}"})
    assert call(make_app(), event)[0] == 401


def test_no_token_configured_means_401_for_everyone(make_app) -> None:
    status, answer = call(make_app(BLUEPRINT_HTTP_TOKEN=None), http_event(body=JOB))
    assert status == 401
    assert "BLUEPRINT_HTTP_TOKEN" in answer["Error"]["Message"]


def test_auth_none_on_purpose(make_app, log_stream) -> None:
    app = make_app(BLUEPRINT_HTTP_TOKEN=None, BLUEPRINT_HTTP_AUTH="none")
    assert call(app, http_event(body=JOB, token=None))[0] == 202
    assert "HTTP authentication is OFF" in log_stream.getvalue()


def test_token_rotation_accepts_each(make_app) -> None:
    app = make_app(BLUEPRINT_HTTP_TOKEN="old-token-1,new-token-2")
    assert call(app, http_event(body=JOB, token="old-token-1"))[0] == 202
    assert call(app, http_event(body={"InstanceId": "lhins-db000001"}, token="new-token-2"))[0] == 202


def test_get_image(make_app, emu) -> None:
    app = make_app()
    _, created = call(app, http_event(body=JOB))
    status, image = call(app, http_event("GET", f"/release/blueprints/{created['BlueprintId']}"))
    assert status == 200
    assert image["BlueprintId"] == created["BlueprintId"]
    assert image["BlueprintState"] == "CREATING"
    assert image["BlueprintName"] == created["BlueprintName"]


def test_get_unknown_image_is_404(make_app) -> None:
    assert call(make_app(), http_event("GET", "/blueprints/lhbp-00000000"))[0] == 404


def test_get_malformed_id_is_400(make_app) -> None:
    assert call(make_app(), http_event("GET", "/blueprints/not-an-id"))[0] == 400


@pytest.mark.parametrize(("method", "path"), [
    ("PUT", "/blueprints"), ("DELETE", "/blueprints"), ("GET", "/restores"), ("DELETE", "/restores"),
    ("POST", "/blueprints/lhbp-00000000"), ("DELETE", "/blueprints/lhbp-00000000"),
])
def test_other_methods_are_405(make_app, method: str, path: str) -> None:
    assert call(make_app(), http_event(method, path, body=JOB))[0] == 405


def test_a_listing_needs_an_instance(make_app) -> None:
    assert call(make_app(), http_event("GET", "/blueprints"))[0] == 400
    assert call(make_app(), http_event("GET", "/blueprints"))[1]["Error"]["Code"] == \
        "InvalidParameterValue.InstanceIdMalformed"


def test_unknown_route_is_404(make_app) -> None:
    assert call(make_app(), http_event("POST", "/images", body=JOB))[0] == 404


def test_body_over_64_kib_is_413(make_app, emu) -> None:
    event = http_event(body='{"InstanceId": "lhins-web00001", "Description": "' + "x" * 70_000 + '"}')
    assert call(make_app(), event)[0] == 413


def test_body_at_the_limit_is_parsed(make_app) -> None:
    padding = " " * (64 * 1024 - len(orjson.dumps(JOB)))
    body = orjson.dumps(JOB).decode() + padding
    assert len(body.encode()) == 64 * 1024
    assert call(make_app(), http_event(body=body))[0] == 202


def test_wrong_content_type_is_415(make_app) -> None:
    assert call(make_app(), http_event(body=JOB, headers={"Content-Type": "text/plain"}))[0] == 415


@pytest.mark.parametrize(("code", "status"), [
    ("UnsupportedOperation.LatestOperationUnfinished", 409),
    ("LimitExceeded.BlueprintQuotaLimitExceeded", 409),
    ("UnsupportedOperation.InvalidInstanceState", 409),
    ("ResourceNotFound.InstanceIdNotFound", 404),
    ("UnauthorizedOperation.NoPermission", 403),
    ("RequestLimitExceeded", 429),
    ("InternalError", 503),
    ("InternalError.DescribeInstanceStatus", 503),
    ("FailedOperation", 502),
    ("FailedOperation.CreateBlueprintFailed", 502),
    ("FailedOperation.InsufficientBalance", 502),
    ("FailedOperation.UnableToCreateBlueprint", 502),
    ("InvalidParameterValue.InstanceIdMalformed", 400),
    ("InvalidParameterValue.TooLong", 400),
])
def test_cloud_error_codes_map_to_statuses(make_app, emu, code: str, status: int) -> None:
    emu.faults.fail("CreateBlueprint", code, times=10)
    got, answer = call(make_app(), http_event(body=JOB))
    assert got == status
    assert answer["Error"]["Code"] == code


def test_unknown_instance_is_404_from_real_state(make_app) -> None:
    status, answer = call(make_app(), http_event(body={"InstanceId": "lhins-zzzzzzzz"}))
    assert (status, answer["Error"]["Code"]) == (404, "ResourceNotFound.InstanceIdNotFound")


def test_instance_in_a_refusing_state_is_409(make_app, emu) -> None:
    emu.lighthouse.set_instance_state("lhins-web00001", "REBOOTING")
    status, answer = call(make_app(), http_event(body=JOB))
    assert (status, answer["Error"]["Code"]) == (409, "UnsupportedOperation.InvalidInstanceState")


def test_unexpected_error_answers_a_fixed_500(make_app, emu, log_stream) -> None:
    app = make_app()

    def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    app.maker.plan = boom
    response = app.handle(http_event(body=JOB), context())
    assert response["statusCode"] == 500
    assert "secret internals" not in response["body"]
    assert "RuntimeError" not in response["body"]
    assert "Traceback" in log_stream.getvalue()


def test_a_region_the_cloud_does_not_serve_is_the_callers_mistake(make_app, emu) -> None:
    status, answer = call(make_app(), http_event(body={**JOB, "Region": "xx-nowhere-1"}))
    assert (status, answer["Error"]["Code"]) == (400, "UnsupportedRegion")
