"""Each trigger end to end: the real SDK against the emulator, one image, one delivered message."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest

from blueprint.errors import BlueprintError, CloudUnavailable, DeliveryError
from tests.conftest import context, http_event, received_events, timer_event

EVENTS = Path(__file__).resolve().parents[2] / "events"


def load(name: str) -> dict:
    return orjson.loads((EVENTS / name).read_bytes())


def creates(emu) -> list[dict]:
    return [c.params for c in emu.calls_of("CreateBlueprint") if c.error is None]


def test_timer_creates_one_image_and_delivers_one_message(make_app, emu, receiver) -> None:
    app = make_app()
    answer = app.handle(load("timer.json"), context())

    (params,) = creates(emu)
    assert params["InstanceId"] == "lhins-web00001"
    assert params["BlueprintName"] == "lhins-web00001-20261127-030000"
    assert params["ForcePowerOff"] is True
    assert {"Key": "backup", "Value": "daily"} in params["Tags"]
    (event,) = received_events(receiver)
    assert event["type"] == "com.tencentcloud.lighthouse.blueprint.created"
    assert event["subject"] == "lhins-web00001"
    assert event["data"]["BlueprintId"] == answer["Results"][0]["BlueprintId"]
    assert event["data"]["Trigger"] == {"Type": "timer", "Name": "daily-image", "Time": "2026-11-27T03:00:00Z"}
    assert receiver.accepted()[0]["headers"]["Content-Type"] == "application/cloudevents+json"


@pytest.mark.parametrize("via", ["timer", "http"])
@pytest.mark.parametrize(("template", "expected"), [
    ("{InstanceName}", "web-1"),
    # The 60 characters are the rendered name's: a template may be longer, its instance name trimmed to fit.
    ("x" * 55 + "{InstanceName}", "x" * 55 + "web-1"), ("x" * 58 + "{InstanceName}", "x" * 58 + "we"),
    ("{InstanceName}-" * 5, "web-1-" * 5),
])
def test_the_instance_name_names_the_image(make_app, emu, via: str, template: str, expected: str) -> None:
    emu.lighthouse.add_instance("lhins-named001", InstanceName="web-1")
    job = {"InstanceId": "lhins-named001", "BlueprintName": template}
    app = make_app()
    if via == "timer":
        answer = app.handle(timer_event(job), context())
    else:
        response = app.handle(http_event(body=job), context())
        assert response["statusCode"] == 202, response["body"]
        answer = {"Results": [orjson.loads(response["body"])]}
    (params,) = creates(emu)
    assert params["BlueprintName"] == expected == answer["Results"][0]["BlueprintName"]


def test_force_power_off_false_is_passed_through(make_app, emu, receiver) -> None:
    make_app().handle(timer_event({"InstanceId": "lhins-web00001", "ForcePowerOff": False}), context())
    assert creates(emu)[0]["ForcePowerOff"] is False
    assert received_events(receiver)[0]["data"]["ForcePowerOff"] is False
    # The instance keeps running while a live image is made.
    assert emu.lighthouse.instances()[0]["InstanceState"] == "RUNNING"


def test_force_power_off_default_from_settings(make_app, emu) -> None:
    make_app(BLUEPRINT_FORCE_POWER_OFF="FALSE").handle(timer_event({"InstanceId": "lhins-web00001"}), context())
    assert creates(emu)[0]["ForcePowerOff"] is False


def test_empty_timer_message_uses_blueprint_job(make_app, emu) -> None:
    app = make_app(BLUEPRINT_JOB='{"InstanceId": "lhins-db000001", "Description": "nightly"}')
    app.handle(load("timer-empty-message.json"), context())
    (params,) = creates(emu)
    assert params["InstanceId"] == "lhins-db000001"
    assert params["Description"] == "nightly"


def test_timer_without_any_job_is_refused_without_raising(make_app, emu, log_stream) -> None:
    answer = make_app().handle(load("timer-empty-message.json"), context())
    assert "BLUEPRINT_JOB" in answer["Error"]["Message"]
    assert creates(emu) == []
    assert '"level":"ERROR"' in log_stream.getvalue()


@pytest.mark.parametrize(("name", "reported"), [("nightly", "nightly"), ("x" * 61, None), ("tab\there", None)])
def test_a_timer_refused_for_its_time_still_names_its_trigger(make_app, emu, receiver, name, reported) -> None:
    event = {**timer_event({"InstanceId": "lhins-web00001"}, name=name), "Time": "yesterday"}
    answer = make_app().handle(event, context())
    assert answer["Error"]["Code"] == "InvalidParameter" and creates(emu) == []
    (failed,) = received_events(receiver)
    assert failed["type"].endswith(".failed") and failed["data"]["Trigger"]["Type"] == "timer"
    assert failed["data"]["Trigger"]["Name"] == reported


def test_timer_with_invalid_job_does_not_raise(make_app, emu) -> None:
    answer = make_app().handle(timer_event({"InstanceId": "lhins-web00001", "Colour": "red"}), context())
    assert answer["Error"]["Code"] == "InvalidParameter"
    assert "Colour" in answer["Error"]["Message"]
    assert creates(emu) == []


@pytest.mark.parametrize("via", ["timer", "invoke", "queue"])
def test_a_bad_job_is_reported_failed_for_each_instance_it_names(make_app, emu, receiver, via: str) -> None:
    job = {"InstanceIds": ["lhins-web00001", "lhins-db000001", "lhins-web00001", "{not-an-id}", 7],
           "Region": "ap-shanghai", "Keep": 0}
    app = make_app()
    if via == "timer":
        app.handle(timer_event(job), context())
    elif via == "invoke":
        app.handle(job, context())
    else:
        app.handle({"Records": [{"CMQ": {"msgId": "m1", "msgBody": orjson.dumps(job).decode()}}]}, context())
    failed = received_events(receiver)
    assert {(e["subject"], e["data"]["InstanceId"], e["data"]["Region"]) for e in failed} == {
        ("lhins-web00001", "lhins-web00001", "ap-shanghai"), ("lhins-db000001", "lhins-db000001", "ap-shanghai")}
    assert len(failed) == 2 and len({e["id"] for e in failed}) == 2
    assert all(e["type"].endswith(".failed") and e["data"]["Error"]["Code"] == "InvalidParameter" for e in failed)
    assert creates(emu) == []


@pytest.mark.parametrize("job", [{"InstanceId": "{InstanceName}", "X": 1}, {"InstanceIds": "lhins-web00001"},
                                 ["lhins-web00001"], {"Selector": {"Regions": []}}])
def test_a_bad_job_naming_no_plain_instance_is_reported_once_without_one(make_app, emu, receiver, job) -> None:
    make_app().handle(timer_event(job), context())
    [failed] = received_events(receiver)
    assert failed["data"]["InstanceId"] == "" and "subject" not in failed and failed["data"]["Region"] == "ap-guangzhou"


def test_api_gateway_event(make_app, emu, receiver) -> None:
    response = make_app().handle(load("apigw-post.json"), context())
    assert response["statusCode"] == 202
    assert response["headers"] == {"Content-Type": "application/json"}
    assert response["isBase64Encoded"] is False
    body = orjson.loads(response["body"])
    (params,) = creates(emu)
    assert body["BlueprintId"] == emu.lighthouse.blueprints()[0]["BlueprintId"]
    day = body["Trigger"]["Time"][:10].replace("-", "")
    assert params["BlueprintName"] == body["BlueprintName"] == f"web-1-before-deploy-{day}"
    assert params["ForcePowerOff"] is False
    assert len(received_events(receiver)) == 1


def test_function_url_event_with_several_instances(make_app, emu, receiver) -> None:
    response = make_app().handle(load("function-url-post.json"), context())
    assert response["statusCode"] == 202
    body = orjson.loads(response["body"])
    assert [r["InstanceId"] for r in body] == ["lhins-web00001", "lhins-db000001"]
    assert len(creates(emu)) == 2
    types = [e["type"] for e in received_events(receiver)]
    assert types.count("com.tencentcloud.lighthouse.blueprint.created") == 2
    assert types[-1] == "com.tencentcloud.lighthouse.blueprint.run.completed"


def test_base64_body(make_app, emu) -> None:
    job = {"InstanceId": "lhins-db000001"}
    event = http_event(body=None)
    event["body"] = base64.b64encode(orjson.dumps(job)).decode()
    event["isBase64Encoded"] = True
    assert make_app().handle(event, context())["statusCode"] == 202
    assert creates(emu)[0]["InstanceId"] == "lhins-db000001"


def test_cmq_record(make_app, emu, receiver) -> None:
    answer = make_app().handle(load("cmq-queue.json"), context())
    assert answer["Records"][0]["Results"][0]["InstanceId"] == "lhins-db000001"
    assert creates(emu)[0]["InstanceId"] == "lhins-db000001"
    assert received_events(receiver)[0]["data"]["Trigger"]["Type"] == "queue"


def test_ckafka_record_and_redelivery_is_idempotent(make_app, emu) -> None:
    app = make_app()
    app.handle(load("ckafka.json"), context())
    app.handle(load("ckafka.json"), context())
    assert len(creates(emu)) == 1


def test_a_poison_record_is_reported_and_acknowledged_while_the_good_ones_run(make_app, emu, receiver) -> None:
    event = {"Records": [{"CMQ": {"msgId": "1", "msgBody": '{"InstanceId": "lhins-web00001"}'}},
                         {"CMQ": {"msgId": "2", "msgBody": "not json"}}]}
    answer = make_app().handle(event, context())  # no raise: a retry can never fix record 2
    assert len(creates(emu)) == 1
    assert answer["Records"][1]["MessageId"] == "2"
    failed = [e for e in received_events(receiver) if e["type"].endswith(".failed")]
    assert [(e["data"]["MessageId"], e["data"]["Trigger"]["Name"]) for e in failed] == [("2", "2")]
    assert "not valid JSON" in failed[0]["data"]["Error"]["Message"]


def test_direct_invoke_with_a_createblueprint_request(make_app, emu, receiver) -> None:
    answer = make_app().handle(load("invoke-createblueprint-request.json"), context())
    assert creates(emu)[0]["BlueprintName"] == "test-blueprint"
    assert answer["Results"][0]["State"] == "CREATING"
    assert received_events(receiver)[0]["data"]["Trigger"]["Type"] == "invoke"


def test_context_may_be_empty_or_missing_keys(make_app, emu) -> None:
    app = make_app()
    app.handle(load("invoke.json"), {})
    app.handle(timer_event({"InstanceId": "lhins-db000001"}), None)
    assert len(creates(emu)) == 2


def test_webhook_down_makes_a_timer_raise_but_http_answers(make_app, emu, receiver) -> None:
    app = make_app()
    receiver.fail_next(100)
    with pytest.raises(DeliveryError, match="webhook"):
        app.handle(timer_event({"InstanceId": "lhins-web00001"}), context())
    response = app.handle(http_event(body={"InstanceId": "lhins-db000001"}), context())
    assert response["statusCode"] == 202
    assert response["headers"]["X-Blueprint-Delivery"] == "failed: webhook"
    assert orjson.loads(response["body"])["DeliveryFailed"] == ["webhook"]


def test_timer_retry_after_delivery_failure_makes_no_second_image(make_app, emu, receiver) -> None:
    app = make_app()
    event = timer_event({"InstanceId": "lhins-web00001"})
    receiver.fail_next(100)
    with pytest.raises(DeliveryError):
        app.handle(event, context())
    receiver.script.clear()
    answer = app.handle(event, context())
    assert len(creates(emu)) == 1
    assert answer["Results"][0]["BlueprintId"] == emu.lighthouse.blueprints()[0]["BlueprintId"]
    # The sink that missed `.created` gets it now, with the id the first attempt gave it.
    first_try = {r["body"] for r in receiver.received if r["status"] >= 300}
    resent = received_events(receiver)[-1]
    assert resent["type"].endswith(".created") and resent["data"]["Resent"] is True
    assert resent["id"] in {orjson.loads(body)["id"] for body in first_try}


def test_cloud_unreachable_raises_for_timer(make_app, emu) -> None:
    app = make_app(BLUEPRINT_API_ENDPOINT="http://127.0.0.1:9")
    with pytest.raises(CloudUnavailable):
        app.handle(timer_event({"InstanceId": "lhins-web00001"}), context(time_limit_in_ms=20_000))


def test_missing_credentials_is_a_clear_config_error(make_app, log_stream) -> None:
    app = make_app(TENCENTCLOUD_SECRETID=None, TENCENTCLOUD_SECRETKEY=None)
    with pytest.raises(BlueprintError, match="credentials"):
        app.handle(timer_event({"InstanceId": "lhins-web00001"}), context())
    response = app.handle(http_event(body={"InstanceId": "lhins-web00001"}), context())
    # The operator's problem, not the caller's: a 500 for the caller, the reason in the log.
    assert response["statusCode"] == 500
    assert orjson.loads(response["body"])["Error"]["Code"]
    assert "TENCENTCLOUD_SECRETID" in log_stream.getvalue()


def test_credentials_are_reread_when_they_rotate(make_app, emu) -> None:
    env_app = make_app()
    env_app.handle(timer_event({"InstanceId": "lhins-web00001"}, name="a"), context())
    first = {c.params.get("InstanceId") for c in emu.calls_of("CreateBlueprint")}
    rotated = dict(env_app.env, TENCENTCLOUD_SESSIONTOKEN="rotated-token")
    env_app.env = rotated
    env_app.handle(timer_event({"InstanceId": "lhins-db000001"}, name="b"), context())
    assert first == {"lhins-web00001"}
    assert len(creates(emu)) == 2
