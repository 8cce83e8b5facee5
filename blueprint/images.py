"""The use case: plan the instances, then for each make exactly one image per slot, prune, and wait.

No database: the cloud's own state is the record. Every image the function makes carries two tags,
`scf-blueprint:instance` (its source) and `scf-blueprint:slot` (a digest of the trigger slot), so:

* Idempotency. Before creating, one DescribeBlueprints per region filtered by the slot tag finds images
  already made for this slot (an SCF retry, a timer that fired twice): those are reported, not remade.
* Races. CreateBlueprint has no idempotency token, so concurrent duplicate invocations can each pass the
  check. The cloud refuses a second operation on a busy instance (LatestOperationUnfinished); on that
  answer we look for the slot's image again before any retry, and report the one the winner made. Where
  the cloud does let two through, the re-check after creating sees several images for one slot: the oldest
  (CreatedTime, then id) wins everywhere, each loser reports `.skipped` with the winner's id and deletes
  its own image as soon as the cloud allows (retention removes slot duplicates that are still in progress).
* Lost answers. After a network error on CreateBlueprint the image may exist: look by slot before resending.
* Retention. After a successful create, the oldest managed images of that instance beyond `Keep` are
  deleted; never an image without our tags, never the newest NORMAL one, never one still in progress.
"""

from __future__ import annotations

import hashlib
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from blueprint.errors import (
    AccessDenied,
    BadRequest,
    BlueprintError,
    CloudUnavailable,
    DeadlineExceeded,
    InstanceBusy,
    QuotaExceeded,
)
from blueprint.events import InstanceRef, Job, TriggerInfo
from blueprint.lighthouse import Created, Image, Lighthouse
from blueprint.logs import log
from blueprint.results import Outcome, Result, RunReport
from blueprint.retry import Clock, Deadline, RetryPolicy, SystemClock

__all__ = [
    "INSTANCE_TAG",
    "SLOT_TAG",
    "ImageMaker",
    "Policy",
    "Target",
    "default_name",
    "plan_prune",
    "render_name",
    "slot_digest",
]

INSTANCE_TAG = "scf-blueprint:instance"
SLOT_TAG = "scf-blueprint:slot"
DELETABLE = frozenset({"NORMAL", "CREATEFAILED", "SYNCING_FAILED", "ISOLATED"})
# Seconds one more instance needs at least (create + bookkeeping); below that, hand the rest on.
PER_INSTANCE_BUDGET = 4.0
T = TypeVar("T")


def slot_digest(slot_key: str) -> str:
    """A short, stable tag value for a slot key (keys may be long or hold characters tags refuse)."""
    return hashlib.sha256(slot_key.encode()).hexdigest()[:24]


def default_name(instance_id: str, when: datetime) -> str:
    """The deterministic default image name: instance and trigger time, 30 characters."""
    return f"{instance_id}-{when:%Y%m%d-%H%M%S}"


