"""An outsider's attack on two changes: a fleet reads its regions' data disks beside the instance listing (issue
18, `DiskSteps.listing`), and BLUEPRINT_CONCURRENCY defaults to 20 with as many kept-alive connections per SDK
client. What a run protects (points, Unprotected lists, errors) must be what asking by instance id gave."""

from __future__ import annotations

from typing import Any

import pytest

from blueprint import protect
from blueprint.localrun import Answer
from tests.conftest import EmuClock, context, timer_event
from tests.functional.test_chained_calls import deliver_all
from tests.functional.test_data_disks import DB, DB_DISKS, WEB, WEB_DISK

DAILY = [{"Key": "backup", "Value": "daily"}]
GZ, SH = "ap-guangzhou", "ap-shanghai"
FLEET: dict[str, Any] = {"Selector": {"Regions": [GZ], "Tags": DAILY}, "ForcePowerOff": False}
BOTH: dict[str, Any] = {"Selector": {"Regions": [GZ, SH], "Tags": DAILY}, "ForcePowerOff": False}
# Attached to instances outside the fleet (untagged): in the regions' listings, never protected.
STRANGER_DISK, SH_STRANGER_DISK = "lhdisk-stranger", "lhdisk-shstrang"
# The fleet's instance in Shanghai (sample state) and its data disk.
SH_INSTANCE, SH_DISK = "lhins-sh000001", "lhdisk-shdata01"
FLEET_DISKS = sorted([WEB_DISK, *DB_DISKS])


@pytest.fixture
def app(make_app, emu):
    add_strangers(emu)
    return make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS=None)


def add_strangers(emu) -> None:
    """A data disk in each region on an untagged instance, and the fleet's Shanghai instance's data disk."""
    emu.lighthouse.add_disk(STRANGER_DISK, InstanceId="lhins-stop0001", DiskBackupQuota=3)
    emu.lighthouse.add_instance("lhins-shother1", Region=SH, InstanceName="sh-other", Tags=[])
    emu.lighthouse.add_disk(SH_STRANGER_DISK, Region=SH, InstanceId="lhins-shother1", DiskBackupQuota=3)
    emu.lighthouse.add_disk(SH_DISK, Region=SH, InstanceId=SH_INSTANCE, DiskBackupQuota=3)


def disk_calls(emu) -> list[tuple[str | None, frozenset[str]]]:
    """Each DescribeDisks call's region and filter names, in order."""
    return [(c.region, frozenset(f["Name"] for f in c.params.get("Filters", [])))
            for c in emu.calls_of("DescribeDisks")]


LISTING, BY_ID = frozenset({"disk-usage"}), frozenset({"instance-id", "disk-usage"})


def point_disks(emu) -> list[str]:
    """The disks with backup points, every region."""
    return sorted(p["DiskId"] for p in emu.lighthouse.disk_backups())


def protected(answer: dict[str, Any]) -> dict[str, tuple[list[str], list[str], str | None]]:
    """Per instance: the disks with a point, the Unprotected list, and the error code."""
    return {r["InstanceId"]: (sorted(p["DiskId"] for p in r.get("DiskBackups", [])), sorted(r.get("Unprotected", [])),
                              r.get("Error", {}).get("Code")) for r in answer["Results"]}


