"""TDMQ CMQ SendCmqMsg/PublishCmqMsg and SCF Invoke through the real SDK."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from emu_helpers import error_code, scf, tdmq
from tencentcloud.scf.v20180416 import models as scf_models
from tencentcloud.tdmq.v20200217 import models as tdmq_models

from emulator import Emulator


def send(emu: Emulator, queue: str, content: str, delay: int = 0) -> Any:
    req = tdmq_models.SendCmqMsgRequest()
    req.QueueName, req.MsgContent, req.DelaySeconds = queue, content, delay
    return tdmq(emu).SendCmqMsg(req)


def publish(emu: Emulator, topic: str, content: str, tags: list[str] | None = None) -> Any:
    req = tdmq_models.PublishCmqMsgRequest()
    req.TopicName, req.MsgContent, req.MsgTag = topic, content, tags
    return tdmq(emu).PublishCmqMsg(req)


def invoke(emu: Emulator, name: str, event: Any = None, kind: str = "RequestResponse", raw: str | None = None) -> Any:
    req = scf_models.InvokeRequest()
    req.FunctionName, req.InvocationType = name, kind
    req.ClientContext = raw if raw is not None else (json.dumps(event) if event is not None else None)
    return scf(emu).Invoke(req).Result


def test_send_cmq_message_is_kept(emu: Emulator) -> None:
    reply = send(emu, "blueprint-results", '{"ok": true}', 5)
    assert reply.Result is True and reply.MsgId
    [msg] = emu.tdmq.queue_messages("blueprint-results")
    assert (msg["MsgId"], msg["MsgContent"], msg["DelaySeconds"], msg["Region"]) == (
        reply.MsgId,
        '{"ok": true}',
        5,
        "ap-guangzhou",
    )


def test_publish_cmq_message_is_kept(emu: Emulator) -> None:
    publish(emu, "blueprint-events", "done", ["image", "ok"])
    [msg] = emu.tdmq.topic_messages("blueprint-events")
    assert (msg["MsgContent"], msg["MsgTag"]) == ("done", ["image", "ok"])


def test_cmq_errors(emu: Emulator) -> None:
    assert error_code(lambda: send(emu, "nope", "x")) == "ResourceNotFound"
    assert error_code(lambda: publish(emu, "nope", "x")) == "ResourceNotFound"
    big = "é" * (512 * 1024 + 1)  # 1 MiB + 2 bytes of UTF-8, fewer characters
    assert error_code(lambda: send(emu, "blueprint-results", big)) == "FailedOperation.MaxMessageSizeError"
    assert error_code(lambda: publish(emu, "blueprint-events", "x", ["t" * 65])) == "InvalidParameterValue"
    emu.tdmq.add_queue("later")
    send(emu, "later", "x")
    assert len(emu.tdmq.queue_messages("later")) == 1


def test_send_cmq_requires_delay_seconds(emu: Emulator) -> None:
    req = tdmq_models.SendCmqMsgRequest()
    req.QueueName, req.MsgContent = "blueprint-results", "x"
    assert error_code(lambda: tdmq(emu).SendCmqMsg(req)) == "MissingParameter"


def test_invoke_record_only(emu: Emulator) -> None:
    result = invoke(emu, "blueprint-next", {"a": 1})
    assert result.FunctionRequestId and result.ErrMsg == ""
    [call] = emu.scf.invocations
    assert (call["FunctionName"], call["Namespace"], call["Qualifier"], call["ClientContext"]) == (
        "blueprint-next",
        "default",
        "$LATEST",
        '{"a": 1}',
    )


def test_invoke_runs_registered_callable_synchronously(emu: Emulator) -> None:
    seen: list[tuple[Any, Any]] = []

    def handler(event: dict[str, Any], context: dict[str, Any]) -> Any:
        seen.append((event, context))
        return {"got": event["n"]}

    emu.scf.register("blueprint-next", handler)
    result = invoke(emu, "blueprint-next", {"n": 7})
    assert json.loads(result.RetMsg) == {"got": 7}
    assert result.InvokeResult == 0 and result.Log == ""
    event, context = seen[0]
    assert event == {"n": 7}
    assert context["function_name"] == "blueprint-next" and context["time_limit_in_ms"] == 900000
    assert context["tencentcloud_region"] == "ap-guangzhou" and context["request_id"] == result.FunctionRequestId


def test_invoke_string_return_and_exception(emu: Emulator) -> None:
    emu.scf.register("blueprint-next", lambda event, context: "plain")
    assert invoke(emu, "blueprint-next", {}).RetMsg == "plain"

    def broken(event: dict[str, Any], context: dict[str, Any]) -> Any:
        raise RuntimeError("boom")

    emu.scf.register("blueprint-next", broken)
    result = invoke(emu, "blueprint-next", {})
    assert "boom" in result.ErrMsg
    assert "boom" in emu.scf.invocations[-1]["Error"]


def test_event_invocation_runs_in_background_with_retries(emu: Emulator) -> None:
    attempts: list[int] = []
    release = threading.Event()

    def flaky(event: dict[str, Any], context: dict[str, Any]) -> Any:
        release.wait(5)
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("try again")
        return "ok"

    emu.scf.register("blueprint-next", flaky)
    result = invoke(emu, "blueprint-next", {"x": 1}, kind="Event")
    assert result.FunctionRequestId and result.RetMsg is None
    release.set()
    assert emu.scf.wait_idle(5)
    assert len(attempts) == 3
    record = emu.scf.invocations[-1]
    assert (record["Attempts"], record["Error"]) == (3, None)


def test_event_without_retries() -> None:
    with Emulator(rate_limits=False, retry_events=False) as emu:
        calls: list[int] = []

        def broken(event: dict[str, Any], context: dict[str, Any]) -> Any:
            calls.append(1)
            raise ValueError("no")

        emu.scf.register("blueprint-next", broken)
        invoke(emu, "blueprint-next", {}, kind="Event")
        assert emu.scf.wait_idle(5)
        assert len(calls) == 1
    emu.scf.shutdown()


@pytest.mark.parametrize(
    ("name", "kind", "raw", "code"),
    [
        ("nope", "RequestResponse", "{}", "ResourceNotFound.Function"),
        ("blueprint-next", "Event", json.dumps({"x": "a" * 131072}), "InvalidParameterValue.ClientContext"),
        (
            "blueprint-next",
            "RequestResponse",
            json.dumps({"x": "a" * (6 * 1048576)}),
            "InvalidParameterValue.ClientContext",
        ),
        ("blueprint-next", "Sometimes", "{}", "InvalidParameterValue"),
        ("blueprint-next", "RequestResponse", "not json", "InvalidParameterValue.Param"),
    ],
)
def test_invoke_errors(emu: Emulator, name: str, kind: str, raw: str, code: str) -> None:
    assert error_code(lambda: invoke(emu, name, kind=kind, raw=raw)) == code


def test_function_in_other_namespace(emu: Emulator) -> None:
    emu.scf.add_function("blueprint-next", namespace="ops")
    req = scf_models.InvokeRequest()
    req.FunctionName, req.Namespace = "blueprint-next", "ops"
    scf(emu).Invoke(req)
    assert emu.scf.invocations[-1]["Namespace"] == "ops"
