"""Garbled answers on the calls beyond the timer's own three (tests/functional/test_garbled_answers.py): every
Lighthouse call now goes by action name with plain JSON (`blueprint.cloud.call_json`), so each reads its answer
itself. Each call is hit where a flow of the function makes it, once before it acted (a proxy's page, a
`Response` that is null, or one that lacks the call's id fields) and once after it acted (`after=True`: it took
effect, its answer was mangled). A user expects no crash, no second resource (image, point, copy, share, reset),
nothing deleted that the function did not make, and results that name the real resources, never "None"."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import orjson
import pytest

from blueprint.copies import SOURCE_TAG
from blueprint.errors import BlueprintError
from blueprint.images import INSTANCE_TAG, SLOT_TAG
from tests.conftest import EmuClock, context, http_event, received_events, timer_event
from tests.hostile.conftest import LEAK

WEB, WEB_DISK = "lhins-web00001", "lhdisk-webdata1"
OTHER = "200000000002"
RESTORE_TOKEN = "restore-token-0123456789"
HTML = (b"<html><body>502 Bad Gateway</body></html>", "text/html")
NULL = (b'{"Response": null}', "application/json")
# An envelope without even a RequestId: the API never answers so (every answer carries one).
EMPTY = (b'{"Response": {}}', "application/json")


def bare(**fields: Any) -> tuple[bytes, str]:
    """The API's envelope with a RequestId and `fields` only: the call's own fields (ids, sets) left out."""
    return orjson.dumps({"Response": {"RequestId": "r-garbled", **fields}}), "application/json"


# Bugs these tests found and that are still open: each is a strict xfail naming it. The others they found
# (answers missing their lists, ids or RequestId read as "none") are fixed: those cases pass.
BODIES = {"html": HTML, "null": NULL, "empty": EMPTY, "bare": bare()}


def garble(emu, action: str, body: str, *, after: bool, skip: int = 0) -> None:
    """The answer garbled with `body`, or (`dropped`) the connection closed with no answer at all."""
    if body == "dropped":
        emu.faults.drop(action, after=after, skip=skip)
        return
    content, kind = BODIES[body]
    emu.faults.garble(action, after=after, body=content, content_type=kind, skip=skip)


def case(body: str, after: bool, *, xfail: str | None = None) -> Any:
    """One parametrized case: the garbled body, before or after the call acted (an xfail names the bug)."""
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    return pytest.param(body, after, id=f"{body}-{'after' if after else 'before'}", marks=marks)


class Hit(NamedTuple):
    """Which call is garbled, with what, before or after it acted, after how many untouched calls."""

    action: str
    body: str
    after: bool
    skip: int = 0


def hit(name: str, action: str, body: str, after: bool, skip: int = 0, *, xfail: str | None = None) -> Any:
    """A parametrized `Hit` (an xfail names the bug it shows)."""
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    return pytest.param(Hit(action, body, after, skip), id=name, marks=marks)


def run(app, event: dict[str, Any]) -> dict[str, Any]:
    """The function's answer; an error it raises must be one a retry can fix (SCF retries), without a leak."""
    try:
        answer: dict[str, Any] = app.handle(event, context())
    except BlueprintError as err:
        assert err.retryable, err
        assert not LEAK.search(err.message), err.message
        return {"Raised": err.code}
    return answer


def strings(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair of a JSON document, however deep."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def no_made_up_ids(*documents: Any) -> None:
    """No id in an answer or event is the text "None" or empty (a field the cloud left out, stringified)."""
    for document in documents:
        bad = [(k, v) for k, v in strings(document) if k.endswith("Id") and v in ("None", "")]
        assert not bad, bad


def tagged(item: dict[str, Any], key: str) -> str | None:
    return next((t["Value"] for t in item["Tags"] if t["Key"] == key), None)


def images(emu, region: str = "ap-guangzhou") -> list[dict[str, Any]]:
    return [b for b in emu.lighthouse.blueprints(region) if tagged(b, INSTANCE_TAG) == WEB and tagged(b, SLOT_TAG)]


def points(emu) -> list[dict[str, Any]]:
    return [p for p in emu.lighthouse.disk_backups("ap-guangzhou") if p["DiskId"] == WEB_DISK]


def events(receiver, kind: str) -> list[dict[str, Any]]:
    return [e for e in received_events(receiver) if e["type"].endswith(f".{kind}")]


def day(n: int) -> str:
    return f"2026-11-{n:02d}T03:00:00Z"


def earlier_days(make_app, emu, job: dict[str, Any], days: tuple[int, ...], **env: str | None) -> None:
    """The runs of earlier days, each a fresh container an hour before the next day's; the emulator's rate
    windows (1 s of real time) are cleared between them, as a day would."""
    for n in days:
        make_app(clock=EmuClock(emu), **env).handle(timer_event(job, time_=day(n)), context())
        emu.advance(3600)
        emu.limiter.reset()


# ---- DeleteBlueprints: retention ---------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "after"), [case("html", False), case("null", False), case(
    "html", True), case("empty", True), case("dropped", True)])