def run(app, job: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    answer: dict[str, Any] = app.handle(timer_event(job, **kwargs), context())
    return answer


ALL_PROTECTED = {WEB: ([WEB_DISK], [], None), DB: (DB_DISKS, [], None)}


# ---- what gets a point --------------------------------------------------------------------------------------

def test_two_regions_each_list_once_and_only_the_fleets_disks_get_points(app, emu) -> None:
    answer = run(app, BOTH)
    assert sorted(disk_calls(emu)) == [(GZ, LISTING), (SH, LISTING)]
    assert protected(answer) == {**ALL_PROTECTED, SH_INSTANCE: ([SH_DISK], [], None)}
    assert point_disks(emu) == sorted([*FLEET_DISKS, SH_DISK])  # no stranger's disk, in either region


@pytest.mark.parametrize(("most", "asked"), [(5, [LISTING]), (4, [LISTING, BY_ID])])
def test_the_limit_counts_the_regions_data_disks_and_is_inclusive(app, emu, monkeypatch, most, asked) -> None:
    """Guangzhou holds 5 data disks (4 attached, 1 spare): at most 5 the listing serves, at most 4 it does not."""
    monkeypatch.setattr(protect, "PREFETCH_MOST", most)
    answer = run(app, FLEET)
    assert [f for _, f in disk_calls(emu)] == asked
    assert protected(answer) == ALL_PROTECTED and point_disks(emu) == FLEET_DISKS


def test_one_region_over_the_limit_asks_by_id_the_other_uses_its_listing(app, emu, monkeypatch) -> None:
    monkeypatch.setattr(protect, "PREFETCH_MOST", 4)  # Guangzhou 5, Shanghai 2
    answer = run(app, BOTH)
    assert sorted(disk_calls(emu)) == sorted([(GZ, LISTING), (GZ, BY_ID), (SH, LISTING)])
    assert protected(answer) == {**ALL_PROTECTED, SH_INSTANCE: ([SH_DISK], [], None)}
    assert point_disks(emu) == sorted([*FLEET_DISKS, SH_DISK])


def test_a_disk_moved_between_runs_follows_its_instance(app, emu) -> None:
    """The spare disk attached to web-1, one of db-1's detached, between two warm runs: the second run's
    listing is its own."""
    run(app, FLEET)
    emu.advance(120)
    emu.lighthouse.attach_disk("lhdisk-spare001", WEB)
    emu.lighthouse.attach_disk(DB_DISKS[1], None)
    emu.lighthouse.attach_disk(STRANGER_DISK, DB)  # a stranger's disk moved into the fleet
    answer = run(app, FLEET, time_="2026-11-28T03:00:00Z")
    assert protected(answer) == {WEB: (sorted(["lhdisk-spare001", WEB_DISK]), [], None),
                                 DB: (sorted([DB_DISKS[0], STRANGER_DISK]), [], None)}


@pytest.mark.parametrize(("chosen", "expected"), [
    ("none", {WEB: ([], [WEB_DISK], None), DB: ([], DB_DISKS, None)}),
    ([DB_DISKS[0]], {WEB: ([], [WEB_DISK], None), DB: ([DB_DISKS[0]], [DB_DISKS[1]], None)}),
    ("all", ALL_PROTECTED),
])
def test_data_disks_choices_with_a_selector(app, emu, chosen, expected) -> None:
    answer = run(app, {**FLEET, "DataDisks": chosen})
    assert protected(answer) == expected
    assert point_disks(emu) == sorted(d for p, _, _ in expected.values() for d in p)


@pytest.mark.parametrize("chosen", ["none", [DB_DISKS[0]], "all", None])
@pytest.mark.parametrize("power_off", [True, False])
def test_a_dry_run_of_a_selector_says_what_the_same_instances_by_id_say(app, emu, chosen, power_off) -> None:
    """Prices, Kept figures, DiskBackups and Unprotected of the listing's dry run are those of the by-id one."""
    run(app, {"InstanceIds": [WEB, DB], "ForcePowerOff": False}, time_="2026-11-26T03:00:00Z")  # one image each
    emu.advance(120)
    job = {"DryRun": True, "Keep": 2, "ForcePowerOff": power_off, **({"DataDisks": chosen} if chosen else {})}
    calls = len(emu.calls_of("DescribeDisks"))
    by_selector = run(app, {**job, "Selector": FLEET["Selector"]})
    assert next(f for _, f in disk_calls(emu)[calls:]) == LISTING  # the selector's own listing served it
    by_ids = run(app, {**job, "InstanceIds": [WEB, DB]})

    def shape(answer: dict[str, Any]) -> list[dict[str, Any]]:
        return sorted(({k: v for k, v in r.items() if k != "RequestId"} for r in answer["Results"]),
                      key=lambda r: r["InstanceId"])

    assert shape(by_selector) == shape(by_ids)
    assert all(r["Kept"].get("DiskBackups") or chosen == "none" or r["InstanceId"] == WEB
               for r in by_selector["Results"])


def test_force_power_off_with_a_selector_stops_first_and_powers_on_once(app, emu) -> None:
    answer = run(app, {**FLEET, "ForcePowerOff": True})
    assert protected(answer) == ALL_PROTECTED
    for result in answer["Results"]:
        assert result["Consistency"] == "power-off" and result["InstanceRestarted"] is True
    [stop] = emu.calls_of("StopInstances")
    assert all(stop.time <= c.time for c in emu.calls_of("CreateDiskBackup") + emu.calls_of("CreateBlueprint"))
    for instance in (WEB, DB):
        history = [state for _, state in emu.lighthouse.state_history(instance)]
        stopped_at = history.index("STOPPED")
        assert "RUNNING" not in history[stopped_at:history.index("RUNNING", stopped_at)]  # one power cycle
        assert emu.lighthouse.instance(instance)["InstanceState"] == "RUNNING"


def test_wait_with_a_selector_follows_images_and_points_to_normal(app, emu) -> None:
    answer = run(app, {**FLEET, "Wait": True})
    assert protected(answer) == ALL_PROTECTED
    assert {r["State"] for r in answer["Results"]} == {"NORMAL"}
    assert {p["State"] for r in answer["Results"] for p in r["DiskBackups"]} == {"NORMAL"}


# ---- faults on the listing ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("fault", "asked"), [
    ("fail-once", [LISTING, LISTING]),                 # retried: the second answer serves
    ("fail-always", [LISTING] * 4 + [BY_ID]),          # every retry fails: asked by id
    ("denied", [LISTING, BY_ID]),                      # not retryable: asked by id at once
    ("drop-after", [LISTING, LISTING]),                # the answer lost (a read: nothing took effect)
    ("throttled", [LISTING, LISTING]),
])
def test_a_listing_fault_protects_what_the_by_id_path_did(app, emu, fault, asked) -> None:
    if fault == "fail-once":
        emu.faults.fail("DescribeDisks", "InternalError")
    elif fault == "fail-always":
        emu.faults.fail("DescribeDisks", "InternalError", times=4)
    elif fault == "denied":
        emu.faults.fail("DescribeDisks", "UnauthorizedOperation")
    elif fault == "drop-after":
        emu.faults.drop("DescribeDisks", after=True)
    else:
        emu.faults.fail("DescribeDisks", "RequestLimitExceeded")
    answer = run(app, FLEET)
    calls = [f for _, f in disk_calls(emu)]
    assert calls[:len(asked) - 1] == asked[:-1] and calls[-1] == asked[-1], calls
    assert protected(answer) == ALL_PROTECTED and point_disks(emu) == FLEET_DISKS


