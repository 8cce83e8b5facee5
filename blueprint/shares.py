"""Shares with other accounts: what happens after an image is NORMAL, when the job or the operator says so.

ShareBlueprintAcrossAccounts shares a NORMAL custom image with at most 10 main accounts; the other account
sees it (type SHARED) in the same region and can make instances from it, so a compromised or locked account is
not the end of the backups. The accounts are the operator's `BLUEPRINT_SHARE_WITH` plus a job's `ShareWith`
(only accounts the operator allows: `blueprint.policy`). Shares come before copies: SyncBlueprint puts the
source in SYNCING for up to 40 minutes, and only a NORMAL image can be shared.

* Once per image and account: the accounts it is shared with are read first; only the missing ones are
  added. Each account is reported as `.shared`, again with the same id on every invocation that finds it.
* ShareBlueprintAcrossAccounts has no idempotency token, and the cloud refuses to share an image with an
  account twice (`UnsupportedOperation.BlueprintAlreadyShared`). So a share whose answer was lost is not sent
  again blindly: the shares are read first, and an account found shared is `.shared` (with no request id:
  the call that shared it went unanswered). A refusal as already shared means the same: the share holds.
* An image pruned by retention is unshared first (`Shares.release`): the cloud refuses to delete an image
  that is still shared.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from blueprint.errors import BlueprintError, CloudUnavailable
from blueprint.events import Job
from blueprint.images import Run, Target
from blueprint.lighthouse import Image, Replication
from blueprint.logs import log
from blueprint.policy import Policy
from blueprint.results import Result
from blueprint.retry import Deadline, RetryPolicy

__all__ = ["Shares"]

# DescribeBlueprintsShareAcrossAccountInfos takes this many image ids at once.
IDS_PER_CALL = 100
# ShareBlueprintAcrossAccounts' refusal of an account the image is already shared with.
ALREADY_SHARED = "UnsupportedOperation.BlueprintAlreadyShared"
# Account -> the request id of the call that shared it (None: found shared, its call's answer never read).
Sent = dict[str, str | None]


@dataclass
class Shares:
    """The share phase: share each NORMAL image with the accounts it lacks; unshare before deleting."""

    cloud: Replication
    policy: Policy
    retry: RetryPolicy

    def wanted(self, job: Job) -> bool:
        """True when the job or the operator names accounts to share with."""
        return bool(self.policy.shares_for(job))

    def check(self, job: Job, targets: Sequence[Target], *, deadline: Deadline, account: str | None) -> None:
        """Nothing to check against the cloud: the accounts were checked with the job (`Policy.check_job`)."""

    def after_ready(self, run: Run, region: str, ready: Sequence[Result]) -> list[Result]:
        """Share each ready image with every account it is not shared with yet."""
        accounts = self.policy.shares_for(run.job)
        images = [r for r in ready if r.blueprint_id]
        if not accounts or not images:
            return []
        current = self._current(run, region, [str(r.blueprint_id) for r in images])
        results: list[Result] = []
        for main in images:
            have = current.get(str(main.blueprint_id), set())
            missing = [a for a in accounts if a not in have]
            if missing and main.state != "NORMAL":
                # Being copied (SYNCING): only a NORMAL image can be shared; the run looks again later.
                run.later[(main.region, main.instance_id)] = f"shares wait for image {main.blueprint_id} to be NORMAL"
                missing = []
            results.extend(self._share_one(run, region, main, missing))
            results.extend(run.beside(main, "shared", account=a, blueprint_id=main.blueprint_id,
                                      blueprint_name=main.blueprint_name, state=main.state, resent=True)
                           for a in accounts if a in have)
        return results

    def _current(self, run: Run, region: str, ids: list[str]) -> dict[str, set[str]]:
        current: dict[str, set[str]] = {}
        for start in range(0, len(ids), IDS_PER_CALL):
            chunk = ids[start:start + IDS_PER_CALL]
            current |= self.retry.call(partial(self.cloud.shared_with, region, chunk, deadline=run.deadline),
                                       deadline=run.deadline)
        return current

    def _share_one(self, run: Run, region: str, main: Result, missing: list[str]) -> list[Result]:
        if not missing:
            return []
        image_id = str(main.blueprint_id)
        try:
            sent = self._send(run, region, image_id, missing)
        except BlueprintError as err:
            log("ERROR", "share failed", instance=main.instance_id, image_id=image_id, error=err.message)
            return [run.beside(main, "failed", account=a, blueprint_id=main.blueprint_id,
                               blueprint_name=main.blueprint_name, state=main.state, error=err) for a in missing]
        return [run.beside(main, "shared", account=a, blueprint_id=main.blueprint_id,
                           blueprint_name=main.blueprint_name, state=main.state, request_id=sent[a])
                for a in missing]

    def _send(self, run: Run, region: str, image_id: str, missing: list[str]) -> Sent:
        """Share one image with the accounts it lacks, never twice with one account (see the module's notes).

        Raises:
            BlueprintError: the share failed, or was refused for another reason than "already shared".
        """
        pending, sent = list(missing), Sent()

        def found_shared() -> bool:
            """Read the image's shares again: accounts found shared leave `pending`; True if any did."""
            have = self._current(run, region, [image_id]).get(image_id, set())
            sent.update((a, None) for a in pending if a in have)
            before, pending[:] = len(pending), [a for a in pending if a not in have]
            return len(pending) < before

        def attempt() -> Sent:
            while pending:
                try:
                    request_id = self.cloud.share(region, image_id, pending, deadline=run.deadline)
                except BlueprintError as err:
                    if err.code != ALREADY_SHARED:
                        raise
                    self._already_shared(err, pending, sent, found_shared)
                    continue
                sent.update((a, request_id) for a in pending)
                pending.clear()
            return sent

        def before_retry(err: BlueprintError) -> Sent | None:
            # A lost answer may have shared: send again only to the accounts still missing. If the shares cannot
            # be read, the resend goes to all of them, and a refusal as already shared says which were.
            if isinstance(err, CloudUnavailable):
                try:
                    found_shared()
                except BlueprintError as looked:
                    log("WARNING", "could not read the shares before resending", image_id=image_id,
                        error=looked.message)
            return None if pending else sent

        return self.retry.call(attempt, deadline=run.deadline, before_retry=before_retry)

    @staticmethod
    def _already_shared(err: BlueprintError, pending: list[str], sent: Sent, found_shared: Callable[[], bool]) -> None:
        """The cloud refused the share as already done: the state asked for holds for the account it names.

        One account asked for: that is the one. Several: the refusal names only the first, so the shares are read
        again and only the accounts still missing are sent (each round shares or finds at least one).

        Raises:
            BlueprintError: `err`, when the shares read again show none more shared (the refusal is unexplained).
        """
        if len(pending) == 1:
            sent[pending.pop()] = None
        elif not found_shared():
            raise err

    def release(self, region: str, images: Sequence[Image], deadline: Deadline) -> None:
        """Unshare images about to be deleted (the cloud refuses to delete a shared image).

        Raises:
            BlueprintError: reading or cancelling the shares failed (the images are then not deleted).
        """
        shared = [i.id for i in images if i.shared]
        if not shared:
            return
        current = self.retry.call(lambda: self.cloud.shared_with(region, shared, deadline=deadline), deadline=deadline)
        for image_id, accounts in current.items():
            if accounts:
                self.retry.call(partial(self.cloud.unshare, region, image_id, sorted(accounts), deadline=deadline),
                                deadline=deadline)
