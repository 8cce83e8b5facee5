"""The thin service over the TAT SDK (automation agent, 2020-10-28): run operator-defined commands on instances.

The only module that imports `tencentcloud.tat`, and only inside a call: a run that never uses a command never
pays for the import. Every call is paced by its documented rate limit (the TAT API overview,
https://cloud.tencent.com/document/api/1340/52696: 20 requests/s each, DescribeAutomationAgentStatus 60) and
every SDK error is translated (`blueprint.cloud.translate`). Nothing is retried here: RunCommand and
InvokeCommand have no idempotency token, so the caller decides whether a lost answer may run a command twice.

TAT keeps the first 24 KiB of a command's output and drops the rest (the agent's source, Tencent/tat-agent
src/executor/proc.rs); `Task.output` is the end of what it kept, decoded and redacted, and `Task.dropped`
says how many bytes were lost after it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from blueprint.cloud import ClientCache, translate
from blueprint.errors import BlueprintError
from blueprint.logs import redact, redact_cut
from blueprint.retry import Deadline, RateLimiter

__all__ = ["FINAL_STATUSES", "Task", "Tat", "TatService", "wait_for_tasks"]

# TaskStatus values after which a task changes no more (models.py InvocationTask.TaskStatus).
FINAL_STATUSES = frozenset(
    {"SUCCESS", "FAILED", "TIMEOUT", "TASK_TIMEOUT", "DELIVER_FAILED", "START_FAILED", "CANCELLED", "TERMINATED"}
)
MAX_AGENT_IDS = 100  # DescribeAutomationAgentStatus InstanceIds per request
MAX_COMMAND_IDS = 100  # DescribeCommands CommandIds per request
MAX_FILTER_VALUES = 5  # Filter.Values per filter (DescribeInvocationTasks)
PAGE = 100  # the largest Limit of every Describe* action (the default is 20)
OUTPUT_TAIL = 2000  # characters of output a Task keeps (the end of it)


@dataclass(frozen=True)
class Task:
    """One instance's part of an invocation, as far as the function cares."""

    instance_id: str
    invocation_id: str
    task_id: str
    status: str
    exit_code: int | None
    output: str  # the end of the output TAT kept, decoded (UTF-8, invalid bytes replaced) and redacted
    dropped: int = 0  # bytes of output TAT dropped (it keeps the first 24 KiB)
    error_info: str = ""

    @property
    def finished(self) -> bool:
        """True once the task changes no more."""
        return self.status in FINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        """True when the command ran to the end and exited 0."""
        return self.status == "SUCCESS" and self.exit_code == 0


class Tat(Protocol):
    """The port the use case talks to (the SDK service here, a fake in unit tests)."""

    def agent_status(self, region: str, instance_ids: Sequence[str], *, deadline: Deadline) -> dict[str, bool]:
        """Whether each instance's agent is online (False also for no agent, or no such instance)."""
        ...

    def run_shell(self, region: str, instance_ids: Sequence[str], content: str, *, timeout: int,
                  deadline: Deadline, name: str | None = None, working_directory: str | None = None,
                  username: str | None = None) -> str:
        """Run shell text on the instances (at most 200); returns the invocation id."""
        ...

    def invoke_command(self, region: str, command_id: str, instance_ids: Sequence[str], *, deadline: Deadline,
                       timeout: int | None = None) -> str:
        """Run a command the operator created (`cmd-...`) on the instances; returns the invocation id."""
        ...

    def tasks(self, region: str, invocation_ids: Sequence[str], *, deadline: Deadline) -> list[Task]:
        """Every task of these invocations, with output."""
        ...

    def commands_exist(self, region: str, command_ids: Sequence[str], *, deadline: Deadline) -> dict[str, bool]:
        """Whether each command id names a command in the region."""
        ...

    def cancel(self, region: str, invocation_id: str, *, deadline: Deadline) -> None:
        """Stop an invocation's unfinished tasks (CANCELLED before they run, TERMINATED while they do)."""
        ...


