"""Issue 6: fleets selected by tags across regions, partial failure, reruns, and fan-out through SCF."""

from __future__ import annotations

import orjson
import pytest

from blueprint.cloud import read_credentials
from blueprint.errors import BlueprintError
from blueprint.images import INSTANCE_TAG
from blueprint.retry import Deadline, SystemClock
from tests.conftest import base_env, context, http_event, received_events, timer_event, tolerate_stalls

REGIONS = ["ap-guangzhou", "ap-shanghai", "ap-singapore"]
SELECTOR = {"Regions": REGIONS, "Tags": [{"Key": "backup", "Value": "nightly"}]}


def add_fleet(emu, total: int = 250, tagged: int = 120) -> set[str]:
    wanted = set()
    for region in REGIONS:
        emu.lighthouse.set_quota(region, 500)
    for n in range(total):
        instance = f"lhins-f{n:07d}"
        region = REGIONS[n % 3]
        tags = [{"Key": "backup", "Value": "nightly"}] if n < tagged else [{"Key": "backup", "Value": "never"}]
        emu.lighthouse.add_instance(instance, Region=region, InstanceName=f"fleet-{n}", Tags=tags)
        if n < tagged:
            wanted.add(instance)
    return wanted


def managed_sources(emu) -> list[str]:
    return [t["Value"] for b in emu.lighthouse.blueprints() for t in b["Tags"] if t["Key"] == INSTANCE_TAG]


def test_selector_images_exactly_the_tagged_instances_once(make_app, emu, receiver) -> None:
    wanted = add_fleet(emu)
    tolerate_stalls(emu)
    app = make_app(BLUEPRINT_MAX_INSTANCES="500", BLUEPRINT_CONCURRENCY="8",
                   BLUEPRINT_DISPATCH_THRESHOLD="500")
    answer = app.handle(timer_event({"Selector": SELECTOR}), context())
    sources = managed_sources(emu)
    assert sorted(sources) == sorted(wanted)
    assert len(answer["Results"]) == 120
    # Lookups in bulk: one idempotency query per region, not one per instance.
    assert len(emu.calls_of("DescribeBlueprints")) <= 2 * len(REGIONS)
    summary = received_events(receiver)[-1]
    assert summary["type"] == "com.tencentcloud.lighthouse.blueprint.run.completed"
    assert summary["data"]["Counts"] == {"created": 120}
    # Paced: at most 20 per 1.05 s when sent, so the 120 creates span at least five windows (a stall only
    # lengthens it), and no more than a rare throttle, which the retry path absorbs.
    creates = [c.time for c in emu.calls_of("CreateBlueprint")]
    assert max(creates) - min(creates) >= 5 * 1.05 - 0.25
    assert len([c for c in emu.calls if c.error == "RequestLimitExceeded"]) <= 3


def test_partial_failure_then_rerun_redoes_only_the_failed(make_app, emu, receiver) -> None:
    add_fleet(emu)
    app = make_app(BLUEPRINT_MAX_INSTANCES="500", BLUEPRINT_DISPATCH_THRESHOLD="500")
    emu.faults.fail("CreateBlueprint", "FailedOperation.CreateBlueprintFailed", times=5)
    event = timer_event({"Selector": SELECTOR})
    first = app.handle(event, context())  # not retryable: no raise, every instance reported
    outcomes = [r.get("Error", {}).get("Code") for r in first["Results"]]
    assert outcomes.count("FailedOperation.CreateBlueprintFailed") == 5
    assert outcomes.count(None) == 115
    summary = received_events(receiver)[-1]["data"]
    assert summary["Counts"] == {"created": 115, "failed": 5}
    assert len(summary["Failures"]) == 5
    before = len(emu.calls_of("CreateBlueprint"))
    app.handle(event, context())
    assert len(emu.calls_of("CreateBlueprint")) - before == 5
    assert len(managed_sources(emu)) == 120
    # The rerun reports the 115 it found again (same event ids) and the 5 it made.
    assert received_events(receiver)[-1]["data"]["Counts"] == {"created": 120}
    rerun = [e for e in received_events(receiver)[-121:-1] if e["type"].endswith(".created")]
    assert sum(bool(e["data"].get("Resent")) for e in rerun) == 115


def test_retryable_failures_make_the_timer_raise(make_app, emu) -> None:
    add_fleet(emu, total=9, tagged=9)
    emu.faults.fail("CreateBlueprint", "InternalError", times=40)
    with pytest.raises(BlueprintError, match="retry can fix"):
        make_app().handle(timer_event({"Selector": SELECTOR}), context())