def test_retention_deletes_the_old_image_once_and_nothing_else(make_app, emu, receiver, body: str,
                                                               after: bool) -> None:
    users_own = emu.lighthouse.add_blueprint("users-own", Region="ap-guangzhou")["BlueprintId"]
    half_tagged = emu.lighthouse.add_blueprint("half", Region="ap-guangzhou",
                                               Tags=[{"Key": INSTANCE_TAG, "Value": WEB}])["BlueprintId"]
    earlier_days(make_app, emu, {"InstanceId": WEB, "Keep": 2}, (25, 26))
    oldest = min(images(emu), key=lambda b: b["CreatedTime"])["BlueprintId"]
    garble(emu, "DeleteBlueprints", body, after=after)
    answer = run(make_app(clock=EmuClock(emu)), timer_event({"InstanceId": WEB, "Keep": 2}, time_=day(27)))
    emu.advance(3600)
    left = {b["BlueprintId"] for b in emu.lighthouse.blueprints("ap-guangzhou")}
    assert oldest not in left and {users_own, half_tagged} <= left and len(images(emu)) == 2
    assert answer["Results"][0]["Pruned"] == [oldest], answer
    pruned = events(receiver, "pruned")
    assert [e["data"]["BlueprintId"] for e in pruned] == [oldest]
    no_made_up_ids(answer, pruned)


# ---- DescribeDiskBackups, CreateDiskBackup, DeleteDiskBackups: data-disk points -----------------------------



@pytest.mark.parametrize(("body", "after"), [
    case("html", False), case("null", False), case("html", True), case("null", True),
    case("bare", False), case("bare", True)])
def test_a_garbled_create_point_answer_makes_one_point_and_reports_it(make_app, emu, receiver, body: str,
                                                                      after: bool) -> None:
    garble(emu, "CreateDiskBackup", body, after=after)
    answer = run(make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS=None), timer_event({"InstanceId": WEB}))
    [point] = points(emu)
    assert tagged(point, SLOT_TAG) and len(images(emu)) == 1
    assert [p["DiskBackupId"] for p in answer["Results"][0]["DiskBackups"]] == [point["DiskBackupId"]], answer
    no_made_up_ids(answer, received_events(receiver))


@pytest.mark.parametrize(("body", "after"), [case("html", False), case("null", True), case("bare", False)])
def test_a_garbled_point_lookup_makes_no_second_point_for_the_slot(make_app, emu, receiver, body: str,
                                                                   after: bool) -> None:
    app = make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS=None)
    first = app.handle(timer_event({"InstanceId": WEB}), context())
    garble(emu, "DescribeDiskBackups", body, after=after)
    again = run(app, timer_event({"InstanceId": WEB}))  # SCF's retry of the same slot
    emu.advance(3600)
    assert len(points(emu)) == 1 and len(images(emu)) == 1
    if "Results" in again:
        assert again["Results"][0]["DiskBackups"] == first["Results"][0]["DiskBackups"], again
    no_made_up_ids(again)


@pytest.mark.parametrize(("body", "after"), [case("html", False), case("null", False), case(
    "html", True), case("empty", True), case("dropped", True)])
def test_point_retention_deletes_the_old_point_once_and_never_a_users_own(make_app, emu, receiver, body: str,
                                                                          after: bool) -> None:
    emu.lighthouse.set_disk_backup_quota(WEB_DISK, 5)
    users_own = emu.lighthouse.add_disk_backup(WEB_DISK)["DiskBackupId"]
    app = make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS=None)
    earlier_days(make_app, emu, {"InstanceId": WEB, "Keep": 2}, (25, 26), BLUEPRINT_DATA_DISKS=None)
    oldest = min((p for p in points(emu) if tagged(p, SLOT_TAG)), key=lambda p: p["CreatedTime"])["DiskBackupId"]
    garble(emu, "DeleteDiskBackups", body, after=after)
    answer = run(app, timer_event({"InstanceId": WEB, "Keep": 2}, time_=day(27)))
    emu.advance(3600)
    left = {p["DiskBackupId"] for p in points(emu)}
    assert oldest not in left and users_own in left and len(left) == 3
    assert answer["Results"][0]["PrunedDiskBackups"] == [oldest], answer
    no_made_up_ids(answer)


