"""Issue 12: chained calls (fan-out children, hand-on, Wait follow-ups) end to end, on their edge paths.

Each test runs the parent, takes the async invocations the emulator recorded (the function is known to SCF
but nothing runs it), and delivers each one as SCF would: its ClientContext as the event, a fresh context.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from blueprint.errors import BlueprintError, DeliveryError
from blueprint.images import INSTANCE_TAG
from tests.conftest import context, http_event, received_events, timer_event

FN = "lighthouse-blueprint"


def recorded_calls(emu, start: int = 0) -> list[dict[str, Any]]:
    """The async invocations of this function the emulator recorded, as (event, context) pairs."""
    return [{"event": orjson.loads(i["ClientContext"]), "context": context(request_id=i["FunctionRequestId"])}
            for i in emu.scf.invocations[start:] if i["FunctionName"] == FN and i["InvocationType"] == "Event"]


def deliver_all(app, emu, start: int = 0) -> list[Any]:
    """Run every recorded call as SCF would deliver it."""
    return [app.handle(call["event"], call["context"]) for call in recorded_calls(emu, start)]


def managed(emu) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for image in emu.lighthouse.blueprints():
        source = next((t["Value"] for t in image["Tags"] if t["Key"] == INSTANCE_TAG), None)
        if source:
            out.setdefault(source, []).append(image)
    return out


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def envelope(**overrides: Any) -> dict[str, Any]:
    """A well-formed chained call (as the function writes it), with some fields changed."""
    call = {"Chained": 1, "Kind": "child", "Job": {}, "SlotKey": "timer|tick|daily|2026-11-27T03:00:00Z",
            "CorrelationId": "corr-1", "Deadline": iso(datetime.now(timezone.utc) + timedelta(hours=1)),
            "Targets": [{"Region": "ap-guangzhou", "InstanceId": "lhins-web00001", "BlueprintName": "child-name"}],
            "Trigger": {"Type": "timer", "Name": "daily", "Time": "2026-11-27T03:00:00Z"}}
    call.update(overrides)
    return call


# ---- names are data, never templates ----------------------------------------------------------------------

@pytest.mark.parametrize("case", [
    ("web{prod}", None, "lhins-web00001-20261127-030000"),
    ("web{prod}", "{InstanceName}-{Date}", "web{prod}-20261127"),
    ("{InstanceId}", "{InstanceName}-{Date}", "{InstanceId}-20261127"),
    ("db}{", "{{nightly}}-{InstanceName}", "{nightly}-db}{"),
    ("plain", "{{literal}}-{InstanceId}", "{literal}-lhins-web00001"),
])
def test_braces_in_names_and_templates_reach_every_child(make_app, emu, receiver, case) -> None:
    instance_name, template, expected = case
    emu.scf.add_function(FN)
    emu.lighthouse.add_instance("lhins-web00001", InstanceName=instance_name, Tags=[{"Key": "b", "Value": "1"}])
    job: dict[str, Any] = {"InstanceIds": ["lhins-web00001"], "Dispatch": "invoke"}
    if template:
        job["BlueprintName"] = template
    app = make_app()
    assert app.handle(timer_event(job), context())["Dispatched"] == 1
    answers = deliver_all(app, emu)
    assert [a["Results"][0]["BlueprintName"] for a in answers] == [expected]
    assert [b["BlueprintName"] for b in managed(emu)["lhins-web00001"]] == [expected]
    created = [e for e in received_events(receiver) if e["type"].endswith(".created")]
    assert [e["data"]["BlueprintName"] for e in created] == [expected]
    assert not [e for e in received_events(receiver) if e["type"].endswith(".failed")]


def test_a_fleet_fans_out_and_every_child_images_its_instance_once(make_app, emu, receiver) -> None:
    emu.scf.add_function(FN)
    for n in range(6):
        emu.lighthouse.add_instance(f"lhins-brace{n:03d}", InstanceName=f"n{{{n}}}", Tags=[{"Key": "f", "Value": "1"}])
    app = make_app()
    job = {"Selector": {"Regions": ["ap-guangzhou"], "Tags": [{"Key": "f", "Value": "1"}]},
           "BlueprintName": "{InstanceName}-{Time}", "Dispatch": "invoke"}
    assert app.handle(timer_event(job), context())["Dispatched"] == 6
    deliver_all(app, emu)
    deliver_all(app, emu)  # SCF delivers each child twice (a retry): nothing new
    images = managed(emu)
    assert sorted(images) == [f"lhins-brace{n:03d}" for n in range(6)]
    assert all(len(v) == 1 for v in images.values())
    assert sorted(v[0]["BlueprintName"] for v in images.values()) == [f"n{{{n}}}-030000" for n in range(6)]


# ---- a child that cannot run says so --------------------------------------------------------------------

@pytest.mark.parametrize(("change", "fragment"), [
    ({"Deadline": None}, "Deadline"),
    ({"Deadline": "2026-12-01T00:00:00"}, "Deadline"),  # naive: not written by this function
    ({"Deadline": "not a date"}, "Deadline"),
    ({"Deadline": "9999-12-31T23:59:59Z"}, "BLUEPRINT_CHILD_TTL"),
    ({"Deadline": iso(datetime.now(timezone.utc) + timedelta(days=2))}, "BLUEPRINT_CHILD_TTL"),
    ({"Job": {"Keep": 0}}, "Keep"),
    ({"Job": {"Unknown": 1}}, "unknown field"),
    ({"Targets": [{"Region": "ap-guangzhou", "InstanceId": "lhins-web00001", "BlueprintName": "x" * 61}]},
     "BlueprintName"),
    ({"Trigger": {"Type": "timer", "Name": "daily", "Time": "2026-11-27T03:00:00"}}, "Trigger"),
])
def test_a_refused_envelope_is_reported_failed_for_its_instance_and_slot(make_app, emu, receiver, change,
                                                                          fragment) -> None:
    answer = make_app().handle(envelope(**change), context())  # a retry cannot help: answered, not raised
    assert fragment in answer["Error"]["Message"]
    assert emu.calls_of("CreateBlueprint") == []
    [failed] = received_events(receiver)
    assert failed["type"].endswith(".failed") and failed["subject"] == "lhins-web00001"
    assert failed["data"]["Error"]["Code"] == answer["Error"]["Code"]


def test_an_expired_child_reports_slot_expired_with_its_slot(make_app, emu, receiver) -> None:
    call = envelope(Deadline=iso(datetime.now(timezone.utc) - timedelta(minutes=1)))
    answer = make_app().handle(call, context())
    assert answer["Error"]["Code"] == "FailedOperation.SlotExpired"
    [failed] = received_events(receiver)
    assert failed["data"]["Trigger"] == call["Trigger"] and failed["subject"] == "lhins-web00001"


def test_a_refused_envelope_whose_report_cannot_be_delivered_raises(make_app, emu, receiver) -> None:
    receiver.fail_next(100)
    with pytest.raises(DeliveryError):
        make_app().handle(envelope(Deadline=None), context())


def test_an_envelope_without_readable_targets_is_still_reported(make_app, emu, receiver) -> None:
    answer = make_app().handle({"Chained": 1, "Targets": "junk", "SlotKey": 5}, context())
    assert answer["Error"]["Code"] == "InvalidParameter.ChainedCall"
    [failed] = received_events(receiver)
    assert failed["type"].endswith(".failed") and "subject" not in failed


def test_a_child_envelope_the_function_wrote_runs(make_app, emu, receiver) -> None:
    answer = make_app().handle(envelope(), context())
    assert answer["Results"][0]["BlueprintName"] == "child-name"
    assert [b["BlueprintName"] for b in managed(emu)["lhins-web00001"]] == ["child-name"]


# ---- hand-on and follow-ups -------------------------------------------------------------------------------

def test_a_wait_follow_up_that_cannot_be_scheduled_fails_the_run(make_app, emu, receiver) -> None:
    emu.scf.add_function(FN)
    emu.faults.fail("Invoke", "InternalError", times=10)
    app = make_app()
    with pytest.raises(BlueprintError, match="retry"):
        app.handle(timer_event({"InstanceId": "lhins-web00001", "Wait": True}), context(time_limit_in_ms=20_000))
    events = received_events(receiver)
    assert [e["type"].rsplit(".", 1)[-1] for e in events] == ["created", "failed"]
    assert events[1]["data"]["Error"]["Code"] == "FailedOperation.FollowUp"
    assert events[1]["data"]["BlueprintId"] == managed(emu)["lhins-web00001"][0]["BlueprintId"]
    # The platform's retry finds the image (no second one) and schedules the follow-up.
    emu.faults.clear()
    app.handle(timer_event({"InstanceId": "lhins-web00001", "Wait": True}), context(time_limit_in_ms=20_000))
    assert len(managed(emu)["lhins-web00001"]) == 1
    assert len(recorded_calls(emu)) == 1


def test_a_follow_up_follows_the_image_to_ready_end_to_end(make_app, emu, receiver) -> None:
    emu.scf.add_function(FN)
    app = make_app()
    first = app.handle(timer_event({"InstanceId": "lhins-web00001", "Wait": True}), context(time_limit_in_ms=20_000))
    assert first["Dispatched"] == 1 and "still in progress" in first["Results"][0]["Reason"]
    [call] = recorded_calls(emu)
    assert call["event"]["Kind"] == "follow"
    emu.advance(60)
    answer = app.handle(call["event"], call["context"])
    assert answer["Results"][0]["State"] == "NORMAL"
    types = [e["type"].rsplit(".", 1)[-1] for e in received_events(receiver)]
    assert types == ["created", "created", "ready"]
    assert len({e["id"] for e in received_events(receiver) if e["type"].endswith(".created")}) == 1


def test_http_short_of_time_hands_on_and_says_so(make_app, emu, receiver) -> None:
    emu.scf.add_function(FN)
    app = make_app()
    response = app.handle(http_event(body={"InstanceIds": ["lhins-web00001", "lhins-db000001"]}),
                          context(time_limit_in_ms=7_000))
    body = orjson.loads(response["body"])
    assert response["statusCode"] == 202
    assert sorted(d["InstanceId"] for d in body["Dispatched"]) == ["lhins-db000001", "lhins-web00001"]
    assert body["Results"] == []
    deliver_all(app, emu)
    assert sorted(managed(emu)) == ["lhins-db000001", "lhins-web00001"]


def test_http_short_of_time_without_a_way_to_hand_on_answers_what_is_true(make_app, emu) -> None:
    response = make_app().handle(http_event(body={"InstanceId": "lhins-web00001"}),
                                 context(time_limit_in_ms=7_000, function_name=""))
    body = orjson.loads(response["body"])
    assert response["statusCode"] == 503
    assert response["headers"]["Retry-After"] == "5"
    assert "not started" in body["Error"]["Message"] and "handed on" not in body["Error"]["Message"]
    assert emu.calls_of("CreateBlueprint") == [] and emu.scf.invocations == []


# ---- once per slot across warm containers -----------------------------------------------------------------

def test_a_redelivered_child_in_another_warm_container_finds_the_image(make_app, emu) -> None:
    emu.scf.add_function(FN)
    parent, other = make_app(), make_app()  # two warm containers
    selector = {"Selector": {"Regions": ["ap-guangzhou"], "Tags": [{"Key": "backup", "Value": "daily"}]},
                "Dispatch": "invoke"}
    parent.handle(timer_event(selector), context())  # its plan looked the slot up: empty then
    calls = recorded_calls(emu)
    for call in calls:
        other.handle(call["event"], call["context"])
    for call in calls:  # SCF redelivers every child to the parent's warm container
        parent.handle(call["event"], call["context"])
    assert {k: len(v) for k, v in managed(emu).items()} == {"lhins-web00001": 1, "lhins-db000001": 1}
