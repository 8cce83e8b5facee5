"""The use case: plan the instances, then for each make exactly one image per slot, prune, and wait.

No database: the cloud's own state is the record. Every image the function makes carries two tags,
`scf-blueprint:instance` (its source) and `scf-blueprint:slot` (a digest of the slot key, `blueprint.slots`):

* Idempotency. Before creating, one DescribeBlueprints per region finds images already made for this slot
  (an SCF retry, a timer that fired twice): those are reported again (`.created` with the id it had the
  first time, `.ready` when ready), never remade. A lookup made while planning is used only by the run that
  made it.
* Races. CreateBlueprint has no idempotency token, so concurrent duplicate invocations can each pass the
  check. The cloud refuses a second operation on a busy instance (LatestOperationUnfinished); on that
  answer we look for the slot's image again before any retry, and report the one the winner made. Where
  the cloud does let two through, the re-check after creating sees several images for one slot: the oldest
  (CreatedTime, then id) wins everywhere, each loser reports the winner's image and deletes its own as soon
  as the cloud allows (a loser that follows its images waits for its own; otherwise the next run that looks
  up the slot deletes it, and retention removes slot duplicates). A run that waited on its instances before
  creating (it stopped them, ran a pre-command) looks up the slot again first, if its lookup is older than
  RECHECK_AFTER: a twin may have finished the image meanwhile.
* Lost answers. After a network error on CreateBlueprint the image may exist: look by slot before resending,
  on the first attempt and on the attempt after quota recovery alike.
* Retention. After a successful create, the oldest managed images of that instance beyond `Keep` are
  deleted; never an image without both our tags, never the newest NORMAL one, never one still in progress.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import field
from datetime import datetime
from functools import cached_property, partial
from typing import Any, Protocol, TypeVar

from blueprint.cloud import CALL_TIMEOUT
from blueprint.disks import Disk
from blueprint.errors import (
    BadRequest,
    BlueprintError,
    CloudUnavailable,
    ConfigError,
    InstanceBusy,
    InstanceNotFound,
    InvalidInstanceState,
    NotFound,
    NotSent,
    QuotaExceeded,
)
from blueprint.events import InstanceRef, Job, TriggerInfo, as_printable
from blueprint.lighthouse import (
    DELETABLE_STATES,
    FAILED_STATES,
    FILTER_VALUES,
    GONE_STATES,
    MADE_STATES,
    Created,
    Image,
    Lighthouse,
)
from blueprint.logs import log
from blueprint.policy import Commands, Policy
from blueprint.records import record, replace
from blueprint.results import Consistency, Outcome, Result, RunReport
from blueprint.retry import Clock, Deadline, LostAnswer, RetryPolicy, SystemClock
from blueprint.slots import INSTANCE_TAG, SLOT_TAG, slot_digest

__all__ = [
    "INSTANCE_TAG",
    "PER_INSTANCE_BUDGET",
    "SLOT_TAG",
    "ImageMaker",
    "Plan",
    "Policy",
    "Quiesce",
    "Run",
    "Target",
    "default_name",
    "is_managed",
    "plan_held",
    "plan_prune",
    "render_name",
    "slot_digest",
]

DELETABLE = DELETABLE_STATES
# Seconds one more instance needs at least (create + bookkeeping); below that, hand the rest on.
PER_INSTANCE_BUDGET = 4.0
# Seconds a last lookup needs: one cloud call's HTTP timeout.
LAST_LOOK = float(CALL_TIMEOUT)
# Seconds of busy waits a restart after an image always has, even when a queue record's share of busy waits was
# spent on its create: the instance was stopped by the function, and a busy answer there is usually the image's
# own operation ending (two or three tries); one instance that stays busy must still not hold the batch.
RESTART_PATIENCE = 30.0
# A slot lookup older than this (seconds) is made again just before CreateBlueprint: stopping the instance, its
# data disks' points or a pre-command took that long, and a twin invocation may have made the image meanwhile.
RECHECK_AFTER = 5.0
T = TypeVar("T")


def default_name(instance_id: str, when: datetime) -> str:
    """The deterministic default image name: instance and trigger time, 30 characters."""
    return f"{instance_id}-{when:%Y%m%d-%H%M%S}"


def render_name(template: str | None, instance_id: str, instance_name: str, when: datetime) -> str:
    """Fill the BlueprintName placeholders, trimming the instance name so the result stays ≤ 60.

    The values are data: `str.format` never reads braces inside an instance name as placeholders. An image
    name takes no control or invisible character (the job's template is checked for them; an instance name is
    the cloud's word, so each such character becomes a space), and no space at either end. A name that is
    blank then (none was read) stands as the instance id, so `{InstanceName}` alone never renders empty.
    """
    if template is None:
        return default_name(instance_id, when)
    instance_name = as_printable(instance_name).strip() or instance_id
    fields = {"InstanceId": instance_id, "Date": f"{when:%Y%m%d}", "Time": f"{when:%H%M%S}"}
    fixed = len(template.format(InstanceName="", **fields))
    room = max(0, 60 - fixed)
    count = template.count("{InstanceName}") or 1
    return template.format(InstanceName=instance_name[: room // count], **fields)[:60].strip() or instance_id


class Kept(Protocol):
    """What retention reads of an image or a data disk's backup point."""

    @property
    def id(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def created(self) -> datetime | None: ...
    @property
    def tags(self) -> Mapping[str, str]: ...
    @property
    def failed(self) -> bool: ...
    @property
    def ready(self) -> bool: ...


K = TypeVar("K", bound=Kept)


def is_managed(image: Kept, instance_id: str | None = None) -> bool:
    """True for an image (or backup point) this function made (both managed tags), of `instance_id` when given."""
    source = image.tags.get(INSTANCE_TAG)
    return bool(source) and bool(image.tags.get(SLOT_TAG)) and (instance_id is None or source == instance_id)


def plan_prune(images: Iterable[K], keep: int, *, deletable: frozenset[str] = DELETABLE_STATES,
               spare_newest: bool = True) -> list[K]:
    """Which managed images (or backup points) of one instance to delete so at most `keep` remain.

    Slot duplicates (all but the oldest of a slot) and failed images go first; then the oldest beyond
    `keep`. Never the newest NORMAL one (unless `spare_newest` is off: a newer one outside `images` is NORMAL),
    never one still in progress (not in `deletable`), never an unmanaged one.
    """
    ordered = sorted((i for i in images if is_managed(i)), key=_age_key, reverse=True)  # newest first
    winners: dict[str, K] = {}
    for image in reversed(ordered):  # oldest first: the first of each slot wins
        winners.setdefault(image.tags[SLOT_TAG], image)
    duplicates = [i for i in ordered if not i.failed and winners.get(i.tags[SLOT_TAG]) is not i]
    failed = [i for i in ordered if i.failed]
    live = [i for i in ordered if not i.failed and i not in duplicates]
    newest_normal = next((i for i in live if i.ready), None) if spare_newest else None
    doomed = live[keep:] + duplicates + failed
    return [i for i in doomed if i.state in deletable and i is not newest_normal]


def plan_held(others: Iterable[K], keep: int, doomed: Sequence[K], *,
              deletable: frozenset[str] = DELETABLE_STATES) -> list[K]:
    """What `plan_prune` keeps of `others` only as the newest NORMAL one, while the new image (or point), which
    counts as one of `keep` and is not among `others`, is still being made: they go once it is NORMAL."""
    return [i for i in plan_prune(others, keep - 1, deletable=deletable, spare_newest=False) if i not in doomed]


def _age_key(image: Kept) -> tuple[float, str]:
    return (image.created.timestamp() if image.created else 0.0, image.id)


@record
class Target:
    """One instance to image, with what we know of it."""

    ref: InstanceRef
    name: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    # A rendered image name that came with a chained call: used as it is, never read as a template.
    blueprint_name: str | None = None
    # The instance was running before its ForcePowerOff image (a follow-up starts it again if needed).
    was_running: bool = False


@record(frozen=False)
class Plan:
    """What planning found: the targets, the refused (each with why), and the slot lookups it made.

    The lookups belong to the run that follows this plan and to nothing else: a later job, a redelivered
    child or another warm invocation always asks the cloud again.
    """

    targets: list[Target]
    refused: list[tuple[Target, BlueprintError]]
    slot_images: dict[str, list[Image]] = field(default_factory=dict)
    # Each region's attached data disks, read beside the instance listing (a selector's plan only).
    disks: dict[str, list[Disk]] = field(default_factory=dict)


@record(frozen=False)
class Run:
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
    # Slot lookups made while planning, per region; each is used once, by this run.
    prefetched: dict[str, list[Image]] = field(default_factory=dict)
    # Data-disk listings made while planning, per region; each is used once, by this run.
    prefetched_disks: dict[str, list[Disk]] = field(default_factory=dict)
    # The account id (UIN), for the Tag API's resource names; None when unknown.
    account: str | None = None
    # The run follows its images to NORMAL: the job says Wait, or a phase needs the image NORMAL.
    follows: bool = False
    # Instances (region, id) whose phases must look again later (a copy waits for its source): why.
    later: dict[tuple[str, str], str] = field(default_factory=dict)
    # The operator's commands this job runs around each image (None: it powers off, or is crash-consistent).
    commands: Commands | None = None
    # Per region: the data disks of the run's instances and the slot's backup points (`blueprint.protect`).
    disk_state: dict[str, Any] = field(default_factory=dict)
    # Per region: when the slot was last looked up (monotonic seconds) and the image found per instance.
    looked: dict[str, tuple[float, dict[str, Image]]] = field(default_factory=dict)
    # Per region: images of this slot that lost to an older one (a twin invocation's), deleted once the cloud allows.
    losers: dict[str, list[str]] = field(default_factory=dict)
    # Per (region, instance): managed images retention keeps only while the new image is not NORMAL yet (never
    # the newest NORMAL one); a run that follows its images deletes them once the new one is NORMAL.
    held: dict[tuple[str, str], list[Image]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    # The run waits on its instances before creating (it stopped them itself, or runs pre-commands).
    prepares: bool = False

    @cached_property
    def digest(self) -> str:
        return slot_digest(self.slot_key)

    @property
    def consistency(self) -> Consistency:
        """What kind of image this run makes of a running instance."""
        if self.force_power_off:
            return "power-off"
        return "commands" if self.commands is not None and self.commands.pre is not None else "crash-consistent"

    def result(self, target: Target, outcome: Outcome, **fields: Any) -> Result:
        return Result(outcome=outcome, instance_id=target.ref.InstanceId, region=target.ref.Region,
                      trigger=self.trigger, slot_key=self.slot_key, force_power_off=self.force_power_off,
                      **{"consistency": self.consistency, **fields})

    def beside(self, main: Result, outcome: Outcome, **fields: Any) -> Result:
        """A result that rides beside an instance's image (a copy, a share), with the same trigger and slot."""
        return Result(outcome=outcome, instance_id=main.instance_id, trigger=self.trigger, slot_key=self.slot_key,
                      force_power_off=main.force_power_off,
                      **{"region": main.region, "consistency": main.consistency, **fields})


class ReadyPhase(Protocol):
    """Work on an image once it is NORMAL (shares, copies), done again, idempotently, by every invocation that
    finds the image. `blueprint/shares.py` and `blueprint/copies.py` are the phases; the run calls them in order.
    """

    def wanted(self, job: Job) -> bool:
        """True when this job asks for the phase."""
        ...

    def check(self, job: Job, targets: Sequence[Target], *, deadline: Deadline, account: str | None) -> None:
        """Refuse, before any cloud write, what the phase could never do for this job.

        Raises:
            BlueprintError: what the caller must change (a 400 or 403 on HTTP).
        """
        ...

    def after_ready(self, run: Run, region: str, ready: Sequence[Result]) -> list[Result]:
        """Do the phase for these NORMAL images of one region; returns the results beside them."""
        ...


class Quiesce(Protocol):
    """Images made between the operator's commands (`blueprint/consistency.py`)."""

    def run(self, run: Run, region: str, targets: Sequence[Target], todo: Sequence[Target], *,
            create: Callable[[Run, Sequence[Target]], list[Result]],
            follow: Callable[[Run, str, list[Result], float], list[Result]]) -> list[Result]:
        """Image `todo` (the targets without a slot image) between the commands, and resume what an earlier run
        left paused among `targets`; returns the results (images, and post-commands that failed)."""
        ...


class DiskHooks(Protocol):
    """The data-disk steps of a run (`blueprint/protect.py`): one backup point per data disk in the image's slot."""

    def check(self, job: Job, targets: Sequence[Target], *, deadline: Deadline) -> None:
        """Refuse, before any write, a DataDisks list naming no disk of the job's instances.

        Raises:
            BlueprintError: what the caller must change (a 400 on HTTP).
        """
        ...

    def listing(self, region: str, *, deadline: Deadline) -> list[Disk] | None:
        """The region's attached data disks, read while planning a fleet; None when not read (the run asks)."""
        ...

    def prepare(self, run: Run, region: str, targets: Sequence[Target]) -> None:
        """Read the region's data disks and the slot's points (kept on the run)."""
        ...

    def stop_first(self, run: Run, region: str, targets: Sequence[Target]) -> set[str]:
        """ForcePowerOff: stop the running instances whose disks get points; the ids stopped."""
        ...

    def protect(self, run: Run, target: Target, name: str) -> Any:
        """Make (or find) the instance's points for the slot; what `apply(result)` adds to its result."""
        ...

    def retain(self, run: Run, region: str, results: list[Result]) -> list[Result]:
        """Prune old points of the instances imaged now."""
        ...

    def refresh(self, run: Run, region: str, results: list[Result]) -> list[Result]:
        """The points' latest states once the images were followed."""
        ...

    def unmark(self, run: Run, region: str, ids: Sequence[str]) -> None:
        """The instances the function stopped are running again: their stop mark goes."""
        ...

    def finish(self, results: list[Result]) -> list[Result]:
        """The results, `.failed` where a point failed."""
        ...

    def dry_run(self, run: Run, target: Target, result: Result) -> Result:
        """A dry run's result with the points it would make and keep."""
        ...

    def price(self, run: Run, region: str, count: int) -> dict[str, Any]:
        """The price of `count` images (or why it is unknown)."""
        ...


class ImageMaker:
    """Plans and runs jobs against a Lighthouse port. Holds no state between runs."""

    def __init__(self, lighthouse: Lighthouse, *, policy: Policy | None = None, retry: RetryPolicy | None = None,
                 clock: Clock | None = None, phases: Sequence[ReadyPhase] = (),
                 release: Callable[[str, Sequence[Image], Deadline], None] | None = None,
                 quiesce: Quiesce | None = None, disks: DiskHooks | None = None) -> None:
        self.lighthouse = lighthouse
        self.policy = policy or Policy()
        self.retry = retry or RetryPolicy()
        self.clock = clock or SystemClock()
        # What happens after an image is NORMAL (shares, then copies), in order.
        self.phases = tuple(phases)
        # Called with images about to be deleted (shared images are unshared first).
        self.release = release
        # Runs the operator's commands around images (None when no command is configured).
        self.quiesce = quiesce
        # Backs up data disks in the image's slot (None: images only, e.g. on a fake port).
        self.disks = disks

    def force_power_off(self, job: Job) -> bool:
        """The ForcePowerOff a job runs with: False with commands (they keep the server running), else its own,
        else the function's default."""
        try:
            if self.policy.commands_for(job) is not None:
                return False
        except BlueprintError:
            pass  # a job the policy refuses never runs; its refusal reports the default
        return self.policy.force_power_off if job.ForcePowerOff is None else job.ForcePowerOff

    def name_for(self, job: Job, target: Target, trigger: TriggerInfo) -> str:
        """The image name for one instance: the one a chained call carried, else the job's template filled."""
        if target.blueprint_name is not None:
            return target.blueprint_name
        return render_name(job.BlueprintName, target.ref.InstanceId, target.name, trigger.Time)

    # ---- planning -------------------------------------------------------------------------------------

    def plan(self, job: Job, default_region: str, deadline: Deadline, slot_key: str | None = None, *,
             account: str | None = None, chained: bool = False, inline_up_to: int | None = None) -> Plan:
        """Resolve the job's instances (ids or selector) and check them against the operator's policy.

        Returns the targets to image and the instances refused, each with why, before any cloud write and
        before any fan-out (the allowlists are checked against the instances' real tags from the cloud).
        A chained call (`chained`) holds part of a job its sender checked whole: its DataDisks list is not
        checked against its own instances again. `inline_up_to` is the most instances the caller runs here
        rather than fanning out (None: any number): a selector's plan reads the data disks of its regions
        only for a run that stays here, so a fan-out's parent reads nothing its children read again.

        Raises:
            AccessDenied: the job crosses the operator's limits (BLUEPRINT_MAX_INSTANCES, BLUEPRINT_KEEP).
            BadRequest: more instances matched than MaxInstances allows.
            BlueprintError: the cloud lookups failed.
        """
        self.policy.check_job(job)
        limit = self.policy.limit(job)
        # A selector's run reads its data disks beside the listing when it surely runs here: however many
        # instances match (at most `limit`), none is handed to a fan-out (`inline_up_to`, None: never).
        inline = inline_up_to is None or limit <= inline_up_to
        plan = self._select(job, default_region, deadline, slot_key, disks=inline) if job.Selector is not None \
            else self._by_ids(job, default_region, deadline)
        # A dry run's instances that were not found count too: the real run would try them (and refuse here).
        matched = len(plan.targets) + len(plan.refused)
        if matched > limit:
            raise BadRequest(f"{matched} instances matched, more than MaxInstances={limit}: "
                             "narrow the selection or raise MaxInstances", code="LimitExceeded.MaxInstances")
        for phase in self.phases:
            if phase.wanted(job) and not job.DryRun:
                phase.check(job, plan.targets, deadline=deadline, account=account)
        if self.disks is not None and not chained:
            self.disks.check(job, plan.targets, deadline=deadline)
        allowed = []
        for target in plan.targets:
            why = self.allowed(target)
            if why is None:
                allowed.append(target)
            else:
                plan.refused.append((target, why))
        plan.targets = allowed
        return plan

    def _needs_details(self, job: Job) -> bool:
        # A dry run looks its instances up: it says what the real run would meet, an instance not found too.
        return self.policy.needs_tags or "{InstanceName}" in (job.BlueprintName or "") or job.DryRun

    def _by_ids(self, job: Job, default_region: str, deadline: Deadline) -> Plan:
        refs = job.targets(default_region)
        if not self._needs_details(job):
            return Plan([Target(ref) for ref in refs], [])
        plan = Plan([], [])
        for region, group in _by_region(refs, lambda r: r.Region).items():
            ids = [r.InstanceId for r in group]
            known = {i.id: i for i in self._retrying(partial(
                self.lighthouse.find_instances, region, ids=ids, deadline=deadline), deadline)}
            for ref in group:
                found = known.get(ref.InstanceId)
                if found is not None:
                    plan.targets.append(Target(ref, found.name, found.tags))
                elif job.DryRun:  # the real run's CreateBlueprint would answer this
                    why = InstanceNotFound(f"instance {ref.InstanceId} was not found in {region}")
                    plan.refused.append((Target(ref), why))
                else:
                    plan.targets.append(Target(ref))
        return plan

    def _select(self, job: Job, default_region: str, deadline: Deadline, slot_key: str | None, *,
                disks: bool) -> Plan:
        """Every tagged instance of the regions, all regions at once; with the slot known, each region's
        idempotency lookup goes out alongside its instance listing, and with `disks` its data-disk listing
        (the plan carries them to the run)."""
        assert job.Selector is not None  # noqa: S101 (narrowing for the type checker)
        regions = list(dict.fromkeys(job.Selector.Regions))
        if "*" in regions:
            regions = self._retrying(lambda: self.lighthouse.regions(default_region, deadline=deadline), deadline)
        wanted = {t.Key: t.Value for t in job.Selector.Tags}
        listing = partial(self.lighthouse.find_instances, tags=wanted, deadline=deadline)
        from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 (a pool only for several at once; one instance needs none)
        with ThreadPoolExecutor(max_workers=min(12, 3 * len(regions) or 1)) as pool:
            found = {r: pool.submit(self._retrying, partial(listing, r), deadline) for r in regions}
            slots = {} if slot_key is None else {r: pool.submit(self._retrying, partial(
                self.lighthouse.find_images, r, tags={SLOT_TAG: slot_digest(slot_key)}, deadline=deadline), deadline)
                for r in regions}
            # The data disks need no instance ids: read beside the listing, not after it (issue 18); not for "*",
            # whose regions mostly hold none of the fleet (a call each, for nothing).
            listings = {} if self.disks is None or not disks or "*" in job.Selector.Regions else {
                r: pool.submit(self.disks.listing, r, deadline=deadline) for r in regions}
            targets = [Target(InstanceRef(Region=r, InstanceId=i.id), i.name, i.tags) for r in regions
                       for i in found[r].result() if all(i.tags.get(k) == v for k, v in wanted.items())]
            listed = {r: f.result() for r, f in listings.items()}
            return Plan(targets, [], {r: f.result() for r, f in slots.items()},
                        {r: d for r, d in listed.items() if d is not None})

    def allowed(self, target: Target) -> BlueprintError | None:
        """Why this instance may not be imaged, or None when it may.

        With BLUEPRINT_ALLOWED_TAGS set, planning always read the instance's tags from the cloud (an
        instance that was not found has none), so the tags here are the real ones, never the request's.
        """
        return self.policy.refusal(target.ref.InstanceId, target.tags)

    # ---- running --------------------------------------------------------------------------------------

    def run(self, job: Job, targets: Sequence[Target], *, trigger: TriggerInfo, slot_key: str,
            deadline: Deadline, multi: bool = False, refused: Sequence[tuple[Target, BlueprintError]] = (),
            prefetched: Mapping[str, list[Image]] | None = None,
            prefetched_disks: Mapping[str, list[Disk]] | None = None,
            account: str | None = None, prune: bool = True) -> tuple[RunReport, list[Target]]:
        """Image every target once for this slot; returns the report and the targets not started for lack
        of time (the caller hands them on, or reports them). `prune=False` deletes nothing (a restore's safety
        image: Keep would otherwise delete the very image, or points, being restored).

        Raises:
            BlueprintError: only for failures that concern the whole run (never for one instance).
        """
        run = Run(job=job, trigger=trigger, slot_key=slot_key, deadline=deadline,
                  commands=self.policy.commands_for(job), force_power_off=self.force_power_off(job),
                  keep=self.policy.keep_for(job) if prune else None,
                  report=RunReport(trigger, slot_key, multi=multi),
                  was_running={t.ref.InstanceId for t in targets if t.was_running},
                  prefetched=dict(prefetched or {}), prefetched_disks=dict(prefetched_disks or {}), account=account,
                  # An instance handed over as "was running" (its image stopped it) is followed to be started.
                  follows=not job.DryRun and (job.Wait or any(t.was_running for t in targets)
                                              or any(p.wanted(job) for p in self.phases)))
        run.report.matched = len(targets) + len(refused)
        now = self.clock.monotonic()
        run.report.results.extend(run.result(t, "failed", error=why, started=now, finished=now) for t, why in refused)
        groups = _by_region(targets, lambda t: t.ref.Region)
        # Regions run side by side: their lookups overlap, and the rate limiters are shared (per account).
        if len(groups) <= 1:
            parts = [self._region(run, region, group) for region, group in groups.items()]
        else:
            from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 (a pool only for several at once; one instance needs none)
            with ThreadPoolExecutor(max_workers=len(groups)) as pool:
                parts = list(pool.map(lambda item: self._region(run, *item), groups.items()))
        for part in parts:
            run.report.results.extend(part.report.results)
            run.overflow.extend(part.overflow)
            run.was_running |= part.was_running
        run.report.was_running = run.was_running
        return run.report, run.overflow

    def _region(self, run: Run, region: str, group: Sequence[Target]) -> Run:
        """Run one region's targets on a run of its own (merged by the caller)."""
        part = replace(run, report=RunReport(run.trigger, run.slot_key, multi=run.report.multi), overflow=[],
                       was_running=set(run.was_running))
        try:
            self._run_region(part, region, group)
        except BlueprintError as err:
            part.report.results.extend(part.result(t, "failed", error=err) for t in group
                                       if not _has_result(part.report, t) and t not in part.overflow)
        return part

    def _run_region(self, run: Run, region: str, targets: Sequence[Target]) -> None:
        todo = self._todo(run, region, targets)
        if todo and run.force_power_off and run.follows and self.policy.restart_instances:
            run.was_running |= self._running(run, region, [t.ref.InstanceId for t in todo])
        stopped: set[str] = set()
        if todo and run.force_power_off and self.disks is not None:
            # Points and image from one power cycle: the function stops the instances and starts them again.
            stopped = self.disks.stop_first(run, region, todo)
            run.was_running |= stopped
            run.prepares = run.prepares or bool(stopped)
            run.follows = run.follows or bool(stopped)
        if run.commands is not None and not run.job.DryRun:
            run.prepares = True
            if self.quiesce is None:
                raise ConfigError("the job runs commands, but this function was built without TAT")
            created = self.quiesce.run(run, region, targets, todo, create=self._create_in_turn, follow=self._follow)
        else:
            created = self._create_all(run, todo)
        run.report.results.extend(created)
        self._start_left(run, region, stopped)
        if any(_made_now(r) for r in created) or run.follows:
            self._settle(run, region)
        if self.disks is not None:
            run.report.results[:] = self.disks.finish(run.report.results)

    def _found(self, run: Run, target: Target, image: Image) -> Result:
        """The slot's image exists already: report it again (same event ids), or as skipped in a dry run."""
        now = self.clock.monotonic()
        if run.job.DryRun:
            return run.result(target, "skipped", blueprint_id=image.id, blueprint_name=image.name,
                              state=image.state, request_id=image.request_id, dry_run=True, started=now,
                              reason="dry run: an image was already made for this slot")
        return run.result(target, "ready" if image.made else "created", blueprint_id=image.id,
                          blueprint_name=image.name, state=image.state, request_id=image.request_id, resent=True,
                          reason="already made for this slot; reported again", started=now, finished=now)

    def _todo(self, run: Run, region: str, targets: Sequence[Target]) -> list[Target]:
        """Report what the slot already has (and dry runs); the targets still to image."""
        todo: list[Target] = []
        existing = self._slot_images(run, region, duplicates=not run.job.DryRun)
        run.looked[region] = (self.clock.monotonic(), existing)
        if not run.follows:  # a run that follows its images waits for these too (`_settle`)
            self._drop_losers(run, region, wait=False)
        if self.disks is not None:
            self.disks.prepare(run, region, targets)
        dry = []
        for target in targets:
            image = existing.get(target.ref.InstanceId)
            if image is not None:
                run.report.results.append(self._found_with_points(run, target, image))
            elif run.job.DryRun:
                dry.append(target)
            else:
                todo.append(target)
        run.report.results.extend(self._dry_runs(run, region, dry))
        return todo

    def _found_with_points(self, run: Run, target: Target, image: Image) -> Result:
        """A found image with its slot's points; a point missing (an earlier try failed) is made now, unless
        that would mean waiting out a busy instance."""
        result = self._found(run, target, image)
        if self.disks is None or run.job.DryRun:
            return result
        protection = self.disks.protect(replace(run, deadline=run.deadline.impatient()), target,
                                        image.name or self.name_for(run.job, target, run.trigger))
        return protection.apply(result, after_image=True)  # type: ignore[no-any-return]

    def _dry_runs(self, run: Run, region: str, targets: list[Target]) -> list[Result]:
        """What a real run would do for these instances: one listing of the region's managed images (one of
        the instance's for a single one) and one price call, whatever their number."""
        if not targets:
            return []
        if len(targets) == 1:
            managed = {targets[0].ref.InstanceId: self._managed(run, targets[0])}
        else:
            managed = defaultdict(list)
            for image in self._retrying(partial(self.lighthouse.find_images, region, tag_key=INSTANCE_TAG,
                                                deadline=run.deadline), run.deadline):
                if is_managed(image):
                    managed[image.tags[INSTANCE_TAG]].append(image)
        results = [self._dry_run(run, t, managed.get(t.ref.InstanceId, [])) for t in targets]
        if self.disks is None:
            return results
        price = self.disks.price(run, region, 1)
        return [r.but(price=price) for r in results]

    def _slot_images(self, run: Run, region: str, *, duplicates: bool = False) -> dict[str, Image]:
        """The oldest live image already made for this slot, per instance: the plan's lookup the first time
        (it belongs to this run only), a fresh one after that. With `duplicates`, the slot's younger images
        (a race's losers whose run could not delete them) go to `run.losers`."""
        images = run.prefetched.pop(region, None)
        if images is None:
            images = self._retrying(lambda: self.lighthouse.find_images(
                region, tags={SLOT_TAG: run.digest}, deadline=run.deadline), run.deadline)
        oldest: dict[str, Image] = {}
        for image in sorted(images, key=_age_key):
            if is_managed(image) and image.tags[SLOT_TAG] == run.digest and not (image.failed or image.gone):
                winner = oldest.setdefault(image.tags[INSTANCE_TAG], image)
                if duplicates and winner is not image:
                    run.losers.setdefault(region, []).append(image.id)
        return oldest

    def _taken_meanwhile(self, run: Run, target: Target) -> Result | None:
        """Just before creating an instance the run waited on (stopped, ran a pre-command, made points): the
        slot's image a twin invocation made since this run looked, if the lookup is older than RECHECK_AFTER
        (one fresh lookup per region serves every instance of the run)."""
        region = target.ref.Region
        with run.lock:
            at, images = run.looked.get(region, (self.clock.monotonic(), {}))
            if self.clock.monotonic() - at > RECHECK_AFTER:
                run.prefetched.pop(region, None)
                try:
                    images = self._slot_images(run, region)
                except BlueprintError as err:  # the check after creating still resolves a race
                    log("WARNING", "could not look up the slot again before creating", region=region,
                        error=err.message)
                run.looked[region] = (self.clock.monotonic(), images)
        image = images.get(target.ref.InstanceId)
        return None if image is None else self._found(run, target, image).but(reason="made by a concurrent invocation")

    def _dry_run(self, run: Run, target: Target, managed: list[Image]) -> Result:
        would_delete: tuple[str, ...] = ()
        if run.keep:
            # The new image will count as one of `keep`, so plan for keep - 1 of the existing ones.
            would_delete = tuple(i.id for i in plan_prune(managed, max(run.keep - 1, 0)))
        kept = len(managed) + 1 - len(would_delete)
        result = run.result(target, "skipped", blueprint_name=self.name_for(run.job, target, run.trigger),
                            reason="dry run: nothing was created or deleted", dry_run=True, would_delete=would_delete,
                            kept={"Blueprints": kept})
        return self.disks.dry_run(run, target, result) if self.disks is not None else result

    def _managed(self, run: Run, target: Target) -> list[Image]:
        """The images this function made of one instance."""
        found = self._retrying(partial(self.lighthouse.find_images, target.ref.Region,
                                       tags={INSTANCE_TAG: target.ref.InstanceId}, deadline=run.deadline), run.deadline)
        return [i for i in found if is_managed(i, target.ref.InstanceId)]

    def _create_all(self, run: Run, targets: Sequence[Target]) -> list[Result]:
        """Create the targets' images side by side; a target left for lack of time goes to `run.overflow`."""
        if len(targets) <= 1:
            done = [self._create_or_defer(run, t) for t in targets]
        else:
            from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 (a pool only for several at once; one instance needs none)
            with ThreadPoolExecutor(max_workers=min(self.policy.concurrency, len(targets))) as pool:
                done = list(pool.map(lambda t: self._create_or_defer(run, t), targets))
        return [r for r in done if r is not None]

    def _create_in_turn(self, run: Run, targets: Sequence[Target]) -> list[Result]:
        """Create the targets' images one after another (a batch of a fleet whose batches run side by side)."""
        done = [self._create_or_defer(run, t) for t in targets]
        return [r for r in done if r is not None]

    def _create_or_defer(self, run: Run, target: Target) -> Result | None:
        """Create one image, or leave the instance for later (None) when too little time is left."""
        started = self.clock.monotonic()
        if run.deadline.remaining() < PER_INSTANCE_BUDGET:
            run.overflow.append(target)
            return None
        name = self.name_for(run.job, target, run.trigger)
        # The data disks' points first: the cloud refuses them while the instance is busy making its image.
        protection = self.disks.protect(run, target, name) if self.disks is not None else None
        # Making this instance's points took a while (a busy disk): a twin may have finished meanwhile.
        prepared = run.prepares or (protection is not None and bool(protection.new or protection.failed)
                                    and self.clock.monotonic() - started > 1.0)
        try:
            result = (self._taken_meanwhile(run, target) if prepared else None) or self._create(run, target)
        except NotSent:
            # This invocation's share of the rate had no room left: handed on (the next one looks first).
            run.overflow.append(target)
            return None
        except BlueprintError as err:
            result = run.result(target, "failed", error=err, request_id=err.request_id, blueprint_name=name)
        if protection is not None:
            result = protection.apply(result)
        return result.but(started=started, finished=self.clock.monotonic())

    def _create(self, run: Run, target: Target) -> Result:
        ref = target.ref
        name = self.name_for(run.job, target, run.trigger)
        tags = {t.Key: t.Value for t in run.job.Tags} | {INSTANCE_TAG: ref.InstanceId, SLOT_TAG: run.digest}

        def attempt() -> Created | Result:
            return self.lighthouse.create_blueprint(
                ref.Region, name=name, instance_id=ref.InstanceId, description=run.job.Description,
                force_power_off=run.force_power_off, tags=tags, deadline=run.deadline)

        try:
            outcome = self._carefully(run, target, attempt)
        except QuotaExceeded as err:
            outcome = self._after_quota(run, target, err, attempt)
        if isinstance(outcome, Result):
            return outcome
        return run.result(target, "created", blueprint_id=outcome.blueprint_id, blueprint_name=name,
                          state=None, request_id=outcome.request_id)

    def _carefully(self, run: Run, target: Target, attempt: Callable[[], Created | Result]) -> Created | Result:
        """Create with retries; before any retry, look for the slot's image (a lost answer may have made it,
        a busy instance may be busy making it for a twin call)."""

        def before_retry(err: BlueprintError) -> Result | None:
            if not isinstance(err, CloudUnavailable | InstanceBusy):
                return None
            run.prefetched.pop(target.ref.Region, None)  # never the plan's lookup: the cloud may have changed
            image = self._slot_images(run, target.ref.Region).get(target.ref.InstanceId)
            if image is None:
                return None
            found = self._found(run, target, image)
            return found.but(reason="made by a concurrent invocation") if isinstance(err, InstanceBusy) else \
                found.but(resent=False, reason=None)

        try:
            return self.retry.call(attempt, deadline=run.deadline, before_retry=before_retry)
        except CloudUnavailable as err:
            # The last try's answer may have been lost after the cloud acted: look once more before reporting
            # the instance failed (its image would otherwise be news only after SCF's retry).
            try:
                # Only with time for one more call (its HTTP timeout), so the results can still be delivered.
                found = before_retry(err) if run.deadline.remaining() > LAST_LOOK else None
            except BlueprintError:
                found = None
            if found is None:
                raise
            return found

    def _after_quota(self, run: Run, target: Target, err: QuotaExceeded,
                     attempt: Callable[[], Created | Result]) -> Created | Result:
        """Quota full: prune this instance's managed images down to Keep - 1 and try once more, as carefully
        as the first time."""
        ref = target.ref
        managed = self._managed(run, target)
        doomed = plan_prune(managed, run.keep - 1) if run.keep else []
        if doomed:
            self._delete(run, target, doomed)
            return self._carefully(run, target, attempt)
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

    def _settle(self, run: Run, region: str) -> None:
        """One listing after creating resolves races and drives retention.

        Without Keep only this slot's images matter (a handful); with Keep, the managed images of the one
        instance, or of the instances created (one paged listing instead of one per instance). A fleet's listing
        names its instances (with Keep, or when one filter holds them and the slot), so a fan-out's batch reads
        its own images, not the whole region's.
        """
        created = [r.instance_id for r in run.report.results if r.region == region and _made_now(r)]
        if created:
            find = partial(self.lighthouse.find_images, region, deadline=run.deadline)
            scoped = len(created) > 1 and (bool(run.keep) or len(created) < FILTER_VALUES)
            mine = partial(find, tag_key=INSTANCE_TAG, tag_values=created) if scoped else find
            if not run.keep:
                listing = partial(mine, tags={SLOT_TAG: run.digest})
            elif len(created) == 1:
                listing = partial(find, tags={INSTANCE_TAG: created[0]})
            else:
                listing = mine
            managed = [i for i in self._retrying(partial(listing, at_least=len(created)), run.deadline)
                       if is_managed(i)]
            self._races_and_retention(run, region, managed)
            if self.disks is not None:
                run.report.results[:] = self.disks.retain(run, region, run.report.results)
        if run.follows:
            self._wait(run, region)
            self._drop_losers(run, region, wait=True)
            if self.disks is not None:
                run.report.results[:] = self.disks.refresh(run, region, run.report.results)
            self._restart(run, region)
            self._after_ready(run, region)
            self._prune_held(run, region)
        else:
            self._drop_losers(run, region, wait=False)

    def _after_ready(self, run: Run, region: str) -> None:
        """The phases for this region's NORMAL images (made now or found), then what they left for later."""
        ready = [r for r in run.report.results if r.region == region and r.main and r.outcome == "ready"]
        for phase in (p for p in self.phases if p.wanted(run.job) and ready):
            try:
                run.report.results.extend(phase.after_ready(run, region, ready))
            except BlueprintError as err:
                log("ERROR", "a step after the image was ready failed", region=region, error=err.message)
                run.report.results.extend(run.beside(main, "failed", blueprint_id=main.blueprint_id,
                                                     source_id=main.blueprint_id, error=err) for main in ready)
        for index, result in enumerate(run.report.results):
            why = run.later.get((result.region, result.instance_id))
            if why and result.main and result.outcome == "ready":
                run.report.results[index] = result.but(pending=True, reason=why)

    def _races_and_retention(self, run: Run, region: str, managed: list[Image]) -> None:
        per_instance: dict[str, list[Image]] = defaultdict(list)
        for image in managed:
            per_instance[image.tags[INSTANCE_TAG]].append(image)
        results = run.report.results
        for index, result in enumerate(results):
            if result.region == region and _made_now(result):
                results[index] = self._resolve_race(run, result, per_instance.get(result.instance_id, []))
        if run.keep:
            for index, result in enumerate(list(results)):
                if result.region == region and _made_now(result):
                    results[index] = self._prune(run, result, per_instance.get(result.instance_id, []))

    def _running(self, run: Run, region: str, ids: list[str]) -> set[str]:
        """Which of these instances are running now (before an image powers them off)."""
        found = self._retrying(partial(self.lighthouse.find_instances, region, ids=ids, deadline=run.deadline),
                               run.deadline)
        return {i.id for i in found if i.state == "RUNNING"}

    def _start_left(self, run: Run, region: str, stopped: set[str]) -> None:
        """Start again now the instances this run stopped but left for a later invocation (time ran out before
        their image): that invocation stops them itself, and until it comes (if it ever does) they stay up."""
        left = [t.ref.InstanceId for t in run.overflow if t.ref.Region == region and t.ref.InstanceId in stopped]
        if not left or not self.policy.restart_instances:
            return
        try:
            found = self._retrying(partial(self.lighthouse.find_instances, region, ids=left, deadline=run.deadline),
                                   run.deadline)
            off = [i.id for i in found if i.state == "STOPPED"]
            if off:
                self._start(run, region, off)
        except BlueprintError as err:
            log("ERROR", "could not start again instances left for a later invocation", region=region,
                instances=left, error=err.message)
            return
        if self.disks is not None:
            self.disks.unmark(run, region, left)

    def _restart(self, run: Run, region: str) -> None:
        """Start again what a finished ForcePowerOff image left stopped, if it was running before; also where
        no image was made (the function stops an instance itself before its data disks' points)."""
        done = {r.instance_id: n for n, r in enumerate(run.report.results) if r.region == region and r.main
                and r.instance_id in run.was_running and r.outcome in ("ready", "failed")
                and (r.blueprint_id or r.outcome == "failed")}
        if not done or not self.policy.restart_instances:
            return
        try:
            found = self._retrying(partial(self.lighthouse.find_instances, region, ids=list(done),
                                           deadline=run.deadline), run.deadline)
            stopped = [i.id for i in found if i.state == "STOPPED"]
            if stopped:
                self._start(run, region, stopped)
        except BlueprintError as err:
            log("ERROR", "could not start instances again after their image", region=region, error=err.message)
            return
        for instance in stopped:
            run.report.results[done[instance]] = run.report.results[done[instance]].but(restarted=True)
        if self.disks is not None:
            self.disks.unmark(run, region, list(done))

    def _start(self, run: Run, region: str, ids: list[str]) -> None:
        """StartInstances with retries. After a lost answer, a retry the cloud refuses for the instances' state
        is the lost call's doing if none of them is still STOPPED (looked up again).

        Raises:
            BlueprintError: the instances were not started.
        """
        lost = LostAnswer()
        # An instance the function stopped must come back: a queue record's budget of busy waits is topped up to
        # RESTART_PATIENCE here (a timer's busy waits are bound by its deadline only).
        deadline = run.deadline.busy_at_least(RESTART_PATIENCE)
        try:
            self.retry.call(partial(self.lighthouse.start_instances, region, ids, deadline=deadline),
                            deadline=deadline, before_retry=lost)
        except InvalidInstanceState:
            if not lost.seen:
                raise
            found = self._retrying(partial(self.lighthouse.find_instances, region, ids=ids, deadline=run.deadline),
                                   run.deadline)
            if any(i.state == "STOPPED" for i in found):
                raise

    def _resolve_race(self, run: Run, result: Result, images: list[Image]) -> Result:
        """Several live images for one slot: the oldest wins; a loser reports the winner's image and deletes
        its own as soon as the cloud allows."""
        mine = {i.id: i for i in images}.get(result.blueprint_id or "")
        slot = sorted((i for i in images if i.tags.get(SLOT_TAG) == run.digest and not (i.failed or i.gone)),
                      key=_age_key)
        state = mine.state if mine else result.state
        if not slot or slot[0].id == result.blueprint_id:
            return result.but(state=state)
        winner = slot[0]
        if mine is not None and mine.state in DELETABLE:
            self._try_delete(run, result.region, [mine.id])
        elif result.blueprint_id:
            run.losers.setdefault(result.region, []).append(result.blueprint_id)
        return result.but(blueprint_id=winner.id, blueprint_name=winner.name, state=winner.state,
                          request_id=winner.request_id, resent=True, reason="made by a concurrent invocation",
                          outcome="ready" if winner.made else "created")

    def _prune(self, run: Run, result: Result, images: list[Image]) -> Result:
        assert run.keep is not None  # noqa: S101 (narrowing for the type checker)
        current = [i for i in images if i.id != result.blueprint_id]
        mine = next((i for i in images if i.id == result.blueprint_id), None)
        # The new image counts as one of `keep` even if the listing did not show it yet.
        doomed = plan_prune(current + ([mine] if mine else []), run.keep) if mine else plan_prune(current, run.keep - 1)
        if run.follows and not (mine is not None and mine.ready):
            # What stays only while the new image is not NORMAL: once the run has followed it there, those go too.
            later = plan_held(current, run.keep, doomed)
            if later:
                run.held[(result.region, result.instance_id)] = later
        deleted = self._delete(run, Target(InstanceRef(Region=result.region, InstanceId=result.instance_id)), doomed)
        return result.but(pruned=result.pruned + tuple(deleted))

    def _prune_held(self, run: Run, region: str) -> None:
        """Retention's last step in a run that followed its images: an instance whose new image is NORMAL now,
        with its data-disk points, and whose steps after it (copies, shares) went through, loses what was kept
        only until then (`Run.held`, from the listing after creating). A shared image is deleted only after the
        new one was shared, and the image before a failed point, or a copy still being made, stays (any
        region's result counts: a copy's is its destination's)."""
        unsettled = {r.instance_id for r in run.report.results if r.outcome == "failed" or r.pending
                     or r.disk_failures or (r.outcome == "copied" and r.state != "NORMAL")}
        for index, result in enumerate(list(run.report.results)):
            held = run.held.pop((region, result.instance_id), None) if result.region == region and result.main \
                else None
            if held and result.outcome == "ready" and result.instance_id not in unsettled:
                target = Target(InstanceRef(Region=region, InstanceId=result.instance_id))
                deleted = self._delete(run, target, held)
                run.report.results[index] = result.but(pruned=result.pruned + tuple(deleted))

    def _delete(self, run: Run, target: Target, images: Sequence[Image]) -> list[str]:
        """Delete managed images of this instance, one call for all; report each as `.pruned`.

        The tags are checked again here, on what is about to be deleted: whatever a listing returned, an
        image without both managed tags of this very instance is never deleted.
        """
        images = [i for i in images if is_managed(i, target.ref.InstanceId)]
        if not images:
            return []
        if self.release is not None:
            try:
                self.release(target.ref.Region, images, run.deadline)
            except BlueprintError as err:
                log("ERROR", "could not unshare images before deleting them", region=target.ref.Region,
                    error=err.message)
                return []
        request_id = self._try_delete(run, target.ref.Region, [i.id for i in images])
        if request_id is None:
            return []
        run.report.results.extend(run.result(target, "pruned", blueprint_id=i.id, blueprint_name=i.name,
                                             state=i.state, request_id=request_id) for i in images)
        return [i.id for i in images]

    def _drop_losers(self, run: Run, region: str, *, wait: bool) -> None:
        """Delete this region's race losers (`run.losers`) that the cloud lets go; with `wait`, follow those still
        being made (within the deadline) so the instance is free again before it is started. What is left is
        deleted by the next run that finds the slot, or by retention."""
        ids = list(dict.fromkeys(run.losers.pop(region, [])))
        delay = self.policy.poll_first
        while ids:
            try:
                found = {i.id: i for i in self._retrying(partial(self.lighthouse.find_images, region, ids=ids,
                                                                 deadline=run.deadline), run.deadline)}
            except BlueprintError as err:  # cleaning up never costs the run its results
                log("WARNING", "could not look at images a twin invocation made for the same slot", region=region,
                    images=ids, error=err.message)
                return
            done = [i for i in ids if i in found and found[i].state in DELETABLE]
            if done and self._try_delete(run, region, done) is not None:
                log("INFO", "deleted images a twin invocation made for the same slot", region=region, images=done)
            ids = [i for i in ids if i in found and found[i].state in self.policy.in_progress_states]
            if not ids or not wait or run.deadline.remaining() < delay + 2:
                break
            run.deadline.pause(delay, "duplicate images to finish before deleting them", region=region,
                               images=len(ids))
            delay = min(delay * 1.5, self.policy.poll_max)
        if ids:
            log("WARNING", "images a twin invocation made for the same slot are still being made; the next run "
                "that finds the slot deletes them", region=region, images=ids)

    def _try_delete(self, run: Run, region: str, ids: list[str]) -> str | None:
        """DeleteBlueprints with retries; the request id, or None when the images could not be deleted.

        After a lost answer, the retry's ResourceNotFound says the lost call deleted them (a DeleteBlueprints
        is all or nothing): they are reported deleted, quoting the answer that says they are gone.
        """
        lost = LostAnswer()
        try:
            return self.retry.call(lambda: self.lighthouse.delete_images(region, ids, deadline=run.deadline),
                                   deadline=run.deadline, before_retry=lost)
        except NotFound as err:
            return err.request_id if lost.seen else None
        except BlueprintError:
            return None

    def _wait(self, run: Run, region: str) -> None:
        """Follow this region's images until NORMAL, failed or gone, within the deadline."""
        indexes = [n for n, r in enumerate(run.report.results) if r.region == region]
        followed = self._follow(run, region, [run.report.results[n] for n in indexes])
        for index, result in zip(indexes, followed, strict=True):
            run.report.results[index] = result
        for index, result in enumerate(run.report.results):
            if self._following(result, region):
                run.report.results[index] = result.but(pending=True,
                                                       reason="still in progress when the function's time ran out")

    def _follow(self, run: Run, region: str, results: list[Result], reserve: float = 0.0) -> list[Result]:
        """Poll these results' images until NORMAL, failed or gone, stopping `reserve` seconds before the
        deadline; returns the results as the cloud last described them."""
        results = list(results)
        for index, result in enumerate(results):
            # What the listing after creating already said: an image that is gone or in an odd state is not
            # polled until the deadline.
            if result.region == region and result.outcome == "created" and result.blueprint_id and result.state \
                    and result.state not in self.policy.in_progress_states:
                results[index] = self._waited(result, result.blueprint_id, result.state)
        delay = self.policy.poll_first
        while True:
            pending = {str(r.blueprint_id): n for n, r in enumerate(results) if self._following(r, region)}
            if not pending or run.deadline.remaining() < delay + 2 + reserve:
                return results
            run.deadline.pause(delay, "images to become NORMAL", region=region, images=len(pending))
            delay = min(delay * 1.5, self.policy.poll_max)
            found = self._retrying(partial(self.lighthouse.find_images, region, ids=list(pending),
                                           deadline=run.deadline), run.deadline)
            for image in found:
                if image.id in pending:
                    results[pending[image.id]] = self._waited(results[pending[image.id]], image.id, image.state)

    def _following(self, result: Result, region: str) -> bool:
        """A result of this region whose image the cloud is still making, as far as the function knows."""
        return (result.region == region and result.outcome == "created" and bool(result.blueprint_id)
                and not result.dry_run and not result.pending
                and (not result.state or result.state in self.policy.in_progress_states))

    def _waited(self, result: Result, image_id: str, state: str) -> Result:
        """What the cloud's latest word on an image being followed means for its result."""
        if state in MADE_STATES:
            return result.but(outcome="ready", state=state, finished=self.clock.monotonic(), reason=None)
        if state in FAILED_STATES or state in GONE_STATES:
            failed = state in FAILED_STATES
            why = "could not make" if failed else f"reports {state} for"
            return result.but(outcome="failed", state=state, finished=self.clock.monotonic(),
                              error=BlueprintError(f"the cloud {why} image {image_id}; it will not become NORMAL",
                                                   code="FailedOperation.CreateBlueprintFailed" if failed
                                                   else "FailedOperation.BlueprintUnavailable"))
        if state and state not in self.policy.in_progress_states:
            return result.but(state=state, reason=(
                f"the cloud reports state {state[:40]}, which is not documented as leading to NORMAL: the function "
                "stopped following the image (add it to BLUEPRINT_IN_PROGRESS_STATES if it is the creating state)"))
        return result.but(state=state)

    def _retrying(self, fn: Callable[[], T], deadline: Deadline) -> T:
        return self.retry.call(fn, deadline=deadline)


def _by_region(items: Iterable[T], region_of: Callable[[T], str]) -> dict[str, list[T]]:
    groups: dict[str, list[T]] = defaultdict(list)
    for item in items:
        groups[region_of(item)].append(item)
    return dict(groups)


def _made_now(result: Result) -> bool:
    """An image this run made (not one it found): races and retention concern it. It may be NORMAL already when
    the run followed it before its post-command (`PostAfter: "ready"`)."""
    return result.outcome in ("created", "ready") and bool(result.blueprint_id) and not result.resent


def _has_result(report: RunReport, target: Target) -> bool:
    return any(r.instance_id == target.ref.InstanceId and r.region == target.ref.Region
               for r in report.results)
