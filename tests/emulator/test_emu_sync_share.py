"""SyncBlueprint, cross-account shares, accounts and InquirePriceCreateBlueprint through the real SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from emu_helpers import call, error_code, lighthouse

from emulator import Emulator

OTHER_ID, OTHER_KEY, OTHER_UIN = "AKIDOTHERACCOUNT", "other-secret", "200000000002"
REGIONS = ["ap-guangzhou", "ap-shanghai", "ap-beijing", "ap-hongkong", "ap-singapore"]


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """Mainland and other regions, and a second account bound to its own credentials."""
    state = {"regions": REGIONS, "instances": [{"InstanceId": "lhins-web00001", "InstanceName": "web-1"}]}
    with Emulator(
        state, rate_limits=False, credentials={OTHER_ID: OTHER_KEY}, accounts={OTHER_ID: OTHER_UIN}
    ) as started:
        yield started


def states(emu: Emulator, *ids: str) -> list[str]:
    found = {bp["BlueprintId"]: bp["BlueprintState"] for bp in emu.lighthouse.blueprints()}
    return [found[i] for i in ids]


def test_sync_copies_to_each_region_and_source_syncs_until_done(emu: Emulator) -> None:
    source = emu.lighthouse.add_blueprint("web-daily", Tags=[{"Key": "managed", "Value": "yes"}])["BlueprintId"]
    two = ["ap-shanghai", "ap-beijing"]
    answer = call(lighthouse(emu), "SyncBlueprint", BlueprintId=source, DestinationRegions=two)
    pairs = [(item.Region, item.BlueprintId) for item in answer.DestinationRegionBlueprintSet]
    assert [region for region, _ in pairs] == ["ap-shanghai", "ap-beijing"]
    copies = [bp_id for _, bp_id in pairs]
    assert len(set([*copies, source])) == 3
    assert states(emu, source, *copies) == ["SYNCING", "SYNCING", "SYNCING"]
    emu.advance(899)
    assert states(emu, source, *copies) == ["SYNCING", "SYNCING", "SYNCING"]
    emu.advance(1)
    assert states(emu, source, *copies) == ["NORMAL", "NORMAL", "NORMAL"]
    shanghai = call(lighthouse(emu, "ap-shanghai"), "DescribeBlueprints", BlueprintIds=[copies[0]]).BlueprintSet[0]
    assert (shanghai.BlueprintName, shanghai.BlueprintType, shanghai.Tags) == ("web-daily", "PRIVATE", [])


def test_a_failed_copy_is_syncing_failed_and_the_source_is_normal_again(emu: Emulator) -> None:
    source = emu.lighthouse.add_blueprint("bp")["BlueprintId"]
    emu.lighthouse.fail_next_sync("ap-beijing")
    two = ["ap-shanghai", "ap-beijing"]
    answer = call(lighthouse(emu), "SyncBlueprint", BlueprintId=source, DestinationRegions=two)
    shanghai, beijing = (item.BlueprintId for item in answer.DestinationRegionBlueprintSet)
    emu.advance(900)
    assert states(emu, source, shanghai, beijing) == ["NORMAL", "NORMAL", "SYNCING_FAILED"]
    delete = lambda: call(lighthouse(emu, "ap-beijing"), "DeleteBlueprints", BlueprintIds=[beijing])  # noqa: E731
    delete()  # SYNCING_FAILED images can be deleted
    assert beijing not in {bp["BlueprintId"] for bp in emu.lighthouse.blueprints()}


def test_copies_carry_tags_when_configured() -> None:
    with Emulator({"regions": REGIONS}, rate_limits=False, sync_copies_tags=True, sync_seconds=10) as emu:
        source = emu.lighthouse.add_blueprint("bp", Tags=[{"Key": "k", "Value": "v"}])["BlueprintId"]
        call(lighthouse(emu), "SyncBlueprint", BlueprintId=source, DestinationRegions=["ap-shanghai"])
        [copy] = emu.lighthouse.blueprints("ap-shanghai")
        assert copy["Tags"] == [{"Key": "k", "Value": "v"}] and copy["SourceBlueprintId"] == source
        emu.advance(10)
        assert states(emu, copy["BlueprintId"]) == ["NORMAL"]


@pytest.mark.parametrize(
    ("regions", "code"),
    [
        (["ap-guangzhou"], "InvalidParameterValue.DestinationRegionSameAsSourceRegion"),
        (["ap-shanghai", "ap-shanghai"], "InvalidParameterValue.Duplicated"),
        (["ap-hongkong"], "InvalidParameterValue.NotSupportCrossBorderSyncBlueprint"),
        (["ap-nowhere"], "InvalidParameterValue.UnavailableRegion"),
        ([f"ap-r{i}" for i in range(11)], "LimitExceeded"),
        ([], "MissingParameter"),
    ],
)
def test_sync_refuses_bad_destinations(emu: Emulator, regions: list[str], code: str) -> None:
    source = emu.lighthouse.add_blueprint("bp")["BlueprintId"]
    sync = lambda: call(lighthouse(emu), "SyncBlueprint", BlueprintId=source, DestinationRegions=regions)  # noqa: E731
    assert error_code(sync) == code
    assert states(emu, source) == ["NORMAL"] and len(emu.lighthouse.blueprints()) == 1


def test_sync_other_refusals(emu: Emulator) -> None:
    lh = lighthouse(emu)
    creating = emu.lighthouse.add_blueprint("c", BlueprintState="CREATING")["BlueprintId"]

    def sync(bp_id: str, regions: list[str] = ["ap-shanghai"]) -> str:  # noqa: B006
        return error_code(lambda: call(lh, "SyncBlueprint", BlueprintId=bp_id, DestinationRegions=regions))

    assert sync(creating) == "UnsupportedOperation.BlueprintCurStateInvalid"
    assert sync("lhbp-ubuntu22") == "ResourceNotFound.PrivateBlueprintNotFound"
    assert sync("lhbp-nothere1") == "ResourceNotFound.PrivateBlueprintNotFound"
    assert sync("bad") == "InvalidParameterValue.BlueprintIdMalformed"
    normal = emu.lighthouse.add_blueprint("n")["BlueprintId"]
    emu.lighthouse.set_region_available("ap-beijing", False)
    assert sync(normal, ["ap-beijing"]) == "InvalidParameterValue.UnavailableRegion"
    regions = {r.Region: r.RegionState for r in call(lh, "DescribeRegions").RegionSet}
    assert regions["ap-beijing"] == "UNAVAILABLE" and regions["ap-shanghai"] == "AVAILABLE"


def test_sync_counts_against_the_destination_quota(emu: Emulator) -> None:
    source = emu.lighthouse.add_blueprint("bp")["BlueprintId"]
    emu.lighthouse.set_quota("ap-beijing", 1)
    emu.lighthouse.add_blueprint("there", Region="ap-beijing")
    sync = lambda: call(lighthouse(emu), "SyncBlueprint", BlueprintId=source, DestinationRegions=["ap-shanghai", "ap-beijing"])  # noqa: E731,E501
    assert error_code(sync) == "LimitExceeded.SyncBlueprintQuotaLimitExceeded"
    assert emu.lighthouse.blueprints("ap-shanghai") == []  # nothing copied when one destination is full
    emu.lighthouse.set_quota("ap-beijing", 2)
    sync()
    emu.advance(900)
    req_quota = call(lighthouse(emu, "ap-beijing"), "DescribeGeneralResourceQuotas", ResourceNames=["BLUEPRINT"])
    assert req_quota.GeneralResourceQuotaSet[0].ResourceQuotaAvailable == 0


def test_syncing_source_cannot_be_deleted_or_shared(emu: Emulator) -> None:
    lh = lighthouse(emu)
    source = emu.lighthouse.add_blueprint("bp")["BlueprintId"]
    call(lh, "SyncBlueprint", BlueprintId=source, DestinationRegions=["ap-shanghai"])
    assert error_code(lambda: call(lh, "DeleteBlueprints", BlueprintIds=[source])) == (
        "UnsupportedOperation.BlueprintCurStateInvalid"
    )
    share = lambda: call(lh, "ShareBlueprintAcrossAccounts", BlueprintId=source, AccountIds=[OTHER_UIN])  # noqa: E731
    assert error_code(share) == "UnsupportedOperation.BlueprintCurStateInvalid"


def test_share_is_visible_to_the_other_account_only_read_only(emu: Emulator) -> None:
    mine = lighthouse(emu)
    theirs = lighthouse(emu, secret_id=OTHER_ID, secret_key=OTHER_KEY)
    shared = emu.lighthouse.add_blueprint("shared", Tags=[{"Key": "k", "Value": "v"}])["BlueprintId"]
    private = emu.lighthouse.add_blueprint("private")["BlueprintId"]
    call(mine, "ShareBlueprintAcrossAccounts", BlueprintId=shared, AccountIds=[OTHER_UIN])
    seen = call(theirs, "DescribeBlueprints", Filters=[{"Name": "blueprint-type", "Values": ["SHARED", "PRIVATE"]}])
    assert [(bp.BlueprintId, bp.BlueprintType, bp.Tags) for bp in seen.BlueprintSet] == [(shared, "SHARED", [])]
    assert call(mine, "DescribeBlueprints", BlueprintIds=[shared]).BlueprintSet[0].BlueprintShared is True
    assert call(theirs, "DescribeInstances").TotalCount == 0
    assert error_code(lambda: call(theirs, "DeleteBlueprints", BlueprintIds=[shared])) == (
        "UnsupportedOperation.NotSupportSharedBlueprint"
    )
    assert error_code(lambda: call(theirs, "DeleteBlueprints", BlueprintIds=[private])) == (
        "ResourceNotFound.BlueprintIdNotFound"
    )
    share = lambda: call(theirs, "ShareBlueprintAcrossAccounts", BlueprintId=shared, AccountIds=["100000000001"])  # noqa: E731
    assert error_code(share) == "ResourceNotFound.PrivateBlueprintNotFound"
    infos = call(mine, "DescribeBlueprintsShareAcrossAccountInfos", BlueprintIds=[shared, private])
    assert [(i.BlueprintId, i.AccountId) for i in infos.BlueprintShareAcrossAccountInfoSet] == [(shared, OTHER_UIN)]
    assert infos.BlueprintShareAcrossAccountInfoSet[0].CreatedTime.endswith("Z")


def test_cancel_share_and_delete_rules(emu: Emulator) -> None:
    lh = lighthouse(emu)
    bp_id = emu.lighthouse.add_blueprint("bp")["BlueprintId"]
    cancel = lambda: call(lh, "CancelShareBlueprintAcrossAccounts", BlueprintId=bp_id, AccountIds=[OTHER_UIN])  # noqa: E731
    assert error_code(cancel) == "UnsupportedOperation.BlueprintHasNotShared"
    call(lh, "ShareBlueprintAcrossAccounts", BlueprintId=bp_id, AccountIds=[OTHER_UIN])
    assert error_code(lambda: call(lh, "DeleteBlueprints", BlueprintIds=[bp_id])) == (
        "UnsupportedOperation.BlueprintOccupied"
    )
    cancel()
    assert emu.lighthouse.shares(bp_id) == []
    assert call(lh, "DescribeBlueprints", BlueprintIds=[bp_id]).BlueprintSet[0].BlueprintShared is False
    theirs = lighthouse(emu, secret_id=OTHER_ID, secret_key=OTHER_KEY)
    shared = [{"Name": "blueprint-type", "Values": ["SHARED"]}]
    assert call(theirs, "DescribeBlueprints", Filters=shared).TotalCount == 0
    call(lh, "DeleteBlueprints", BlueprintIds=[bp_id])


def test_delete_of_shared_image_allowed_when_configured() -> None:
    with Emulator(rate_limits=False, allow_delete_shared=True) as emu:
        emu.lighthouse.add_account("300000000003")
        bp_id = emu.lighthouse.add_blueprint("bp")["BlueprintId"]
        lh = lighthouse(emu)
        call(lh, "ShareBlueprintAcrossAccounts", BlueprintId=bp_id, AccountIds=["300000000003"])
        call(lh, "DeleteBlueprints", BlueprintIds=[bp_id])
        assert emu.lighthouse.blueprints() == []


@pytest.mark.parametrize(
    ("accounts", "code"),
    [
        (["100000000001"], "InvalidParameterValue.AccountIdSameWithUin"),
        (["999999999999"], "InvalidParameterValue.AccountIdsNotExist"),
        (["not-digits"], "InvalidParameterValue.AccountIdsNotExist"),
        (["400000000004"], "InvalidParameterValue.AccountIdsNotOwnerAccount"),
        ([OTHER_UIN, OTHER_UIN], "InvalidParameterValue.Duplicated"),
        ([str(500000000000 + i) for i in range(11)], "InvalidParameterValue.LimitExceeded"),
    ],
)
def test_share_refusals(emu: Emulator, accounts: list[str], code: str) -> None:
    emu.lighthouse.add_account("400000000004", main=False)
    bp_id = emu.lighthouse.add_blueprint("bp")["BlueprintId"]
    share = lambda: call(lighthouse(emu), "ShareBlueprintAcrossAccounts", BlueprintId=bp_id, AccountIds=accounts)  # noqa: E731
    assert error_code(share) == code
    assert emu.lighthouse.shares(bp_id) == []


def test_share_twice_and_share_quota() -> None:
    with Emulator(rate_limits=False, share_quota=2) as emu:
        for uin in ("300000000001", "300000000002", "300000000003"):
            emu.lighthouse.add_account(uin)
        bp_id = emu.lighthouse.add_blueprint("bp")["BlueprintId"]
        lh = lighthouse(emu)

        def share(*uins: str) -> Any:
            return call(lh, "ShareBlueprintAcrossAccounts", BlueprintId=bp_id, AccountIds=list(uins))

        share("300000000001")
        assert error_code(lambda: share("300000000001")) == "UnsupportedOperation.BlueprintAlreadyShared"
        assert error_code(lambda: share("300000000002", "300000000003")) == (
            "LimitExceeded.ShareBlueprintAcrossAccountQuotaLimitExceeded"
        )
        share("300000000002")
        assert emu.lighthouse.shares(bp_id) == ["300000000001", "300000000002"]


def test_share_infos_filters_and_paging(emu: Emulator) -> None:
    lh = lighthouse(emu)
    uins = [str(300000000000 + i) for i in range(4)]
    for uin in uins:
        emu.lighthouse.add_account(uin)
    bp_id = emu.lighthouse.add_blueprint("bp")["BlueprintId"]
    call(lh, "ShareBlueprintAcrossAccounts", BlueprintId=bp_id, AccountIds=uins)
    page = call(lh, "DescribeBlueprintsShareAcrossAccountInfos", BlueprintIds=[bp_id], Offset=1, Limit=2)
    assert (page.TotalCount, [i.AccountId for i in page.BlueprintShareAcrossAccountInfoSet]) == (4, uins[1:3])
    one = call(lh, "DescribeBlueprintsShareAcrossAccountInfos", BlueprintIds=[bp_id],
               Filters=[{"Name": "account-id", "Values": [uins[3]]}])
    assert [i.AccountId for i in one.BlueprintShareAcrossAccountInfoSet] == [uins[3]]
    too_many = [{"Name": "account-id", "Values": [*uins, "1", "2"]}]
    assert error_code(lambda: call(lh, "DescribeBlueprintsShareAcrossAccountInfos", BlueprintIds=[bp_id],
                                   Filters=too_many)) == "InvalidParameter.FilterValueLimitExceeded"
    assert error_code(lambda: call(lh, "DescribeBlueprintsShareAcrossAccountInfos", BlueprintIds=[bp_id],
                                   Limit=101)) == "InvalidParameterValue.OutOfRange"
    assert error_code(lambda: call(lh, "DescribeBlueprintsShareAcrossAccountInfos")) == "MissingParameter"


def test_other_account_images_and_instances_are_its_own(emu: Emulator) -> None:
    theirs = lighthouse(emu, secret_id=OTHER_ID, secret_key=OTHER_KEY)
    emu.lighthouse.add_instance("lhins-other001", OwnerUin=OTHER_UIN)
    bp_id = call(theirs, "CreateBlueprint", BlueprintName="theirs", InstanceId="lhins-other001").BlueprintId
    assert emu.lighthouse.blueprints()[-1]["OwnerUin"] == OTHER_UIN
    mine = lighthouse(emu)
    assert call(mine, "DescribeBlueprints", BlueprintIds=[bp_id]).TotalCount == 0
    assert error_code(lambda: call(mine, "CreateBlueprint", BlueprintName="x", InstanceId="lhins-other001")) == (
        "ResourceNotFound.InstanceIdNotFound"
    )
    assert [i.InstanceId for i in call(theirs, "DescribeInstances").InstanceSet] == ["lhins-other001"]


def test_inquire_price(emu: Emulator) -> None:
    lh = lighthouse(emu)
    price = call(lh, "InquirePriceCreateBlueprint", BlueprintCount=5).BlueprintPrice
    assert (price.OriginalBlueprintPrice, price.OriginalPrice, price.Discount, price.DiscountPrice) == (
        0.008, 0.04, 100, 0.04,
    )
    assert call(lh, "InquirePriceCreateBlueprint").BlueprintPrice.OriginalPrice == 0.008
    assert error_code(lambda: call(lh, "InquirePriceCreateBlueprint", BlueprintCount=0)) == "InvalidParameterValue"
    with Emulator(rate_limits=False, blueprint_price=0.5, blueprint_discount=80) as other:
        cheap = call(lighthouse(other), "InquirePriceCreateBlueprint", BlueprintCount=2).BlueprintPrice
        assert (cheap.OriginalPrice, cheap.DiscountPrice) == (1.0, 0.8)


def test_faults_calls_and_state_for_the_new_actions(emu: Emulator) -> None:
    bp_id = emu.lighthouse.add_blueprint("bp")["BlueprintId"]
    emu.faults.fail("SyncBlueprint", "FailedOperation.UnableToSyncBlueprint")
    sync = lambda: call(lighthouse(emu), "SyncBlueprint", BlueprintId=bp_id, DestinationRegions=["ap-shanghai"])  # noqa: E731
    assert error_code(sync) == "FailedOperation.UnableToSyncBlueprint"
    assert states(emu, bp_id) == ["NORMAL"]
    sync()
    assert [c.error for c in emu.calls_of("SyncBlueprint")] == ["FailedOperation.UnableToSyncBlueprint", None]
    state = requests.get(emu.url + "/_emulator/state", timeout=5).json()
    assert {bp["BlueprintId"]: bp["BlueprintState"] for bp in state["blueprints"]}[bp_id] == "SYNCING"
    assert state["accounts"] == {"100000000001": True, OTHER_UIN: True}


def test_documented_rate_limits_apply() -> None:
    with Emulator() as emu:
        lh = lighthouse(emu)
        codes = [error_code(lambda: call(lh, "SyncBlueprint", BlueprintId="bad", DestinationRegions=["x"]))
                 for _ in range(21)]
        assert codes.count("RequestLimitExceeded") == 1 and codes[-1] == "RequestLimitExceeded"
