"""The Tag service slice through the real SDK: tagging existing Lighthouse images, disks and backup points."""

from __future__ import annotations

from typing import Any

import pytest
from emu_helpers import call, error_code, lighthouse, signed_post, tag

from emulator import Emulator

UIN = "100000000001"
CVM = "qcs::cvm:ap-guangzhou:uin/100000000001:instance/ins-1"


def name(resource_id: str, prefix: str = "blueprint", region: str = "ap-guangzhou", uin: str = UIN) -> str:
    return f"qcs::lighthouse:{region}:uin/{uin}:{prefix}/{resource_id}"


def tags(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"TagKey": key, "TagValue": value} for key, value in pairs]


def test_tag_a_copy_then_find_it_with_lighthouse_filters(emu: Emulator, lh: Any) -> None:
    copy_id = emu.lighthouse.add_blueprint("copy", Tags=[{"Key": "keep", "Value": "me"}])["BlueprintId"]
    answer = call(tag(emu), "TagResources", ResourceList=[name(copy_id)],
                  Tags=tags(("scf-blueprint:instance", "lhins-web00001"), ("keep", "changed")))
    assert answer.FailedResources == []
    by_key = [{"Name": "tag-key", "Values": ["scf-blueprint:instance"]}]
    [bp] = call(lh, "DescribeBlueprints", Filters=by_key).BlueprintSet
    assert {(t.Key, t.Value) for t in bp.Tags} == {("keep", "changed"), ("scf-blueprint:instance", "lhins-web00001")}
    call(tag(emu), "UnTagResources", ResourceList=[name(copy_id)], TagKeys=["keep"])
    assert emu.lighthouse.blueprints()[0]["Tags"] == [{"Key": "scf-blueprint:instance", "Value": "lhins-web00001"}]


def test_get_resources_by_name_and_by_filter(emu: Emulator) -> None:
    client = tag(emu)
    call(client, "TagResources", ResourceList=[name("lhdisk-webdata1", "disk"), name("lhins-web00001", "instance")],
         Tags=tags(("team", "web")))
    backup_id = emu.lighthouse.add_disk_backup("lhdisk-webdata1")["DiskBackupId"]
    call(client, "TagResources", ResourceList=[name(backup_id, "disk-backup")], Tags=tags(("team", "db")))
    listed = call(client, "GetResources", ResourceList=[name("lhdisk-webdata1", "disk")]).ResourceTagMappingList
    assert [(m.Resource, [(t.TagKey, t.TagValue) for t in m.Tags]) for m in listed] == [
        (name("lhdisk-webdata1", "disk"), [("team", "web")])
    ]
    found = call(client, "GetResources", TagFilters=[{"TagKey": "team", "TagValue": ["web"]}], MaxResults=1)
    assert [m.Resource for m in found.ResourceTagMappingList] == [name("lhins-web00001", "instance")]
    rest = call(client, "GetResources", TagFilters=[{"TagKey": "team", "TagValue": ["web"]}],
                PaginationToken=found.PaginationToken)
    assert [m.Resource for m in rest.ResourceTagMappingList] == [name("lhdisk-webdata1", "disk")]
    assert rest.PaginationToken == ""
    any_team = call(client, "GetResources", TagFilters=[{"TagKey": "team"}]).ResourceTagMappingList
    assert len(any_team) == 3


def test_failed_resources_are_reported_not_raised(emu: Emulator) -> None:
    bp_id = emu.lighthouse.add_blueprint("bp")["BlueprintId"]
    answer = call(tag(emu), "TagResources", Tags=tags(("k", "v")), ResourceList=[
        name(bp_id), name("lhbp-nothere1"), name(bp_id, uin="200000000002"), name(bp_id, region="ap-shanghai"),
    ])
    assert [(f.Resource, f.Code) for f in answer.FailedResources] == [
        (name("lhbp-nothere1"), "ResourceNotFound"),
        (name(bp_id, uin="200000000002"), "AuthFailure.UnauthorizedOperation"),
        (name(bp_id, region="ap-shanghai"), "ResourceNotFound"),
    ]
    assert emu.lighthouse.blueprints()[0]["Tags"] == [{"Key": "k", "Value": "v"}]


