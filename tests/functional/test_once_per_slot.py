"""Issue 4: one image per schedule slot under SCF retries, races, throttling and lost answers;
retention within the quota; waiting for the image; dry runs."""

from __future__ import annotations

import threading

import pytest

from blueprint.errors import BlueprintError
from blueprint.images import INSTANCE_TAG, SLOT_TAG
from tests.conftest import EmuClock, context, http_event, received_events, timer_event

JOB = {"InstanceId": "lhins-web00001"}


def images(emu, instance: str = "lhins-web00001") -> list[dict]:
    return [b for b in emu.lighthouse.blueprints() if {"Key": INSTANCE_TAG, "Value": instance} in b["Tags"]]


def creates(emu) -> list:
    return [c for c in emu.calls_of("CreateBlueprint") if c.error is None]


def test_same_timer_event_three_times_in_a_row_makes_one_image(make_app, emu, receiver) -> None:
    app = make_app()
    event = timer_event(JOB)
    answers = [app.handle(event, context()) for _ in range(3)]
    assert len(images(emu)) == 1
    ids = {a["Results"][0]["BlueprintId"] for a in answers}
    assert len(ids) == 1
    events = received_events(receiver)
    # At least once, stable ids: every invocation that finds the slot's image sends its `.created` again,
    # with the id it had the first time, so a sink that missed it gets it and one that had it drops it.
    assert [e["type"].rsplit(".", 1)[-1] for e in events] == ["created", "created", "created"]
    assert len({e["id"] for e in events}) == 1
    assert [e["data"].get("Resent") for e in events] == [None, True, True]
    # RequestId is the cloud call that made the image, then the one that found it.
    made, found = answers[0]["Results"][0]["RequestId"], answers[1]["Results"][0]["RequestId"]
    assert made == emu.calls_of("CreateBlueprint")[0].request_id
    assert found in {c.request_id for c in emu.calls_of("DescribeBlueprints")}


def test_the_next_slot_makes_a_new_image(make_app, emu) -> None:
    app = make_app()
    app.handle(timer_event(JOB, time_="2026-11-27T03:00:00Z"), context())
    emu.advance(60)
    app.handle(timer_event(JOB, time_="2026-11-28T03:00:00Z"), context())
    assert sorted(b["BlueprintName"] for b in images(emu)) == [
        "lhins-web00001-20261127-030000", "lhins-web00001-20261128-030000"]


def all_at_once(apps: list, event: dict) -> tuple[list, list]:
    """The same event handled by each app (a warm container) at once; the answers, and the errors raised."""
    barrier = threading.Barrier(len(apps))
    answers: list = []
    errors: list = []

    def run(app) -> None:
        barrier.wait()
        try:
            answers.append(app.handle(event, context()))
        except BlueprintError as err:  # pragma: no cover - would fail the caller's assertion
            errors.append(err)

    threads = [threading.Thread(target=run, args=(a,)) for a in apps]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return answers, errors


@pytest.mark.parametrize("force_power_off", [True, False])
def test_three_concurrent_invocations_make_one_image(make_app, emu, receiver, force_power_off: bool) -> None:
    apps = [make_app() for _ in range(3)]  # three warm containers, as SCF would run them
    answers, errors = all_at_once(apps, timer_event({**JOB, "ForcePowerOff": force_power_off}))
    assert errors == []
    assert len(images(emu)) == 1
    assert {a["Results"][0]["BlueprintId"] for a in answers} == {images(emu)[0]["BlueprintId"]}
    events = received_events(receiver)
    assert {e["type"].rsplit(".", 1)[-1] for e in events} == {"created"}
    # Each invocation reports the one image, under the one id a consumer dedupes by.
    assert len({e["id"] for e in events}) == 1
    assert {e["data"]["BlueprintId"] for e in events} == {images(emu)[0]["BlueprintId"]}


