"""Issue 17: data disks protected in the image's slot, what is not protected, and prices up front, against the
emulator with the real SDK (DescribeDisks, CreateDiskBackup, DescribeDiskBackups, DeleteDiskBackups,
StopInstances, InquirePriceCreateBlueprint)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from blueprint.images import INSTANCE_TAG, SLOT_TAG
from tests.conftest import EmuClock, context, http_event, received_events, timer_event

WEB, DB = "lhins-web00001", "lhins-db000001"
WEB_DISK, DB_DISKS = "lhdisk-webdata1", ["lhdisk-dbdata01", "lhdisk-dbdata02"]


def day(n: int) -> str:
    return f"2026-11-{n:02d}T03:00:00Z"


def points(emu, disk: str | None = None) -> list[dict[str, Any]]:
    return [p for p in emu.lighthouse.disk_backups("ap-guangzhou") if disk is None or p["DiskId"] == disk]


def managed(point: dict[str, Any]) -> bool:
    keys = {t["Key"] for t in point["Tags"]}
    return {INSTANCE_TAG, SLOT_TAG} <= keys


@pytest.fixture
def app(make_app, emu):
    """The function with its defaults for data disks (the suite's base environment turns them off)."""
    return make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS=None)


def test_two_disks_get_two_points_per_slot_and_keep_follows_keep(app, emu) -> None:
    for disk in DB_DISKS:
        emu.lighthouse.set_disk_backup_quota(disk, 10)
    users_own = emu.lighthouse.add_disk_backup(DB_DISKS[0])["DiskBackupId"]
    for n in range(1, 11):
        answer = app.handle(timer_event({"InstanceId": DB, "Keep": 3}, time_=day(n)), context())
        [result] = answer["Results"]
        assert "Error" not in result, result
        assert sorted(p["DiskId"] for p in result["DiskBackups"]) == DB_DISKS
        emu.advance(86_400)
    images = [b for b in emu.lighthouse.blueprints("ap-guangzhou") if any(t["Value"] == DB for t in b["Tags"])]
    assert len(images) == 3
    for disk in DB_DISKS:
        mine = [p for p in points(emu, disk) if managed(p)]
        assert len(mine) == 3, (disk, mine)
    assert users_own in {p["DiskBackupId"] for p in points(emu)}  # a user's own point is never touched
    assert len(emu.calls_of("CreateDiskBackup")) == 20


def test_a_retried_run_makes_no_second_point(app, emu, receiver) -> None:
    event = timer_event({"InstanceId": WEB})
    first = app.handle(event, context())
    again = app.handle(event, context())
    assert first["Results"][0]["DiskBackups"] == again["Results"][0]["DiskBackups"]
    assert len(emu.calls_of("CreateDiskBackup")) == 1 and len(points(emu, WEB_DISK)) == 1


def test_a_second_warm_container_makes_no_second_point(make_app, emu) -> None:
    event = timer_event({"InstanceId": WEB})
    for _ in range(2):
        make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS=None).handle(event, context())
    assert len(points(emu, WEB_DISK)) == 1


def test_a_lost_create_answer_finds_the_point_it_made(app, emu) -> None:
    emu.faults.drop("CreateDiskBackup", after=True, times=1)
    answer = app.handle(timer_event({"InstanceId": WEB}), context())
    [point] = answer["Results"][0]["DiskBackups"]
    assert [p["DiskBackupId"] for p in points(emu, WEB_DISK)] == [point["DiskBackupId"]]


def test_with_force_power_off_the_points_and_the_image_share_one_power_cycle(app, emu) -> None:
    answer = app.handle(timer_event({"InstanceId": WEB, "ForcePowerOff": True}), context())
    [result] = answer["Results"]
    assert result["Consistency"] == "power-off" and result["InstanceRestarted"] is True
    [stop] = emu.calls_of("StopInstances")
    [backup] = emu.calls_of("CreateDiskBackup")
    [create] = emu.calls_of("CreateBlueprint")
    assert stop.time < backup.time < create.time
    history = [state for _, state in emu.lighthouse.state_history(WEB)]
    stopped_at = history.index("STOPPED")
    assert "RUNNING" not in history[stopped_at:history.index("RUNNING", stopped_at)]  # one power cycle
    instance = emu.lighthouse.instance(WEB)
    assert instance is not None and instance["InstanceState"] == "RUNNING"
    assert "scf-blueprint:stopped" not in {t["Key"] for t in instance["Tags"]}  # marked while stopped, unmarked
    tagged = [c for c in emu.calls_of("TagResources") if "scf-blueprint:stopped" in str(c.params)]
    assert tagged and tagged[0].time <= stop.time