def test_a_listing_and_its_by_id_fallback_both_failing_report_unprotected_as_before(app, emu) -> None:
    """Without any disk read, the images are still made and each result says its disks were not protected."""
    emu.faults.fail("DescribeDisks", "UnauthorizedOperation", times=2)
    answer = run(app, FLEET)
    assert [f for _, f in disk_calls(emu)] == [LISTING, BY_ID]
    assert all(r["BlueprintId"] for r in answer["Results"])
    assert {r.get("Error", {}).get("Code") for r in answer["Results"]} == {"FailedOperation.DiskBackupFailed"}
    assert point_disks(emu) == []


def test_a_slow_listing_is_waited_for_and_used(app, emu) -> None:
    emu.faults.delay("DescribeDisks", 0.3, times=1)
    answer = run(app, FLEET)
    assert [f for _, f in disk_calls(emu)] == [LISTING]
    assert protected(answer) == ALL_PROTECTED


def test_the_same_timer_event_again_makes_no_second_point(app, emu) -> None:
    first = run(app, FLEET)
    again = run(app, FLEET)
    assert protected(first) == protected(again) == ALL_PROTECTED
    assert point_disks(emu) == FLEET_DISKS and len(emu.calls_of("CreateDiskBackup")) == 3


def test_a_second_warm_container_at_once_makes_no_second_point(make_app, emu) -> None:
    add_strangers(emu)
    apps = [make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS=None) for _ in range(2)]
    answers = [run(a, FLEET) for a in apps]
    assert all(protected(a) == ALL_PROTECTED for a in answers)
    assert point_disks(emu) == FLEET_DISKS


# ---- fan-out ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", [{"threshold": "1"}, {"dispatch": "invoke"}, {"max": "3", "threshold": "2"}])
def test_a_fan_out_parent_lists_no_disks_and_each_child_protects_its_own(make_app, emu, how) -> None:
    add_strangers(emu)
    emu.scf.add_function("lighthouse-blueprint")
    env = {"BLUEPRINT_DISPATCH_THRESHOLD": how.get("threshold", "100"), "BLUEPRINT_MAX_INSTANCES": how.get("max", "50")}
    app = make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS=None, **env)
    job = {**BOTH, **({"Dispatch": how["dispatch"]} if "dispatch" in how else {})}
    answer = run(app, job)
    assert answer["Dispatched"] >= 2
    assert disk_calls(emu) == []  # the parent read nothing its children read again
    children = deliver_all(app, emu)
    assert all(f == BY_ID for _, f in disk_calls(emu))
    merged = {k: v for child in children for k, v in protected(child).items()}
    assert merged == {**ALL_PROTECTED, SH_INSTANCE: ([SH_DISK], [], None)}
    assert point_disks(emu) == sorted([*FLEET_DISKS, SH_DISK])


def test_a_policy_limit_at_the_threshold_runs_inline_and_lists(make_app, emu) -> None:
    """MaxInstances equal to the threshold: the run surely stays here, so the listing serves it."""
    add_strangers(emu)
    app = make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS=None, BLUEPRINT_DISPATCH_THRESHOLD="3",
                   BLUEPRINT_MAX_INSTANCES="3")
    answer = run(app, BOTH)
    assert answer.get("Dispatched", 0) == 0
    assert sorted(disk_calls(emu)) == [(GZ, LISTING), (SH, LISTING)]
    assert protected(answer) == {**ALL_PROTECTED, SH_INSTANCE: ([SH_DISK], [], None)}


