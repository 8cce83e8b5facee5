"""Authorization: BLUEPRINT_ALLOWED_INSTANCES / BLUEPRINT_ALLOWED_TAGS are checked against the instance's
real tags in the cloud, on every call (tags change between calls), for every trigger; and retention only
ever deletes images this function made."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
import pytest

from blueprint.images import INSTANCE_TAG, SLOT_TAG
from tests.conftest import context, http_event, received_events, timer_event

DENIED = "UnauthorizedOperation.InstanceNotAllowed"


def post(app, job: dict) -> tuple[int, object]:
    response = app.handle(http_event(body=job), context())
    return response["statusCode"], orjson.loads(response["body"])


def test_tags_are_read_from_the_cloud_on_every_call(make_app, emu) -> None:
    app = make_app(BLUEPRINT_ALLOWED_TAGS="env=prod")
    assert post(app, {"InstanceId": "lhins-web00001"})[0] == 202  # carries env=prod
    code, body = post(app, {"InstanceId": "lhins-db000001"})
    assert (code, body["Error"]["Code"]) == (403, DENIED)
    # The tag moves from one instance to the other: the same warm app follows the cloud, not a cache.
    emu.lighthouse.set_instance_tags("lhins-web00001", [])
    emu.lighthouse.set_instance_tags("lhins-db000001", [{"Key": "env", "Value": "prod"}])
    code, body = post(app, {"InstanceId": "lhins-web00001", "IdempotencyKey": "second"})
    assert (code, body["Error"]["Code"]) == (403, DENIED)
    assert post(app, {"InstanceId": "lhins-db000001"})[0] == 202
    made = [c.params["InstanceId"] for c in emu.calls_of("CreateBlueprint") if c.error is None]
    assert made == ["lhins-web00001", "lhins-db000001"]


def test_tags_in_the_request_do_not_count(make_app, emu) -> None:
    app = make_app(BLUEPRINT_ALLOWED_TAGS="env=prod")
    code, body = post(app, {"InstanceId": "lhins-db000001", "Tags": [{"Key": "env", "Value": "prod"}]})
    assert (code, body["Error"]["Code"]) == (403, DENIED)
    assert emu.calls_of("CreateBlueprint") == []


def test_a_selector_only_reaches_allowed_instances(make_app, emu) -> None:
    app = make_app(BLUEPRINT_ALLOWED_TAGS="env=prod")
    job = {"Selector": {"Regions": ["ap-guangzhou"], "Tags": [{"Key": "backup", "Value": "daily"}]}}
    code, body = post(app, job)
    assert code == 202
    outcome = {r["InstanceId"]: (r.get("Error") or {}).get("Code") for r in body}
    assert outcome == {"lhins-web00001": None, "lhins-db000001": DENIED}
    assert [c.params["InstanceId"] for c in emu.calls_of("CreateBlueprint")] == ["lhins-web00001"]


def test_an_unknown_instance_is_refused_not_looked_up_further(make_app, emu) -> None:
    app = make_app(BLUEPRINT_ALLOWED_TAGS="env=prod")
    code, body = post(app, {"InstanceId": "lhins-zzzzzzzz"})
    assert (code, body["Error"]["Code"]) == (403, DENIED)


def test_instance_allowlist(make_app, emu) -> None:
    app = make_app(BLUEPRINT_ALLOWED_INSTANCES="lhins-db000001")
    code, body = post(app, {"InstanceId": "lhins-web00001"})
    assert (code, body["Error"]["Code"]) == (403, DENIED)
    assert post(app, {"InstanceId": "lhins-db000001"})[0] == 202


def test_dry_run_is_refused_too(make_app, emu) -> None:
    app = make_app(BLUEPRINT_ALLOWED_INSTANCES="lhins-db000001")
    code, body = post(app, {"InstanceId": "lhins-web00001", "DryRun": True})
    assert (code, body["Error"]["Code"]) == (403, DENIED)


def test_timer_reports_a_failed_result_and_does_not_raise(make_app, emu, receiver) -> None:
    app = make_app(BLUEPRINT_ALLOWED_TAGS="env=prod")
    answer = app.handle(timer_event({"InstanceId": "lhins-db000001"}), context())
    assert answer["Results"][0]["Error"]["Code"] == DENIED
    events = received_events(receiver)
    assert [e["type"].rsplit(".", 1)[-1] for e in events] == ["failed"]
    assert events[0]["data"]["Error"]["Code"] == DENIED
    assert emu.calls_of("CreateBlueprint") == []


def test_timer_follows_tag_changes_between_ticks(make_app, emu, receiver) -> None:
    app = make_app(BLUEPRINT_ALLOWED_TAGS="env=prod")
    job = {"InstanceId": "lhins-web00001"}
    first = app.handle(timer_event(job, time_="2026-11-27T03:00:00Z"), context())
    assert "Error" not in first["Results"][0]
    emu.lighthouse.set_instance_tags("lhins-web00001", [{"Key": "env", "Value": "staging"}])
    second = app.handle(timer_event(job, time_="2026-11-28T03:00:00Z"), context())
    assert second["Results"][0]["Error"]["Code"] == DENIED
    assert len(emu.calls_of("CreateBlueprint")) == 1


def test_direct_invoke_is_refused(make_app, emu) -> None:
    answer = make_app(BLUEPRINT_ALLOWED_INSTANCES="lhins-db000001").handle({"InstanceId": "lhins-web00001"},
                                                                           context())
    assert answer["Results"][0]["Error"]["Code"] == DENIED


def test_queue_record_is_refused(make_app, emu) -> None:
    app = make_app(BLUEPRINT_ALLOWED_INSTANCES="lhins-db000001")
    record = {"CMQ": {"msgBody": '{"InstanceId": "lhins-web00001"}', "msgId": "m1",
                      "publishTime": "2026-11-27T03:00:00.000Z"}}
    answer = app.handle({"Records": [record]}, context())
    assert answer["Records"][0]["Results"][0]["Error"]["Code"] == DENIED
    assert emu.calls_of("CreateBlueprint") == []


def test_a_forged_chained_call_is_checked_again(make_app, emu) -> None:
    """Children of a fan-out re-check: a direct caller cannot skip the allowlist by posing as one."""
    app = make_app(BLUEPRINT_ALLOWED_TAGS="env=prod")
    deadline = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    call = {"Chained": 1, "Kind": "child", "Job": {}, "SlotKey": "forged", "CorrelationId": "c",
            "Targets": [{"Region": "ap-guangzhou", "InstanceId": "lhins-db000001", "BlueprintName": "x"}],
            "Deadline": deadline, "Trigger": {"Type": "timer", "Name": "t", "Time": "2026-11-27T03:00:00Z"}}
    answer = app.handle(call, context())
    assert answer["Results"][0]["Error"]["Code"] == DENIED
    assert emu.calls_of("CreateBlueprint") == []


# ---- retention touches only the function's own images ------------------------------------------------

def _image(emu, name: str, tags: list[dict[str, str]], created: str) -> str:
    image = emu.lighthouse.add_blueprint(name, Region="ap-guangzhou", BlueprintState="NORMAL", Tags=tags,
                                         CreatedTime=created)
    return str(image["BlueprintId"])


@pytest.fixture
def foreign_images(emu) -> set[str]:
    """Images the function did not make: untagged, user-tagged, and one naming the instance in its name."""
    return {
        _image(emu, "manual-web", [], "2020-01-01T00:00:00Z"),
        _image(emu, "lhins-web00001-20200101-000000", [{"Key": "backup", "Value": "daily"}],
               "2020-01-02T00:00:00Z"),
        _image(emu, "other-tool", [{"Key": "scf-blueprint", "Value": "lhins-web00001"}], "2020-01-03T00:00:00Z"),
    }


def _ids(emu) -> set[str]:
    return {b["BlueprintId"] for b in emu.lighthouse.blueprints()}


def test_keep_never_deletes_images_it_did_not_make(make_app, emu, foreign_images) -> None:
    managed_old = _image(emu, "old-managed", [{"Key": INSTANCE_TAG, "Value": "lhins-web00001"},
                                              {"Key": SLOT_TAG, "Value": "old"}], "2021-01-01T00:00:00Z")
    app = make_app()
    for day in ("27", "28", "29"):
        app.handle(timer_event({"InstanceId": "lhins-web00001", "Keep": 1}, time_=f"2026-11-{day}T03:00:00Z"),
                   context())
        emu.advance(60)
    remaining = _ids(emu)
    assert foreign_images <= remaining
    assert managed_old not in remaining
    deleted = [i for c in emu.calls_of("DeleteBlueprints") for i in c.params["BlueprintIds"]]
    assert not set(deleted) & foreign_images


def test_another_instances_managed_images_are_not_pruned(make_app, emu) -> None:
    theirs = _image(emu, "db-managed", [{"Key": INSTANCE_TAG, "Value": "lhins-db000001"},
                                        {"Key": SLOT_TAG, "Value": "x"}], "2021-01-01T00:00:00Z")
    app = make_app()
    app.handle(timer_event({"InstanceId": "lhins-web00001", "Keep": 1}), context())
    assert theirs in _ids(emu)


def test_a_request_cannot_set_the_managed_tags(make_app, emu) -> None:
    for key in (INSTANCE_TAG, SLOT_TAG, INSTANCE_TAG.upper(), " " + SLOT_TAG):
        code, _ = post(make_app(), {"InstanceId": "lhins-web00001", "Tags": [{"Key": key, "Value": "x"}]})
        assert code == 400, key
    assert emu.calls_of("CreateBlueprint") == []


def test_get_does_not_read_and_nothing_deletes_a_foreign_image(make_app, emu, foreign_images) -> None:
    app = make_app()
    for image in foreign_images:
        # Reads are scoped like writes: an image this function did not make does not exist for its callers.
        response = app.handle(http_event("GET", f"/blueprints/{image}"), context())
        assert response["statusCode"] == 404
        for method in ("DELETE", "POST", "PUT"):
            assert app.handle(http_event(method, f"/blueprints/{image}"), context())["statusCode"] == 405
    assert emu.calls_of("DeleteBlueprints") == []
    assert foreign_images <= _ids(emu)


def test_fan_out_is_refused_before_dispatch(make_app, emu) -> None:
    emu.scf.add_function("lighthouse-blueprint")
    app = make_app(BLUEPRINT_ALLOWED_TAGS="env=prod")
    code, body = post(app, {"InstanceId": "lhins-db000001", "Dispatch": "invoke"})
    emu.scf.wait_idle()
    assert emu.scf.invocations == []  # no child invocation for an instance that may not be imaged
    assert (code, body["Error"]["Code"]) == (403, DENIED)


def test_fan_out_dispatches_only_allowed_instances(make_app, emu) -> None:
    emu.scf.add_function("lighthouse-blueprint")
    answers: list[dict] = []
    app = make_app(BLUEPRINT_ALLOWED_TAGS="env=prod")
    emu.scf.register("lighthouse-blueprint", lambda event, ctx: answers.append(app.handle(event, ctx)))
    code, body = post(app, {"InstanceIds": ["lhins-db000001", "lhins-web00001"], "Dispatch": "invoke"})
    emu.scf.wait_idle()
    made = [c.params["InstanceId"] for c in emu.calls_of("CreateBlueprint")]
    assert made == ["lhins-web00001"]
    assert [r["Results"][0]["InstanceId"] for r in answers] == ["lhins-web00001"]
    assert code == 202
    assert [d["InstanceId"] for d in body["Dispatched"]] == ["lhins-web00001"]
    assert [(r["InstanceId"], r["Error"]["Code"]) for r in body["Results"]] == [("lhins-db000001", DENIED)]