def test_a_crash_consistent_run_backs_up_without_stopping(app, emu) -> None:
    answer = app.handle(timer_event({"InstanceId": WEB, "ForcePowerOff": False}), context())
    [result] = answer["Results"]
    assert result["Consistency"] == "crash-consistent" and len(result["DiskBackups"]) == 1
    assert emu.calls_of("StopInstances") == []
    assert [state for _, state in emu.lighthouse.state_history(WEB)] == ["RUNNING"]


def test_with_commands_the_points_are_made_between_pre_and_post(make_app, emu) -> None:
    app = make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS=None, BLUEPRINT_PRE_COMMAND="sync; fsfreeze -f /data",
                   BLUEPRINT_POST_COMMAND="fsfreeze -u /data || true")
    answer = app.handle(timer_event({"InstanceId": WEB}), context())
    assert answer["Results"][0]["Consistency"] == "commands"
    pre, post = emu.tat.runs(WEB)
    [backup] = emu.calls_of("CreateDiskBackup")
    [create] = emu.calls_of("CreateBlueprint")
    assert pre["End"] <= backup.time <= create.time <= post["Start"]
    assert emu.calls_of("StopInstances") == []


def test_a_point_that_fails_makes_the_result_failed_with_what_is_protected(app, emu, receiver) -> None:
    emu.lighthouse.fail_next_backup(WEB_DISK)
    answer = app.handle(timer_event({"InstanceId": WEB, "Wait": True}), context())
    emu.advance(120)
    [result] = answer["Results"]
    assert result["Error"]["Code"] == "FailedOperation.DiskBackupFailed"
    assert WEB_DISK in result["Error"]["Message"] and result["BlueprintId"] in result["Error"]["Message"]
    assert result["BlueprintId"].startswith("lhbp-")
    assert [e["type"].rsplit(".", 1)[1] for e in received_events(receiver)] == ["created", "failed"]


def test_no_backup_quota_is_reported_and_the_image_still_made(app, emu) -> None:
    emu.lighthouse.set_disk_backup_quota(WEB_DISK, 0)
    answer = app.handle(timer_event({"InstanceId": WEB, "ForcePowerOff": False}), context())
    [result] = answer["Results"]
    assert result["Error"]["Code"] == "FailedOperation.DiskBackupFailed"
    assert "no backup quota" in result["Error"]["Message"] and "ModifyDisksBackupQuota" in result["Error"]["Message"]
    assert result["BlueprintId"].startswith("lhbp-")


def test_a_full_quota_prunes_the_oldest_point_then_retries(app, emu) -> None:
    emu.lighthouse.set_disk_backup_quota(WEB_DISK, 2)
    for n in range(1, 4):
        answer = app.handle(timer_event({"InstanceId": WEB, "Keep": 2, "ForcePowerOff": False}, time_=day(n)),
                            context())
        assert "Error" not in answer["Results"][0], answer
        emu.advance(86_400)
    assert len(points(emu, WEB_DISK)) == 2
    assert [c.error for c in emu.calls_of("CreateDiskBackup")].count("LimitExceeded.DiskBackupQuotaLimitExceeded") \
        == 1


def test_data_disks_none_says_what_is_not_protected(app, emu) -> None:
    answer = app.handle(timer_event({"InstanceId": WEB, "DataDisks": "none"}), context())
    [result] = answer["Results"]
    assert result["Unprotected"] == [WEB_DISK] and "DiskBackups" not in result
    assert emu.calls_of("CreateDiskBackup") == [] and emu.calls_of("StopInstances") == []


def test_a_list_protects_only_those_disks(app, emu) -> None:
    answer = app.handle(timer_event({"InstanceId": DB, "DataDisks": [DB_DISKS[1]], "ForcePowerOff": False}),
                        context())
    [result] = answer["Results"]
    assert [p["DiskId"] for p in result["DiskBackups"]] == [DB_DISKS[1]]
    assert result["Unprotected"] == [DB_DISKS[0]]


def test_a_disk_of_another_instance_is_400_before_any_write(app, emu) -> None:
    response = app.handle(http_event(body={"InstanceId": WEB, "DataDisks": [DB_DISKS[0]]}), context())
    body = orjson.loads(response["body"])
    assert response["statusCode"] == 400 and DB_DISKS[0] in body["Error"]["Message"]
    assert emu.calls_of("CreateBlueprint") == [] and emu.calls_of("CreateDiskBackup") == []


def test_the_setting_turns_points_off_by_default(make_app, emu) -> None:
    answer = make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS="none").handle(timer_event({"InstanceId": WEB}),
                                                                              context())
    assert answer["Results"][0]["Unprotected"] == [WEB_DISK]
    assert emu.calls_of("CreateDiskBackup") == []


