"""Disks and backup points through the real SDK: DescribeDisks, Create/Describe/Delete/ApplyDiskBackup, quotas."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from emu_helpers import call, error_code, lighthouse, signed_post

from emulator import Emulator

WEB, WEB_DATA, DB_DATA = "lhins-web00001", "lhdisk-webdata1", "lhdisk-dbdata01"


def backup(lh: Any, disk_id: str = WEB_DATA, **extra: Any) -> str:
    return str(call(lh, "CreateDiskBackup", DiskId=disk_id, **extra).DiskBackupId)


def point(lh: Any, backup_id: str) -> Any:
    return call(lh, "DescribeDiskBackups", DiskBackupIds=[backup_id]).DiskBackupSet[0]


def disk(lh: Any, disk_id: str = WEB_DATA) -> Any:
    return call(lh, "DescribeDisks", DiskIds=[disk_id]).DiskSet[0]


def test_sample_disks(lh: Any) -> None:
    data = call(lh, "DescribeDisks", Filters=[{"Name": "disk-usage", "Values": ["DATA_DISK"]}])
    by_instance = {(d.InstanceId, d.DiskId) for d in data.DiskSet}
    assert {d for i, d in by_instance if i == WEB} == {WEB_DATA}  # events/timer.json's instance: one data disk
    assert {d for i, d in by_instance if i == "lhins-db000001"} == {"lhdisk-dbdata01", "lhdisk-dbdata02"}
    web = disk(lh)
    assert (web.DiskState, web.Attached, web.DiskUsage, web.DiskBackupQuota, web.DiskBackupCount) == (
        "ATTACHED", True, "DATA_DISK", 3, 0,
    )
    system = call(lh, "DescribeDisks", Filters=[{"Name": "instance-id", "Values": [WEB]},
                                                {"Name": "disk-usage", "Values": ["SYSTEM_DISK"]}]).DiskSet
    assert [d.DiskId for d in system] == ["lhdisk-web00001"]


def test_describe_disks_filters_order_and_paging(emu: Emulator, lh: Any) -> None:
    emu.lighthouse.add_disk("lhdisk-big00001", DiskSize=200, DiskName="big", Tags=[{"Key": "app", "Value": "db"}])

    def ids(**params: Any) -> list[str]:
        return [d.DiskId for d in call(lh, "DescribeDisks", **params).DiskSet]

    assert ids(Filters=[{"Name": "tag:app", "Values": ["db"]}]) == ["lhdisk-big00001"]
    assert ids(Filters=[{"Name": "disk-name", "Values": ["big", "spare"]}]) == ["lhdisk-big00001", "lhdisk-spare001"]
    unattached = [{"Name": "disk-state", "Values": ["UNATTACHED"]}, {"Name": "zone", "Values": ["ap-guangzhou-3"]}]
    assert ids(Filters=unattached) == ["lhdisk-big00001", "lhdisk-spare001"]
    assert ids(OrderField="DISK_SIZE", Order="DESC", Limit=1) == ["lhdisk-big00001"]
    result = call(lh, "DescribeDisks", Offset=2, Limit=3)
    assert (result.TotalCount, len(result.DiskSet)) == (8, 3)
    assert call(lighthouse(emu, "ap-shanghai"), "DescribeDisks").DiskSet[0].DiskId == "lhdisk-sh000001"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"DiskIds": ["lhdisk-webdata1"], "Filters": []}, "InvalidParameter.ParameterConflict"),
        ({"DiskIds": ["bad"]}, "InvalidParameterValue.InvalidDiskIdMalformed"),
        ({"Filters": [{"Name": "size", "Values": ["1"]}]}, "InvalidParameter.InvalidFilterNotSupportedName"),
        ({"Filters": [{"Name": "disk-id", "Values": ["x"] * 101}]}, "InvalidParameter.FilterValueLimitExceeded"),
        ({"OrderField": "NAME"}, "InvalidParameterValue"),
        ({"Limit": 101}, "InvalidParameterValue.OutOfRange"),
    ],
)
def test_describe_disks_errors(lh: Any, params: dict[str, Any], code: str) -> None:
    assert error_code(lambda: call(lh, "DescribeDisks", **params)) == code


def test_backup_point_is_created_then_normal_and_holds_the_data_of_that_moment(emu: Emulator, lh: Any) -> None:
    emu.lighthouse.write_disk(WEB_DATA, "orders until monday")
    backup_id = backup(lh, DiskBackupName="daily", Tags=[{"Key": "managed", "Value": "yes"}])
    assert backup_id.startswith("lhbak-")
    made = point(lh, backup_id)
    assert (made.DiskBackupState, made.Percent, made.LatestOperation, made.LatestOperationState) == (
        "CREATING", 0, "CreateDiskBackup", "OPERATING",
    )
    assert (made.DiskId, made.DiskUsage, made.DiskBackupName) == (WEB_DATA, "DATA_DISK", "daily")
    assert made.Tags[0].Key == "managed"
    assert error_code(lambda: backup(lh)) == "OperationDenied.DiskBusyForBackupOperation"
    emu.lighthouse.write_disk(WEB_DATA, "orders until tuesday")
    emu.advance(60)
    made = point(lh, backup_id)
    assert (made.DiskBackupState, made.Percent, made.LatestOperationState) == ("NORMAL", 100, "SUCCESS")
    assert emu.lighthouse.disk_backups()[0]["Data"] == "orders until monday"
    assert (disk(lh).DiskBackupCount, disk(lh).LatestOperation) == (1, "CreateDiskBackup")


def test_failed_backup_point_vanishes_and_the_disk_says_failed(emu: Emulator, lh: Any) -> None:
    emu.lighthouse.fail_next_backup(WEB_DATA)
    backup_id = backup(lh)
    emu.advance(60)
    assert call(lh, "DescribeDiskBackups", DiskBackupIds=[backup_id]).TotalCount == 0
    assert (disk(lh).LatestOperationState, disk(lh).DiskBackupCount) == ("FAILED", 0)


def test_backup_quota_per_disk_and_modify_quota(emu: Emulator, lh: Any) -> None:
    for _ in range(3):
        backup(lh)
        emu.advance(60)
    assert error_code(lambda: backup(lh)) == "LimitExceeded.DiskBackupQuotaLimitExceeded"
    quota = lambda n, *ids: call(lh, "ModifyDisksBackupQuota", DiskIds=list(ids or [WEB_DATA]), DiskBackupQuota=n)  # noqa: E731
    assert error_code(lambda: quota(2)) == "InvalidParameterValue.DiskBackupQuotaLessThanCurrentDiskBackupNum"
    assert error_code(lambda: quota(3)) == "UnsupportedOperation.SameWithOldConfig"
    assert error_code(lambda: quota(501)) == "InvalidParameterValue.OutOfRange"
    assert error_code(lambda: quota(4, "lhdisk-web00001")) == "OperationDenied.DiskUsageNotSupportOperation"
    assert error_code(lambda: quota(4, "lhdisk-nothere1")) == "ResourceNotFound.DiskNotFound"
    many = [f"lhdisk-many{i:04d}" for i in range(16)]
    assert error_code(lambda: quota(4, *many)) == "InvalidParameterValue.LimitExceeded"
    assert error_code(lambda: quota(4, WEB_DATA, WEB_DATA)) == "InvalidParameterValue.Duplicated"
    quota(4, WEB_DATA, DB_DATA)
    assert (disk(lh).DiskBackupQuota, disk(lh, DB_DATA).DiskBackupQuota) == (4, 4)
    backup(lh)


def test_default_quota_is_a_knob() -> None:
    with Emulator(rate_limits=False, disk_backup_quota=1) as emu:
        added = emu.lighthouse.add_disk("lhdisk-new00001", InstanceId=WEB)
        assert added["DiskBackupQuota"] == 1 and added["DiskState"] == "ATTACHED"
    with Emulator(rate_limits=False) as emu:
        emu.lighthouse.add_disk("lhdisk-new00001")
        assert error_code(lambda: backup(lighthouse(emu), "lhdisk-new00001")) == (
            "LimitExceeded.DiskBackupQuotaLimitExceeded"
        )


@pytest.mark.parametrize(
    ("setup", "disk_id", "code"),
    [
        (None, "bad", "InvalidParameterValue.InvalidDiskIdMalformed"),
        (None, "lhdisk-nothere1", "ResourceNotFound.DiskNotExists"),
        (None, "lhdisk-web00001", "OperationDenied.DiskUsageNotSupportOperation"),
        ("detaching", WEB_DATA, "UnsupportedOperation.InvalidDiskState"),
        ("imaging", WEB_DATA, "UnsupportedOperation.LatestOperationUnfinished"),
        ("pending", WEB_DATA, "UnsupportedOperation.InvalidInstanceState"),
        ("long", WEB_DATA, "InvalidParameterValue.DiskBackupNameTooLong"),
    ],
)
def test_create_backup_refusals(emu: Emulator, lh: Any, setup: str | None, disk_id: str, code: str) -> None:
    extra: dict[str, Any] = {}
    if setup == "detaching":
        emu.lighthouse.set_disk_state(WEB_DATA, "DETACHING")
    elif setup == "imaging":
        call(lh, "CreateBlueprint", BlueprintName="bp", InstanceId=WEB)
    elif setup == "pending":
        emu.lighthouse.set_instance_state(WEB, "PENDING")
    elif setup == "long":
        extra["DiskBackupName"] = "x" * 91
    assert error_code(lambda: backup(lh, disk_id, **extra)) == code
    assert emu.lighthouse.disk_backups() == []


def test_backup_of_unattached_disk_and_idle_check_knob(emu: Emulator, lh: Any) -> None:
    backup(lh, "lhdisk-spare001")
    with Emulator(rate_limits=False, backup_needs_idle_instance=False) as relaxed:
        relaxed_lh = lighthouse(relaxed)
        call(relaxed_lh, "CreateBlueprint", BlueprintName="bp", InstanceId=WEB)
        backup(relaxed_lh)  # allowed while the image is being made


def test_describe_and_delete_backups(emu: Emulator, lh: Any) -> None:
    first = backup(lh)
    second = backup(lh, DB_DATA)
    emu.advance(60)
    third = backup(lh)

    def ids(**params: Any) -> list[str]:
        return [b.DiskBackupId for b in call(lh, "DescribeDiskBackups", **params).DiskBackupSet]

    assert ids() == [first, second, third]
    assert ids(Filters=[{"Name": "disk-id", "Values": [WEB_DATA]}]) == [first, third]
    assert ids(Filters=[{"Name": "disk-backup-state", "Values": ["CREATING"]}]) == [third]
    assert error_code(lambda: ids(Filters=[{"Name": "disk-id", "Values": ["a"] * 6}])) == (
        "InvalidParameter.FilterValueLimitExceeded"
    )
    assert error_code(lambda: ids(DiskBackupIds=["nope"])) == "InvalidParameterValue.DiskBackupIdMalformed"
    delete = lambda *b: call(lh, "DeleteDiskBackups", DiskBackupIds=list(b))  # noqa: E731
    assert error_code(lambda: delete(first, third)) == "UnsupportedOperation.InvalidDiskBackupState"
    assert error_code(lambda: delete("lhbak-nothere1")) == "ResourceNotFound.DiskBackupIdNotFound"
    assert ids() == [first, second, third]  # nothing deleted when one id is refused
    delete(first, second)
    assert ids() == [third]


def test_apply_backup_shuts_a_running_instance_down_and_rolls_the_disk_back(emu: Emulator, lh: Any) -> None:
    emu.lighthouse.write_disk(WEB_DATA, "good data")
    backup_id = backup(lh)
    emu.advance(60)
    emu.lighthouse.write_disk(WEB_DATA, "corrupted")
    call(lh, "ApplyDiskBackup", DiskId=WEB_DATA, DiskBackupId=backup_id)
    ins = call(lh, "DescribeInstances", InstanceIds=[WEB]).InstanceSet[0]
    assert ins.InstanceState == "STOPPED"
    rolling = point(lh, backup_id)
    assert (rolling.DiskBackupState, rolling.LatestOperation, rolling.LatestOperationState) == (
        "ROLLBACKING", "ApplyDiskBackup", "OPERATING",
    )
    assert (disk(lh).DiskState, disk(lh).LatestOperation) == ("ATTACHED", "ApplyDiskBackup")
    assert error_code(lambda: call(lh, "DeleteDiskBackups", DiskBackupIds=[backup_id])) == (
        "UnsupportedOperation.InvalidDiskBackupState"
    )
    emu.advance(60)
    done = point(lh, backup_id)
    assert (done.DiskBackupState, done.LatestOperationState) == ("NORMAL", "SUCCESS")
    assert emu.lighthouse.disk_data(WEB_DATA) == "good data"
    assert call(lh, "DescribeInstances", InstanceIds=[WEB]).InstanceSet[0].InstanceState == "STOPPED"


def test_apply_backup_restart_knob_and_failure() -> None:
    with Emulator(rate_limits=False, restart_after_rollback=True) as emu:
        lh = lighthouse(emu)
        backup_id = backup(lh)
        emu.advance(60)
        emu.lighthouse.write_disk(WEB_DATA, "new")
        emu.lighthouse.fail_next_rollback(WEB_DATA)
        call(lh, "ApplyDiskBackup", DiskId=WEB_DATA, DiskBackupId=backup_id)
        emu.advance(60)
        assert point(lh, backup_id).LatestOperationState == "FAILED"
        assert emu.lighthouse.disk_data(WEB_DATA) == "new"
        assert call(lh, "DescribeInstances", InstanceIds=[WEB]).InstanceSet[0].InstanceState == "RUNNING"


def test_apply_backup_refusals(emu: Emulator, lh: Any) -> None:
    web_point = backup(lh)
    db_point = backup(lh, DB_DATA)
    apply = lambda d, b: call(lh, "ApplyDiskBackup", DiskId=d, DiskBackupId=b)  # noqa: E731
    assert error_code(lambda: apply(WEB_DATA, web_point)) == "UnsupportedOperation.InvalidDiskBackupState"
    emu.advance(60)
    assert error_code(lambda: apply(WEB_DATA, db_point)) == "UnsupportedOperation.ApplyDiskBackupToAnotherDisk"
    assert error_code(lambda: apply(WEB_DATA, "lhbak-nothere1")) == "ResourceNotFound.DiskBackupNotExists"
    assert error_code(lambda: apply("lhdisk-nothere1", web_point)) == "ResourceNotFound.DiskNotExists"
    assert error_code(lambda: apply(WEB_DATA, "nope")) == "InvalidParameterValue.DiskBackupIdMalformed"
    call(lh, "CreateBlueprint", BlueprintName="bp", InstanceId=WEB)
    assert error_code(lambda: apply(WEB_DATA, web_point)) == "UnsupportedOperation.LatestOperationUnfinished"
    emu.lighthouse.set_disk_state(DB_DATA, "DETACHING")
    assert error_code(lambda: apply(DB_DATA, db_point)) == "UnsupportedOperation.InvalidDiskState"
    apply_spare = backup(lh, "lhdisk-spare001")
    emu.advance(60)
    apply("lhdisk-spare001", apply_spare)  # an unattached disk needs no instance


def test_disks_of_another_account_are_invisible() -> None:
    with Emulator(rate_limits=False, credentials={"AKIDB": "b"}, accounts={"AKIDB": "200000000002"}) as emu:
        theirs = lighthouse(emu, secret_id="AKIDB", secret_key="b")
        assert call(theirs, "DescribeDisks").TotalCount == 0
        assert error_code(lambda: backup(theirs)) == "ResourceNotFound.DiskNotExists"


def test_schema_errors_faults_and_state(emu: Emulator, lh: Any) -> None:
    assert signed_post(emu, "CreateDiskBackup", {"DiskId": WEB_DATA, "Extra": 1})["Error"]["Code"] == "UnknownParameter"
    assert signed_post(emu, "ModifyDisksBackupQuota", {"DiskIds": [WEB_DATA]})["Error"]["Code"] == "MissingParameter"
    assert signed_post(emu, "ApplyDiskBackup", {"DiskId": 1, "DiskBackupId": "x"})["Error"]["Code"] == (
        "InvalidParameter"
    )
    emu.reset_calls()
    emu.faults.fail("CreateDiskBackup", "OperationDenied.DiskOperationInProgress", times=1)
    assert error_code(lambda: backup(lh)) == "OperationDenied.DiskOperationInProgress"
    backup_id = backup(lh)
    assert [c.error for c in emu.calls_of("CreateDiskBackup")] == ["OperationDenied.DiskOperationInProgress", None]
    state = requests.get(emu.url + "/_emulator/state", timeout=5).json()
    assert [b["DiskBackupId"] for b in state["disk_backups"]] == [backup_id]
    assert {d["DiskId"]: d["DiskBackupCount"] for d in state["disks"]}[WEB_DATA] == 1


def test_state_file_form(tmp_path: Any) -> None:
    path = tmp_path / "state.json"
    path.write_text(
        '{"regions": ["ap-guangzhou"], "instances": [{"InstanceId": "lhins-a0000001"}],'
        ' "disks": [{"DiskId": "lhdisk-a0000001", "InstanceId": "lhins-a0000001", "DiskBackupQuota": 2}],'
        ' "disk_backups": [{"DiskId": "lhdisk-a0000001", "DiskBackupId": "lhbak-a0000001",'
        ' "DiskBackupName": "mine", "Tags": [{"Key": "owner", "Value": "me"}]}]}'
    )
    with Emulator(str(path), rate_limits=False) as emu:
        lh = lighthouse(emu)
        [made] = call(lh, "DescribeDiskBackups").DiskBackupSet
        assert (made.DiskBackupId, made.DiskBackupName, made.DiskBackupState) == ("lhbak-a0000001", "mine", "NORMAL")
        assert disk(lh, "lhdisk-a0000001").DiskBackupCount == 1


def test_documented_rate_limit() -> None:
    with Emulator() as emu:
        lh = lighthouse(emu)
        codes = [error_code(lambda: backup(lh, "bad")) for _ in range(21)]
        assert codes[:20] == ["InvalidParameterValue.InvalidDiskIdMalformed"] * 20
        assert codes[20] == "RequestLimitExceeded"


def test_attach_disk_moves_a_data_disk_or_detaches_it(emu: Emulator, lh: Any) -> None:
    emu.lighthouse.attach_disk(WEB_DATA, "lhins-db000001")
    moved = disk(lh)
    assert (moved.InstanceId, moved.DiskState, moved.Attached) == ("lhins-db000001", "ATTACHED", True)
    on_db = call(lh, "DescribeDisks", Filters=[{"Name": "instance-id", "Values": ["lhins-db000001"]},
                                               {"Name": "disk-usage", "Values": ["DATA_DISK"]}]).DiskSet
    assert WEB_DATA in {d.DiskId for d in on_db}
    emu.lighthouse.attach_disk(WEB_DATA, None)
    loose = disk(lh)
    assert (loose.InstanceId, loose.DiskState, loose.Attached) == (None, "UNATTACHED", False)
    with pytest.raises(ValueError, match="system disk"):
        emu.lighthouse.attach_disk("lhdisk-web00001", None)
    with pytest.raises(ValueError, match="no instance"):
        emu.lighthouse.attach_disk(WEB_DATA, "lhins-sh000001")  # another region
