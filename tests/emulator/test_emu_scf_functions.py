"""SCF functions, triggers, deployed-package invocations, timers and Function URLs through the real SDK."""

from __future__ import annotations

import base64
import io
import json
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from emu_helpers import error_code, scf
from tencentcloud.scf.v20180416 import models

from emulator import Emulator
from emulator.ratelimit import DEFAULT_LIMITS
from tests.conftest import python310

# A package that shows what the function saw: its event, context, environment and sys.path.
ECHO = textwrap.dedent('''
    import json, os, sys

    def main_handler(event, context):
        print("log line from the function")
        if event.get("raise"):
            raise ValueError(event["raise"])
        body = event.get("body")
        if isinstance(body, str) and '"statusCode"' in body:
            return json.loads(body)  # answer with the integrated response the caller sent
        try:
            import yaml  # installed where the emulator runs, not in this package
            isolated = False
        except ImportError:
            isolated = True
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PATH", "LANG", "HOME", "PWD"))}
        return {"event": event, "context": context, "env": env, "isolated": isolated, "version": VERSION}
''')


def package(version: str = "one", source: str = ECHO) -> str:
    """A base64 zip with index.py at its root."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", source + f"\nVERSION = {version!r}\n")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """Rate limits off, 1 emulated second per deployment step, this interpreter for Python3.10."""
    runtimes = {"Python3.10": python310() or sys.executable}
    with Emulator(rate_limits=False, function_seconds=1.0, runtimes=runtimes) as started:
        yield started
    started.scf.shutdown()


def call(emu: Emulator, action: str, params: dict[str, Any], region: str = "ap-guangzhou") -> Any:
    """Any SCF action through the SDK, parameters as the API's JSON."""
    req = getattr(models, f"{action}Request")()
    req.from_json_string(json.dumps(params))
    return getattr(scf(emu, region), action)(req)


def create(emu: Emulator, name: str = "fn", **overrides: Any) -> None:
    params = {"FunctionName": name, "Code": {"ZipFile": package()}, "Handler": "index.main_handler",
              "Runtime": "Python3.10", "MemorySize": 128, "Timeout": 30, "Role": "SCF_Role",
              "Description": "Echoes what it saw, for tests.",
              "Environment": {"Variables": [{"Key": "GREETING", "Value": "hello"}]}, **overrides}
    call(emu, "CreateFunction", {k: v for k, v in params.items() if v is not None})


def active(emu: Emulator, name: str = "fn") -> Any:
    emu.advance(1.5)
    function = call(emu, "GetFunction", {"FunctionName": name})
    assert function.Status == "Active"
    return function


def invoke(emu: Emulator, event: Any, kind: str = "RequestResponse", **extra: Any) -> Any:
    return call(emu, "Invoke", {"FunctionName": "fn", "InvocationType": kind, "ClientContext": json.dumps(event),
                                **extra}).Result


def timer(emu: Emulator, name: str = "nightly", cron: str = "0 0 3 * * * *", **extra: Any) -> Any:
    return call(emu, "CreateTrigger", {"FunctionName": "fn", "TriggerName": name, "Type": "timer",
                                       "TriggerDesc": cron, "Qualifier": "$DEFAULT", "Enable": "OPEN", **extra})


def url_trigger(emu: Emulator, auth: str = "NONE") -> str:
    desc = {"AuthType": auth, "NetConfig": {"EnableIntranet": False, "EnableExtranet": True}}
    info = call(emu, "CreateTrigger", {"FunctionName": "fn", "TriggerName": "url", "Type": "http",
                                       "TriggerDesc": json.dumps(desc), "Qualifier": "$DEFAULT"}).TriggerInfo
    url: str = json.loads(info.TriggerDesc)["NetConfig"]["ExtranetUrl"]
    return url


