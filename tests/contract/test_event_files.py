"""Every sample in events/ is a real trigger shape: it parses to the right trigger and a valid job."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from blueprint.errors import BadRequest
from blueprint.events import (
    ApiGatewayEvent,
    FunctionUrlEvent,
    InvokeEvent,
    QueueEvent,
    TimerEvent,
    parse_event,
    parse_job,
    parse_json,
)

EVENTS = Path(__file__).resolve().parents[2] / "events"
EXPECTED = {
    "timer.json": TimerEvent,
    "timer-empty-message.json": TimerEvent,
    "timer-fleet.json": TimerEvent,
    "apigw-post.json": ApiGatewayEvent,
    "apigw-post-base64.json": ApiGatewayEvent,
    "apigw-get.json": ApiGatewayEvent,
    "function-url-post.json": FunctionUrlEvent,
    "cmq-queue.json": QueueEvent,
    "ckafka.json": QueueEvent,
    "invoke.json": InvokeEvent,
    "invoke-createblueprint-request.json": InvokeEvent,
    "invoke-consistent.json": InvokeEvent,
}


def load(name: str) -> dict:
    return orjson.loads((EVENTS / name).read_bytes())


def test_every_sample_is_listed() -> None:
    assert sorted(p.name for p in EVENTS.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_parses_to_its_trigger(name: str) -> None:
    trigger = parse_event(load(name))
    assert type(trigger) is EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_carries_a_valid_job(name: str) -> None:
    trigger = parse_event(load(name))
    if isinstance(trigger, TimerEvent):
        if trigger.Message:
            assert parse_job(parse_json(trigger.Message)).fields()
    elif isinstance(trigger, ApiGatewayEvent | FunctionUrlEvent):
        if trigger.httpMethod == "POST":
            job = parse_job(parse_json(trigger.raw_body()))
            assert job.InstanceId or job.InstanceIds
    elif isinstance(trigger, QueueEvent):
        for record in trigger.records():
            assert record.problem is None
            assert parse_job(parse_json(record.body)).InstanceId
    else:
        assert parse_job(trigger.payload).InstanceId == "lhins-web00001"


def test_timer_type_is_case_insensitive() -> None:
    for kind in ("Timer", "timer", "TIMER"):
        assert isinstance(parse_event({**load("timer.json"), "Type": kind}), TimerEvent)


def test_base64_flag_as_string_and_bool() -> None:
    event = load("apigw-post-base64.json")
    for flag in ("true", True, "TRUE"):
        assert parse_job(parse_json(parse_event({**event, "isBase64Encoded": flag}).raw_body())).DryRun


def test_headers_any_case_and_repeated() -> None:
    event = load("apigw-post.json")
    event["headers"] = {"AUTHORIZATION": ["Bearer a", "Bearer b"], "content-TYPE": "application/json"}
    req = parse_event(event)
    assert isinstance(req, ApiGatewayEvent)
    assert req.header("Authorization") == "Bearer a"
    assert req.header("content-type") == "application/json"


@pytest.mark.parametrize(("mutation", "fragment"), [
    ({"Time": "yesterday"}, "Time"),
    ({"Type": "timer", "Time": None}, "Time"),
])
def test_invalid_timer_variants(mutation: dict, fragment: str) -> None:
    with pytest.raises(BadRequest, match=fragment):
        parse_event({**load("timer.json"), **mutation})


def test_invalid_queue_record_is_read_with_its_problem() -> None:
    event = parse_event({"Records": [{"Other": {}}]})
    assert isinstance(event, QueueEvent)
    assert "CMQ or Ckafka" in (event.records()[0].problem or "")


def test_bad_base64_body_is_a_client_error() -> None:
    event = {**load("apigw-post-base64.json"), "body": "not base64!!"}
    req = parse_event(event)
    assert isinstance(req, ApiGatewayEvent)
    with pytest.raises(BadRequest, match="base64"):
        req.raw_body()