# ---- StopInstances, StartInstances, DescribeInstances: ForcePowerOff with data disks ------------------------

@pytest.mark.parametrize("attack", [
    hit("stop-html-before", "StopInstances", "html", False, 0),
    hit("stop-null-after", "StopInstances", "null", True, 0),
    hit("stop-empty-after", "StopInstances", "empty", True, 0),
    hit("start-html-before", "StartInstances", "html", False, 0),
    hit("start-null-after", "StartInstances", "null", True, 0),
    hit("start-dropped-after", "StartInstances", "dropped", True, 0),
    hit("describe-first-html", "DescribeInstances", "html", False, 0),
    hit("describe-first-bare", "DescribeInstances", "bare", False, 0),
    hit("describe-second-null", "DescribeInstances", "null", True, 1),
    hit("describe-second-bare", "DescribeInstances", "bare", False, 1),
    hit("describe-third-bare", "DescribeInstances", "bare", False, 2),
])
def test_a_power_cycle_with_a_garbled_answer_images_once_and_starts_the_instance(make_app, emu, receiver,
                                                                                 attack: Hit) -> None:
    garble(emu, attack.action, attack.body, after=attack.after, skip=attack.skip)
    answer = run(make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS=None),
                 timer_event({"InstanceId": WEB, "ForcePowerOff": True}))
    emu.advance(600)
    assert len(images(emu)) == 1 and len(points(emu)) == 1
    [backup] = [c for c in emu.calls_of("CreateDiskBackup") if c.error is None]
    power = [state for at, state in emu.lighthouse.state_history(WEB) if at <= backup.time]
    assert power[-1] == "STOPPED", "the point was made while the instance ran, in a power-off run"
    instance = emu.lighthouse.instance(WEB)
    assert instance is not None and instance["InstanceState"] == "RUNNING", instance
    result = answer["Results"][0]
    assert "Error" not in result and result["BlueprintId"] == images(emu)[0]["BlueprintId"], answer
    assert result["InstanceRestarted"] is True, result
    no_made_up_ids(answer)


# ---- SyncBlueprint and DescribeRegions: copies in another region -------------------------------------------

@pytest.fixture
def dr(emu):
    """A second mainland region for copies, and an account to share with."""
    emu.world.add_region("ap-shanghai")
    for region in ("ap-guangzhou", "ap-shanghai"):
        emu.lighthouse.set_quota(region, 50)
    emu.lighthouse.add_account(OTHER)
    return emu


def copies(emu) -> list[dict[str, Any]]:
    return emu.lighthouse.blueprints("ap-shanghai")




@pytest.mark.parametrize(("body", "after"), [
    case("html", False), case("null", False), case("html", True), case("null", True),
    case("bare", False), case("bare", True)])
def test_a_garbled_copy_answer_makes_one_copy_and_says_so(make_app, dr, receiver, body: str, after: bool) -> None:
    job = {"InstanceId": WEB, "CopyTo": ["ap-shanghai"]}
    users_own = dr.lighthouse.add_blueprint("users-own", Region="ap-shanghai")["BlueprintId"]
    garble(dr, "SyncBlueprint", body, after=after)
    first = run(make_app(clock=EmuClock(dr)), timer_event(job))
    told = [e["data"]["Region"] for e in events(receiver, "copied") + events(receiver, "failed")]
    # The region asked for is accounted for: copied, failed, or the run raised for SCF's retry.
    assert "Raised" in first or told == ["ap-shanghai"], (first, told)
    dr.advance(3600)  # SCF's retry, or the next delivery, after the copy (if any) was made
    dr.limiter.reset()
    again = run(make_app(clock=EmuClock(dr)), timer_event(job))
    mine = [c for c in copies(dr) if c["BlueprintId"] != users_own]
    [home] = images(dr)
    assert len(mine) == 1 and tagged(mine[0], SOURCE_TAG) == home["BlueprintId"], mine
    assert users_own in {c["BlueprintId"] for c in copies(dr)}
    assert events(receiver, "copied")[-1]["data"]["BlueprintId"] == mine[0]["BlueprintId"]
    no_made_up_ids(first, again, received_events(receiver))




@pytest.mark.parametrize(("body", "after"), [case("html", False), case("null", True),
                                             case("bare", False)])