def test_create_wait_update_list(emu: Emulator) -> None:
    create(emu)
    assert call(emu, "GetFunction", {"FunctionName": "fn"}).Status == "Creating"
    update_code = {"FunctionName": "fn", "ZipFile": package("two")}
    assert error_code(lambda: call(emu, "UpdateFunctionCode", update_code)) == "FailedOperation.FunctionStatusError"
    function = active(emu)
    assert (function.Runtime, function.Handler, function.MemorySize, function.Timeout, function.Role) == (
        "Python3.10", "index.main_handler", 128, 30, "SCF_Role")
    assert [(v.Key, v.Value) for v in function.Environment.Variables] == [("GREETING", "hello")]
    assert function.Description == "Echoes what it saw, for tests." and function.CodeSize > 0

    call(emu, "UpdateFunctionConfiguration", {"FunctionName": "fn", "MemorySize": 256})
    assert call(emu, "GetFunction", {"FunctionName": "fn"}).Status == "Updating"
    again = {"FunctionName": "fn", "Timeout": 60}
    assert error_code(lambda: call(emu, "UpdateFunctionConfiguration", again)) == (
        "FailedOperation.UpdateFunctionConfiguration")
    assert active(emu).MemorySize == 256
    listed = call(emu, "ListFunctions", {"SearchKey": "f"})
    assert listed.TotalCount == 1 and (listed.Functions[0].FunctionName, listed.Functions[0].Status) == ("fn", "Active")
    assert call(emu, "ListFunctions", {"Filters": [{"Name": "Status", "Values": ["Creating"]}]}).TotalCount == 0
    assert error_code(lambda: call(emu, "GetFunction", {"FunctionName": "fn"}, region="ap-shanghai")) == (
        "ResourceNotFound.Function")


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"FunctionName": "9lives"}, "InvalidParameterValue.FunctionName"),
        ({"MemorySize": 100}, "InvalidParameterValue.MemorySize"),
        ({"MemorySize": 3200}, "InvalidParameterValue.MemorySize"),
        ({"Timeout": 901}, "LimitExceeded.Timeout"),
        ({"Runtime": "Python4.0"}, "InvalidParameterValue.Runtime"),
        ({"Handler": "index"}, "InvalidParameterValue.Handler"),
        ({"Description": "Makes images (nightly)"}, "InvalidParameterValue.Description"),
        ({"Environment": {"Variables": [{"Key": "SCF_X", "Value": "1"}]}},
         "InvalidParameterValue.EnvironmentSystemProtect"),
        ({"Environment": {"Variables": [{"Key": "X", "Value": ""}]}}, "InvalidParameterValue.Environment"),
        ({"Environment": {"Variables": [{"Key": "X", "Value": "v" * 5000}]}},
         "InvalidParameterValue.EnvironmentExceededLimit"),
        ({"Code": {"ZipFile": "not base64!"}}, "InvalidParameterValue.ZipFileBase64BinasciiError"),
        ({"Code": {"ZipFile": base64.b64encode(b"plain text").decode()}}, "InvalidParameterValue.ZipFile"),
        ({"Code": {"CosBucketName": "b", "CosObjectName": "/c.zip"}}, "UnsupportedOperation"),
        ({"Code": {}}, "MissingParameter.Code"),
        ({"Namespace": "nowhere"}, "ResourceNotFound.Namespace"),
        ({"Type": "HTTP"}, "UnsupportedOperation"),
        ({"Layers": []}, "UnknownParameter"),
    ],
)
def test_create_errors(emu: Emulator, overrides: dict[str, Any], code: str) -> None:
    assert error_code(lambda: create(emu, **overrides)) == code


def test_create_twice_and_unknown_functions(emu: Emulator) -> None:
    create(emu)
    assert error_code(lambda: create(emu)) == "ResourceInUse.Function"
    for action, params in [("GetFunction", {}), ("UpdateFunctionConfiguration", {"Timeout": 5}),
                           ("DeleteFunction", {}), ("CreateTrigger", {"TriggerName": "t", "Type": "timer"})]:
        assert error_code(lambda a=action, p=params: call(emu, a, {"FunctionName": "nope", **p})) == (
            "ResourceNotFound.Function"), action
    assert call(emu, "ListTriggers", {"FunctionName": "nope"}).TotalCount == 0