def test_an_instance_without_data_disks_says_nothing_about_them(app, emu) -> None:
    emu.lighthouse.add_instance("lhins-nodisk01")
    answer = app.handle(timer_event({"InstanceId": "lhins-nodisk01"}), context())
    [result] = answer["Results"]
    assert "DiskBackups" not in result and "Unprotected" not in result
    assert emu.calls_of("StopInstances") == []


def test_a_dry_run_shows_the_price_and_the_plan(app, emu) -> None:
    emu.lighthouse.add_disk_backup(WEB_DISK, Tags=[{"Key": INSTANCE_TAG, "Value": WEB}, {"Key": SLOT_TAG,
                                                                                          "Value": "x" * 16}])
    answer = app.handle(timer_event({"InstanceId": WEB, "DryRun": True, "Keep": 3}), context())
    [result] = answer["Results"]
    assert result["DryRun"] is True
    assert result["Price"]["OriginalBlueprintPrice"] == pytest.approx(0.008)
    assert result["Price"]["BlueprintCount"] == 1
    assert result["DiskBackups"] == [{"DiskId": WEB_DISK, "DiskBackupId": None, "State": None}]
    assert result["Kept"] == {"Blueprints": 1, "DiskBackups": {WEB_DISK: 2}}
    writes = {"CreateBlueprint", "CreateDiskBackup", "StopInstances", "DeleteBlueprints", "DeleteDiskBackups"}
    assert not [c for c in emu.calls if c.action in writes]


def test_a_dry_run_answers_when_the_price_is_unknown(app, emu) -> None:
    emu.faults.fail("InquirePriceCreateBlueprint", "InternalError", times=10)
    answer = app.handle(timer_event({"InstanceId": WEB, "DryRun": True}), context())
    assert "could not be read" in answer["Results"][0]["Price"]["Unknown"]


def test_the_http_answer_lists_the_points(app, emu) -> None:
    response = app.handle(http_event(body={"InstanceId": WEB, "ForcePowerOff": False}), context())
    body = orjson.loads(response["body"])
    assert response["statusCode"] == 202
    assert body["DiskBackups"][0]["DiskId"] == WEB_DISK and body["DiskBackups"][0]["DiskBackupId"].startswith("lhbak-")


# ---- restores roll the data disks back too ----------------------------------------------------------------------

RESTORE_TOKEN = "restore-token-0123456789"


def restore(app, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = app.handle(http_event(path="/restores", body=body, token=RESTORE_TOKEN), context())
    return response["statusCode"], orjson.loads(response["body"])


@pytest.fixture
def restorer(make_app, emu):
    return make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS=None, BLUEPRINT_RESTORE="on",
                    BLUEPRINT_RESTORE_TOKEN=RESTORE_TOKEN)


def backed_up(app, emu) -> str:
    emu.lighthouse.write_disk(WEB_DISK, "data v1")
    answer = app.handle(timer_event({"InstanceId": WEB, "Wait": True}), context())
    emu.advance(120)
    [result] = answer["Results"]
    assert result["State"] == "NORMAL" and result["DiskBackups"][0]["DiskId"] == WEB_DISK
    emu.lighthouse.write_disk(WEB_DISK, "broken")
    return str(result["BlueprintId"])


def test_a_restore_rolls_the_data_disks_back_to_the_images_slot(restorer, emu) -> None:
    image = backed_up(restorer, emu)
    status, body = restore(restorer, {"InstanceId": WEB, "BlueprintId": image})
    assert status == 202, body
    assert body["DiskBackups"][0]["DiskId"] == WEB_DISK
    assert emu.lighthouse.disk_data(WEB_DISK) == "data v1"
    [apply] = emu.calls_of("ApplyDiskBackup")
    [reset] = emu.calls_of("ResetInstance")
    assert apply.time < reset.time
    # The safety image covered the disk too: a point of "broken" in the safety slot.
    assert "broken" in {p["Data"] for p in points(emu, WEB_DISK)}
    instance = emu.lighthouse.instance(WEB)
    assert instance is not None and instance["InstanceState"] == "RUNNING"


def test_a_restore_with_data_disks_none_leaves_them(restorer, emu) -> None:
    image = backed_up(restorer, emu)
    status, _ = restore(restorer, {"InstanceId": WEB, "BlueprintId": image, "DataDisks": "none"})
    assert status == 202
    assert emu.calls_of("ApplyDiskBackup") == [] and emu.lighthouse.disk_data(WEB_DISK) == "broken"