def test_max_instances_refuses_and_says_how_many_matched(make_app, emu) -> None:
    add_fleet(emu, total=30, tagged=30)
    answer = make_app(BLUEPRINT_MAX_INSTANCES="20").handle(timer_event({"Selector": SELECTOR}), context())
    assert "30 instances matched" in answer["Error"]["Message"]
    assert emu.calls_of("CreateBlueprint") == []


def test_all_regions_wildcard(make_app, emu) -> None:
    job = {"Selector": {"Regions": ["*"], "Tags": [{"Key": "backup", "Value": "daily"}]}}
    make_app().handle(timer_event(job), context())
    assert sorted(managed_sources(emu)) == ["lhins-db000001", "lhins-sh000001", "lhins-web00001"]


def test_instance_ids_across_regions(make_app, emu) -> None:
    job = {"InstanceIds": ["lhins-web00001", "ap-shanghai:lhins-sh000001"]}
    make_app().handle(timer_event(job), context())
    regions = {c.params["InstanceId"]: c.region for c in emu.calls_of("CreateBlueprint")}
    assert regions == {"lhins-web00001": "ap-guangzhou", "lhins-sh000001": "ap-shanghai"}


def test_dry_run_lists_the_plan(make_app, emu) -> None:
    add_fleet(emu, total=12, tagged=6)
    answer = make_app().handle(timer_event({"Selector": SELECTOR, "DryRun": True}), context())
    assert len(answer["Results"]) == 6
    assert all(r["DryRun"] for r in answer["Results"])
    assert emu.calls_of("CreateBlueprint") == []


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_dry_run_refuses_over_max_instances_as_the_real_run_does(make_app, emu, dry_run: bool) -> None:
    # One instance exists, one does not: the real run would try both, so its dry run counts both too.
    job = {"InstanceIds": ["lhins-web00001", "lhins-nope0001"], "DryRun": dry_run}
    answer = make_app(BLUEPRINT_MAX_INSTANCES="1").handle(http_event(body=job), context())
    assert answer["statusCode"] == 400
    assert orjson.loads(answer["body"])["Error"]["Code"] == "LimitExceeded.MaxInstances"
    assert emu.calls_of("CreateBlueprint") == []


@pytest.mark.parametrize("tagged", [30, pytest.param(200, marks=pytest.mark.longrun)])
def test_fan_out_dispatches_one_child_per_region_batch_and_they_complete(make_app, emu, receiver,
                                                                         tagged: int) -> None:
    wanted = add_fleet(emu, total=tagged * 2, tagged=tagged)
    app = make_app(BLUEPRINT_MAX_INSTANCES="500", BLUEPRINT_DISPATCH_THRESHOLD="1")
    # Children run in other warm containers of the same function (the same variables): their own App and
    # clock (their waits are not the parent's).
    emu.scf.register("lighthouse-blueprint", make_app(BLUEPRINT_MAX_INSTANCES="500",
                                                      BLUEPRINT_DISPATCH_THRESHOLD="1").handle)
    answer = app.handle(timer_event({"Selector": SELECTOR}), context())
    assert answer["Dispatched"] == tagged  # every instance accounted for, each with its child's request id
    assert emu.scf.wait_idle(timeout=300)
    assert sorted(managed_sources(emu)) == sorted(wanted)
    children = [i for i in emu.scf.invocations if i["FunctionName"] == "lighthouse-blueprint"]
    # A child is a batch: here one per region (each region has fewer than 100), not one per instance.
    assert len(children) == len(REGIONS) and all(i["InvocationType"] == "Event" for i in children)
    envelopes = [orjson.loads(i["ClientContext"]) for i in children]
    assert sorted({t["Region"] for t in e["Targets"]}.pop() for e in envelopes) == sorted(REGIONS)
    assert all(len({t["Region"] for t in e["Targets"]}) == 1 for e in envelopes)
    assert sorted(t["InstanceId"] for e in envelopes for t in e["Targets"]) == sorted(wanted)
    # Each child draws on its part of the account's rate: together, the whole of it.
    assert sum(e["Share"] for e in envelopes) == pytest.approx(1.0)
    # Each child is idempotent on its own: running the fan-out again makes nothing new.
    app.handle(timer_event({"Selector": SELECTOR}), context())
    assert emu.scf.wait_idle(timeout=300)
    assert sorted(managed_sources(emu)) == sorted(wanted)
    created = [e for e in received_events(receiver) if e["type"].endswith(".created")]
    # The rerun's children report the images again under the same ids: one id per instance.
    assert len({e["id"] for e in created}) == tagged
    assert len(created) == 2 * tagged


