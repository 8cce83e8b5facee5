"""TAT (TencentCloud Automation Tools) 2020-10-28: commands run on Lighthouse instances through their agent.

An invocation (`inv-`) holds one task (`invt-`) per instance. A task's state is a function of the emulated
clock: PENDING -> DELIVERING -> RUNNING -> SUCCESS | FAILED | TIMEOUT (or DELIVER_FAILED, START_FAILED,
TASK_TIMEOUT when scripted; CANCELLED / TERMINATED after CancelInvocation). What each task does is scripted
per instance (`script`): exit code, output, duration in emulated seconds; the default is exit 0, no output,
`command_seconds`. The agent of an instance is Online while the instance is RUNNING unless `set_agent` says
otherwise. Sources: SDK tencentcloud-sdk-python-tat 3.1.106 models.py (fields, enumerations, limits), Go
SDK tencentcloud/tat/v20201028/client.go (error codes per action), the agent's source (Tencent/tat-agent
src/executor/proc.rs: output kept from the start up to 24 KiB, the rest counted in Dropped; a killed
process reports exit code -1).
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from emulator import resources
from emulator import tat_checks as checks
from emulator.clock import iso
from emulator.errors import ApiError
from emulator.query import Getter, apply_filters, tag_getters
from emulator.schema import Schema
from emulator.service import Ctx
from emulator.state import DEFAULT_REGION, World
from emulator.tat_checks import COMMAND_ID_RE, COMMAND_TYPES, DEFAULT_TIMEOUT, INVOCATION_ID_RE, LINUX_TYPES, MAX_IDS

if TYPE_CHECKING:
    from emulator.lighthouse import Lighthouse

ANY = "*"
SCRIPTED_STATUSES = ("DELIVER_FAILED", "START_FAILED", "TASK_TIMEOUT")
FINAL_STATUSES = frozenset(
    {"DELIVER_FAILED", "START_FAILED", "SUCCESS", "FAILED", "TIMEOUT", "TASK_TIMEOUT", "CANCELLED", "TERMINATED"}
)
AGENT_VERSION = "0.1.0"  # the DescribeAutomationAgentStatus doc example's value
OUTPUT_LIMIT = 24 * 1024  # bytes of output kept (tat-agent DEFAULT_OUTPUT_BYTE; TaskResult.Output "最大长度24KB")


_RUN_OPTIONS: Schema = {
    "Username": ("str", False),
    "WorkingDirectory": ("str", False),
    "Timeout": ("int", False),
    "OutputCOSBucketUrl": ("str", False),
    "OutputCOSKeyPrefix": ("str", False),
}
_LIST: Schema = {"Filters": ("filter[]", False), "Limit": ("int", False), "Offset": ("int", False)}
SCHEMAS: dict[str, Schema] = {
    "RunCommand": {
        "Content": ("str", True),
        "InstanceIds": ("str[]", True),
        "CommandName": ("str", False),
        "Description": ("str", False),
        "CommandType": ("str", False),
        "SaveCommand": ("bool", False),
        "EnableParameter": ("bool", False),
        "DefaultParameters": ("str", False),
        "DefaultParameterConfs": ("paramconf[]", False),
        "Parameters": ("str", False),
        "Tags": ("tag[]", False),
        **_RUN_OPTIONS,
    },
    "InvokeCommand": {
        "CommandId": ("str", True),
        "InstanceIds": ("str[]", True),
        "Parameters": ("str", False),
        **_RUN_OPTIONS,
    },
    "DescribeInvocationTasks": {"InvocationTaskIds": ("str[]", False), "HideOutput": ("bool", False), **_LIST},
    "DescribeInvocations": {"InvocationIds": ("str[]", False), **_LIST},
    "DescribeAutomationAgentStatus": {"InstanceIds": ("str[]", False), **_LIST},
    "DescribeCommands": {"CommandIds": ("str[]", False), **_LIST},
    "CancelInvocation": {"InvocationId": ("str", True), "InstanceIds": ("str[]", False)},
}


@dataclass
class Outcome:
    """What a command does on an instance: scripted per instance (or `*`), optionally for matching commands."""

    exit_code: int = 0
    output: str | bytes = ""
    duration: float | None = None  # emulated seconds; None: the emulator's `command_seconds`
    status: str | None = None  # force DELIVER_FAILED, START_FAILED or TASK_TIMEOUT
    error_info: str | None = None
    match: str | None = None  # a CommandId, or a substring of the decoded content
    times: int | None = None  # None: every run

    def matches(self, command_id: str, content: str) -> bool:
        """True when this outcome applies to the command."""
        return self.match is None or self.match == command_id or self.match in content


@dataclass
class Task:
    """One instance's part of an invocation; its state follows from the clock."""

    task_id: str
    invocation_id: str
    instance_id: str
    region: str
    source: str
    command_id: str
    command_name: str
    content: str
    document: dict[str, Any]
    created: float
    delivered: float
    start: float | None
    end: float
    final: str
    exit_code: int | None
    output: bytes
    error_info: str = ""
    cancelled: float | None = None
    cancel_status: str = ""

    def status(self, now: float) -> str:
        """TaskStatus at emulated time `now`."""
        if self.cancelled is not None and now >= self.cancelled:
            return self.cancel_status
        if now < self.delivered:
            return "PENDING" if now < (self.created + self.delivered) / 2 else "DELIVERING"
        if now < self.end:
            return "RUNNING"
        return self.final

    def changed(self, now: float) -> float:
        """The emulated time of the latest transition at or before `now`."""
        points = [self.created, self.delivered, self.end, self.cancelled or self.created]
        return max(p for p in points if p <= now)

    def result(self, now: float, hide_output: bool) -> dict[str, Any]:
        """The TaskResult object."""
        done = self.status(now) in FINAL_STATUSES
        kept, dropped = self.output[:OUTPUT_LIMIT], max(0, len(self.output) - OUTPUT_LIMIT)
        started = self.start is not None and now >= self.start
        return {
            "ExitCode": self.exit_code if done else None,
            "Output": "" if hide_output or not done else base64.b64encode(kept).decode("ascii"),
            "ExecStartTime": iso(self.start) if started and self.start is not None else None,
            "ExecEndTime": iso(self.end) if done and self.start is not None else None,
            "Dropped": dropped if done else 0,
            "OutputUrl": self._output_url() if done else "",
            "OutputUploadCOSErrorInfo": "",
        }

    def _output_url(self) -> str:
        bucket = self.document.get("OutputCOSBucketUrl") or ""
        if not bucket:
            return ""
        prefix = self.document.get("OutputCOSKeyPrefix") or ""
        return f"{bucket.rstrip('/')}/{prefix}{self.invocation_id}/{self.task_id}.log"

    def view(self, now: float, hide_output: bool) -> dict[str, Any]:
        """The InvocationTask object."""
        status = self.status(now)
        return {
            "InvocationId": self.invocation_id,
            "InvocationTaskId": self.task_id,
            "CommandId": self.command_id,
            "TaskStatus": status,
            "InstanceId": self.instance_id,
            "TaskResult": self.result(now, hide_output),
            "StartTime": iso(self.delivered) if now >= self.delivered else None,
            "EndTime": iso(self.end) if status in FINAL_STATUSES else None,
            "CreatedTime": iso(self.created),
            "UpdatedTime": iso(self.changed(now)),
            "CommandDocument": dict(self.document),
            "ErrorInfo": self.error_info if status in FINAL_STATUSES else "",
            "InvocationSource": "USER",
            "CommandName": self.command_name,
        }

    def record(self, now: float) -> dict[str, Any]:
        """What ran, for tests: decoded content, instance, emulated start/end times, status now."""
        status = self.status(now)
        return {
            "InvocationId": self.invocation_id,
            "InvocationTaskId": self.task_id,
            "InstanceId": self.instance_id,
            "Region": self.region,
            "Source": self.source,
            "CommandId": self.command_id,
            "Content": self.content,
            "Username": self.document.get("Username"),
            "WorkingDirectory": self.document.get("WorkingDirectory"),
            "Timeout": self.document.get("Timeout"),
            "Created": self.created,
            "Start": self.start,
            "End": self.end,
            "TaskStatus": status,
            "Finished": status in FINAL_STATUSES,
            "ExitCode": self.exit_code if status in FINAL_STATUSES else None,
            "Output": self.output.decode("utf-8", "replace"),
        }