def test_failed_deployments_and_delete(emu: Emulator) -> None:
    emu.scf.fail_next_deploy("fn", message="image pull failed")
    create(emu)
    emu.advance(1.5)
    failed = call(emu, "GetFunction", {"FunctionName": "fn"})
    assert failed.Status == "CreateFailed" and failed.StatusReasons[0].ErrorMessage == "image pull failed"
    assert error_code(lambda: invoke(emu, {})) == "FailedOperation.FunctionStatusError"
    call(emu, "DeleteFunction", {"FunctionName": "fn"})
    assert call(emu, "GetFunction", {"FunctionName": "fn"}).Status == "Deleting"
    emu.advance(1.5)
    assert error_code(lambda: call(emu, "GetFunction", {"FunctionName": "fn"})) == "ResourceNotFound.Function"

    create(emu)
    active(emu)
    emu.scf.fail_next_deploy()
    call(emu, "UpdateFunctionConfiguration", {"FunctionName": "fn", "MemorySize": 512})
    emu.advance(1.5)
    reverted = call(emu, "GetFunction", {"FunctionName": "fn"})
    assert (reverted.Status, reverted.MemorySize) == ("UpdateFailed", 128)
    call(emu, "UpdateFunctionConfiguration", {"FunctionName": "fn", "MemorySize": 512})  # allowed after a failure
    assert active(emu).MemorySize == 512


def test_timer_and_url_triggers(emu: Emulator) -> None:
    create(emu)
    assert error_code(lambda: timer(emu)) == "FailedOperation.CreateTrigger"  # still Creating
    active(emu)
    info = timer(emu, CustomArgument='{"InstanceId": "lhins-web00001"}', Description="managed by blueprint deploy")
    assert json.loads(info.TriggerInfo.TriggerDesc) == {"cron": "0 0 3 * * * *"}
    [listed] = call(emu, "ListTriggers", {"FunctionName": "fn"}).Triggers
    assert (listed.TriggerName, listed.Type, listed.Enable, listed.Qualifier) == ("nightly", "timer", 1, "$DEFAULT")
    assert (listed.CustomArgument, listed.Description) == ('{"InstanceId": "lhins-web00001"}',
                                                           "managed by blueprint deploy")
    assert error_code(lambda: timer(emu)) == "ResourceInUse.TriggerName"
    assert error_code(lambda: timer(emu, "six", "0 0 3 * * *")) == "InvalidParameterValue.TriggerDesc"
    assert error_code(lambda: timer(emu, "big", CustomArgument="x" * 4097)) == "InvalidParameterValue.CustomArgument"
    apigw = {"FunctionName": "fn", "TriggerName": "api", "Type": "apigw", "TriggerDesc": "{}"}
    assert error_code(lambda: call(emu, "CreateTrigger", apigw)) == "UnsupportedOperation.Trigger"

    url = url_trigger(emu)
    assert url.startswith(f"{emu.url}/_fn/")
    assert error_code(lambda: url_trigger(emu)) == "ResourceInUse.TriggerName"
    second = {"FunctionName": "fn", "TriggerName": "url2", "Type": "http", "Qualifier": "$DEFAULT",
              "TriggerDesc": json.dumps({"AuthType": "NONE", "NetConfig": {"EnableIntranet": True,
                                                                           "EnableExtranet": False}})}
    assert error_code(lambda: call(emu, "CreateTrigger", second)) == "ResourceInUse.Trigger"

    change = {"FunctionName": "fn", "TriggerName": "nightly", "Type": "timer", "TriggerDesc": "0 30 4 * * * *"}
    assert error_code(lambda: call(emu, "UpdateTrigger", change)) == "ResourceNotFound.Trigger"  # $LATEST default
    call(emu, "UpdateTrigger", {**change, "Qualifier": "$DEFAULT", "Enable": "CLOSE"})
    filtered = call(emu, "ListTriggers", {"FunctionName": "fn", "Filters": [{"Name": "TriggerName",
                                                                              "Values": ["nightly"]}]})
    assert [(t.TriggerDesc, t.Enable) for t in filtered.Triggers] == [('{"cron": "0 30 4 * * * *"}', 0)]
    gone = {"FunctionName": "fn", "TriggerName": "nightly", "Type": "timer", "Qualifier": "$DEFAULT"}
    call(emu, "DeleteTrigger", gone)
    assert error_code(lambda: call(emu, "DeleteTrigger", gone)) == "ResourceNotFound.Trigger"
    assert [t.TriggerName for t in call(emu, "ListTriggers", {"FunctionName": "fn"}).Triggers] == ["url"]


