"""blueprint.tat.TatService through the real TAT SDK against the emulator: calls, batching, pacing, errors."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from blueprint import logs
from blueprint.cloud import ClientCache, read_credentials
from blueprint.errors import AgentUnavailable, BadRequest, CloudUnavailable, InstanceNotFound, NotFound, Throttled
from blueprint.lighthouse import LighthouseService
from blueprint.retry import Deadline, RetryPolicy
from blueprint.tat import Task, TatService, wait_for_tasks
from emulator import SECRET_ID, SECRET_KEY, Emulator
from tests.conftest import EmuClock, tolerate_stalls

ROOT = Path(__file__).resolve().parents[2]
REGION = "ap-guangzhou"
WEB, DB, STOPPED = "lhins-web00001", "lhins-db000001", "lhins-stop0001"


def clients_for(emu: Emulator) -> ClientCache:
    clients = ClientCache(emu.url)
    clients.use(read_credentials({"TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY}))
    return clients


@pytest.fixture
def tat_emu() -> Iterator[Emulator]:
    """An emulator with the documented rate limits on, so pacing is checked too."""
    with Emulator() as emu:
        yield emu


@pytest.fixture
def service(tat_emu: Emulator) -> TatService:
    return TatService(clients_for(tat_emu))


@pytest.fixture
def clock(tat_emu: Emulator) -> EmuClock:
    return EmuClock(tat_emu)


def deadline(clock: EmuClock, seconds: float = 300) -> Deadline:
    return Deadline.after(clock, seconds)


def test_agent_status_per_instance(tat_emu: Emulator, service: TatService, clock: EmuClock) -> None:
    tat_emu.tat.set_agent(DB, agent_status="Offline")
    found = service.agent_status(REGION, [WEB, DB, STOPPED, "lhins-nothere1"], deadline=deadline(clock))
    assert found == {WEB: True, DB: False, STOPPED: False, "lhins-nothere1": False}


def test_agent_status_of_a_fleet_reads_every_instance(tat_emu: Emulator, service: TatService,
                                                      clock: EmuClock) -> None:
    fleet = [f"lhins-fleet{n:03d}" for n in range(150)]
    for instance_id in fleet:
        tat_emu.lighthouse.add_instance(instance_id)
    tat_emu.tat.set_agent(fleet[-1], agent_status="Offline")
    found = service.agent_status(REGION, fleet, deadline=deadline(clock))
    assert [i for i, online in found.items() if not online] == [fleet[-1]] and len(found) == 150
    # 100 ids a call, each asking for a full page (the default Limit of 20 would hide 80 of them).
    calls = tat_emu.calls_of("DescribeAutomationAgentStatus")
    assert [len(c.params["InstanceIds"]) for c in calls] == [100, 50]
    assert {c.params["Limit"] for c in calls} == {100}


def test_run_shell_then_wait_for_the_tasks(tat_emu: Emulator, service: TatService, clock: EmuClock) -> None:
    tat_emu.tat.script(DB, exit_code=1, output="could not flush\n", duration=4)
    tat_emu.tat.script(WEB, output="flushed\n", duration=2)
    invocation = service.run_shell(REGION, [WEB, DB], "sync && mysql -e 'FLUSH TABLES'", timeout=60,
                                   deadline=deadline(clock), name="blueprint-pre")
    tasks = wait_for_tasks(service, REGION, [invocation], deadline=deadline(clock), expected=2)
    by_instance = {t.instance_id: t for t in tasks}
    assert by_instance[WEB] == Task(instance_id=WEB, invocation_id=invocation, task_id=by_instance[WEB].task_id,
                                    status="SUCCESS", exit_code=0, output="flushed\n")
    assert by_instance[WEB].finished and by_instance[WEB].succeeded
    assert (by_instance[DB].status, by_instance[DB].exit_code, by_instance[DB].output) == (
        "FAILED", 1, "could not flush\n")
    assert not by_instance[DB].succeeded
    assert sum(clock.slept) == pytest.approx(4.0)  # polled once a second on the emulated clock until both ended
    [call] = tat_emu.calls_of("RunCommand")
    assert (call.params["CommandType"], call.params["Timeout"], call.params["CommandName"]) == (
        "SHELL", 60, "blueprint-pre")
    assert [r["Content"] for r in tat_emu.tat.runs()] == ["sync && mysql -e 'FLUSH TABLES'"] * 2


def test_wait_gives_up_at_the_deadline_with_what_it_saw(tat_emu: Emulator, service: TatService,
                                                         clock: EmuClock) -> None:
    tat_emu.tat.script(WEB, duration=500)
    invocation = service.run_shell(REGION, [WEB], "sleep 500", timeout=600, deadline=deadline(clock))
    [task] = wait_for_tasks(service, REGION, [invocation], deadline=deadline(clock, 10), expected=1)
    assert task.status == "RUNNING" and not task.finished and task.exit_code is None
    assert sum(clock.slept) < 10


def test_timeout_and_output_tail(tat_emu: Emulator, clock: EmuClock) -> None:
    service = TatService(clients_for(tat_emu), output_tail=20)
    logs.register_secrets(["hunter2-db-password"])
    tat_emu.tat.script(WEB, duration=90, output="x" * (30 * 1024))
    tat_emu.tat.script(DB, exit_code=3, output="start\n...\nlogin failed: user db, password hunter2-db-password")
    invocation = service.run_shell(REGION, [WEB, DB], "long", timeout=30, deadline=deadline(clock))
    tasks = {t.instance_id: t for t in wait_for_tasks(service, REGION, [invocation], deadline=deadline(clock))}
    assert (tasks[WEB].status, tasks[WEB].exit_code, tasks[WEB].dropped) == ("TIMEOUT", -1, 6 * 1024)
    assert tasks[WEB].output == "x" * 20
    # The end of the output, redacted before the cut: the last 20 characters of the raw text would have kept
    # most of the secret.
    assert tasks[DB].output == "user db, password ***"[-20:]


def test_invoke_command_and_tasks_of_many_invocations(tat_emu: Emulator, service: TatService,
                                                       clock: EmuClock) -> None:
    command = tat_emu.tat.add_command("fsfreeze -f /data", CommandName="freeze", Timeout=120)
    fleet = [f"lhins-fleet{n:03d}" for n in range(7)]
    for instance_id in fleet:
        tat_emu.lighthouse.add_instance(instance_id)
    invocations = [service.invoke_command(REGION, command["CommandId"], [i], deadline=deadline(clock), timeout=15)
                   for i in fleet]
    tat_emu.advance(1)
    tasks = service.tasks(REGION, invocations, deadline=deadline(clock))
    assert sorted(t.instance_id for t in tasks) == fleet and all(t.succeeded for t in tasks)
    # Five invocation ids fit one filter: seven invocations take two calls.
    assert len(tat_emu.calls_of("DescribeInvocationTasks")) == 2
    assert {r["Timeout"] for r in tat_emu.tat.runs()} == {15}
    assert {r["Content"] for r in tat_emu.tat.runs()} == {"fsfreeze -f /data"}


def test_tasks_read_every_page(tat_emu: Emulator, service: TatService, clock: EmuClock) -> None:
    fleet = [f"lhins-fleet{n:03d}" for n in range(130)]
    for instance_id in fleet:
        tat_emu.lighthouse.add_instance(instance_id)
    invocation = service.run_shell(REGION, fleet, "true", timeout=10, deadline=deadline(clock))
    tasks = service.tasks(REGION, [invocation], deadline=deadline(clock))
    assert sorted(t.instance_id for t in tasks) == fleet
    assert [c.params["Offset"] for c in tat_emu.calls_of("DescribeInvocationTasks")] == [0, 100]


def test_commands_exist(tat_emu: Emulator, service: TatService, clock: EmuClock) -> None:
    made = tat_emu.tat.add_command("true")
    found = service.commands_exist(REGION, [made["CommandId"], "cmd-nothere1", "not-a-command"],
                                   deadline=deadline(clock))
    assert found == {made["CommandId"]: True, "cmd-nothere1": False, "not-a-command": False}
    [call] = tat_emu.calls_of("DescribeCommands")
    assert call.params["CommandIds"] == [made["CommandId"], "cmd-nothere1"]  # the malformed id is never sent


def test_errors_are_translated(tat_emu: Emulator, service: TatService, clock: EmuClock) -> None:
    tat_emu.tat.set_agent(DB, agent_status="Offline")
    with pytest.raises(AgentUnavailable) as offline:
        service.run_shell(REGION, [WEB, DB], "true", timeout=10, deadline=deadline(clock))
    assert (offline.value.code, offline.value.status, offline.value.retryable) == (
        "ResourceUnavailable.AgentStatusNotOnline", 409, False)
    assert "RunCommand" in offline.value.message and offline.value.request_id
    with pytest.raises(InstanceNotFound):
        service.run_shell(REGION, ["lhins-nothere1"], "true", timeout=10, deadline=deadline(clock))
    with pytest.raises(BadRequest) as bad:
        service.run_shell(REGION, [WEB], "true", timeout=0, deadline=deadline(clock))
    assert bad.value.code == "InvalidParameterValue.Range"
    with pytest.raises(NotFound) as missing:
        service.invoke_command(REGION, "cmd-nothere1", [WEB], deadline=deadline(clock))
    assert missing.value.code == "ResourceNotFound.CommandNotFound"
    tat_emu.faults.fail("DescribeInvocationTasks", "InternalError")
    with pytest.raises(CloudUnavailable):
        service.tasks(REGION, ["inv-nothere1"], deadline=deadline(clock))
    tat_emu.faults.fail("DescribeAutomationAgentStatus", "RequestLimitExceeded")
    with pytest.raises(Throttled):
        service.agent_status(REGION, [WEB], deadline=deadline(clock))
    assert tat_emu.tat.runs() == []


def test_calls_are_paced_under_the_documented_limits(tat_emu: Emulator, service: TatService,
                                                      clock: EmuClock) -> None:
    tolerate_stalls(tat_emu)
    started = time.monotonic()
    for _ in range(25):  # retried as the function's callers retry (a throttle, below, is retryable)
        RetryPolicy().call(partial(service.run_shell, REGION, [WEB], "true", timeout=10, deadline=deadline(clock)),
                           deadline=deadline(clock))
    assert time.monotonic() - started >= 1.0  # 20 a second: the 21st waited for the window
    # A rare throttle (a stall longer than tolerate_stalls allows) is absorbed by the retry path. Nothing else fails.
    errors = [c.error for c in tat_emu.calls if c.error]
    assert set(errors) <= {"RequestLimitExceeded"} and len(errors) <= 1, errors
    assert len(tat_emu.tat.runs()) == 25


def test_pre_create_post_order_with_both_services(tat_emu: Emulator, service: TatService,
                                                   clock: EmuClock) -> None:
    lighthouse = LighthouseService(clients_for(tat_emu))
    tat_emu.tat.script(WEB, duration=2)
    pre = service.run_shell(REGION, [WEB], "fsfreeze -f /data", timeout=60, deadline=deadline(clock))
    assert all(t.succeeded for t in wait_for_tasks(service, REGION, [pre], deadline=deadline(clock)))
    lighthouse.create_blueprint(REGION, name="consistent", instance_id=WEB, description=None,
                                force_power_off=False, tags={}, deadline=deadline(clock))
    post = service.run_shell(REGION, [WEB], "fsfreeze -u /data", timeout=60, deadline=deadline(clock))
    wait_for_tasks(service, REGION, [post], deadline=deadline(clock))
    pre_run, post_run = tat_emu.tat.runs()
    [create] = tat_emu.calls_of("CreateBlueprint")
    assert pre_run["End"] <= create.time <= post_run["Start"]
    assert [state for _, state in tat_emu.lighthouse.state_history(WEB)] == ["RUNNING"]


def test_the_tat_sdk_is_imported_only_when_a_call_is_made() -> None:
    code = ("import sys, blueprint.tat, blueprint.app; "
            "print('tencentcloud.tat.v20201028.tat_client' in sys.modules, "
            "'tencentcloud.tat.v20201028.models' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,  # noqa: S603
                          check=True)
    assert done.stdout.split() == ["False", "False"]
