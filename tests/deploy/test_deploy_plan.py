"""The planner and the sweeper on plain models: no cloud, no package, just what would be done and why."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from blueprint.deploy.config import load_deployment
from blueprint.deploy.models import MARK, PACKAGE_VARIABLE, Deployment, Package, RemoteFunction, RemoteTrigger
from blueprint.deploy.plan import (
    CreateFunction,
    CreateTrigger,
    DeleteFunction,
    DeleteTrigger,
    PlanError,
    UpdateCode,
    UpdateConfiguration,
    UpdateTrigger,
    WaitActive,
    WaitGone,
    make_plan,
    with_package,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Package(path=Path("blueprint-fn.zip"), sha256="ab" * 32, size=5 * 1024 * 1024, files=623)
TOKEN = "a-token-from-the-shell"


@pytest.fixture(scope="module")
def deployment() -> Deployment:
    return load_deployment(ROOT / "serverless.yml", env={"BLUEPRINT_HTTP_TOKEN": TOKEN}, root=ROOT)


def deployed(deployment: Deployment, **changes: object) -> RemoteFunction:
    """The function as GetFunction shows it after this deployment, with `changes`."""
    fn = with_package(deployment.function, PACKAGE)
    remote = RemoteFunction(name=fn.name, namespace=fn.namespace, status="Active", reason="", runtime=fn.runtime,
                            handler=fn.handler, description=fn.description, memory=fn.memory, timeout=fn.timeout,
                            init_timeout=fn.init_timeout, role=fn.role, environment=dict(fn.environment))
    return replace(remote, **changes)  # type: ignore[arg-type]


def listed(deployment: Deployment) -> list[RemoteTrigger]:
    """The triggers as ListTriggers shows them after this deployment."""
    [timer] = deployment.timers
    url = deployment.url
    assert url is not None
    desc = {"AuthType": "NONE", "NetConfig": {"EnableIntranet": False, "EnableExtranet": True,
                                              "ExtranetUrl": "https://1250000000-abc.ap-guangzhou.tencentscf.com"}}
    return [RemoteTrigger(timer.name, "timer", "$DEFAULT", json.dumps({"cron": timer.cron}), True, timer.argument,
                          MARK),
            RemoteTrigger(url.name, "http", "$DEFAULT", json.dumps(desc), True, "", MARK)]


def test_a_new_function(deployment: Deployment) -> None:
    plan = make_plan(deployment, PACKAGE, None, [])
    kinds = [type(step) for step in plan.instructions]
    assert kinds == [CreateFunction, WaitActive, CreateTrigger, CreateTrigger]
    assert plan.messages() == [
        f"create function lighthouse-blueprint-prod (Python3.10, 128 MB, 900 s) from package {'ab' * 6} (5.00 MiB)",
        "wait until lighthouse-blueprint-prod is Active",
        "add timer trigger nightly-blueprint (0 0 3 * * * *, OPEN)",
        "add Function URL blueprint-url (AuthType NONE, public)",
    ]
    create = plan.instructions[0]
    assert isinstance(create, CreateFunction)
    assert create.spec.environment[PACKAGE_VARIABLE] == PACKAGE.sha256  # read back next time by GetFunction
    assert create.spec.environment["BLUEPRINT_HTTP_TOKEN"] == TOKEN


def test_nothing_to_do(deployment: Deployment) -> None:
    plan = make_plan(deployment, PACKAGE, deployed(deployment), listed(deployment))
    assert plan.empty and plan.messages() == [] and plan.notes == ()


def test_new_code_is_uploaded_and_its_digest_recorded(deployment: Deployment) -> None:
    newer = replace(PACKAGE, sha256="cd" * 32)
    plan = make_plan(deployment, newer, deployed(deployment), listed(deployment))
    assert [type(s) for s in plan.instructions] == [UpdateCode, WaitActive, UpdateConfiguration, WaitActive]
    assert plan.messages()[0] == f"update the code of lighthouse-blueprint-prod: package {'cd' * 6} (was {'ab' * 6})"
    assert plan.messages()[2] == ("update the configuration of lighthouse-blueprint-prod: environment: "
                                  f"{PACKAGE_VARIABLE} changed")


def test_configuration_changes_in_words_without_secret_values(deployment: Deployment) -> None:
    remote = deployed(deployment, memory=256, timeout=60,
                      environment={**deployed(deployment).environment, "BLUEPRINT_HTTP_TOKEN": "old-token-value",
                                   "ADDED_IN_CONSOLE": "1"})
    plan = make_plan(deployment, PACKAGE, remote, listed(deployment))
    [update, wait] = plan.instructions
    assert isinstance(update, UpdateConfiguration) and isinstance(wait, WaitActive)
    assert update.message == ("update the configuration of lighthouse-blueprint-prod: MemorySize 256 -> 128; "
                              "Timeout 60 -> 900; environment: BLUEPRINT_HTTP_TOKEN changed, ADDED_IN_CONSOLE removed")
    assert "old-token-value" not in update.message and TOKEN not in update.message


def test_triggers_are_added_changed_and_swept(deployment: Deployment) -> None:
    timer, url = listed(deployment)
    old = RemoteTrigger("weekly-old", "timer", "$DEFAULT", '{"cron": "0 0 1 * * MON *"}', True, "", MARK)
    theirs = RemoteTrigger("someone-elses", "timer", "$LATEST", '{"cron": "0 0 2 * * * *"}', True, "", "")
    changed = replace(timer, desc='{"cron": "0 30 4 * * * *"}', enable=False)
    plan = make_plan(deployment, PACKAGE, deployed(deployment), [changed, old, theirs])
    assert plan.messages() == [
        "remove timer trigger weekly-old (made by this tool, no longer declared)",
        "change timer trigger nightly-blueprint (0 0 3 * * * *, OPEN): cron '0 30 4 * * * *' -> '0 0 3 * * * *'; "
        "enable False -> True",
        "add Function URL blueprint-url (AuthType NONE, public)",
    ]
    assert [type(s) for s in plan.instructions] == [DeleteTrigger, UpdateTrigger, CreateTrigger]
    assert plan.notes == ("left alone: timer trigger someone-elses (not made by this tool)",)
    # A Function URL declared CAM now is changed in place (it keeps its address).
    cam = replace(deployment, url=replace(deployment.url, auth_type="CAM"))  # type: ignore[arg-type]
    [step] = make_plan(cam, PACKAGE, deployed(deployment), [timer, url]).instructions
    assert isinstance(step, UpdateTrigger) and step.changes == ("AuthType 'NONE' -> 'CAM'",)


def test_a_removed_timer_is_swept_and_a_requalified_one_recreated(deployment: Deployment) -> None:
    timer, url = listed(deployment)
    without_timer = replace(deployment, timers=())
    [step] = make_plan(without_timer, PACKAGE, deployed(deployment), [timer, url]).instructions
    assert isinstance(step, DeleteTrigger) and step.trigger.name == "nightly-blueprint"
    latest = replace(deployment, timers=(replace(deployment.timers[0], qualifier="$LATEST"),))
    steps = make_plan(latest, PACKAGE, deployed(deployment), [timer, url]).instructions
    assert [type(s) for s in steps] == [DeleteTrigger, CreateTrigger]


def test_triggers_this_tool_did_not_make_are_never_touched(deployment: Deployment) -> None:
    timer, url = listed(deployment)
    with pytest.raises(PlanError, match="nightly-blueprint already exists and this tool did not make it"):
        make_plan(deployment, PACKAGE, deployed(deployment), [replace(timer, description=""), url])
    foreign_url = replace(url, name="their-url", description="made in the console")
    with pytest.raises(PlanError, match=r"\$DEFAULT already has a Function URL \(their-url\)"):
        make_plan(deployment, PACKAGE, deployed(deployment), [timer, foreign_url])


def test_function_states(deployment: Deployment) -> None:
    failed = deployed(deployment, status="CreateFailed", reason="code too big")
    plan = make_plan(deployment, PACKAGE, failed, listed(deployment))
    assert [type(s) for s in plan.instructions][:4] == [DeleteFunction, WaitGone, CreateFunction, WaitActive]
    assert plan.messages()[0] == "delete lighthouse-blueprint-prod (CreateFailed: code too big) to create it again"
    assert len(plan.instructions) == 6  # the triggers of a function created again are added again

    updating = make_plan(deployment, PACKAGE, deployed(deployment, status="Updating"), listed(deployment))
    assert [type(s) for s in updating.instructions] == [WaitActive]
    with pytest.raises(PlanError, match="is Deleting: wait until it is Active"):
        make_plan(deployment, PACKAGE, deployed(deployment, status="Deleting"), [])
    with pytest.raises(PlanError, match=r"runs Python3\.9; SCF cannot change a function's runtime"):
        make_plan(deployment, PACKAGE, deployed(deployment, runtime="Python3.9"), [])