def test_race_the_cloud_lets_through_is_resolved_to_the_oldest(make_app, emu, receiver) -> None:
    # Two images of one slot already exist (as if the cloud had accepted both twins): a third call reports
    # the oldest, and retention removes the younger duplicate.
    app = make_app(BLUEPRINT_KEEP="5")
    event = timer_event(JOB)
    app.handle(event, context())
    first = images(emu)[0]
    slot = next(t["Value"] for t in first["Tags"] if t["Key"] == SLOT_TAG)
    emu.advance(60)
    emu.lighthouse.add_blueprint("twin", Tags=[{"Key": INSTANCE_TAG, "Value": "lhins-web00001"},
                                               {"Key": SLOT_TAG, "Value": slot}])
    answer = app.handle(event, context())
    assert answer["Results"][0]["BlueprintId"] == first["BlueprintId"]
    # The next real run prunes the duplicate of the old slot.
    app.handle(timer_event(JOB, time_="2026-11-28T03:00:00Z"), context())
    assert "twin" not in {b["BlueprintName"] for b in images(emu)}


def test_request_limit_then_success_makes_one_image(make_app, emu) -> None:
    clock = EmuClock(emu)
    emu.faults.fail("CreateBlueprint", "RequestLimitExceeded", times=2)
    answer = make_app(clock=clock).handle(timer_event(JOB), context())
    assert answer["Results"][0]["BlueprintId"]
    assert len(images(emu)) == 1
    assert len(emu.calls_of("CreateBlueprint")) == 3
    assert len(clock.slept) >= 2


def test_lost_answer_after_the_cloud_made_the_image_makes_one_image(make_app, emu, receiver) -> None:
    emu.faults.drop("CreateBlueprint", times=1, after=True)
    answer = make_app().handle(timer_event(JOB), context())
    assert len(images(emu)) == 1
    assert len(creates(emu)) == 1  # looked up by slot before resending: no second CreateBlueprint
    assert answer["Results"][0]["BlueprintId"] == images(emu)[0]["BlueprintId"]
    assert received_events(receiver)[0]["type"].endswith(".created")


def test_connection_dropped_before_the_cloud_acted_is_retried(make_app, emu) -> None:
    emu.faults.drop("CreateBlueprint", times=1, after=False)
    make_app().handle(timer_event(JOB), context())
    assert len(images(emu)) == 1


def test_busy_instance_waits_longer_then_succeeds(make_app, emu) -> None:
    clock = EmuClock(emu)
    emu.faults.fail("CreateBlueprint", "UnsupportedOperation.LatestOperationUnfinished", times=1)
    make_app(clock=clock).handle(timer_event(JOB), context())
    assert len(images(emu)) == 1
    assert clock.slept[0] >= 2.5  # the busy backoff starts at seconds, not milliseconds


def test_non_retryable_failure_reports_failed_without_raising(make_app, emu, receiver) -> None:
    emu.faults.fail("CreateBlueprint", "FailedOperation.InsufficientBalance", times=1)
    answer = make_app().handle(timer_event(JOB), context())
    assert answer["Results"][0]["Error"]["Code"] == "FailedOperation.InsufficientBalance"
    assert received_events(receiver)[0]["type"].endswith(".failed")


def test_retryable_failure_raises_for_a_timer_and_the_retry_finishes(make_app, emu) -> None:
    emu.faults.fail("CreateBlueprint", "InternalError", times=10)
    app = make_app()
    with pytest.raises(BlueprintError):
        app.handle(timer_event(JOB), context())
    emu.faults.clear()
    app.handle(timer_event(JOB), context())
    assert len(images(emu)) == 1


def test_retention_keeps_keep_managed_images_and_never_touches_the_users(make_app, emu, receiver) -> None:
    emu.lighthouse.add_blueprint("lhins-web00001-20261101-030000", Tags=[{"Key": "owner", "Value": "me"}])
    emu.lighthouse.add_blueprint("my-own-image")
    app = make_app(BLUEPRINT_KEEP="2")
    for day in range(20, 25):
        app.handle(timer_event(JOB, time_=f"2026-11-{day}T03:00:00Z"), context())
        emu.advance(3600)
    names = sorted(b["BlueprintName"] for b in images(emu))
    assert names == ["lhins-web00001-20261123-030000", "lhins-web00001-20261124-030000"]
    all_names = {b["BlueprintName"] for b in emu.lighthouse.blueprints()}
    assert {"lhins-web00001-20261101-030000", "my-own-image"} <= all_names
    pruned = [e for e in received_events(receiver) if e["type"].endswith(".pruned")]
    assert len(pruned) == 3
    assert len({e["id"] for e in pruned}) == 3


