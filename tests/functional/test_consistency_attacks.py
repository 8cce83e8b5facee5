"""Issue 15 attacked: the commands around images under lost answers, failed calls, replays, odd fleets and
hostile jobs, against the emulator with the real SDKs.

The promises checked: a pre-command never runs twice without its post-command in between; the post-command
runs whenever the pre-command may have run, and not before the pre-command ended when that can be known;
at most one image per slot; every failure is reported; nothing is left paused without the pause mark.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from blueprint.app import build_app
from blueprint.errors import BlueprintError
from emulator import Emulator
from tests.conftest import EmuClock, base_env, context, http_event, received_events, timer_event
from tests.functional.test_chained_calls import FN, recorded_calls
from tests.functional.test_consistency import COMMANDS, JOB, POST, PRE, STOPPED, WEB, contents, paused, runs, types
from tests.functional.test_recovery import RESTORE_TOKEN, backup
from tests.functional.test_recovery import post as restore_post


@pytest.fixture
def app(make_app, emu):
    return make_app(clock=EmuClock(emu), **COMMANDS)


def day(n: int) -> str:
    return f"2026-11-{n:02d}T03:00:00Z"


def managed_images(emu, instance: str = WEB) -> list[dict[str, Any]]:
    return [b for b in emu.lighthouse.blueprints("ap-guangzhou")
            if any(t["Key"] == "scf-blueprint:instance" and t["Value"] == instance for t in b["Tags"])]


# ---- PostAfter "ready" ------------------------------------------------------------------------------------

def test_post_after_ready_still_prunes_to_keep(app, emu) -> None:
    # The images come back NORMAL from the quiescer: retention must still see them as made by this run.
    for n in (27, 28, 29):
        emu.advance(86_400)
        answer = app.handle(timer_event({**JOB, "PostAfter": "ready", "Keep": 1}, time_=day(n)), context())
        assert answer["Results"][0]["State"] == "NORMAL"
    assert len(managed_images(emu)) == 1
    assert contents(emu) == [PRE, POST] * 3



def test_post_after_ready_says_so_when_time_ran_out_before_normal(receiver) -> None:
    # The post-command runs anyway (never left paused by the time limit); the result must not pass for one whose
    # post-command waited for NORMAL.
    with Emulator(image_seconds=600) as emu:
        app = build_app({**base_env(emu, receiver), **COMMANDS}, clock=EmuClock(emu))
        answer = app.handle(timer_event({**JOB, "PostAfter": "ready"}), context(time_limit_in_ms=120_000))
        [result] = answer["Results"]
        assert result["State"] == "CREATING" and "before the image was NORMAL" in result["Reason"]
        assert contents(emu) == [PRE, POST]
        assert runs(emu)[1]["Start"] < emu.calls_of("CreateBlueprint")[0].time + 600

# ---- the pre-command's end is not known ------------------------------------------------------------------

def alternates(sequence: list[str]) -> bool:
    """Never two pre-commands without a post-command in between."""
    last = None
    for content in sequence:
        if content == PRE and last == PRE:
            return False
        last = content if content in (PRE, POST) else last
    return True


def post_started_after_every_pre_ended(emu) -> bool:
    """The last post-command started once every pre-command before it had ended."""
    done = runs(emu)
    last_post = max((r for r in done if r["Content"] == POST), key=lambda r: r["Start"])
    return all(r["End"] is not None and r["End"] <= last_post["Start"] for r in done
               if r["Content"] == PRE and r["Created"] <= last_post["Created"])


@pytest.mark.parametrize("fault", ["lost answer", "dropped before", "InternalError"])
def test_a_pre_command_start_that_may_have_run_keeps_the_mark_and_asks_for_a_retry(app, emu, fault: str) -> None:
    # RunCommand has no idempotency token: after a lost answer the pre-command may be running (5 s here), and the
    # post-command of this run may come before its end. The mark stays and the platform's retry resumes it.
    emu.tat.script(WEB, duration=5, match="fsfreeze -f", times=1)
    if fault == "InternalError":
        emu.faults.fail("RunCommand", "InternalError", times=1)
    else:
        emu.faults.drop("RunCommand", after=fault == "lost answer", times=1)
    with pytest.raises(BlueprintError) as raised:
        app.handle(timer_event(JOB), context())
    assert raised.value.retryable
    assert contents(emu)[-1] == POST and emu.calls_of("CreateBlueprint") == []
    assert paused(emu) is not None  # the pre-command may outlive this post-command: the next run thaws again
    emu.advance(10)
    answer = app.handle(timer_event(JOB), context())  # SCF's retry of the same slot
    assert answer["Results"][0]["BlueprintId"].startswith("lhbp-")
    assert contents(emu)[-3:] == [POST, PRE, POST] and alternates(contents(emu))
    assert post_started_after_every_pre_ended(emu)
    assert len(managed_images(emu)) == 1 and paused(emu) is None


@pytest.mark.parametrize("code", ["InternalError", "RequestLimitExceeded"])
def test_a_poll_that_fails_once_does_not_abandon_the_pre_command(app, emu, code: str) -> None:
    # A transient error reading the tasks used to end the wait: "could not be started", the post-command ran at
    # once while the pre-command went on running, and the mark was removed.
    emu.tat.script(WEB, duration=5, match="fsfreeze -f")
    emu.faults.fail("DescribeInvocationTasks", code, times=1)
    answer = app.handle(timer_event(JOB), context())
    assert answer["Results"][0]["BlueprintId"].startswith("lhbp-") and "Error" not in answer["Results"][0]
    assert contents(emu) == [PRE, POST] and post_started_after_every_pre_ended(emu)
    assert paused(emu) is None


def test_a_pre_command_that_cannot_be_followed_is_cancelled_before_the_post_command(app, emu) -> None:
    emu.tat.script(WEB, duration=500, match="fsfreeze -f")
    emu.faults.fail("DescribeInvocationTasks", "InternalError", times=10_000)
    with pytest.raises(BlueprintError) as raised:  # the cloud, not the command, cut it short: a retry can help
        app.handle(timer_event(JOB), context(time_limit_in_ms=80_000))  # gives up before TAT's own 60 s timeout
    assert raised.value.code == "FailedOperation.PreCommandFailed" and raised.value.retryable
    pre, post = runs(emu)
    assert pre["TaskStatus"] == "TERMINATED" and pre["End"] <= post["Start"]
    assert emu.calls_of("CreateBlueprint") == []
    assert paused(emu) is not None  # the post-command's end could not be read either: it runs again next time


def test_a_pre_command_that_cannot_be_cancelled_keeps_the_mark(make_app, emu) -> None:
    emu.tat.script(WEB, duration=500, match="fsfreeze -f", times=1)
    emu.faults.fail("CancelInvocation", "InternalError", times=10_000)
    app = make_app(clock=EmuClock(emu), BLUEPRINT_COMMAND_TIMEOUT="600", **COMMANDS)
    with pytest.raises(BlueprintError) as raised:
        app.handle(timer_event(JOB), context(time_limit_in_ms=120_000))
    assert raised.value.retryable
    pre, post = runs(emu)
    assert pre["TaskStatus"] == "RUNNING" and post["TaskStatus"] == "SUCCESS"  # it went on after the post-command
    assert paused(emu) is not None
    emu.faults.clear()
    emu.advance(600)
    app.handle(timer_event(JOB), context(time_limit_in_ms=120_000))
    assert contents(emu) == [PRE, POST, POST, PRE, POST] and post_started_after_every_pre_ended(emu)
    assert paused(emu) is None and len(managed_images(emu)) == 1



def test_a_post_command_whose_start_fails_once_still_runs_in_the_same_invocation(app, emu) -> None:
    emu.faults.fail("RunCommand", "InternalError", times=1, skip=1)  # the post-command's RunCommand
    try:
        app.handle(timer_event(JOB), context())
    except BlueprintError as err:  # or the invocation asks the platform for a retry, which resumes
        assert err.retryable
        app.handle(timer_event(JOB), context())
    assert contents(emu)[-1] == POST and paused(emu) is None

# ---- reads that fail ------------------------------------------------------------------------------------

def test_an_agent_check_that_fails_once_is_made_again(app, emu) -> None:
    emu.faults.fail("DescribeAutomationAgentStatus", "InternalError", times=1)
    answer = app.handle(timer_event(JOB), context())
    assert answer["Results"][0]["BlueprintId"].startswith("lhbp-")
    assert contents(emu) == [PRE, POST]


def test_an_agent_check_that_keeps_failing_loses_no_other_result(app, emu, receiver) -> None:
    # The stopped instance's image is made before the agents are asked about: it must be reported as made.
    emu.faults.fail("DescribeAutomationAgentStatus", "InternalError", times=100)
    with pytest.raises(BlueprintError):
        app.handle(timer_event({"InstanceIds": [WEB, STOPPED]}), context())
    made = {e["subject"]: e for e in received_events(receiver) if e["type"].endswith(".created")}
    failed = {e["subject"]: e for e in received_events(receiver) if e["type"].endswith(".failed")}
    assert set(made) == {STOPPED} and made[STOPPED]["data"]["Consistency"] == "power-off"
    assert set(failed) == {WEB} and failed[WEB]["data"]["Error"]["Code"] == "InternalError"
    assert runs(emu) == [] and paused(emu) is None


def test_a_follow_that_fails_before_the_post_command_keeps_the_image_result(app, emu, receiver) -> None:
    emu.faults.fail("DescribeBlueprints", "InternalError", times=100, skip=1)  # the slot lookup passes
    answer = app.handle(timer_event({**JOB, "PostAfter": "ready"}), context())
    assert contents(emu) == [PRE, POST] and paused(emu) is None
    [image] = managed_images(emu)
    assert answer["Results"][0]["BlueprintId"] == image["BlueprintId"] and "Error" not in answer["Results"][0]
    created = [e for e in received_events(receiver) if e["type"].endswith(".created")]
    assert [e["data"]["BlueprintId"] for e in created] == [image["BlueprintId"]]


# ---- the pause mark ---------------------------------------------------------------------------------------

def test_a_mark_left_on_an_instance_that_was_stopped_since_does_not_block_its_images(app, emu) -> None:
    # A stop ends whatever the pre-command paused; the post-command cannot run on a stopped server anyway, so
    # the mark used to fail every later run of the instance with "the post-command of an earlier run".
    emu.tat.script(WEB, exit_code=1, match="fsfreeze -u", times=1)
    app.handle(timer_event(JOB), context())
    assert paused(emu) is not None
    emu.advance(120)
    emu.lighthouse.set_instance_state(WEB, "STOPPED")
    emu.advance(86_400)
    answer = app.handle(timer_event(JOB, time_=day(28)), context())
    [result] = answer["Results"]
    assert result["BlueprintId"].startswith("lhbp-") and result["Consistency"] == "power-off"
    assert paused(emu) is None and contents(emu) == [PRE, POST]


FREEZE, THAW = "fsfreeze -f /srv", "fsfreeze -u /srv"


@pytest.fixture
def named(make_app, emu):
    """An app with the configured pair and four allowed TAT commands."""
    for content, command_id in ((FREEZE, "cmd-frz00001"), (THAW, "cmd-thw00001"), ("sync", "cmd-sync0001"),
                                ("echo done", "cmd-echo0001")):
        emu.tat.add_command(content, CommandId=command_id)
    return make_app(clock=EmuClock(emu), BLUEPRINT_ALLOWED_COMMANDS="cmd-frz00001:cmd-thw00001,cmd-sync0001,"
                                                                   "cmd-echo0001", **COMMANDS)


@pytest.mark.parametrize(("first", "then", "expected"), [
    ({}, {"PreCommand": "cmd-sync0001", "PostCommand": "cmd-echo0001"}, [PRE, POST, POST, "sync", "echo done"]),
    ({}, {"PreCommand": "cmd-frz00001"}, [PRE, POST, POST, FREEZE, THAW]),
    ({"PreCommand": "cmd-frz00001", "PostCommand": "cmd-thw00001"}, {}, [FREEZE, THAW, THAW, PRE, POST]),
], ids=["configured-then-named", "configured-then-pre-only", "named-then-configured"])
def test_a_pause_is_resumed_with_the_post_command_of_the_run_that_paused(named, emu, first, then, expected) -> None:
    # The resume used to run the new job's post-command (or none at all, for a job without one): the server
    # stayed frozen, the mark was removed, and a new pre-command ran on top.
    emu.tat.script(WEB, exit_code=1, match="fsfreeze -u", times=1)
    named.handle(timer_event({**JOB, **first}), context())
    assert paused(emu) is not None
    emu.advance(86_400)
    named.handle(timer_event({**JOB, **then}, time_=day(28)), context())
    assert contents(emu) == expected
    assert paused(emu) is None


@pytest.mark.parametrize("job", [{"PreCommand": "cmd-frz00001"},
                                 {"PreCommand": "cmd-thw00001", "PostCommand": "cmd-frz00001"}],
                         ids=["pre-only", "swapped"])
def test_a_job_cannot_leave_a_server_frozen_without_a_mark(named, emu, job) -> None:
    # The operator lists freeze:thaw as a pair: the freeze never runs without its thaw, the thaw never pauses.
    named.handle(timer_event({**JOB, **job}), context())
    ran = contents(emu)
    assert not ran or ran[-1] != FREEZE or paused(emu) is not None
    assert FREEZE not in ran or ran[ran.index(FREEZE) + 1] == THAW


# ---- time ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("limit", [30, 45, 50, 60, 120])
def test_a_short_time_limit_never_starts_a_pre_command_it_must_give_up_at_once_nor_hands_on_forever(
        make_app, emu, limit: int) -> None:
    # 45-50 s used to start the pre-command with no time to wait for it (cancelled at once: no image); under 38 s
    # every invocation handed the instance on to a child with the same limit, which handed it on again.
    emu.scf.add_function(FN)
    app = make_app(clock=EmuClock(emu), **COMMANDS)
    answer = app.handle(timer_event(JOB), context(time_limit_in_ms=limit * 1000))
    for _ in range(3):  # each child as SCF would deliver it, with the same time limit
        calls = recorded_calls(emu)
        emu.scf.invocations.clear()
        answer = next((app.handle(c["event"], {**c["context"], "time_limit_in_ms": limit * 1000}) for c in calls),
                      answer)
    assert recorded_calls(emu) == []
    [result] = answer["Results"]
    if result.get("BlueprintId"):
        assert contents(emu) == [PRE, POST] and "Error" not in result
    else:
        assert runs(emu) == [] and "time limit" in result["Error"]["Message"]
    assert paused(emu) is None


# ---- secrets --------------------------------------------------------------------------------------------------

def test_a_secret_cut_by_tats_24_kib_limit_is_not_shown_in_part(make_app, emu, receiver, log_stream) -> None:
    # TAT keeps the first 24 KiB of the output: a secret printed across that edge arrives as its first characters,
    # which no whole-secret redaction catches.
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    app = make_app(clock=EmuClock(emu), BLUEPRINT_WEBHOOK_SECRET=secret, **COMMANDS)
    emu.tat.script(WEB, exit_code=1, output="x" * (24 * 1024 - 30) + secret + "\n", match="fsfreeze -f")
    answer = app.handle(timer_event(JOB), context())
    output = answer["Results"][0]["Command"]["Output"]
    assert output.startswith("x") and output.endswith("***")
    part = secret[6:30]  # the key's first 24 characters (whsec_ is no secret)
    for seen in (str(answer), str(received_events(receiver)), log_stream.getvalue()):
        assert part not in seen



def test_a_secret_printed_by_both_commands_is_redacted_everywhere(make_app, emu, receiver, log_stream) -> None:
    secret = "whsec_" + base64.b64encode(b"fedcba9876543210fedcba9876543210").decode()
    app = make_app(clock=EmuClock(emu), BLUEPRINT_WEBHOOK_SECRET=secret, BLUEPRINT_PRE_COMMAND=f"echo {PRE}",
                   BLUEPRINT_POST_COMMAND=POST)
    for match in ("echo", "fsfreeze -u"):
        emu.tat.script(WEB, exit_code=1, output=f"token={secret}\n", error_info=f"agent said {secret}", match=match)
    response = app.handle(http_event(body=JOB), context())
    assert response["statusCode"] == 502 and "***" in response["body"]
    for seen in (response["body"], str(received_events(receiver)), log_stream.getvalue()):
        assert secret not in seen and secret[6:] not in seen and "echo fsfreeze" not in seen

# ---- restores -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("broken", ["agent offline", "pre-command fails"])
def test_a_restore_does_not_depend_on_the_commands_of_the_server_it_repairs(make_app, emu, broken: str) -> None:
    # The safety image is made just before the disk is formatted: the server goes down anyway, and a server that
    # needs a restore is the one whose agent or database (and so its pre-command) is likely broken.
    app = make_app(clock=EmuClock(emu), BLUEPRINT_RESTORE="on", BLUEPRINT_RESTORE_TOKEN=RESTORE_TOKEN, **COMMANDS)
    image = backup(app, emu)
    emu.tat.clear_scripts()
    emu.reset_calls()
    if broken == "agent offline":
        emu.tat.set_agent(WEB, agent_status="Offline")
    else:
        emu.tat.script(WEB, exit_code=1, output="mysql: can't connect\n", match="fsfreeze -f")
    status, body = restore_post(app, "/restores", {"InstanceId": WEB, "BlueprintId": image}, token=RESTORE_TOKEN)
    assert status == 202, body
    assert body["SafetyImage"]["State"] == "NORMAL" and body["SafetyImage"]["Consistency"] == "power-off"
    assert emu.lighthouse.resets(WEB)[0]["Result"] == "SUCCESS"
    assert emu.calls_of("RunCommand") == [] and paused(emu) is None


# ---- what callers are told --------------------------------------------------------------------------------------

def test_an_http_caller_is_told_when_the_post_command_failed_too(app, emu) -> None:
    # The pre-command failed (no image: an error answer) and so did the post-command: the caller must learn that
    # the application may still be paused, not only that no image was made.
    emu.tat.script(WEB, exit_code=3, match="fsfreeze -f")
    emu.tat.script(WEB, exit_code=1, output="still frozen\n", match="fsfreeze -u")
    response = app.handle(http_event(body=JOB), context())
    body = orjson.loads(response["body"])
    assert response["statusCode"] == 502 and body["Error"]["Code"] == "FailedOperation.PreCommandFailed"
    [post] = body["Beside"]
    assert post["Error"]["Code"] == "FailedOperation.PostCommandFailed" and post["Command"]["Phase"] == "post"
    assert paused(emu) is not None


# ---- what held: every call failing once, before or after it acts ---------------------------------------------

def unpaused_without_mark(emu) -> bool:
    """A pre-command ran with no successful post-command starting after its end, yet the mark is gone."""
    done = runs(emu)
    thawed = [r["Start"] for r in done if r["Content"] == POST and r["TaskStatus"] == "SUCCESS"]
    open_pauses = [r for r in done if r["Content"] == PRE and r["Start"] is not None
                   and not any(start >= (r["End"] or float("inf")) for start in thawed)]
    return bool(open_pauses) and paused(emu) is None


CALLS = ["DescribeInstances", "DescribeAutomationAgentStatus", "TagResources", "RunCommand", "DescribeInvocationTasks",
         "CreateBlueprint", "UnTagResources", "DescribeBlueprints"]


@pytest.mark.parametrize("skip", [0, 1], ids=["first-call", "second-call"])
@pytest.mark.parametrize("fault", ["fail", "drop-before", "drop-after"])
@pytest.mark.parametrize("action", CALLS)
def test_every_call_failing_once_keeps_the_promises(app, emu, receiver, action: str, fault: str, skip: int) -> None:  # noqa: PLR0917
    if fault == "fail":
        emu.faults.fail(action, "InternalError", times=1, skip=skip)
    else:
        emu.faults.drop(action, after=fault == "drop-after", times=1, skip=skip)
    for _ in range(3):  # the invocation, and SCF's two retries while it raises a retryable error
        try:
            app.handle(timer_event(JOB), context())
            break
        except BlueprintError as err:
            assert err.retryable
            emu.advance(30)
    assert len(managed_images(emu)) <= 1
    assert alternates(contents(emu)) and not unpaused_without_mark(emu)
    reported = {e["type"].rsplit(".", 1)[1] for e in received_events(receiver)}
    assert reported & {"created", "ready", "failed"}
    if not managed_images(emu):
        assert "failed" in reported


# ---- what held: replays, chained calls, triggers ----------------------------------------------------------------

def test_the_same_http_request_in_two_warm_containers_runs_the_commands_once(make_app, emu) -> None:
    first, second = (make_app(clock=EmuClock(emu), **COMMANDS) for _ in range(2))
    headers = {"Idempotency-Key": "nightly-42"}
    answers = [a.handle(http_event(body=JOB, headers=headers), context()) for a in (first, second, first)]
    assert [r["statusCode"] for r in answers] == [202] * 3
    assert len({orjson.loads(r["body"])["BlueprintId"] for r in answers}) == 1
    assert contents(emu) == [PRE, POST]


def test_a_queue_record_redelivered_to_another_container_runs_the_commands_once(make_app, emu) -> None:
    record = {"Records": [{"CMQ": {"msgId": "m-1", "msgBody": orjson.dumps({**JOB, "PostAfter": "ready"}).decode()}}]}
    for app in (make_app(clock=EmuClock(emu), **COMMANDS), make_app(clock=EmuClock(emu), **COMMANDS)):
        answer = app.handle(record, context())
        assert answer["Records"][0]["Results"][0]["State"] == "NORMAL"
    assert contents(emu) == [PRE, POST] and len(managed_images(emu)) == 1


def test_a_function_url_request_runs_the_commands(app, emu) -> None:
    response = app.handle(http_event(body=JOB, apigw=False), context())
    assert response["statusCode"] == 202 and orjson.loads(response["body"])["Consistency"] == "commands"
    assert contents(emu) == [PRE, POST]


def test_a_fan_out_runs_commands_only_in_its_children_and_once_per_child(app, emu) -> None:
    emu.scf.add_function(FN)
    parent = app.handle(timer_event({"InstanceIds": [WEB, "lhins-db000001"], "Dispatch": "invoke"}), context())
    assert parent["Dispatched"] == 2 and emu.calls_of("RunCommand") == []
    calls = recorded_calls(emu)
    for _ in range(2):  # SCF may deliver each child twice
        for call in calls:
            app.handle(call["event"], call["context"])
    assert contents(emu) == [PRE, POST] and contents(emu, "lhins-db000001") == [PRE, POST]
    assert len(managed_images(emu)) == 1 and len(managed_images(emu, "lhins-db000001")) == 1


def test_a_wait_follow_up_runs_no_command(receiver) -> None:
    with Emulator(image_seconds=600) as emu:  # the image takes longer than the function may wait
        emu.scf.add_function(FN)
        app = build_app({**base_env(emu, receiver), **COMMANDS}, clock=EmuClock(emu))
        first = app.handle(timer_event({**JOB, "Wait": True}), context(time_limit_in_ms=120_000))
        assert first["Dispatched"] == 1 and contents(emu) == [PRE, POST]
        [call] = recorded_calls(emu)
        assert call["event"]["Kind"] == "follow"
        emu.advance(600)
        assert app.handle(call["event"], call["context"])["Results"][0]["State"] == "NORMAL"
        assert contents(emu) == [PRE, POST]
        assert types(receiver)[-1] == "ready"


def test_a_dry_run_runs_nothing_even_on_a_paused_instance(app, emu) -> None:
    emu.tat.script(WEB, exit_code=1, match="fsfreeze -u", times=1)
    app.handle(timer_event(JOB), context())
    mark = paused(emu)
    answer = app.handle(timer_event({**JOB, "DryRun": True}, time_=day(28)), context())
    assert answer["Results"][0]["DryRun"] is True
    assert contents(emu) == [PRE, POST] and paused(emu) == mark


def test_a_mixed_fleet_in_two_regions_gets_one_honest_result_each(make_app, emu, receiver) -> None:
    tags = [{"Key": "tier", "Value": "web"}]
    for instance, state in (("lhins-offl0001", "RUNNING"), ("lhins-stpd0001", "STOPPED"), ("lhins-deny0001", "RUNNING"),
                            ("lhins-fail0001", "RUNNING"), ("lhins-good0001", "RUNNING")):
        emu.lighthouse.add_instance(instance, Tags=tags, InstanceState=state)
    emu.lighthouse.add_instance("lhins-shgd0001", Region="ap-shanghai", Tags=tags)
    emu.lighthouse.add_instance("lhins-shna0001", Region="ap-shanghai", Tags=tags)
    emu.tat.set_agent("lhins-offl0001", agent_status="Offline")
    emu.tat.set_agent("lhins-shna0001", installed=False)
    emu.tat.script("lhins-fail0001", exit_code=2, match="fsfreeze -f")
    allowed = "lhins-offl0001,lhins-stpd0001,lhins-fail0001,lhins-good0001,lhins-shgd0001,lhins-shna0001"
    app = make_app(clock=EmuClock(emu), BLUEPRINT_ALLOWED_INSTANCES=allowed, **COMMANDS)
    answer = app.handle(timer_event({"Selector": {"Regions": ["ap-guangzhou", "ap-shanghai"], "Tags": tags}}),
                        context())
    outcome = {r["InstanceId"]: (r.get("Consistency"), (r.get("Error") or {}).get("Code", "made"))
               for r in answer["Results"]}
    assert outcome == {
        "lhins-offl0001": ("commands", "ResourceUnavailable.AgentStatusNotOnline"),
        "lhins-stpd0001": ("power-off", "made"),
        "lhins-deny0001": ("commands", "UnauthorizedOperation.InstanceNotAllowed"),
        "lhins-fail0001": ("commands", "FailedOperation.PreCommandFailed"),
        "lhins-good0001": ("commands", "made"),
        "lhins-shgd0001": ("commands", "made"),
        "lhins-shna0001": ("commands", "ResourceUnavailable.AgentStatusNotOnline"),
    }
    for instance in ("lhins-offl0001", "lhins-stpd0001", "lhins-deny0001", "lhins-shna0001"):
        assert runs(emu, instance) == []
    for instance in ("lhins-fail0001", "lhins-good0001", "lhins-shgd0001"):
        assert contents(emu, instance) == [PRE, POST] and paused(emu, instance) is None
    ids = [e["id"] for e in received_events(receiver)]
    assert len(ids) == len(set(ids))


# ---- what held: hostile jobs ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("extra", "status"), [
    ({"PreCommand": "cmd-allowed1\n"}, 403), ({"PreCommand": "cmd-allowed1 "}, 403),
    ({"PreCommand": "\uff43md-allowed1"}, 403), ({"PreCommand": "$(reboot)"}, 403),
    ({"PostCommand": "cmd-allowed1;reboot"}, 403), ({"PreCommand": "cmd-allowed1\u0000"}, 403),
    ({"PreCommand": "\u202ecmd-allowed1"}, 403), ({"PreCommand": ""}, 400), ({"PreCommand": ["cmd-allowed1"]}, 400),
    ({"PreCommand": "x" * 70_000}, 413), ({"PostAfter": "READY"}, 400), ({"PostAfter": "ready\n"}, 400),
    ({"PostAfter": ""}, 400), ({"PostAfter": ["ready"]}, 400), ({"PostAfter": 1}, 400),
])
def test_hostile_command_fields_are_refused_before_any_call(make_app, emu, extra: dict, status: int) -> None:
    app = make_app(BLUEPRINT_ALLOWED_COMMANDS="cmd-allowed1", **COMMANDS)
    response = app.handle(http_event(body={**JOB, **extra}), context())
    assert response["statusCode"] == status
    assert emu.calls == [] and PRE not in response["body"]


def test_event_ids_stay_distinct_when_both_commands_fail_in_a_fleet(app, emu, receiver) -> None:
    emu.tat.script(WEB, exit_code=3, match="fsfreeze -f")
    emu.tat.script("*", exit_code=1, match="fsfreeze -u")
    app.handle(timer_event({"InstanceIds": [WEB, "lhins-db000001"]}), context())
    events = received_events(receiver)
    assert sorted(e["type"].rsplit(".", 1)[1] for e in events if e["type"] != "com.tencentcloud.lighthouse."
                  "blueprint.run.completed") == ["created", "failed", "failed", "failed"]
    assert len({e["id"] for e in events}) == len(events)
