"""Issue 14: copies in other regions, shares with other accounts, restores, and the listing, against the
emulator with the real SDK (SyncBlueprint, the share calls, ResetInstance and the Tag API)."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from blueprint.copies import SOURCE_TAG
from blueprint.errors import BlueprintError
from blueprint.images import INSTANCE_TAG, SLOT_TAG
from blueprint.restore import RESTORE_TAG
from tests.conftest import context, http_event, received_events, timer_event

JOB = {"InstanceId": "lhins-web00001"}
RESTORE_TOKEN = "restore-token-0123456789"
OTHER = "200000000002"
STRANGER = "300000000003"


def tagged(image: dict[str, Any], key: str) -> str | None:
    return next((t["Value"] for t in image["Tags"] if t["Key"] == key), None)


def home_images(emu, instance: str = "lhins-web00001") -> list[dict[str, Any]]:
    return [b for b in emu.lighthouse.blueprints("ap-guangzhou") if tagged(b, INSTANCE_TAG) == instance]


def copies(emu, region: str, instance: str = "lhins-web00001") -> list[dict[str, Any]]:
    return [b for b in emu.lighthouse.blueprints(region) if tagged(b, INSTANCE_TAG) == instance
            and tagged(b, SOURCE_TAG)]


def day(n: int) -> str:
    return (datetime(2026, 11, 1, 3, tzinfo=timezone.utc) + timedelta(days=n)).strftime("%Y-%m-%dT%H:%M:%SZ")


def post(app, path: str, body: Any, token: str | None = None, **headers: str) -> tuple[int, Any]:
    event = http_event(body=body, path=path, **({"token": token} if token else {}), headers=headers or None)
    response = app.handle(event, context())
    return response["statusCode"], orjson.loads(response["body"])


@pytest.fixture
def dr(emu):
    """Two more regions on the mainland and one outside it."""
    for region in ("ap-shanghai", "ap-beijing", "ap-singapore"):
        emu.world.add_region(region)
        emu.lighthouse.set_quota(region, 50)
    emu.lighthouse.set_quota("ap-guangzhou", 50)
    emu.lighthouse.add_account(OTHER)
    emu.lighthouse.add_account(STRANGER)
    return emu


# ---- copies ------------------------------------------------------------------------------------------------

def test_ten_daily_runs_keep_keep_at_home_and_copykeep_in_each_destination(make_app, dr, receiver) -> None:
    mine = dr.lighthouse.add_blueprint("users-own", Region="ap-shanghai")
    theirs = dr.lighthouse.add_blueprint("users-tagged", Region="ap-beijing",
                                         Tags=[{"Key": INSTANCE_TAG, "Value": "lhins-web00001"}])
    app = make_app()
    job = {**JOB, "Keep": 3, "CopyTo": ["ap-shanghai", "ap-beijing"], "CopyKeep": 2}
    for n in range(10):
        app.handle(timer_event(job, time_=day(n)), context())
        dr.advance(86_400)  # a day later every copy is done
    assert len(home_images(dr)) == 3
    assert len(copies(dr, "ap-shanghai")) == 2 and len(copies(dr, "ap-beijing")) == 2
    # Copies are of the newest images, each tagged with its source.
    sources = {tagged(c, SOURCE_TAG) for c in copies(dr, "ap-shanghai")}
    assert sources <= {b["BlueprintId"] for b in home_images(dr)}
    # Nothing else in the destinations was touched.
    left = {b["BlueprintId"] for b in dr.lighthouse.blueprints()}
    assert {mine["BlueprintId"], theirs["BlueprintId"]} <= left
    copied = [e for e in received_events(receiver) if e["type"].endswith(".copied")]
    assert len({e["id"] for e in copied}) == 20
    assert all(e["data"]["SourceBlueprintId"] and e["data"]["Region"] in ("ap-shanghai", "ap-beijing")
               for e in copied)


def test_a_retried_run_copies_nothing_twice(make_app, dr, receiver) -> None:
    app = make_app()
    job = {**JOB, "CopyTo": ["ap-shanghai"]}
    for _ in range(3):
        app.handle(timer_event(job), context())
    assert len(dr.calls_of("SyncBlueprint")) == 1
    assert len(copies(dr, "ap-shanghai")) == 1
    copied = [e for e in received_events(receiver) if e["type"].endswith(".copied")]
    assert len(copied) == 3 and len({e["id"] for e in copied}) == 1


@pytest.mark.parametrize("lost", ["SyncBlueprint", "TagResources"])
def test_a_lost_answer_leaves_a_copy_that_is_adopted_not_made_again(make_app, dr, lost: str) -> None:
    dr.faults.drop(lost, after=True, times=10)  # every retry inside the run is lost too: the run fails
    app = make_app()
    job = {**JOB, "CopyTo": ["ap-shanghai"]}
    with contextlib.suppress(BlueprintError):  # raised when a retry can help: SCF retries
        app.handle(timer_event(job), context())
    dr.faults.clear()
    dr.advance(3600)  # the copy finished meanwhile, untagged
    app.handle(timer_event(job), context())  # SCF's retry (or the next delivery)
    assert len([c for c in dr.calls_of("SyncBlueprint") if c.error is None]) == 1
    made = [b for b in dr.lighthouse.blueprints("ap-shanghai")]
    assert len(made) == 1 and tagged(made[0], SOURCE_TAG) and tagged(made[0], SLOT_TAG)


@pytest.mark.parametrize(("copy_to", "code"), [
    (["ap-guangzhou"], "InvalidParameterValue.DestinationRegionSameAsSourceRegion"),
    (["ap-singapore"], "InvalidParameterValue.NotSupportCrossBorderSyncBlueprint"),
    (["eu-nowhere"], "InvalidParameterValue.UnavailableRegion"),
])
def test_copies_the_cloud_would_refuse_are_refused_up_front(make_app, dr, copy_to, code) -> None:
    status, body = post(make_app(), "/blueprints", {**JOB, "CopyTo": copy_to})
    assert (status, body["Error"]["Code"]) == (400, code)
    assert dr.calls_of("CreateBlueprint") == []


def test_more_than_ten_regions_is_400(make_app, dr) -> None:
    status, body = post(make_app(), "/blueprints", {**JOB, "CopyTo": [f"ap-r{n}" for n in range(11)]})
    assert status == 400 and "CopyTo" in body["Error"]["Message"]


def test_with_wait_copies_are_followed_to_normal(make_app, dr, receiver) -> None:
    dr.scf.register("lighthouse-blueprint", make_app().handle)  # follow-ups run in another warm container
    answer = make_app().handle(timer_event({**JOB, "Wait": True, "CopyTo": ["ap-shanghai"]}), context())
    assert answer["Results"][0]["State"] in ("NORMAL", "SYNCING")
    assert dr.scf.wait_idle(timeout=60)
    copied = [e for e in received_events(receiver) if e["type"].endswith(".copied")]
    assert copied[-1]["data"]["State"] == "NORMAL" and len({e["id"] for e in copied}) == 1
    assert len(dr.calls_of("SyncBlueprint")) == 1


def test_a_copy_that_fails_is_reported(make_app, dr, receiver) -> None:
    dr.lighthouse.fail_next_sync("ap-shanghai")
    dr.scf.register("lighthouse-blueprint", make_app().handle)
    make_app().handle(timer_event({**JOB, "Wait": True, "CopyTo": ["ap-shanghai"]}), context())
    assert dr.scf.wait_idle(timeout=60)
    failed = [e for e in received_events(receiver) if e["type"].endswith(".failed")]
    assert [e["data"]["Error"]["Code"] for e in failed] == ["FailedOperation.CopyFailed"]
    assert failed[0]["data"]["Region"] == "ap-shanghai"


# ---- shares ------------------------------------------------------------------------------------------------

def test_a_share_to_an_allowed_account(make_app, dr, receiver) -> None:
    app = make_app(BLUEPRINT_ALLOWED_SHARE_ACCOUNTS=OTHER)
    status, body = post(app, "/blueprints", {**JOB, "ShareWith": [OTHER], "Wait": True})
    assert status == 202 and [b["Type"] for b in body["Beside"]] == ["com.tencentcloud.lighthouse.blueprint.shared"]
    assert dr.lighthouse.shares(body["BlueprintId"]) == [OTHER]
    shared = [e for e in received_events(receiver) if e["type"].endswith(".shared")]
    assert [e["data"]["AccountId"] for e in shared] == [OTHER]


def test_a_share_to_another_account_is_403_and_changes_nothing(make_app, dr) -> None:
    app = make_app(BLUEPRINT_ALLOWED_SHARE_ACCOUNTS=OTHER)
    status, body = post(app, "/blueprints", {**JOB, "ShareWith": [STRANGER]})
    assert (status, body["Error"]["Code"]) == (403, "UnauthorizedOperation.ShareAccountNotAllowed")
    assert dr.calls_of("CreateBlueprint") == []


def test_without_an_allowlist_a_job_may_share_only_with_the_operators_accounts(make_app, dr) -> None:
    status, _ = post(make_app(), "/blueprints", {**JOB, "ShareWith": [OTHER]})
    assert status == 403
    status, _ = post(make_app(BLUEPRINT_SHARE_WITH=OTHER), "/blueprints", {**JOB, "ShareWith": [OTHER]})
    assert status == 202


def test_a_share_whose_answer_is_lost_is_not_sent_again_and_is_reported_shared(make_app, dr, receiver) -> None:
    # The share took effect, the connection closed before its answer: a blind resend would be refused as
    # UnsupportedOperation.BlueprintAlreadyShared and the account reported .failed though the image is shared.
    dr.faults.drop("ShareBlueprintAcrossAccounts", after=True)
    answer = make_app(BLUEPRINT_SHARE_WITH=OTHER).handle(timer_event(JOB), context())
    [home] = home_images(dr)
    assert dr.lighthouse.shares(home["BlueprintId"]) == [OTHER]
    assert len(dr.calls_of("ShareBlueprintAcrossAccounts")) == 1
    events = received_events(receiver)
    shared = [e for e in events if e["type"].endswith(".shared")]
    assert [e["data"]["AccountId"] for e in shared] == [OTHER], events
    assert not [e for e in events if e["type"].endswith(".failed")], events
    # No request id is made up: the call that shared went unanswered.
    assert "RequestId" not in shared[0]["data"] or shared[0]["data"]["RequestId"] is None
    assert "None" not in orjson.dumps(answer).decode()


def test_a_resent_share_refused_as_already_shared_is_reported_shared(make_app, dr, receiver) -> None:
    # The answer is lost and the shares cannot be read before the resend (every look-up garbled): the resend
    # is refused as UnsupportedOperation.BlueprintAlreadyShared, which says the share holds.
    dr.faults.drop("ShareBlueprintAcrossAccounts", after=True)
    dr.faults.garble("DescribeBlueprintsShareAcrossAccountInfos", skip=1, times=20)
    make_app(BLUEPRINT_SHARE_WITH=OTHER).handle(timer_event(JOB), context())
    [home] = home_images(dr)
    assert dr.lighthouse.shares(home["BlueprintId"]) == [OTHER]
    calls = dr.calls_of("ShareBlueprintAcrossAccounts")
    assert len(calls) == 2 and calls[1].error == "UnsupportedOperation.BlueprintAlreadyShared", calls
    events = received_events(receiver)
    assert [e["data"]["AccountId"] for e in events if e["type"].endswith(".shared")] == [OTHER], events
    assert not [e for e in events if e["type"].endswith(".failed")], events


def test_a_pruned_image_is_unshared_first(make_app, dr, receiver) -> None:
    app = make_app(BLUEPRINT_SHARE_WITH=OTHER)
    for n in range(3):
        app.handle(timer_event({**JOB, "Keep": 1}, time_=day(n)), context())
        dr.advance(3600)
    # Keep 1: the run follows its image (to share it), so the image before goes once the new one is NORMAL and
    # shared, never before: the other account always has one.
    [kept] = home_images(dr)
    assert dr.lighthouse.shares(kept["BlueprintId"]) == [OTHER]
    cancel, delete = dr.calls_of("CancelShareBlueprintAcrossAccounts"), dr.calls_of("DeleteBlueprints")
    assert cancel and delete and cancel[0].time <= delete[0].time and cancel[0].error is None
    shares = [c.time for c in dr.calls_of("ShareBlueprintAcrossAccounts") if c.error is None]
    assert len(shares) == 3 and shares[1] <= delete[0].time
    assert len([e for e in received_events(receiver) if e["type"].endswith(".pruned")]) == 2


def test_an_image_whose_share_failed_keeps_the_shared_one_before_it(make_app, dr, receiver) -> None:
    app = make_app(BLUEPRINT_SHARE_WITH=OTHER)
    app.handle(timer_event({**JOB, "Keep": 1}, time_=day(0)), context())
    [before] = home_images(dr)
    dr.advance(3600)
    dr.faults.fail("ShareBlueprintAcrossAccounts", "UnauthorizedOperation", times=3)
    answer = app.handle(timer_event({**JOB, "Keep": 1}, time_=day(1)), context())
    assert answer["Results"][0]["State"] == "NORMAL"
    assert [e["data"]["Error"]["Code"] for e in received_events(receiver) if e["type"].endswith(".failed")]
    # Keep 1 would delete it, but the other account would then have no image: it stays until a run shares anew.
    assert before["BlueprintId"] in {b["BlueprintId"] for b in home_images(dr)}
    assert dr.lighthouse.shares(before["BlueprintId"]) == [OTHER]
    assert not [e for e in received_events(receiver) if e["type"].endswith(".pruned")]


@pytest.mark.parametrize("wait", [True, False])
def test_an_image_whose_copy_failed_or_is_still_being_made_keeps_the_one_before_it(make_app, dr, receiver,
                                                                                  wait: bool) -> None:
    # Waited: the copy is refused, and reported failed (its result is the destination's). Not waited: the run
    # still follows the image (ForcePowerOff restarts the instance), but the copy is only started.
    app = make_app()
    dr.scf.register("lighthouse-blueprint", make_app().handle)
    job = {**JOB, "Keep": 1, "Wait": wait, "CopyTo": ["ap-shanghai"]}
    app.handle(timer_event(job, time_=day(0)), context())
    assert dr.scf.wait_idle(timeout=60)
    before = {b["BlueprintId"] for b in home_images(dr)}
    dr.advance(3600)
    if wait:
        dr.faults.fail("SyncBlueprint", "UnauthorizedOperation", times=5)
    answer = app.handle(timer_event(job, time_=day(1)), context())
    assert dr.scf.wait_idle(timeout=60)
    assert answer["Results"][0]["State"] == "NORMAL" and not answer["Results"][0].get("Pruned")
    assert before <= {b["BlueprintId"] for b in home_images(dr)}
    assert not [e for e in received_events(receiver) if e["type"].endswith(".pruned")
                and e["data"]["BlueprintId"] in before]


# ---- restores ----------------------------------------------------------------------------------------------

@pytest.fixture
def restorer(make_app, dr):
    return make_app(BLUEPRINT_RESTORE="on", BLUEPRINT_RESTORE_TOKEN=RESTORE_TOKEN)


def backup(app, dr) -> str:
    answer = app.handle(timer_event({**JOB, "Wait": True}), context())
    dr.advance(60)
    return str(answer["Results"][0]["BlueprintId"])


def test_a_restore_makes_its_safety_image_first_resets_and_completes(restorer, dr, receiver) -> None:
    image = backup(restorer, dr)
    dr.lighthouse.write_disk("lhdisk-web00001", "broken")
    status, body = post(restorer, "/restores", {"InstanceId": "lhins-web00001", "BlueprintId": image},
                        token=RESTORE_TOKEN)
    assert status == 202 and body["SafetyImage"]["State"] == "NORMAL"
    assert dr.lighthouse.resets("lhins-web00001")[0]["Result"] == "SUCCESS"
    safety_made = next(c for c in dr.calls_of("CreateBlueprint") if c.time > 0 and "before restoring" in str(
        c.params.get("Description")))
    assert safety_made.time <= dr.calls_of("ResetInstance")[0].time
    types = [e["type"].rsplit("blueprint.", 1)[1] for e in received_events(receiver)]
    assert types.count("restore.started") == 1 and types[-1] == "restore.completed"
    completed = next(e for e in received_events(receiver) if e["type"].endswith(".restore.completed"))
    assert completed["data"]["SafetyBlueprintId"] == body["SafetyImage"]["BlueprintId"]
    assert completed["data"]["RequestId"] == dr.calls_of("ResetInstance")[0].request_id


def test_a_restore_is_done_once_per_key(restorer, dr) -> None:
    image = backup(restorer, dr)
    request = {"InstanceId": "lhins-web00001", "BlueprintId": image, "IdempotencyKey": "restore-1"}
    for _ in range(2):
        assert post(restorer, "/restores", request, token=RESTORE_TOKEN)[0] == 202
    assert len(dr.calls_of("ResetInstance")) == 1
    instance = dr.lighthouse.instance("lhins-web00001")
    assert instance is not None and any(t["Key"] == RESTORE_TAG for t in instance["Tags"])


def resets_sent(dr) -> list[Any]:
    """The ResetInstance calls answered without an error (one whose answer was dropped after it acted included)."""
    return [c for c in dr.calls_of("ResetInstance") if c.error is None]


@pytest.mark.parametrize("reset_seconds", [120.0, 0.1], ids=["still-running", "ended-before-the-look"])
def test_a_reset_whose_answer_was_lost_is_followed_not_sent_again(restorer, dr, receiver,
                                                                  reset_seconds: float) -> None:
    image = backup(restorer, dr)
    dr.lighthouse.opts.reset_seconds = reset_seconds
    dr.faults.drop("ResetInstance", after=True)
    status, body = post(restorer, "/restores", {"InstanceId": "lhins-web00001", "BlueprintId": image,
                                                "SafetyImage": False}, token=RESTORE_TOKEN)
    assert status == 202, body
    [reset] = resets_sent(dr)
    assert [r["RequestId"] for r in dr.lighthouse.resets("lhins-web00001")] == [reset.request_id]
    [completed] = [e for e in received_events(receiver) if e["type"].endswith(".restore.completed")]
    assert completed["data"]["RequestId"] == reset.request_id
    assert not [e for e in received_events(receiver) if e["type"].endswith(".restore.failed")]


def test_a_lost_reset_that_failed_is_reported_failed_not_sent_again(restorer, dr, receiver) -> None:
    image = backup(restorer, dr)
    dr.lighthouse.fail_next_reset("lhins-web00001")
    dr.faults.drop("ResetInstance", after=True)
    post(restorer, "/restores", {"InstanceId": "lhins-web00001", "BlueprintId": image, "SafetyImage": False},
         token=RESTORE_TOKEN)
    assert len(resets_sent(dr)) == 1
    [failed] = [e for e in received_events(receiver) if e["type"].endswith(".restore.failed")]
    assert failed["data"]["RequestId"] == resets_sent(dr)[0].request_id


def test_a_reset_the_cloud_failed_answers_502_in_the_envelope_of_the_invocation(restorer, dr) -> None:
    image = backup(restorer, dr)
    dr.lighthouse.fail_next_reset("lhins-web00001")
    event = http_event(body={"InstanceId": "lhins-web00001", "BlueprintId": image, "SafetyImage": False},
                       path="/restores", token=RESTORE_TOKEN)
    response = restorer.handle(event, context(request_id="rq-restore-1"))
    body = orjson.loads(response["body"])
    assert response["statusCode"] == 502
    assert body["Error"]["Code"] == "FailedOperation.ResetInstance" and body["RequestId"] == "rq-restore-1"


def test_an_earlier_restores_reset_is_not_taken_for_a_lost_one(restorer, dr, receiver) -> None:
    image = backup(restorer, dr)
    first = {"InstanceId": "lhins-web00001", "BlueprintId": image, "SafetyImage": False, "IdempotencyKey": "r-1"}
    assert post(restorer, "/restores", first, token=RESTORE_TOKEN)[0] == 202
    dr.advance(5)
    # The second restore's ResetInstance is lost before it acts: the instance still shows the first one's reset,
    # to the same image and SUCCESS; only a resend resets it again.
    dr.faults.drop("ResetInstance")
    status, body = post(restorer, "/restores", {**first, "IdempotencyKey": "r-2"}, token=RESTORE_TOKEN)
    assert status == 202, body
    # Three calls: the first restore's, the lost one (dropped before it acted), the resend; two resets ran.
    assert len(dr.calls_of("ResetInstance")) == 3
    ran = dr.lighthouse.resets("lhins-web00001")
    assert [r["Result"] for r in ran] == ["SUCCESS", "SUCCESS"]
    completed = [e for e in received_events(receiver) if e["type"].endswith(".restore.completed")]
    assert [e["data"]["RequestId"] for e in completed] == [r["RequestId"] for r in ran]


@pytest.mark.parametrize("case", ["no restore token", "the image token", "foreign image", "restore off", "dry run"])
def test_refused_restores_change_nothing(make_app, dr, restorer, case: str) -> None:
    image = backup(restorer, dr)
    foreign = dr.lighthouse.add_blueprint("foreign", Region="ap-guangzhou")["BlueprintId"]
    request = {"InstanceId": "lhins-web00001", "BlueprintId": image}
    before = len(dr.calls_of("CreateBlueprint"))
    app, token, expected = restorer, RESTORE_TOKEN, 0
    if case == "no restore token":
        app, token, expected = make_app(BLUEPRINT_RESTORE="on"), "local-dev-token", 401
    elif case == "the image token":
        token, expected = "local-dev-token", 401
    elif case == "foreign image":
        request["BlueprintId"], expected = foreign, 404
    elif case == "restore off":
        app, token, expected = make_app(), "local-dev-token", 403
    else:
        request["DryRun"], expected = True, 202
    status, body = post(app, "/restores", request, token=token)
    assert status == expected, body
    assert dr.calls_of("ResetInstance") == [] and len(dr.calls_of("CreateBlueprint")) == before


def test_a_restore_from_a_queue_record(restorer, dr, receiver) -> None:
    image = backup(restorer, dr)
    body = orjson.dumps({"Restore": {"InstanceId": "lhins-web00001", "BlueprintId": image,
                                     "SafetyImage": False}}).decode()
    restorer.handle({"Records": [{"CMQ": {"msgId": "r1", "msgBody": body}}]}, context())
    assert len(dr.calls_of("ResetInstance")) == 1
    assert received_events(receiver)[-1]["type"].endswith(".restore.completed")


def test_a_restore_is_followed_by_a_chained_call_when_time_runs_out(make_app, dr, receiver) -> None:
    parent = make_app(BLUEPRINT_RESTORE="on", BLUEPRINT_RESTORE_TOKEN=RESTORE_TOKEN)
    image = backup(parent, dr)
    dr.scf.add_function("lighthouse-blueprint")
    parent.handle({"Restore": {"InstanceId": "lhins-web00001", "BlueprintId": image}},
                  context(time_limit_in_ms=20_000))
    [call] = [orjson.loads(i["ClientContext"]) for i in dr.scf.invocations]
    assert call["Kind"] == "restore"
    dr.advance(600)
    child = make_app(BLUEPRINT_RESTORE="on", BLUEPRINT_RESTORE_TOKEN=RESTORE_TOKEN)
    child.handle(call, context())
    assert len(dr.calls_of("ResetInstance")) == 1
    assert received_events(receiver)[-1]["type"].endswith(".restore.completed")


# ---- the listing -------------------------------------------------------------------------------------------

def test_the_listing_shows_images_newest_first_with_copies_and_shares(make_app, dr) -> None:
    app = make_app(BLUEPRINT_SHARE_WITH=OTHER)
    for n in range(2):
        app.handle(timer_event({**JOB, "CopyTo": ["ap-shanghai"]}, time_=day(n)), context())
        dr.advance(3600)
    response = app.handle(http_event("GET", "/blueprints", headers=None) | {"queryString": {
        "InstanceId": "lhins-web00001"}}, context())
    body = orjson.loads(response["body"])
    assert response["statusCode"] == 200 and body["TotalCount"] == 2
    first, second = body["BlueprintSet"]
    assert first["CreatedTime"] > second["CreatedTime"]
    assert [c["Region"] for c in first["Copies"]] == ["ap-shanghai"] and first["SharedWith"] == [OTHER]
    denied = make_app(BLUEPRINT_ALLOWED_INSTANCES="lhins-db000001").handle(
        http_event("GET", "/blueprints") | {"queryString": {"InstanceId": "lhins-web00001"}}, context())
    assert denied["statusCode"] == 404



def test_a_restore_of_a_busy_instance_is_a_quick_409_with_retry_after(restorer, dr, log_stream) -> None:
    image = backup(restorer, dr)
    dr.faults.fail("ResetInstance", "UnsupportedOperation.LatestOperationUnfinished", times=5)
    event = http_event(body={"InstanceId": "lhins-web00001", "BlueprintId": image}, path="/restores",
                       token=RESTORE_TOKEN)
    response = restorer.handle(event, context())
    assert response["statusCode"] == 409 and response["headers"]["Retry-After"] == "30"
    assert orjson.loads(response["body"])["Error"]["Code"] == "UnsupportedOperation.LatestOperationUnfinished"
    assert len(dr.calls_of("ResetInstance")) == 1
    assert not any('"waiting for a retry"' in line for line in log_stream.getvalue().splitlines())
