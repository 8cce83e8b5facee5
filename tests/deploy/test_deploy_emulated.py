"""`python -m blueprint deploy` end to end: a real process against the emulator, as a user would run it.

The deployed package is the session's `python -m blueprint package` zip; the emulator runs it in a fresh
Python 3.10 interpreter for every invocation (SDK Invoke, the timer, the Function URL), so each image below is
made by the deployed code, not by this test process.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.scf.v20180416 import models, scf_client

from blueprint.packaging import Package
from emulator import SECRET_ID, SECRET_KEY, Emulator
from tests.conftest import python310

ROOT = Path(__file__).resolve().parents[2]
FUNCTION = "lighthouse-blueprint-prod"
TOKEN = "token-from-the-deploying-shell"
WRITES = {"CreateFunction", "UpdateFunctionCode", "UpdateFunctionConfiguration", "DeleteFunction", "CreateTrigger",
          "UpdateTrigger", "DeleteTrigger"}


@pytest.fixture
def emu() -> Iterator[Emulator]:
    # Images take 2 s, not 30: the timer stops running instances (ForcePowerOff) and waits for their images
    # before it starts them again, in real time.
    with Emulator(function_seconds=0.3, image_seconds=2.0,
                  runtimes={"Python3.10": python310() or sys.executable}) as started:
        yield started
    started.scf.shutdown()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A copy of the project's serverless.yml that tests may change."""
    path = tmp_path / "project" / "serverless.yml"
    path.parent.mkdir()
    path.write_text((ROOT / "serverless.yml").read_text(encoding="utf-8"), encoding="utf-8")
    return path


def deploy(emu: Emulator, config: Path, package: Package, *args: str,
           **env: str | None) -> subprocess.CompletedProcess[str]:
    """Run `python -m blueprint deploy` in a fresh process, the emulator standing in for the account."""
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(config.parent),
            "BLUEPRINT_API_ENDPOINT": emu.url, "TENCENTCLOUD_SECRET_ID": SECRET_ID,
            "TENCENTCLOUD_SECRET_KEY": SECRET_KEY, "BLUEPRINT_HTTP_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    merged = {k: v for k, v in {**base, **env}.items() if v is not None}
    command = [sys.executable, "-m", "blueprint", "deploy", "--config", str(config), "--package",
               str(package.path), *args]
    return subprocess.run(command, cwd=config.parent, env=merged, capture_output=True,  # noqa: S603 (our argv)
                          text=True, timeout=180, check=False)


