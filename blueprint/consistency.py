"""Application-consistent images without powering off: the operator's commands around each image, through TAT.

The order for one instance is AWS DLM's pre/post scripts: its automation agent must be online; the
pre-command runs and must exit 0 within BLUEPRINT_COMMAND_TIMEOUT; only then CreateBlueprint with
ForcePowerOff false; the post-command runs as soon as the cloud accepted the image (`PostAfter: "ready"`: once
it is NORMAL), and it runs whenever the pre-command ran, also when the pre-command or the create failed, so an
application is never left paused. A post-command that fails is reported (`.failed` beside the image).

Once per slot. Before its pre-command an instance is tagged `scf-blueprint:paused` (the slot's digest and the
post-command that ends the pause), and the tag is removed once its post-command succeeded. An invocation that
finds the tag (an earlier one died, or its post-command failed, between the two) runs the post-command the tag
names first: a pre-command never runs twice without its post-command in between. An instance whose slot image
exists already runs no command at all (unless the tag says it is still paused). Post-commands must therefore be
safe to run when nothing is paused, e.g. `fsfreeze -u /data || true`.

Fleets. The running instances of a region go in batches of at most MAX_BATCH (fewer with a lower
BLUEPRINT_CONCURRENCY), side by side: one RunCommand per batch and command, each batch's images created one
after another as soon as its pre-command ended, so an instance stays paused for its pre-command, its batch's
creates and its post-command (a larger batch would pause every application in it longer). Every TAT call is
paced by its documented rate limit (`blueprint.tat`). A stopped instance needs no command (its image is `power-off`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial

from blueprint.errors import (
    AgentUnavailable,
    BlueprintError,
    CloudUnavailable,
    CommandFailed,
    CommandInterrupted,
    ConfigError,
    InstanceBusy,
)
from blueprint.images import Run, Target
from blueprint.lighthouse import Instance, Lighthouse
from blueprint.logs import log
from blueprint.policy import COMMAND_ID, Command
from blueprint.results import CommandRun, Result
from blueprint.retry import Deadline, RetryPolicy
from blueprint.tags import Tagger, resource_name
from blueprint.tat import Task, Tat, wait_for_tasks

__all__ = ["PAUSED_TAG", "Quiescer"]

PAUSED_TAG = "scf-blueprint:paused"
# The pause mark's value is `<slot digest>:<post-command>`: a TAT command id, CONFIGURED (BLUEPRINT_POST_COMMAND's
# shell text) or NO_POST, so a later run resumes the pause with the command that ends it, whatever it runs itself.
CONFIGURED = "configured"
NO_POST = "none"
# Seconds beyond a command's own timeout that the function waits for TAT to report it (the agent reports a
# killed task within seconds; TASK_TIMEOUT comes at the timeout itself).
REPORT_GRACE = 10.0
# The most instances one batch pauses together: its creates go one after another while they are paused.
MAX_BATCH = 8
# Seconds a batch needs besides its two commands (marking, creates, unmarking).
BATCH_BUDGET = 15.0
# Seconds kept for the post-command whatever the pre-command does (at most its timeout and grace), and the
# least each command gets: a batch with less time left than both windows and the budget is handed on.
POST_WINDOW = 30.0
MIN_WINDOW = 10.0
PRE_FAILED = "FailedOperation.PreCommandFailed"
POST_FAILED = "FailedOperation.PostCommandFailed"
# Instance states in which the server is off (SHUTDOWN: isolated after expiry): nothing on it is paused.
OFF_STATES = frozenset({"STOPPED", "SHUTDOWN"})

Create = Callable[[Run, Sequence[Target]], list[Result]]
Follow = Callable[[Run, str, list[Result], float], list[Result]]


@dataclass(frozen=True)
class _Ran:
    """How a command went on a batch: each instance's task (as last seen), the error that stopped the function
    following it, and the instances where it may still be running (its end is not known and it could not be
    cancelled, or its start's answer was lost)."""

    tasks: dict[str, Task] = field(default_factory=dict)
    error: BlueprintError | None = None
    unsettled: frozenset[str] = frozenset()


@dataclass
class Quiescer:
    """Runs the operator's commands around images (the `Quiesce` port of `blueprint.images`)."""

    lighthouse: Lighthouse
    tat: Tat
    tagger: Tagger | None
    retry: RetryPolicy
    batch: int = 8
    # BLUEPRINT_POST_COMMAND: what resumes a pause that a run with the configured post-command left.
    configured_post: Command | None = None

    def run(self, run: Run, region: str, targets: Sequence[Target], todo: Sequence[Target], *,
            create: Create, follow: Follow) -> list[Result]:
        """Image `todo` between the commands, after resuming what an earlier run left paused among `targets`.

        Raises:
            BlueprintError: the instances of the region could not be described (the caller reports the region).
        """
        budget = run.deadline.remaining()  # about what any invocation of this function has
        ids = [t.ref.InstanceId for t in targets]
        found = self.retry.call(partial(self.lighthouse.find_instances, region, ids=ids, deadline=run.deadline),
                                deadline=run.deadline)
        instances = {i.id: i for i in found}
        marked = [t for t in targets if PAUSED_TAG in _tags(instances, t)]
        off = [t for t in marked if _state(instances, t.ref.InstanceId) in OFF_STATES]
        if off:
            # A server that is off holds nothing paused (a stop ends the frozen file system, the held lock), and
            # no command can run on it: its mark is stale.
            self._unmark(run, region, off)
        results, stuck = self._resume(run, region, [(t, _tags(instances, t)[PAUSED_TAG]) for t in marked
                                                    if t not in off])
        running: list[Target] = []
        other: list[Target] = []
        busy: list[Result] = []
        for target in todo:
            instance = instances.get(target.ref.InstanceId)
            if target.ref.InstanceId in stuck:
                continue
            if instance is not None and instance.operation_state == "OPERATING":
                # Never paused while another operation runs: the create would have to wait it out, paused.
                busy.append(run.result(target, "failed", error=InstanceBusy(
                    f"{instance.id} is busy with {instance.operation or 'another operation'}: it was not paused; "
                    "a later try makes its image")))
            else:
                (running if instance is not None and instance.state == "RUNNING" else other).append(target)
        # Not running: stopped (consistent as it is), or in a state the create call will refuse with its reason.
        results += [r.but(consistency="power-off") if _state(instances, r.instance_id) == "STOPPED" else r
                    for r in create(run, other)]
        results += [run.result(t, "failed", error=BlueprintError(
            f"the post-command of an earlier run did not succeed on {t.ref.InstanceId}: it is not paused again "
            "until a post-command succeeds (the next run tries it first)", code=POST_FAILED))
            for t in todo if t.ref.InstanceId in stuck]
        return results + busy + self._running(run, region, running, create, follow, budget=budget)

    # ---- the running instances, in batches -----------------------------------------------------------------

    def _running(self, run: Run, region: str, targets: list[Target], create: Create, follow: Follow, *,
                 budget: float) -> list[Result]:
        if not targets:
            return []
        needed = self._needed(run)
        if budget < needed:
            # A hand-on would fare no better (a child call has the same time limit) and hand on again, for hours.
            return [run.result(t, "failed", error=ConfigError(
                f"the function's time limit leaves {budget:.0f} s, and a run with commands needs {needed:.0f} s (the "
                "pre-command's shortest wait, the post-command's and the create's): raise the time limit or lower "
                "BLUEPRINT_COMMAND_TIMEOUT; no command ran, no image was made")) for t in targets]
        try:
            online = self.retry.call(partial(self.tat.agent_status, region, [t.ref.InstanceId for t in targets],
                                             deadline=run.deadline), deadline=run.deadline)
        except BlueprintError as err:
            # Reported per instance: what was done before (stopped instances imaged, resumes) keeps its results.
            return [run.result(t, "failed", error=err) for t in targets]
        offline = [t for t in targets if not online.get(t.ref.InstanceId)]
        results = [run.result(t, "failed", error=AgentUnavailable(
            f"the automation agent (TAT) of {t.ref.InstanceId} is offline or not installed: no command can run, "
            "so no image was made (start or install the agent, or image it with ForcePowerOff)"))
            for t in offline]
        ready = [t for t in targets if online.get(t.ref.InstanceId)]
        batches = [ready[n:n + max(1, self.batch)] for n in range(0, len(ready), max(1, self.batch))]
        if len(batches) <= 1:
            parts = [self._batch(run, region, b, create, follow) for b in batches]
        else:
            with ThreadPoolExecutor(max_workers=min(self.batch, len(batches))) as pool:
                parts = list(pool.map(lambda b: self._batch(run, region, b, create, follow), batches))
        return results + [r for part in parts for r in part]

    def _batch(self, run: Run, region: str, batch: list[Target], create: Create, follow: Follow) -> list[Result]:
        """Mark, pre-command, create, post-command (always, once the pre-command may have run), unmark."""
        commands = run.commands
        assert commands is not None  # noqa: S101 (the caller runs only jobs with commands)
        if run.deadline.remaining() < self._needed(run):
            run.overflow.extend(batch)  # too little time for both commands: a later invocation does it all
            return []
        try:
            self._mark(run, region, batch, f"{run.digest}:{_post_ref(commands.post)}")
        except BlueprintError as err:
            return [run.result(t, "failed", error=err) for t in batch]
        results: list[Result] = []
        made: list[Result] = []
        unsettled: frozenset[str] = frozenset()
        try:
            ready = batch
            if commands.pre is not None:
                ready, failed, unsettled = self._pre(run, region, commands.pre, batch)
                results += failed
            # Paused: a busy instance is not waited out (its error says when to retry), the post-command follows.
            made = create(replace(run, deadline=run.deadline.impatient()), ready)
            if commands.post_after == "ready":
                made = self._follow(run, region, made, follow)
        finally:
            results += made
            # Where the pre-command may still be running, the post-command of this run may come before its end:
            # the mark stays, so the next run (the platform's retry: the failure says a retry helps) thaws again.
            results += self._post(run, region, commands.post, batch, made, keep_marked=unsettled)
        return results

    def _follow(self, run: Run, region: str, made: list[Result], follow: Follow) -> list[Result]:
        """The images followed to NORMAL before the post-command (`PostAfter: "ready"`); as they were when the
        cloud cannot say (the post-command runs anyway, and the images keep their results)."""
        try:
            followed = follow(run, region, made, self._post_window(run) + BATCH_BUDGET)
        except BlueprintError as err:
            log("ERROR", "could not follow the images to NORMAL before the post-command", region=region,
                error=err.message)
            followed = made
        # Said on the result: the job asked for the post-command after NORMAL, and storage may need that.
        return [r.but(reason=r.reason or "the post-command ran before the image was NORMAL: the function's time ran "
                      "out (or the image could not be followed), and an application is never left paused")
                if r.outcome == "created" and r.blueprint_id and not r.resent else r for r in followed]

    def _pre(self, run: Run, region: str, command: Command,
             batch: list[Target]) -> tuple[list[Target], list[Result], frozenset[str]]:
        """Run the pre-command; the targets it succeeded on, a failed result for each of the others, and the ids
        where it may still be running."""
        ran = self._command(run, region, command, [t.ref.InstanceId for t in batch], "pre")
        ok, failed = [], []
        for target in batch:
            task = ran.tasks.get(target.ref.InstanceId)
            if task is not None and task.succeeded:
                ok.append(target)
                continue
            why = _why(task, ran.error, target.ref.InstanceId)
            message = f"the pre-command {command.label} {why}: no image was made (the post-command still ran)"
            if target.ref.InstanceId in ran.unsettled:
                message += ("; it may still be running, so the pause mark stays and the next try runs the "
                            "post-command again")
            # Cut short by the cloud rather than by the command itself: the next try can succeed.
            cut_short = target.ref.InstanceId in ran.unsettled or (
                task is None and ran.error is not None and ran.error.retryable)
            error = (CommandInterrupted if cut_short else CommandFailed)(message, code=PRE_FAILED)
            failed.append(run.result(target, "failed", command=_report("pre", command, task), error=error))
        return ok, failed, ran.unsettled

    def _post(self, run: Run, region: str, post: Command | None, batch: Sequence[Target], made: Sequence[Result],
              *, keep_marked: frozenset[str] = frozenset()) -> list[Result]:
        """Run the post-command on the batch and unmark where it succeeded (but `keep_marked`); a `.failed` beside
        each other."""
        images = {r.instance_id: r.blueprint_id for r in made if r.blueprint_id}
        if post is None:
            self._unmark(run, region, [t for t in batch if t.ref.InstanceId not in keep_marked])
            return []
        ran = self._command(run, region, post, [t.ref.InstanceId for t in batch], "post")
        done = [t for t in batch if (task := ran.tasks.get(t.ref.InstanceId)) is not None and task.succeeded]
        self._unmark(run, region, [t for t in done if t.ref.InstanceId not in keep_marked])
        failures = []
        for target in (t for t in batch if t not in done):
            task = ran.tasks.get(target.ref.InstanceId)
            why = _why(task, ran.error, target.ref.InstanceId)
            log("ERROR", "post-command failed: the application may still be paused", instance=target.ref.InstanceId,
                region=region, command=post.label, error=why)
            failures.append(run.result(target, "failed", blueprint_id=images.get(target.ref.InstanceId),
                                       command=_report("post", post, task), error=CommandFailed(
                f"the post-command {post.label} {why}: the application may still be paused; the next run "
                "runs the post-command first", code=POST_FAILED)))
        return failures

    def _resume(self, run: Run, region: str, paused: list[tuple[Target, str]]) -> tuple[list[Result], set[str]]:
        """Instances an earlier run left paused (with their marks): the post-command of the run that paused them
        first (the mark names it; this job may run other commands). Returns what failed, and the ids still paused
        (they get no new pre-command in this run)."""
        if not paused or run.commands is None:
            return [], set()
        log("WARNING", "instances were left paused by an earlier run: running their post-command first",
            region=region, instances=[t.ref.InstanceId for t, _ in paused])
        groups: dict[Command | None, list[Target]] = {}
        for target, mark in paused:
            groups.setdefault(self._resumer(run, mark), []).append(target)
        failures = [r for post, group in groups.items() for r in self._post(run, region, post, group, [])]
        return failures, {r.instance_id for r in failures}

    def _resumer(self, run: Run, mark: str) -> Command | None:
        """The post-command a pause mark names: a TAT command id, the configured one, none; this job's own for a
        mark that names nothing."""
        assert run.commands is not None  # noqa: S101 (the caller runs only jobs with commands)
        ref = mark.partition(":")[2]
        if COMMAND_ID.match(ref):
            return Command(label=ref, command_id=ref)
        if ref == CONFIGURED:
            return self.configured_post or run.commands.post
        return None if ref == NO_POST else run.commands.post

    # ---- TAT and the pause mark ----------------------------------------------------------------------------

    def _command(self, run: Run, region: str, command: Command, ids: list[str], phase: str) -> _Ran:
        """Start the command on the instances and wait for its tasks. A pre-command's start is never retried
        (RunCommand has no idempotency token: a resent call could run it twice); a post-command's is. A
        pre-command given up on is cancelled, so it cannot go on pausing after the post-command."""
        assert run.commands is not None  # noqa: S101 (the caller runs only jobs with commands)
        timeout = run.commands.timeout
        deadline: Deadline = run.deadline.within(timeout + REPORT_GRACE)
        if phase == "pre":
            # A pre-command that takes long must still leave time to create and to run the post-command.
            deadline = Deadline.min(deadline, run.deadline.sooner(self._post_window(run) + BATCH_BUDGET))
        if command.command_id is not None:
            start = partial(self.tat.invoke_command, region, command.command_id, ids, deadline=run.deadline,
                            timeout=timeout)
        else:
            start = partial(self.tat.run_shell, region, ids, command.text or "", timeout=timeout,
                            deadline=run.deadline, name=f"lighthouse-blueprint-{phase}")
        try:
            # A post-command is safe to run twice (docs/consistency.md): its start is retried, so one failed call
            # does not leave the application paused until the next run. A pre-command's never is.
            invocation = self.retry.call(start, deadline=run.deadline) if phase == "post" else start()
        except BlueprintError as err:
            # A lost answer, or a failure on the cloud's side, may have started it all the same (its id unknown).
            return _Ran(error=err, unsettled=frozenset(ids) if isinstance(err, CloudUnavailable) else frozenset())
        error: BlueprintError | None = None
        try:
            tasks = wait_for_tasks(self.tat, region, [invocation], deadline=deadline, expected=len(ids),
                                   interval=0.2, growth=1.5, max_interval=1.0)
        except BlueprintError as err:
            tasks, error = [], err
        unfinished = frozenset(ids) - {t.instance_id for t in tasks if t.finished}
        if phase == "pre" and unfinished and self._cancel(run, region, invocation):
            unfinished = frozenset()
        return _Ran({t.instance_id: t for t in tasks}, error, unfinished if phase == "pre" else frozenset())

    def _cancel(self, run: Run, region: str, invocation: str) -> bool:
        """CancelInvocation (safe to repeat); False when it could not be done."""
        try:
            self.retry.call(partial(self.tat.cancel, region, invocation, deadline=run.deadline), deadline=run.deadline)
        except BlueprintError as err:
            log("ERROR", "could not cancel a pre-command that did not finish in time", region=region,
                invocation=invocation, error=err.message)
            return False
        return True

    def _needed(self, run: Run) -> float:
        """Seconds a batch needs at least: what `_command` keeps for the post-command and the creates, and the
        shortest wait for the pre-command (below that it would be given up on as soon as it started)."""
        assert run.commands is not None  # noqa: S101 (the caller runs only jobs with commands)
        return self._post_window(run) + BATCH_BUDGET + min(run.commands.timeout + REPORT_GRACE, MIN_WINDOW)

    @staticmethod
    def _post_window(run: Run) -> float:
        assert run.commands is not None  # noqa: S101 (the caller runs only jobs with commands)
        return max(MIN_WINDOW, min(run.commands.timeout + REPORT_GRACE, POST_WINDOW))

    def _mark(self, run: Run, region: str, batch: Sequence[Target], value: str) -> None:
        names = self._names(run, region, batch)
        if names and self.tagger is not None:
            self.retry.call(partial(self.tagger.tag, names, {PAUSED_TAG: value}, deadline=run.deadline),
                            deadline=run.deadline)

    def _unmark(self, run: Run, region: str, batch: Sequence[Target]) -> None:
        names = self._names(run, region, batch)
        if not names or self.tagger is None:
            return
        try:
            self.retry.call(partial(self.tagger.untag, names, [PAUSED_TAG], deadline=run.deadline),
                            deadline=run.deadline)
        except BlueprintError as err:
            # The mark stays: the next run runs the post-command once more (which must be safe to repeat).
            log("ERROR", "could not remove the pause mark after the post-command", region=region, error=err.message)

    @staticmethod
    def _names(run: Run, region: str, batch: Sequence[Target]) -> list[str]:
        if run.account is None:
            # No account id, no Tag API names: the pause is not marked (docs/consistency.md).
            log("WARNING", "no account id (BLUEPRINT_ACCOUNT_ID): the pause between the commands is not marked on "
                           "the instances", region=region)
            return []
        return [resource_name(region, run.account, "instance", t.ref.InstanceId) for t in batch]


def _post_ref(post: Command | None) -> str:
    """How the pause mark names the post-command that ends the pause (tag values allow `-` and `:`)."""
    if post is None:
        return NO_POST
    return post.command_id or CONFIGURED


def _tags(instances: dict[str, Instance], target: Target) -> dict[str, str]:
    instance = instances.get(target.ref.InstanceId)
    return dict(instance.tags) if instance is not None else {}


def _state(instances: dict[str, Instance], instance_id: str) -> str | None:
    instance = instances.get(instance_id)
    return instance.state if instance is not None else None


def _why(task: Task | None, err: BlueprintError | None, instance_id: str) -> str:
    """How a command ended on one instance, in words (the output is in the result's `Command`)."""
    if task is None:
        return f"could not be started or followed ({err.code}: {err.message})" if err is not None else \
            f"left no task on {instance_id}"
    if not task.finished:
        return f"did not finish in time on {instance_id} (TaskStatus {task.status})"
    if task.status == "SUCCESS":
        return f"exited {task.exit_code} on {instance_id}"
    detail = f", exit code {task.exit_code}" if task.exit_code is not None else ""
    return f"ended {task.status} on {instance_id}{detail}" + (f" ({task.error_info[:200]})" if task.error_info else "")


def _report(phase: str, command: Command, task: Task | None) -> CommandRun:
    if task is None:
        return CommandRun(phase="pre" if phase == "pre" else "post", name=command.label)
    return CommandRun(phase="pre" if phase == "pre" else "post", name=command.label, invocation_id=task.invocation_id,
                      task_id=task.task_id, status=task.status, exit_code=task.exit_code, output=task.output)