def test_automatic_fan_out_above_the_threshold(make_app, emu) -> None:
    add_fleet(emu, total=12, tagged=12)
    app = make_app(BLUEPRINT_DISPATCH_THRESHOLD="5")
    # Children run in other warm containers: their own App and clock (their waits are not the parent's).
    emu.scf.register("lighthouse-blueprint", make_app().handle)
    answer = app.handle(timer_event({"Selector": SELECTOR}), context())
    assert answer["Dispatched"] == 12
    assert emu.scf.wait_idle(timeout=60)
    assert len(managed_sources(emu)) == 12


def test_a_child_that_starts_after_its_deadline_makes_no_image(make_app, emu, receiver) -> None:
    app = make_app()
    late = {"Chained": 1, "Kind": "child", "Job": {}, "SlotKey": "timer|tick|daily|x", "CorrelationId": "corr-1",
            "Targets": [{"Region": "ap-guangzhou", "InstanceId": "lhins-web00001", "BlueprintName": "n"}],
            "Deadline": "2020-01-01T00:00:00Z",
            "Trigger": {"Type": "timer", "Name": "daily", "Time": "2019-12-31T03:00:00Z"}}
    answer = app.handle(late, context())  # not retryable: reported, not raised
    assert answer["Error"]["Code"] == "FailedOperation.SlotExpired"
    assert emu.calls_of("CreateBlueprint") == []
    failed = received_events(receiver)[0]
    assert failed["type"].endswith(".failed") and failed["subject"] == "lhins-web00001"


def test_children_carry_slot_deadline_and_correlation_id(make_app, emu) -> None:
    emu.scf.add_function("lighthouse-blueprint")
    app = make_app(BLUEPRINT_DISPATCH_THRESHOLD="1")
    app.handle(timer_event({"InstanceIds": ["lhins-web00001", "lhins-db000001"]}), context(request_id="parent-1"))
    children = [orjson.loads(i["ClientContext"]) for i in emu.scf.invocations]
    assert len(children) == 1  # one batch: both instances are in ap-guangzhou
    assert children[0]["Share"] == 1.0
    assert {c["CorrelationId"] for c in children} == {"parent-1"}
    assert {c["SlotKey"] for c in children} == {"timer|tick|daily|2026-11-27T03:00:00Z"}
    assert all(c["Deadline"] > "2026-" for c in children)
    assert sorted(t["InstanceId"] for c in children for t in c["Targets"]) == ["lhins-db000001", "lhins-web00001"]
    # Names travel rendered (plain data), never as a template for the child to fill in again.
    assert {t["BlueprintName"] for c in children for t in c["Targets"]} == {
        "lhins-db000001-20261127-030000", "lhins-web00001-20261127-030000"}


def test_inline_run_short_of_time_hands_the_rest_to_children(make_app, emu, receiver) -> None:
    add_fleet(emu, total=5, tagged=5)
    app = make_app()
    # Children run in other warm containers: their own App and clock (their waits are not the parent's).
    emu.scf.register("lighthouse-blueprint", make_app().handle)
    # 7 s limit minus the 3 s margin leaves less than one instance's budget: nothing starts inline.
    answer = app.handle(timer_event({"Selector": SELECTOR}), context(time_limit_in_ms=7_000))
    assert answer["Dispatched"] == 5
    assert answer["Results"] == []
    assert emu.scf.wait_idle(timeout=60)
    assert len(managed_sources(emu)) == 5
    types = [e["type"].rsplit(".", 1)[-1] for e in received_events(receiver)]
    assert types.count("created") == 5 and "failed" not in types