def sdk(emu: Emulator) -> Any:
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=emu.endpoint, reqTimeout=60))
    return scf_client.ScfClient(credential.Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou", profile)


def call(emu: Emulator, action: str, params: dict[str, Any]) -> Any:
    req = getattr(models, f"{action}Request")()
    req.from_json_string(json.dumps(params))
    return getattr(sdk(emu), action)(req)


def images(emu: Emulator) -> dict[str, str]:
    return {bp["InstanceId"]: bp["BlueprintId"] for bp in emu.lighthouse.blueprints()}


def edit(config: Path, change: Any) -> None:
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    change(document)
    config.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


@pytest.mark.python310
def test_deploy_invoke_timer_url_redeploy_change(emu: Emulator, config: Path, built_package: Package) -> None:
    first = deploy(emu, config, built_package)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert "  1. create function lighthouse-blueprint-prod (Python3.10, 128 MB, 900 s) from package" in first.stdout
    assert "  4. add Function URL blueprint-url (AuthType NONE, public)" in lines
    url = lines[-2].removeprefix("Function URL: ")
    assert lines[-2].startswith("Function URL: ") and url.startswith(f"{emu.url}/_fn/")
    assert lines[-1] == (f"curl -s -X POST '{url}/blueprints' -H \"Authorization: Bearer $BLUEPRINT_HTTP_TOKEN\" "
                         "-H 'Content-Type: application/json' -d '{\"InstanceId\": \"lhins-xxxxxxxx\", "
                         "\"DryRun\": true}'")

    # 1. The SDK's Invoke with a direct job: the deployed package makes the image.
    direct = json.dumps({"InstanceId": "lhins-stop0001"})
    result = call(emu, "Invoke", {"FunctionName": FUNCTION, "ClientContext": direct})
    assert result.Result.ErrMsg == "", result.Result.ErrMsg
    [made] = json.loads(result.Result.RetMsg)["Results"]
    assert images(emu) == {"lhins-stop0001": made["BlueprintId"]}

    # 2. The timer fires with serverless.yml's argument (every backup=daily instance in ap-guangzhou).
    fired = requests.post(f"{emu.url}/_emulator/scf/timer", json={"FunctionName": FUNCTION,
                                                                 "TriggerName": "nightly-blueprint"}, timeout=30)
    assert fired.status_code == 200
    assert emu.scf.wait_idle(120)
    timer_run = emu.scf.invocations[-1]
    assert timer_run["Error"] is None and timer_run["Attempts"] == 1, timer_run["Log"][-2000:]
    assert set(images(emu)) == {"lhins-stop0001", "lhins-web00001", "lhins-db000001"}

    # 3. The Function URL with the token (and without it: 401).
    job = {"InstanceId": "lhins-sh000001", "Region": "ap-shanghai"}
    assert requests.post(f"{url}/blueprints", json=job, timeout=60).status_code == 401
    answer = requests.post(f"{url}/blueprints", json=job, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    assert answer.status_code == 202, answer.text
    assert images(emu)["lhins-sh000001"] == answer.json()["BlueprintId"]
    assert len(emu.tdmq.queue_messages("blueprint-results")) >= 4  # the deployed function's own sink

    # 4. Deploying again changes nothing and says so.
    emu.reset_calls()
    second = deploy(emu, config, built_package)
    assert second.returncode == 0, second.stderr
    assert f"No changes: {FUNCTION} is up to date." in second.stdout
    assert not {c.action for c in emu.calls} & WRITES

    # 5. A bigger memory size and a removed timer are applied; a trigger made elsewhere is left alone.
    call(emu, "CreateTrigger", {"FunctionName": FUNCTION, "TriggerName": "theirs", "Type": "timer",
                                "TriggerDesc": "0 0 5 * * * *", "Qualifier": "$LATEST"})

    def change(doc: dict[str, Any]) -> None:
        doc["inputs"]["memorySize"] = 256
        doc["inputs"]["events"] = []

    edit(config, change)
    third = deploy(emu, config, built_package)
    assert third.returncode == 0, third.stderr
    assert "update the configuration of lighthouse-blueprint-prod: MemorySize 128 -> 256" in third.stdout
    assert "remove timer trigger nightly-blueprint (made by this tool, no longer declared)" in third.stdout
    assert "Note: left alone: timer trigger theirs (not made by this tool)" in third.stdout
    assert call(emu, "GetFunction", {"FunctionName": FUNCTION}).MemorySize == 256
    names = {t.TriggerName for t in call(emu, "ListTriggers", {"FunctionName": FUNCTION}).Triggers}
    assert names == {"blueprint-url", "theirs"}
    assert third.stdout.splitlines()[-2] == f"Function URL: {url}"  # changed in place, same address

    # 6. A bad serverless.yml is refused before any call, naming the field.
    edit(config, lambda doc: doc["inputs"].update(timeout=1000))
    emu.reset_calls()
    bad = deploy(emu, config, built_package)
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr == "error: serverless.yml: inputs.timeout: 1000 seconds: must be 1 to 900\n"
    assert emu.calls == []


def test_dry_run_prints_the_plan_and_changes_nothing(emu: Emulator, config: Path, built_package: Package) -> None:
    done = deploy(emu, config, built_package, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "Plan:\n  1. create function lighthouse-blueprint-prod" in done.stdout
    assert "  3. add timer trigger nightly-blueprint (0 0 3 * * * *, OPEN)" in done.stdout
    assert done.stdout.endswith("Dry run: nothing was changed.\n")
    assert {c.action for c in emu.calls} == {"GetFunction"}
    assert [f["FunctionName"] for f in emu.scf.functions()] == ["blueprint-next"]


def test_token_rules(emu: Emulator, config: Path, built_package: Package) -> None:
    refused = deploy(emu, config, built_package, BLUEPRINT_HTTP_TOKEN=None)
    assert refused.returncode == 2 and emu.calls == []
    assert refused.stderr == ("error: serverless.yml: inputs.environment.variables.BLUEPRINT_HTTP_TOKEN: the Function "
                              "URL checks a bearer token and none is set: export BLUEPRINT_HTTP_TOKEN in this shell, "
                              "or pass --generate-token\n")

    made = deploy(emu, config, built_package, "--generate-token", BLUEPRINT_HTTP_TOKEN=None)
    assert made.returncode == 0, made.stderr
    [export] = [line for line in made.stdout.splitlines() if line.startswith("export BLUEPRINT_HTTP_TOKEN=")]
    token = export.split("=", 1)[1].strip("'")
    assert len(token) >= 40 and made.stdout.count(token) == 1
    variables = {v["Key"]: v["Value"] for v in emu.scf.function(FUNCTION)["Environment"]["Variables"]}
    assert variables["BLUEPRINT_HTTP_TOKEN"] == token
    written = [p for p in config.parent.rglob("*") if p.is_file() and token in p.read_text(errors="replace")]
    assert written == [], "the token must not be written to a file"


def test_cloud_errors_say_what_to_do(emu: Emulator, config: Path, built_package: Package) -> None:
    emu.faults.fail("CreateFunction", "InvalidParameterValue.Environment",
                    message=f"value {TOKEN} of BLUEPRINT_HTTP_TOKEN, signed with {SECRET_KEY}, refused")
    quoted = deploy(emu, config, built_package)
    assert quoted.returncode == 1 and TOKEN not in quoted.stderr and SECRET_KEY not in quoted.stderr
    assert quoted.stderr.splitlines()[1] == "next: serverless.yml has a value SCF refuses (the message names it)"

    emu.faults.fail("CreateFunction", "UnauthorizedOperation.CAM",
                    message="you are not authorized to perform operation (scf:CreateFunction)")
    denied = deploy(emu, config, built_package)
    assert denied.returncode == 1 and "Traceback" not in denied.stderr
    assert denied.stderr.splitlines() == [
        "error: UnauthorizedOperation.CAM: CreateFunction: you are not authorized to perform operation "
        "(scf:CreateFunction)",
        "next: the deploying user lacks the CAM permission scf:CreateFunction (and cam:PassRole on the role "
        "SCF_LighthouseBlueprintRole): attach deploy/cam-deploy-policy.json to it (docs/deploy.md lists the actions)",
    ]

    emu.scf.fail_next_deploy(FUNCTION, message="the code package could not be unpacked")
    failed = deploy(emu, config, built_package)
    assert failed.returncode == 1
    assert failed.stderr.startswith(f"error: {FUNCTION} is CreateFailed: the code package could not be unpacked\n")
    again = deploy(emu, config, built_package)  # SCF's advice: delete the failed function and create it again
    assert again.returncode == 0, again.stderr
    assert f"1. delete {FUNCTION} (CreateFailed: the code package could not be unpacked) to create it again" in (
        again.stdout)
    assert emu.scf.function(FUNCTION)["Status"] == "Active"


def test_no_credentials(emu: Emulator, config: Path, built_package: Package) -> None:
    done = deploy(emu, config, built_package, TENCENTCLOUD_SECRET_ID=None, TENCENTCLOUD_SECRET_KEY=None)
    assert done.returncode == 2 and emu.calls == []
    assert done.stderr.startswith("error: no Tencent Cloud credentials: set TENCENTCLOUD_SECRET_ID and "
                                  "TENCENTCLOUD_SECRET_KEY, or put them in")
    profile = config.parent / ".tencentcloud" / "credentials"
    profile.parent.mkdir()
    profile.write_text(f"[default]\nsecret_id = {SECRET_ID}\nsecret_key = {SECRET_KEY}\n", encoding="utf-8")
    from_file = deploy(emu, config, built_package, "--dry-run", TENCENTCLOUD_SECRET_ID=None,
                       TENCENTCLOUD_SECRET_KEY=None)
    assert from_file.returncode == 0, from_file.stderr


def test_the_endpoint_rule(emu: Emulator, config: Path, built_package: Package) -> None:
    done = deploy(emu, config, built_package, BLUEPRINT_API_ENDPOINT="http://scf.example.com")
    assert done.returncode == 2 and done.stderr.startswith("error: BLUEPRINT_API_ENDPOINT: https is required")


def test_a_copy_of_the_config_is_what_gets_deployed(config: Path) -> None:
    # The tests above edit a copy; the project's own file stays as committed.
    assert copy.deepcopy(yaml.safe_load(config.read_text())) == yaml.safe_load((ROOT / "serverless.yml").read_text())