@dataclass
class Invocation:
    """One RunCommand / InvokeCommand call."""

    invocation_id: str
    region: str
    command_id: str
    command_name: str
    document: dict[str, Any]
    created: float
    tasks: list[Task] = field(default_factory=list)
    parameters: str = "{}"
    default_parameters: str = "{}"
    created_by: str = "USER"
    description: str = ""

    def status(self, now: float) -> str:
        """InvocationStatus aggregated from the tasks (the aggregation rule is the emulator's)."""
        return _aggregate([task.status(now) for task in self.tasks])

    def view(self, now: float) -> dict[str, Any]:
        """The Invocation object."""
        status = self.status(now)
        return {
            "InvocationId": self.invocation_id,
            "CommandId": self.command_id,
            "CommandName": self.command_name,
            "InvocationStatus": status,
            "InvocationTaskBasicInfoSet": [
                {"InvocationTaskId": t.task_id, "TaskStatus": t.status(now), "InstanceId": t.instance_id}
                for t in self.tasks
            ],
            "Description": self.description,
            "StartTime": iso(self.created),
            "EndTime": iso(max(t.end for t in self.tasks)) if status in _FINAL_INVOCATION else None,
            "CreatedTime": iso(self.created),
            "UpdatedTime": iso(max(t.changed(now) for t in self.tasks)),
            "Parameters": self.parameters,
            "DefaultParameters": self.default_parameters,
            "InstanceKind": "LIGHTHOUSE",
            "Username": self.document.get("Username"),
            "InvocationSource": "USER",
            "CommandContent": self.document["Content"],
            "CommandType": self.document["CommandType"],
            "Timeout": self.document["Timeout"],
            "WorkingDirectory": self.document["WorkingDirectory"],
            "OutputCOSBucketUrl": self.document.get("OutputCOSBucketUrl") or "",
            "OutputCOSKeyPrefix": self.document.get("OutputCOSKeyPrefix") or "",
        }


