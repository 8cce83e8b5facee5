"""TAT 2020-10-28 through the real SDK: commands on Lighthouse instances, their tasks on the emulated clock."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from emu_helpers import error_code, lighthouse, tat
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.lighthouse.v20200324 import models as lh_models
from tencentcloud.tat.v20201028 import models, tat_client

from emulator import SECRET_ID, SECRET_KEY, Emulator

WEB = "lhins-web00001"
DB = "lhins-db000001"
STOPPED = "lhins-stop0001"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def run(emu: Emulator, script: str, ids: list[str] | None = None, **fields: Any) -> Any:
    req = models.RunCommandRequest()
    req.Content, req.InstanceIds = fields.pop("content", b64(script)), ids or [WEB]
    for key, value in fields.items():
        setattr(req, key, value)
    return tat(emu).RunCommand(req)


def invoke(emu: Emulator, command_id: str, ids: list[str] | None = None, **fields: Any) -> Any:
    req = models.InvokeCommandRequest()
    req.CommandId, req.InstanceIds = command_id, ids or [WEB]
    for key, value in fields.items():
        setattr(req, key, value)
    return tat(emu).InvokeCommand(req)


def tasks(emu: Emulator, invocation_id: str, *, hide: bool | None = False, method: str = "POST") -> list[Any]:
    req = models.DescribeInvocationTasksRequest()
    f = models.Filter()
    f.Name, f.Values = "invocation-id", [invocation_id]
    req.Filters, req.HideOutput = [f], hide
    return list(tat(emu, method=method).DescribeInvocationTasks(req).InvocationTaskSet)


def task(emu: Emulator, invocation_id: str, **kw: Any) -> Any:
    [only] = tasks(emu, invocation_id, **kw)
    return only


def agents(emu: Emulator, ids: list[str] | None = None, filters: dict[str, list[str]] | None = None) -> Any:
    req = models.DescribeAutomationAgentStatusRequest()
    req.InstanceIds = ids
    if filters:
        req.Filters = [_filter(name, values) for name, values in filters.items()]
    return tat(emu).DescribeAutomationAgentStatus(req)


def commands(emu: Emulator, ids: list[str] | None = None, filters: dict[str, list[str]] | None = None) -> Any:
    req = models.DescribeCommandsRequest()
    req.CommandIds = ids
    if filters:
        req.Filters = [_filter(name, values) for name, values in filters.items()]
    return tat(emu).DescribeCommands(req)


def invocation(emu: Emulator, invocation_id: str) -> Any:
    req = models.DescribeInvocationsRequest()
    req.InvocationIds = [invocation_id]
    [found] = tat(emu).DescribeInvocations(req).InvocationSet
    return found


def _filter(name: str, values: list[str]) -> Any:
    f = models.Filter()
    f.Name, f.Values = name, values
    return f


def decoded(value: str | None) -> str:
    return base64.b64decode(value or "").decode()


# ---- RunCommand and the task's life -------------------------------------------------------------------------


def test_run_command_task_runs_on_the_clock_and_records_what_ran(emu: Emulator) -> None:
    start = emu.now()
    reply = run(emu, "sync; echo flushed", WorkingDirectory="/srv", Timeout=30, Username="root")
    assert reply.InvocationId.startswith("inv-") and reply.CommandId.startswith("cmd-")
    first = task(emu, reply.InvocationId)
    assert first.TaskStatus == "RUNNING" and first.InstanceId == WEB and first.TaskResult.ExitCode is None
    assert first.InvocationTaskId.startswith("invt-") and first.CommandDocument.WorkingDirectory == "/srv"
    emu.advance(1)
    done = task(emu, reply.InvocationId)
    assert (done.TaskStatus, done.TaskResult.ExitCode, done.TaskResult.Output) == ("SUCCESS", 0, "")
    assert done.TaskResult.ExecStartTime and done.TaskResult.ExecEndTime and done.EndTime
    [ran] = emu.tat.runs()
    assert ran["Content"] == "sync; echo flushed" and ran["InstanceId"] == WEB and ran["Source"] == "RunCommand"
    assert ran["Start"] == pytest.approx(start, abs=1.0) and ran["End"] == pytest.approx(ran["Start"] + 1)
    assert (ran["TaskStatus"], ran["Finished"], ran["Timeout"]) == ("SUCCESS", True, 30)
    assert invocation(emu, reply.InvocationId).InvocationStatus == "SUCCESS"


def test_scripted_exit_code_output_and_duration(emu: Emulator) -> None:
    emu.tat.script(WEB, exit_code=3, output="mysql: lock failed\n", duration=5)
    reply = run(emu, "mysql -e 'FLUSH TABLES WITH READ LOCK'")
    emu.advance(4.5)
    assert task(emu, reply.InvocationId).TaskStatus == "RUNNING"
    emu.advance(0.5)
    failed = task(emu, reply.InvocationId)
    assert (failed.TaskStatus, failed.TaskResult.ExitCode) == ("FAILED", 3)
    assert decoded(failed.TaskResult.Output) == "mysql: lock failed\n" and failed.TaskResult.Dropped == 0
    # Output stays hidden unless asked for (HideOutput defaults to true).
    assert task(emu, reply.InvocationId, hide=None).TaskResult.Output == ""


def test_scripts_by_match_times_and_any_instance(emu: Emulator) -> None:
    emu.tat.script("*", duration=7)
    emu.tat.script(WEB, exit_code=1, match="fsfreeze -f", times=1)
    pre = run(emu, "fsfreeze -f /data")
    post = run(emu, "fsfreeze -u /data")
    again = run(emu, "fsfreeze -f /data")
    emu.advance(7)
    assert [task(emu, i.InvocationId).TaskResult.ExitCode for i in (pre, post, again)] == [1, 0, 0]
    runs = emu.tat.runs(WEB)
    assert [r["End"] - r["Start"] for r in runs] == pytest.approx([1.0, 7.0, 7.0])
    # One-shot scripts queue up: oldest first, then the standing ones again.
    emu.tat.script(DB, exit_code=5, times=1)
    emu.tat.script(DB, exit_code=6, times=1)
    queued = [run(emu, "true", [DB]) for _ in range(3)]
    emu.advance(7)
    assert [task(emu, i.InvocationId).TaskResult.ExitCode for i in queued] == [5, 6, 0]


def test_timeout_kills_the_command_with_exit_code_minus_one(emu: Emulator) -> None:
    emu.tat.script(WEB, duration=100, output="waiting")
    reply = run(emu, "sleep 100", Timeout=10)
    emu.advance(9.9)
    assert task(emu, reply.InvocationId).TaskStatus == "RUNNING"
    emu.advance(0.1)
    timed_out = task(emu, reply.InvocationId)
    assert (timed_out.TaskStatus, timed_out.TaskResult.ExitCode) == ("TIMEOUT", -1)
    assert invocation(emu, reply.InvocationId).InvocationStatus == "TIMEOUT"


def test_output_keeps_the_first_24_kib_and_counts_the_rest(emu: Emulator) -> None:
    text = "a" * 24 * 1024 + "TAIL" * 100
    emu.tat.script(WEB, output=text)
    reply = run(emu, "cat big.log")
    emu.advance(1)
    result = task(emu, reply.InvocationId).TaskResult
    assert decoded(result.Output) == "a" * 24 * 1024 and result.Dropped == 400
    assert emu.tat.runs()[0]["Output"] == text


def test_delivery_states_then_failures_that_never_start() -> None:
    with Emulator(rate_limits=False, deliver_seconds=2.0) as emu:
        reply = run(emu, "true")
        assert task(emu, reply.InvocationId).TaskStatus == "PENDING"
        assert invocation(emu, reply.InvocationId).InvocationStatus == "PENDING"
        emu.advance(1.5)
        assert task(emu, reply.InvocationId).TaskStatus == "DELIVERING"
        emu.advance(0.5)
        assert task(emu, reply.InvocationId).TaskStatus == "RUNNING"
        emu.tat.script(DB, status="DELIVER_FAILED")
        emu.tat.script(WEB, status="START_FAILED")
        lost, unstarted = run(emu, "true", [DB]), run(emu, "true", [WEB], Username="nobody")
        emu.advance(2)
        delivered_not = task(emu, lost.InvocationId)
        assert delivered_not.TaskStatus == "DELIVER_FAILED" and delivered_not.TaskResult.ExecStartTime is None
        start_failed = task(emu, unstarted.InvocationId)
        assert start_failed.TaskStatus == "START_FAILED" and "nobody" in start_failed.ErrorInfo
        assert emu.tat.runs(DB)[0]["Start"] is None


def test_agent_silence_ends_as_task_timeout(emu: Emulator) -> None:
    emu.tat.script(WEB, status="TASK_TIMEOUT")
    reply = run(emu, "true", Timeout=20)
    emu.advance(19)
    assert task(emu, reply.InvocationId).TaskStatus == "RUNNING"
    emu.advance(1)
    assert task(emu, reply.InvocationId).TaskStatus == "TASK_TIMEOUT"


def test_fleet_invocation_status_aggregates_its_tasks(emu: Emulator) -> None:
    emu.tat.script(DB, exit_code=2)
    reply = run(emu, "true", [WEB, DB])
    assert invocation(emu, reply.InvocationId).InvocationStatus == "RUNNING"
    emu.advance(1)
    found = invocation(emu, reply.InvocationId)
    assert found.InvocationStatus == "PARTIAL_FAILED" and found.InstanceKind == "LIGHTHOUSE"
    assert decoded(found.CommandContent) == "true"
    assert sorted(t.TaskStatus for t in found.InvocationTaskBasicInfoSet) == ["FAILED", "SUCCESS"]


def test_get_requests_read_tasks_too(emu: Emulator) -> None:
    emu.tat.script(WEB, output="ok")
    reply = run(emu, "echo ok")
    emu.advance(1)
    assert decoded(task(emu, reply.InvocationId, method="GET").TaskResult.Output) == "ok"


# ---- request errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"content": "not base64!"}, "InvalidParameterValue.InvalidContent"),
        ({"content": b64("   ")}, "InvalidParameterValue.InvalidContent"),
        ({"content": "A" * (64 * 1024 + 4)}, "InvalidParameterValue.TooLong"),
        ({"Timeout": 0}, "InvalidParameterValue.Range"),
        ({"Timeout": 86401}, "InvalidParameterValue.Range"),
        ({"CommandType": "POWERSHELL"}, "InvalidParameterValue.AgentUnsupportedCommandType"),
        ({"CommandType": "PYTHON"}, "InvalidParameterValue"),
        ({"CommandName": "bad name!"}, "InvalidParameterValue.InvalidCommandName"),
        ({"Username": "bad user"}, "InvalidParameterValue.InvalidUsername"),
        ({"Parameters": '{"a": "b"}'}, "InvalidParameterValue.SupportParametersOnlyIfEnableParameter"),
        ({"OutputCOSBucketUrl": "http://bucket"}, "InvalidParameterValue.InvalidOutputCOSBucketUrl"),
    ],
)
def test_run_command_field_errors(emu: Emulator, fields: dict[str, Any], code: str) -> None:
    assert error_code(lambda: run(emu, "true", **fields)) == code
    assert emu.tat.runs() == []


@pytest.mark.parametrize(
    ("ids", "code"),
    [
        (["lhins-nothere1"], "ResourceNotFound.InstanceNotFound"),
        (["lhins-sh000001"], "ResourceNotFound.InstanceNotFound"),  # exists, but in another region
        (["lhins-BAD"], "InvalidParameterValue.InvalidInstanceId"),
        ([STOPPED], "ResourceUnavailable.InstanceStateNotRunning"),
        ([WEB, "ins-abcdefgh"], "InvalidParameterValue.InconsistentInstance"),
        ([WEB, WEB], "InvalidParameterValue"),
        ([f"lhins-{i:08d}" for i in range(201)], "InvalidParameterValue.LimitExceeded"),
    ],
)
def test_run_command_instance_errors_run_nothing(emu: Emulator, ids: list[str], code: str) -> None:
    assert error_code(lambda: run(emu, "true", ids)) == code
    assert emu.tat.runs() == []


def test_schema_errors(emu: Emulator) -> None:
    req = models.RunCommandRequest()
    req.InstanceIds = [WEB]
    assert error_code(lambda: tat(emu).RunCommand(req)) == "MissingParameter"
    unknown = {"Content": b64("x"), "InstanceIds": [WEB], "Shell": "bash"}
    assert error_code(lambda: tat(emu).call_json("RunCommand", unknown)) == "UnknownParameter"


# ---- the agent ---------------------------------------------------------------------------------------------------


def test_agent_status_follows_the_instance_and_the_script(emu: Emulator) -> None:
    found = {a.InstanceId: a for a in agents(emu, [WEB, STOPPED, "lhins-nothere1"]).AutomationAgentSet}
    assert set(found) == {WEB, STOPPED}
    assert (found[WEB].AgentStatus, found[WEB].Environment) == ("Online", "Linux")
    assert found[STOPPED].AgentStatus == "Offline"
    assert found[WEB].Version and found[WEB].LastHeartbeatTime
    emu.tat.set_agent(DB, agent_status="Offline")
    online = agents(emu, filters={"agent-status": ["Online"]}).AutomationAgentSet
    assert [a.InstanceId for a in online] == [WEB]
    assert error_code(lambda: run(emu, "true", [WEB, DB])) == "ResourceUnavailable.AgentStatusNotOnline"
    emu.tat.set_agent(DB, installed=False)
    assert agents(emu, [DB]).TotalCount == 0
    assert error_code(lambda: run(emu, "true", [DB])) == "ResourceUnavailable.AgentNotInstalled"
    assert emu.tat.runs() == []
    assert emu.tat.agent(WEB) is not None and emu.tat.agent(DB) is None


def test_agent_request_errors(emu: Emulator) -> None:
    assert error_code(lambda: agents(emu, ["lhins-BAD"])) == "InvalidParameterValue.InvalidInstanceId"
    assert error_code(lambda: agents(emu, [WEB], {"agent-status": ["Online"]})) == "InvalidParameter.ConflictParameter"
    assert error_code(lambda: agents(emu, filters={"os": ["x"]})) == "InvalidParameterValue.InvalidFilter"
    too_many = {"agent-status": ["a", "b", "c", "d", "e", "f"]}
    assert error_code(lambda: agents(emu, filters=too_many)) == "InvalidParameterValue.LimitExceeded"
    assert error_code(lambda: agents(emu, [f"lhins-{i:08d}" for i in range(101)])) == (
        "InvalidParameterValue.LimitExceeded"
    )


# ---- commands the operator made ---------------------------------------------------------------------------------


def test_invoke_command_runs_a_registered_command(emu: Emulator) -> None:
    made = emu.tat.add_command("systemctl stop app", CommandName="pre-freeze", Timeout=120, Username="root")
    assert made["CommandId"].startswith("cmd-") and len(made["CommandId"]) == 12
    reply = invoke(emu, made["CommandId"], [WEB, DB], Timeout=15)
    [first, second] = tasks(emu, reply.InvocationId)
    assert (first.CommandId, first.CommandDocument.Timeout, first.CommandName) == (made["CommandId"], 15, "pre-freeze")
    assert decoded(first.CommandDocument.Content) == "systemctl stop app" and second.InstanceId == DB
    runs = emu.tat.runs()
    assert [(r["Source"], r["CommandId"], r["Content"]) for r in runs] == [
        ("InvokeCommand", made["CommandId"], "systemctl stop app")
    ] * 2


def test_invoke_command_errors(emu: Emulator) -> None:
    assert error_code(lambda: invoke(emu, "cmd-BAD")) == "InvalidParameterValue.InvalidCommandId"
    assert error_code(lambda: invoke(emu, "cmd-nothere1")) == "ResourceNotFound.CommandNotFound"
    elsewhere = emu.tat.add_command("true", Region="ap-shanghai")
    assert error_code(lambda: invoke(emu, elsewhere["CommandId"])) == "ResourceNotFound.CommandNotFound"
    plain = emu.tat.add_command("true")
    assert error_code(lambda: invoke(emu, plain["CommandId"], Parameters="{}")) == (
        "InvalidParameterValue.ParameterDisabled"
    )
    with pytest.raises(ValueError, match="malformed command id"):
        emu.tat.add_command("true", CommandId="cmd-x")


def test_custom_parameters_fill_placeholders(emu: Emulator) -> None:
    command = emu.tat.add_command(
        "mysql -e 'FLUSH {{scope}}' {{tat-hidden:pw}}", EnableParameter=True, DefaultParameters='{"scope": "TABLES"}'
    )
    invoke(emu, command["CommandId"], Parameters='{"pw": "s3cret"}')
    assert emu.tat.runs()[0]["Content"] == "mysql -e 'FLUSH TABLES' s3cret"
    assert error_code(lambda: invoke(emu, command["CommandId"])) == "InvalidParameterValue.LackOfParameterInfo"
    assert error_code(lambda: invoke(emu, command["CommandId"], Parameters="[1]")) == (
        "InvalidParameterValue.ParameterInvalidJsonFormat"
    )
    assert error_code(lambda: invoke(emu, command["CommandId"], Parameters='{"pw": 1}')) == (
        "InvalidParameterValue.ParameterValueNotString"
    )


def test_describe_commands(emu: Emulator) -> None:
    made = emu.tat.add_command("fsfreeze -f /data", CommandName="freeze", Tags=[{"Key": "team", "Value": "db"}])
    other = emu.tat.add_command("fsfreeze -u /data", CommandName="thaw")
    reply = commands(emu, [made["CommandId"], "cmd-nothere1"])
    assert reply.TotalCount == 1 and decoded(reply.CommandSet[0].Content) == "fsfreeze -f /data"
    assert reply.CommandSet[0].CreatedBy == "USER" and reply.CommandSet[0].CommandType == "SHELL"
    assert [c.CommandId for c in commands(emu, filters={"command-name": ["thaw"]}).CommandSet] == [other["CommandId"]]
    assert [c.CommandId for c in commands(emu, filters={"tag:team": ["db"]}).CommandSet] == [made["CommandId"]]
    assert error_code(lambda: commands(emu, ["cmd-BAD"])) == "InvalidParameterValue.InvalidCommandId"
    assert error_code(lambda: commands(emu, filters={"owner": ["me"]})) == "InvalidParameterValue.InvalidFilter"
    assert error_code(lambda: commands(emu, [made["CommandId"]], {"command-name": ["x"]})) == (
        "InvalidParameter.ConflictParameter"
    )


def test_save_command_keeps_it_for_invoke(emu: Emulator) -> None:
    saved = run(emu, "echo saved", SaveCommand=True, CommandName="kept")
    assert commands(emu, [saved.CommandId]).CommandSet[0].CommandName == "kept"
    invoke(emu, saved.CommandId)
    assert [r["Content"] for r in emu.tat.runs()] == ["echo saved", "echo saved"]
    assert error_code(lambda: run(emu, "x", SaveCommand=True, CommandName="kept")) == (
        "InvalidParameterValue.CommandNameDuplicated"
    )
    temporary = run(emu, "echo gone")
    assert commands(emu, [temporary.CommandId]).TotalCount == 0


def test_commands_from_the_state_file(tmp_path: Any) -> None:
    state = {
        "regions": ["ap-guangzhou"],
        "instances": [{"InstanceId": WEB, "Region": "ap-guangzhou"}],
        "commands": [{"CommandId": "cmd-freeze01", "CommandName": "freeze", "Content": "fsfreeze -f /data"}],
        "agents": [{"InstanceId": WEB, "AgentStatus": "Offline"}],
    }
    path = tmp_path / "state.json"
    path.write_text(json.dumps(state), encoding="utf-8")
    with Emulator(path, rate_limits=False) as emu:
        assert decoded(commands(emu, ["cmd-freeze01"]).CommandSet[0].Content) == "fsfreeze -f /data"
        assert agents(emu, [WEB]).AutomationAgentSet[0].AgentStatus == "Offline"
        emu.reset()
        assert commands(emu, ["cmd-freeze01"]).TotalCount == 1


# ---- tasks listing and cancelling ------------------------------------------------------------------------------------


def test_describe_tasks_filters_and_errors(emu: Emulator) -> None:
    one, two = run(emu, "true", [WEB]), run(emu, "true", [WEB, DB])
    req = models.DescribeInvocationTasksRequest()
    req.Filters = [_filter("instance-id", [DB])]
    [only] = tat(emu).DescribeInvocationTasks(req).InvocationTaskSet
    assert only.InvocationId == two.InvocationId
    by_id = models.DescribeInvocationTasksRequest()
    by_id.InvocationTaskIds = [only.InvocationTaskId]
    assert tat(emu).DescribeInvocationTasks(by_id).TotalCount == 1
    assert len(tasks(emu, one.InvocationId)) == 1
    assert tasks(emu, "inv-nothere1") == []
    bad = models.DescribeInvocationTasksRequest()
    bad.Filters = [_filter("invocation-id", ["inv-BAD"])]
    assert error_code(lambda: tat(emu).DescribeInvocationTasks(bad)) == "InvalidParameterValue.InvalidInvocationId"
    bad.Filters = [_filter("status", ["RUNNING"])]
    assert error_code(lambda: tat(emu).DescribeInvocationTasks(bad)) == "InvalidParameterValue.InvalidFilter"
    bad.Filters, bad.Limit = None, 101
    assert error_code(lambda: tat(emu).DescribeInvocationTasks(bad)) == "InvalidParameterValue"


def test_cancel_invocation(emu: Emulator) -> None:
    emu.tat.script("*", duration=30)
    reply = run(emu, "sleep 30", [WEB, DB])
    emu.advance(5)
    req = models.CancelInvocationRequest()
    req.InvocationId, req.InstanceIds = reply.InvocationId, [DB]
    tat(emu).CancelInvocation(req)
    statuses = {t.InstanceId: t.TaskStatus for t in tasks(emu, reply.InvocationId)}
    assert statuses == {WEB: "RUNNING", DB: "TERMINATED"}
    emu.advance(25)
    assert invocation(emu, reply.InvocationId).InvocationStatus == "PARTIAL_CANCELLED"
    req.InstanceIds = [STOPPED]
    assert error_code(lambda: tat(emu).CancelInvocation(req)) == (
        "InvalidParameterValue.InstanceIsNotRelatedToInvocation"
    )
    req.InvocationId = "inv-nothere1"
    assert error_code(lambda: tat(emu).CancelInvocation(req)) == "ResourceNotFound.InvocationNotFound"


def test_cancel_before_delivery_is_cancelled() -> None:
    with Emulator(rate_limits=False, deliver_seconds=4) as emu:
        reply = run(emu, "true")
        req = models.CancelInvocationRequest()
        req.InvocationId = reply.InvocationId
        tat(emu).CancelInvocation(req)
        emu.advance(10)
        assert task(emu, reply.InvocationId).TaskStatus == "CANCELLED"
        assert invocation(emu, reply.InvocationId).InvocationStatus == "CANCELLED"


# ---- limits, faults, order against Lighthouse, control path ----------------------------------------------------------


def test_documented_rate_limits_apply_to_tat() -> None:
    with Emulator() as emu:
        client = tat(emu)
        codes = []
        for _ in range(21):
            try:
                client.DescribeCommands(models.DescribeCommandsRequest())
                codes.append("ok")
            except TencentCloudSDKException as err:
                codes.append(str(err.code))
        assert codes.count("ok") == 20 and codes[-1] == "RequestLimitExceeded"


def test_faults_apply_to_tat_actions(emu: Emulator) -> None:
    emu.faults.fail("RunCommand", "InternalError")
    assert error_code(lambda: run(emu, "true")) == "InternalError"
    emu.faults.drop("RunCommand", after=True)
    assert error_code(lambda: run(emu, "true")) == "ClientNetworkError"
    assert len(emu.tat.runs()) == 1  # the dropped answer's command did run
    emu.faults.http_status("DescribeInvocationTasks", 502)
    assert error_code(lambda: tasks(emu, "inv-nothere1")) == "ServerNetworkError"


def create_blueprint(emu: Emulator, force_power_off: bool) -> str:
    req = lh_models.CreateBlueprintRequest()
    req.BlueprintName, req.InstanceId, req.ForcePowerOff = "consistent", WEB, force_power_off
    return str(lighthouse(emu).CreateBlueprint(req).BlueprintId)


def test_pre_create_post_order_is_visible_and_the_instance_never_stopped(emu: Emulator) -> None:
    emu.tat.script(WEB, duration=3, match="freeze")
    pre = run(emu, "fsfreeze --freeze /data")
    emu.advance(3)
    assert task(emu, pre.InvocationId).TaskStatus == "SUCCESS"
    create_blueprint(emu, force_power_off=False)
    post = run(emu, "fsfreeze --unfreeze /data")
    emu.advance(30)
    [create] = emu.calls_of("CreateBlueprint")
    pre_run, post_run = emu.tat.runs()
    assert pre_run["End"] <= create.time <= post_run["Start"]
    assert task(emu, post.InvocationId).TaskStatus == "SUCCESS"
    assert {state for _, state in emu.lighthouse.state_history(WEB)} == {"RUNNING"}
    # The same history does show a stop when the image powers the instance off.
    create_blueprint(emu, force_power_off=True)
    emu.advance(30)
    assert [s for _, s in emu.lighthouse.state_history(WEB)] == ["RUNNING", "STOPPED", "RUNNING"]


def control(emu: Emulator, path: str, body: dict[str, Any] | None = None) -> Any:
    url = f"{emu.url}/_emulator/{path}"
    reply = requests.post(url, json=body, timeout=5) if body is not None else requests.get(url, timeout=5)
    assert reply.ok, reply.text
    return reply.json()


def test_control_path_scripts_agents_and_commands(emu: Emulator) -> None:
    control(emu, "tat/script", {"instance": WEB, "exit_code": 4, "output": "no lock", "duration": 2})
    control(emu, "tat/agent", {"instance": DB, "agent_status": "Offline"})
    made = control(emu, "tat/command", {"Content": "echo hi", "CommandName": "hi"})
    reply = invoke(emu, made["CommandId"])
    assert error_code(lambda: run(emu, "true", [DB])) == "ResourceUnavailable.AgentStatusNotOnline"
    control(emu, "advance", {"seconds": 2})
    state = control(emu, "tat")
    [ran] = state["runs"]
    assert (ran["InvocationId"], ran["ExitCode"], ran["Output"], ran["Content"]) == (
        reply.InvocationId,
        4,
        "no lock",
        "echo hi",
    )
    assert state["agents"][DB]["AgentStatus"] == "Offline" and state["commands"][0]["CommandName"] == "hi"
    assert control(emu, "state")["tat"]["runs"] == state["runs"]
    assert control(emu, "state")["instance_states"][WEB][0][1] == "RUNNING"
    control(emu, "tat/clear", {})
    assert control(emu, "tat")["scripts"] == []
    bad = requests.post(f"{emu.url}/_emulator/tat/script", json={"instance": WEB, "exitcode": 1}, timeout=5)
    assert bad.status_code == 400


def test_python_m_emulator_command_seconds_flag() -> None:
    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "emulator", "--port", "0", "--command-seconds", "0"]
    proc = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True)  # noqa: S603
    try:
        assert proc.stdout is not None
        endpoint = proc.stdout.readline().strip().rsplit("/", 1)[-1]
        profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=endpoint, reqTimeout=5))
        client = tat_client.TatClient(credential.Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou", profile)
        req = models.RunCommandRequest()
        req.Content, req.InstanceIds = b64("true"), [WEB]
        invocation_id = client.RunCommand(req).InvocationId
        describe = models.DescribeInvocationsRequest()
        describe.InvocationIds = [invocation_id]
        assert client.DescribeInvocations(describe).InvocationSet[0].InvocationStatus == "SUCCESS"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
