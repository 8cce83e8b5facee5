"""Issue 18: a fleet's data disks are read beside its instance listing (one DescribeDisks of the region, no
instance ids needed), and only the fleet's own disks get points. A region with too many data disks, or a
listing that fails, falls back to asking by instance id, as before; a point is never made without it."""

from __future__ import annotations

from typing import Any

import pytest

from blueprint import protect
from tests.conftest import EmuClock, context, timer_event
from tests.functional.test_data_disks import DB_DISKS, WEB_DISK, points

DAILY = [{"Key": "backup", "Value": "daily"}]
FLEET = {"Selector": {"Regions": ["ap-guangzhou"], "Tags": DAILY}, "ForcePowerOff": False}
# Attached to the untagged instance: in the region's listing, never in the fleet.
STRANGER_DISK = "lhdisk-stranger"


@pytest.fixture
def app(make_app, emu):
    emu.lighthouse.add_disk(STRANGER_DISK, InstanceId="lhins-stop0001", DiskBackupQuota=3)
    return make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS=None)


def disk_filters(emu) -> list[set[str]]:
    """The filter names of each DescribeDisks call, in order."""
    return [{f["Name"] for f in c.params.get("Filters", [])} for c in emu.calls_of("DescribeDisks")]


def point_disks(emu) -> list[str]:
    return sorted(p["DiskId"] for p in points(emu))


def run_fleet(app) -> dict[str, Any]:
    answer = app.handle(timer_event(FLEET), context())
    assert all("Error" not in r for r in answer["Results"]), answer
    return answer  # type: ignore[no-any-return]


def test_a_fleets_disks_are_read_once_beside_its_listing_and_only_its_own_get_points(app, emu) -> None:
    answer = run_fleet(app)
    assert disk_filters(emu) == [{"disk-usage"}]  # the region's data disks, no instance ids, and nothing after
    assert point_disks(emu) == sorted([WEB_DISK, *DB_DISKS])  # not the stranger's disk
    assert {r["InstanceId"] for r in answer["Results"]} == {"lhins-web00001", "lhins-db000001"}


def test_the_listing_is_used_by_its_own_run_only(app, emu) -> None:
    run_fleet(app)
    emu.advance(120)  # yesterday's points are done
    emu.lighthouse.add_disk("lhdisk-webnew01", InstanceId="lhins-web00001", DiskBackupQuota=3)
    answer = app.handle(timer_event(FLEET, time_="2026-11-28T03:00:00Z"), context())
    assert len(disk_filters(emu)) == 2  # the second run read the region again
    web = next(r for r in answer["Results"] if r["InstanceId"] == "lhins-web00001")
    assert sorted(p["DiskId"] for p in web["DiskBackups"]) == sorted(["lhdisk-webnew01", WEB_DISK])


def test_a_region_with_more_data_disks_than_a_listing_reads_is_asked_by_instance(app, emu, monkeypatch) -> None:
    monkeypatch.setattr(protect, "PREFETCH_MOST", 2)  # the region has 5 attached data disks
    run_fleet(app)
    assert disk_filters(emu) == [{"disk-usage"}, {"instance-id", "disk-usage"}]
    assert point_disks(emu) == sorted([WEB_DISK, *DB_DISKS])


@pytest.mark.parametrize("fault", ["fail", "drop"])
def test_a_listing_that_fails_is_asked_again_by_instance_and_the_points_are_made(app, emu, fault) -> None:
    if fault == "fail":
        emu.faults.fail("DescribeDisks", "UnauthorizedOperation")
    else:
        emu.faults.drop("DescribeDisks", times=4)  # every retry of the listing is lost; the run asks again
    run_fleet(app)
    assert disk_filters(emu)[-1] == {"instance-id", "disk-usage"}
    assert point_disks(emu) == sorted([WEB_DISK, *DB_DISKS])


def test_a_fan_out_parent_reads_no_disks_its_children_read_again(make_app, emu) -> None:
    emu.scf.add_function("lighthouse-blueprint")
    parent = make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS=None, BLUEPRINT_DISPATCH_THRESHOLD="1")
    answer = parent.handle(timer_event(FLEET), context())
    assert answer["Dispatched"] == 2
    assert emu.calls_of("DescribeDisks") == []


def test_an_explicit_inline_fleet_reads_its_disks_beside_the_listing(make_app, emu) -> None:
    app = make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS=None, BLUEPRINT_DISPATCH_THRESHOLD="1")
    answer = app.handle(timer_event({**FLEET, "Dispatch": "inline"}), context())
    assert "Dispatched" not in answer or answer["Dispatched"] == 0
    assert disk_filters(emu) == [{"disk-usage"}]
    assert point_disks(emu) == sorted([WEB_DISK, *DB_DISKS])


def test_every_region_is_not_listed_for_disks_a_fleet_never_has(app, emu) -> None:
    answer = app.handle(timer_event({**FLEET, "Selector": {"Regions": ["*"], "Tags": DAILY}}), context())
    assert all("Error" not in r for r in answer["Results"]), answer
    # "*": the regions' disks are asked by instance id, after the listing, only where the fleet has instances.
    assert all(f == {"instance-id", "disk-usage"} for f in disk_filters(emu))
    assert {c.region for c in emu.calls_of("DescribeDisks")} == {"ap-guangzhou", "ap-shanghai"}
    assert point_disks(emu) == sorted([WEB_DISK, *DB_DISKS])