def test_retention_never_deletes_the_newest_normal_or_one_in_progress(make_app, emu) -> None:
    app = make_app(BLUEPRINT_KEEP="1")
    app.handle(timer_event(JOB, time_="2026-11-20T03:00:00Z"), context())
    emu.advance(3600)  # the first image is NORMAL now
    app.handle(timer_event(JOB, time_="2026-11-21T03:00:00Z"), context())
    # Keep=1 but the new image is still CREATING: the newest NORMAL one stays.
    states = sorted(b["BlueprintState"] for b in images(emu))
    assert states == ["CREATING", "NORMAL"]
    emu.advance(3600)
    app.handle(timer_event(JOB, time_="2026-11-22T03:00:00Z"), context())
    names = sorted(b["BlueprintName"] for b in images(emu))
    assert names == ["lhins-web00001-20261121-030000", "lhins-web00001-20261122-030000"]


def test_keep_of_other_instances_is_independent(make_app, emu) -> None:
    app = make_app(BLUEPRINT_KEEP="1")
    app.handle(timer_event({"InstanceId": "lhins-db000001"}), context())
    emu.advance(3600)
    for day in (20, 21):
        app.handle(timer_event(JOB, time_=f"2026-11-{day}T03:00:00Z"), context())
        emu.advance(3600)
    assert len(images(emu, "lhins-db000001")) == 1


def test_full_quota_with_keep_prunes_only_managed_images_and_retries(make_app, emu, receiver) -> None:
    emu.lighthouse.set_quota("ap-guangzhou", 4)
    emu.lighthouse.add_blueprint("user-a")
    emu.lighthouse.add_blueprint("user-b")
    app = make_app()
    for day in (20, 21):
        app.handle(timer_event({**JOB, "Keep": 5}, time_=f"2026-11-{day}T03:00:00Z"), context())
        emu.advance(3600)
    answer = app.handle(timer_event({**JOB, "Keep": 2}, time_="2026-11-22T03:00:00Z"), context())
    assert answer["Results"][0]["BlueprintId"]
    names = {b["BlueprintName"] for b in emu.lighthouse.blueprints()}
    assert {"user-a", "user-b"} <= names
    assert "lhins-web00001-20261120-030000" not in names
    assert any(e["type"].endswith(".pruned") for e in received_events(receiver))


def test_full_quota_without_keep_fails_clearly(make_app, emu, receiver) -> None:
    emu.lighthouse.set_quota("ap-guangzhou", 1)
    emu.lighthouse.add_blueprint("user-a")
    answer = make_app().handle(timer_event(JOB), context())
    error = answer["Results"][0]["Error"]
    assert error["Code"] == "LimitExceeded.BlueprintQuotaLimitExceeded"
    assert "quota" in error["Message"] and "Keep" in error["Message"] and "(1 images)" in error["Message"]
    assert {b["BlueprintName"] for b in emu.lighthouse.blueprints()} == {"user-a"}


def test_wait_reaches_ready(make_app, emu, receiver) -> None:
    answer = make_app().handle(timer_event({**JOB, "Wait": True}), context())
    result = answer["Results"][0]
    assert result["State"] == "NORMAL"
    events = received_events(receiver)
    assert [e["type"].rsplit(".", 1)[-1] for e in events] == ["created", "ready"]
    assert events[1]["data"]["State"] == "NORMAL"


def test_wait_reaches_failed(make_app, emu, receiver) -> None:
    emu.lighthouse.fail_next_image("lhins-web00001")
    answer = make_app().handle(timer_event({**JOB, "Wait": True}), context())
    assert answer["Results"][0]["State"] == "CREATEFAILED"
    assert [e["type"].rsplit(".", 1)[-1] for e in received_events(receiver)] == ["created", "failed"]


def test_a_failed_image_of_the_slot_does_not_block_a_retry(make_app, emu) -> None:
    emu.lighthouse.fail_next_image("lhins-web00001")
    app = make_app()
    app.handle(timer_event({**JOB, "Wait": True}), context())
    app.handle(timer_event({**JOB, "Wait": True}), context())
    assert sorted(b["BlueprintState"] for b in images(emu)) == ["CREATEFAILED", "NORMAL"]