def test_a_garbled_region_list_does_not_refuse_a_copy(make_app, dr, receiver, body: str, after: bool) -> None:
    garble(dr, "DescribeRegions", body, after=after)
    answer = run(make_app(clock=EmuClock(dr)), timer_event({"InstanceId": WEB, "CopyTo": ["ap-shanghai"]}))
    assert "Error" not in answer and "Raised" not in answer, answer
    assert len(images(dr)) == 1 and len(copies(dr)) == 1
    no_made_up_ids(answer, received_events(receiver))


DAILY = [{"Key": "backup", "Value": "daily"}]


@pytest.mark.parametrize("attack", [
    hit("regions-html-before", "DescribeRegions", "html", False),
    hit("regions-null-after", "DescribeRegions", "null", True),
    hit("regions-bare", "DescribeRegions", "bare", False),
    hit("instances-html-before", "DescribeInstances", "html", False),
    hit("instances-null-after", "DescribeInstances", "null", True),
    hit("instances-bare", "DescribeInstances", "bare", False),
])
def test_a_garbled_fleet_listing_still_images_the_fleet_once(make_app, emu, receiver, attack: Hit) -> None:
    regions = ["*"] if attack.action == "DescribeRegions" else ["ap-guangzhou"]
    wanted = sorted(i["InstanceId"] for i in emu.lighthouse.instances() if {"Key": "backup", "Value": "daily"}
                    in i["Tags"] and ("*" in regions or i["Region"] in regions))
    garble(emu, attack.action, attack.body, after=attack.after)
    answer = run(make_app(clock=EmuClock(emu)), timer_event({"Selector": {"Regions": regions, "Tags": DAILY}}))
    made = sorted(tagged(b, INSTANCE_TAG) or "" for b in emu.lighthouse.blueprints() if tagged(b, SLOT_TAG))
    if "Raised" not in answer:  # a run that says it is done imaged every tagged instance, once
        assert made == wanted and len(answer["Results"]) == len(wanted), (answer, made)
    assert len(made) == len(set(made))
    no_made_up_ids(answer)


# ---- ShareBlueprintAcrossAccounts, DescribeBlueprintsShareAcrossAccountInfos, CancelShare... ------------------

@pytest.mark.parametrize(("body", "after"), [case("html", False), case("null", False), case("html", True),
                                             case("null", True)])
def test_a_garbled_share_answer_shares_once_and_reports_the_share(make_app, dr, receiver, body: str,
                                                                  after: bool) -> None:
    garble(dr, "ShareBlueprintAcrossAccounts", body, after=after)
    answer = run(make_app(clock=EmuClock(dr), BLUEPRINT_SHARE_WITH=OTHER), timer_event({"InstanceId": WEB}))
    [home] = images(dr)
    assert dr.lighthouse.shares(home["BlueprintId"]) == [OTHER]
    assert [e["data"]["AccountId"] for e in events(receiver, "shared")] == [OTHER], received_events(receiver)
    assert events(receiver, "failed") == []
    no_made_up_ids(answer, received_events(receiver))




@pytest.mark.parametrize(("body", "after"), [case("html", False), case("null", True),
                                             case("bare", False)])
def test_a_garbled_share_listing_shares_nothing_twice(make_app, dr, receiver, body: str, after: bool) -> None:
    job = {"InstanceId": WEB}
    make_app(clock=EmuClock(dr), BLUEPRINT_SHARE_WITH=OTHER).handle(timer_event(job), context())
    dr.limiter.reset()
    garble(dr, "DescribeBlueprintsShareAcrossAccountInfos", body, after=after)
    answer = run(make_app(clock=EmuClock(dr), BLUEPRINT_SHARE_WITH=OTHER), timer_event(job))  # SCF's retry
    [home] = images(dr)
    assert dr.lighthouse.shares(home["BlueprintId"]) == [OTHER]
    assert events(receiver, "failed") == [], received_events(receiver)
    assert {e["id"] for e in events(receiver, "shared")} == {events(receiver, "shared")[0]["id"]}
    no_made_up_ids(answer, received_events(receiver))