_FINAL_INVOCATION = frozenset({"SUCCESS", "FAILED", "TIMEOUT", "CANCELLED", "PARTIAL_FAILED", "PARTIAL_CANCELLED"})


def _aggregate(statuses: Sequence[str]) -> str:
    if any(s not in FINAL_STATUSES for s in statuses):
        waiting = all(s in ("PENDING", "DELIVERING", "DELIVER_DELAYED") for s in statuses)
        return "PENDING" if waiting else "RUNNING"
    cancelled = [s in ("CANCELLED", "TERMINATED") for s in statuses]
    if all(cancelled):
        return "CANCELLED"
    if any(cancelled):
        return "PARTIAL_CANCELLED"
    if all(s == "SUCCESS" for s in statuses):
        return "SUCCESS"
    if all(s == "TIMEOUT" for s in statuses):
        return "TIMEOUT"
    return "PARTIAL_FAILED" if "SUCCESS" in statuses else "FAILED"


_TASK_FILTERS: dict[str, Getter] = {
    "invocation-id": lambda t: [t["InvocationId"]],
    "invocation-task-id": lambda t: [t["InvocationTaskId"]],
    "instance-id": lambda t: [t["InstanceId"]],
    "command-id": lambda t: [t["CommandId"]],
}
_INVOCATION_FILTERS: dict[str, Getter] = {
    "invocation-id": lambda i: [i["InvocationId"]],
    "command-id": lambda i: [i["CommandId"]],
    "command-created-by": lambda i: [i["CreatedBy"]],
    "instance-kind": lambda i: [i["InstanceKind"]],
}
_AGENT_FILTERS: dict[str, Getter] = {
    "agent-status": lambda a: [a["AgentStatus"]],
    "environment": lambda a: [a["Environment"]],
    "instance-id": lambda a: [a["InstanceId"]],
}
_COMMAND_FILTERS: dict[str, Getter] = {
    "command-id": lambda c: [c["CommandId"]],
    "command-name": lambda c: [c["CommandName"]],
    "command-type": lambda c: [c["CommandType"]],
    "scene-id": lambda c: list(c.get("Scenes") or []),
    "created-by": lambda c: [c["CreatedBy"]],
    **tag_getters(),
}


