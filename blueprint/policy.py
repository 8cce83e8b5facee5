"""The operator's policy: defaults, limits and allowlists from the settings, binding every caller.

One owner for "may this job run, on these instances, and may this caller read this image": the operator's
`BLUEPRINT_MAX_INSTANCES` is a ceiling and `BLUEPRINT_KEEP` a floor that no job can cross, and the allowlists
(`BLUEPRINT_ALLOWED_INSTANCES`, `BLUEPRINT_ALLOWED_TAGS`, both must admit an instance when both are set) are
checked against the instance's real tags from the cloud, for writes and reads alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from blueprint.errors import AccessDenied
from blueprint.events import Job

__all__ = ["DENIED", "LIMIT", "SHARE_DENIED", "Policy"]

DENIED = "UnauthorizedOperation.InstanceNotAllowed"
LIMIT = "UnauthorizedOperation.OperatorLimit"
SHARE_DENIED = "UnauthorizedOperation.ShareAccountNotAllowed"


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
    # States an image passes through on its way to NORMAL (the creating state is undocumented).
    in_progress_states: frozenset[str] = frozenset({"CREATING"})
    # Accounts every image is shared with (BLUEPRINT_SHARE_WITH), and the only ones a job may name.
    share_with: tuple[str, ...] = ()
    allowed_share_accounts: frozenset[str] = frozenset()

    def check_job(self, job: Job) -> None:
        """Refuse a job that would cross the operator's limits (before any cloud call).

        Raises:
            AccessDenied: MaxInstances above BLUEPRINT_MAX_INSTANCES, or Keep below BLUEPRINT_KEEP.
        """
        if job.MaxInstances is not None and job.MaxInstances > self.max_instances:
            raise AccessDenied(f"MaxInstances={job.MaxInstances} is above BLUEPRINT_MAX_INSTANCES="
                               f"{self.max_instances}: a job may lower the operator's ceiling, never raise it",
                               code=LIMIT)
        for field, asked in (("Keep", job.Keep), ("CopyKeep", job.CopyKeep)):
            if asked is not None and self.keep is not None and asked < self.keep:
                raise AccessDenied(f"{field}={asked} is below BLUEPRINT_KEEP={self.keep}: a job may keep more images "
                                   "than the operator's floor, never fewer", code=LIMIT)
        strangers = sorted(set(job.ShareWith or ()) - self.share_targets)
        if strangers:
            raise AccessDenied(f"ShareWith names {', '.join(strangers)}, not in BLUEPRINT_ALLOWED_SHARE_ACCOUNTS "
                               "(or, with no such list, BLUEPRINT_SHARE_WITH): images are shared only with accounts "
                               "the operator named", code=SHARE_DENIED)

    @property
    def share_targets(self) -> frozenset[str]:
        """The accounts a job may share with: the allowlist, else the operator's own share accounts."""
        return self.allowed_share_accounts or frozenset(self.share_with)

    def shares_for(self, job: Job) -> tuple[str, ...]:
        """Every account the images of this job are shared with."""
        return tuple(dict.fromkeys([*self.share_with, *(job.ShareWith or ())]))

    def copy_keep_for(self, job: Job) -> int | None:
        """How many copies per instance each destination keeps (None: no pruning there)."""
        if job.CopyKeep is None:
            return self.keep_for(job)
        return max(job.CopyKeep, self.keep or 1)

    def limit(self, job: Job) -> int:
        """How many instances one run of this job may touch."""
        return min(job.MaxInstances or self.max_instances, self.max_instances)

    def keep_for(self, job: Job) -> int | None:
        """How many managed images per instance the run keeps (None: no pruning)."""
        if job.Keep is None:
            return self.keep
        return max(job.Keep, self.keep or 1)

    @property
    def needs_tags(self) -> bool:
        """True when admitting an instance needs its real tags from the cloud."""
        return bool(self.allowed_tags)

    def lists(self, instance_id: str) -> bool:
        """True unless BLUEPRINT_ALLOWED_INSTANCES is set and leaves this instance out."""
        return not self.allowed_instances or instance_id in self.allowed_instances

    def refusal(self, instance_id: str, tags: Mapping[str, str]) -> AccessDenied | None:
        """Why this instance may not be imaged (or read), or None when it may.

        `tags` are the instance's real tags from the cloud (an instance that was not found has none), never
        what a request claims.
        """
        if not self.lists(instance_id):
            return AccessDenied(f"instance {instance_id} is not in BLUEPRINT_ALLOWED_INSTANCES", code=DENIED)
        if self.allowed_tags and not any(tags.get(k) == v for k, v in self.allowed_tags):
            return AccessDenied(f"instance {instance_id} carries none of the tags in BLUEPRINT_ALLOWED_TAGS",
                                code=DENIED)
        return None