def test_the_image_that_replaces_a_failed_one_is_news_under_its_own_ids(make_app, emu, receiver) -> None:
    emu.lighthouse.fail_next_image("lhins-web00001")
    app = make_app()
    app.handle(timer_event({**JOB, "Wait": True}), context())  # the slot's image fails
    app.handle(timer_event({**JOB, "Wait": True}), context())  # the retry makes another one, which works
    make_app().handle(timer_event({**JOB, "Wait": True}), context())  # a replay in another container finds it
    events = [(e["type"].rsplit(".", 1)[-1], e["id"], e["data"]["BlueprintId"]) for e in received_events(receiver)]
    failed_image, new_image = (b["BlueprintId"] for b in sorted(images(emu), key=lambda b: b["BlueprintState"]))
    created = {image: {i for t, i, b in events if t == "created" and b == image} for image in (failed_image, new_image)}
    assert len(created[failed_image]) == len(created[new_image]) == 1  # each image's repeats keep their id
    assert created[failed_image] != created[new_image]  # a consumer dropping repeats by id sees the new image
    assert [t for t, _, b in events if b == new_image] == ["created", "ready", "created", "ready"]


def test_each_failed_image_of_a_slot_is_reported_under_its_own_id(make_app, emu, receiver) -> None:
    app = make_app()
    for _ in range(2):
        emu.lighthouse.fail_next_image("lhins-web00001")
        app.handle(timer_event({**JOB, "Wait": True}), context())
    make_app().handle(timer_event({**JOB, "Wait": True}), context())  # another container: the third one works
    failed = {(e["id"], e["data"]["BlueprintId"]) for e in received_events(receiver) if e["type"].endswith(".failed")}
    assert len(failed) == 2 and len({i for i, _ in failed}) == 2 and len({b for _, b in failed}) == 2
    assert sorted(b["BlueprintState"] for b in images(emu)) == ["CREATEFAILED", "CREATEFAILED", "NORMAL"]


def test_deadline_shorter_than_the_image_ends_cleanly_and_hands_on(make_app, emu, receiver) -> None:
    app = make_app()
    # Children run in other warm containers: their own App and clock (their waits are not the parent's).
    emu.scf.register("lighthouse-blueprint", make_app().handle)
    answer = app.handle(timer_event({**JOB, "Wait": True}), context(time_limit_in_ms=20_000))
    result = answer["Results"][0]
    assert result["State"] == "CREATING"
    assert "still in progress" in result["Reason"]
    assert answer["Dispatched"] == 1
    # The chained call finds the same image (same slot) and follows it to the end: still one image.
    assert emu.scf.wait_idle(timeout=30)
    assert len(images(emu)) == 1
    types = [e["type"].rsplit(".", 1)[-1] for e in received_events(receiver)]
    assert types[0] == "created" and "ready" in types


def test_dry_run_changes_nothing_and_reports_the_plan(make_app, emu, receiver) -> None:
    app = make_app()
    for day in (19, 20):
        app.handle(timer_event(JOB, time_=f"2026-11-{day}T03:00:00Z"), context())
        emu.advance(3600)
    before = emu.lighthouse.blueprints()
    oldest = min(images(emu), key=lambda b: b["CreatedTime"])
    answer = app.handle(timer_event({**JOB, "DryRun": True, "Keep": 2}, time_="2026-11-21T03:00:00Z"), context())
    assert emu.lighthouse.blueprints() == before
    result = answer["Results"][0]
    assert result["DryRun"] is True
    # With Keep=2 the new image and the newest old one stay: the oldest would go.
    assert result["WouldDelete"] == [oldest["BlueprintId"]]
    assert emu.calls_of("CreateBlueprint")[-1].params["BlueprintName"].endswith("20261120-030000")
    assert not [c for c in emu.calls_of("DeleteBlueprints")]
    assert received_events(receiver)[-1]["type"].endswith(".skipped")


@pytest.mark.parametrize("job", [{"InstanceId": "lhins-zzzzzzzz"},  # no such instance
                                 {"InstanceId": "lhins-sh000001"},  # in ap-shanghai, asked in the default region
                                 {"InstanceIds": ["lhins-web00001", "lhins-zzzzzzzz"]}])
def test_a_dry_run_says_an_instance_is_not_found_as_the_real_run_would(make_app, emu, receiver, job) -> None:
    app = make_app()
    dry = app.handle(timer_event({**job, "DryRun": True}), context())
    real = app.handle(timer_event(job, time_="2026-11-28T03:00:00Z"), context())
    def codes(answer: dict) -> dict:
        return {r["InstanceId"]: (r.get("Error") or {}).get("Code") for r in answer["Results"] if r.get("Main", True)}
    assert codes(dry) == codes(real)
    assert "ResourceNotFound.InstanceIdNotFound" in codes(dry).values()
    missing = [r for r in dry["Results"] if r.get("Error")]
    assert all(r["Error"]["Code"] == "ResourceNotFound.InstanceIdNotFound" for r in missing)
    response = app.handle(http_event(body={**job, "DryRun": True, "IdempotencyKey": "dry-http"}), context())
    assert response["statusCode"] == (404 if len(codes(dry)) == 1 else 202), response


