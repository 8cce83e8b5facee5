"""Lighthouse actions through the real SDK: the image state machine, filters, paging and errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from emu_helpers import error_code, lighthouse
from tencentcloud.lighthouse.v20200324 import models

from emulator import Emulator

WEB = "lhins-web00001"


def create(lh: Any, name: str = "bp", instance: str | None = WEB, **extra: Any) -> str:
    req = models.CreateBlueprintRequest()
    req.from_json_string(json.dumps({"BlueprintName": name, "InstanceId": instance, **extra}))
    return str(lh.CreateBlueprint(req).BlueprintId)


def describe(lh: Any, **params: Any) -> Any:
    req = models.DescribeBlueprintsRequest()
    req.from_json_string(json.dumps(params))
    return lh.DescribeBlueprints(req)


def instance(lh: Any, instance_id: str = WEB) -> Any:
    req = models.DescribeInstancesRequest()
    req.InstanceIds = [instance_id]
    return lh.DescribeInstances(req).InstanceSet[0]


def test_image_goes_creating_then_normal_and_restarts_instance(emu: Emulator, lh: Any) -> None:
    bp_id = create(lh, Tags=[{"Key": "made-by", "Value": "fn"}])
    [bp] = describe(lh, BlueprintIds=[bp_id]).BlueprintSet
    assert (bp.BlueprintState, bp.BlueprintType, bp.Tags[0].Key) == ("CREATING", "PRIVATE", "made-by")
    ins = instance(lh)
    assert (ins.InstanceState, ins.LatestOperation, ins.LatestOperationState) == (
        "STOPPED",
        "CreateBlueprint",
        "OPERATING",
    )
    assert ins.LatestOperationRequestId == emu.calls_of("CreateBlueprint")[0].request_id
    emu.advance(29)
    assert describe(lh, BlueprintIds=[bp_id]).BlueprintSet[0].BlueprintState == "CREATING"
    emu.advance(2)
    assert describe(lh, BlueprintIds=[bp_id]).BlueprintSet[0].BlueprintState == "NORMAL"
    ins = instance(lh)
    assert (ins.InstanceState, ins.LatestOperationState) == ("RUNNING", "SUCCESS")


def test_force_power_off_false_keeps_instance_running(emu: Emulator, lh: Any) -> None:
    create(lh, ForcePowerOff=False)
    ins = instance(lh)
    assert (ins.InstanceState, ins.LatestOperationState) == ("RUNNING", "OPERATING")


def test_no_restart_when_configured() -> None:
    with Emulator(rate_limits=False, restart_after_image=False, in_progress_state="PENDING") as emu:
        lh = lighthouse(emu)
        bp_id = create(lh)
        assert describe(lh, BlueprintIds=[bp_id]).BlueprintSet[0].BlueprintState == "PENDING"
        emu.advance(30)
        assert instance(lh).InstanceState == "STOPPED"


def test_failed_image(emu: Emulator, lh: Any) -> None:
    emu.lighthouse.fail_next_image(WEB)
    bp_id = create(lh)
    emu.advance(30)
    assert describe(lh, BlueprintIds=[bp_id]).BlueprintSet[0].BlueprintState == "CREATEFAILED"
    assert instance(lh).LatestOperationState == "FAILED"
    assert emu.lighthouse.blueprints()[0]["InstanceId"] == WEB


def test_second_operation_while_operating_is_refused(emu: Emulator, lh: Any) -> None:
    create(lh)
    assert error_code(lambda: create(lh, "again")) == "UnsupportedOperation.LatestOperationUnfinished"
    start = models.StartInstancesRequest()
    start.InstanceIds = [WEB]
    assert error_code(lambda: lh.StartInstances(start)) == "UnsupportedOperation.LatestOperationUnfinished"
    emu.advance(30)
    create(lh, "again")


def test_invalid_instance_state(emu: Emulator, lh: Any) -> None:
    emu.lighthouse.set_instance_state(WEB, "PENDING")
    assert error_code(lambda: create(lh)) == "UnsupportedOperation.InvalidInstanceState"


def test_stopped_instance_can_be_imaged(emu: Emulator, lh: Any) -> None:
    create(lh, instance="lhins-stop0001")
    emu.advance(30)
    assert instance(lh, "lhins-stop0001").InstanceState == "STOPPED"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"BlueprintName": "x" * 61}, "InvalidParameterValue.TooLong"),
        ({"Description": "x" * 61}, "InvalidParameterValue.TooLong"),
        ({"InstanceId": "lhins-BAD"}, "InvalidParameterValue.InstanceIdMalformed"),
        ({"InstanceId": "lhins-nothere1"}, "ResourceNotFound.InstanceIdNotFound"),
        ({"InstanceId": "lhins-sh000001"}, "ResourceNotFound.InstanceIdNotFound"),  # other region
        (
            {"Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(11)]},
            "InvalidParameterValue.LimitExceeded",
        ),
    ],
)
def test_create_blueprint_errors(lh: Any, params: dict[str, Any], code: str) -> None:
    base = {"BlueprintName": "bp", "InstanceId": WEB, **params}
    assert error_code(lambda: create(lh, base.pop("BlueprintName"), base.pop("InstanceId"), **base)) == code


def test_quota_counts_private_images_in_any_state(emu: Emulator, lh: Any) -> None:
    emu.lighthouse.set_quota("ap-guangzhou", 2)
    emu.lighthouse.add_blueprint("old", BlueprintState="CREATEFAILED")
    create(lh, instance="lhins-db000001")
    assert error_code(lambda: create(lh)) == "LimitExceeded.BlueprintQuotaLimitExceeded"
    req = models.DescribeGeneralResourceQuotasRequest()
    req.ResourceNames = ["BLUEPRINT"]
    [row] = lh.DescribeGeneralResourceQuotas(req).GeneralResourceQuotaSet
    assert (row.ResourceName, row.ResourceQuotaTotal, row.ResourceQuotaAvailable) == ("BLUEPRINT", 2, 0)


def test_quota_unknown_resource_name(lh: Any) -> None:
    req = models.DescribeGeneralResourceQuotasRequest()
    req.ResourceNames = ["NOPE"]
    code = error_code(lambda: lh.DescribeGeneralResourceQuotas(req))
    assert code == "InvalidParameterValue.InvalidResourceQuotaResourceName"


def test_quota_is_per_region(emu: Emulator) -> None:
    create(lighthouse(emu))
    req = models.DescribeGeneralResourceQuotasRequest()
    req.ResourceNames = ["BLUEPRINT"]
    [row] = lighthouse(emu, "ap-shanghai").DescribeGeneralResourceQuotas(req).GeneralResourceQuotaSet
    assert (row.ResourceQuotaTotal, row.ResourceQuotaAvailable) == (20, 20)


def test_describe_blueprints_filters(emu: Emulator, lh: Any) -> None:
    emu.lighthouse.add_blueprint("a", Tags=[{"Key": "app", "Value": "web"}])
    emu.lighthouse.add_blueprint("b", Tags=[{"Key": "app", "Value": "db"}], BlueprintState="CREATEFAILED")
    emu.lighthouse.add_blueprint("a", Region="ap-shanghai", Tags=[{"Key": "app", "Value": "web"}])

    def names(*filters: tuple[str, list[str]]) -> list[str]:
        result = describe(lh, Filters=[{"Name": n, "Values": v} for n, v in filters])
        return sorted(bp.BlueprintName for bp in result.BlueprintSet)

    assert names(("blueprint-type", ["PRIVATE"])) == ["a", "b"]
    assert len(names(("blueprint-type", ["PURE_OS", "APP_OS"]))) == 3
    assert names(("tag:app", ["web"])) == ["a"]
    assert names(("tag:app", ["web", "db"]), ("blueprint-state", ["NORMAL"])) == ["a"]
    assert names(("tag-key", ["app"])) == ["a", "b"]
    assert names(("tag-value", ["db"])) == ["b"]
    assert names(("blueprint-name", ["a"])) == ["a"]
    assert names(("blueprint-name", ["A"])) == []
    assert names(("tag:other", ["web"])) == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"BlueprintIds": ["lhbp-aaaabbbb"], "Filters": []}, "InvalidParameter.ParameterConflict"),
        ({"Filters": [{"Name": "owner", "Values": ["x"]}]}, "InvalidParameter.InvalidFilterNotSupportedName"),
        (
            {"Filters": [{"Name": "blueprint-name", "Values": ["x"]}] * 11},
            "InvalidParameterValue.LimitExceeded",
        ),
        (
            {"Filters": [{"Name": "blueprint-name", "Values": ["x"] * 101}]},
            "InvalidParameter.FilterValueLimitExceeded",
        ),
        (
            {"Filters": [{"Name": "blueprint-type", "Values": ["NOPE"]}]},
            "InvalidParameterValue.InvalidBlueprintType",
        ),
        ({"Offset": -1}, "InvalidParameterValue.Negative"),
        ({"Limit": 101}, "InvalidParameterValue.OutOfRange"),
        ({"BlueprintIds": ["bad-id"]}, "InvalidParameterValue.BlueprintIdMalformed"),
    ],
)
def test_describe_blueprints_errors(lh: Any, params: dict[str, Any], code: str) -> None:
    assert error_code(lambda: describe(lh, **params)) == code


def test_paging_counts_before_paging(emu: Emulator, lh: Any) -> None:
    for index in range(5):
        emu.lighthouse.add_blueprint(f"p{index}")
    filters = [{"Name": "blueprint-type", "Values": ["PRIVATE"]}]
    result = describe(lh, Filters=filters, Offset=3, Limit=10)
    assert (result.TotalCount, len(result.BlueprintSet)) == (5, 2)
    assert len(describe(lh).BlueprintSet) == 8  # 3 public + 5 private, default limit 20


def test_delete_blueprints(emu: Emulator, lh: Any) -> None:
    normal = emu.lighthouse.add_blueprint("done")["BlueprintId"]
    creating = create(lh)
    req = models.DeleteBlueprintsRequest()
    req.BlueprintIds = [creating]
    assert error_code(lambda: lh.DeleteBlueprints(req)) == "UnsupportedOperation.BlueprintCurStateInvalid"
    req.BlueprintIds = ["lhbp-nothere1"]
    assert error_code(lambda: lh.DeleteBlueprints(req)) == "ResourceNotFound.BlueprintIdNotFound"
    req.BlueprintIds = ["nope"]
    assert error_code(lambda: lh.DeleteBlueprints(req)) == "InvalidParameterValue.BlueprintIdMalformed"
    req.BlueprintIds = [normal]
    lh.DeleteBlueprints(req)
    assert [bp["BlueprintId"] for bp in emu.lighthouse.blueprints()] == [creating]


def test_describe_instances_filters_and_shape(lh: Any) -> None:
    def ids(filters: list[dict[str, Any]]) -> list[str]:
        req = models.DescribeInstancesRequest()
        req.from_json_string(json.dumps({"Filters": filters}))
        return sorted(i.InstanceId for i in lh.DescribeInstances(req).InstanceSet)

    assert ids([{"Name": "tag:backup", "Values": ["daily"]}]) == ["lhins-db000001", WEB]
    assert ids([{"Name": "instance-state", "Values": ["STOPPED"]}]) == ["lhins-stop0001"]
    assert ids([{"Name": "instance-name", "Values": ["web-1"]}]) == [WEB]
    assert ids([{"Name": "zone", "Values": ["ap-guangzhou-3"]}, {"Name": "tag-value", "Values": ["prod"]}]) == [WEB]
    ins = instance(lh)
    assert ins.InstanceName == "web-1" and ins.Zone == "ap-guangzhou-3" and ins.CPU == 2
    assert ins.CreatedTime.endswith("Z") and ins.BlueprintId and ins.OsName and ins.PlatformType


def test_start_and_stop(emu: Emulator, lh: Any) -> None:
    stop = models.StopInstancesRequest()
    stop.InstanceIds = [WEB]
    lh.StopInstances(stop)
    ins = instance(lh)
    assert (ins.InstanceState, ins.LatestOperation, ins.LatestOperationState) == (
        "STOPPED",
        "StopInstances",
        "SUCCESS",
    )
    assert error_code(lambda: lh.StopInstances(stop)) == "UnsupportedOperation.InvalidInstanceState"
    start = models.StartInstancesRequest()
    start.InstanceIds = [WEB]
    lh.StartInstances(start)
    assert instance(lh).InstanceState == "RUNNING"


def test_start_takes_op_seconds() -> None:
    with Emulator(rate_limits=False, op_seconds=10) as emu:
        lh = lighthouse(emu)
        start = models.StartInstancesRequest()
        start.InstanceIds = ["lhins-stop0001"]
        lh.StartInstances(start)
        ins = instance(lh, "lhins-stop0001")
        assert (ins.InstanceState, ins.LatestOperationState) == ("STARTING", "OPERATING")
        emu.advance(10)
        assert instance(lh, "lhins-stop0001").InstanceState == "RUNNING"


def test_describe_regions(lh: Any) -> None:
    result = lh.DescribeRegions(models.DescribeRegionsRequest())
    regions = {r.Region: r for r in result.RegionSet}
    assert set(regions) == {"ap-guangzhou", "ap-shanghai"}
    assert regions["ap-guangzhou"].RegionState == "AVAILABLE" and regions["ap-guangzhou"].IsChinaMainland


def test_python_api_views(emu: Emulator) -> None:
    added = emu.lighthouse.add_instance("lhins-new00001", Region="ap-beijing", Tags=[{"Key": "a", "Value": "b"}])
    assert added["Region"] == "ap-beijing" and added["InstanceName"] == "lhins-new00001"
    assert [i["InstanceId"] for i in emu.lighthouse.instances("ap-beijing")] == ["lhins-new00001"]
    emu.lighthouse.set_instance_tags("lhins-new00001", [{"Key": "x", "Value": "y"}])
    assert emu.lighthouse.instances("ap-beijing")[0]["Tags"] == [{"Key": "x", "Value": "y"}]
    assert len(emu.lighthouse.blueprints("ap-beijing", private_only=False)) == 3
    with pytest.raises(ValueError, match="malformed"):
        emu.lighthouse.add_instance("bad")
