"""Copies in other regions: what happens after an image is NORMAL, when the job says `CopyTo`.

A copy is made by SyncBlueprint (at most 10 regions a call, never the source region, never across the border
between mainland China and other regions, only of a NORMAL image; the source shows SYNCING until its copies
are done, and a copy takes 15 to 40 minutes: https://www.tencentcloud.com/document/product/1103/56694).
SyncBlueprint puts no tags on a copy, so the function tags it (Tag API) as managed: `scf-blueprint:instance`,
`scf-blueprint:slot` and `scf-blueprint:source` (the image it copies). Then:

* Once per slot and region. Before copying, the destination is looked up by the slot's tags; a copy found
  is reported again (`.copied`, same id), never made twice. A copy whose answer or tagging was lost shows up
  untagged, with the source's name, made after the source: it is adopted (tagged), not made again. While the
  source is SYNCING (an earlier attempt's copy is under way) nothing is sent; the run looks again later.
* Retention per destination: `CopyKeep` (default `Keep`) copies per instance, by the same rules as at home,
  over copies only (images with all three tags), never anything else in that region. A copy that failed
  (SYNCING_FAILED) is reported as `.failed` and removed first.
* With `Wait`, copies are followed to NORMAL like the image; what is still being copied when time runs out is
  followed by a chained call of the function.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial

from blueprint.errors import BadRequest, BlueprintError, CloudUnavailable, ConfigError, Throttled
from blueprint.events import Job
from blueprint.images import INSTANCE_TAG, SLOT_TAG, Run, Target, is_managed, plan_prune
from blueprint.lighthouse import Image, RegionInfo, Replication
from blueprint.logs import log
from blueprint.policy import Policy
from blueprint.results import Result
from blueprint.retry import Deadline, RetryPolicy
from blueprint.tags import Tagger, resource_name

__all__ = ["LATER", "SOURCE_TAG", "Copies", "is_copy"]

SOURCE_TAG = "scf-blueprint:source"
# A copy that must wait for its source to be NORMAL again: not a failure, the run looks again later.
LATER = "FailedOperation.CopyLater"
# How recent an untagged copy may be to be adopted as the one a lost answer made.
ADOPT_WITHIN = timedelta(hours=24)
# Destination region -> (copy id, state, request id).
Made = dict[str, tuple[str, str | None, str | None]]


def _by_region(results: list[Result], indexes: list[int]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for n in indexes:
        groups[results[n].region].append(n)
    return dict(groups)


def _no_resend(err: BlueprintError) -> None:
    """SyncBlueprint has no idempotency token: after a lost answer it is never sent again blindly (the next
    invocation finds and adopts the copy it may have made); only throttling is retried at once.

    Raises:
        BlueprintError: `err`, unless the cloud only throttled the call.
    """
    if not isinstance(err, Throttled):
        raise err


def is_copy(image: Image, instance_id: str | None = None) -> bool:
    """A copy this function made (the managed tags and the source tag)."""
    return is_managed(image, instance_id) and bool(image.tags.get(SOURCE_TAG))


@dataclass
class Copies:
    """The copy phase: SyncBlueprint, tag, report, keep `CopyKeep` per destination."""

    cloud: Replication
    tagger: Tagger
    policy: Policy
    retry: RetryPolicy

    def wanted(self, job: Job) -> bool:
        """True when the job names regions to copy to."""
        return bool(job.CopyTo)

    def check(self, job: Job, targets: Sequence[Target], *, deadline: Deadline, account: str | None) -> None:
        """Refuse what SyncBlueprint would refuse, before anything is made.

        Raises:
            BadRequest: a destination is a source region, unknown, or across the mainland border.
            ConfigError: the account id is unknown (copies are tagged through the Tag API, which needs it).
        """
        if not job.CopyTo or not targets:
            return
        sources = sorted({t.ref.Region for t in targets} & set(job.CopyTo))
        if sources:
            raise BadRequest(f"CopyTo holds {', '.join(sources)}, a region of an instance to image: a copy goes to "
                             "another region", code="InvalidParameterValue.DestinationRegionSameAsSourceRegion")
        home = targets[0].ref.Region
        infos = self.retry.call(lambda: self.cloud.region_infos(home, deadline=deadline), deadline=deadline)
        unknown = [r for r in job.CopyTo if r not in infos or not infos[r].available]
        if unknown:
            raise BadRequest(f"CopyTo holds {', '.join(unknown)}, where Lighthouse is not available",
                             code="InvalidParameterValue.UnavailableRegion")
        self._same_side(job.CopyTo, {t.ref.Region for t in targets}, infos)
        if account is None:
            raise ConfigError("copies are tagged with the Tag API, which names resources by account id: SCF's "
                              "context gives it (tencentcloud_uin); elsewhere set BLUEPRINT_ACCOUNT_ID",
                              code="FailedOperation.AccountIdUnknown")

    @staticmethod
    def _same_side(destinations: Sequence[str], sources: set[str], infos: Mapping[str, RegionInfo]) -> None:
        def mainland(region: str) -> bool:
            info = infos.get(region)
            return info is not None and info.mainland

        crossing = sorted(f"{s} -> {d}" for s in sources for d in destinations if mainland(s) != mainland(d))
        if crossing:
            raise BadRequest(f"copies never cross between mainland China and other regions ({', '.join(crossing)})",
                             code="InvalidParameterValue.NotSupportCrossBorderSyncBlueprint")

    # ---- after the image is NORMAL -----------------------------------------------------------------------

    def after_ready(self, run: Run, region: str, ready: Sequence[Result]) -> list[Result]:
        """Copy each ready image to every destination it lacks (with Wait, follow the copies), then keep
        CopyKeep per destination."""
        destinations = list(run.job.CopyTo or [])
        if not destinations or not ready:
            return []
        existing = {d: self._slot_copies(run, d) for d in destinations}
        results: list[Result] = []
        for main in ready:
            results.extend(self._copy_one(run, region, main, destinations, existing))
        if run.job.Wait:
            results = self._follow(run, results, {m.instance_id: m.region for m in ready})
        keep = self.policy.copy_keep_for(run.job)
        if keep:
            for destination in destinations:
                results.extend(self._retain(run, destination, [r.instance_id for r in ready], keep))
        return results

    def _slot_copies(self, run: Run, destination: str) -> dict[str, Image]:
        """The copies of this slot already in a destination, per instance (an image of this slot and instance
        in another region can only be a copy, with or without its source tag)."""
        found = self.retry.call(lambda: self.cloud.find_images(destination, tags={SLOT_TAG: run.digest},
                                                                deadline=run.deadline), deadline=run.deadline)
        return {i.tags[INSTANCE_TAG]: i for i in found if is_managed(i) and i.tags[SLOT_TAG] == run.digest
                and not (i.failed or i.gone)}

    def _copy_one(self, run: Run, region: str, main: Result, destinations: list[str],
                  existing: dict[str, dict[str, Image]]) -> list[Result]:
        """One image's copies: found ones reported again, missing ones made (or adopted), all tagged."""
        assert main.blueprint_id is not None  # noqa: S101 (a ready image has an id)
        have = {d: existing[d][main.instance_id] for d in destinations if main.instance_id in existing[d]}
        missing = [d for d in destinations if d not in have]
        try:
            made = self._make(run, region, main, missing) if missing else {}
            untagged: Made = {d: (i.id, i.state, i.request_id) for d, i in have.items() if SOURCE_TAG not in i.tags}
            self._tag(run, main.instance_id, main.blueprint_id, untagged)
        except BlueprintError as err:
            return self._not_copied(run, main, missing, err)
        results = [run.beside(main, "copied", region=d, blueprint_id=image.id, blueprint_name=image.name,
                              state=image.state, request_id=image.request_id, source_id=main.blueprint_id,
                              resent=True) for d, image in have.items()]
        results += [run.beside(main, "copied", region=d, blueprint_id=copy_id, blueprint_name=main.blueprint_name,
                               state=state, request_id=request_id, source_id=main.blueprint_id)
                    for d, (copy_id, state, request_id) in made.items()]
        return results

    def _not_copied(self, run: Run, main: Result, missing: list[str], err: BlueprintError) -> list[Result]:
        if err.code == LATER:
            # The source is being copied (an earlier attempt's copy): look again once it is NORMAL.
            run.later[(main.region, main.instance_id)] = err.message
            return []
        log("ERROR", "copy failed", instance=main.instance_id, image_id=main.blueprint_id, error=err.message)
        return [run.beside(main, "failed", region=d, source_id=main.blueprint_id, error=err) for d in missing]

    def _make(self, run: Run, region: str, main: Result, missing: list[str]) -> dict[str, tuple[str, str | None,
                                                                                           str | None]]:
        """Copies of one image to the regions that lack one: adopted if a lost answer made them, else synced;
        tagged either way. Returns region -> (copy id, state, request id).

        Raises:
            BlueprintError: SyncBlueprint or the tagging failed (code LATER while the source is not NORMAL).
        """
        assert main.blueprint_id is not None  # noqa: S101 (a ready image has an id)
        source = self._source(run, region, main.blueprint_id)
        adopted = self._adoptable(run, source, main.instance_id, missing)
        made: Made = {d: (i.id, i.state, i.request_id) for d, i in adopted.items()}
        to_sync = [d for d in missing if d not in adopted]
        if to_sync:
            if source.state != "NORMAL":
                raise CloudUnavailable(f"image {source.id} is {source.state or 'not NORMAL'} (a copy may be under way);"
                                       " its copies are made once it is NORMAL again", code=LATER)
            copies, request_id = self.retry.call(lambda: self.cloud.sync_blueprint(
                region, source.id, to_sync, deadline=run.deadline), deadline=run.deadline, before_retry=_no_resend)
            made |= {d: (copy_id, None, request_id) for d, copy_id in copies.items()}
        self._tag(run, main.instance_id, source.id, made)
        return made

    def _source(self, run: Run, region: str, blueprint_id: str) -> Image:
        found = self.retry.call(lambda: self.cloud.find_images(region, ids=[blueprint_id], deadline=run.deadline),
                                deadline=run.deadline)
        if not found:
            raise BlueprintError(f"image {blueprint_id} is gone; nothing to copy", code="ResourceNotFound.Blueprint")
        return found[0]

    def _adoptable(self, run: Run, source: Image, instance: str, regions: list[str]) -> dict[str, Image]:
        """Copies of `source` a lost answer (or a failed tagging) left in these regions: the source's name, made
        after it, and untagged (or with this slot's tags but no source tag, if the cloud copied the tags)."""
        adopted: dict[str, Image] = {}
        since = source.created or datetime.now(timezone.utc) - ADOPT_WITHIN

        def orphan(image: Image) -> bool:
            tags_ok = not image.tags or (image.tags.get(INSTANCE_TAG) == instance and SOURCE_TAG not in image.tags
                                         and image.tags.get(SLOT_TAG) == run.digest)
            made = image.created is not None and since <= image.created < since + ADOPT_WITHIN
            return tags_ok and made and not (image.failed or image.gone)

        for destination in regions:
            found = self.retry.call(partial(self.cloud.find_images, destination, names=[source.name],
                                            deadline=run.deadline), deadline=run.deadline)
            fresh = sorted((i for i in found if orphan(i)), key=lambda i: (i.created or since, i.id))
            if fresh:
                adopted[destination] = fresh[0]
        return adopted

    def _tag(self, run: Run, instance_id: str, source_id: str, made: Made
             ) -> None:
        if not made:
            return
        assert run.account is not None  # noqa: S101 (checked before the run)
        names = [resource_name(d, run.account, "blueprint", copy_id) for d, (copy_id, _, _) in made.items()]
        tags = {INSTANCE_TAG: instance_id, SLOT_TAG: run.digest, SOURCE_TAG: source_id}
        self.retry.call(lambda: self.tagger.tag(names, tags, deadline=run.deadline), deadline=run.deadline)

    # ---- following copies (Wait) ---------------------------------------------------------------------------

    def _follow(self, run: Run, results: list[Result], home: dict[str, str]) -> list[Result]:
        """Poll the copies being made until NORMAL or failed, within the deadline; what is left is followed by
        a chained call (the image's result is marked for it)."""
        delay = self.policy.poll_first
        while True:
            moving = [n for n, r in enumerate(results) if r.outcome == "copied" and r.state != "NORMAL"]
            if not moving or run.deadline.remaining() < delay + 2:
                break
            run.deadline.pause(delay, "copies to become NORMAL", copies=len(moving))
            delay = min(delay * 1.5, self.policy.poll_max)
            for destination, indexes in _by_region(results, moving).items():
                ids = [str(results[n].blueprint_id) for n in indexes]
                seen = {i.id: i for i in self.retry.call(partial(self.cloud.find_images, destination, ids=ids,
                                                                 deadline=run.deadline), deadline=run.deadline)}
                for n in indexes:
                    results[n] = self._observed(results[n], seen.get(str(results[n].blueprint_id)))
        for result in results:
            if result.outcome == "copied" and result.state != "NORMAL":
                run.later[(home[result.instance_id], result.instance_id)] = "copies still being made"
        return results

    @staticmethod
    def _observed(result: Result, image: Image | None) -> Result:
        if image is None:
            return result
        if image.failed or image.gone:
            return result.but(outcome="failed", state=image.state, error=BlueprintError(
                f"the copy {image.id} of image {result.source_id} failed ({image.state})",
                code="FailedOperation.CopyFailed"))
        return result.but(state=image.state)

    # ---- retention in each destination ---------------------------------------------------------------------

    def _retain(self, run: Run, destination: str, instances: list[str], keep: int) -> list[Result]:
        """Keep `keep` copies per instance in one destination; report failed copies as `.failed`."""
        find = self.cloud.find_images
        listing = (lambda: find(destination, tags={INSTANCE_TAG: instances[0]}, deadline=run.deadline)) \
            if len(instances) == 1 else (lambda: find(destination, tag_key=SOURCE_TAG, deadline=run.deadline))
        per_instance: dict[str, list[Image]] = defaultdict(list)
        for image in self.retry.call(listing, deadline=run.deadline):
            if is_copy(image) and image.tags[INSTANCE_TAG] in instances:
                per_instance[image.tags[INSTANCE_TAG]].append(image)
        results: list[Result] = []
        for instance, copies in per_instance.items():
            doomed = [i for i in plan_prune(copies, keep) if is_copy(i, instance)]
            if not doomed:
                continue
            results += [self._failed_copy(run, instance, i) for i in doomed if i.failed]
            results += self._delete(run, destination, instance, doomed)
        return results

    def _failed_copy(self, run: Run, instance: str, image: Image) -> Result:
        # Its own id per copy: the same failed copy is the same event, whichever run finds it.
        main = Result(outcome="failed", instance_id=instance, region=image.region, trigger=run.trigger,
                      slot_key=f"copy|{image.id}", force_power_off=run.force_power_off)
        return main.but(blueprint_id=image.id, blueprint_name=image.name, state=image.state,
                        source_id=image.tags.get(SOURCE_TAG), error=BlueprintError(
                            f"the copy {image.id} of image {image.tags.get(SOURCE_TAG)} failed ({image.state})",
                            code="FailedOperation.CopyFailed"))

    def _delete(self, run: Run, destination: str, instance: str, doomed: list[Image]) -> list[Result]:
        ids = [i.id for i in doomed]
        try:
            request_id = self.retry.call(lambda: self.cloud.delete_images(destination, ids, deadline=run.deadline),
                                         deadline=run.deadline)
        except BlueprintError as err:
            log("ERROR", "could not delete old copies", region=destination, error=err.message)
            return []
        return [Result(outcome="pruned", instance_id=instance, region=destination, trigger=run.trigger,
                       slot_key=run.slot_key, force_power_off=run.force_power_off, blueprint_id=i.id,
                       blueprint_name=i.name, state=i.state, request_id=request_id,
                       source_id=i.tags.get(SOURCE_TAG)) for i in doomed]