# ---- concurrency --------------------------------------------------------------------------------------------

def add_tagged(emu, count: int, *, disks: bool) -> list[str]:
    emu.lighthouse.set_quota(GZ, 500)
    ids = [f"lhins-c{n:07d}" for n in range(count)]
    for n, instance in enumerate(ids):
        emu.lighthouse.add_instance(instance, InstanceName=f"c-{n}", Tags=[{"Key": "tier", "Value": "c"}])
        if disks:
            emu.lighthouse.add_disk(f"lhdisk-c{n:07d}", InstanceId=instance, DiskBackupQuota=3)
    return ids


TIER = {"Selector": {"Regions": [GZ], "Tags": [{"Key": "tier", "Value": "c"}]}}


@pytest.mark.parametrize("concurrency", [None, "1", "64"])
def test_a_power_off_fleet_with_disks_keeps_its_connections(make_app, emu, caplog, concurrency) -> None:
    ids = add_tagged(emu, 24, disks=True)
    emu.latency = 0.02
    # No webhook: its own session is another pool (test_a_fleets_webhook_deliveries_keep_their_connections).
    app = make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS=None, BLUEPRINT_CONCURRENCY=concurrency,
                   BLUEPRINT_MAX_INSTANCES="100", BLUEPRINT_WEBHOOK_URL=None)
    with caplog.at_level("WARNING", logger="urllib3.connectionpool"):
        answer = run(app, {**TIER, "ForcePowerOff": True})
    assert sorted(r["InstanceId"] for r in answer["Results"]) == ids
    assert all("Error" not in r and len(r["DiskBackups"]) == 1 for r in answer["Results"]), answer
    # One create per instance, plus a retry for each the cloud refused (under a loaded machine's timing, a
    # throttle or a still-stopping instance can be answered): never a second image.
    creates = emu.calls_of("CreateBlueprint")
    assert len(emu.calls_of("StopInstances")) == 1 and len(creates) == 24 + len([c for c in creates if c.error])
    assert len(emu.lighthouse.blueprints(GZ)) == 24
    assert [r.getMessage() for r in caplog.records if "pool is full" in r.getMessage()] == []


def test_throttled_creates_are_retried_without_a_second_image(make_app, emu) -> None:
    ids = add_tagged(emu, 20, disks=False)
    emu.faults.fail("CreateBlueprint", "RequestLimitExceeded", times=6)
    app = make_app(clock=EmuClock(emu), BLUEPRINT_MAX_INSTANCES="100")
    answer = run(app, {**TIER, "ForcePowerOff": False})
    assert sorted(r["InstanceId"] for r in answer["Results"]) == ids
    assert all("Error" not in r for r in answer["Results"]), answer
    made = emu.lighthouse.blueprints(GZ)
    assert len(made) == 20  # one image per instance


@pytest.mark.parametrize(("concurrency", "batches"), [("1", 5), ("2", 3), ("64", 1), (None, 1)])
def test_commands_go_in_batches_of_the_concurrency(make_app, emu, concurrency, batches) -> None:
    add_tagged(emu, 5, disks=False)
    app = make_app(clock=EmuClock(emu), BLUEPRINT_CONCURRENCY=concurrency, BLUEPRINT_MAX_INSTANCES="100",
                   BLUEPRINT_FORCE_POWER_OFF="false", BLUEPRINT_PRE_COMMAND="sync", BLUEPRINT_POST_COMMAND="true")
    answer = run(app, TIER)
    assert len(answer["Results"]) == 5 and {r["Consistency"] for r in answer["Results"]} == {"commands"}
    assert all(r["BlueprintId"] for r in answer["Results"])
    assert len(emu.calls_of("RunCommand")) == 2 * batches


def test_a_fleets_webhook_deliveries_keep_their_connections(make_app, emu, receiver, caplog) -> None:
    """DEFECT: a fleet's events go to the webhook 16 at a time (sinks.PARALLEL_SENDS) over one requests.Session
    that keeps 10 connections: the other 6 are opened (TLS-handshaked) and discarded, each with a urllib3
    warning. Expected: no 'pool is full' warning, as for the SDK clients since BLUEPRINT_CONCURRENCY=20."""
    add_tagged(emu, 40, disks=False)
    receiver.then(*[Answer(delay=0.05) for _ in range(41)])  # a webhook that takes 50 ms: the sends overlap
    app = make_app(clock=EmuClock(emu), BLUEPRINT_MAX_INSTANCES="100")
    with caplog.at_level("WARNING", logger="urllib3.connectionpool"):
        answer = run(app, {**TIER, "ForcePowerOff": False})
    assert len(answer["Results"]) == 40 and all("Error" not in r for r in answer["Results"])
    assert [r.getMessage() for r in caplog.records if "pool is full" in r.getMessage()] == []
