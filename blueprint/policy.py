"""The operator's policy: defaults, limits and allowlists from the settings, binding every caller.

One owner for "may this job run, on these instances, and may this caller read this image": the operator's
`BLUEPRINT_MAX_INSTANCES` is a ceiling and `BLUEPRINT_KEEP` a floor that no job can cross, and the allowlists
(`BLUEPRINT_ALLOWED_INSTANCES`, `BLUEPRINT_ALLOWED_TAGS`, both must admit an instance when both are set) are
checked against the instance's real tags from the cloud, for writes and reads alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import field

from blueprint.errors import AccessDenied, BadRequest
from blueprint.events import Job
from blueprint.records import record

__all__ = ["COMMAND_DENIED", "DENIED", "LIMIT", "SHARE_DENIED", "Command", "Commands", "Policy"]

DENIED = "UnauthorizedOperation.InstanceNotAllowed"
LIMIT = "UnauthorizedOperation.OperatorLimit"
SHARE_DENIED = "UnauthorizedOperation.ShareAccountNotAllowed"
COMMAND_DENIED = "UnauthorizedOperation.CommandNotAllowed"
CONSISTENCY_CONFLICT = "InvalidParameter.ConsistencyConflict"
COMMAND_ID = re.compile(r"cmd-[a-z0-9]{8}\Z")


@record
class Command:
    """A command the operator allows: shell text from a variable (RunCommand), or a TAT command id
    (InvokeCommand). `label` is how results name it: the variable or the id, never the text."""

    label: str
    text: str | None = None
    command_id: str | None = None

    @classmethod
    def configured(cls, variable: str, value: str) -> Command:
        """The command of BLUEPRINT_PRE_COMMAND / BLUEPRINT_POST_COMMAND: an id when the value is one."""
        value = value.strip()
        return cls(label=value, command_id=value) if COMMAND_ID.match(value) else cls(label=variable, text=value)


@record
class Commands:
    """What one job runs around its images: the pre- and post-command (either may be absent), when the
    post-command runs (`accepted`: once the cloud accepted the image; `ready`: once it is NORMAL), and the
    seconds each may take."""

    pre: Command | None
    post: Command | None
    post_after: str = "accepted"
    timeout: int = 60


@record
class Policy:
    """Defaults and limits from the settings that shape every run."""

    force_power_off: bool = True
    keep: int | None = None
    max_instances: int = 50
    concurrency: int = 20
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
    # Consistent images: the operator's commands (BLUEPRINT_PRE_COMMAND / _POST_COMMAND), the command ids a job
    # may name (BLUEPRINT_ALLOWED_COMMANDS), and how long each may run (BLUEPRINT_COMMAND_TIMEOUT).
    pre_command: Command | None = None
    post_command: Command | None = None
    allowed_commands: frozenset[str] = frozenset()
    # Allowed pairs (`pre:post` entries of BLUEPRINT_ALLOWED_COMMANDS): each pre-command id with its post-command.
    command_pairs: Mapping[str, str] = field(default_factory=dict)
    command_timeout: int = 60

    def check_job(self, job: Job) -> None:
        """Refuse a job that would cross the operator's limits (before any cloud call).

        Raises:
            AccessDenied: MaxInstances above BLUEPRINT_MAX_INSTANCES, or Keep below BLUEPRINT_KEEP.
        """
        if job.MaxInstances is not None and job.MaxInstances > self.max_instances:
            raise AccessDenied(f"MaxInstances={job.MaxInstances} is above BLUEPRINT_MAX_INSTANCES="
                               f"{self.max_instances}: a job may lower the operator's ceiling, never raise it",
                               code=LIMIT)
        for name, asked in (("Keep", job.Keep), ("CopyKeep", job.CopyKeep)):
            if asked is not None and self.keep is not None and asked < self.keep:
                raise AccessDenied(f"{name}={asked} is below BLUEPRINT_KEEP={self.keep}: a job may keep more images "
                                   "than the operator's floor, never fewer", code=LIMIT)
        self.commands_for(job)
        strangers = sorted(set(job.ShareWith or ()) - self.share_targets)
        if strangers:
            raise AccessDenied(f"ShareWith names {', '.join(strangers)}, not in BLUEPRINT_ALLOWED_SHARE_ACCOUNTS "
                               "(or, with no such list, BLUEPRINT_SHARE_WITH): images are shared only with accounts "
                               "the operator named", code=SHARE_DENIED)

    def commands_for(self, job: Job) -> Commands | None:
        """The commands a job runs around its images, or None (it powers off, or is crash-consistent).

        A job picks commands only by id from BLUEPRINT_ALLOWED_COMMANDS, or the configured pair with
        `Consistent` (which is the default once the operator configured a pair; `Consistent: false` opts out).

        Raises:
            AccessDenied: the job names a command that is not an allowed id (shell text never is), or asks for
                the configured pair when there is none.
            BadRequest: the job asks for commands and for powering off, or opts out of commands it names.
        """
        named = job.PreCommand is not None or job.PostCommand is not None
        pre, post = self._named(job)
        if job.ForcePowerOff or job.Consistent is False:
            if named or job.Consistent:
                raise BadRequest("ForcePowerOff: true (or Consistent: false) cannot be combined with Consistent: "
                                 "true, PreCommand or PostCommand: commands keep the server running",
                                 code=CONSISTENCY_CONFLICT)
            return None
        if not named:
            if not (self.pre_command or self.post_command):
                if job.Consistent:
                    raise AccessDenied("Consistent: true, but the operator configured no commands "
                                       "(BLUEPRINT_PRE_COMMAND, BLUEPRINT_POST_COMMAND)", code=COMMAND_DENIED)
                return None
            pre, post = self.pre_command, self.post_command
        return Commands(pre, post, job.PostAfter or "accepted", self.command_timeout)

    def _named(self, job: Job) -> tuple[Command | None, Command | None]:
        """The commands a job names, checked: a pre-command never runs without its post-command (a pause that
        nothing undoes). A pair's pre-command (`pre:post` in BLUEPRINT_ALLOWED_COMMANDS) brings its own post-command
        and takes no other; a pair's post-command is never a pre-command; a plain id's pre-command needs a
        PostCommand named beside it.

        Raises:
            AccessDenied: see `commands_for`.
        """
        pre_id, post_id = self._allowed(job.PreCommand, "PreCommand"), self._allowed(job.PostCommand, "PostCommand")
        if pre_id is not None and pre_id in self.paired_posts and pre_id not in self.command_pairs:
            raise AccessDenied(f"PreCommand {pre_id} is the post-command of a pair in BLUEPRINT_ALLOWED_COMMANDS",
                               code=COMMAND_DENIED)
        if pre_id is not None and pre_id in self.command_pairs:
            paired = self.command_pairs[pre_id]
            if post_id not in (None, paired):
                raise AccessDenied(f"PreCommand {pre_id} runs only with its pair's post-command {paired}",
                                   code=COMMAND_DENIED)
            post_id = paired
        elif pre_id is not None and post_id is None:
            raise AccessDenied(f"PreCommand {pre_id} needs a PostCommand (or list the pair as {pre_id}:cmd-... in "
                               "BLUEPRINT_ALLOWED_COMMANDS): a pause is always undone", code=COMMAND_DENIED)
        elif post_id is not None and post_id in self.command_pairs and pre_id is None:
            raise AccessDenied(f"PostCommand {post_id} is the pre-command of a pair in BLUEPRINT_ALLOWED_COMMANDS",
                               code=COMMAND_DENIED)
        return (None if pre_id is None else Command(label=pre_id, command_id=pre_id),
                None if post_id is None else Command(label=post_id, command_id=post_id))

    def _allowed(self, value: str | None, field: str) -> str | None:
        if value is None:
            return None
        if not COMMAND_ID.match(value):
            raise AccessDenied(f"{field} must be the id of a TAT command in BLUEPRINT_ALLOWED_COMMANDS (cmd- and 8 of "
                               "a-z0-9): a job never carries shell text", code=COMMAND_DENIED)
        if value not in self.allowed_commands and value not in self.command_pairs and value not in self.paired_posts:
            raise AccessDenied(f"{field} {value} is not in BLUEPRINT_ALLOWED_COMMANDS", code=COMMAND_DENIED)
        return value

    @property
    def paired_posts(self) -> frozenset[str]:
        """The post-commands of the allowed pairs."""
        return frozenset(self.command_pairs.values())

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
