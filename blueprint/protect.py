"""Data disks in the image's slot: one backup point per data disk, made just before the image, kept like images.

A Lighthouse custom image holds the system disk only. For each instance of a run, the data disks the job names
(`DataDisks`: "all" by default, "none", or disk ids) get one backup point (`CreateDiskBackup`) per slot, tagged
with the two managed tags like the image, so a retried run finds them instead of making more; the disks left
out are reported as `Unprotected`. The points are made right before `CreateBlueprint` (the cloud refuses a
point while the instance is busy making its image), so they share the image's consistency: between the
pre- and post-command; with `ForcePowerOff`, while the instance is stopped (the function stops it first and
starts it again once the image is done); otherwise crash-consistent like the image.

Retention keeps `Keep` points per disk, only points carrying both managed tags (a user's own points are never
touched), never the newest NORMAL one, never one in progress; a full backup quota prunes then tries once more.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import field
from functools import partial
from typing import TYPE_CHECKING, Any

from blueprint.disks import POINT_DELETABLE, Disk, Disks, Point, Price
from blueprint.errors import BadRequest, BlueprintError, CloudUnavailable, DiskQuotaExceeded, InstanceBusy, NotFound
from blueprint.events import Job
from blueprint.images import RECHECK_AFTER, Run, Target, is_managed, plan_held, plan_prune
from blueprint.lighthouse import Lighthouse
from blueprint.logs import log
from blueprint.records import record
from blueprint.results import DiskPoint, Result
from blueprint.retry import Deadline, LostAnswer, RetryPolicy
from blueprint.slots import INSTANCE_TAG, SLOT_TAG

if TYPE_CHECKING:
    from blueprint.tags import Tagger

__all__ = ["DISK_FAILED", "DiskSteps", "Protection", "finish"]

DISK_FAILED = "FailedOperation.DiskBackupFailed"
# On an instance the function stopped for its points, until it is started again (the value: the slot's digest).
STOPPED_TAG = "scf-blueprint:stopped"
# Seconds to wait for instances to stop before their points (ForcePowerOff), and between looks.
STOP_TIMEOUT = 120.0
STOP_POLL = 2.0
# A fleet's plan reads its region's data disks beside the instance listing when the region holds at most this
# many (two pages); more, and the run asks by instance id (100 instances a call), which reads only its own.
PREFETCH_MOST = 200
# Following points after their images (Wait): first look, and the longest pause between looks.
POINT_POLL_FIRST = 3.0
POINT_POLL_MAX = 15.0


@record
class Protection:
    """What the data disks of one instance got in this slot."""

    points: tuple[DiskPoint, ...] = ()
    failed: tuple[tuple[str, BlueprintError], ...] = ()
    unprotected: tuple[str, ...] = ()
    # The disks whose point this call made (not found made already in the slot).
    new: tuple[str, ...] = ()

    def apply(self, result: Result, *, after_image: bool = False) -> Result:
        """The instance's result with its points; a point that failed is kept aside (`disk_failures`) until the
        image has been followed, then `finish` makes the result `.failed` (the image stands). `after_image`: the
        image was made by an earlier try, so a point made now does not share its moment (the reason says so)."""
        result = result.but(disk_backups=self.points, unprotected=self.unprotected or None,
                            disk_failures=result.disk_failures + self.failed)
        if not (after_image and self.new) or result.consistency == "crash-consistent":
            return result
        late = (f"the backup points of {', '.join(self.new)} were made by this later try, after the image: "
                f"crash-consistent, not from the image's {result.consistency} moment")
        return result.but(reason=f"{result.reason}; {late}" if result.reason else late)


def finish(result: Result) -> Result:
    """A result whose points failed becomes `.failed`, saying what was and was not protected."""
    if not result.disk_failures or result.outcome == "failed":
        return result
    failed = result.disk_failures
    error = _DiskBackupFailed(
        "data disks not protected: " + "; ".join(f"{d} ({e.message})" for d, e in failed)[:400]
        + f"; protected: the system disk (image {result.blueprint_id})"
        + (f" and {', '.join(p.disk_id for p in result.disk_backups)}" if result.disk_backups else ""),
        code=DISK_FAILED)
    error.retryable = any(err.retryable for _, err in failed)
    return result.but(outcome="failed", error=error, reason=None)


class _DiskBackupFailed(BlueprintError):
    status = 502


@record(frozen=False)
class RegionDisks:
    """One region's data disks of the run's instances, and the points already made for the slot."""

    disks: dict[str, list[Disk]] = field(default_factory=dict)
    slot_points: dict[str, Point] = field(default_factory=dict)
    # Why the disks or the slot's points could not be read (no point is made then).
    error: BlueprintError | None = None
    # Instances carrying the stop mark: the function stopped them for their points (this run or an earlier one
    # that could not finish); each is started again once its image is done, then unmarked.
    marked: set[str] = field(default_factory=set)
    # When the slot's points were last looked up (monotonic seconds), and a lock for looking again.
    looked: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    # Per (instance, disk): managed points retention keeps only while the new point is not NORMAL yet (never the
    # newest NORMAL one); a run that follows its points deletes them once the new one is NORMAL.
    held: dict[tuple[str, str], list[str]] = field(default_factory=dict)


@record(frozen=False)
class DiskSteps:
    """The data-disk steps of a run (called by `blueprint.images.ImageMaker`)."""

    cloud: Disks
    lighthouse: Lighthouse
    retry: RetryPolicy
    default: str = "all"
    # The Tag API, built on first use (the stop mark on instances); None: the stop is not marked.
    tagger: Callable[[], Tagger] | None = None

    # ---- planning ----------------------------------------------------------------------------------------

    def listing(self, region: str, *, deadline: Deadline) -> list[Disk] | None:
        """The region's attached data disks, for a fleet's plan to read beside its instance listing; None when
        the region holds more than PREFETCH_MOST data disks (asking by instance id reads fewer) or the read
        failed (the run asks by instance id, and reports a failure there)."""
        try:
            return self.retry.call(partial(self.cloud.region_disks, region, deadline=deadline, most=PREFETCH_MOST),
                                   deadline=deadline)
        except BlueprintError as err:
            log("INFO", "could not list the region's data disks while planning; the run asks by instance id",
                region=region, error=err.message)
            return None

    def check(self, job: Job, targets: Sequence[Target], *, deadline: Deadline) -> None:
        """Refuse, before any cloud write, a DataDisks list that names a disk none of the job's instances has.

        A list names disks across the whole job: a disk counts wherever it is attached (in any of the job's
        regions), and each instance protects the disks of the list it has. Chained calls are not checked again:
        a child holds only some of the job's instances, while its job still carries the whole list.

        Raises:
            BadRequest: a named disk is not a data disk of the job's instances.
        """
        if not isinstance(job.DataDisks, list) or not targets:
            return
        known: set[str] = set()
        try:
            for region, group in _by_region(targets).items():
                known |= {d.id for d in self.retry.call(partial(self.cloud.find_disks, region, group,
                                                                deadline=deadline), deadline=deadline)}
        except BlueprintError as err:
            # Unchecked, not refused: the run reports data disks it cannot read beside each image.
            log("ERROR", "could not read the data disks to check DataDisks", error=err.message)
            return
        strangers = sorted(set(job.DataDisks) - known)
        if strangers:
            raise BadRequest(f"DataDisks names {', '.join(strangers)}, not a data disk of the job's instances",
                             code="InvalidParameterValue.DiskNotAttached")

    def prepare(self, run: Run, region: str, targets: Sequence[Target]) -> None:
        """Read the region's data disks and the slot's points once, for every instance of the run.

        A lookup that fails does not cost the instances their images (the system disk does not depend on it):
        each instance's result then says its data disks were not protected, and why. Only a dry run raises.

        Raises:
            BlueprintError: a dry run's lookups failed.
        """
        ids = [t.ref.InstanceId for t in targets]
        state = RegionDisks()
        # Kept on the run, never on this long-lived object: a later run (or warm invocation) asks the cloud again.
        run.disk_state[region] = state
        try:
            listed = run.prefetched_disks.pop(region, None)
            if listed is not None:  # the plan's listing of the region, used once
                wanted = set(ids)
                disks = [d for d in listed if d.instance_id in wanted]
            else:
                disks = self.retry.call(partial(self.cloud.find_disks, region, ids, deadline=run.deadline),
                                        deadline=run.deadline) if ids else []
            for disk in disks:
                state.disks.setdefault(disk.instance_id, []).append(disk)
            if disks and self._chosen(run) != "none" and not run.job.DryRun:
                # Without the slot's points no point is made: a retry could not tell it made one already.
                state.slot_points = self._slot_points(run, region, drop_twins=True)
                state.looked = run.deadline.clock.monotonic()
        except BlueprintError as err:
            if run.job.DryRun:
                raise
            log("ERROR", "could not read the data disks: images only", region=region, error=err.message)
            state.error = err
        if ids and run.force_power_off and not run.job.DryRun and self._chosen(run) != "none":
            self._read_marks(run, region, ids, state)

    def _read_marks(self, run: Run, region: str, ids: list[str], state: RegionDisks) -> None:
        """Instances an earlier invocation stopped for their points and could not start again (it died, or its
        follow-up could not be sent): this run follows their images and starts them (the mark says so)."""
        try:
            found = self.retry.call(partial(self.lighthouse.find_instances, region, ids=ids, deadline=run.deadline),
                                    deadline=run.deadline)
        except BlueprintError as err:
            log("ERROR", "could not read the stop marks", region=region, error=err.message)
            return
        state.marked = {i.id for i in found if STOPPED_TAG in i.tags}
        if state.marked:
            run.was_running |= state.marked
            run.follows = True

    def _chosen(self, run: Run) -> str | list[str]:
        return run.job.DataDisks if run.job.DataDisks is not None else self.default

    def wanted(self, run: Run, region: str, instance_id: str) -> tuple[list[Disk], tuple[str, ...]]:
        """The disks to protect for one instance, and the ids of its data disks left out."""
        disks = _state(run, region).disks.get(instance_id, [])
        chosen = self._chosen(run)
        keep = [] if chosen == "none" else [d for d in disks if chosen == "all" or d.id in chosen]
        return keep, tuple(d.id for d in disks if d not in keep)

    def stop_first(self, run: Run, region: str, targets: Sequence[Target]) -> set[str]:
        """ForcePowerOff: stop the running instances that have disks to protect, so their points and their
        image come from one power cycle; returns the ids that were running (started again once their images
        are done, or failed).

        Once a stop was sent, nothing here raises: an instance that did not stop (busy, or its stop's answer was
        lost) still gets its image, which powers it off itself, and every instance that was running is started
        again afterwards; raising here would leave a stopped instance with no image and no one to start it.

        Raises:
            BlueprintError: the instances could not be described (nothing was stopped).
        """
        ids = [t.ref.InstanceId for t in targets if self.wanted(run, region, t.ref.InstanceId)[0]]
        if not ids:
            return set()
        found = self.retry.call(partial(self.lighthouse.find_instances, region, ids=ids, deadline=run.deadline),
                                deadline=run.deadline)
        running = [i.id for i in found if i.state == "RUNNING"]
        self._mark(run, region, running)
        for start in range(0, len(running), 100):
            self._stop(run, region, running[start:start + 100])
        try:
            self._until_stopped(run, region, running)
        except BlueprintError as err:
            log("ERROR", "could not see the instances stop; their images power them off", region=region,
                error=err.message)
        return set(running)

    def _mark(self, run: Run, region: str, ids: list[str]) -> None:
        """Before stopping: a durable mark on each instance (`scf-blueprint:stopped`), so whatever invocation comes
        next starts it again if this one cannot. Without it (no account id, the Tag API refused) the stop goes on:
        this run and its follow-up still start the instance."""
        names = self._names(run, region, ids)
        if not names or self.tagger is None:
            return
        try:
            self.retry.call(partial(self.tagger().tag, names, {STOPPED_TAG: run.digest},
                                    deadline=run.deadline), deadline=run.deadline)
        except BlueprintError as err:
            log("WARNING", "could not mark the instances the function stops", region=region, error=err.message)
            return
        _state(run, region).marked |= set(ids)

    def unmark(self, run: Run, region: str, ids: Sequence[str]) -> None:
        """The instances are running again (or were started): their stop mark goes."""
        marked = [i for i in ids if i in _state(run, region).marked]
        names = self._names(run, region, marked)
        if not names or self.tagger is None:
            return
        try:
            self.retry.call(partial(self.tagger().untag, names, [STOPPED_TAG],
                                    deadline=run.deadline), deadline=run.deadline)
        except BlueprintError as err:
            # The mark stays: the next run sees the instance running and unmarks it then.
            log("ERROR", "could not remove the stop mark", region=region, error=err.message)
            return
        _state(run, region).marked -= set(marked)

    def _names(self, run: Run, region: str, ids: Sequence[str]) -> list[str]:
        if self.tagger is None or run.account is None or not ids:
            return []
        from blueprint.tags import resource_name  # noqa: PLC0415 (only runs that stop instances tag them)

        return [resource_name(region, run.account, "instance", i) for i in ids]

    def _stop(self, run: Run, region: str, ids: list[str]) -> None:
        """StopInstances for a batch; a batch the cloud refuses as a whole (one busy instance, a resend after a
        lost answer) is sent again one instance at a time, so no instance keeps the others running. A busy
        instance is not waited out: its own image and points report it."""
        deadline = run.deadline.impatient()
        for batch in [ids] + ([[i] for i in ids] if len(ids) > 1 else []):
            try:
                self.retry.call(partial(self.cloud.stop_instances, region, batch, deadline=deadline),
                                deadline=deadline)
            except BlueprintError as err:
                log("WARNING", "instances not stopped before their points", region=region, instances=batch,
                    error=err.message)
                continue
            if batch is ids:
                return

    def _until_stopped(self, run: Run, region: str, ids: list[str]) -> None:
        deadline = run.deadline.within(STOP_TIMEOUT)
        waiting = list(ids)
        while waiting:
            found = self.retry.call(partial(self.lighthouse.find_instances, region, ids=waiting,
                                            deadline=run.deadline), deadline=run.deadline)
            # Idle and RUNNING: its stop was refused; not waited for (its image powers it off).
            waiting = [i.id for i in found if i.operation_state == "OPERATING"
                       or i.state not in ("STOPPED", "RUNNING")]
            if not waiting or deadline.remaining() <= STOP_POLL:
                return
            deadline.pause(STOP_POLL, "instances to stop", region=region, instances=len(waiting))

    # ---- one instance --------------------------------------------------------------------------------------

    def protect(self, run: Run, target: Target, name: str) -> Protection:
        """One point per wanted disk of the instance for this slot: the slot's own if made, else a new one."""
        wanted, left_out = self.wanted(run, target.ref.Region, target.ref.InstanceId)
        unread = _state(run, target.ref.Region).error
        if unread is not None and self._chosen(run) != "none":
            return Protection(failed=tuple((d, _unread(unread)) for d in [d.id for d in wanted] or ["its data disks"]),
                              unprotected=left_out)
        points: list[DiskPoint] = []
        failed: list[tuple[str, BlueprintError]] = []
        made_before = set(_state(run, target.ref.Region).slot_points)
        for disk in wanted:
            try:
                point = self._point(run, target, disk, name)
            except BlueprintError as err:
                log("ERROR", "backup point failed", instance=target.ref.InstanceId, disk=disk.id, error=err.message)
                failed.append((disk.id, err))
                continue
            points.append(DiskPoint(disk_id=disk.id, point_id=point.id, state=point.state))
        return Protection(tuple(points), tuple(failed), left_out,
                          new=tuple(p.disk_id for p in points if p.disk_id not in made_before))

    def _slot_points(self, run: Run, region: str, *, drop_twins: bool = False) -> dict[str, Point]:
        """The oldest point of this slot per disk. With `drop_twins`, the slot's younger points of a disk (a race
        between twin invocations) are deleted when the cloud lets them go: a disk's backup quota is small."""
        found = self.retry.call(partial(self.cloud.find_points, region, tags={SLOT_TAG: run.digest},
                                        deadline=run.deadline), deadline=run.deadline)
        slot = [p for p in found if p.tags.get(SLOT_TAG) == run.digest]
        oldest = _oldest_per_disk(slot)
        twins = [p.id for p in slot if is_managed(p) and p is not oldest.get(p.disk_id) and p.state in POINT_DELETABLE]
        if drop_twins and twins and self._delete(run, region, twins):
            log("INFO", "deleted backup points a twin invocation made for the same slot", region=region, points=twins)
        return oldest

    def _point(self, run: Run, target: Target, disk: Disk, name: str) -> Point:
        state = _state(run, target.ref.Region)
        if run.prepares and disk.id not in state.slot_points:
            # The run waited on its instances since it looked: a twin invocation may have made the point meanwhile.
            with state.lock:
                if run.deadline.clock.monotonic() - state.looked > RECHECK_AFTER:
                    try:
                        state.slot_points = {**self._slot_points(run, target.ref.Region), **state.slot_points}
                    except BlueprintError as err:  # a race is then resolved as before: busy disk, then a look
                        log("WARNING", "could not look up the slot's points again before making one",
                            region=target.ref.Region, error=err.message)
                    state.looked = run.deadline.clock.monotonic()
        existing = state.slot_points.get(disk.id)
        if existing is not None:
            return existing
        tags = {t.Key: t.Value for t in run.job.Tags} | {INSTANCE_TAG: target.ref.InstanceId, SLOT_TAG: run.digest}
        attempt = partial(self._create, run, target.ref.Region, disk, f"{name}-{disk.id}"[:90], tags)
        try:
            point = self._carefully(run, target.ref.Region, disk, attempt)
        except DiskQuotaExceeded as err:
            point = self._after_quota(run, target, disk, err, attempt)
        state.slot_points[disk.id] = point
        return point

    def _create(self, run: Run, region: str, disk: Disk, name: str, tags: dict[str, str]) -> Point:
        point_id, request_id = self.cloud.create_point(region, disk.id, name=name, tags=tags, deadline=run.deadline)
        return Point(id=point_id, disk_id=disk.id, state="CREATING", tags=tags, name=name, request_id=request_id)

    def _carefully(self, run: Run, region: str, disk: Disk, attempt: Callable[[], Point]) -> Point:
        """Create with retries; before a retry after a lost answer, look for the slot's point of the disk."""

        def before_retry(err: BlueprintError) -> Point | None:
            if not isinstance(err, CloudUnavailable | InstanceBusy):
                return None
            return self._slot_points(run, region).get(disk.id)

        return self.retry.call(attempt, deadline=run.deadline, before_retry=before_retry)

    def _after_quota(self, run: Run, target: Target, disk: Disk, err: DiskQuotaExceeded,
                     attempt: Callable[[], Point]) -> Point:
        """The disk's backup quota is full: delete its oldest managed points down to Keep - 1, try once more."""
        mine = [p for p in self._managed(run, target.ref.Region, target.ref.InstanceId) if p.disk_id == disk.id]
        doomed = plan_prune(mine, run.keep - 1, deletable=POINT_DELETABLE) if run.keep else []
        if doomed and self._delete(run, target.ref.Region, [p.id for p in doomed]):
            return self._carefully(run, target.ref.Region, disk, attempt)
        quota = "no backup quota" if disk.backup_quota == 0 else f"a full backup quota ({disk.backup_quota} points)"
        raise DiskQuotaExceeded(
            f"{disk.id} has {quota}; {len(mine)} of its points were made by this function"
            + ("" if run.keep else "; set Keep (or BLUEPRINT_KEEP) to let the function delete its old points")
            + "; or raise the disk's quota (ModifyDisksBackupQuota, billable)", request_id=err.request_id) from err

    # ---- after creating: retention ---------------------------------------------------------------------------

    def retain(self, run: Run, region: str, results: list[Result]) -> list[Result]:
        """Keep `Keep` managed points per protected disk of the instances imaged now; the results with what
        was deleted (`PrunedDiskBackups`)."""
        if not run.keep:
            return results
        made = [n for n, r in enumerate(results) if r.region == region and r.disk_backups and not r.resent]
        if not made:
            return results
        by_instance: dict[str, list[Point]] = defaultdict(list)
        listing = partial(self.cloud.find_points, region, tag_key=INSTANCE_TAG, deadline=run.deadline) \
            if len(made) > 1 else partial(self.cloud.find_points, region, deadline=run.deadline,
                                          tags={INSTANCE_TAG: results[made[0]].instance_id})
        try:
            found = self.retry.call(listing, deadline=run.deadline)
        except BlueprintError as err:
            # Nothing is deleted without a listing; the run goes on to follow its images and start its instances.
            log("ERROR", "could not list backup points for retention", region=region, error=err.message)
            return results
        for point in found:
            by_instance[point.tags.get(INSTANCE_TAG, "")].append(point)
        results = list(results)
        for index in made:
            results[index] = self._prune(run, region, results[index], by_instance.get(results[index].instance_id, []))
        return results

    def _prune(self, run: Run, region: str, result: Result, points: list[Point]) -> Result:
        assert run.keep is not None  # noqa: S101 (the caller prunes only with Keep)
        per_disk: dict[str, list[Point]] = defaultdict(list)
        for point in points:
            per_disk[point.disk_id].append(point)
        doomed: list[Point] = []
        state = run.disk_state.get(region)
        for made in result.disk_backups:
            current = {p.id: p for p in per_disk.get(made.disk_id, [])}
            if made.point_id and made.point_id not in current:  # the listing may not show it yet
                current[made.point_id] = Point(id=made.point_id, disk_id=made.disk_id, state=made.state or "CREATING",
                                               tags={INSTANCE_TAG: result.instance_id, SLOT_TAG: run.digest})
            dropped = plan_prune(current.values(), run.keep, deletable=POINT_DELETABLE)
            doomed += dropped
            new = current.get(made.point_id or "")
            if run.follows and isinstance(state, RegionDisks) and new is not None and not new.ready:
                # What stays only while the new point is not NORMAL: once the run has followed it there, those go.
                others = [p for p in current.values() if p.id != new.id]
                later = [p.id for p in plan_held(others, run.keep, dropped, deletable=POINT_DELETABLE)
                         if _managed(p, result.instance_id)]
                if later:
                    state.held[(result.instance_id, made.disk_id)] = later
        ids = [p.id for p in doomed if _managed(p, result.instance_id)]
        if not ids or not self._delete(run, region, ids):
            return result
        return result.but(pruned_points=result.pruned_points + tuple(ids))

    def _managed(self, run: Run, region: str, instance_id: str) -> list[Point]:
        found = self.retry.call(partial(self.cloud.find_points, region, tags={INSTANCE_TAG: instance_id},
                                        deadline=run.deadline), deadline=run.deadline)
        return [p for p in found if _managed(p, instance_id)]

    def _delete(self, run: Run, region: str, ids: list[str]) -> bool:
        """DeleteDiskBackups with retries; after a lost answer, the retry's ResourceNotFound says the lost call
        deleted them (all or none)."""
        lost = LostAnswer()
        try:
            self.retry.call(partial(self.cloud.delete_points, region, ids, deadline=run.deadline),
                            deadline=run.deadline, before_retry=lost)
        except NotFound as err:
            if lost.seen:
                return True
            log("ERROR", "could not delete old backup points", region=region, error=err.message)
            return False
        except BlueprintError as err:
            log("ERROR", "could not delete old backup points", region=region, error=err.message)
            return False
        return True

    def refresh(self, run: Run, region: str, results: list[Result]) -> list[Result]:
        """After following the images: the points' latest states; a point the cloud no longer lists could not
        be made (DiskBackupState has no failure value), and its instance's result says so."""
        ids = [p.point_id for r in results if r.region == region for p in r.disk_backups
               if p.point_id and p.state != "NORMAL"]
        if not ids:
            return self._prune_held(run, region, results)
        try:
            seen = self._follow(run, region, ids)
        except BlueprintError as err:
            # The points keep the states the run saw; the instances are still started again after this.
            log("ERROR", "could not follow the backup points", region=region, error=err.message)
            return results
        updated = []
        for result in results:
            if result.region != region or not result.disk_backups:
                updated.append(result)
                continue
            points = tuple(p if p.point_id not in ids else DiskPoint(p.disk_id, p.point_id, seen[p.point_id].state)
                           for p in result.disk_backups if p.point_id not in ids or p.point_id in seen)
            lost = [(p.disk_id, BlueprintError(f"backup point {p.point_id} could not be made (the cloud no longer "
                                               "lists it)", code=DISK_FAILED))
                    for p in result.disk_backups if p.point_id in ids and p.point_id not in seen]
            updated.append(result.but(disk_backups=points, disk_failures=result.disk_failures + tuple(lost)))
        return self._prune_held(run, region, updated)

    def _prune_held(self, run: Run, region: str, results: list[Result]) -> list[Result]:
        """Retention's last step in a run that followed its points: a disk whose new point is NORMAL now, with
        its image, loses what was kept only until then (`RegionDisks.held`, from the listing after creating).
        While the new image is not NORMAL, the points that go with the image before it stay."""
        state = run.disk_state.get(region)
        if not isinstance(state, RegionDisks) or not state.held:
            return results
        updated = list(results)
        for index, result in enumerate(results):
            if result.region != region or result.outcome != "ready" or result.pending:
                continue
            ids = [point for p in result.disk_backups if p.state == "NORMAL"
                   for point in state.held.pop((result.instance_id, p.disk_id), [])]
            if ids and self._delete(run, region, ids):
                updated[index] = result.but(pruned_points=result.pruned_points + tuple(ids))
        return updated

    def finish(self, results: list[Result]) -> list[Result]:
        """The results, `.failed` where a point failed (once the images were followed)."""
        return [finish(r) for r in results]

    def _follow(self, run: Run, region: str, ids: list[str]) -> dict[str, Point]:
        """Poll the points until none is being made (only when the job says Wait: a run that follows its images
        only to start the instance again looks once), or the deadline is near; the last listing by id."""
        delay = POINT_POLL_FIRST
        while True:
            seen = {p.id: p for p in self.retry.call(partial(self.cloud.find_points, region, ids=ids,
                                                            deadline=run.deadline), deadline=run.deadline)}
            moving = [i for i in ids if i in seen and seen[i].state == "CREATING"]
            if not moving or not run.job.Wait or run.deadline.remaining() < delay + 2:
                return seen
            run.deadline.pause(delay, "backup points to become NORMAL", region=region, points=len(moving))
            delay = min(delay * 1.5, POINT_POLL_MAX)

    # ---- dry runs ---------------------------------------------------------------------------------------

    def dry_run(self, run: Run, target: Target, result: Result) -> Result:
        """What a real run would protect, leave out, delete and keep, for one instance."""
        wanted, left_out = self.wanted(run, target.ref.Region, target.ref.InstanceId)
        points = tuple(DiskPoint(disk_id=d.id, point_id=None, state=None) for d in wanted)
        kept: dict[str, Any] = dict(result.kept or {})
        if wanted:
            mine = self._managed(run, target.ref.Region, target.ref.InstanceId) if run.keep else []
            kept["DiskBackups"] = {d.id: _kept([p for p in mine if p.disk_id == d.id], run.keep) for d in wanted}
        return result.but(disk_backups=points, unprotected=left_out or None, kept=kept or None)

    def price(self, run: Run, region: str, count: int) -> dict[str, Any]:
        """The price of `count` images in the region, or why it is unknown (the dry run answers anyway)."""
        try:
            price: Price = self.retry.call(partial(self.cloud.price, region, count, deadline=run.deadline),
                                           deadline=run.deadline)
        except BlueprintError as err:
            return {"Unknown": f"the price could not be read: {err.code}"}
        return price.data()



