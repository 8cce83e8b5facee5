"""ForcePowerOff stops the instance; whether Lighthouse starts it again is undocumented. With Wait, the function
makes sure an instance that was running is running again when its image is done."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from blueprint.errors import BlueprintError
from emulator import Emulator
from tests.conftest import EmuClock, context, received_events, timer_event

JOB = {"InstanceId": "lhins-web00001", "ForcePowerOff": True, "Wait": True}


@pytest.fixture
def emu() -> Iterator[Emulator]:
    # A cloud that leaves the instance stopped after a ForcePowerOff image.
    with Emulator(image_seconds=30.0, restart_after_image=False) as emulator:
        yield emulator


def state(emu, instance: str = "lhins-web00001") -> str:
    return next(i["InstanceState"] for i in emu.lighthouse.instances() if i["InstanceId"] == instance)


def test_a_running_instance_is_started_again_after_its_image(make_app, emu, receiver) -> None:
    answer = make_app().handle(timer_event(JOB), context())
    result = answer["Results"][0]
    assert result["State"] == "NORMAL"
    assert result["InstanceRestarted"] is True
    assert [c.params["InstanceIds"] for c in emu.calls_of("StartInstances")] == [["lhins-web00001"]]
    emu.advance(60)
    assert state(emu) == "RUNNING"
    ready = [e for e in received_events(receiver) if e["type"].endswith(".ready")]
    assert ready[0]["data"]["InstanceRestarted"] is True


def test_a_stopped_instance_stays_stopped(make_app, emu) -> None:
    make_app().handle(timer_event({**JOB, "InstanceId": "lhins-stop0001"}), context())
    assert emu.calls_of("StartInstances") == []
    assert state(emu, "lhins-stop0001") == "STOPPED"


def test_restart_can_be_turned_off(make_app, emu) -> None:
    answer = make_app(BLUEPRINT_RESTART_INSTANCE="false").handle(timer_event(JOB), context())
    assert "InstanceRestarted" not in answer["Results"][0]
    assert emu.calls_of("StartInstances") == []


def test_no_restart_when_the_image_was_live(make_app, emu) -> None:
    make_app().handle(timer_event({**JOB, "ForcePowerOff": False}), context())
    assert emu.calls_of("StartInstances") == []
    assert emu.calls_of("DescribeInstances") == []  # no lookup is spent when nothing can need a restart


def test_the_follow_up_call_restarts_when_time_ran_out(make_app, emu, receiver) -> None:
    app = make_app()
    # Children run in other warm containers: their own App and clock (their waits are not the parent's).
    emu.scf.register("lighthouse-blueprint", make_app().handle)
    answer = app.handle(timer_event(JOB), context(time_limit_in_ms=20_000))
    assert "still in progress" in answer["Results"][0]["Reason"]
    assert emu.scf.wait_idle(timeout=30)
    assert [c.params["InstanceIds"] for c in emu.calls_of("StartInstances")] == [["lhins-web00001"]]
    ready = [e for e in received_events(receiver) if e["type"].endswith(".ready")]
    assert ready and ready[0]["data"]["InstanceRestarted"] is True


def test_with_a_cloud_that_restarts_by_itself_nothing_is_started(make_app, receiver) -> None:
    from blueprint.app import build_app
    from tests.conftest import EmuClock, base_env

    with Emulator(image_seconds=30.0, restart_after_image=True) as cloud:
        app = build_app(base_env(cloud, receiver), clock=EmuClock(cloud))
        answer = app.handle(timer_event(JOB), context())
        assert answer["Results"][0]["State"] == "NORMAL"
        assert cloud.calls_of("StartInstances") == []


def test_a_queue_record_restarts_its_instance_after_a_busy_answer(make_app, emu, receiver) -> None:
    # A record waits busy instances out for its share of the batch's time; following its image spends that share,
    # and the restart after it must still wait a busy answer out (the instance was stopped by the function).
    emu.faults.fail("StartInstances", "UnsupportedOperation.LatestOperationUnfinished", times=1)
    # Three records make the first one's share a third of the time; the last names no instance (acknowledged).
    records = [{"CMQ": {"msgId": f"m{n}", "msgBody": f'{{"InstanceId": "{instance}", "Wait": true}}'}}
               for n, instance in enumerate(["lhins-web00001", "lhins-db000001", "lhins-gone0001"])]
    answer = make_app().handle({"Records": records}, context(time_limit_in_ms=120_000))
    first = answer["Records"][0]["Results"][0]
    assert (first["State"], first["InstanceRestarted"]) == ("NORMAL", True)
    assert [c.error for c in emu.calls_of("StartInstances")][:2] == [
        "UnsupportedOperation.LatestOperationUnfinished", None]
    emu.advance(60)
    assert state(emu) == "RUNNING"


def test_a_restart_that_stays_busy_does_not_hold_the_rest_of_a_queue_batch(make_app, emu) -> None:
    # Each record may wait busy instances out for its share of the batch's time (a restart for at least 30 s):
    # one instance whose restart stays busy must not take the time the other records need for their images.
    emu.faults.fail("StartInstances", "UnsupportedOperation.LatestOperationUnfinished", times=40)
    free = [f"lhins-free{n:04d}" for n in range(4)]
    for instance in free:
        emu.lighthouse.add_instance(instance)
    records = [{"CMQ": {"msgId": f"m{n}", "msgBody": orjson.dumps({"InstanceId": instance, "Wait": True}).decode()}}
               for n, instance in enumerate(["lhins-web00001", *free])]
    clock = EmuClock(emu)
    with pytest.raises(BlueprintError, match="record"):  # what time did not allow is retried by SCF
        make_app(clock=clock).handle({"Records": records}, context(time_limit_in_ms=180_000))
    assert sum(clock.slept) < 180
    restarts = [c for c in emu.calls_of("StartInstances") if c.params["InstanceIds"] == ["lhins-web00001"]]
    assert 3 <= len(restarts) <= 5  # the restart was waited out for a while, not for good
    assert len(emu.lighthouse.blueprints()) >= 3  # records after it made their images (the rest are retried)
