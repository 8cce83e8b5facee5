"""Issue 16 item 3: a busy instance answers an HTTP caller at once (409 with Retry-After), and every wait the
function does is in the log (what it waits for, how long) and summed in the invocation's summary line."""

from __future__ import annotations

import time

import orjson
import pytest

from blueprint.errors import BlueprintError
from tests.conftest import EmuClock, context, http_event, received_events, timer_event

JOB = {"InstanceId": "lhins-web00001"}
BUSY = "UnsupportedOperation.LatestOperationUnfinished"


def lines(stream) -> list[dict]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def waits(stream) -> list[dict]:
    return [r for r in lines(stream) if r["message"].startswith("waiting for ")]


def summary(stream) -> dict:
    return next(r for r in lines(stream) if r["message"] == "invocation finished")


def test_an_instance_busy_making_another_image_is_a_quick_409_with_retry_after(make_app, emu, log_stream) -> None:
    clock = EmuClock(emu)
    app = make_app(clock=clock)
    app.handle(timer_event(JOB), context())  # the emulator keeps the instance busy while this image is made
    clock.slept.clear()
    started = time.monotonic()
    response = app.handle(http_event(body={**JOB, "IdempotencyKey": "another-slot"}), context())
    elapsed = time.monotonic() - started
    body = orjson.loads(response["body"])
    assert response["statusCode"] == 409
    assert body["Error"]["Code"] == BUSY
    assert response["headers"]["Retry-After"] == "30"
    assert clock.slept == []  # nothing waited out, real or virtual
    assert elapsed < 5
    assert len(emu.calls_of("CreateBlueprint")) == 2  # the timer's, and one attempt of the HTTP call


def test_a_busy_http_call_still_finds_the_image_its_slot_already_has(make_app, emu) -> None:
    app = make_app()
    first = app.handle(http_event(body={**JOB, "IdempotencyKey": "k1"}), context())
    again = app.handle(http_event(body={**JOB, "IdempotencyKey": "k1"}), context())
    assert (first["statusCode"], again["statusCode"]) == (202, 202)
    assert orjson.loads(again["body"])["BlueprintId"] == orjson.loads(first["body"])["BlueprintId"]
    assert len(emu.calls_of("CreateBlueprint")) == 1


def test_a_timer_still_waits_a_busy_instance_out_and_logs_each_wait(make_app, emu, log_stream) -> None:
    emu.faults.fail("CreateBlueprint", BUSY, times=1)
    answer = make_app().handle(timer_event(JOB), context())
    assert answer["Results"][0]["BlueprintId"].startswith("lhbp-")
    logged = [w for w in waits(log_stream) if w["waiting_for"] == "a retry"]
    assert len(logged) == 1
    assert logged[0]["level"] == "INFO" and logged[0]["error"] == BUSY and logged[0]["seconds"] >= 2.5
    waited = summary(log_stream)["waited"]
    assert waited["a retry"]["count"] == 1
    assert waited["a retry"]["seconds"] == logged[0]["seconds"]


def test_a_timer_waits_minutes_for_an_operation_that_takes_minutes(make_app, emu, log_stream) -> None:
    # Another operation on the instance (a console snapshot, yesterday's image still being made) takes minutes:
    # eight busy answers in a row are about a minute and a half to four minutes of waiting, not a failure.
    clock = EmuClock(emu)
    emu.faults.fail("CreateBlueprint", BUSY, times=8)
    answer = make_app(clock=clock).handle(timer_event(JOB), context())
    assert answer["Results"][0]["BlueprintId"].startswith("lhbp-")
    assert len([w for w in waits(log_stream) if w["waiting_for"] == "a retry"]) == 8
    assert 90 <= sum(clock.slept) <= 240


def test_a_busy_wait_stops_within_the_time_limit(make_app, emu, receiver) -> None:
    clock = EmuClock(emu)
    emu.faults.fail("CreateBlueprint", BUSY, times=100)
    with pytest.raises(BlueprintError, match="retry"):
        make_app(clock=clock).handle(timer_event(JOB), context(time_limit_in_ms=120_000))
    assert sum(clock.slept) < 120
    (event,) = received_events(receiver)  # reported, and raised so that SCF retries it
    assert event["type"].endswith(".failed") and event["data"]["Error"]["Code"] == BUSY