def _models() -> ModuleType:
    # The TAT models cost ~2 ms to import with bytecode, ~20 ms without: only runs with commands pay it.
    from tencentcloud.tat.v20201028 import models  # noqa: PLC0415

    module: ModuleType = models
    return module


def _request(action: str, **fields: Any) -> Any:
    req = getattr(_models(), f"{action}Request")()
    for name, value in fields.items():
        if value is not None:
            setattr(req, name, value)
    return req


def _filter(name: str, values: Sequence[str]) -> Any:
    item = _models().Filter()
    item.Name = name
    item.Values = list(values)
    return item


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    unique = list(dict.fromkeys(items))
    for start in range(0, len(unique), size):
        yield unique[start:start + size]


def _task(item: Any, tail: int) -> Task:
    result = item.TaskResult
    raw = base64.b64decode(result.Output or "") if result is not None else b""
    dropped = int(result.Dropped or 0) if result is not None else 0
    # Redact the whole text before cutting it: a cut through a secret would leave its end unredacted. TAT's own
    # cut (Dropped) may have left a secret's beginning at the end.
    decoded = raw.decode("utf-8", "replace")
    text = (redact_cut(decoded) if dropped else redact(decoded))[-tail:] if tail > 0 else ""
    return Task(instance_id=item.InstanceId or "", invocation_id=item.InvocationId or "",
                task_id=item.InvocationTaskId or "", status=item.TaskStatus or "",
                exit_code=result.ExitCode if result is not None else None, output=text,
                dropped=dropped,
                error_info=redact(item.ErrorInfo or ""))


class TatService:
    """TAT over the real SDK: the calls, paced and with errors translated."""

    def __init__(self, clients: ClientCache, *, run_rate: float = 20.0, describe_rate: float = 20.0,
                 agent_rate: float = 60.0, output_tail: int = OUTPUT_TAIL) -> None:
        self._clients = clients
        self._output_tail = output_tail
        # The cloud counts requests in real time, so the limiters do too.
        self._limits = {
            "RunCommand": RateLimiter(run_rate),
            "InvokeCommand": RateLimiter(run_rate),
            "DescribeInvocationTasks": RateLimiter(describe_rate),
            "DescribeCommands": RateLimiter(describe_rate),
            "DescribeAutomationAgentStatus": RateLimiter(agent_rate),
            "CancelInvocation": RateLimiter(describe_rate),
        }
        for action, limiter in self._limits.items():
            limiter.name = action

    def _call(self, action: str, region: str, request: Any, deadline: Deadline) -> Any:
        self._limits[action].acquire(deadline)
        from tencentcloud.tat.v20201028 import tat_client  # noqa: PLC0415

        client = self._clients.get("tat", region, tat_client.TatClient)
        try:
            return getattr(client, action)(request)
        except TencentCloudSDKException as err:
            raise translate(err, action=action) from err

    def agent_status(self, region: str, instance_ids: Sequence[str], *, deadline: Deadline) -> dict[str, bool]:
        """DescribeAutomationAgentStatus, 100 ids a call; an instance it does not list has no online agent."""
        online = dict.fromkeys(instance_ids, False)
        for batch in _chunks(instance_ids, MAX_AGENT_IDS):
            req = _request("DescribeAutomationAgentStatus", InstanceIds=batch, Limit=PAGE)
            resp = self._call("DescribeAutomationAgentStatus", region, req, deadline)
            for agent in resp.AutomationAgentSet or []:
                if agent.InstanceId in online:
                    online[agent.InstanceId] = agent.AgentStatus == "Online"
        return online

    def run_shell(self, region: str, instance_ids: Sequence[str], content: str, *, timeout: int,
                  deadline: Deadline, name: str | None = None, working_directory: str | None = None,
                  username: str | None = None) -> str:
        """RunCommand with SHELL text (sent Base64-encoded); the command is not saved. Returns the invocation id."""
        req = _request("RunCommand", Content=base64.b64encode(content.encode("utf-8")).decode("ascii"),
                       InstanceIds=list(instance_ids), CommandType="SHELL", Timeout=timeout, CommandName=name,
                       WorkingDirectory=working_directory, Username=username)
        return str(self._call("RunCommand", region, req, deadline).InvocationId)

    def invoke_command(self, region: str, command_id: str, instance_ids: Sequence[str], *, deadline: Deadline,
                       timeout: int | None = None) -> str:
        """InvokeCommand; `timeout` replaces the command's own. Returns the invocation id."""
        req = _request("InvokeCommand", CommandId=command_id, InstanceIds=list(instance_ids), Timeout=timeout)
        return str(self._call("InvokeCommand", region, req, deadline).InvocationId)

    def tasks(self, region: str, invocation_ids: Sequence[str], *, deadline: Deadline) -> list[Task]:
        """DescribeInvocationTasks by invocation id (5 ids a call, every page), output included."""
        found: list[Task] = []
        for batch in _chunks(invocation_ids, MAX_FILTER_VALUES):
            offset = 0
            while True:
                req = _request("DescribeInvocationTasks", Filters=[_filter("invocation-id", batch)],
                               HideOutput=False, Limit=PAGE, Offset=offset)
                resp = self._call("DescribeInvocationTasks", region, req, deadline)
                items = resp.InvocationTaskSet or []
                found.extend(_task(item, self._output_tail) for item in items)
                offset += len(items)
                if not items or offset >= (resp.TotalCount or 0):
                    break
        return found

    def cancel(self, region: str, invocation_id: str, *, deadline: Deadline) -> None:
        """CancelInvocation of every unfinished task of the invocation."""
        self._call("CancelInvocation", region, _request("CancelInvocation", InvocationId=invocation_id), deadline)

    def commands_exist(self, region: str, command_ids: Sequence[str], *, deadline: Deadline) -> dict[str, bool]:
        """DescribeCommands, 100 ids a call. A malformed id (not `cmd-` + 8 of [a-z0-9]) is False, never sent."""
        exists = dict.fromkeys(command_ids, False)
        wellformed = [c for c in command_ids if _command_id_ok(c)]
        for batch in _chunks(wellformed, MAX_COMMAND_IDS):
            req = _request("DescribeCommands", CommandIds=batch, Limit=PAGE)
            resp = self._call("DescribeCommands", region, req, deadline)
            for command in resp.CommandSet or []:
                if command.CommandId in exists:
                    exists[command.CommandId] = True
        return exists