class Tat:
    """TAT state (commands, invocations, agents, scripted outcomes) and actions; all under the world lock."""

    name = "tat"
    version = "2020-10-28"
    regional = True
    schemas = SCHEMAS

    def __init__(
        self, world: World, lighthouse: Lighthouse, *, command_seconds: float = 1.0, deliver_seconds: float = 0.0
    ) -> None:
        self._world = world
        self._lighthouse = lighthouse
        self.command_seconds = command_seconds
        self.deliver_seconds = deliver_seconds
        self._commands: dict[str, dict[str, Any]] = {}
        self._invocations: dict[str, Invocation] = {}
        self._agents: dict[str, dict[str, Any]] = {}
        self._outcomes: list[tuple[str, Outcome]] = []
        self._task_ids: set[str] = set()
        self._handlers: dict[str, Callable[[dict[str, Any], Ctx], dict[str, Any]]] = {
            "RunCommand": self._run_command,
            "InvokeCommand": self._invoke_command,
            "DescribeInvocationTasks": self._describe_tasks,
            "DescribeInvocations": self._describe_invocations,
            "DescribeAutomationAgentStatus": self._describe_agents,
            "DescribeCommands": self._describe_commands,
            "CancelInvocation": self._cancel_invocation,
        }

    # ---- lifecycle -------------------------------------------------------------------------------

    def reset(self, state: dict[str, Any]) -> None:
        """Forget everything; load `commands` (API fields, Content as plain text) and `agents` from `state`."""
        with self._world.lock:
            self._commands.clear()
            self._invocations.clear()
            self._agents.clear()
            self._outcomes.clear()
            self._task_ids.clear()
            for item in state.get("commands") or []:
                fields = dict(item)
                self.add_command(fields.pop("Content"), **fields)
            for item in state.get("agents") or []:
                fields = {_snake(key): value for key, value in item.items()}
                self.set_agent(fields.pop("instance_id"), **fields)

    def call(self, action: str, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        """Run a TAT action."""
        with self._world.lock:
            return self._handlers[action](params, ctx)

    def _now(self) -> float:
        return self._world.clock.now()

    # ---- Python API ----------------------------------------------------------------------------------

    def script(
        self,
        instance_id: str = ANY,
        *,
        exit_code: int = 0,
        output: str | bytes = "",
        duration: float | None = None,
        status: str | None = None,
        error_info: str | None = None,
        match: str | None = None,
        times: int | None = None,
    ) -> None:
        """Script what commands do on `instance_id` (`*`: any instance).

        Scripts are tried oldest first, those of the instance before those of `*`; the first whose `match`
        fits the command applies; one with `times` is dropped once used up (like faults).

        Raises:
            ValueError: unknown `status`, negative `duration`, or `times` < 1.
        """
        if status is not None and status not in SCRIPTED_STATUSES:
            raise ValueError(f"status must be one of {', '.join(SCRIPTED_STATUSES)} (or None)")
        if duration is not None and duration < 0:
            raise ValueError("duration cannot be negative")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for every run)")
        outcome = Outcome(exit_code, output, duration, status, error_info, match, times)
        with self._world.lock:
            self._outcomes.append((instance_id, outcome))

    def clear_scripts(self) -> None:
        """Forget every scripted outcome (commands then exit 0 with no output after `command_seconds`)."""
        with self._world.lock:
            self._outcomes.clear()

    def set_agent(
        self,
        instance_id: str,
        *,
        agent_status: str = "Online",
        installed: bool = True,
        environment: str = "Linux",
        version: str = AGENT_VERSION,
        support_features: Iterable[str] = (),
    ) -> None:
        """Set an instance's agent: `agent_status` Online/Offline, `installed=False` for no agent at all.

        Raises:
            ValueError: for an agent status other than Online / Offline.
        """
        if agent_status not in ("Online", "Offline"):
            raise ValueError("agent_status must be Online or Offline")
        with self._world.lock:
            self._agents[instance_id] = {
                "AgentStatus": agent_status,
                "Installed": installed,
                "Environment": environment,
                "Version": version,
                "SupportFeatures": list(support_features),
                "Since": self._now(),
            }

    def agent(self, instance_id: str) -> dict[str, Any] | None:
        """The agent as DescribeAutomationAgentStatus shows it now (None: no instance or no agent)."""
        with self._world.lock:
            item = self._lighthouse.instance(instance_id)
            return self._agent_view(item) if item is not None else None

    def add_command(
        self,
        Content: str,
        *,
        CommandName: str | None = None,
        Region: str = DEFAULT_REGION,
        CommandId: str | None = None,
        CommandType: str = "SHELL",
        WorkingDirectory: str = "/root",
        Timeout: int = DEFAULT_TIMEOUT,
        Username: str = "root",
        Description: str = "",
        EnableParameter: bool = False,
        DefaultParameters: str = "{}",
        Tags: Iterable[Mapping[str, str]] = (),
        CreatedBy: str = "USER",
    ) -> dict[str, Any]:
        """Register a command an operator made (CreateCommand); `Content` is the plain script. Returns a copy.

        Raises:
            ValueError: when CommandId is given and is not `cmd-` + 8 of [a-z0-9].
        """
        if CommandId is not None and not COMMAND_ID_RE.match(CommandId):
            raise ValueError(f"malformed command id {CommandId!r}: want cmd- and 8 of [a-z0-9]")
        with self._world.lock:
            self._world.add_region(Region)
            command_id = CommandId or resources.new_id("cmd", self._commands)
            now = iso(self._now())
            self._commands[command_id] = {
                "CommandId": command_id,
                "CommandName": CommandName or command_id,
                "Description": Description,
                "Content": _b64(Content),
                "CommandType": CommandType,
                "WorkingDirectory": WorkingDirectory,
                "Timeout": Timeout,
                "CreatedTime": now,
                "UpdatedTime": now,
                "EnableParameter": EnableParameter,
                "DefaultParameters": DefaultParameters,
                "DefaultParameterConfs": [],
                "Scenes": [],
                "FormattedDescription": "",
                "CreatedBy": CreatedBy,
                "Tags": resources.tags_of(Tags),
                "Username": Username,
                "OutputCOSBucketUrl": "",
                "OutputCOSKeyPrefix": "",
                "Region": Region,
            }
            return copy.deepcopy(self._commands[command_id])

    def commands(self, region: str | None = None) -> list[dict[str, Any]]:
        """Copies of the saved commands (API shape plus "Region")."""
        with self._world.lock:
            return [copy.deepcopy(c) for c in self._commands.values() if region in (None, c["Region"])]

    def runs(self, instance_id: str | None = None) -> list[dict[str, Any]]:
        """Every task so far (what ran where, emulated Created/Start/End times, status now), oldest first."""
        with self._world.lock:
            now = self._now()
            tasks = [t for inv in self._invocations.values() for t in inv.tasks]
            return [t.record(now) for t in tasks if instance_id in (None, t.instance_id)]

    def invocations(self) -> list[dict[str, Any]]:
        """Every invocation as DescribeInvocations shows it now (plus "Region")."""
        with self._world.lock:
            now = self._now()
            return [inv.view(now) | {"Region": inv.region} for inv in self._invocations.values()]

    def snapshot(self) -> dict[str, Any]:
        """Runs, invocations, commands, agents and scripts, for the control path."""
        with self._world.lock:
            agents = {k: {key: v for key, v in a.items() if key != "Since"} for k, a in self._agents.items()}
            return {
                "runs": self.runs(),
                "invocations": self.invocations(),
                "commands": self.commands(),
                "agents": agents,
                "scripts": [{"instance": k, **_outcome_json(o)} for k, o in self._outcomes],
            }

    # ---- RunCommand / InvokeCommand ---------------------------------------------------------------------

    def _run_command(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        content = checks.decode_content(params["Content"])
        checks.check_run_fields(params)
        command_type = params.get("CommandType", "SHELL")
        if command_type not in COMMAND_TYPES:
            raise ApiError("InvalidParameterValue", f"`CommandType` must be one of {', '.join(COMMAND_TYPES)}.")
        values = checks.parameters(params, enabled=bool(params.get("EnableParameter")), run=True)
        targets = self._targets(params["InstanceIds"], ctx.region, command_type)
        document = checks.document(params, params["Content"], command_type)
        command_id = resources.new_id("cmd", self._commands)
        name = params.get("CommandName") or ""
        if params.get("SaveCommand"):
            name = self._save(command_id, name, params, document, ctx.region)
        content = checks.substitute(content, values)
        invocation = self._invocation(ctx.region, command_id, name, document)
        self._start(invocation, content, targets, "RunCommand")
        invocation.parameters = params.get("Parameters") or "{}"
        invocation.default_parameters = params.get("DefaultParameters") or "{}"
        invocation.description = params.get("Description") or ""
        return {"CommandId": command_id, "InvocationId": invocation.invocation_id}

    def _save(self, command_id: str, name: str, params: dict[str, Any], document: dict[str, Any], region: str) -> str:
        name = name or command_id
        if any(c["CommandName"] == name and c["Region"] == region for c in self._commands.values()):
            raise ApiError("InvalidParameterValue.CommandNameDuplicated", f"A command named `{name}` exists.")
        self.add_command(
            _text(document["Content"]),
            CommandName=name,
            Region=region,
            CommandId=command_id,
            CommandType=document["CommandType"],
            WorkingDirectory=document["WorkingDirectory"],
            Timeout=document["Timeout"],
            Username=document["Username"],
            Description=params.get("Description") or "",
            EnableParameter=bool(params.get("EnableParameter")),
            DefaultParameters=params.get("DefaultParameters") or "{}",
            Tags=params.get("Tags") or [],
        )
        return name

    def _invoke_command(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        command = self._command(params["CommandId"], ctx.region)
        checks.check_run_fields(params)
        values = checks.parameters(
            {"DefaultParameters": command["DefaultParameters"], **params}, enabled=command["EnableParameter"], run=False
        )
        targets = self._targets(params["InstanceIds"], ctx.region, command["CommandType"])
        document = checks.document({**command, **params}, command["Content"], command["CommandType"])
        content = checks.substitute(_text(command["Content"]), values)
        invocation = self._invocation(ctx.region, command["CommandId"], command["CommandName"], document)
        self._start(invocation, content, targets, "InvokeCommand")
        invocation.parameters = params.get("Parameters") or "{}"
        invocation.default_parameters = command["DefaultParameters"]
        invocation.created_by = command["CreatedBy"]
        return {"InvocationId": invocation.invocation_id}

    def _command(self, command_id: str, region: str) -> dict[str, Any]:
        if not COMMAND_ID_RE.match(command_id):
            raise ApiError("InvalidParameterValue.InvalidCommandId", f"The command ID `{command_id}` is malformed.")
        found = self._commands.get(command_id)
        if found is None or found["Region"] != region:
            raise ApiError("ResourceNotFound.CommandNotFound", f"The command `{command_id}` does not exist.")
        return found

    def _targets(self, ids: list[str], region: str, command_type: str) -> list[str]:
        """Check every instance before anything runs: the call runs on all of them or on none."""
        checks.check_instance_ids(ids)
        for instance_id in ids:
            item = self._lighthouse.instance(instance_id)
            if item is None or item["Region"] != region:
                raise ApiError("ResourceNotFound.InstanceNotFound", f"The instance `{instance_id}` does not exist.")
            if item["InstanceState"] != "RUNNING":
                raise ApiError(
                    "ResourceUnavailable.InstanceStateNotRunning", f"The instance `{instance_id}` is not RUNNING."
                )
            self._check_agent(item, command_type)
        return list(ids)

    def _check_agent(self, item: dict[str, Any], command_type: str) -> None:
        agent = self._agent_view(item)
        instance_id = item["InstanceId"]
        if agent is None:
            raise ApiError("ResourceUnavailable.AgentNotInstalled", f"The agent is not installed on `{instance_id}`.")
        if agent["AgentStatus"] != "Online":
            raise ApiError("ResourceUnavailable.AgentStatusNotOnline", f"The agent of `{instance_id}` is offline.")
        if (agent["Environment"] == "Linux") != (command_type in LINUX_TYPES):
            raise ApiError(
                "InvalidParameterValue.AgentUnsupportedCommandType",
                f"The agent of `{instance_id}` ({agent['Environment']}) cannot run {command_type} commands.",
            )

    def _start(self, invocation: Invocation, content: str, targets: list[str], source: str) -> Invocation:
        """One task per instance, each with its scripted outcome; the invocation is then kept."""
        for instance_id in targets:
            outcome = self._take_outcome(instance_id, invocation.command_id, content)
            invocation.tasks.append(self._task(invocation, instance_id, content, outcome, source=source))
        self._invocations[invocation.invocation_id] = invocation
        return invocation

    def _invocation(self, region: str, command_id: str, name: str, document: dict[str, Any]) -> Invocation:
        invocation_id = resources.new_id("inv", self._invocations)
        return Invocation(invocation_id, region, command_id, name, document, self._now())

    def _task(self, invocation: Invocation, instance_id: str, content: str, outcome: Outcome, *, source: str) -> Task:
        now = invocation.created
        delivered = now + self.deliver_seconds
        timeout = float(invocation.document["Timeout"])
        duration = self.command_seconds if outcome.duration is None else outcome.duration
        output = outcome.output.encode("utf-8") if isinstance(outcome.output, str) else bytes(outcome.output)
        task = Task(
            task_id=self._new_task_id(),
            invocation_id=invocation.invocation_id,
            instance_id=instance_id,
            region=invocation.region,
            source=source,
            command_id=invocation.command_id,
            command_name=invocation.command_name,
            content=content,
            document=invocation.document,
            created=now,
            delivered=delivered,
            start=delivered,
            end=delivered + min(duration, timeout),
            final="SUCCESS" if outcome.exit_code == 0 else "FAILED",
            exit_code=outcome.exit_code,
            output=output,
        )
        _apply_outcome(task, outcome, duration, timeout)
        return task

    def _new_task_id(self) -> str:
        task_id = resources.new_id("invt", self._task_ids)
        self._task_ids.add(task_id)
        return task_id

    def _take_outcome(self, instance_id: str, command_id: str, content: str) -> Outcome:
        """The oldest script for this instance that matches, else for `*`, else the default."""
        for wanted in (instance_id, ANY):
            for index, (key, outcome) in enumerate(self._outcomes):
                if key == wanted and outcome.matches(command_id, content):
                    if outcome.times is not None:
                        outcome.times -= 1
                        if outcome.times <= 0:
                            del self._outcomes[index]
                    return outcome
        return Outcome()

    # ---- agents ------------------------------------------------------------------------------------------

    def _agent_view(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """The agent of a (copied) instance; a stopped instance's agent is Offline, its process is not running."""
        agent = self._agents.get(item["InstanceId"]) or {
            "AgentStatus": "Online",
            "Installed": True,
            "Environment": "Windows" if item.get("PlatformType") == "WINDOWS" else "Linux",
            "Version": AGENT_VERSION,
            "SupportFeatures": [],
            "Since": None,
        }
        if not agent["Installed"]:
            return None
        online = agent["AgentStatus"] == "Online" and item["InstanceState"] == "RUNNING"
        now = self._now()
        heartbeat = now if online else (agent["Since"] or _stopped_since(self._lighthouse, item["InstanceId"], now))
        return {
            "InstanceId": item["InstanceId"],
            "Version": agent["Version"],
            "LastHeartbeatTime": iso(heartbeat),
            "AgentStatus": "Online" if online else "Offline",
            "Environment": agent["Environment"],
            "SupportFeatures": list(agent["SupportFeatures"]),
        }

    def _describe_agents(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        checks.check_list(params, "DescribeAutomationAgentStatus", _AGENT_FILTERS)
        items = self._lighthouse.instances(ctx.region)
        if "InstanceIds" in params:
            items = [i for i in items if i["InstanceId"] in params["InstanceIds"]]
        agents = [a for a in (self._agent_view(i) for i in items) if a is not None]
        total, shown = checks.page(apply_filters(agents, params.get("Filters", []), _AGENT_FILTERS), params)
        return {"AutomationAgentSet": shown, "TotalCount": total}

    # ---- Describe tasks / invocations / commands ----------------------------------------------------------

    def _describe_tasks(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        checks.check_list(params, "DescribeInvocationTasks", _TASK_FILTERS)
        now = self._now()
        hide = params.get("HideOutput", True)
        tasks = [t for inv in self._invocations.values() if inv.region == ctx.region for t in inv.tasks]
        if "InvocationTaskIds" in params:
            tasks = [t for t in tasks if t.task_id in params["InvocationTaskIds"]]
        # Filter on the ids alone and build full views only for the page: fleets poll this a lot.
        keys = [
            {
                "InvocationId": t.invocation_id,
                "InvocationTaskId": t.task_id,
                "InstanceId": t.instance_id,
                "CommandId": t.command_id,
                "index": n,
            }
            for n, t in enumerate(tasks)
        ]
        total, shown = checks.page(apply_filters(keys, params.get("Filters", []), _TASK_FILTERS), params)
        return {"TotalCount": total, "InvocationTaskSet": [tasks[key["index"]].view(now, hide) for key in shown]}

    def _describe_invocations(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        checks.check_list(params, "DescribeInvocations", _INVOCATION_FILTERS)
        now = self._now()
        found = [i for i in self._invocations.values() if i.region == ctx.region]
        if "InvocationIds" in params:
            found = [i for i in found if i.invocation_id in params["InvocationIds"]]
        views = [inv.view(now) | {"CreatedBy": inv.created_by} for inv in found]
        total, shown = checks.page(apply_filters(views, params.get("Filters", []), _INVOCATION_FILTERS), params)
        return {"TotalCount": total, "InvocationSet": [_without(v, "CreatedBy") for v in shown]}

    def _describe_commands(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        checks.check_list(params, "DescribeCommands", _COMMAND_FILTERS)
        found = [c for c in self._commands.values() if c["Region"] == ctx.region]
        if "CommandIds" in params:
            found = [c for c in found if c["CommandId"] in params["CommandIds"]]
        total, shown = checks.page(apply_filters(found, params.get("Filters", []), _COMMAND_FILTERS), params)
        return {"TotalCount": total, "CommandSet": [_without(c, "Region") for c in shown]}

    # ---- CancelInvocation ------------------------------------------------------------------------------------

    def _cancel_invocation(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        invocation_id = params["InvocationId"]
        if not INVOCATION_ID_RE.match(invocation_id):
            raise ApiError("InvalidParameterValue.InvalidInvocationId", f"`{invocation_id}` is malformed.")
        invocation = self._invocations.get(invocation_id)
        if invocation is None or invocation.region != ctx.region:
            raise ApiError("ResourceNotFound.InvocationNotFound", f"The invocation `{invocation_id}` does not exist.")
        wanted = params.get("InstanceIds")
        if wanted is not None:
            checks.check_instance_ids(wanted, limit=MAX_IDS)
            unrelated = set(wanted) - {t.instance_id for t in invocation.tasks}
            if unrelated:
                raise ApiError(
                    "InvalidParameterValue.InstanceIsNotRelatedToInvocation",
                    f"`{sorted(unrelated)[0]}` is not part of `{invocation_id}`.",
                )
        now = self._now()
        for task in invocation.tasks:
            if wanted is None or task.instance_id in wanted:
                _cancel(task, now)
        return {}


# ---- helpers -------------------------------------------------------------------------------------------------


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    data = asdict(outcome)
    if isinstance(outcome.output, bytes):
        data["output"] = outcome.output.decode("utf-8", "replace")
    return data


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _text(b64: str) -> str:
    return base64.b64decode(b64).decode("utf-8", "replace")


def _without(item: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in item.items() if k != key}


def _stopped_since(lighthouse: Lighthouse, instance_id: str, now: float) -> float:
    history = lighthouse.state_history(instance_id)
    return history[-1][0] if history else now


def _apply_outcome(task: Task, outcome: Outcome, duration: float, timeout: float) -> None:
    """Turn the scripted outcome into the task's timeline and final state."""
    if outcome.status in ("DELIVER_FAILED", "START_FAILED"):
        task.start, task.end, task.final = None, task.delivered, outcome.status
        task.exit_code, task.output = (None if outcome.status == "DELIVER_FAILED" else 0), b""
        default = (
            "DeliverFailed: the task could not be delivered to the agent"
            if outcome.status == "DELIVER_FAILED"
            else f"UserNotExists: user `{task.document['Username']}` not exists"
        )
        task.error_info = outcome.error_info or default
    elif outcome.status == "TASK_TIMEOUT":
        task.end, task.final, task.exit_code, task.output = task.delivered + timeout, "TASK_TIMEOUT", None, b""
        task.error_info = outcome.error_info or "the agent did not report the task's result"
    elif duration > timeout:
        # The agent kills the process group at the timeout: a signal, so exit code -1 (tat-agent proc.rs).
        task.final, task.exit_code = "TIMEOUT", -1
        task.error_info = outcome.error_info or ""
    else:
        task.error_info = outcome.error_info or ""


def _cancel(task: Task, now: float) -> None:
    status = task.status(now)
    if status in FINAL_STATUSES:
        return
    task.cancelled = now
    if status == "RUNNING":
        task.cancel_status, task.exit_code, task.end = "TERMINATED", -1, now
    else:
        task.cancel_status, task.exit_code, task.start, task.end = "CANCELLED", None, None, now
