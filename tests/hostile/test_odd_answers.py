"""Answers read as plain JSON (`blueprint.cloud.call_json`) are the cloud's word, not a model's: an answer
whose fields have odd types or odd entries (a proxy, a new API version, a bug) must not crash a run, make a
second image, or delete what the function did not make. Each is served once (the emulator's `garble` fault
with a body of our own) where the timer's run reads it, before and after the call took effect."""

from __future__ import annotations

import orjson
import pytest

from blueprint.images import INSTANCE_TAG, SLOT_TAG
from tests.conftest import EmuClock, context, received_events, timer_event

JOB = {"InstanceId": "lhins-web00001", "Keep": 2}
ODD_ROWS = [1, "x", None, [], {"BlueprintId": None}, {"BlueprintId": ""},
            {"BlueprintId": 5, "Tags": "no", "CreatedTime": 7, "BlueprintState": None},
            {"BlueprintId": "lhbp-odd00001", "Tags": [{"Key": 5, "Value": 6}, "t", {"Value": "v"}],
             "CreatedTime": "not a time", "BlueprintType": "PRIVATE", "BlueprintShared": "yes"}]
ODD_LISTINGS = {
    "junk rows": {"TotalCount": 9, "BlueprintSet": ODD_ROWS, "RequestId": "r-odd"},
    "total a string": {"TotalCount": "500", "BlueprintSet": [], "RequestId": "r-odd"},
    "total huge, no rows": {"TotalCount": 10**12, "BlueprintSet": [], "RequestId": "r-odd"},
    "set not a list": {"TotalCount": 1, "BlueprintSet": {"BlueprintId": "lhbp-odd00001"}, "RequestId": "r-odd"},
    "nothing": {},
}


def _body(answer: dict) -> bytes:
    return orjson.dumps({"Response": answer})


def images(emu) -> list[dict]:
    return [b for b in emu.lighthouse.blueprints() if {"Key": INSTANCE_TAG, "Value": JOB["InstanceId"]} in b["Tags"]]


@pytest.mark.parametrize("listing", list(ODD_LISTINGS))
@pytest.mark.parametrize("skip", [0, 1], ids=["slot lookup", "listing after creating"])
def test_an_odd_listing_costs_no_image_and_deletes_nothing_it_did_not_make(make_app, emu, receiver, listing: str,
                                                                           skip: int) -> None:
    # An image of another slot that retention may delete, and one the function did not make.
    app = make_app(clock=EmuClock(emu))
    app.handle(timer_event(JOB, time_="2026-11-26T03:00:00Z"), context())
    emu.advance(60)  # that image is made
    foreign = emu.lighthouse.blueprints()
    emu.faults.garble("DescribeBlueprints", skip=skip, body=_body(ODD_LISTINGS[listing]),
                      content_type="application/json")
    answer = app.handle(timer_event(JOB), context())
    result = answer["Results"][0]
    assert result["BlueprintId"] and "Error" not in result, answer
    slots = [b for b in images(emu) if b["BlueprintName"].endswith("20261127-030000")
             and any(t["Key"] == SLOT_TAG for t in b["Tags"])]
    assert len(slots) == 1  # one image for the slot, whatever the lookups said
    assert {b["BlueprintId"] for b in foreign} <= {b["BlueprintId"] for b in emu.lighthouse.blueprints()}
    assert all(e["type"].rsplit(".", 1)[-1] in ("created", "pruned") for e in received_events(receiver))


@pytest.mark.parametrize("answer", [{"BlueprintId": None, "RequestId": "r"}, {"BlueprintId": 7}, {}],
                         ids=["id null", "id a number", "empty"])
def test_an_odd_create_answer_after_the_image_was_made_reports_the_image_once(make_app, emu, receiver,
                                                                              answer: dict) -> None:
    emu.faults.garble("CreateBlueprint", after=True, body=_body(answer), content_type="application/json")
    result = make_app(clock=EmuClock(emu)).handle(timer_event(JOB), context())["Results"][0]
    assert len(images(emu)) == 1
    assert len(emu.calls_of("CreateBlueprint")) == 1
    # The listing after creating names the image the odd answer did not: the result reports the real one.
    assert result["BlueprintId"] == images(emu)[0]["BlueprintId"], result


@pytest.mark.parametrize("rows", [[None, 3, {"DiskId": None}], [{"DiskId": "lhdisk-odd00001", "InstanceId": 9,
                                                                "DiskBackupQuota": "x"}]],
                         ids=["junk rows", "odd types"])
def test_an_odd_disk_listing_costs_no_image(make_app, emu, rows: list) -> None:
    emu.faults.garble("DescribeDisks", body=_body({"TotalCount": 3, "DiskSet": rows, "RequestId": "r"}),
                      content_type="application/json")
    result = make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS="all").handle(timer_event(JOB), context())
    assert result["Results"][0]["BlueprintId"] and len(images(emu)) == 1, result
