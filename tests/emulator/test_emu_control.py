"""The HTTP control path and `python -m emulator` as a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import requests
from emu_helpers import error_code, lighthouse
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.lighthouse.v20200324 import lighthouse_client, models

from emulator import SECRET_ID, SECRET_KEY, Emulator

ROOT = Path(__file__).resolve().parents[2]


def control(emu: Emulator, path: str, body: dict[str, Any] | None = None) -> Any:
    url = f"{emu.url}/_emulator/{path}"
    reply = requests.post(url, json=body or {}, timeout=5) if body is not None else requests.get(url, timeout=5)
    assert reply.headers["Content-Type"] == "application/json"
    return reply


def test_control_faults_advance_state_calls_reset(emu: Emulator, lh: Any) -> None:
    assert control(emu, "faults", {"kind": "fail", "action": "DescribeRegions", "code": "InternalError"}).ok
    assert error_code(lambda: lh.DescribeRegions(models.DescribeRegionsRequest())) == "InternalError"
    calls = control(emu, "calls").json()
    assert calls[-1]["action"] == "DescribeRegions" and calls[-1]["error"] == "InternalError"

    req = models.CreateBlueprintRequest()
    req.BlueprintName, req.InstanceId = "bp", "lhins-web00001"
    lh.CreateBlueprint(req)
    before = control(emu, "state").json()
    assert before["blueprints"][0]["BlueprintState"] == "CREATING"
    control(emu, "advance", {"seconds": 30})
    after = control(emu, "state").json()
    assert after["blueprints"][0]["BlueprintState"] == "NORMAL" and after["now"] >= before["now"] + 30

    control(emu, "faults", {"kind": "drop", "action": "DescribeInstances", "after": True})
    assert control(emu, "state").json()["faults"]["DescribeInstances"][0]["after"] is True
    control(emu, "faults", {"kind": "clear"})
    control(emu, "reset", {})
    assert control(emu, "state").json()["blueprints"] == []
    assert control(emu, "calls").json() == []


def test_control_bad_requests(emu: Emulator) -> None:
    assert control(emu, "faults", {"kind": "explode"}).status_code == 400
    assert control(emu, "nothing").status_code == 404


def test_python_m_emulator_serves_the_sdk(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", "0", "--image-seconds", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("emulator listening on http://127.0.0.1:")
        endpoint = line.rsplit("/", 1)[-1]
        profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=endpoint, reqTimeout=5))
        client = lighthouse_client.LighthouseClient(
            credential.Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou", profile
        )
        req = models.CreateBlueprintRequest()
        req.BlueprintName, req.InstanceId = "cli", "lhins-web00001"
        bp_id = client.CreateBlueprint(req).BlueprintId
        describe = models.DescribeBlueprintsRequest()
        describe.BlueprintIds = [bp_id]
        assert client.DescribeBlueprints(describe).BlueprintSet[0].BlueprintState == "NORMAL"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_lighthouse_helper_against_context_manager() -> None:
    with Emulator() as emu:
        assert lighthouse(emu).DescribeInstances(models.DescribeInstancesRequest()).TotalCount == 3
    emu.scf.shutdown()