def test_a_child_that_could_not_be_dispatched_is_reported_and_the_timer_retries(make_app, emu, receiver) -> None:
    emu.scf.add_function("lighthouse-blueprint")
    emu.faults.fail("Invoke", "InternalError", times=3)  # every attempt of the (one) batch's call fails
    app = make_app(BLUEPRINT_DISPATCH_THRESHOLD="1")
    job = {"InstanceIds": ["lhins-web00001", "lhins-db000001"]}
    with pytest.raises(BlueprintError, match="retry can fix"):
        app.handle(timer_event(job), context())
    assert emu.scf.invocations == []
    failed = [e for e in received_events(receiver) if e["type"].endswith(".failed")]
    # Every instance of the batch that could not be sent is reported, with an error a retry can fix.
    assert sorted(e["subject"] for e in failed) == ["lhins-db000001", "lhins-web00001"]
    assert {e["data"]["Error"]["Code"] for e in failed} == {"InternalError"}
    # The platform's retry sends the batch.
    assert app.handle(timer_event(job), context())["Dispatched"] == 2
    [child] = [orjson.loads(i["ClientContext"]) for i in emu.scf.invocations]
    assert sorted(t["InstanceId"] for t in child["Targets"]) == ["lhins-db000001", "lhins-web00001"]


def test_a_listing_by_more_instance_ids_than_a_filter_holds_goes_out_in_parts(make_app, emu) -> None:
    wanted = sorted(add_fleet(emu, total=150, tagged=150))
    app = make_app()
    app.clients.use(read_credentials(base_env(emu, None)))
    deadline = Deadline.after(SystemClock(), 30)
    guangzhou = [i for i in wanted if int(i[-7:]) % 3 == 0]
    made = guangzhou[:3]  # images of three instances of ap-guangzhou, and one the filters over-match
    for instance in made:
        app.lighthouse.create_blueprint("ap-guangzhou", name=instance, instance_id=instance, description=None,
                                        force_power_off=False, tags={INSTANCE_TAG: instance}, deadline=deadline)
    app.lighthouse.create_blueprint("ap-guangzhou", name="other", instance_id=guangzhou[3], description=None,
                                    force_power_off=False, tags={INSTANCE_TAG: "lhins-zz000000", "team": made[1]},
                                    deadline=deadline)
    before = len(emu.calls)
    # A filter takes at most 100 values: 150 instance ids go out in two parts; only exact tag pairs come back.
    found = app.lighthouse.find_images("ap-guangzhou", deadline=deadline, tag_key=INSTANCE_TAG, tag_values=wanted)
    assert sorted(i.tags[INSTANCE_TAG] for i in found) == made
    calls = emu.calls[before:]
    assert len(calls) == 2 and all(c.action == "DescribeBlueprints" for c in calls)
    assert [len(next(f["Values"] for f in c.params["Filters"] if f["Name"] == "tag-value")) for c in calls] == \
        [100, 50]


def test_an_explicit_invoke_sends_one_call_per_instance(make_app, emu) -> None:
    # `Dispatch: "invoke"` asks for one async call of the function per instance (each retried and dead-lettered
    # on its own); only the automatic switch sends batches.
    emu.scf.add_function("lighthouse-blueprint")
    add_fleet(emu, total=6, tagged=6)
    answer = make_app().handle(timer_event({"Selector": SELECTOR, "Dispatch": "invoke"}), context())
    assert answer["Dispatched"] == 6
    children = [orjson.loads(i["ClientContext"]) for i in emu.scf.invocations]
    assert len(children) == 6 and all(len(c["Targets"]) == 1 for c in children)
    assert sum(c["Share"] for c in children) == pytest.approx(1.0)


def test_a_fleets_creates_side_by_side_keep_their_connections(make_app, emu, caplog) -> None:
    """BLUEPRINT_CONCURRENCY (20 by default) creates at once on one client: each keeps its connection (the
    SDK's session would keep 10 and open, and TLS-handshake, a new one for every call beyond)."""
    add_fleet(emu, total=60, tagged=60)
    emu.latency = 0.05  # the creates of a window overlap
    app = make_app(BLUEPRINT_MAX_INSTANCES="500", BLUEPRINT_CONCURRENCY=None, BLUEPRINT_DISPATCH_THRESHOLD="500")
    with caplog.at_level("WARNING", logger="urllib3.connectionpool"):
        answer = app.handle(timer_event({"Selector": {"Regions": ["ap-guangzhou"], "Tags": SELECTOR["Tags"]}}),
                            context())
    assert len(answer["Results"]) == 20 and all("Error" not in r for r in answer["Results"])
    assert max_in_flight(emu, "CreateBlueprint") > 10
    assert [r.getMessage() for r in caplog.records if "pool is full" in r.getMessage()] == []


def max_in_flight(emu, action: str) -> int:
    """The most calls of `action` the emulator was answering at once."""
    spans = [(c.time - emu.latency, c.time) for c in emu.calls_of(action)]
    return max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
