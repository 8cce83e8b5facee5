"""ResetInstance through the real SDK: preconditions, the asynchronous operation, the system disk replaced."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from emu_helpers import call, error_code, lighthouse, signed_post

from emulator import Emulator

WEB = "lhins-web00001"


def instance(lh: Any, instance_id: str = WEB) -> Any:
    return call(lh, "DescribeInstances", InstanceIds=[instance_id]).InstanceSet[0]


def made_image(emu: Emulator, lh: Any, data: str) -> str:
    """An image of web-1 while its system disk holds `data`; the disk is changed afterwards."""
    emu.lighthouse.write_disk("lhdisk-web00001", data)
    bp_id = str(call(lh, "CreateBlueprint", BlueprintName="good", InstanceId=WEB).BlueprintId)
    emu.advance(30)
    emu.lighthouse.write_disk("lhdisk-web00001", "broken deploy")
    return bp_id


def test_reset_replaces_the_system_disk_and_reports_through_latest_operation(emu: Emulator, lh: Any) -> None:
    bp_id = made_image(emu, lh, "release 41")
    call(lh, "ResetInstance", InstanceId=WEB, BlueprintId=bp_id)
    ins = instance(lh)
    request_id = emu.calls_of("ResetInstance")[0].request_id
    assert (ins.InstanceState, ins.LatestOperation, ins.LatestOperationState, ins.LatestOperationRequestId) == (
        "STOPPED", "ResetInstance", "OPERATING", request_id,
    )
    assert emu.lighthouse.disk_data("lhdisk-web00001") == "broken deploy"
    assert error_code(lambda: call(lh, "StartInstances", InstanceIds=[WEB])) == (
        "UnsupportedOperation.LatestOperationUnfinished"
    )
    emu.advance(119)
    assert instance(lh).LatestOperationState == "OPERATING"
    emu.advance(1)
    ins = instance(lh)
    assert (ins.InstanceState, ins.LatestOperationState, ins.BlueprintId) == ("RUNNING", "SUCCESS", bp_id)
    assert ins.SystemDisk.DiskId == "lhdisk-web00001"
    assert emu.lighthouse.disk_data("lhdisk-web00001") == "release 41"
    assert emu.lighthouse.disk_data("lhdisk-webdata1") == "lhdisk-webdata1:initial"  # data disks untouched
    [record] = emu.lighthouse.resets(WEB)
    assert (record["BlueprintId"], record["RequestId"], record["Result"]) == (bp_id, request_id, "SUCCESS")


def test_reset_without_blueprint_reinstalls_the_current_image(emu: Emulator, lh: Any) -> None:
    emu.lighthouse.write_disk("lhdisk-web00001", "changed")
    call(lh, "ResetInstance", InstanceId=WEB)
    emu.advance(120)
    assert instance(lh).BlueprintId == "lhbp-ubuntu22"
    assert emu.lighthouse.disk_data("lhdisk-web00001") == "lhbp-ubuntu22:public"


def test_failed_reset_keeps_the_disk_and_the_state(emu: Emulator, lh: Any) -> None:
    bp_id = made_image(emu, lh, "release 41")
    emu.lighthouse.fail_next_reset(WEB)
    call(lh, "StopInstances", InstanceIds=[WEB])
    call(lh, "ResetInstance", InstanceId=WEB, BlueprintId=bp_id)
    emu.advance(120)
    ins = instance(lh)
    assert (ins.InstanceState, ins.LatestOperationState, ins.BlueprintId) == ("STOPPED", "FAILED", "lhbp-ubuntu22")
    assert emu.lighthouse.disk_data("lhdisk-web00001") == "broken deploy"
    assert emu.lighthouse.resets(WEB)[0]["Result"] == "FAILED"


def test_reset_timing_and_states_are_knobs() -> None:
    with Emulator(rate_limits=False, reset_seconds=5, reset_state="REBOOTING", reset_final_state="STOPPED") as emu:
        lh = lighthouse(emu)
        call(lh, "ResetInstance", InstanceId=WEB)
        assert instance(lh).InstanceState == "REBOOTING"
        emu.advance(5)
        assert (instance(lh).InstanceState, instance(lh).LatestOperationState) == ("STOPPED", "SUCCESS")


def test_reset_from_an_image_shared_by_another_account() -> None:
    with Emulator(rate_limits=False, credentials={"AKIDOTHER": "k"}, accounts={"AKIDOTHER": "200000000002"}) as emu:
        owner = lighthouse(emu, secret_id="AKIDOTHER", secret_key="k")
        bp_id = emu.lighthouse.add_blueprint("golden", OwnerUin="200000000002", Data="golden data")["BlueprintId"]
        lh = lighthouse(emu)
        assert error_code(lambda: call(lh, "ResetInstance", InstanceId=WEB, BlueprintId=bp_id)) == (
            "ResourceNotFound.BlueprintIdNotFound"
        )
        call(owner, "ShareBlueprintAcrossAccounts", BlueprintId=bp_id, AccountIds=["100000000001"])
        call(lh, "ResetInstance", InstanceId=WEB, BlueprintId=bp_id)
        emu.advance(120)
        assert emu.lighthouse.disk_data("lhdisk-web00001") == "golden data"


@pytest.mark.parametrize(
    ("change", "params", "code"),
    [
        (None, {"InstanceId": "bad"}, "InvalidParameterValue.InstanceIdMalformed"),
        (None, {"InstanceId": "lhins-nothere1"}, "ResourceNotFound.InstanceIdNotFound"),
        (None, {"InstanceId": "lhins-sh000001"}, "ResourceNotFound.InstanceIdNotFound"),
        (None, {"BlueprintId": "nope"}, "InvalidParameterValue.BlueprintIdMalformed"),
        (None, {"BlueprintId": "lhbp-nothere1"}, "ResourceNotFound.BlueprintIdNotFound"),
        ("creating", {}, "ResourceUnavailable.BlueprintUnavailable"),
        ("big", {}, "InvalidParameterValue.BlueprintConfigNotMatch"),
        ("pending", {}, "UnsupportedOperation.InvalidInstanceState"),
        ("operating", {}, "UnsupportedOperation.LatestOperationUnfinished"),
        (None, {"InstanceId": None}, "MissingParameter"),
    ],
)
def test_reset_refusals(emu: Emulator, lh: Any, change: str | None, params: dict[str, Any], code: str) -> None:
    extra: dict[str, Any] = {}
    if change == "creating":
        extra["BlueprintId"] = emu.lighthouse.add_blueprint("c", BlueprintState="CREATING")["BlueprintId"]
    elif change == "big":
        extra["BlueprintId"] = emu.lighthouse.add_blueprint("b", RequiredSystemDiskSize=500)["BlueprintId"]
    elif change == "pending":
        emu.lighthouse.set_instance_state(WEB, "PENDING")
    elif change == "operating":
        call(lh, "StopInstances", InstanceIds=[WEB])
        emu.lighthouse.set_instance_state(WEB, "STOPPED")
        call(lh, "CreateBlueprint", BlueprintName="busy", InstanceId=WEB)
    body = {"InstanceId": WEB, **extra, **params}
    if body.get("InstanceId") is None:
        body.pop("InstanceId")
    assert error_code(lambda: call(lh, "ResetInstance", **body)) == code
    assert emu.lighthouse.resets(WEB) == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"InstanceId": WEB, "Bogus": 1}, "UnknownParameter"),
        ({"InstanceId": WEB, "LoginConfiguration": "x"}, "InvalidParameter"),
        ({"InstanceId": WEB, "Containers": [1]}, "InvalidParameter"),
        ({"InstanceId": 7}, "InvalidParameter"),
    ],
)
def test_reset_schema_errors(emu: Emulator, params: dict[str, Any], code: str) -> None:
    # The SDK drops unknown fields and cannot send wrong types, so these go out hand-signed.
    assert signed_post(emu, "ResetInstance", params)["Error"]["Code"] == code


def test_platform_switch_refused_outside_the_mainland() -> None:
    state = {"regions": ["ap-singapore", "ap-guangzhou"], "instances": [
        {"InstanceId": "lhins-sg000001", "Region": "ap-singapore"},
        {"InstanceId": "lhins-gz000001", "Region": "ap-guangzhou"},
    ]}
    with Emulator(state, rate_limits=False) as emu:
        for region, instance_id, code in [("ap-singapore", "lhins-sg000001", "NotAllowToChangePlatformType"),
                                          ("ap-guangzhou", "lhins-gz000001", None)]:
            win = emu.lighthouse.add_blueprint("win", Region=region, PlatformType="WINDOWS")["BlueprintId"]
            reset = lambda: call(lighthouse(emu, region), "ResetInstance", InstanceId=instance_id, BlueprintId=win)  # noqa: E731, B023
            if code:
                assert error_code(reset) == f"InvalidParameterValue.{code}"
            else:
                reset()


def test_reset_fault_and_control_state(emu: Emulator, lh: Any) -> None:
    emu.faults.drop("ResetInstance", after=True)
    assert error_code(lambda: call(lh, "ResetInstance", InstanceId=WEB)) == "ClientNetworkError"
    assert emu.calls_of("ResetInstance")[0].dropped
    state = requests.get(emu.url + "/_emulator/state", timeout=5).json()
    assert state["resets"][WEB][0]["Result"] is None
    assert {i["InstanceId"]: i["LatestOperation"] for i in state["instances"]}[WEB] == "ResetInstance"
