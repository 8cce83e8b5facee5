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
    ({"InstanceId": "lhins-web00001", "Keep": True}, "Keep: expected a number"),
    ({"InstanceIds": ["lhins-web00001"], "MaxInstances": True}, "MaxInstances: expected a number"),
])
def test_bad_jobs_are_400(make_app, emu, body, fragment: str) -> None:
    status, answer = call(make_app(), http_event(body=body))
    assert status == 400
    assert fragment in answer["Error"]["Message"]
    assert emu.calls_of("CreateBlueprint") == []
    assert emu.calls_of("DeleteBlueprints") == []


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


def test_a_listing_of_a_malformed_id_says_what_an_id_looks_like(make_app) -> None:
    event = http_event("GET", "/blueprints")
    event["queryString"] = {"InstanceId": "bogus"}
    status, body = call(make_app(), event)[:2]
    assert (status, body["Error"]["Code"]) == (400, "InvalidParameterValue.InstanceIdMalformed")
    assert "add ?InstanceId" not in body["Error"]["Message"] and "lhins-xxxxxxxx" in body["Error"]["Message"]


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


# ---- edges mutation testing found unguarded (docs/mutation.md) ---------------------------------------------

def images_of(emu) -> list[str]:
    return sorted(b["BlueprintId"] for b in emu.lighthouse.blueprints())


def test_the_idempotency_key_header_makes_a_retried_post_find_its_image(make_app, emu) -> None:
    app = make_app()
    first = call(app, http_event(body=JOB, headers={"Idempotency-Key": "k"}))
    emu.advance(60)  # the image is made: the instance is free again
    again = call(app, http_event(body=JOB, headers={"Idempotency-Key": "k"}))
    assert first[0] == again[0] == 202 and again[1]["BlueprintId"] == first[1]["BlueprintId"]  # type: ignore[index]
    assert call(app, http_event(body=JOB, headers={"Idempotency-Key": "k" * 64}))[0] == 202
    assert call(app, http_event(body=JOB, headers={"Idempotency-Key": ""}))[0] == 400
    assert len(images_of(emu)) == 2  # "k" once, "kkk...k" (64) once


def test_posts_without_any_key_are_separate_pieces_of_work(make_app, emu) -> None:
    app = make_app()
    first = call(app, http_event(body=JOB))[1]
    emu.advance(60)
    second = call(app, http_event(body=JOB))[1]
    assert first["BlueprintId"] != second["BlueprintId"]  # type: ignore[index]
    assert len(images_of(emu)) == 2


@pytest.mark.parametrize("ctype", [None, "application/json; charset=utf-8", "Application/JSON;charset=UTF-8; x=y",
                                   "application/cloudevents+json", "application/vnd.api+json"])
def test_json_content_types_with_parameters_or_a_json_suffix_are_accepted(make_app, ctype: str | None) -> None:
    event = http_event(body={**JOB, "DryRun": True})
    if ctype is None:
        del event["headers"]["Content-Type"]
    else:
        event["headers"]["Content-Type"] = ctype
    assert call(make_app(), event)[0] == 202


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("PUT", "/release/blueprints", "GET, POST"), ("DELETE", "/release/blueprints/lhbp-00000000", "GET"),
    ("GET", "/release/restores", "POST")])
def test_a_405_says_which_methods_are_allowed(make_app, method: str, path: str, allow: str) -> None:
    response = make_app().handle(http_event(method, path, body=JOB), context())
    assert (response["statusCode"], response["headers"]["Allow"]) == (405, allow)


def test_every_error_names_the_invocations_request_id(make_app) -> None:
    for event in (http_event("GET", "/blueprints/not-an-id"), http_event(body=JOB, token="wrong-token"),
                  http_event("PUT", "/blueprints", body=JOB)):
        response = make_app().handle(event, context(request_id="req-named-1"))
        assert orjson.loads(response["body"])["RequestId"] == "req-named-1"


@pytest.mark.parametrize(("code", "retry_after"), [
    ("InternalError", "5"), ("RequestLimitExceeded", "2"), ("UnsupportedOperation.LatestOperationUnfinished", "30"),
    ("InvalidParameterValue.InstanceIdMalformed", None), ("FailedOperation.InsufficientBalance", None)])
def test_only_errors_a_retry_can_fix_say_when_to_retry(make_app, emu, code: str, retry_after: str | None) -> None:
    emu.faults.fail("CreateBlueprint", code, times=10)
    response = make_app().handle(http_event(body=JOB), context(time_limit_in_ms=20_000))
    assert response["headers"].get("Retry-After") == retry_after


def test_a_gateway_event_with_only_its_declared_parameters_is_read_from_them(make_app, emu) -> None:
    # API Gateway sends the whole query in queryString and the declared parameters in queryStringParameters.
    app = make_app()
    _, created = call(app, http_event(body=JOB))
    listing = http_event("GET", "/release/blueprints")
    listing.pop("queryString")
    listing["queryStringParameters"] = {"InstanceId": "lhins-web00001"}
    status, body = call(app, listing)
    assert status == 200 and [b["BlueprintId"] for b in body["BlueprintSet"]] == [created["BlueprintId"]], body
    both = {**listing, "queryString": {"InstanceId": "lhins-web00001"}, "queryStringParameters": {"InstanceId": "x"}}
    assert call(app, both)[0] == 200  # the whole query wins


def test_get_reads_the_region_from_the_query(make_app, emu) -> None:
    app = make_app()
    _, created = call(app, http_event(body=JOB))
    path = f"/release/blueprints/{created['BlueprintId']}"  # type: ignore[index]

    def get(query: dict) -> tuple[int, dict]:
        event = http_event("GET", path)
        event["queryString"] = query
        status, body = call(app, event)
        assert isinstance(body, dict)
        return status, body

    assert get({"Region": "ap-guangzhou"})[0] == 200
    assert get({"Region": ["ap-guangzhou"]})[0] == 200
    assert get({"Region": []})[0] == 200  # an empty list is no region: the function's own
    elsewhere = get({"Region": "ap-shanghai"})
    assert (elsewhere[0], elsewhere[1]["Error"]["Code"]) == (404, "ResourceNotFound.BlueprintIdNotFound")
    for bad in ("AP_GUANGZHOU", "ap", "ap-guangzhou\n", ["../etc"]):
        status, body = get({"Region": bad})
        assert (status, body["Error"]["Code"]) == (400, "InvalidParameterValue.Region"), bad


def test_get_codes_for_a_malformed_and_an_unknown_id(make_app) -> None:
    malformed = call(make_app(), http_event("GET", "/blueprints/not-an-id"))
    unknown = call(make_app(), http_event("GET", "/blueprints/lhbp-00000000"))
    assert malformed[1]["Error"]["Code"] == "InvalidParameterValue.BlueprintIdMalformed"  # type: ignore[index]
    assert unknown[1]["Error"]["Code"] == "ResourceNotFound.BlueprintIdNotFound"  # type: ignore[index]


def test_the_fixed_500_names_the_request_id_to_quote(make_app) -> None:
    app = make_app()

    def boom(*args, **kwargs):
        raise RuntimeError("unexpected")

    app.maker.plan = boom
    response = app.handle(http_event(body=JOB), context(request_id="req-to-quote"))
    assert orjson.loads(response["body"]) == {"Error": {"Code": "InternalError",
                                                        "Message": "internal error; quote the RequestId"},
                                              "RequestId": "req-to-quote"}