@pytest.mark.parametrize(
    ("resources", "pairs", "code"),
    [
        (["qcs::lighthouse:broken"], [("k", "v")], "InvalidParameterValue.ResourceDescriptionError"),
        ([CVM], [("k", "v")], "InvalidParameter.UnsupportedService"),
        ([name(f"lhbp-{i:08d}") for i in range(11)], [("k", "v")], "LimitExceeded.ResourceNumPerRequest"),
        (None, [(f"k{i}", "v") for i in range(11)], "LimitExceeded.TagNumPerRequest"),
        (None, [("qcs:owner", "v")], "InvalidParameter.ReservedTagKey"),
        (None, [("Project:x", "v")], "InvalidParameter.ReservedTagKey"),
        (None, [("", "v")], "InvalidParameterValue.TagKeyEmpty"),
        (None, [("k", "")], "InvalidParameterValue.TagValueEmpty"),
        (None, [("k" * 128, "v")], "InvalidParameterValue.TagKeyLengthExceeded"),
        (None, [("k", "v" * 256)], "InvalidParameterValue.TagValueLengthExceeded"),
        (None, [("bad#key", "v")], "InvalidParameterValue.TagKeyCharacterIllegal"),
        (None, [("k", " padded")], "InvalidParameterValue.TagValueCharacterIllegal"),
        (None, [("k", "a"), ("k", "b")], "InvalidParameterValue.TagKeyDuplicate"),
    ],
)
def test_tag_resources_refusals(
    emu: Emulator, resources: list[str] | None, pairs: list[tuple[str, str]], code: str
) -> None:
    bp_id = emu.lighthouse.add_blueprint("bp")["BlueprintId"]
    request = {"ResourceList": resources or [name(bp_id)], "Tags": tags(*pairs)}
    assert error_code(lambda: call(tag(emu), "TagResources", **request)) == code
    assert emu.lighthouse.blueprints()[0]["Tags"] == []


def test_no_region_needed_and_schema_errors(emu: Emulator) -> None:
    bp_id = emu.lighthouse.add_blueprint("bp")["BlueprintId"]
    body = {"ResourceList": [name(bp_id)], "Tags": tags(("k", "v"))}
    assert "Error" not in signed_post(emu, "TagResources", body, service="tag", region=None)
    bad = {"ResourceList": [name(bp_id)], "Tags": [{"Key": "k", "Value": "v"}]}
    assert signed_post(emu, "TagResources", bad, service="tag")["Error"]["Code"] == "UnknownParameter"
    assert signed_post(emu, "UnTagResources", {"ResourceList": [name(bp_id)]}, service="tag")["Error"]["Code"] == (
        "MissingParameter"
    )


def test_faults_calls_and_rate_limit() -> None:
    with Emulator() as emu:
        bp_id = emu.lighthouse.add_blueprint("bp")["BlueprintId"]
        emu.faults.fail("TagResources", "FailedOperation.ResourceTagProcessing")
        request = {"ResourceList": [name(bp_id)], "Tags": tags(("k", "v"))}
        assert error_code(lambda: call(tag(emu), "TagResources", **request)) == "FailedOperation.ResourceTagProcessing"
        codes = [error_code(lambda: call(tag(emu), "TagResources", ResourceList=["x"], Tags=tags(("k", "v"))))
                 for _ in range(21)]
        assert codes[-1] == "RequestLimitExceeded" and codes.count("RequestLimitExceeded") == 2
        assert [c.service for c in emu.calls_of("TagResources")] == ["tag"] * 22


def test_another_account_tags_its_own(lh: Any) -> None:
    with Emulator(rate_limits=False, credentials={"AKIDB": "b"}, accounts={"AKIDB": "200000000002"}) as emu:
        bp_id = emu.lighthouse.add_blueprint("theirs", OwnerUin="200000000002")["BlueprintId"]
        client = tag(emu, secret_id="AKIDB", secret_key="b")
        answer = call(client, "TagResources", ResourceList=[name(bp_id, uin="200000000002")], Tags=tags(("k", "v")))
        assert answer.FailedResources == []
        theirs = lighthouse(emu, secret_id="AKIDB", secret_key="b")
        assert call(theirs, "DescribeBlueprints", Filters=[{"Name": "tag:k", "Values": ["v"]}]).TotalCount == 1