@pytest.mark.parametrize("attack", [
    hit("cancel-html-before", "CancelShareBlueprintAcrossAccounts", "html", False),
    hit("cancel-null-after", "CancelShareBlueprintAcrossAccounts", "null", True),
    hit("listing-bare", "DescribeBlueprintsShareAcrossAccountInfos", "bare", False),
])
def test_a_pruned_shared_image_is_unshared_and_deleted_once(make_app, dr, receiver, attack: Hit) -> None:
    env = {"BLUEPRINT_SHARE_WITH": OTHER}
    earlier_days(make_app, dr, {"InstanceId": WEB, "Keep": 1}, (24, 25), **env)
    oldest = min(images(dr), key=lambda b: b["CreatedTime"])["BlueprintId"]
    garble(dr, attack.action, attack.body, after=attack.after, skip=attack.skip)
    answer = run(make_app(clock=EmuClock(dr), **env), timer_event({"InstanceId": WEB, "Keep": 1}, time_=day(26)))
    dr.advance(3600)
    left = {b["BlueprintId"] for b in images(dr)}
    pruned = [e["data"]["BlueprintId"] for e in events(receiver, "pruned")]
    # Deleted and reported, or kept and not reported (the next run prunes it): never reported but kept.
    assert (oldest in left) == (oldest not in pruned), (left, pruned)
    assert answer["Results"][0]["BlueprintId"] in left  # the new image is never the one deleted
    assert len([c for c in dr.calls_of("DeleteBlueprints") if c.error is None]) <= 2
    no_made_up_ids(answer)


# ---- ResetInstance and ApplyDiskBackup: restores ----------------------------------------------------------

@pytest.mark.parametrize("attack", [
    hit("reset-html-before", "ResetInstance", "html", False),
    hit("reset-null-before", "ResetInstance", "null", False),
    hit("reset-html-after", "ResetInstance", "html", True),
    hit("apply-html-before", "ApplyDiskBackup", "html", False),
    hit("apply-html-after", "ApplyDiskBackup", "html", True),
    hit("apply-empty-after", "ApplyDiskBackup", "empty", True),
])
def test_a_garbled_restore_answer_resets_and_rolls_back_once(make_app, emu, receiver, attack: Hit) -> None:
    env = {"BLUEPRINT_DATA_DISKS": None, "BLUEPRINT_RESTORE": "on", "BLUEPRINT_RESTORE_TOKEN": RESTORE_TOKEN}
    made = make_app(clock=EmuClock(emu), **env).handle(timer_event({"InstanceId": WEB, "Wait": True}), context())
    image = made["Results"][0]["BlueprintId"]
    emu.advance(60)
    emu.limiter.reset()
    garble(emu, attack.action, attack.body, after=attack.after)
    request = {"InstanceId": WEB, "BlueprintId": image, "SafetyImage": False}
    response = make_app(clock=EmuClock(emu), **env).handle(
        http_event(body=request, path="/restores", token=RESTORE_TOKEN), context())
    answer = orjson.loads(response["body"])
    assert response["statusCode"] == 202, answer
    assert len(emu.lighthouse.resets(WEB)) == 1, emu.lighthouse.resets(WEB)
    assert len([c for c in emu.calls_of("ApplyDiskBackup") if c.error is None]) == 1
    [completed] = events(receiver, "restore.completed")
    assert completed["data"]["RequestId"] in {c.request_id for c in emu.calls_of("ResetInstance") if c.error is None}
    no_made_up_ids(answer, received_events(receiver))


# ---- DescribeGeneralResourceQuotas and InquirePriceCreateBlueprint --------------------------------------------

@pytest.mark.parametrize("body", ["html", "null", "bare"])
def test_a_garbled_quota_answer_still_says_the_quota_is_full(make_app, emu, receiver, body: str) -> None:
    users_own = emu.lighthouse.add_blueprint("users-own", Region="ap-guangzhou")["BlueprintId"]
    emu.lighthouse.set_quota("ap-guangzhou", 1)
    garble(emu, "DescribeGeneralResourceQuotas", body, after=False)
    answer = run(make_app(clock=EmuClock(emu)), timer_event({"InstanceId": WEB}))
    result = answer["Results"][0]
    assert result["Error"]["Code"] == "LimitExceeded.BlueprintQuotaLimitExceeded", answer
    assert not LEAK.search(result["Error"]["Message"]) and "None" not in result["Error"]["Message"]
    assert [b["BlueprintId"] for b in emu.lighthouse.blueprints("ap-guangzhou")] == [users_own]




@pytest.mark.parametrize(("body", "after"), [case("html", False), case("null", True),
                                             case("bare", False)])
def test_a_garbled_price_is_never_reported_as_free(make_app, emu, body: str, after: bool) -> None:
    garble(emu, "InquirePriceCreateBlueprint", body, after=after)
    answer = run(make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS=None),
                 timer_event({"InstanceId": WEB, "DryRun": True}))
    price = answer["Results"][0]["Price"]
    assert "Unknown" in price or price["OriginalBlueprintPrice"] == pytest.approx(0.008), price
    assert emu.calls_of("CreateBlueprint") == [] and emu.calls_of("CreateDiskBackup") == []
