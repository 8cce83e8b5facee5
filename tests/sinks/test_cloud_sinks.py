"""TDMQ CMQ queue/topic and the next function, through the real SDK against the emulator."""

from __future__ import annotations

import orjson
import pytest

from blueprint.errors import DeliveryError
from tests.conftest import EmuClock, context, http_event, timer_event
from tests.sinks.helpers import by_type, data, parse, parse_json

JOB = {"InstanceId": "lhins-web00001"}
FLEET = {"InstanceIds": ["lhins-web00001", "lhins-db000001"]}


def test_queue_gets_each_event_as_cloudevents_json(make_app, emu) -> None:
    app = make_app(BLUEPRINT_WEBHOOK_URL=None, BLUEPRINT_CMQ_QUEUE="blueprint-results")
    app.handle(timer_event(FLEET), context(request_id="rq-1"))
    events = [parse_json(m["MsgContent"]) for m in emu.tdmq.queue_messages("blueprint-results")]
    assert len(by_type(events, ".created")) == 2 and len(by_type(events, ".run.completed")) == 1
    assert {e.get_extension("correlationid") for e in events} == {"rq-1"}
    assert {m["DelaySeconds"] for m in emu.tdmq.queue_messages("blueprint-results")} == {0}
    assert [c.params["QueueName"] for c in emu.calls_of("SendCmqMsg")] == ["blueprint-results"] * 3


def test_topic_messages_are_tagged_with_the_event_type(make_app, emu) -> None:
    app = make_app(BLUEPRINT_WEBHOOK_URL=None, BLUEPRINT_CMQ_TOPIC="blueprint-events")
    app.handle(timer_event(FLEET), context())
    messages = emu.tdmq.topic_messages("blueprint-events")
    assert len(messages) == 3
    for message in messages:
        event = parse_json(message["MsgContent"])
        assert message["MsgTag"] == [event.get_type()] and len(message["MsgTag"][0]) <= 64


def test_cmq_retries_a_throttled_or_failing_call_once_each(make_app, emu) -> None:
    clock = EmuClock(emu)
    emu.faults.fail("SendCmqMsg", "RequestLimitExceeded", times=1)
    emu.faults.fail("SendCmqMsg", "InternalError", times=1)
    app = make_app(clock=clock, BLUEPRINT_WEBHOOK_URL=None, BLUEPRINT_CMQ_QUEUE="blueprint-results")
    app.handle(timer_event(JOB), context())
    assert len(emu.tdmq.queue_messages("blueprint-results")) == 1
    assert len(emu.calls_of("SendCmqMsg")) == 3 and len(clock.slept) >= 2


def test_a_missing_queue_is_not_retried_and_fails_the_timer(make_app, emu, log_stream) -> None:
    app = make_app(BLUEPRINT_WEBHOOK_URL=None, BLUEPRINT_CMQ_QUEUE="no-such-queue")
    with pytest.raises(DeliveryError, match="cmq-queue"):
        app.handle(timer_event(JOB), context())
    assert len(emu.calls_of("SendCmqMsg")) == 1
    assert "ResourceNotFound" in log_stream.getvalue() or "does not exist" in log_stream.getvalue()


def test_next_function_is_invoked_async_with_the_cloudevent(make_app, emu) -> None:
    seen: list[dict] = []
    emu.scf.register("blueprint-next", lambda event, ctx: seen.append(event))
    app = make_app(BLUEPRINT_WEBHOOK_URL=None, BLUEPRINT_NEXT_FUNCTION="default/blueprint-next:$LATEST")
    app.handle(timer_event(JOB), context(request_id="rq-7"))
    assert emu.scf.wait_idle()
    [call] = emu.scf.invocations
    assert (call["FunctionName"], call["Namespace"], call["Qualifier"], call["InvocationType"]) == \
        ("blueprint-next", "default", "$LATEST", "Event")
    event = parse_json(call["ClientContext"])
    assert event.get_type().endswith(".created") and event.get_extension("correlationid") == "rq-7"
    assert data(event)["InstanceId"] == "lhins-web00001"
    assert seen and seen[0]["id"] == event.get_id()  # the callee's event is the CloudEvent itself


def test_next_function_in_another_namespace(make_app, emu) -> None:
    emu.scf.add_function("notify", namespace="ops")
    app = make_app(BLUEPRINT_WEBHOOK_URL=None, BLUEPRINT_NEXT_FUNCTION="ops/notify")
    app.handle(timer_event(JOB), context())
    [call] = emu.scf.invocations
    assert (call["FunctionName"], call["Namespace"], call["Qualifier"]) == ("notify", "ops", "$LATEST")


def test_several_sinks_one_failing_others_still_receive_and_http_names_it(make_app, emu, receiver) -> None:
    app = make_app(BLUEPRINT_CMQ_QUEUE="no-such-queue", BLUEPRINT_CMQ_TOPIC="blueprint-events",
                   BLUEPRINT_NEXT_FUNCTION="blueprint-next")
    response = app.handle(http_event(body=JOB), context())
    assert response["statusCode"] == 202
    assert response["headers"]["X-Blueprint-Delivery"] == "failed: cmq-queue"
    assert orjson.loads(response["body"])["DeliveryFailed"] == ["cmq-queue"]
    [hooked] = [parse(r["headers"], r["body"]) for r in receiver.accepted()]
    [published] = [parse_json(m["MsgContent"]) for m in emu.tdmq.topic_messages("blueprint-events")]
    assert emu.scf.wait_idle()
    [invoked] = [parse_json(c["ClientContext"]) for c in emu.scf.invocations]
    assert hooked.get_id() == published.get_id() == invoked.get_id()


def test_several_sinks_one_failing_makes_the_timer_raise_after_all_were_tried(make_app, emu, receiver) -> None:
    app = make_app(BLUEPRINT_CMQ_QUEUE="blueprint-results", BLUEPRINT_CMQ_TOPIC="no-such-topic")
    with pytest.raises(DeliveryError, match="cmq-topic"):
        app.handle(timer_event(FLEET), context())
    assert len(receiver.accepted()) == 3
    assert len(emu.tdmq.queue_messages("blueprint-results")) == 3
    # the failing topic was tried once, not once per event: its retries must not eat the others' time
    assert len(emu.calls_of("PublishCmqMsg")) == 1
