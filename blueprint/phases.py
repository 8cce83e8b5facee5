"""What happens after an image is NORMAL (shares, then copies) and restores, built on first use.

A timer that neither shares nor copies never imports `copies.py`, `shares.py`, `tags.py` or `restore.py`
(issue 18: a cold start pays only for what its job uses). Each phase answers `wanted` without being built;
the first job that wants it builds it, once per warm container.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING

from blueprint.cloud import ClientCache
from blueprint.events import Job
from blueprint.images import ImageMaker, ReadyPhase, Run, Target
from blueprint.lighthouse import Image, LighthouseService
from blueprint.policy import Policy
from blueprint.results import Result
from blueprint.retry import Deadline, RetryPolicy

if TYPE_CHECKING:
    from blueprint.copies import Copies
    from blueprint.restore import Restorer
    from blueprint.shares import Shares
    from blueprint.tags import TagService

__all__ = ["LazyPhase", "Recovery"]


class LazyPhase:
    """A ready phase that is built the first time a job wants it."""

    def __init__(self, wanted: Callable[[Job], bool], build: Callable[[], ReadyPhase]) -> None:
        self._wanted = wanted
        self._build = build

    def wanted(self, job: Job) -> bool:
        """True when this job asks for the phase (answered without building it)."""
        return self._wanted(job)

    def check(self, job: Job, targets: Sequence[Target], *, deadline: Deadline, account: str | None) -> None:
        """The phase's own check.

        Raises:
            BlueprintError: what the caller must change.
        """
        self._build().check(job, targets, deadline=deadline, account=account)

    def after_ready(self, run: Run, region: str, ready: Sequence[Result]) -> list[Result]:
        """The phase's work on this region's NORMAL images."""
        return self._build().after_ready(run, region, ready)


class Recovery:
    """Shares, copies and restores over one Lighthouse service; each part built on first use."""

    def __init__(self, service: LighthouseService, clients: ClientCache, region: str, policy: Policy) -> None:
        self._service = service
        self._clients = clients
        self._region = region
        self._policy = policy

    @cached_property
    def tagger(self) -> TagService:
        """The Tag API (copies and restores tag what they make)."""
        from blueprint.tags import TagService  # noqa: PLC0415

        return TagService(self._clients, region=self._region)

    @cached_property
    def shares(self) -> Shares:
        """The share phase."""
        from blueprint.shares import Shares  # noqa: PLC0415

        return Shares(self._service, self._policy, RetryPolicy())

    @cached_property
    def copies(self) -> Copies:
        """The copy phase."""
        from blueprint.copies import Copies  # noqa: PLC0415

        return Copies(self._service, self.tagger, self._policy, RetryPolicy())

    def phases(self) -> tuple[ReadyPhase, ...]:
        """Shares, then copies; `wanted` mirrors `Shares.wanted` and `Copies.wanted` (a test holds them equal)."""
        return (LazyPhase(lambda job: bool(self._policy.shares_for(job)), lambda: self.shares),
                LazyPhase(lambda job: bool(job.CopyTo), lambda: self.copies))

    def release(self, region: str, images: Sequence[Image], deadline: Deadline) -> None:
        """Unshare images about to be deleted (`Shares.release`); nothing to load when none is shared.

        Raises:
            BlueprintError: reading or cancelling the shares failed.
        """
        if any(image.shared for image in images):
            self.shares.release(region, images, deadline)

    def restorer(self, maker: ImageMaker) -> Restorer:
        """Restores with this maker (their safety images)."""
        from blueprint.restore import Restorer  # noqa: PLC0415

        return Restorer(self._service, maker, self.tagger, RetryPolicy(), disks=self._service)
