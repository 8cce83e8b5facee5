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
    # An instance name is the cloud's word: control and invisible characters become spaces, the ends are trimmed,
    # and a name left blank is the instance id (the chained call refuses such characters in a name it carries).
    ("\t web \t", "{InstanceName}", "web"), ("a\u200bb", "{InstanceName}", "a b"),
    ("\u200b", "{InstanceName}", "lhins-web00001"), (" web ", " {InstanceName} ", "web"),
    # A template over 60 characters whose rendered name fits: the parent trims the name, the child carries it.
    ("n" * 60, "x" * 48 + "{InstanceName}", "x" * 48 + "n" * 12),
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


def test_the_children_of_a_queue_record_answer_its_message(make_app, emu, receiver) -> None:
    emu.scf.add_function(FN)
    job = {"InstanceIds": ["lhins-web00001", "lhins-db000001"], "Dispatch": "invoke"}
    app = make_app()
    answer = app.handle({"Records": [{"CMQ": {"msgId": "msg-42", "msgBody": orjson.dumps(job).decode()}}]},
                        context())
    assert answer["Records"][0]["MessageId"] == "msg-42" and answer["Records"][0]["Dispatched"] == 2
    deliver_all(app, emu)
    deliver_all(make_app(), emu)  # redelivered to another container: the same events again
    images = [e for e in received_events(receiver) if e["type"].rsplit(".", 1)[-1] in ("created", "ready")]
    assert {e["subject"] for e in images} == {"lhins-web00001", "lhins-db000001"}
    assert {e["data"].get("MessageId") for e in images} == {"msg-42"}


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


# ---- issue 18: a child is a batch, sent side by side, with its share of the account's rates -----------------

BATCH_REGIONS = ["ap-guangzhou", "ap-shanghai", "ap-singapore"]
BATCH_TAG = {"Key": "batch", "Value": "yes"}


def add_batch_fleet(emu, per_region: int = 4) -> list[str]:
    ids = []
    for r, region in enumerate(BATCH_REGIONS):
        for n in range(per_region):
            ids.append(f"lhins-bt{r}{n:05d}")
            emu.lighthouse.add_instance(ids[-1], Region=region, InstanceName=f"b{r}-{n}", Tags=[BATCH_TAG])
    return ids


def batch_job(**extra: Any) -> dict[str, Any]:
    return {"Selector": {"Regions": BATCH_REGIONS, "Tags": [BATCH_TAG]}, **extra}


def test_a_fan_out_sends_one_batch_per_region_and_each_child_runs_it_like_an_inline_run(make_app, emu,
                                                                                         receiver) -> None:
    emu.scf.add_function(FN)
    ids = add_batch_fleet(emu)
    parent = make_app(BLUEPRINT_DISPATCH_THRESHOLD="5")  # 12 instances: fans out without being asked
    answer = parent.handle(timer_event(batch_job()), context())
    assert answer["Dispatched"] == 12
    # The parent: one listing and one slot lookup per region, one Invoke per batch.
    assert sorted(c.action for c in emu.calls) == ["DescribeBlueprints"] * 3 + ["DescribeInstances"] * 3 + \
        ["Invoke"] * 3
    calls = recorded_calls(emu)
    assert len(calls) == 3
    assert all(len({t["Region"] for t in c["event"]["Targets"]}) == 1 for c in calls)
    assert [c["event"]["Share"] for c in calls] == [pytest.approx(1 / 3)] * 3
    # Each child as SCF delivers it, in a warm container of its own: one slot lookup for the batch, the
    # creates, one listing after; never a lookup per instance.
    for call in calls:
        before = len(emu.calls)
        answer = make_app().handle(call["event"], call["context"])
        mine = [c.action for c in emu.calls[before:]]
        assert mine.count("CreateBlueprint") == 4 and mine.count("DescribeBlueprints") == 2
        assert len(answer["Results"]) == 4
        # The listing after creating names the batch's instances: it reads their images, not the region's.
        listing = [c for c in emu.calls[before:] if c.action == "DescribeBlueprints"][-1]
        values = next(f["Values"] for f in listing.params["Filters"] if f["Name"] == "tag-value")
        assert set(values) >= {t["InstanceId"] for t in call["event"]["Targets"]}
    assert sorted(managed(emu)) == sorted(ids)
    # Children send per-instance events; the run's one summary is the parent's.
    events = received_events(receiver)
    assert [e["type"].rsplit(".", 1)[-1] for e in events].count("completed") == 1
    assert sum(e["type"].endswith(".created") for e in events) == 12


def test_a_replayed_batch_finds_its_images_and_makes_none(make_app, emu, receiver) -> None:
    emu.scf.add_function(FN)
    ids = add_batch_fleet(emu)
    make_app(BLUEPRINT_DISPATCH_THRESHOLD="1").handle(timer_event(batch_job()), context())
    child = make_app()
    deliver_all(child, emu)
    first = [e for e in received_events(receiver) if e["type"].endswith(".created")]
    before = len(emu.calls_of("CreateBlueprint"))
    replies = deliver_all(make_app(), emu)  # SCF redelivers every child, to other containers
    assert len(emu.calls_of("CreateBlueprint")) == before
    assert {k: len(v) for k, v in managed(emu).items()} == dict.fromkeys(ids, 1)
    assert all(r["Resent"] for a in replies for r in a["Results"])
    again = [e for e in received_events(receiver) if e["type"].endswith(".created")][len(first):]
    assert sorted(e["id"] for e in again) == sorted(e["id"] for e in first)