def test_force_power_off_is_explicit_in_every_result(make_app, emu, receiver) -> None:
    make_app().handle(timer_event(JOB), context())
    assert all("ForcePowerOff" in e["data"] for e in received_events(receiver))


def test_a_run_that_waits_keeps_exactly_keep_once_its_image_is_normal(make_app, emu, receiver) -> None:
    # Retention lists right after creating, while the new image is CREATING, and never deletes the newest NORMAL
    # one then; a run that follows its image to NORMAL deletes what was kept only for that, so Keep 1 is one image.
    app = make_app()
    before = None
    for day in (20, 21, 22):
        answer = app.handle(timer_event({**JOB, "Wait": True, "Keep": 1}, time_=f"2026-11-{day}T03:00:00Z"),
                            context())
        main = answer["Results"][0]
        assert main["State"] == "NORMAL"
        assert main.get("Pruned") == ([before] if before else None)  # the result says what it deleted
        assert [b["BlueprintName"] for b in images(emu)] == [f"lhins-web00001-202611{day}-030000"]
        before = main["BlueprintId"]
        emu.advance(3600)
    kinds = [e["type"].rsplit(".", 1)[-1] for e in received_events(receiver)]
    assert kinds == ["created", "ready", "created", "ready", "pruned", "created", "ready", "pruned"]


def test_a_run_whose_image_fails_keeps_the_last_normal_one(make_app, emu, receiver) -> None:
    app = make_app()
    app.handle(timer_event({**JOB, "Wait": True, "Keep": 1}, time_="2026-11-20T03:00:00Z"), context())
    emu.lighthouse.fail_next_image("lhins-web00001")
    answer = app.handle(timer_event({**JOB, "Wait": True, "Keep": 1}, time_="2026-11-21T03:00:00Z"), context())
    assert answer["Results"][0]["State"] == "CREATEFAILED"
    assert sorted(b["BlueprintState"] for b in images(emu)) == ["CREATEFAILED", "NORMAL"]
    assert not [e for e in received_events(receiver) if e["type"].endswith(".pruned")]


def test_a_waited_keep_one_run_replayed_in_another_warm_container_deletes_nothing_more(make_app, emu,
                                                                                    receiver) -> None:
    first, second = make_app(), make_app()
    first.handle(timer_event({**JOB, "Wait": True, "Keep": 1}, time_="2026-11-20T03:00:00Z"), context())
    emu.advance(3600)
    event = timer_event({**JOB, "Wait": True, "Keep": 1}, time_="2026-11-21T03:00:00Z")
    made = first.handle(event, context())["Results"][0]
    for app in (second, first):  # SCF redelivers the same event, to another container and to this one
        again = app.handle(event, context())["Results"][0]
        assert (again["BlueprintId"], again.get("Pruned")) == (made["BlueprintId"], None)
    assert [b["BlueprintId"] for b in images(emu)] == [made["BlueprintId"]]
    assert len([c for c in emu.calls_of("DeleteBlueprints") if c.error is None]) == 1


def test_concurrent_waited_keep_one_runs_leave_the_one_image_of_the_slot(make_app, emu, receiver) -> None:
    make_app().handle(timer_event({**JOB, "Keep": 1}, time_="2026-11-20T03:00:00Z"), context())
    emu.advance(3600)
    event = timer_event({**JOB, "Wait": True, "Keep": 1}, time_="2026-11-21T03:00:00Z")
    answers, errors = all_at_once([make_app() for _ in range(3)], event)
    assert errors == [] and len(answers) == 3
    [kept] = images(emu)
    assert kept["BlueprintName"] == "lhins-web00001-20261121-030000" and kept["BlueprintState"] == "NORMAL"
    assert {a["Results"][0]["BlueprintId"] for a in answers} == {kept["BlueprintId"]}
    assert all("Error" not in r for a in answers for r in a["Results"]), answers