@pytest.mark.python310
def test_invoke_runs_the_deployed_package_in_a_fresh_interpreter(emu: Emulator) -> None:
    create(emu)
    active(emu)
    result = invoke(emu, {"InstanceId": "lhins-web00001"}, LogType="Tail")
    answer = json.loads(result.RetMsg)
    assert answer["event"] == {"InstanceId": "lhins-web00001"} and answer["version"] == "one"
    assert answer["isolated"] is True, "the emulator's own site-packages leaked into the function"
    env = answer["env"]
    assert env["GREETING"] == "hello" and env["SCF_FUNCTIONNAME"] == "fn" and env["TENCENTCLOUD_RUNENV"] == "SCF"
    assert (env["TENCENTCLOUD_SECRETID"], env["TENCENTCLOUD_SECRETKEY"]) == ("AKIDEMULATOR", "emulator-secret")
    assert env["BLUEPRINT_API_ENDPOINT"] == emu.url and env["TENCENTCLOUD_REGION"] == "ap-guangzhou"
    context = answer["context"]
    assert (context["function_name"], context["time_limit_in_ms"], context["memory_limit_in_mb"]) == ("fn", 30000, 128)
    assert context["request_id"] == result.FunctionRequestId
    assert "log line from the function" in result.Log and result.ErrMsg == ""
    assert "log line from the function" not in invoke(emu, {}).Log  # only with LogType Tail

    call(emu, "UpdateFunctionCode", {"FunctionName": "fn", "ZipFile": package("two")})
    assert json.loads(invoke(emu, {}).RetMsg)["version"] == "one"  # the previous code serves while Updating
    active(emu)
    assert json.loads(invoke(emu, {}).RetMsg)["version"] == "two"


@pytest.mark.python310
def test_deployed_failures_sync_and_async(emu: Emulator) -> None:
    create(emu, Role=None)
    active(emu)
    result = invoke(emu, {"raise": "no instance"})
    assert json.loads(result.ErrMsg)["errorMessage"] == "no instance" and result.RetMsg == ""
    assert "ValueError: no instance" in emu.scf.invocations[-1]["Log"]
    env = json.loads(invoke(emu, {}).RetMsg)["env"]
    assert "TENCENTCLOUD_SECRETID" not in env, "no role: SCF injects no credentials"
    invoke(emu, {"raise": "again"}, kind="Event")
    assert emu.scf.wait_idle(60)
    record = emu.scf.invocations[-1]
    assert (record["Attempts"], record["InvocationType"]) == (3, "Event") and "again" in record["Error"]


@pytest.mark.python310
def test_timer_fires_from_the_control_path(emu: Emulator) -> None:
    create(emu)
    active(emu)
    timer(emu, CustomArgument='{"Keep": 3}')
    reply = requests.post(f"{emu.url}/_emulator/scf/timer", json={"FunctionName": "fn", "TriggerName": "nightly"},
                          timeout=10)
    assert reply.status_code == 200 and reply.json()["FunctionRequestId"]
    assert emu.scf.wait_idle(60)
    record = emu.scf.invocations[-1]
    event = json.loads(record["ClientContext"])
    assert (event["Type"], event["TriggerName"], event["Message"]) == ("Timer", "nightly", '{"Keep": 3}')
    assert record["RequestSource"] == "TRIGGER_TIMER" and record["Error"] is None

    call(emu, "UpdateTrigger", {"FunctionName": "fn", "TriggerName": "nightly", "Type": "timer",
                                "Qualifier": "$DEFAULT", "Enable": "CLOSE"})
    closed = requests.post(f"{emu.url}/_emulator/scf/timer", json={"FunctionName": "fn", "TriggerName": "nightly"},
                           timeout=10)
    assert closed.status_code == 409 and "CLOSE" in closed.json()["error"]
    missing = requests.post(f"{emu.url}/_emulator/scf/timer", json={"FunctionName": "fn", "TriggerName": "x"},
                            timeout=10)
    assert missing.status_code == 400


