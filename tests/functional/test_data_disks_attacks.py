"""Issue 17 attacked: data-disk points and restores under faults, replays, fleets and hostile input, against the
emulator with the real SDK. Each test states the promise it holds the function to: a stopped instance is started
again, one busy or odd instance never costs the others their images, one point per disk per slot, a restore
touches only its own instance's disks, and a failure (or a partial change) is reported, never silent."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import orjson
import pytest

from blueprint.errors import BlueprintError
from blueprint.images import INSTANCE_TAG, SLOT_TAG
from tests.conftest import EmuClock, context, http_event, timer_event
from tests.functional.test_chained_calls import deliver_all, envelope, recorded_calls
from tests.functional.test_data_disks import DB, DB_DISKS, RESTORE_TOKEN, WEB, WEB_DISK, day, managed, points, restore

SH, SH_DISK = "lhins-sh000001", "lhdisk-shdisk01"
DAILY = [{"Key": "backup", "Value": "daily"}]
TWO_REGIONS = {"Regions": ["ap-guangzhou", "ap-shanghai"], "Tags": DAILY}


@pytest.fixture
def app(make_app, emu):
    return make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS=None)


@pytest.fixture
def restorer(make_app, emu):
    return make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS=None, BLUEPRINT_RESTORE="on",
                    BLUEPRINT_RESTORE_TOKEN=RESTORE_TOKEN)


def state(emu, instance_id: str) -> str:
    instance = emu.lighthouse.instance(instance_id)
    assert instance is not None
    return str(instance["InstanceState"])


def handle_raising(app, event: dict[str, Any]) -> dict[str, Any] | None:
    """The answer of an async invocation, or None when it raised (the platform would retry it)."""
    try:
        return app.handle(event, context())  # type: ignore[no-any-return]
    except Exception:  # a raise is what SCF sees; the test looks at the cloud afterwards
        return None


def backed_up_db(app, emu) -> str:
    """An image of db-1 with points of both disks holding "v1"; the disks then hold "broken"."""
    for disk in DB_DISKS:
        emu.lighthouse.write_disk(disk, "v1")
    answer = app.handle(timer_event({"InstanceId": DB, "Wait": True}), context())
    emu.advance(120)
    [result] = answer["Results"]
    assert result["State"] == "NORMAL" and len(result["DiskBackups"]) == 2, result
    for disk in DB_DISKS:
        emu.lighthouse.write_disk(disk, "broken")
    return str(result["BlueprintId"])


# ---- ForcePowerOff: the function stops the instance itself, so it must start it again whatever happens ---------

def test_a_lost_stop_answer_still_makes_the_image_and_starts_the_instance_again(app, emu) -> None:
    emu.faults.drop("StopInstances", after=True)  # the stop took effect; the resend finds the instance stopped
    answer = app.handle(timer_event({"InstanceId": WEB, "ForcePowerOff": True}), context())
    [result] = answer["Results"]
    assert "Error" not in result, result
    assert result["BlueprintId"].startswith("lhbp-") and len(result["DiskBackups"]) == 1
    assert state(emu, WEB) == "RUNNING"


def test_instances_that_cannot_be_seen_stopping_are_still_imaged_and_started_again(app, emu) -> None:
    # The first DescribeInstances (was it running?) passes; the looks while it stops fail.
    emu.faults.fail("DescribeInstances", "InternalError", times=4, skip=1)
    event = timer_event({"InstanceId": WEB, "ForcePowerOff": True})
    handle_raising(app, event)
    handle_raising(app, event)  # and its retry, if the platform made one
    emu.advance(120)
    assert len([i for i in emu.lighthouse.blueprints("ap-guangzhou") if i["BlueprintName"].startswith(WEB)]) == 1
    assert state(emu, WEB) == "RUNNING"


@pytest.mark.parametrize("code", ["UnsupportedOperation.InvalidInstanceState", "InternalError"])
def test_an_image_refused_after_the_function_stopped_the_instance_starts_it_again(app, emu, code) -> None:
    emu.faults.fail("CreateBlueprint", code, times=8)
    answer = handle_raising(app, timer_event({"InstanceId": WEB, "ForcePowerOff": True}))
    emu.advance(120)
    assert state(emu, WEB) == "RUNNING"
    if answer is not None:
        [result] = answer["Results"]
        assert result["Error"]["Code"] == code and result["InstanceRestarted"] is True


def test_a_point_listing_that_fails_after_creating_leaves_no_instance_stopped(app, emu) -> None:
    # DescribeDiskBackups answers the slot lookup, then fails for retention and for following the points.
    emu.faults.fail("DescribeDiskBackups", "InternalError", times=12, skip=1)
    answer = handle_raising(app, timer_event({"InstanceId": WEB, "Keep": 2, "ForcePowerOff": True}))
    emu.advance(120)
    assert state(emu, WEB) == "RUNNING"
    assert answer is not None
    [result] = answer["Results"]
    assert result["BlueprintId"].startswith("lhbp-") and result["InstanceRestarted"] is True


def test_one_busy_instance_does_not_keep_the_others_of_its_region_from_their_images(app, emu) -> None:
    emu.lighthouse.add_instance("lhins-busy0001", Tags=DAILY, LatestOperation="ResetInstance",
                                LatestOperationState="OPERATING")
    emu.lighthouse.add_disk("lhdisk-busydsk1", InstanceId="lhins-busy0001", DiskBackupQuota=3)
    answer = handle_raising(app, timer_event({"Selector": TWO_REGIONS, "ForcePowerOff": True}))
    emu.advance(120)
    made = {i["BlueprintName"].split("-2026")[0] for i in emu.lighthouse.blueprints()}
    assert {WEB, DB, SH} <= made
    assert state(emu, WEB) == "RUNNING" and state(emu, DB) == "RUNNING"
    assert answer is None or any(r["InstanceId"] == "lhins-busy0001" and "Error" in r for r in answer["Results"])


def test_instances_left_for_a_later_invocation_are_not_left_stopped_until_it_comes(make_app, emu) -> None:
    emu.scf.add_function("lighthouse-blueprint")
    app = make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS=None, BLUEPRINT_CONCURRENCY="1")
    fleet = [f"lhins-left{n:04d}" for n in range(4)]
    for n, instance in enumerate(fleet):
        emu.lighthouse.add_instance(instance, Tags=[{"Key": "left", "Value": "1"}])
        emu.lighthouse.add_disk(f"lhdisk-left{n:04d}", InstanceId=instance, DiskBackupQuota=3)
    emu.faults.delay("CreateDiskBackup", 2.0)  # real seconds: the invocation runs short after stopping them all
    job = {"Selector": {"Regions": ["ap-guangzhou"], "Tags": [{"Key": "left", "Value": "1"}]}, "ForcePowerOff": True}
    answer = app.handle(timer_event(job), context(time_limit_in_ms=14_000))
    assert answer["Dispatched"] >= 1
    imaged = {r["InstanceId"] for r in answer["Results"] if r.get("BlueprintId")}
    assert all(state(emu, i) == "RUNNING" for i in fleet if i not in imaged)
    emu.faults.clear()
    deliver_all(app, emu)
    emu.advance(120)
    assert sorted(i["BlueprintName"][:14] for i in emu.lighthouse.blueprints()) == fleet
    assert all(state(emu, i) == "RUNNING" for i in fleet)


def test_a_follow_up_that_cannot_be_scheduled_leaves_the_instance_to_the_retry_which_starts_it(make_app, emu) -> None:
    app = make_app(BLUEPRINT_DATA_DISKS=None)  # the real clock: the image outlives this short invocation
    event = timer_event({"InstanceId": WEB})
    with pytest.raises(BlueprintError, match="follow-up could not be scheduled"):
        app.handle(event, context(time_limit_in_ms=12_000))  # the function is not known to SCF yet
    assert state(emu, WEB) == "STOPPED"  # stopped by the function for its data disk; the image is being made
    emu.scf.add_function("lighthouse-blueprint")
    handle_raising(app, event)  # the platform's retry, which the error promised "follows it"
    emu.advance(120)
    deliver_all(app, emu)
    assert state(emu, WEB) == "RUNNING"
    # The durable mark (scf-blueprint:stopped) told the retry; it goes once the instance runs again.
    instance = emu.lighthouse.instance(WEB)
    assert instance is not None and "scf-blueprint:stopped" not in {t["Key"] for t in instance["Tags"]}


# ---- DataDisks lists: a list names disks across the job, never per region or per child ---------------------------

def test_a_disk_list_in_a_two_region_job_images_both_regions(app, emu) -> None:
    emu.lighthouse.add_disk(SH_DISK, Region="ap-shanghai", InstanceId=SH, DiskBackupQuota=3)
    answer = app.handle(timer_event({"InstanceIds": [f"ap-guangzhou:{WEB}", f"ap-shanghai:{SH}"],
                                     "DataDisks": [SH_DISK], "ForcePowerOff": False}), context())
    results = {r["InstanceId"]: r for r in answer["Results"]}
    assert "Error" not in results[WEB] and results[WEB]["Unprotected"] == [WEB_DISK]
    assert [p["DiskId"] for p in results[SH]["DiskBackups"]] == [SH_DISK]


def test_a_disk_list_naming_no_disk_of_the_job_is_still_refused_before_any_write(app, emu) -> None:
    emu.lighthouse.add_disk(SH_DISK, Region="ap-shanghai", InstanceId=SH, DiskBackupQuota=3)
    response = app.handle(http_event(body={"InstanceIds": [f"ap-guangzhou:{WEB}", f"ap-shanghai:{SH}"],
                                           "DataDisks": ["lhdisk-spare001"]}), context())
    assert response["statusCode"] == 400 and "lhdisk-spare001" in response["body"]
    assert [c for c in emu.calls if c.action.startswith(("Create", "Stop"))] == []


def test_fan_out_children_with_a_disk_list_image_every_instance(make_app, emu) -> None:
    emu.scf.add_function("lighthouse-blueprint")
    app = make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS=None)
    answer = app.handle(timer_event({"InstanceIds": [WEB, DB], "DataDisks": [DB_DISKS[0]], "Dispatch": "invoke",
                                     "ForcePowerOff": False}), context())
    assert answer["Dispatched"] == 2
    results = {r["InstanceId"]: r for out in deliver_all(app, emu) for r in out["Results"]}
    assert "Error" not in results[WEB] and results[WEB]["Unprotected"] == [WEB_DISK]
    assert [p["DiskId"] for p in results[DB]["DiskBackups"]] == [DB_DISKS[0]]


# ---- lookups that fail: the image of the system disk never depends on them -------------------------------------

@pytest.mark.parametrize("action", ["DescribeDisks", "DescribeDiskBackups"])
def test_data_disks_that_cannot_be_read_leave_the_image_made_and_the_gap_reported(app, emu, action) -> None:
    emu.faults.fail(action, "UnauthorizedOperation", times=20)  # e.g. a CAM policy from before data disks
    answer = app.handle(timer_event({"InstanceId": WEB, "ForcePowerOff": False}), context())
    [result] = answer["Results"]
    assert result["BlueprintId"].startswith("lhbp-")
    assert result["Error"]["Code"] == "FailedOperation.DiskBackupFailed"
    assert action in result["Error"]["Message"] and result["BlueprintId"] in result["Error"]["Message"]
    assert emu.calls_of("CreateDiskBackup") == []  # no point without knowing the slot's points (once per slot)


def test_a_point_made_on_a_later_try_is_not_claimed_to_share_the_images_power_cycle(app, emu) -> None:
    emu.faults.fail("CreateDiskBackup", "InternalError", times=4)
    event = timer_event({"InstanceId": WEB, "ForcePowerOff": True, "Wait": True})
    handle_raising(app, event)
    emu.advance(120)
    assert state(emu, WEB) == "RUNNING"
    [result] = app.handle(event, context())["Results"]
    assert result["DiskBackups"][0]["DiskBackupId"].startswith("lhbak-")
    assert result["Consistency"] == "power-off"  # the image's
    assert "crash-consistent" in result["Reason"] and WEB_DISK in result["Reason"]


@pytest.mark.parametrize("keep", [1, 2, 3])
def test_a_dry_run_says_how_many_points_the_real_run_keeps(app, emu, keep) -> None:
    emu.lighthouse.set_disk_backup_quota(WEB_DISK, 10)
    for n in (1, 2, 3):
        app.handle(timer_event({"InstanceId": WEB, "ForcePowerOff": False}, time_=day(n)), context())
        emu.advance(86_400)
    job = {"InstanceId": WEB, "ForcePowerOff": False, "Keep": keep}
    [dry] = app.handle(timer_event({**job, "DryRun": True}, time_=day(5)), context())["Results"]
    app.handle(timer_event(job, time_=day(5)), context())
    kept_points = len([p for p in points(emu, WEB_DISK) if managed(p)])  # never the newest NORMAL one
    assert dry["Kept"] == {"Blueprints": len(emu.lighthouse.blueprints()), "DiskBackups": {WEB_DISK: kept_points}}


# ---- restores: only the instance's own disks, and every partial change said ---------------------------------------

def test_the_safety_image_never_prunes_the_image_or_the_points_being_restored(make_app, emu) -> None:
    app = make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS=None, BLUEPRINT_RESTORE="on",
                   BLUEPRINT_RESTORE_TOKEN=RESTORE_TOKEN, BLUEPRINT_KEEP="2")
    images = []
    for n in (1, 2):
        emu.lighthouse.write_disk(WEB_DISK, f"v{n}")
        answer = app.handle(timer_event({"InstanceId": WEB, "Wait": True}, time_=day(n)), context())
        emu.advance(86_400)
        images.append(answer["Results"][0]["BlueprintId"])
    status, body = restore(app, {"InstanceId": WEB, "BlueprintId": images[0]})
    assert status == 202, body
    assert emu.lighthouse.disk_data(WEB_DISK) == "v1"
    assert images[0] in {i["BlueprintId"] for i in emu.lighthouse.blueprints()}


def test_a_restore_never_rolls_back_a_disk_now_attached_to_another_instance(restorer, emu) -> None:
    emu.lighthouse.write_disk(WEB_DISK, "web v1")
    answer = restorer.handle(timer_event({"InstanceId": WEB, "Wait": True}), context())
    emu.advance(120)
    image = answer["Results"][0]["BlueprintId"]
    emu.lighthouse.attach_disk(WEB_DISK, DB)  # moved to db-1, which writes its own data on it
    emu.lighthouse.write_disk(WEB_DISK, "db-1's data")
    for disks in ([WEB_DISK], "all"):
        restore(restorer, {"InstanceId": WEB, "BlueprintId": image, "SafetyImage": False, "DataDisks": disks})
        assert emu.calls_of("ApplyDiskBackup") == [], disks
        assert emu.lighthouse.disk_data(WEB_DISK) == "db-1's data" and state(emu, DB) == "RUNNING"


def test_a_restore_dry_run_says_which_disks_it_would_roll_back(restorer, emu) -> None:
    image = backed_up_db(restorer, emu)
    status, body = restore(restorer, {"InstanceId": DB, "BlueprintId": image, "DryRun": True})
    assert status == 202 and body["DryRun"] is True, body
    assert all(d in body["Reason"] for d in DB_DISKS) and "roll" in body["Reason"]
    assert emu.calls_of("ApplyDiskBackup") == [] and emu.lighthouse.disk_data(DB_DISKS[0]) == "broken"


def test_a_rollback_that_fails_half_way_says_what_was_changed(restorer, emu) -> None:
    image = backed_up_db(restorer, emu)
    emu.lighthouse.fail_next_rollback(DB_DISKS[1])
    status, body = restore(restorer, {"InstanceId": DB, "BlueprintId": image})
    assert status >= 400 and emu.calls_of("ResetInstance") == []
    assert emu.lighthouse.disk_data(DB_DISKS[0]) == "v1" and emu.lighthouse.disk_data(DB_DISKS[1]) == "broken"
    message = body["Error"]["Message"]
    assert DB_DISKS[1] in message and "not reset" in message
    assert f"{DB_DISKS[0]} was rolled back" in message and "stopped" in message


def test_a_reset_that_fails_after_the_rollback_says_the_disks_were_rolled_back(restorer, emu) -> None:
    image = backed_up_db(restorer, emu)
    emu.faults.fail("ResetInstance", "InvalidParameterValue.BlueprintConfigNotMatch", times=5)
    status, body = restore(restorer, {"InstanceId": DB, "BlueprintId": image})
    assert status == 400
    assert [emu.lighthouse.disk_data(d) for d in DB_DISKS] == ["v1", "v1"]
    message = body["Error"]["Message"]
    assert "BlueprintConfigNotMatch" in message and all(f"{d} was rolled back" in message for d in DB_DISKS)


def test_a_lost_rollback_answer_is_followed_not_reported_failed(restorer, emu) -> None:
    image = backed_up_db(restorer, emu)
    emu.faults.drop("ApplyDiskBackup", after=True)
    status, body = restore(restorer, {"InstanceId": DB, "BlueprintId": image})
    assert status == 202, body
    assert [emu.lighthouse.disk_data(d) for d in DB_DISKS] == ["v1", "v1"]
    assert len(emu.calls_of("ResetInstance")) == 1


# ---- every call fails once, before or after it acts -------------------------------------------------------------

RUN_ACTIONS = ["DescribeDisks", "DescribeDiskBackups", "CreateDiskBackup", "DeleteDiskBackups", "StopInstances",
               "DescribeInstances", "CreateBlueprint", "DescribeBlueprints", "StartInstances", "DeleteBlueprints"]
FAULTS = ["fail", "drop-before", "drop-after"]


def inject(emu, action: str, fault: str) -> None:
    if fault == "fail":
        emu.faults.fail(action, "InternalError")
    else:
        emu.faults.drop(action, after=fault == "drop-after")


def slot_of(item: dict[str, Any]) -> str | None:
    return next((t["Value"] for t in item["Tags"] if t["Key"] == SLOT_TAG), None)


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("action", RUN_ACTIONS)
def test_any_call_failing_once_keeps_every_promise_of_a_run(app, emu, action, fault) -> None:
    for disk in DB_DISKS:
        emu.lighthouse.set_disk_backup_quota(disk, 10)
    own = emu.lighthouse.add_disk_backup(DB_DISKS[0])["DiskBackupId"]
    for n in (1, 2):
        app.handle(timer_event({"InstanceId": DB, "Keep": 1, "ForcePowerOff": False}, time_=day(n)), context())
        emu.advance(86_400)
    inject(emu, action, fault)
    event = timer_event({"InstanceId": DB, "Keep": 1, "ForcePowerOff": True, "Wait": True}, time_=day(3))
    answer = handle_raising(app, event) or handle_raising(app, event)  # the platform retries a raise
    emu.advance(120)
    assert answer is not None and not any(emu.faults.pending().values())  # the fault was met
    [result] = answer["Results"]
    slot = next(slot_of(i) for i in emu.lighthouse.blueprints() if i["BlueprintId"] == result["BlueprintId"])
    assert len([i for i in emu.lighthouse.blueprints() if slot_of(i) == slot]) == 1
    made = {p["DiskId"]: p for p in points(emu) if slot_of(p) == slot}
    assert all(len([p for p in points(emu, d) if slot_of(p) == slot]) <= 1 for d in DB_DISKS)
    assert sorted(made) == sorted(DB_DISKS) or result["Error"]["Code"] == "FailedOperation.DiskBackupFailed"
    assert own in {p["DiskBackupId"] for p in points(emu)}
    assert state(emu, DB) == "RUNNING"
    if result["State"] == "NORMAL" and "Error" not in result:  # Keep 1, and the run waited: one of each is left
        assert [i["BlueprintId"] for i in emu.lighthouse.blueprints() if slot_of(i)] == [result["BlueprintId"]]
        assert sorted(p["DiskId"] for p in points(emu) if managed(p)) == sorted(DB_DISKS)


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("action", ["ApplyDiskBackup", "ResetInstance", "DescribeDisks", "DescribeDiskBackups"])
def test_any_call_failing_once_keeps_every_promise_of_a_restore(restorer, emu, action, fault) -> None:
    image = backed_up_db(restorer, emu)
    inject(emu, action, fault)
    body = {"InstanceId": DB, "BlueprintId": image, "SafetyImage": False, "IdempotencyKey": f"{action}-{fault}"}
    status, answer = restore(restorer, body)
    if status != 202:  # reported; the caller retries with the same key
        assert "Error" in answer
        status, answer = restore(restorer, body)
    assert status == 202, answer
    assert not any(emu.faults.pending().values())  # the fault was met
    emu.advance(300)
    assert [emu.lighthouse.disk_data(d) for d in DB_DISKS] == ["v1", "v1"]
    assert len(emu.lighthouse.resets(DB)) == 1  # one reinstall, whatever was resent


# ---- what held (kept as regressions) -------------------------------------------------------------------------------

HOSTILE = ["ALL", " all", "None", "", [], [""], ["lhdisk-WEBDATA1"], [WEB_DISK, WEB_DISK], [f"{WEB_DISK} "],
           [f"lhdisk-{n:08d}" for n in range(21)], {"all": True}, True, 1, [[WEB_DISK]], WEB_DISK, [WEB_DISK, None],
           "all\u0000", [f"{WEB_DISK}\n"], "\uff41ll"]


@pytest.mark.parametrize("bad", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_data_disks_are_refused_on_every_path_before_any_write(restorer, emu, bad) -> None:
    app = restorer
    assert app.handle(http_event(body={"InstanceId": WEB, "DataDisks": bad}), context())["statusCode"] == 400
    assert "Error" in app.handle(timer_event({"InstanceId": WEB, "DataDisks": bad}), context())
    assert "Error" in app.handle(envelope(Job={"DataDisks": bad}), context())
    status, _ = restore(app, {"InstanceId": WEB, "BlueprintId": "lhbp-aaaaaaaa", "DataDisks": bad})
    assert status == 400
    assert [c for c in emu.calls if c.action.startswith(("Create", "Stop", "Delete", "Apply", "Reset"))] == []


def test_two_warm_containers_at_once_make_one_point_per_disk_and_one_image(make_app, emu) -> None:
    clock = EmuClock(emu)  # one time for both, as the containers share the wall clock
    apps = [make_app(clock=clock, BLUEPRINT_DATA_DISKS=None) for _ in range(2)]
    event = timer_event({"InstanceId": DB, "ForcePowerOff": True, "Wait": True})
    threads = [threading.Thread(target=handle_raising, args=(a, event)) for a in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for a in apps:
        handle_raising(a, event)  # and each one's retry
    emu.advance(120)
    for disk in DB_DISKS:
        assert len(points(emu, disk)) == 1, disk
    assert len([i for i in emu.lighthouse.blueprints() if i["BlueprintName"].startswith(DB)]) == 1
    assert state(emu, DB) == "RUNNING"


class TwinFinishesWhileStopping(EmuClock):
    """The first pause of the run (waiting for its instance to stop) is when a twin invocation's image and
    points of the same slot appear: NORMAL, made before this run asks for them."""

    twin = ""
    twin_points: tuple[str, ...] = ()

    def sleep(self, seconds: float) -> None:
        if not self.twin and self.emu is not None:
            [lookup] = self.emu.calls_of("DescribeBlueprints")  # the slot's, made before the stop
            slot = next(f["Values"][0] for f in lookup.params["Filters"] if f["Name"] == "tag-value")
            tags = [{"Key": INSTANCE_TAG, "Value": DB}, {"Key": SLOT_TAG, "Value": slot}]
            self.twin = self.emu.lighthouse.add_blueprint(f"{DB}-twin", InstanceId=DB, Tags=tags)["BlueprintId"]
            self.twin_points = tuple(self.emu.lighthouse.add_disk_backup(d, Tags=tags)["DiskBackupId"]
                                     for d in DB_DISKS)
        super().sleep(seconds)


def test_what_a_twin_made_while_this_run_stopped_the_instance_is_reported_not_made_again(make_app, emu) -> None:
    # The slot was looked up before the stop (and the points); the stop took long enough for a twin to finish.
    emu.lighthouse.opts = dataclasses.replace(emu.lighthouse.opts, op_seconds=20.0)
    clock = TwinFinishesWhileStopping(emu)
    app = make_app(clock=clock, BLUEPRINT_DATA_DISKS=None)
    answer = app.handle(timer_event({"InstanceId": DB, "ForcePowerOff": True}), context())
    [result] = answer["Results"]
    assert clock.twin and result["BlueprintId"] == clock.twin, result
    assert result["Reason"] == "made by a concurrent invocation" and result["Resent"] is True
    assert emu.calls_of("CreateBlueprint") == [] and emu.calls_of("CreateDiskBackup") == []
    assert sorted(p["DiskBackupId"] for p in result["DiskBackups"]) == sorted(clock.twin_points)
    # Looked again just before it would have created, once for the points and once for the image.
    assert len(emu.calls_of("DescribeBlueprints")) == 2 and len(emu.calls_of("DescribeDiskBackups")) >= 2
    emu.advance(120)
    assert state(emu, DB) == "RUNNING"


@pytest.mark.parametrize("action", ["DescribeBlueprints", "DescribeDiskBackups"])
def test_a_second_look_that_fails_does_not_cost_the_image_or_its_points(make_app, emu, action: str) -> None:
    # The look again before creating (after a slow stop) fails every attempt: the run creates as it would have.
    emu.lighthouse.opts = dataclasses.replace(emu.lighthouse.opts, op_seconds=20.0)
    emu.faults.fail(action, "InternalError", times=4, skip=1)
    app = make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS=None)
    [result] = app.handle(timer_event({"InstanceId": DB, "ForcePowerOff": True, "Wait": True}), context())["Results"]
    assert not any(emu.faults.pending().values())  # the faults were met
    assert "Error" not in result and result["State"] == "NORMAL", result
    assert len(result["DiskBackups"]) == len(DB_DISKS) and len(emu.calls_of("CreateBlueprint")) == 1
    emu.advance(60)  # starting takes op_seconds too
    assert state(emu, DB) == "RUNNING"


def test_a_failed_look_at_a_race_losers_image_costs_nothing(make_app, emu) -> None:
    app = make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS=None)
    event = timer_event({"InstanceId": DB})
    app.handle(event, context())
    emu.advance(120)
    [first] = [i for i in emu.lighthouse.blueprints() if i["BlueprintName"].startswith(DB)]
    emu.advance(60)
    twin = emu.lighthouse.add_blueprint("twin", Tags=first["Tags"])["BlueprintId"]
    emu.faults.fail("DescribeBlueprints", "InternalError", times=4, skip=1)  # the look at the loser, by id
    [result] = app.handle(event, context())["Results"]  # the retry reports the slot's image
    assert not any(emu.faults.pending().values())
    assert (result["BlueprintId"], result["Resent"]) == (first["BlueprintId"], True) and "Error" not in result
    assert twin in {i["BlueprintId"] for i in emu.lighthouse.blueprints()}  # left for the next look
    [again] = app.handle(event, context())["Results"]
    assert again["BlueprintId"] == first["BlueprintId"]
    assert twin not in {i["BlueprintId"] for i in emu.lighthouse.blueprints()}


def test_a_twins_duplicate_point_is_deleted_by_the_next_run_of_the_slot(app, emu) -> None:
    event = timer_event({"InstanceId": DB})
    app.handle(event, context())
    emu.advance(120)
    first = {p["DiskId"]: p for p in points(emu)}
    emu.advance(60)
    twin = emu.lighthouse.add_disk_backup(DB_DISKS[0], Tags=first[DB_DISKS[0]]["Tags"])["DiskBackupId"]
    [result] = app.handle(event, context())["Results"]  # the retry
    assert {p["DiskBackupId"] for p in result["DiskBackups"]} == {p["DiskBackupId"] for p in first.values()}
    assert twin not in {p["DiskBackupId"] for p in points(emu)} and len(points(emu)) == len(DB_DISKS)


def test_a_fleet_in_two_regions_reads_disks_once_per_region(app, emu) -> None:
    emu.lighthouse.add_disk(SH_DISK, Region="ap-shanghai", InstanceId=SH, DiskBackupQuota=3)
    for n in range(6):
        emu.lighthouse.add_instance(f"lhins-fleet{n:03d}", Tags=DAILY)
        if n % 2:
            quota = 0 if n == 1 else 3
            emu.lighthouse.add_disk(f"lhdisk-fleet{n:03d}", InstanceId=f"lhins-fleet{n:03d}", DiskBackupQuota=quota)
    answer = app.handle(timer_event({"Selector": TWO_REGIONS, "ForcePowerOff": False, "Keep": 3}), context())
    results = {r["InstanceId"]: r for r in answer["Results"]}
    assert len(results) == 9 and all(r["BlueprintId"] for r in results.values())
    assert results["lhins-fleet001"]["Error"]["Code"] == "FailedOperation.DiskBackupFailed"  # quota 0
    assert "DiskBackups" not in results["lhins-fleet000"] and "Unprotected" not in results["lhins-fleet000"]
    assert len(emu.calls_of("DescribeDisks")) == 2
    # Per region: the slot's points and retention; and the listing of fleet001's points for its full quota.
    lookups = [c.region for c in emu.calls_of("DescribeDiskBackups")]
    assert lookups.count("ap-shanghai") == 2 and lookups.count("ap-guangzhou") == 3, lookups


def test_keep_never_deletes_a_users_point_a_point_in_progress_or_the_newest_normal(app, emu) -> None:
    emu.lighthouse.set_disk_backup_quota(WEB_DISK, 10)
    own = emu.lighthouse.add_disk_backup(WEB_DISK)["DiskBackupId"]
    tagged_like_ours = emu.lighthouse.add_disk_backup(WEB_DISK, Tags=[{"Key": INSTANCE_TAG, "Value": WEB}])
    for n in range(1, 5):
        emu.advance(86_400)  # the last run's new point is still CREATING below
        app.handle(timer_event({"InstanceId": WEB, "Keep": 1, "ForcePowerOff": False}, time_=day(n)), context())
    left = {p["DiskBackupId"]: p for p in points(emu, WEB_DISK)}
    assert own in left and tagged_like_ours["DiskBackupId"] in left
    mine = [p for p in left.values() if managed(p)]
    assert len(mine) == 2 and {p["DiskBackupState"] for p in mine} == {"NORMAL", "CREATING"}
    assert {t["Key"] for p in mine for t in p["Tags"]} >= {INSTANCE_TAG, SLOT_TAG}


def test_a_disk_detached_between_runs_is_neither_backed_up_nor_rolled_back(restorer, emu) -> None:
    emu.lighthouse.write_disk(WEB_DISK, "v1")
    [first] = restorer.handle(timer_event({"InstanceId": WEB, "Wait": True}, time_=day(1)), context())["Results"]
    emu.advance(86_400)
    emu.lighthouse.attach_disk(WEB_DISK, None)
    emu.lighthouse.write_disk(WEB_DISK, "kept on the shelf")
    [second] = restorer.handle(timer_event({"InstanceId": WEB, "ForcePowerOff": False}, time_=day(2)),
                               context())["Results"]
    assert "Error" not in second and "DiskBackups" not in second and "Unprotected" not in second
    refused = restorer.handle(http_event(body={"InstanceId": WEB, "DataDisks": [WEB_DISK]}), context())
    assert refused["statusCode"] == 400
    emu.advance(120)  # the second image is done
    status, body = restore(restorer, {"InstanceId": WEB, "BlueprintId": first["BlueprintId"], "SafetyImage": False})
    emu.advance(300)
    assert status == 202 and "DiskBackups" not in body, body
    assert emu.lighthouse.disk_data(WEB_DISK) == "kept on the shelf" and len(emu.lighthouse.resets(WEB)) == 1


def test_a_retried_restore_rolls_back_once_and_resets_once(restorer, emu) -> None:
    image = backed_up_db(restorer, emu)
    body = {"InstanceId": DB, "BlueprintId": image, "IdempotencyKey": "restore-1"}
    assert restore(restorer, body)[0] == 202
    emu.lighthouse.write_disk(DB_DISKS[0], "written after the restore")
    status, again = restore(restorer, body)
    assert status == 202 and again.get("Resent") is True
    assert len(emu.calls_of("ApplyDiskBackup")) == 2 and len(emu.calls_of("ResetInstance")) == 1
    assert emu.lighthouse.disk_data(DB_DISKS[0]) == "written after the restore"


def test_a_restore_short_of_time_mid_rollback_is_finished_by_its_follow_up(make_app, restorer, emu) -> None:
    emu.scf.add_function("lighthouse-blueprint")
    image = backed_up_db(restorer, emu)
    real = make_app(BLUEPRINT_DATA_DISKS=None, BLUEPRINT_RESTORE="on", BLUEPRINT_RESTORE_TOKEN=RESTORE_TOKEN)
    response = real.handle(http_event(path="/restores", body={"InstanceId": DB, "BlueprintId": image,
                                                               "SafetyImage": False}, token=RESTORE_TOKEN),
                           context(time_limit_in_ms=12_000))
    assert response["statusCode"] == 202 and orjson.loads(response["body"])["State"] == "ROLLBACKING"
    [call] = recorded_calls(emu)
    assert call["event"]["Kind"] == "restore"
    emu.advance(120)
    [result] = restorer.handle(call["event"], call["context"])["Results"]
    assert result["State"] == "RUNNING" and "Error" not in result
    assert [emu.lighthouse.disk_data(d) for d in DB_DISKS] == ["v1", "v1"]
    assert len(emu.calls_of("ResetInstance")) == 1


def test_a_dry_run_of_a_fleet_prices_each_region_and_answers_when_one_price_fails(app, emu) -> None:
    emu.lighthouse.add_disk(SH_DISK, Region="ap-shanghai", InstanceId=SH, DiskBackupQuota=3)
    emu.faults.fail("InquirePriceCreateBlueprint", "UnauthorizedOperation")  # one region's price call
    answer = app.handle(timer_event({"Selector": TWO_REGIONS, "DryRun": True, "Keep": 2}), context())
    prices = [r["Price"] for r in answer["Results"]]
    assert len(prices) == 3 and len([p for p in prices if "Unknown" in p]) in (1, 2)
    assert all("Unknown" in p or p["BlueprintCount"] == 1 for p in prices)
    assert [c for c in emu.calls if c.action.startswith(("Create", "Stop", "Delete"))] == []