def test_a_restore_naming_a_disk_without_a_point_changes_nothing(restorer, emu) -> None:
    emu.lighthouse.add_disk("lhdisk-second01", InstanceId=WEB)
    image = backed_up(restorer, emu)
    emu.lighthouse.add_disk("lhdisk-later001", InstanceId=WEB)
    status, body = restore(restorer, {"InstanceId": WEB, "BlueprintId": image, "DataDisks": ["lhdisk-later001"]})
    assert status == 404 and "lhdisk-later001" in body["Error"]["Message"]
    assert emu.calls_of("ApplyDiskBackup") == [] and emu.calls_of("ResetInstance") == []


def test_the_listing_shows_each_images_points_and_the_totals(restorer, emu) -> None:
    backed_up(restorer, emu)
    response = restorer.handle(http_event("GET", "/blueprints") | {"queryString": {"InstanceId": WEB}}, context())
    body = orjson.loads(response["body"])
    assert response["statusCode"] == 200, body
    assert body["TotalCount"] == 1 and body["DiskBackupCount"] == 1
    assert body["BlueprintSet"][0]["DiskBackups"][0]["DiskId"] == WEB_DISK


# ---- chained work: a run that stopped the instance hands the rest on, and the follow-up starts it again ----------

def test_a_run_short_of_time_hands_on_and_the_follow_up_starts_the_instance_again(make_app, emu) -> None:
    import orjson as _orjson

    emu.scf.add_function("lighthouse-blueprint")
    app = make_app(BLUEPRINT_DATA_DISKS=None)  # the real clock: the image outlives this short invocation
    first = app.handle(timer_event({"InstanceId": WEB}), context(time_limit_in_ms=12_000))
    [result] = first["Results"]
    assert result["DiskBackups"][0]["DiskId"] == WEB_DISK and first["Dispatched"] == 1
    instance = emu.lighthouse.instance(WEB)
    assert instance is not None and instance["InstanceState"] == "STOPPED"  # stopped by the function, image running
    [call] = [i for i in emu.scf.invocations if i["InvocationType"] == "Event"]
    event = _orjson.loads(call["ClientContext"])
    assert event["Kind"] == "follow" and event["Targets"][0]["WasRunning"] is True
    emu.advance(120)
    answer = app.handle(event, context(request_id=call["FunctionRequestId"]))
    assert answer["Results"][0]["State"] == "NORMAL" and answer["Results"][0]["InstanceRestarted"] is True
    instance = emu.lighthouse.instance(WEB)
    assert instance is not None and instance["InstanceState"] == "RUNNING"
    assert len(emu.calls_of("CreateDiskBackup")) == 1 and len(emu.calls_of("CreateBlueprint")) == 1


def test_a_run_that_waits_keeps_exactly_keep_points_once_they_are_normal(app, emu) -> None:
    # As for images: retention lists while the new points are CREATING and keeps the newest NORMAL one then;
    # a run that follows its points deletes it once the new one is NORMAL, so Keep 1 is one point per disk.
    before: list[str] = []
    for n in (1, 2, 3):
        answer = app.handle(timer_event({"InstanceId": DB, "Keep": 1, "Wait": True}, time_=day(n)), context())
        [result] = answer["Results"]
        assert result["State"] == "NORMAL", result
        assert sorted(result.get("PrunedDiskBackups") or []) == sorted(before)
        mine = [p for p in points(emu) if managed(p)]
        assert sorted(p["DiskId"] for p in mine) == DB_DISKS and {p["DiskBackupState"] for p in mine} == {"NORMAL"}
        before = [p["DiskBackupId"] for p in mine]
        emu.advance(86_400)


def test_a_failed_point_keeps_the_image_and_points_before_it(app, emu) -> None:
    # The image before and its points are the last complete recovery point while a new point failed.
    for disk in DB_DISKS:
        emu.lighthouse.set_disk_backup_quota(disk, 10)
    job = {"InstanceId": DB, "Keep": 1, "Wait": True}
    app.handle(timer_event(job, time_=day(1)), context())
    emu.advance(86_400)
    image_before = {b["BlueprintId"] for b in emu.lighthouse.blueprints("ap-guangzhou") if managed(b)}
    points_before = {p["DiskBackupId"] for p in points(emu) if managed(p)}
    emu.lighthouse.fail_next_backup(DB_DISKS[0])
    [result] = app.handle(timer_event(job, time_=day(2)), context())["Results"]
    assert result["Error"]["Code"] == "FailedOperation.DiskBackupFailed" and not result.get("Pruned")
    assert image_before <= {b["BlueprintId"] for b in emu.lighthouse.blueprints("ap-guangzhou")}
    assert {p["DiskBackupId"] for p in points(emu, DB_DISKS[0]) if managed(p)} & points_before