def render_name(template: str | None, instance_id: str, instance_name: str, when: datetime) -> str:
    """Fill the BlueprintName placeholders, trimming the instance name so the result stays ≤ 60."""
    if template is None:
        return default_name(instance_id, when)
    fields = {"InstanceId": instance_id, "Date": f"{when:%Y%m%d}", "Time": f"{when:%H%M%S}"}
    fixed = len(template.format(InstanceName="", **fields))
    room = max(0, 60 - fixed)
    count = template.count("{InstanceName}") or 1
    return template.format(InstanceName=instance_name[: room // count], **fields)[:60]


def plan_prune(images: Iterable[Image], keep: int) -> list[Image]:
    """Which managed images of one instance to delete so at most `keep` remain.

    Slot duplicates (all but the oldest of a slot) and failed images go first; then the oldest beyond
    `keep`. Never the newest NORMAL image, never an image still in progress.
    """
    ordered = sorted(images, key=_age_key, reverse=True)  # newest first
    winners: dict[str, Image] = {}
    for image in reversed(ordered):  # oldest first: the first of each slot wins
        winners.setdefault(image.tags.get(SLOT_TAG, image.id), image)
    duplicates = [i for i in ordered if not i.failed and winners.get(i.tags.get(SLOT_TAG, i.id)) is not i]
    failed = [i for i in ordered if i.failed]
    live = [i for i in ordered if not i.failed and i not in duplicates]
    newest_normal = next((i for i in live if i.ready), None)
    doomed = live[keep:] + duplicates + failed
    return [i for i in doomed if i.state in DELETABLE and i is not newest_normal]


def _age_key(image: Image) -> tuple[float, str]:
    return (image.created.timestamp() if image.created else 0.0, image.id)


@dataclass(frozen=True)
class Policy:
    """Defaults and limits from the settings that shape every run."""

    force_power_off: bool = True
    keep: int | None = None
    max_instances: int = 50
    concurrency: int = 8
    allowed_instances: frozenset[str] = frozenset()
    allowed_tags: tuple[tuple[str, str], ...] = ()
    # Lighthouse may or may not start an instance again after a ForcePowerOff image (undocumented): when
    # the function follows the image (Wait), it starts an instance it found running and finds stopped.
    restart_instances: bool = True
    poll_first: float = 3.0
    poll_max: float = 15.0


@dataclass(frozen=True)
class Target:
    """One instance to image, with what we know of it."""

    ref: InstanceRef
    name: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass
class _Run:
    """The state of one run, shared by the steps below."""

    job: Job
    trigger: TriggerInfo
    slot_key: str
    deadline: Deadline
    force_power_off: bool
    keep: int | None
    report: RunReport
    overflow: list[Target] = field(default_factory=list)
    # Instances that were RUNNING before a ForcePowerOff image: started again if the image leaves them off.
    was_running: set[str] = field(default_factory=set)

    @property
    def digest(self) -> str:
        return slot_digest(self.slot_key)

    def result(self, target: Target, outcome: Outcome, **fields: Any) -> Result:
        return Result(outcome=outcome, instance_id=target.ref.InstanceId, region=target.ref.Region,
                      trigger=self.trigger, slot_key=self.slot_key, force_power_off=self.force_power_off, **fields)


class ImageMaker:
    """Plans and runs jobs against a Lighthouse port."""

    def __init__(self, lighthouse: Lighthouse, *, policy: Policy | None = None, retry: RetryPolicy | None = None,
                 clock: Clock | None = None) -> None:
        self.lighthouse = lighthouse
        self.policy = policy or Policy()
        self.retry = retry or RetryPolicy()
        self.clock = clock or SystemClock()
        # Slot lookups made while planning, taken by the run that follows (keyed by slot digest and region).
        self._prefetched: dict[tuple[str, str], list[Image]] = {}
        self._lock = threading.Lock()

    def force_power_off(self, job: Job) -> bool:
        """The ForcePowerOff a job runs with: its own, else the function's default."""
        return self.policy.force_power_off if job.ForcePowerOff is None else job.ForcePowerOff

    # ---- planning -------------------------------------------------------------------------------------

    def plan(self, job: Job, default_region: str, deadline: Deadline,
             slot_key: str | None = None) -> tuple[list[Target], list[tuple[Target, BlueprintError]]]:
        """Resolve the job's instances (ids or selector) and check them against the allowlists.

        Returns the targets to image and the instances refused, each with why, before any cloud write and
        before any fan-out (the allowlists are checked against the instances' real tags from the cloud).

        Raises:
            BadRequest: more instances matched than MaxInstances allows.
            BlueprintError: the cloud lookups failed.
        """
        if job.Selector is not None:
            targets = self._select(job, default_region, deadline, slot_key)
        else:
            targets = self._by_ids(job, default_region, deadline)
        limit = job.MaxInstances or self.policy.max_instances
        if len(targets) > limit:
            raise BadRequest(f"{len(targets)} instances matched, more than MaxInstances={limit}: "
                             "narrow the selection or raise MaxInstances", code="LimitExceeded.MaxInstances")
        allowed: list[Target] = []
        refused: list[tuple[Target, BlueprintError]] = []
        for target in targets:
            why = self.allowed(target)
            if why is None:
                allowed.append(target)
            else:
                refused.append((target, why))
        return allowed, refused

    def _needs_details(self, job: Job) -> bool:
        return bool(self.policy.allowed_tags) or "{InstanceName}" in (job.BlueprintName or "")

    def _by_ids(self, job: Job, default_region: str, deadline: Deadline) -> list[Target]:
        refs = job.targets(default_region)
        if not self._needs_details(job):
            return [Target(ref) for ref in refs]
        targets: list[Target] = []
        for region, group in _by_region(refs, lambda r: r.Region).items():
            ids = [r.InstanceId for r in group]
            known = {i.id: i for i in self._retrying(partial(
                self.lighthouse.find_instances, region, ids=ids, deadline=deadline), deadline)}
            targets.extend(Target(r, known[r.InstanceId].name, known[r.InstanceId].tags) if r.InstanceId in known
                           else Target(r) for r in group)
        return targets

    def _select(self, job: Job, default_region: str, deadline: Deadline, slot_key: str | None) -> list[Target]:
        """Every tagged instance of the regions, all regions at once; with the slot known, each region's
        idempotency lookup goes out alongside its instance listing (the run then finds it ready)."""
        assert job.Selector is not None  # noqa: S101 (narrowing for the type checker)
        regions = list(dict.fromkeys(job.Selector.Regions))
        if "*" in regions:
            regions = self._retrying(lambda: self.lighthouse.regions(default_region, deadline=deadline), deadline)
        wanted = {t.Key: t.Value for t in job.Selector.Tags}
        listing = partial(self.lighthouse.find_instances, tags=wanted, deadline=deadline)
        with ThreadPoolExecutor(max_workers=min(8, 2 * len(regions) or 1)) as pool:
            found = {r: pool.submit(self._retrying, partial(listing, r), deadline) for r in regions}
            slots = {} if slot_key is None else {r: pool.submit(self._retrying, partial(
                self.lighthouse.find_images, r, tags={SLOT_TAG: slot_digest(slot_key)}, deadline=deadline), deadline)
                for r in regions}
            targets = [Target(InstanceRef(Region=r, InstanceId=i.id), i.name, i.tags) for r in regions
                       for i in found[r].result() if all(i.tags.get(k) == v for k, v in wanted.items())]
            with self._lock:
                self._prefetched = {(slot_digest(slot_key or ""), r): f.result() for r, f in slots.items()}
        return targets

    def allowed(self, target: Target) -> BlueprintError | None:
        """Why this instance may not be imaged, or None when it may.

        With BLUEPRINT_ALLOWED_TAGS set, planning always read the instance's tags from the cloud (an
        instance that was not found has none), so the tags here are the real ones, never the request's.
        """
        policy = self.policy
        if policy.allowed_instances and target.ref.InstanceId not in policy.allowed_instances:
            return AccessDenied(f"instance {target.ref.InstanceId} is not in BLUEPRINT_ALLOWED_INSTANCES",
                                code="UnauthorizedOperation.InstanceNotAllowed")
        if policy.allowed_tags and not any(target.tags.get(k) == v for k, v in policy.allowed_tags):
            return AccessDenied(f"instance {target.ref.InstanceId} carries none of the tags in "
                                "BLUEPRINT_ALLOWED_TAGS", code="UnauthorizedOperation.InstanceNotAllowed")
        return None

    # ---- running --------------------------------------------------------------------------------------

    def run(self, job: Job, targets: Sequence[Target], *, trigger: TriggerInfo, slot_key: str,
            deadline: Deadline, multi: bool = False, refused: Sequence[tuple[Target, BlueprintError]] = (),
            was_running: Iterable[str] = ()) -> tuple[RunReport, list[Target]]:
        """Image every target once for this slot; returns the report and the targets left for later.

        Raises:
            BlueprintError: only for failures that concern the whole run (never for one instance).
        """
        run = _Run(job=job, trigger=trigger, slot_key=slot_key, deadline=deadline,
                   force_power_off=self.force_power_off(job),
                   keep=job.Keep or self.policy.keep, report=RunReport(trigger, slot_key, multi=multi),
                   was_running=set(was_running))
        run.report.matched = len(targets) + len(refused)
        now = self.clock.monotonic()
        run.report.results.extend(run.result(t, "failed", error=why, started=now, finished=now) for t, why in refused)
        groups = _by_region(targets, lambda t: t.ref.Region)
        # Regions run side by side: their lookups overlap, and the rate limiters are shared (per account).
        if len(groups) <= 1:
            parts = [self._region(run, region, group) for region, group in groups.items()]
        else:
            with ThreadPoolExecutor(max_workers=len(groups)) as pool:
                parts = list(pool.map(lambda item: self._region(run, *item), groups.items()))
        for part in parts:
            run.report.results.extend(part.report.results)
            run.overflow.extend(part.overflow)
            run.was_running |= part.was_running
        run.report.was_running = run.was_running
        return run.report, run.overflow

    def _region(self, run: _Run, region: str, group: Sequence[Target]) -> _Run:
        """Run one region's targets on a run of its own (merged by the caller)."""
        part = replace(run, report=RunReport(run.trigger, run.slot_key, multi=run.report.multi), overflow=[],
                       was_running=set(run.was_running))
        try:
            self._run_region(part, region, group)
        except BlueprintError as err:
            part.report.results.extend(part.result(t, "failed", error=err) for t in group
                                       if not _has_result(part.report, t))
        return part

    def _run_region(self, run: _Run, region: str, targets: Sequence[Target]) -> None:
        todo: list[Target] = []
        existing = self._slot_images(run, region)
        for target in targets:
            started = self.clock.monotonic()
            image = existing.get(target.ref.InstanceId)
            if image is not None:
                run.report.results.append(run.result(
                    target, "skipped", blueprint_id=image.id, blueprint_name=image.name, state=image.state,
                    request_id=image.request_id, reason="an image was already made for this slot", started=started))
            elif run.job.DryRun:
                run.report.results.append(self._dry_run(run, target))
            else:
                todo.append(target)
        if todo and run.force_power_off and run.job.Wait and self.policy.restart_instances:
            run.was_running |= self._running(run, region, [t.ref.InstanceId for t in todo])
        created = self._create_all(run, todo)
        run.report.results.extend(created)
        if any(r.outcome == "created" for r in created) or run.job.Wait:
            self._settle(run, region)

    def _slot_images(self, run: _Run, region: str) -> dict[str, Image]:
        """The oldest live image already made for this slot, per instance (one call per region)."""
        with self._lock:
            images = self._prefetched.pop((run.digest, region), None)
        if images is None:
            images = self._retrying(lambda: self.lighthouse.find_images(
                region, tags={SLOT_TAG: run.digest}, deadline=run.deadline), run.deadline)
        oldest: dict[str, Image] = {}
        for image in sorted(images, key=_age_key):
            instance = image.tags.get(INSTANCE_TAG)
            if instance and not image.failed:
                oldest.setdefault(instance, image)
        return oldest

    def _dry_run(self, run: _Run, target: Target) -> Result:
        would_delete: tuple[str, ...] = ()
        if run.keep:
            # The new image will count as one of `keep`, so plan for keep - 1 of the existing ones.
            would_delete = tuple(i.id for i in plan_prune(self._managed(run, target), max(run.keep - 1, 0)))
        return run.result(target, "skipped", blueprint_name=self._name(run, target),
                          reason="dry run: nothing was created or deleted", dry_run=True, would_delete=would_delete)

    def _managed(self, run: _Run, target: Target) -> list[Image]:
        """The images this function made of one instance."""
        return self._retrying(partial(self.lighthouse.find_images, target.ref.Region,
                                      tags={INSTANCE_TAG: target.ref.InstanceId}, deadline=run.deadline), run.deadline)

    def _create_all(self, run: _Run, targets: Sequence[Target]) -> list[Result]:
        if len(targets) <= 1:
            return [self._create_or_defer(run, t) for t in targets]
        with ThreadPoolExecutor(max_workers=min(self.policy.concurrency, len(targets))) as pool:
            return list(pool.map(lambda t: self._create_or_defer(run, t), targets))

    def _create_or_defer(self, run: _Run, target: Target) -> Result:
        started = self.clock.monotonic()
        if run.deadline.remaining() < PER_INSTANCE_BUDGET:
            run.overflow.append(target)
            return run.result(target, "failed", started=started, finished=started, error=DeadlineExceeded(
                "not started: the function's time ran out; handed on to a later invocation"))
        try:
            result = self._create(run, target)
        except BlueprintError as err:
            result = run.result(target, "failed", error=err, request_id=err.request_id,
                                blueprint_name=self._name(run, target))
        return result.but(started=started, finished=self.clock.monotonic())

    def _name(self, run: _Run, target: Target) -> str:
        return render_name(run.job.BlueprintName, target.ref.InstanceId, target.name, run.trigger.Time)

    def _create(self, run: _Run, target: Target) -> Result:
        ref = target.ref
        name = self._name(run, target)
        tags = {t.Key: t.Value for t in run.job.Tags} | {INSTANCE_TAG: ref.InstanceId, SLOT_TAG: run.digest}

        def attempt() -> Created | Result:
            return self.lighthouse.create_blueprint(
                ref.Region, name=name, instance_id=ref.InstanceId, description=run.job.Description,
                force_power_off=run.force_power_off, tags=tags, deadline=run.deadline)

        def before_retry(err: BlueprintError) -> Result | None:
            # A lost answer may have made the image; a busy instance may be busy making it for a twin call.
            if not isinstance(err, CloudUnavailable | InstanceBusy):
                return None
            image = self._slot_images(run, ref.Region).get(ref.InstanceId)
            if image is None:
                return None
            reason = "made by a concurrent invocation" if isinstance(err, InstanceBusy) else None
            return run.result(target, "skipped" if reason else "created", blueprint_id=image.id,
                              blueprint_name=image.name, state=image.state, reason=reason,
                              request_id=image.request_id)

        try:
            outcome = self.retry.call(attempt, deadline=run.deadline, before_retry=before_retry)
        except QuotaExceeded as err:
            outcome = self._after_quota(run, target, err, attempt)
        if isinstance(outcome, Result):
            return outcome
        return run.result(target, "created", blueprint_id=outcome.blueprint_id, blueprint_name=name,
                          state=None, request_id=outcome.request_id)

    def _after_quota(self, run: _Run, target: Target, err: QuotaExceeded,
                     attempt: Callable[[], Created | Result]) -> Created | Result:
        """Quota full: prune this instance's managed images down to Keep - 1 and try once more."""
        ref = target.ref
        managed = self._managed(run, target)
        doomed = plan_prune(managed, run.keep - 1) if run.keep else []
        if doomed:
            self._delete(run, target, doomed)
            return self.retry.call(attempt, deadline=run.deadline)
        total = self._quota_total(ref.Region, run.deadline)
        raise QuotaExceeded(
            f"the custom image quota of {ref.Region} is full ({total or 'unknown'} images); {len(managed)} of them "
            f"were made by this function for {ref.InstanceId}"
            + ("" if run.keep else "; set Keep (or BLUEPRINT_KEEP) to let the function delete its old images")
            + "; or delete images you no longer need", request_id=err.request_id) from err

    def _quota_total(self, region: str, deadline: Deadline) -> int | None:
        try:
            return self.lighthouse.image_quota(region, deadline=deadline)[0]
        except BlueprintError:
            return None

    # ---- after creating: races, retention, waiting ----------------------------------------------------

    def _settle(self, run: _Run, region: str) -> None:
        """One listing after creating resolves races and drives retention.

        Without Keep only this slot's images matter (a handful); with Keep, the managed images of the one
        instance, or of the whole region for a fleet (one paged listing instead of one per instance).
        """
        created = [r.instance_id for r in run.report.results if r.region == region and r.outcome == "created"]
        find = partial(self.lighthouse.find_images, region, deadline=run.deadline)
        if not run.keep:
            listing = partial(find, tags={SLOT_TAG: run.digest})
        elif len(created) == 1:
            listing = partial(find, tags={INSTANCE_TAG: created[0]})
        else:
            listing = partial(find, tag_key=INSTANCE_TAG)
        managed = self._retrying(partial(listing, at_least=len(created)), run.deadline)
        per_instance: dict[str, list[Image]] = defaultdict(list)
        for image in managed:
            per_instance[image.tags.get(INSTANCE_TAG, "")].append(image)
        results = run.report.results
        for index, result in enumerate(results):
            if result.region != region or result.outcome not in ("created", "skipped") or result.dry_run:
                continue
            images = per_instance.get(result.instance_id, [])
            results[index] = self._resolve_race(run, result, images)
        if run.keep:
            for index, result in enumerate(list(results)):
                if result.region == region and result.outcome == "created":
                    results[index] = self._prune(run, result, per_instance.get(result.instance_id, []))
        if run.job.Wait:
            self._wait(run, region)
            self._restart(run, region)

    def _running(self, run: _Run, region: str, ids: list[str]) -> set[str]:
        """Which of these instances are running now (before an image powers them off)."""
        found = self._retrying(partial(self.lighthouse.find_instances, region, ids=ids, deadline=run.deadline),
                               run.deadline)
        return {i.id for i in found if i.state == "RUNNING"}

    def _restart(self, run: _Run, region: str) -> None:
        """Start again what a finished ForcePowerOff image left stopped, if it was running before."""
        done = {r.instance_id: n for n, r in enumerate(run.report.results) if r.region == region
                and r.instance_id in run.was_running and r.outcome in ("ready", "failed") and r.blueprint_id}
        if not done or not self.policy.restart_instances:
            return
        try:
            found = self._retrying(partial(self.lighthouse.find_instances, region, ids=list(done),
                                           deadline=run.deadline), run.deadline)
            stopped = [i.id for i in found if i.state == "STOPPED"]
            if stopped:
                self._retrying(partial(self.lighthouse.start_instances, region, stopped, deadline=run.deadline),
                               run.deadline)
        except BlueprintError as err:
            log("ERROR", "could not start instances again after their image", region=region, error=err.message)
            return
        for instance in stopped:
            run.report.results[done[instance]] = run.report.results[done[instance]].but(restarted=True)

    def _resolve_race(self, run: _Run, result: Result, images: list[Image]) -> Result:
        mine = {i.id: i for i in images}.get(result.blueprint_id or "")
        slot = sorted((i for i in images if i.tags.get(SLOT_TAG) == run.digest and not i.failed), key=_age_key)
        state = mine.state if mine else result.state
        if not slot or slot[0].id == result.blueprint_id or result.outcome != "created":
            return result.but(state=state)
        winner = slot[0]
        if mine is not None and mine.state in DELETABLE:
            self._try_delete(run, result.region, [mine.id])
        return result.but(outcome="skipped", blueprint_id=winner.id, blueprint_name=winner.name, state=winner.state,
                          request_id=winner.request_id,
                          reason="made by a concurrent invocation")

    def _prune(self, run: _Run, result: Result, images: list[Image]) -> Result:
        assert run.keep is not None  # noqa: S101 (narrowing for the type checker)
        current = [i for i in images if i.id != result.blueprint_id]
        mine = next((i for i in images if i.id == result.blueprint_id), None)
        # The new image counts as one of `keep` even if the listing did not show it yet.
        doomed = plan_prune(current + ([mine] if mine else []), run.keep) if mine else plan_prune(current, run.keep - 1)
        deleted = self._delete(run, Target(InstanceRef(Region=result.region, InstanceId=result.instance_id)), doomed)
        return result.but(pruned=result.pruned + tuple(deleted))

    def _delete(self, run: _Run, target: Target, images: Sequence[Image]) -> list[str]:
        """Delete managed images one call for all; report each as `.pruned`."""
        images = [i for i in images if i.tags.get(INSTANCE_TAG) == target.ref.InstanceId]
        if not images:
            return []
        request_id = self._try_delete(run, target.ref.Region, [i.id for i in images])
        if request_id is None:
            return []
        run.report.results.extend(run.result(target, "pruned", blueprint_id=i.id, blueprint_name=i.name,
                                             state=i.state, request_id=request_id) for i in images)
        return [i.id for i in images]

    def _try_delete(self, run: _Run, region: str, ids: list[str]) -> str | None:
        try:
            return self._retrying(lambda: self.lighthouse.delete_images(region, ids, deadline=run.deadline),
                                  run.deadline)
        except BlueprintError:
            return None

    def _wait(self, run: _Run, region: str) -> None:
        """Follow this region's new images until NORMAL or failed, within the deadline."""
        delay = self.policy.poll_first
        while True:
            pending = {str(r.blueprint_id): n for n, r in enumerate(run.report.results) if _in_progress(r, region)}
            if not pending or run.deadline.remaining() < delay + 2:
                break
            self.clock.sleep(delay)
            delay = min(delay * 1.5, self.policy.poll_max)
            found = self._retrying(partial(self.lighthouse.find_images, region, ids=list(pending),
                                           deadline=run.deadline), run.deadline)
            for image in found:
                self._update_waited(run, pending[image.id], image)
        for index, result in enumerate(run.report.results):
            if _in_progress(result, region):
                run.report.results[index] = result.but(reason="still in progress when the function's time ran out")

    def _update_waited(self, run: _Run, index: int, image: Image) -> None:
        result = run.report.results[index]
        if image.ready:
            result = result.but(outcome="ready", state=image.state, finished=self.clock.monotonic(), reason=None)
        elif image.failed:
            result = result.but(outcome="failed", state=image.state, finished=self.clock.monotonic(),
                                error=BlueprintError(f"the cloud could not make image {image.id}",
                                                     code="FailedOperation.CreateBlueprintFailed"))
        else:
            result = result.but(state=image.state)
        run.report.results[index] = result

    def _retrying(self, fn: Callable[[], T], deadline: Deadline) -> T:
        return self.retry.call(fn, deadline=deadline)


def _in_progress(result: Result, region: str) -> bool:
    """A result of this region whose image the cloud is still making (waiting follows these)."""
    return (result.region == region and result.outcome in ("created", "skipped") and bool(result.blueprint_id)
            and not result.dry_run and result.state not in DELETABLE)


def _by_region(items: Iterable[T], region_of: Callable[[T], str]) -> dict[str, list[T]]:
    groups: dict[str, list[T]] = defaultdict(list)
    for item in items:
        groups[region_of(item)].append(item)
    return dict(groups)


def _has_result(report: RunReport, target: Target) -> bool:
    return any(r.instance_id == target.ref.InstanceId and r.region == target.ref.Region
               for r in report.results)