def _by_region(targets: Sequence[Target]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for target in targets:
        groups[target.ref.Region].append(target.ref.InstanceId)
    return groups


def _unread(err: BlueprintError) -> BlueprintError:
    unread = BlueprintError(f"could not be read, so no backup point was made ({err.message})", code=err.code)
    unread.retryable = err.retryable
    return unread


def _state(run: Run, region: str) -> RegionDisks:
    state = run.disk_state.get(region)
    return state if isinstance(state, RegionDisks) else RegionDisks()


def _kept(points: list[Point], keep: int | None) -> int:
    """How many managed points of one disk remain after a run that adds one: what retention would leave, which
    never deletes the newest NORMAL point nor one in progress (the new point is one of `keep`)."""
    doomed = plan_prune(points, keep - 1, deletable=POINT_DELETABLE) if keep else []
    return len(points) + 1 - len(doomed)


def _managed(point: Point, instance_id: str) -> bool:
    return point.tags.get(INSTANCE_TAG) == instance_id and bool(point.tags.get(SLOT_TAG))


def _oldest_per_disk(points: Any) -> dict[str, Point]:
    oldest: dict[str, Point] = {}
    for point in sorted(points, key=lambda p: (p.created.timestamp() if p.created else 0.0, p.id)):
        if point.state != "DELETING":
            oldest.setdefault(point.disk_id, point)
    return oldest