def test_invoke_failing_once_before_it_acts_is_retried_and_every_batch_goes_once(make_app, emu, receiver) -> None:
    emu.scf.add_function(FN)
    ids = add_batch_fleet(emu)
    emu.faults.fail("Invoke", "InternalError", times=1)
    answer = make_app(BLUEPRINT_DISPATCH_THRESHOLD="1").handle(timer_event(batch_job()), context())
    assert answer["Dispatched"] == 12
    calls = recorded_calls(emu)
    assert sorted(t["InstanceId"] for c in calls for t in c["event"]["Targets"]) == sorted(ids)
    deliver_all(make_app(), emu)
    assert {k: len(v) for k, v in managed(emu).items()} == dict.fromkeys(ids, 1)
    assert not [e for e in received_events(receiver) if e["type"].endswith(".failed")]


def test_invoke_failing_after_it_acts_sends_a_batch_twice_and_it_still_images_once(make_app, emu, receiver) -> None:
    emu.scf.add_function(FN)
    ids = add_batch_fleet(emu)
    emu.faults.drop("Invoke", after=True)  # the child is queued, the answer is lost: the parent sends it again
    make_app(BLUEPRINT_DISPATCH_THRESHOLD="1").handle(timer_event(batch_job()), context())
    calls = recorded_calls(emu)
    assert len(calls) == 4
    batches = [tuple(sorted(t["InstanceId"] for t in c["event"]["Targets"])) for c in calls]
    assert len(set(batches)) == 3  # one batch went twice
    deliver_all(make_app(), emu)
    assert {k: len(v) for k, v in managed(emu).items()} == dict.fromkeys(ids, 1)
    created = [e for e in received_events(receiver) if e["type"].endswith(".created")]
    assert len({e["id"] for e in created}) == 12 and len(created) == 16


def test_an_explicit_inline_job_runs_inline_above_the_threshold(make_app, emu) -> None:
    emu.scf.add_function(FN)
    add_batch_fleet(emu)
    answer = make_app(BLUEPRINT_DISPATCH_THRESHOLD="5").handle(timer_event(batch_job(Dispatch="inline")), context())
    assert answer["Dispatched"] == 0 and len(answer["Results"]) == 12
    assert emu.scf.invocations == [] and len(managed(emu)) == 12


def test_a_child_is_paced_at_its_share_of_the_account_rate(make_app, emu, receiver, log_stream) -> None:
    for n in range(5):
        emu.lighthouse.add_instance(f"lhins-pc{n:06d}", Tags=[BATCH_TAG])
    targets = [{"Region": "ap-guangzhou", "InstanceId": f"lhins-pc{n:06d}", "BlueprintName": f"pc-{n}"}
               for n in range(5)]
    # A tenth of the account's rate: 2 CreateBlueprint and 1 DescribeBlueprints per second.
    answer = make_app().handle(envelope(Targets=targets, Share=0.1), context())
    assert len(answer["Results"]) == 5 and len(managed(emu)) == 5
    summary = [orjson.loads(line) for line in log_stream.getvalue().splitlines()][-1]
    assert summary["message"] == "invocation finished"
    # 5 creates at 2 per window wait for two more windows; the listing after them for the lookup's window.
    assert summary["waited"]["the API rate limit"]["seconds"] >= 2.0


def test_a_child_whose_share_leaves_no_time_hands_the_rest_on_with_that_share(make_app, emu, receiver) -> None:
    emu.scf.add_function(FN)
    for n in range(5):
        emu.lighthouse.add_instance(f"lhins-ho{n:06d}", Tags=[BATCH_TAG])
    targets = [{"Region": "ap-guangzhou", "InstanceId": f"lhins-ho{n:06d}", "BlueprintName": f"ho-{n}"}
               for n in range(5)]
    # 0.2 creates per second, 17 s of work: creates at 0, 5.25, 10.5 and 15.75 s; no slot for the fifth.
    answer = make_app().handle(envelope(Targets=targets, Share=0.01), context(time_limit_in_ms=20_000))
    assert len(managed(emu)) == 4 and answer["Dispatched"] == 1
    [call] = recorded_calls(emu)
    assert [t["InstanceId"] for t in call["event"]["Targets"]] == [sorted(set(f"lhins-ho{n:06d}" for n in range(5))
                                                                           - set(managed(emu)))[0]]
    assert call["event"]["Share"] == 0.01
    make_app().handle(call["event"], call["context"])
    assert len(managed(emu)) == 5
    assert not [e for e in received_events(receiver) if e["type"].endswith(".failed")]
