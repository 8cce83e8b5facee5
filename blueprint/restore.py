"""Restore: put an instance back to an image this function made of it. Formats its system disk.

ResetInstance reinstalls an instance's system disk from an image: only a RUNNING or STOPPED instance with no
operation in progress, asynchronously (`LatestOperation` ResetInstance, `LatestOperationState` OPERATING, then
SUCCESS or FAILED). Because the disk is formatted, a restore is guarded more than a backup:

* Off unless `BLUEPRINT_RESTORE=on`; over HTTP only with its own token (`blueprint.http`).
* Only from an image this function made of that very instance (both managed tags), NORMAL, of an instance
  the allowlists admit.
* First a safety image of the instance as it is now (the same machinery as every image: managed tags, its own
  slot, once however often the request is retried), followed to NORMAL; unless the job says
  `"SafetyImage": false`.
* Exactly once per request key: before ResetInstance, the instance is marked with the tag
  `scf-blueprint:restore` = the slot's digest (Tag API). A retry that finds the mark and a ResetInstance
  under way or done follows it instead of formatting the disk a second time. A ResetInstance whose answer was
  lost is not sent again blindly either: a ResetInstance the instance shows started since the restore read it
  (a new `LatestOperationRequestId`) is this one, followed.
* Followed to the end (`.restore.started`, then `.restore.completed` or `.restore.failed`); when time runs
  out, a chained call of the function keeps following it.
* Data disks: the image's slot holds a backup point per data disk (`blueprint.protect`); unless the job says
  `"DataDisks": "none"`, each disk is rolled back to its point (ApplyDiskBackup: the disk's own points only; a
  running instance is shut down) before the reset, which starts the instance again. A disk without a point in
  the slot is reported `Unprotected`. Rolling back to the same point again (a retried restore) gives the same
  data, so a retry that finds the mark but no reset yet rolls back again. Only disks attached to the instance
  now roll back (a disk moved to another instance since is never touched), and a failure after a rollback says
  which disks were rolled back (the instance then holds two moments, and is left stopped).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from blueprint.disks import Disks, Point
from blueprint.errors import (
    AccessDenied,
    BadRequest,
    BlueprintError,
    CloudRejected,
    CloudUnavailable,
    InvalidInstanceState,
    NotFound,
)
from blueprint.events import InstanceRef, Job, RestoreJob, TriggerInfo
from blueprint.images import INSTANCE_TAG, SLOT_TAG, ImageMaker, Target, is_managed
from blueprint.lighthouse import Image, Instance, Replication
from blueprint.logs import log
from blueprint.results import DiskPoint, Result, RunReport
from blueprint.retry import Deadline, LostAnswer, RetryPolicy
from blueprint.slots import slot_digest
from blueprint.tags import Tagger, resource_name

__all__ = ["RESTORE_TAG", "Restorer"]

RESTORE_TAG = "scf-blueprint:restore"
OPERATION = "ResetInstance"
ROLLBACK = "ApplyDiskBackup"
# Polls of the instance while the reset runs: it takes minutes, not seconds.
POLL_FIRST, POLL_MAX = 5.0, 20.0


@dataclass(frozen=True)
class _Points:
    """The data disks' points a restore rolls back to, and the data disks without one in the image's slot."""

    points: tuple[Point, ...] = ()
    missing: tuple[str, ...] = ()


@dataclass
class _Restore:
    """One restore as it runs: the job, where, and the slot that makes it happen once."""

    job: RestoreJob
    region: str
    trigger: TriggerInfo
    slot_key: str
    deadline: Deadline
    account: str | None
    safety_id: str | None = None

    points: _Points = field(default_factory=_Points)
    # The data disks this restore rolled back (or is rolling back): a failure after them says so.
    rolled: list[str] = field(default_factory=list)

    def result(self, outcome: Any, **fields: Any) -> Result:
        disks = tuple(DiskPoint(p.disk_id, p.id, p.state) for p in self.points.points)
        return Result(outcome=outcome, instance_id=self.job.InstanceId, region=self.region, trigger=self.trigger,
                      slot_key=self.slot_key, force_power_off=False, blueprint_id=self.job.BlueprintId,
                      safety_id=self.safety_id, disk_backups=disks, unprotected=self.points.missing or None,
                      **fields)



@dataclass
class Restorer:
    """Runs restores: checks, safety image, reset, following it."""

    cloud: Replication
    maker: ImageMaker
    tagger: Tagger
    retry: RetryPolicy
    disks: Disks | None = None

    def run(self, job: RestoreJob, *, region: str, trigger: TriggerInfo, slot_key: str, deadline: Deadline,
            account: str | None) -> RunReport:
        """One restore; its report holds the safety image's results and the restore's own. A result marked
        `pending` (the safety image, or the reset, still running when time ran out) asks the caller for a
        chained call that goes on with it.

        Raises:
            BlueprintError: the restore may not run (403 not allowed, 404 no such image of this instance,
                409 the image is not NORMAL); nothing was changed.
        """
        restore = _Restore(job, job.Region or region, trigger, slot_key, deadline, account)
        report = RunReport(trigger, slot_key)
        instance, image = self._check(restore)
        restore.points = self._points(restore, image)
        if job.DryRun:
            report.results.append(restore.result("skipped", dry_run=True, reason=_plan(restore)))
            return report
        if job.SafetyImage:
            safety = self._safety_image(restore, instance, report)
            if safety is None:
                return report
            restore.safety_id = safety.blueprint_id
        started = self._reset(restore, report)
        if started is not None:
            report.results.append(self._follow(restore, started))
        return report

    # ---- checks ------------------------------------------------------------------------------------------

    def _check(self, restore: _Restore) -> tuple[Instance, Image]:
        """The instance and the image, once everything that must hold before a reset does.

        Raises:
            BlueprintError: see `run`.
        """
        job, deadline = restore.job, restore.deadline
        found = self.retry.call(partial(self.cloud.find_instances, restore.region, ids=[job.InstanceId],
                                        deadline=deadline), deadline=deadline)
        instance = found[0] if found else None
        why = self.maker.policy.refusal(job.InstanceId, instance.tags if instance else {})
        if why is not None:
            raise why
        if instance is None:
            raise NotFound(f"no instance {job.InstanceId} in {restore.region}",
                           code="ResourceNotFound.InstanceIdNotFound")
        images = self.retry.call(partial(self.cloud.find_images, restore.region, ids=[job.BlueprintId],
                                         deadline=deadline), deadline=deadline)
        image = images[0] if images else None
        if image is None or not is_managed(image, job.InstanceId):
            raise NotFound(f"no image {job.BlueprintId} made by this function of {job.InstanceId} in "
                           f"{restore.region}: only such images restore", code="ResourceNotFound.BlueprintIdNotFound")
        if not image.ready:
            raise InvalidInstanceState(f"image {image.id} is {image.state}; only a NORMAL image restores",
                                       code="UnsupportedOperation.BlueprintCurStateInvalid")
        return instance, image

    def _points(self, restore: _Restore, image: Image) -> _Points:
        """The data disks to roll back with the image: each wanted disk's point of the image's slot.

        Raises:
            BadRequest: the job names a disk that is not attached to the instance now (nothing was changed).
            NotFound: the job names a disk that has no point in the image's slot (nothing was changed).
        """
        chosen = restore.job.DataDisks or "all"
        if self.disks is None or chosen == "none":
            return _Points()
        deadline = restore.deadline
        disks = self.retry.call(partial(self.disks.find_disks, restore.region, [restore.job.InstanceId],
                                        deadline=deadline), deadline=deadline)
        found = self.retry.call(partial(self.disks.find_points, restore.region, deadline=deadline,
                                        tags={SLOT_TAG: image.tags[SLOT_TAG], INSTANCE_TAG: restore.job.InstanceId}),
                                deadline=deadline)
        by_disk = {p.disk_id: p for p in sorted(found, key=lambda p: p.created.timestamp() if p.created else 0.0,
                                                reverse=True) if p.state in ("NORMAL", "ROLLBACKING")}
        attached = [d.id for d in disks]
        strangers = [d for d in chosen if d not in attached] if isinstance(chosen, list) else []
        if strangers:
            # A disk moved to another instance since: rolling it back would stop and overwrite that instance.
            raise BadRequest(f"{', '.join(strangers)} is not a data disk of {restore.job.InstanceId} now: a restore "
                             "rolls back only the instance's own disks", code="InvalidParameterValue.DiskNotAttached")
        wanted = attached if chosen == "all" else list(chosen)
        missing = [d for d in wanted if d not in by_disk]
        if isinstance(chosen, list) and missing:
            raise NotFound(f"no backup point of {', '.join(missing)} was made with image {image.id}: only the "
                           "disks it protected roll back with it", code="ResourceNotFound.DiskBackupIdNotFound")
        return _Points(tuple(by_disk[d] for d in wanted if d in by_disk), tuple(missing))

    # ---- the safety image --------------------------------------------------------------------------------

    def _safety_image(self, restore: _Restore, instance: Instance, report: RunReport) -> Result | None:
        """The safety image of the instance, made once for this restore and followed to NORMAL; None when the
        restore cannot go on yet (the image is still being made: its result is `pending`) or failed."""
        # Never between the operator's commands: the reset takes the server down anyway, and a server that needs
        # restoring is one whose agent or application (so its pre-command) may well be broken.
        job = Job(InstanceId=restore.job.InstanceId, Region=restore.region, Wait=True, Consistent=False,
                  Description=f"before restoring {restore.job.BlueprintId}"[:60])
        target = Target(InstanceRef(Region=restore.region, InstanceId=instance.id), instance.name, instance.tags)
        # Nothing pruned: with Keep, the safety image would make room by deleting the oldest image and points,
        # which may be the very ones being restored. The next scheduled run prunes as usual.
        safety, _ = self.maker.run(job, [target], trigger=restore.trigger, slot_key=f"{restore.slot_key}|safety",
                                   deadline=restore.deadline, account=restore.account, prune=False)
        report.results.extend(safety.results)
        report.was_running |= safety.was_running
        main = next((r for r in safety.results if r.main), None)
        if main is not None and main.outcome == "ready":
            return main
        if main is not None and main.pending:
            return None
        if main is None or main.outcome == "failed":
            error = main.error if main is not None and main.error else BlueprintError("no safety image was made")
            report.results.append(restore.result("restore.failed", error=BlueprintError(
                f"the safety image could not be made ({error.message}); nothing was reset", code=error.code)))
        return None

    # ---- the reset ---------------------------------------------------------------------------------------

    def _reset(self, restore: _Restore, report: RunReport) -> Result | None:
        """Mark the instance, then ResetInstance, unless the mark shows it was asked for already."""
        instance = self._instance(restore)
        digest = slot_digest(restore.slot_key)
        if instance.tags.get(RESTORE_TAG) == digest and instance.operation == OPERATION:
            return restore.result("restore.started", state=instance.operation_state, resent=True,
                                  request_id=instance.operation_request_id,
                                  reason="this restore was started before; it is being followed")
        try:
            self._mark(restore, digest)
            if not self._roll_back(restore):
                report.results.append(restore.result("restore.started", pending=True, state="ROLLBACKING",
                                                     reason="the data disks are still rolling back"))
                return None
            request_id = self._send_reset(restore, instance)
        except BlueprintError as err:
            log("ERROR", "restore not started", instance=restore.job.InstanceId, error=err.message)
            report.results.append(restore.result("restore.failed", error=_with_changes(err, restore)))
            return None
        return restore.result("restore.started", state="OPERATING", request_id=request_id)

    def _roll_back(self, restore: _Restore) -> bool:
        """Roll the data disks back to their points and wait for it; False when time ran out first.

        Raises:
            BlueprintError: a rollback could not be started, or ended FAILED (the reset does not happen).
        """
        points = restore.points.points
        if not points or self.disks is None:
            return True
        disks = self.disks
        for point in points:
            if point.state != "ROLLBACKING":
                self._apply(restore, disks, point)
            restore.rolled.append(point.disk_id)
        delay = POLL_FIRST
        while True:
            current = {d.id: d for d in self.retry.call(partial(disks.find_disks, restore.region,
                                                                [restore.job.InstanceId], deadline=restore.deadline),
                                                        deadline=restore.deadline)}
            states = [current.get(p.disk_id) for p in points]
            failed = [d.id for d in states
                      if d is not None and d.operation == ROLLBACK and d.operation_state == "FAILED"]
            if failed:
                restore.rolled[:] = [d for d in restore.rolled if d not in failed]
                raise BlueprintError(f"ApplyDiskBackup of {', '.join(failed)} failed; the system disk was not reset",
                                     code="FailedOperation.ApplyDiskBackup")
            if all(d is not None and d.operation_state != "OPERATING" for d in states):
                return True
            if restore.deadline.remaining() < delay + 2:
                return False
            restore.deadline.pause(delay, "the data disks to roll back", instance=restore.job.InstanceId)
            delay = min(delay * 1.5, POLL_MAX)

    def _apply(self, restore: _Restore, disks: Disks, point: Point) -> None:
        """ApplyDiskBackup; after a lost answer, a point found ROLLBACKING is this very rollback, followed (a
        resend would be refused: the point is busy).

        Raises:
            BlueprintError: the rollback could not be started.
        """

        def started(err: BlueprintError) -> str | None:
            if not isinstance(err, CloudUnavailable):
                return None
            found = self.retry.call(partial(disks.find_points, restore.region, ids=[point.id],
                                            deadline=restore.deadline), deadline=restore.deadline)
            return "ROLLBACKING" if any(p.state == "ROLLBACKING" for p in found) else None

        self.retry.call(partial(disks.apply_point, restore.region, point.disk_id, point.id, deadline=restore.deadline),
                        deadline=restore.deadline, before_retry=started)

    def _send_reset(self, restore: _Restore, before: Instance) -> str:
        """ResetInstance, once; after a lost answer, a reset the instance shows started since `before` was read
        is this very one, followed (a resend would be refused as busy, or, once it ended, format the disk again).

        Raises:
            BlueprintError: the reset could not be started.
        """
        lost = LostAnswer()

        def started(err: BlueprintError) -> str | None:
            lost(err)
            if not lost.seen:
                # Only refusals so far (busy, throttled): nothing sent could have acted, so a reset found is not ours.
                return None
            return _new_reset(before, self._instance(restore), restore.job.BlueprintId)

        return self.retry.call(partial(self.cloud.reset_instance, restore.region, restore.job.InstanceId,
                                       restore.job.BlueprintId, deadline=restore.deadline),
                               deadline=restore.deadline, before_retry=started)

    def _instance(self, restore: _Restore) -> Instance:
        found = self.retry.call(partial(self.cloud.find_instances, restore.region, ids=[restore.job.InstanceId],
                                        deadline=restore.deadline), deadline=restore.deadline)
        if not found:
            raise NotFound(f"instance {restore.job.InstanceId} is gone", code="ResourceNotFound.InstanceIdNotFound")
        return found[0]

    def _mark(self, restore: _Restore, digest: str) -> None:
        if restore.account is None:
            raise AccessDenied("a restore marks the instance through the Tag API, which names resources by account "
                               "id: SCF's context gives it (tencentcloud_uin); elsewhere set BLUEPRINT_ACCOUNT_ID",
                               code="FailedOperation.AccountIdUnknown")
        name = resource_name(restore.region, restore.account, "instance", restore.job.InstanceId)
        self.retry.call(partial(self.tagger.tag, [name], {RESTORE_TAG: digest}, deadline=restore.deadline),
                        deadline=restore.deadline)

    def _follow(self, restore: _Restore, started: Result) -> Result:
        """Poll the instance until its reset ends, within the deadline; the last word is the result."""
        delay = POLL_FIRST
        while restore.deadline.remaining() >= delay + 2:
            restore.deadline.pause(delay, "the reset to end", instance=restore.job.InstanceId)
            delay = min(delay * 1.5, POLL_MAX)
            instance = self._instance(restore)
            if instance.operation != OPERATION or instance.operation_state == "OPERATING":
                continue
            if instance.operation_state == "SUCCESS":
                return started.but(outcome="restore.completed", state=instance.state, pending=False, reason=None)
            # The cloud ran the reset and it failed: the cloud's side (502), not the function's (500).
            return started.but(outcome="restore.failed", state=instance.state, error=CloudRejected(
                f"ResetInstance of {instance.id} ended {instance.operation_state}",
                code="FailedOperation.ResetInstance"))
        return started.but(pending=True, reason="the reset is still running when the function's time ran out")


def _new_reset(before: Instance, now: Instance, blueprint_id: str) -> str | None:
    """The request id of the ResetInstance `now` shows, when it started after `before` was read (so after the
    restore's own checks, just before it sent ResetInstance); None when it is not such a reset.

    Compared by what the cloud itself says (request ids, its own start times), never by the function's clock: the
    two clocks differ, and a reset of an earlier restore must not be taken for this one.
    """
    if now.operation != OPERATION or now.operation_request_id is None:
        return None
    if now.operation_request_id == before.operation_request_id:
        return None  # the reset the instance showed before this one was sent: an earlier restore's
    if before.operation_started and now.operation_started and now.operation_started < before.operation_started:
        return None
    if now.operation_state == "SUCCESS" and now.blueprint_id not in (None, blueprint_id):
        return None  # done, but to another image: someone else's reset
    # In any state: one that ended FAILED is reported so, never sent again (its disk may be formatted already).
    return now.operation_request_id


def _with_changes(err: BlueprintError, restore: _Restore) -> BlueprintError:
    """The failure of a restore that rolled data disks back already, saying so: the instance's disks now hold
    different moments (the data disks the slot's, the system disk its own), and the rollback stopped it."""
    if not restore.rolled:
        return err
    safety = f"; the safety image {restore.safety_id} and its points hold what they held" if restore.safety_id else ""
    changed = copy.copy(err)
    changed.message = (f"{err.message}; but {', '.join(f'{d} was rolled back' for d in restore.rolled)} to the point "
                       f"made with {restore.job.BlueprintId}{safety}; the rollback stopped the instance: it is left "
                       "stopped until its disks are as wanted (retry the restore, or apply the safety points)")
    changed.args = (changed.message,)
    return changed


def _plan(restore: _Restore) -> str:
    first = "make a safety image of the instance as it is now, then " if restore.job.SafetyImage else ""
    disks = ", ".join(f"{p.disk_id} to {p.id}" for p in restore.points.points)
    rollback = f"roll its data disks back ({disks}: what they hold now is replaced), then " if disks else ""
    return (f"dry run: would {first}{rollback}reset {restore.job.InstanceId} to {restore.job.BlueprintId} (its "
            "system disk is formatted); nothing was changed")


def restores_in(results: Sequence[Result]) -> list[Result]:
    """The restore's own results (not the safety image's)."""
    return [r for r in results if r.outcome.startswith("restore.")]
