"""Unit tests of the use case's pure rules, and of the core against a fake Lighthouse port."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from blueprint.errors import (
    BlueprintError,
    CloudRejected,
    CloudUnavailable,
    DeadlineExceeded,
    InstanceBusy,
    QuotaExceeded,
    Throttled,
)
from blueprint.events import TriggerInfo, parse_job
from blueprint.images import (
    INSTANCE_TAG,
    SLOT_TAG,
    ImageMaker,
    Policy,
    default_name,
    plan_held,
    plan_prune,
    render_name,
)
from blueprint.lighthouse import Created, Image
from blueprint.retry import Deadline, RateLimiter, RetryPolicy
from blueprint.slots import slot_digest
from tests.conftest import FrozenClock

T0 = datetime(2026, 11, 27, 3, 0, tzinfo=timezone.utc)


def image(n: int, state: str = "NORMAL", *, slot: str | None = None, instance: str = "lhins-web00001") -> Image:
    return Image(id=f"lhbp-{n:08d}", name=f"img{n}", state=state, region="ap-guangzhou",
                 created=T0 + timedelta(days=n),
                 tags={INSTANCE_TAG: instance, SLOT_TAG: slot or f"slot{n}"})


def ids(images) -> list[str]:
    return sorted(i.id for i in images)


def test_default_name_is_deterministic_and_short() -> None:
    assert default_name("lhins-web00001", T0) == "lhins-web00001-20261127-030000"
    assert len(default_name("lhins-web00001", T0)) <= 60


def test_render_name_trims_the_instance_name_to_fit() -> None:
    name = render_name("{InstanceName}-{InstanceId}-{Date}", "lhins-web00001", "n" * 80, T0)
    assert len(name) == 60
    assert name.endswith("-lhins-web00001-20261127")
    assert render_name("fixed", "lhins-web00001", "", T0) == "fixed"


def test_prune_keeps_the_newest_keep() -> None:
    images = [image(n) for n in range(5)]
    assert ids(plan_prune(images, 2)) == ids(images[:3])


def test_prune_never_deletes_in_progress_or_the_newest_normal() -> None:
    images = [image(0), image(1), image(2, "CREATING")]
    # keep=1 would keep only the CREATING one, but the newest NORMAL (1) must stay too.
    assert ids(plan_prune(images, 1)) == ids([images[0]])
    assert plan_prune([image(0, "CREATING"), image(1, "CREATING")], 1) == []


def test_held_is_what_the_newest_normal_rule_alone_keeps() -> None:
    older, newer, making = image(0), image(1), image(2, "CREATING")
    doomed = plan_prune([older, newer, making], 1)
    assert ids(doomed) == ids([older])
    # Once the new one is NORMAL, the newest NORMAL before it goes too; with Keep 2 it stays for good.
    assert ids(plan_held([older, newer], 1, doomed)) == ids([newer])
    assert plan_held([older, newer], 2, plan_prune([older, newer, making], 2)) == []
    # Still never one in progress.
    assert plan_held([image(0, "CREATING"), newer], 1, doomed) == [newer]


def test_prune_removes_slot_duplicates_and_failed_images() -> None:
    oldest, twin = image(0, slot="s"), image(1, slot="s")
    failed = image(2, "CREATEFAILED")
    assert ids(plan_prune([oldest, twin, failed, image(3)], 10)) == ids([twin, failed])


class FakeLighthouse:
    """A fake at the port: keeps images in memory, can fail on cue, counts calls."""

    def __init__(self) -> None:
        self.images: list[Image] = []
        self.calls: list[str] = []
        self.failures: dict[str, list[BlueprintError]] = {}
        self.lost_answers = 0
        self.lock = threading.Lock()
        self.instances = {"lhins-web00001", "lhins-db000001"}

    def _maybe_fail(self, action: str) -> None:
        self.calls.append(action)
        queue = self.failures.get(action) or []
        if queue:
            raise queue.pop(0)

    def create_blueprint(self, region, *, name, instance_id, description, force_power_off, tags, deadline):
        self._maybe_fail("CreateBlueprint")
        with self.lock:
            new = Image(id=f"lhbp-{len(self.images):08d}", name=name, state="CREATING", region=region,
                        created=T0 + timedelta(seconds=len(self.images)), tags=dict(tags))
            self.images.append(new)
        if self.lost_answers:
            self.lost_answers -= 1
            raise CloudUnavailable("lost", code="ClientNetworkError")
        return Created(new.id, "req-1")

    def find_images(self, region, *, deadline, tags=None, tag_key=None, ids=None, names=None, at_least=0,
                    tag_values=None):
        self._maybe_fail("DescribeBlueprints")
        found = [i for i in self.images if all(i.tags.get(k) == v for k, v in (tags or {}).items())]
        if tag_key:
            found = [i for i in found if tag_key in i.tags and (not tag_values or i.tags[tag_key] in tag_values)]
        if ids:
            found = [i for i in found if i.id in ids]
        return found

    def delete_images(self, region, ids, *, deadline):
        self._maybe_fail("DeleteBlueprints")
        self.images = [i for i in self.images if i.id not in ids]
        return "req-del"

    def find_instances(self, region, *, deadline, ids=None, tags=None):
        # The instances exist (a dry run looks them up), with nothing known of them: no name, tags or state.
        from blueprint.lighthouse import Instance

        return [Instance(id=i, name="", state="", region=region) for i in ids or [] if i in self.instances]

    def image_quota(self, region, *, deadline):
        return 20, 0

    def regions(self, region, *, deadline):
        return ["ap-guangzhou"]


TRIGGER = TriggerInfo(Type="timer", Name="daily", Time=T0)


def run(maker: ImageMaker, job: dict, clock: FrozenClock, *, seconds: float = 600):
    parsed = parse_job(job)
    deadline = Deadline.after(clock, seconds)
    plan = maker.plan(parsed, "ap-guangzhou", deadline)
    report, overflow = maker.run(parsed, plan.targets, trigger=TRIGGER, slot_key="timer:daily", deadline=deadline,
                                 refused=plan.refused)
    return report, overflow


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


def test_throttling_is_retried_with_backoff(clock) -> None:
    fake = FakeLighthouse()
    fake.failures["CreateBlueprint"] = [Throttled("slow down"), Throttled("slow down")]
    maker = ImageMaker(fake, clock=clock, retry=RetryPolicy(rng=lambda: 1.0))
    report, _ = run(maker, {"InstanceId": "lhins-web00001"}, clock)
    assert [r.outcome for r in report.results] == ["created"]
    assert clock.slept == [0.2, 0.4]  # throttling backs off briefly: our limiter paces the retry too


def test_lost_answer_is_found_by_slot_and_not_resent(clock) -> None:
    fake = FakeLighthouse()
    fake.lost_answers = 1
    report, _ = run(ImageMaker(fake, clock=clock), {"InstanceId": "lhins-web00001"}, clock)
    assert fake.calls.count("CreateBlueprint") == 1
    assert [r.outcome for r in report.results] == ["created"]
    assert len(fake.images) == 1


def test_busy_instance_with_a_twin_made_image_is_skipped(clock) -> None:
    fake = FakeLighthouse()

    class TwinMakesIt(list):
        def pop(self, index=-1):
            self.clear()
            fake.images.append(Image(id="lhbp-twin0000", name="twin", state="CREATING", region="ap-guangzhou",
                                     created=T0, tags={INSTANCE_TAG: "lhins-web00001", SLOT_TAG: slot}))
            return InstanceBusy("busy")

    from blueprint.images import slot_digest

    slot = slot_digest("timer:daily")
    fake.failures["CreateBlueprint"] = TwinMakesIt([1])
    report, _ = run(ImageMaker(fake, clock=clock), {"InstanceId": "lhins-web00001"}, clock)
    # The twin's image is reported as this slot's, with the same event ids the twin used (at least once).
    assert [(r.outcome, r.blueprint_id, r.resent, r.reason) for r in report.results] == [
        ("created", "lhbp-twin0000", True, "made by a concurrent invocation")]
    assert len(fake.images) == 1


def test_non_retryable_error_is_not_retried(clock) -> None:
    fake = FakeLighthouse()
    fake.failures["CreateBlueprint"] = [QuotaExceeded("full")]
    report, _ = run(ImageMaker(fake, clock=clock), {"InstanceId": "lhins-web00001"}, clock)
    assert report.results[0].outcome == "failed"
    assert report.results[0].error.code == "LimitExceeded.BlueprintQuotaLimitExceeded"
    assert fake.calls.count("CreateBlueprint") == 1


def test_no_time_left_hands_instances_on(clock) -> None:
    fake = FakeLighthouse()
    maker = ImageMaker(fake, clock=clock)
    report, overflow = run(maker, {"InstanceIds": ["lhins-web00001", "lhins-db000001"]}, clock, seconds=3)
    assert [t.ref.InstanceId for t in overflow] == ["lhins-web00001", "lhins-db000001"]
    # Nothing is claimed for them here: the caller hands them on (or reports them as not started).
    assert report.results == []
    assert fake.calls.count("CreateBlueprint") == 0


def test_max_instances_brake(clock) -> None:
    maker = ImageMaker(FakeLighthouse(), clock=clock, policy=Policy(max_instances=1))
    with pytest.raises(BlueprintError, match="2 instances matched, more than MaxInstances=1"):
        run(maker, {"InstanceIds": ["lhins-web00001", "lhins-db000001"]}, clock)


def test_allowlist_refuses_before_any_cloud_write(clock) -> None:
    fake = FakeLighthouse()
    maker = ImageMaker(fake, clock=clock, policy=Policy(allowed_instances=frozenset({"lhins-db000001"})))
    report, _ = run(maker, {"InstanceIds": ["lhins-web00001", "lhins-db000001"]}, clock)
    outcomes = {r.instance_id: (r.outcome, r.error.code if r.error else None) for r in report.results}
    assert outcomes == {"lhins-web00001": ("failed", "UnauthorizedOperation.InstanceNotAllowed"),
                        "lhins-db000001": ("created", None)}
    assert [i.tags[INSTANCE_TAG] for i in fake.images] == ["lhins-db000001"]


def test_rate_limiter_allows_at_most_n_in_any_window(clock) -> None:
    limiter = RateLimiter(20, clock=clock)
    stamps = []
    for _ in range(60):
        limiter.acquire()
        stamps.append(clock.now)
    for i in range(len(stamps) - 20):
        assert stamps[i + 20] - stamps[i] >= 1.0
    assert stamps[-1] - stamps[0] < 3.0


def test_rate_limiter_respects_the_deadline(clock) -> None:
    limiter = RateLimiter(1, clock=clock)
    limiter.acquire()
    with pytest.raises(DeadlineExceeded):
        limiter.acquire(Deadline.after(clock, 0.5))


def test_retry_lets_the_last_error_through(clock) -> None:
    policy = RetryPolicy(attempts=3, rng=lambda: 0.0)
    calls = []

    def always() -> None:
        calls.append(1)
        raise CloudUnavailable(f"attempt {len(calls)}")

    with pytest.raises(CloudUnavailable, match="attempt 3"):
        policy.call(always, deadline=Deadline.after(clock, 100))
    assert len(calls) == 3


def test_retry_stops_when_the_deadline_is_near(clock) -> None:
    policy = RetryPolicy(attempts=10, rng=lambda: 1.0)
    calls = []

    def always() -> None:
        calls.append(1)
        raise Throttled("again")

    with pytest.raises(Throttled):
        policy.call(always, deadline=Deadline.after(clock, 4))
    assert sum(clock.slept) < 4


# ---- issue 12: tests that guard the guarantees (each one catches a small planted bug) ---------------------

class ListingLeaks(FakeLighthouse):
    """A listing that returns images it should not (a cloud-side filter bug, or a tag filter read loosely)."""

    def find_images(self, region, *, deadline, tags=None, tag_key=None, ids=None, names=None, at_least=0,
                    tag_values=None):
        self._maybe_fail("DescribeBlueprints")
        return [i for i in self.images if not ids or i.id in ids]


def foreign(n: int, tags: dict[str, str]) -> Image:
    return Image(id=f"lhbp-f{n:07d}", name=f"user{n}", state="NORMAL", region="ap-guangzhou",
                 created=T0 - timedelta(days=30 + n), tags=tags)


@pytest.mark.parametrize("tags", [{}, {INSTANCE_TAG: "lhins-web00001"}, {SLOT_TAG: "x"},
                                  {INSTANCE_TAG: "lhins-other001", SLOT_TAG: "x"}, {"scf-blueprint": "lhins-web00001"}])
def test_retention_never_deletes_an_image_without_both_managed_tags_whatever_a_listing_returns(clock, tags) -> None:
    fake = ListingLeaks()
    fake.images = [foreign(n, tags) for n in range(3)]
    maker = ImageMaker(fake, clock=clock, policy=Policy(keep=1))
    run(maker, {"InstanceId": "lhins-web00001"}, clock)
    assert fake.calls.count("DeleteBlueprints") == 0
    assert len([i for i in fake.images if i.id.startswith("lhbp-f")]) == 3


def test_retention_still_prunes_its_own_images(clock) -> None:
    fake = ListingLeaks()
    fake.images = [replace(image(n, slot=f"old{n}"), created=T0 - timedelta(days=10 - n)) for n in range(3)]
    report, _ = run(ImageMaker(fake, clock=clock, policy=Policy(keep=2)), {"InstanceId": "lhins-web00001"}, clock)
    assert sorted(r.blueprint_id for r in report.results if r.outcome == "pruned") == ["lhbp-00000000", "lhbp-00000001"]


class TwinLandsFirst(FakeLighthouse):
    """The cloud accepted a twin invocation's create too: it shows up only after ours, with an older or newer
    CreatedTime."""

    def __init__(self, twin_age: timedelta) -> None:
        super().__init__()
        self.twin_age = twin_age

    def create_blueprint(self, region, *, name, instance_id, description, force_power_off, tags, deadline):
        made = super().create_blueprint(region, name=name, instance_id=instance_id, description=description,
                                        force_power_off=force_power_off, tags=tags, deadline=deadline)
        mine = next(i for i in self.images if i.id == made.blueprint_id)
        self.images.append(Image(id="lhbp-twin0000", name="twin", state="CREATING", region=region,
                                 created=mine.created + self.twin_age, tags=dict(tags)))
        return made


def test_a_race_is_won_by_the_oldest_image_of_the_slot(clock) -> None:
    fake = TwinLandsFirst(twin_age=-timedelta(seconds=5))  # the twin's image is older: it wins
    report, _ = run(ImageMaker(fake, clock=clock), {"InstanceId": "lhins-web00001"}, clock)
    [result] = report.results
    assert (result.outcome, result.blueprint_id, result.resent) == ("created", "lhbp-twin0000", True)


def test_a_race_keeps_our_image_when_it_is_the_oldest(clock) -> None:
    fake = TwinLandsFirst(twin_age=timedelta(seconds=5))  # the twin is younger: it loses, we keep ours
    report, _ = run(ImageMaker(fake, clock=clock), {"InstanceId": "lhins-web00001"}, clock)
    [result] = report.results
    assert result.blueprint_id == "lhbp-00000000" and not result.resent


class ImagesFinish(TwinLandsFirst):
    """Images in progress are NORMAL the next time they are asked for by id (as a run following them does)."""

    def find_images(self, region, *, deadline, tags=None, tag_key=None, ids=None, names=None, at_least=0,
                    tag_values=None):
        if ids:
            with self.lock:
                self.images = [replace(i, state="NORMAL") if i.id in ids else i for i in self.images]
        return super().find_images(region, deadline=deadline, tags=tags, tag_key=tag_key, ids=ids, names=names,
                                   at_least=at_least, tag_values=tag_values)


def test_a_race_loser_that_waits_deletes_its_own_image_once_the_cloud_allows(clock) -> None:
    fake = ImagesFinish(twin_age=-timedelta(seconds=5))  # the twin's image is older: ours is the duplicate
    report, _ = run(ImageMaker(fake, clock=clock), {"InstanceId": "lhins-web00001", "Wait": True}, clock)
    [result] = report.results
    assert (result.outcome, result.blueprint_id, result.resent) == ("ready", "lhbp-twin0000", True)
    assert [i.id for i in fake.images] == ["lhbp-twin0000"]  # ours went when it stopped being made
    assert fake.calls.count("DeleteBlueprints") == 1


def test_a_race_losers_image_left_in_progress_is_deleted_by_the_next_run_of_the_slot(clock) -> None:
    fake = TwinLandsFirst(twin_age=-timedelta(seconds=5))
    run(ImageMaker(fake, clock=clock), {"InstanceId": "lhins-web00001"}, clock)  # no Wait: ours still CREATING
    assert sorted(i.id for i in fake.images) == ["lhbp-00000000", "lhbp-twin0000"]
    assert clock.slept == []  # a run that does not wait does not wait for its duplicate either
    fake.images = [replace(i, state="NORMAL") for i in fake.images]
    fake.create_blueprint = None  # the slot's image exists: the retry must not create
    report, _ = run(ImageMaker(fake, clock=clock), {"InstanceId": "lhins-web00001"}, clock)
    [result] = report.results
    assert (result.blueprint_id, result.resent) == ("lhbp-twin0000", True)
    assert [i.id for i in fake.images] == ["lhbp-twin0000"]


def test_a_dry_run_never_deletes_a_slot_duplicate(clock) -> None:
    from blueprint.slots import slot_digest

    fake = FakeLighthouse()
    fake.images = [image(0, slot=slot_digest("timer:daily")), image(1, slot=slot_digest("timer:daily"))]
    report, _ = run(ImageMaker(fake, clock=clock), {"InstanceId": "lhins-web00001", "DryRun": True}, clock)
    assert [(r.dry_run, r.blueprint_id) for r in report.results] == [(True, "lhbp-00000000")]
    assert len(fake.images) == 2 and "DeleteBlueprints" not in fake.calls


def test_both_allowlists_must_admit_an_instance(clock) -> None:
    class Tagged(FakeLighthouse):
        def find_instances(self, region, *, deadline, ids=None, tags=None):
            from blueprint.lighthouse import Instance

            return [Instance(id=i, name=i, state="RUNNING", region=region,
                             tags={"env": "prod"} if i == "lhins-db000001" else {}) for i in ids or []]

    fake = Tagged()
    policy = Policy(allowed_instances=frozenset({"lhins-web00001", "lhins-db000001"}),
                    allowed_tags=(("env", "prod"),))
    report, _ = run(ImageMaker(fake, clock=clock, policy=policy),
                    {"InstanceIds": ["lhins-web00001", "lhins-db000001", "lhins-zzz00001"]}, clock)
    outcomes = {r.instance_id: r.error.code if r.error else r.outcome for r in report.results}
    assert outcomes == {"lhins-web00001": "UnauthorizedOperation.InstanceNotAllowed",
                        "lhins-db000001": "created", "lhins-zzz00001": "UnauthorizedOperation.InstanceNotAllowed"}


# ---- impatient callers and logged waits (issue 16) ------------------------------------------------------------

def test_an_impatient_deadline_does_not_wait_out_a_busy_instance(clock) -> None:
    fake = FakeLighthouse()
    fake.failures["CreateBlueprint"] = [InstanceBusy("busy")] * 3
    maker = ImageMaker(fake, clock=clock)
    parsed = parse_job({"InstanceId": "lhins-web00001"})
    deadline = Deadline.after(clock, 600).impatient()
    plan = maker.plan(parsed, "ap-guangzhou", deadline)
    report, _ = maker.run(parsed, plan.targets, trigger=TRIGGER, slot_key="timer:daily", deadline=deadline)
    assert [(r.outcome, r.error.code if r.error else None) for r in report.results] == [
        ("failed", "UnsupportedOperation.LatestOperationUnfinished")]
    assert clock.slept == []
    assert fake.calls.count("CreateBlueprint") == 1
    # The slot was looked up once more after the refusal (a twin may have made the image meanwhile).
    assert fake.calls.count("DescribeBlueprints") >= 2


def test_an_impatient_deadline_still_finds_a_twins_image_at_once(clock) -> None:
    policy = RetryPolicy()
    found = policy.call(lambda: (_ for _ in ()).throw(InstanceBusy("busy")),
                        deadline=Deadline.after(clock, 600).impatient(), before_retry=lambda err: "twin's image")
    assert found == "twin's image"
    assert clock.slept == []


def test_an_impatient_deadline_still_retries_throttling(clock) -> None:
    failures = [Throttled("slow down")]

    def call() -> str:
        if failures:
            raise failures.pop()
        return "done"

    assert RetryPolicy(rng=lambda: 1.0).call(call, deadline=Deadline.after(clock, 600).impatient()) == "done"
    assert clock.slept == [0.2]


def test_waits_are_counted_by_reason_and_shared_by_derived_deadlines(clock) -> None:
    deadline = Deadline.after(clock, 600)
    deadline.pause(2.0, "a retry")
    deadline.sooner(10).pause(0.5, "a retry")
    deadline.impatient().pause(1.5, "images to become NORMAL")
    deadline.pause(0, "nothing")
    assert deadline.waits.summary() == {"a retry": {"count": 2, "seconds": 2.5},
                                        "images to become NORMAL": {"count": 1, "seconds": 1.5}}
    assert clock.slept == [2.0, 0.5, 1.5]


def test_a_rate_limited_wait_is_counted_and_names_its_action(clock) -> None:
    import io

    import orjson

    from blueprint import logs

    stream = io.StringIO()
    logs.set_stream(stream)
    logs.set_level("DEBUG")
    try:
        limiter = RateLimiter(1, clock=clock, name="CreateBlueprint")
        deadline = Deadline.after(clock, 600)
        limiter.acquire(deadline)
        limiter.acquire(deadline)
    finally:
        logs.set_stream(None)
        logs.set_level("INFO")
    (line,) = [orjson.loads(x) for x in stream.getvalue().splitlines()]
    assert (line["level"], line["waiting_for"], line["action"]) == ("INFO", "the API rate limit", "CreateBlueprint")
    assert deadline.waits.summary()["the API rate limit"]["count"] == 1


# ---- edges mutation testing found unguarded (docs/mutation.md) ------------------------------------------------

DIGEST = slot_digest("timer:daily")


def old(n: int, *, instance: str = "lhins-web00001", state: str = "NORMAL", slot: str | None = None) -> Image:
    """An image an earlier run made (days before T0, ids apart from the ones the fake hands out)."""
    return Image(id=f"lhbp-old{n:05d}", name=f"old{n}", state=state, region="ap-guangzhou",
                 created=T0 - timedelta(days=10 - n), tags={INSTANCE_TAG: instance, SLOT_TAG: slot or f"old-slot-{n}"})


def outcomes(report) -> list[tuple[str, str, str | None]]:
    return sorted((r.instance_id, r.outcome, r.blueprint_id) for r in report.results)


def test_render_name_shares_the_room_between_placeholders_and_never_passes_60() -> None:
    assert render_name("{InstanceName}-{InstanceName}", "lhins-web00001", "n" * 80, T0) == "n" * 29 + "-" + "n" * 29
    assert render_name("{InstanceName}" + "x" * 60, "lhins-web00001", "web", T0) == "x" * 60  # no room left
    assert render_name("{InstanceId}" * 5, "lhins-web00001", "", T0) == ("lhins-web00001" * 5)[:60]


def test_the_instance_name_alone_is_a_name_and_a_blank_one_stands_as_the_id() -> None:
    assert render_name("{InstanceName}", "lhins-web00001", "web-1", T0) == "web-1"
    assert render_name("{InstanceName}", "lhins-web00001", "", T0) == "lhins-web00001"
    assert render_name("{InstanceName}-{Date}", "lhins-web00001", "  ", T0) == "lhins-web00001-20261127"


def test_an_image_without_a_creation_time_counts_as_the_oldest() -> None:
    undated = replace(image(0), created=None)
    assert ids(plan_prune([image(2), undated, image(1)], 1)) == ids([undated, image(1)])


def test_results_carry_the_slot_key_so_event_ids_differ_per_slot(clock) -> None:
    report, _ = run(ImageMaker(FakeLighthouse(), clock=clock), {"InstanceId": "lhins-web00001"}, clock)
    [result] = report.results
    assert result.slot_key == "timer:daily"
    assert result.event_id() != replace(result, slot_key="timer:other").event_id()


def test_exactly_max_instances_is_allowed_and_matched_counts_the_refused(clock) -> None:
    policy = Policy(max_instances=2, allowed_instances=frozenset({"lhins-web00001", "lhins-db000001"}))
    report, _ = run(ImageMaker(FakeLighthouse(), clock=clock, policy=policy),
                    {"InstanceIds": ["lhins-web00001", "lhins-zzz00001"]}, clock)
    assert report.matched == 2
    assert [(r.instance_id, r.outcome) for r in report.results] == [
        ("lhins-zzz00001", "failed"), ("lhins-web00001", "created")]


class TwoRegions(FakeLighthouse):
    """Tagged instances in two regions; `*` means every region the account has."""

    def __init__(self) -> None:
        super().__init__()
        self.asked_from: list[str] = []

    def regions(self, region, *, deadline):
        self.asked_from.append(region)
        return ["ap-guangzhou", "ap-shanghai"]

    def find_instances(self, region, *, deadline, ids=None, tags=None):
        from blueprint.lighthouse import Instance

        home = {"ap-guangzhou": "lhins-gz000001", "ap-shanghai": "lhins-sh000001"}[region]
        return [Instance(id=home, name=home, state="RUNNING", region=region, tags={"env": "prod"})]


def test_a_selector_over_every_region_images_each_regions_instances(clock) -> None:
    fake = TwoRegions()
    job = {"Selector": {"Regions": ["*"], "Tags": [{"Key": "env", "Value": "prod"}]}}
    report, _ = run(ImageMaker(fake, clock=clock), job, clock)
    assert fake.asked_from == ["ap-guangzhou"]
    assert sorted((r.region, r.instance_id, r.outcome) for r in report.results) == [
        ("ap-guangzhou", "lhins-gz000001", "created"), ("ap-shanghai", "lhins-sh000001", "created")]


def test_a_region_that_fails_halfway_reports_each_instance_once(clock) -> None:
    class InstancesDown(FakeLighthouse):
        def find_instances(self, region, *, deadline, ids=None, tags=None):
            raise CloudRejected("the instance listing failed", code="FailedOperation")

    fake = InstancesDown()
    fake.images = [replace(old(0, slot=DIGEST), id="lhbp-found001", name="found")]  # web's image of this slot
    report, _ = run(ImageMaker(fake, clock=clock), {"InstanceIds": ["lhins-web00001", "lhins-db000001"],
                                                    "Wait": True}, clock)
    assert sorted((r.instance_id, r.outcome, r.resent) for r in report.results) == [
        ("lhins-db000001", "failed", False), ("lhins-web00001", "ready", True)]
    assert fake.calls.count("CreateBlueprint") == 0


def test_an_image_already_made_for_the_slot_is_reported_with_its_name_state_and_readiness(clock) -> None:
    fake = FakeLighthouse()
    fake.images = [replace(old(0, slot=DIGEST), id="lhbp-found001", name="found", request_id="req-found")]
    report, _ = run(ImageMaker(fake, clock=clock), {"InstanceId": "lhins-web00001"}, clock)
    [result] = report.results
    assert (result.outcome, result.blueprint_id, result.blueprint_name, result.state, result.request_id,
            result.resent) == ("ready", "lhbp-found001", "found", "NORMAL", "req-found", True)
    dry, _ = run(ImageMaker(fake, clock=clock), {"InstanceId": "lhins-web00001", "DryRun": True}, clock)
    [skipped] = dry.results
    assert (skipped.outcome, skipped.dry_run, skipped.blueprint_id, skipped.blueprint_name, skipped.state,
            skipped.request_id) == ("skipped", True, "lhbp-found001", "found", "NORMAL", "req-found")
    assert skipped.reason == "dry run: an image was already made for this slot"
    assert fake.calls.count("CreateBlueprint") == 0


def test_a_dry_run_shows_what_retention_would_delete_of_this_instance_only(clock) -> None:
    fake = ListingLeaks()  # the listing returns the other instance's managed images too
    fake.images = [old(n) for n in range(4)] + [old(n + 10, instance="lhins-db000001") for n in range(4)]
    maker = ImageMaker(fake, clock=clock, policy=Policy(keep=3))
    report, _ = run(maker, {"InstanceId": "lhins-web00001", "DryRun": True, "BlueprintName": "n-{InstanceId}"}, clock)
    [result] = report.results
    # Keep 3 counts the image the run would make: two of the four old ones would go, the oldest first.
    assert result.would_delete == ("lhbp-old00001", "lhbp-old00000")
    assert (result.outcome, result.blueprint_name) == ("skipped", "n-lhins-web00001")
    assert fake.calls.count("DeleteBlueprints") == 0


def test_after_a_lost_answer_the_found_image_is_ours_and_retention_runs(clock) -> None:
    fake = FakeLighthouse()
    fake.images = [old(0), old(1)]
    fake.lost_answers = 1
    report, _ = run(ImageMaker(fake, clock=clock, policy=Policy(keep=2)), {"InstanceId": "lhins-web00001"}, clock)
    made = next(r for r in report.results if r.outcome == "created")
    assert (made.resent, made.reason, made.pruned) == (False, None, ("lhbp-old00000",))
    assert sorted(i.id for i in fake.images) == ["lhbp-00000002", "lhbp-old00001"]


def test_quota_recovery_deletes_down_to_keep_minus_one_and_no_further(clock) -> None:
    fake = FakeLighthouse()
    fake.images = [old(n) for n in range(3)]
    fake.failures["CreateBlueprint"] = [QuotaExceeded("full", request_id="req-quota")]
    report, _ = run(ImageMaker(fake, clock=clock, policy=Policy(keep=3)), {"InstanceId": "lhins-web00001"}, clock)
    assert sorted(i.id for i in fake.images) == ["lhbp-00000002", "lhbp-old00001", "lhbp-old00002"]
    assert [(r.outcome, r.blueprint_id) for r in report.results if r.outcome == "pruned"] == [
        ("pruned", "lhbp-old00000")]


def test_an_instance_whose_create_failed_is_not_pruned(clock) -> None:
    class RefusesZzz(FakeLighthouse):
        def create_blueprint(self, region, *, instance_id, **kwargs):
            if instance_id == "lhins-zzz00001":
                raise CloudRejected("refused", code="FailedOperation.InsufficientBalance", request_id="req-refused")
            return super().create_blueprint(region, instance_id=instance_id, **kwargs)

    fake = RefusesZzz()
    fake.images = [old(0, instance="lhins-zzz00001"), old(1, instance="lhins-zzz00001")]
    report, _ = run(ImageMaker(fake, clock=clock, policy=Policy(keep=2)),
                    {"InstanceIds": ["lhins-web00001", "lhins-db000001", "lhins-zzz00001"]}, clock)
    failed = next(r for r in report.results if r.instance_id == "lhins-zzz00001")
    assert (failed.outcome, failed.request_id, failed.blueprint_name) == (
        "failed", "req-refused", "lhins-zzz00001-20261127-030000")
    assert fake.calls.count("DeleteBlueprints") == 0
    assert {"lhbp-old00000", "lhbp-old00001"} <= {i.id for i in fake.images}


class LaggingListing(FakeLighthouse):
    """A listing that does not show an image made moments ago yet (tag listings lag behind creates)."""

    def find_images(self, region, *, deadline, tags=None, tag_key=None, ids=None, names=None, at_least=0,
                    tag_values=None):
        return [i for i in super().find_images(region, deadline=deadline, tags=tags, tag_key=tag_key, ids=ids,
                                   tag_values=tag_values)
                if ids or i.id.startswith("lhbp-old")]


def test_retention_counts_a_new_image_the_listing_does_not_show_yet(clock) -> None:
    fake = LaggingListing()
    fake.images = [old(0), old(1)]
    report, _ = run(ImageMaker(fake, clock=clock, policy=Policy(keep=2)),
                    {"InstanceIds": ["lhins-web00001", "lhins-db000001"]}, clock)
    assert outcomes(report) == [("lhins-db000001", "created", "lhbp-00000003"),
                                ("lhins-web00001", "created", "lhbp-00000002"),
                                ("lhins-web00001", "pruned", "lhbp-old00000")]
    pruned = next(r for r in report.results if r.outcome == "pruned")
    assert (pruned.blueprint_name, pruned.state, pruned.request_id) == ("old0", "NORMAL", "req-del")
    made = next(r for r in report.results if r.instance_id == "lhins-web00001" and r.outcome == "created")
    assert made.pruned == ("lhbp-old00000",)


def test_a_race_loser_reports_the_winner_and_deletes_its_own_image_once_the_cloud_allows(clock) -> None:
    class BothDone(TwinLandsFirst):
        """Both creates were accepted and both images are NORMAL by the time the run looks again."""

        def find_images(self, region, *, deadline, tags=None, tag_key=None, ids=None, names=None, at_least=0,
                    tag_values=None):
            self.images = [replace(i, state="NORMAL", request_id="req-twin" if i.id == "lhbp-twin0000" else None)
                           for i in self.images]
            return super().find_images(region, deadline=deadline, tags=tags, tag_key=tag_key, ids=ids,
                                   tag_values=tag_values)

    fake = BothDone(twin_age=-timedelta(seconds=5))  # the twin is older: it wins
    report, _ = run(ImageMaker(fake, clock=clock), {"InstanceId": "lhins-web00001"}, clock)
    [result] = report.results
    assert (result.outcome, result.blueprint_id, result.blueprint_name, result.state, result.request_id,
            result.resent, result.reason) == ("ready", "lhbp-twin0000", "twin", "NORMAL", "req-twin", True,
                                              "made by a concurrent invocation")
    assert [i.id for i in fake.images] == ["lhbp-twin0000"]  # ours was deleted: one image per slot


class FinishesAs(FakeLighthouse):
    """Images end in `state` one second after they were made, whatever asks (a listing or a lookup by id)."""

    def __init__(self, state: str, clock: FrozenClock) -> None:
        super().__init__()
        self.state = state
        self.clock = clock
        self.made_at: dict[str, float] = {}

    def create_blueprint(self, region, **kwargs):
        made = super().create_blueprint(region, **kwargs)
        self.made_at[made.blueprint_id] = self.clock.now
        return made

    def find_images(self, region, *, deadline, tags=None, tag_key=None, ids=None, names=None, at_least=0,
                    tag_values=None):
        done = {i for i, at in self.made_at.items() if self.clock.now >= at + 1}
        self.images = [replace(i, state=self.state) if i.id in done else i for i in self.images]
        return super().find_images(region, deadline=deadline, tags=tags, tag_key=tag_key, ids=ids,
                                   tag_values=tag_values)


@pytest.mark.parametrize(("state", "code"), [("CREATEFAILED", "FailedOperation.CreateBlueprintFailed"),
                                             ("OFFLINE", "FailedOperation.BlueprintUnavailable")])
def test_an_image_that_will_never_be_normal_fails_with_its_own_code(clock, state: str, code: str) -> None:
    waited = {"InstanceId": "lhins-web00001", "Wait": True}
    report, _ = run(ImageMaker(FinishesAs(state, clock), clock=clock), waited, clock)
    [result] = report.results
    assert (result.outcome, result.state, result.error.code if result.error else None) == ("failed", state, code)


def test_a_state_not_documented_as_leading_to_normal_ends_the_wait_with_that_state(clock) -> None:
    waited = {"InstanceId": "lhins-web00001", "Wait": True}
    report, _ = run(ImageMaker(FinishesAs("MYSTERY", clock), clock=clock), waited, clock)
    [result] = report.results
    assert (result.outcome, result.state, result.pending) == ("created", "MYSTERY", False)
    assert "BLUEPRINT_IN_PROGRESS_STATES" in (result.reason or "")


def test_waiting_leaves_pruned_images_pruned(clock) -> None:
    fake = FinishesAs("NORMAL", clock)
    fake.images = [old(0), old(1)]
    report, _ = run(ImageMaker(fake, clock=clock, policy=Policy(keep=2)),
                    {"InstanceId": "lhins-web00001", "Wait": True}, clock)
    assert outcomes(report) == [("lhins-web00001", "pruned", "lhbp-old00000"),
                                ("lhins-web00001", "ready", "lhbp-00000002")]


def test_an_instance_stopped_by_an_image_that_failed_is_started_again(clock) -> None:
    class Stops(FinishesAs):
        def __init__(self) -> None:
            super().__init__("CREATEFAILED", clock)
            self.states = {"lhins-web00001": "RUNNING"}
            self.started: list[str] = []

        def create_blueprint(self, region, **kwargs):
            self.states[kwargs["instance_id"]] = "STOPPED"  # ForcePowerOff
            return super().create_blueprint(region, **kwargs)

        def find_instances(self, region, *, deadline, ids=None, tags=None):
            from blueprint.lighthouse import Instance

            return [Instance(id=i, name=i, state=self.states[i], region=region) for i in ids or list(self.states)]

        def start_instances(self, region, ids, *, deadline):
            self.started.extend(ids)
            return "req-start"

    fake = Stops()
    report, _ = run(ImageMaker(fake, clock=clock), {"InstanceId": "lhins-web00001", "Wait": True}, clock)
    [result] = report.results
    assert (result.outcome, result.restarted) == ("failed", True)
    assert fake.started == ["lhins-web00001"]


def test_keep_counts_a_new_image_that_is_already_normal(clock) -> None:
    class Instant(FakeLighthouse):
        def create_blueprint(self, region, **kwargs):
            made = super().create_blueprint(region, **kwargs)
            self.images = [replace(i, state="NORMAL") if i.id == made.blueprint_id else i for i in self.images]
            return made

    fake = Instant()
    fake.images = [old(0)]
    report, _ = run(ImageMaker(fake, clock=clock, policy=Policy(keep=1)), {"InstanceId": "lhins-web00001"}, clock)
    assert outcomes(report) == [("lhins-web00001", "created", "lhbp-00000001"),
                                ("lhins-web00001", "pruned", "lhbp-old00000")]
    assert [i.id for i in fake.images] == ["lhbp-00000001"]


def test_retention_with_a_lagging_listing_keeps_keep_minus_one_of_the_old_images(clock) -> None:
    # Keep 3, three old images, the new one not listed yet: the new one counts as one of the three, so one goes.
    fake = LaggingListing()
    fake.images = [old(0), old(1), old(2)]
    report, _ = run(ImageMaker(fake, clock=clock, policy=Policy(keep=3)), {"InstanceId": "lhins-web00001"}, clock)
    assert [r.blueprint_id for r in report.results if r.outcome == "pruned"] == ["lhbp-old00000"]
    assert {"lhbp-old00001", "lhbp-old00002"} <= {i.id for i in fake.images}


def test_retention_never_deletes_another_instances_image_a_listing_returns(clock) -> None:
    class ListsTheNeighbour(FakeLighthouse):
        """A listing by one instance's tag that also returns another instance's managed images."""

        def find_images(self, region, *, deadline, tags=None, tag_key=None, ids=None, names=None, at_least=0,
                        tag_values=None):
            if tags and INSTANCE_TAG in tags and not ids:
                return [i for i in self.images if INSTANCE_TAG in i.tags]
            return super().find_images(region, deadline=deadline, tags=tags, tag_key=tag_key, ids=ids,
                                       tag_values=tag_values)

    fake = ListsTheNeighbour()
    fake.images = [old(n, instance="lhins-db000001") for n in range(3)] + [old(4), old(5)]
    report, _ = run(ImageMaker(fake, clock=clock, policy=Policy(keep=1)), {"InstanceId": "lhins-web00001"}, clock)
    # The new image is still being made: the newest NORMAL one (old5) stays, old4 goes, the neighbour's stay.
    assert [r.blueprint_id for r in report.results if r.outcome == "pruned"] == ["lhbp-old00004"]
    assert {i.id for i in fake.images if i.tags[INSTANCE_TAG] == "lhins-db000001"} == {
        "lhbp-old00000", "lhbp-old00001", "lhbp-old00002"}


def test_a_race_loser_follows_its_own_image_while_it_is_still_being_made_then_deletes_it(clock) -> None:
    class FinishesOnTheSecondLook(TwinLandsFirst):
        """The twin's image is NORMAL at once; ours only from the second time it is asked for by id."""

        looks = 0

        def find_images(self, region, *, deadline, tags=None, tag_key=None, ids=None, names=None, at_least=0,
                        tag_values=None):
            if ids and "lhbp-00000000" in ids:
                self.looks += 1
            with self.lock:
                self.images = [replace(i, state="NORMAL") if i.id == "lhbp-twin0000" or self.looks >= 2 else i
                               for i in self.images]
            return super().find_images(region, deadline=deadline, tags=tags, tag_key=tag_key, ids=ids,
                                       tag_values=tag_values)

    fake = FinishesOnTheSecondLook(twin_age=-timedelta(seconds=5))
    report, _ = run(ImageMaker(fake, clock=clock), {"InstanceId": "lhins-web00001", "Wait": True}, clock)
    [result] = report.results
    assert (result.blueprint_id, result.outcome) == ("lhbp-twin0000", "ready")
    assert [i.id for i in fake.images] == ["lhbp-twin0000"] and fake.looks == 2
    assert clock.slept and clock.slept[-1] == pytest.approx(3.0)  # one pause (poll_first) between the looks
