"""Issue 12: every promise on the edge paths, against the emulator with the real SDK: once per slot on every
path, the operator's limits, scoped reads, queue batches, stable delivery ids, and the cloud's own rules."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import orjson
import pytest

from blueprint.errors import BlueprintError, RecordsFailed
from blueprint.images import INSTANCE_TAG
from tests.conftest import context, http_event, received_events, timer_event

JOB = {"InstanceId": "lhins-web00001"}
TICK = "2026-11-27T03:00:00Z"


def images(emu, instance: str = "lhins-web00001") -> list[dict[str, Any]]:
    return [b for b in emu.lighthouse.blueprints() if {"Key": INSTANCE_TAG, "Value": instance} in b["Tags"]]


def creates(emu) -> list[Any]:
    return [c for c in emu.calls_of("CreateBlueprint") if c.error is None]


def post(app, job: Any, **kwargs: Any) -> tuple[int, Any, dict[str, str]]:
    response = app.handle(http_event(body=job, **kwargs), context())
    return response["statusCode"], orjson.loads(response["body"]), response["headers"]


def instance_state(emu, instance: str = "lhins-web00001") -> list[str]:
    return [c.action for c in emu.calls if c.action in ("StopInstances", "CreateBlueprint")
            and instance in str(c.params)]


# ---- once per slot, on every path ----------------------------------------------------------------------

def test_after_quota_recovery_a_lost_answer_does_not_make_a_second_image(make_app, emu, receiver) -> None:
    emu.lighthouse.set_quota("ap-guangzhou", 2)
    app = make_app()
    for day in (25, 26):
        app.handle(timer_event({**JOB, "Keep": 2}, time_=f"2026-11-{day}T03:00:00Z"), context())
        emu.advance(3600)
    # The quota is full: the next create is refused, old images are pruned, and the retried create's
    # answer is lost after the cloud made the image.
    emu.faults.drop("CreateBlueprint", after=True, skip=1)
    answer = app.handle(timer_event({**JOB, "Keep": 2}), context())
    made = [c for c in emu.calls_of("CreateBlueprint")[2:] if c.error is None]
    assert len(made) == 1, "a second CreateBlueprint was sent without looking for the slot's image first"
    assert answer["Results"][0]["BlueprintId"] in {b["BlueprintId"] for b in images(emu)}
    assert len(images(emu)) == 2


def test_the_same_instance_listed_twice_is_one_target(make_app, emu, receiver) -> None:
    answer = make_app().handle(timer_event({"InstanceIds": ["lhins-web00001", "ap-guangzhou:lhins-web00001"]}),
                               context())
    assert len(creates(emu)) == 1
    assert [r["InstanceId"] for r in answer["Results"]] == ["lhins-web00001"]


@pytest.mark.parametrize("stolen", [f"timer|tick|daily|{TICK}", f"timer:daily:{TICK}"])
def test_an_http_key_can_never_take_a_timer_slot(make_app, emu, receiver, stolen: str) -> None:
    app = make_app()
    code, body, _ = post(app, {**JOB, "IdempotencyKey": stolen, "BlueprintName": "attacker",
                               "ForcePowerOff": False})
    assert code == 202 and body["BlueprintName"] == "attacker"
    emu.advance(60)  # the instance is busy while the first image is made
    answer = app.handle(timer_event(JOB, time_=TICK, name="daily"), context())
    result = answer["Results"][0]
    assert (result["BlueprintName"], result["ForcePowerOff"]) == ("lhins-web00001-20261127-030000", True)
    assert not result.get("Resent")
    assert len(images(emu)) == 2


def test_keys_of_different_triggers_never_meet(make_app, emu) -> None:
    app = make_app()
    app.handle({**JOB, "IdempotencyKey": "k1"}, context())  # direct invoke
    emu.advance(60)
    post(app, {**JOB, "IdempotencyKey": "k1"})  # HTTP, same key
    emu.advance(60)
    app.handle({"Records": [{"CMQ": {"msgId": "m", "msgBody": orjson.dumps({**JOB, "IdempotencyKey": "k1"})
                                     .decode()}}]}, context())
    assert len(creates(emu)) == 3


def _signed(event: dict[str, Any], secret: bytes, msg_id: str) -> dict[str, Any]:
    stamp = str(int(time.time()))
    mac = hmac.new(secret, f"{msg_id}.{stamp}.".encode() + event["body"].encode(), hashlib.sha256).digest()
    event["headers"] |= {"webhook-id": msg_id, "webhook-timestamp": stamp,
                         "webhook-signature": "v1," + base64.b64encode(mac).decode()}
    return event


def test_hmac_ignores_an_unsigned_idempotency_key_on_a_replay(make_app, emu) -> None:
    secret = b"0123456789abcdef0123456789abcdef"
    env = {"BLUEPRINT_HTTP_AUTH": "hmac", "BLUEPRINT_HTTP_SECRET": "whsec_" + base64.b64encode(secret).decode()}
    first, second = make_app(**env), make_app(**env)  # two warm containers: separate replay memories
    signed = _signed(http_event(body=JOB, token=None), secret, "msg-1")
    assert first.handle(signed, context())["statusCode"] == 202
    replay = _signed(http_event(body=JOB, token=None, headers={"Idempotency-Key": "fresh"}), secret, "msg-1")
    assert second.handle(replay, context())["statusCode"] == 202
    assert len(creates(emu)) == 1


# ---- the operator's limits bind every caller ---------------------------------------------------------------

def test_a_job_cannot_raise_max_instances(make_app, emu) -> None:
    app = make_app(BLUEPRINT_MAX_INSTANCES="1")
    code, body, _ = post(app, {"InstanceIds": ["lhins-web00001", "lhins-db000001"], "MaxInstances": 5})
    assert code == 403 and "BLUEPRINT_MAX_INSTANCES" in body["Error"]["Message"]
    code, body, _ = post(app, {"InstanceIds": ["lhins-web00001", "lhins-db000001"], "MaxInstances": 1})
    assert code == 400 and body["Error"]["Code"] == "LimitExceeded.MaxInstances"
    assert emu.calls_of("CreateBlueprint") == []


def test_a_job_cannot_keep_fewer_than_the_operator_floor(make_app, emu, receiver) -> None:
    app = make_app(BLUEPRINT_KEEP="3")
    for day in range(20, 25):
        app.handle(timer_event(JOB, time_=f"2026-11-{day}T03:00:00Z"), context())
        emu.advance(3600)
    assert len(images(emu)) == 3
    code, body, _ = post(app, {**JOB, "Keep": 1})
    assert code == 403 and "BLUEPRINT_KEEP" in body["Error"]["Message"]
    answer = app.handle(timer_event({**JOB, "Keep": 1}), context())  # a timer is bound too: refused, reported
    assert answer["Error"]["Code"] == "UnauthorizedOperation.OperatorLimit"
    assert received_events(receiver)[-1]["type"].endswith(".failed")
    assert received_events(receiver)[-1]["subject"] == "lhins-web00001"
    assert len(images(emu)) == 3
    code, _, _ = post(app, {**JOB, "Keep": 5})  # keeping more is fine
    assert code == 202


# ---- reads are scoped like writes ---------------------------------------------------------------------------

def test_get_answers_only_for_managed_images_of_admitted_instances(make_app, emu) -> None:
    writer = make_app()
    web = writer.handle(timer_event(JOB), context())["Results"][0]["BlueprintId"]
    db = writer.handle(timer_event({"InstanceId": "lhins-db000001"}), context())["Results"][0]["BlueprintId"]
    foreign = emu.lighthouse.add_blueprint("mine", Tags=[{"Key": INSTANCE_TAG, "Value": "lhins-web00001"}])
    by_tags = make_app(BLUEPRINT_ALLOWED_TAGS="env=prod")  # web carries env=prod, db does not
    by_ids = make_app(BLUEPRINT_ALLOWED_INSTANCES="lhins-db000001")

    def status(app, image: str) -> int:
        return int(app.handle(http_event("GET", f"/blueprints/{image}"), context())["statusCode"])

    assert [status(by_tags, i) for i in (web, db, foreign["BlueprintId"])] == [200, 404, 404]
    assert [status(by_ids, i) for i in (web, db)] == [404, 200]
    assert status(writer, foreign["BlueprintId"]) == 404  # a slot tag is missing: not one of ours


# ---- queue batches: nothing lost, nothing stalled -----------------------------------------------------------

def _record(msg_id: str, body: Any) -> dict[str, Any]:
    return {"CMQ": {"msgId": msg_id, "msgBody": body if isinstance(body, str) else orjson.dumps(body).decode()}}


def test_a_batch_over_a_thousand_is_processed_not_dropped(make_app, emu, receiver) -> None:
    records = [_record(str(n), "not json") for n in range(1_499)] + [_record("good", JOB)]
    answer = make_app().handle({"Records": records}, context())
    assert len(answer["Records"]) == 1_500
    assert len(creates(emu)) == 1
    failed = [e for e in received_events(receiver) if e["type"].endswith(".failed")]
    assert len(failed) == 1_499
    assert {e["data"]["MessageId"] for e in failed} == {str(n) for n in range(1_499)}


@pytest.mark.parametrize("poison", ["not json", {"InstanceId": "nope"}, {"InstanceId": "lhins-web00001", "X": 1},
                                    None, 12])
def test_a_poison_record_never_fails_the_batch(make_app, emu, receiver, poison) -> None:
    record = {"CMQ": {"msgId": "bad", "msgBody": poison}} if not isinstance(poison, str | dict) \
        else _record("bad", poison)
    answer = make_app().handle({"Records": [record, _record("good", {"InstanceId": "lhins-db000001"})]}, context())
    assert answer["Records"][0]["MessageId"] == "bad"
    assert len(creates(emu)) == 1
    [failed] = [e for e in received_events(receiver) if e["type"].endswith(".failed")]
    assert failed["data"]["MessageId"] == "bad"


def test_a_refused_instance_in_a_record_is_reported_not_retried(make_app, emu, receiver) -> None:
    app = make_app(BLUEPRINT_ALLOWED_INSTANCES="lhins-db000001")
    answer = app.handle({"Records": [_record("r1", JOB)]}, context())
    assert answer["Records"][0]["Results"][0]["Error"]["Code"] == "UnauthorizedOperation.InstanceNotAllowed"


def test_every_result_of_a_record_names_its_message(make_app, emu, receiver) -> None:
    app = make_app(BLUEPRINT_ALLOWED_INSTANCES="lhins-db000001,lhins-web00001")
    batch = {"Records": [_record("made", {"InstanceId": "lhins-db000001"}),
                         _record("refused", {"InstanceId": "lhins-stop0001"}),
                         _record("missing", {"InstanceIds": ["lhins-web00001", "lhins-gone0001"]})]}
    answer = app.handle(batch, context())
    by_record = {r["MessageId"]: r for r in answer["Records"]}
    assert by_record["made"]["Results"][0]["MessageId"] == "made"
    [refused] = by_record["refused"]["Results"]
    assert (refused["MessageId"], refused["Error"]["Code"]) == ("refused", "UnauthorizedOperation.InstanceNotAllowed")
    assert {r["MessageId"] for r in by_record["missing"]["Results"]} == {"missing"}
    events = received_events(receiver)
    assert {e["type"].rsplit(".", 1)[-1] for e in events} >= {"created", "failed"}
    for event in events:
        if event["type"].endswith("run.completed"):
            continue
        assert event["data"].get("MessageId") == event["data"]["Trigger"]["Name"], event


def test_a_retryable_record_failure_raises_and_the_retry_skips_what_was_done(make_app, emu, receiver) -> None:
    app = make_app()
    batch = {"Records": [_record("a", JOB), _record("b", {"InstanceId": "lhins-db000001"}), _record("c", "junk")]}
    emu.faults.fail("CreateBlueprint", "InternalError", times=4, skip=1)  # b's four attempts
    with pytest.raises(RecordsFailed, match="message b"):
        app.handle(batch, context())
    assert len(creates(emu)) == 1
    app.handle(batch, context())  # the platform redelivers the batch
    assert len(creates(emu)) == 2
    created = [e for e in received_events(receiver) if e["type"].endswith(".created")]
    assert len({e["id"] for e in created}) == 2 and len(created) == 3  # a's .created re-sent with its id


def test_a_record_whose_report_cannot_be_delivered_makes_the_batch_raise(make_app, emu, receiver) -> None:
    receiver.fail_next(100)
    with pytest.raises(RecordsFailed):
        make_app().handle({"Records": [_record("x", "junk")]}, context())


# ---- the cloud's own rules -----------------------------------------------------------------------------------

def images_go(emu, state: str) -> Any:
    """Every image the cloud accepts from now on shows `state` at once; returns the real CreateBlueprint."""
    real_create = emu.lighthouse._create_blueprint

    def create(params, ctx):
        answer = real_create(params, ctx)
        emu.lighthouse.set_blueprint_state(answer["BlueprintId"], state)
        return answer

    emu.lighthouse._handlers["CreateBlueprint"] = create
    return real_create


def test_wait_ends_at_once_when_the_image_cannot_become_normal(make_app, emu, receiver) -> None:
    app = make_app()
    images_go(emu, "DELETING")
    answer = app.handle(timer_event({**JOB, "Wait": True}), context())
    result = answer["Results"][0]
    assert (result["State"], result["Error"]["Code"]) == ("DELETING", "FailedOperation.BlueprintUnavailable")
    assert len(emu.calls_of("DescribeBlueprints")) <= 3  # one poll saw it, no polling to the deadline


def test_an_undocumented_state_ends_the_wait_with_a_clear_reason(make_app, emu, receiver) -> None:
    app = make_app()
    real_create = images_go(emu, "MIGRATING")
    result = app.handle(timer_event({**JOB, "Wait": True}), context())["Results"][0]
    assert result["State"] == "MIGRATING" and "BLUEPRINT_IN_PROGRESS_STATES" in result["Reason"]
    assert [e["type"].rsplit(".", 1)[-1] for e in received_events(receiver)] == ["created"]
    # An operator who knows the state can tell the function to follow it.
    emu.lighthouse._handlers["CreateBlueprint"] = real_create
    follow = make_app(BLUEPRINT_IN_PROGRESS_STATES="CREATING,MIGRATING")
    assert follow.handle(timer_event({"InstanceId": "lhins-db000001", "Wait": True}), context())[
        "Results"][0]["State"] == "NORMAL"


def test_idempotency_does_not_depend_on_how_tag_filters_read_a_colon(make_app, emu) -> None:
    emu.lighthouse.tag_split_colon = True  # a cloud that reads tag:scf-blueprint:slot as key scf-blueprint
    app = make_app(BLUEPRINT_KEEP="2")
    for _ in range(3):
        app.handle(timer_event(JOB), context())
    for day in (28, 29, 30):
        emu.advance(3600)
        app.handle(timer_event(JOB, time_=f"2026-11-{day}T03:00:00Z"), context())
    assert len(creates(emu)) == 4
    assert len(images(emu)) == 2  # retention found them too


@pytest.mark.parametrize("tag", [{"Key": "qcs:owner", "Value": "x"}, {"Key": "project:x", "Value": "y"},
                                 {"Key": " lead", "Value": "x"}, {"Key": "k", "Value": "trail "},
                                 {"Key": "a*b", "Value": "x"}, {"Key": "k", "Value": "a\tb"},
                                 {"Key": "k", "Value": ""}, {"Key": "k" * 128, "Value": "x"},
                                 {"Key": "k", "Value": "v" * 256}])
def test_tags_are_held_to_the_tag_service_rules_before_any_call(make_app, emu, tag) -> None:
    code, body, _ = post(make_app(), {**JOB, "Tags": [tag]})
    assert code == 400 and "Tags" in body["Error"]["Message"]
    assert emu.calls == []


def test_tags_the_tag_service_accepts_pass(make_app, emu) -> None:
    tags = [{"Key": "team:web/ops", "Value": "a+b=c (x) [y], z; @q"}, {"Key": "\u73af\u5883", "Value": "\u751f\u4ea7"}]
    code, _, _ = post(make_app(), {**JOB, "Tags": tags})
    assert code == 202
    assert emu.calls_of("CreateBlueprint")[0].params["Tags"][:2] == tags


@pytest.mark.parametrize("code", ["FailedOperation.DescribeBlueprintsFailed", "InternalError"])
def test_documented_try_again_codes_are_retried(make_app, emu, code: str) -> None:
    emu.faults.fail("DescribeBlueprints", code, times=1)
    answer = make_app().handle(timer_event(JOB), context())
    assert answer["Results"][0]["BlueprintId"]


def test_an_unlisted_invalid_parameter_code_is_not_retried(make_app, emu, receiver) -> None:
    emu.faults.fail("CreateBlueprint", "InvalidParameter.SomethingNew", times=3)
    code, body, _ = post(make_app(), JOB)
    assert (code, body["Error"]["Code"]) == (400, "InvalidParameter.SomethingNew")
    assert len(emu.calls_of("CreateBlueprint")) == 1


def test_a_busy_instance_never_makes_a_timer_look_done(make_app, emu) -> None:
    emu.faults.fail("CreateBlueprint", "UnsupportedOperation.LatestOperationUnfinished", times=20)
    with pytest.raises(BlueprintError, match="retry"):
        make_app().handle(timer_event(JOB), context())