def _command_id_ok(command_id: str) -> bool:
    suffix = command_id.removeprefix("cmd-")
    return (command_id.startswith("cmd-") and len(suffix) == 8
            and all(ch.isdigit() or "a" <= ch <= "z" for ch in suffix))


def wait_for_tasks(tat: Tat, region: str, invocation_ids: Sequence[str], *, deadline: Deadline,
                   expected: int = 0, interval: float = 1.0, growth: float = 1.0,
                   max_interval: float = 5.0) -> list[Task]:
    """Poll the tasks until all (at least `expected` of them) finished, or the deadline is near; the interval
    grows by `growth` each time, up to `max_interval`.

    Returns the last tasks seen: check `finished` on each, time may have run out first. Sleeps on the deadline's
    clock, so tests that move an emulated clock never wait. A poll that fails in a way a retry can fix is made
    again at the next interval.

    Raises:
        BlueprintError: what `tasks` raises when a retry cannot help, or when no poll succeeded in time.
    """
    found: list[Task] = []
    while True:
        try:
            found, failed = tat.tasks(region, invocation_ids, deadline=deadline), None
        except BlueprintError as err:
            # A poll only reads: one that was throttled or failed on the cloud's side is simply made again later
            # (giving up here would leave a command running that the caller thinks never started).
            if not err.retryable:
                raise
            failed = err
        if failed is None and len(found) >= max(expected, 1) and all(task.finished for task in found):
            return found
        if deadline.remaining() <= interval:
            if failed is not None and not found:
                raise failed
            return found
        deadline.pause(interval, "commands to finish", region=region, invocations=len(invocation_ids))
        interval = min(interval * growth, max(max_interval, interval))