@pytest.mark.parametrize("busy", [1, 4, 6])
def test_after_a_busy_wait_a_lost_answer_still_finds_its_image(make_app, emu, receiver, busy: int) -> None:
    # Busy answers and other errors are counted apart: minutes of a busy instance leave the lost answer of the
    # create that then went through its own retry, which finds the image instead of reporting it failed.
    emu.faults.fail("CreateBlueprint", BUSY, times=busy)
    emu.faults.drop("CreateBlueprint", after=True, skip=busy)
    answer = make_app(clock=EmuClock(emu)).handle(timer_event(JOB), context())
    (made,) = [b["BlueprintId"] for b in emu.lighthouse.blueprints()]
    assert answer["Results"][0]["BlueprintId"] == made
    assert not [e for e in received_events(receiver) if e["type"].endswith(".failed")]


def test_when_the_last_tries_answer_is_lost_the_image_is_found_not_reported_failed(make_app, emu, receiver) -> None:
    emu.faults.fail("CreateBlueprint", "InternalError", times=3)
    emu.faults.drop("CreateBlueprint", after=True, skip=3)  # the fourth and last try acts, its answer is lost
    answer = make_app(clock=EmuClock(emu)).handle(timer_event(JOB), context())
    (made,) = [b["BlueprintId"] for b in emu.lighthouse.blueprints()]
    assert answer["Results"][0]["BlueprintId"] == made
    assert [e["type"].rsplit(".", 1)[-1] for e in received_events(receiver)] == ["created"]


def test_the_last_look_is_left_out_when_it_would_not_leave_time_to_deliver(make_app, emu, receiver) -> None:
    # 14 s to live, 11 s of work: after three short retries less than one call's timeout (10 s) is left, so the
    # instance is reported failed (SCF's retry then finds the image) rather than the results never delivered.
    emu.faults.fail("CreateBlueprint", "InternalError", times=3)
    emu.faults.drop("CreateBlueprint", after=True, skip=3)
    with pytest.raises(BlueprintError):
        make_app(clock=EmuClock(emu)).handle(timer_event(JOB), context(time_limit_in_ms=14_000))
    lookups = len(emu.calls_of("DescribeBlueprints"))
    assert [e["type"].rsplit(".", 1)[-1] for e in received_events(receiver)] == ["failed"]
    assert lookups == 4  # the run's slot lookup and one before each retry; none after the last try


def test_after_a_busy_wait_a_throttle_is_still_retried(make_app, emu) -> None:
    emu.faults.fail("CreateBlueprint", BUSY, times=6)
    emu.faults.fail("CreateBlueprint", "RequestLimitExceeded", times=1)
    answer = make_app(clock=EmuClock(emu)).handle(timer_event(JOB), context())
    assert answer["Results"][0]["BlueprintId"].startswith("lhbp-")


def test_busy_records_of_a_queue_batch_leave_the_others_their_time(make_app, emu, receiver) -> None:
    # Seven instances busy for good, then four free ones, in one batch of a 900 s function: each busy record
    # is waited out for its share of the time left, not five minutes, so the free ones are imaged this time.
    busy = [f"lhins-busy{n:04d}" for n in range(7)]
    free = [f"lhins-free{n:04d}" for n in range(4)]
    for instance in busy:
        emu.lighthouse.add_instance(instance, LatestOperation="ResetInstance", LatestOperationState="OPERATING")
    for instance in free:
        emu.lighthouse.add_instance(instance)
    records = [{"CMQ": {"msgId": f"m{n}", "msgBody": orjson.dumps({"InstanceId": i}).decode()}}
               for n, i in enumerate(busy + free)]
    clock = EmuClock(emu)
    with pytest.raises(BlueprintError, match="7 of 11 record"):
        make_app(clock=clock).handle({"Records": records}, context(time_limit_in_ms=900_000))
    assert sum(clock.slept) < 900
    assert {b["BlueprintName"][:14] for b in emu.lighthouse.blueprints()} == set(free)
    failed = {e["subject"] for e in received_events(receiver) if e["type"].endswith(".failed")}
    assert failed == set(busy)


def test_following_an_image_logs_each_poll_and_the_total(make_app, emu, log_stream) -> None:
    answer = make_app().handle(timer_event({**JOB, "Wait": True}), context())
    assert answer["Results"][0]["State"] == "NORMAL"
    polls = [w for w in waits(log_stream) if w["waiting_for"] == "images to become NORMAL"]
    assert polls and all(w["region"] == "ap-guangzhou" and w["images"] == 1 for w in polls)
    total = summary(log_stream)["waited"]["images to become NORMAL"]
    assert total["count"] == len(polls)
    assert abs(total["seconds"] - sum(w["seconds"] for w in polls)) < 0.01
    assert total["seconds"] >= 30  # the emulator takes 30 s to make an image


def test_an_invocation_that_waited_for_nothing_says_nothing_about_waits(make_app, log_stream) -> None:
    make_app().handle(timer_event(JOB), context())
    assert waits(log_stream) == []
    assert "waited" not in summary(log_stream)