@pytest.mark.python310
def test_function_url_turns_http_into_the_event_and_back(emu: Emulator) -> None:
    create(emu)
    active(emu)
    url = url_trigger(emu)
    echo = requests.post(f"{url}/release/blueprints?a=1&a=2&b=x", data=b'{"k": 1}',
                         headers={"X-Custom": "yes", "Content-Type": "application/json"}, timeout=30)
    assert echo.status_code == 200 and echo.headers["Content-Type"] == "application/json"
    event = echo.json()["event"]
    assert (event["httpMethod"], event["path"], event["body"]) == ("POST", "/release/blueprints", '{"k": 1}')
    assert event["queryString"] == {"a": ["1", "2"], "b": "x"} and "requestContext" not in event
    assert event["headers"]["x-custom"] == "yes" and event["headers"]["x-scf-remote-addr"] == "127.0.0.1"

    integrated = {"statusCode": 201, "headers": {"Content-Type": "text/plain", "X-Many": ["1", "2"]},
                  "body": base64.b64encode(b"made").decode(), "isBase64Encoded": True}
    reply = requests.put(url, json=integrated, timeout=30)  # the echo handler answers with it
    assert (reply.status_code, reply.text, reply.headers["Content-Type"]) == (201, "made", "text/plain")
    assert reply.headers["X-Many"] == "1, 2"
    assert requests.get(f"{emu.url}/_fn/nothere", timeout=10).status_code == 404


def test_function_url_with_cam_auth_refuses_unsigned_requests(emu: Emulator) -> None:
    create(emu)
    active(emu)
    url = url_trigger(emu, auth="CAM")
    assert requests.get(url, timeout=10).status_code == 403
    assert emu.scf.invocations == []


def test_no_interpreter_for_the_runtime_is_a_clear_error() -> None:
    with Emulator(rate_limits=False, function_seconds=0, runtimes={"Python3.10": "/nonexistent/python3.10"}) as emu:
        create(emu)
        emu.advance(0.1)
        with pytest.raises(Exception, match=r"No working `python3.10`.*--runtime Python3.10="):
            invoke(emu, {})
        assert error_code(lambda: invoke(emu, {})) == "FailedOperation.InvokeFunction"
    emu.scf.shutdown()


def test_deploy_actions_are_rate_limited_and_take_faults() -> None:
    assert {a: DEFAULT_LIMITS[a] for a in ("CreateFunction", "GetFunction", "UpdateFunctionCode",
                                            "CreateTrigger", "DeleteTrigger")} == dict.fromkeys(
        ("CreateFunction", "GetFunction", "UpdateFunctionCode", "CreateTrigger", "DeleteTrigger"), 100)
    with Emulator(rate_limits={"GetFunction": 2}, runtimes={"Python3.10": python310() or sys.executable}) as emu:
        create(emu)
        codes = [error_code(lambda: call(emu, "GetFunction", {"FunctionName": "nope"})) for _ in range(3)]
        assert codes == ["ResourceNotFound.Function", "ResourceNotFound.Function", "RequestLimitExceeded"]
        emu.faults.fail("UpdateFunctionConfiguration", "UnauthorizedOperation.CAM", message="no scf:Update")
        assert error_code(lambda: call(emu, "UpdateFunctionConfiguration", {"FunctionName": "fn"})) == (
            "UnauthorizedOperation.CAM")
        state = requests.get(f"{emu.url}/_emulator/state", timeout=10).json()
        assert [f["FunctionName"] for f in state["functions"]] == ["blueprint-next", "fn"]
    emu.scf.shutdown()
