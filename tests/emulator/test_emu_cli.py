"""Issue 16, items 6 and 7: `python -m emulator` flags win over the state file, and a start that cannot
happen (the port is taken, the state file is bad) is one line on stderr and exit status 2, like `serve`."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from emu_helpers import call, error_code, lighthouse

from emulator import Emulator, sample_state

ROOT = Path(__file__).resolve().parents[2]


def blueprint_quota(client: Any) -> tuple[int, int]:
    [row] = call(client, "DescribeGeneralResourceQuotas", ResourceNames=["BLUEPRINT"]).GeneralResourceQuotaSet
    return row.ResourceQuotaTotal, row.ResourceQuotaAvailable


@contextmanager
def cli_emulator(*args: str) -> Iterator[Emulator]:
    """`python -m emulator --port 0 ARGS` in a child; yields an Emulator-like handle with its endpoint."""
    proc = subprocess.Popen([sys.executable, "-m", "emulator", "--port", "0", *args], cwd=ROOT,  # noqa: S603
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("emulator listening on http://"), proc.stderr.read() if proc.stderr else line

        class Remote:
            endpoint = line.rsplit("/", 1)[-1]

        yield Remote()  # type: ignore[misc]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_quota_flag_wins_over_the_sample_state() -> None:
    with cli_emulator("--quota", "1", "--image-seconds", "0") as emu:
        client = lighthouse(emu)
        assert blueprint_quota(client) == (1, 1)
        call(client, "CreateBlueprint", BlueprintName="one", InstanceId="lhins-web00001")
        second = error_code(lambda: call(client, "CreateBlueprint", BlueprintName="two", InstanceId="lhins-db000001"))
        assert second == "LimitExceeded.BlueprintQuotaLimitExceeded"
        assert blueprint_quota(lighthouse(emu, "ap-shanghai")) == (1, 1)


def test_quota_flag_wins_over_a_state_file_and_its_per_region_quotas(tmp_path: Path) -> None:
    state = {**sample_state(), "quota": 50, "quotas": {"ap-shanghai": 7}}
    path = tmp_path / "state.json"
    path.write_text(json.dumps(state))
    with cli_emulator("--state", str(path)) as emu:
        assert blueprint_quota(lighthouse(emu)) == (50, 50)
        assert blueprint_quota(lighthouse(emu, "ap-shanghai")) == (7, 7)
    with cli_emulator("--state", str(path), "--quota", "3") as emu:
        assert blueprint_quota(lighthouse(emu)) == (3, 3)
        assert blueprint_quota(lighthouse(emu, "ap-shanghai")) == (3, 3)


def test_python_quota_option_wins_over_the_state_too() -> None:
    with Emulator(quota=2, rate_limits=False) as emu:
        assert emu.lighthouse.quota("ap-guangzhou") == 2
        emu.reset()
        assert emu.lighthouse.quota("ap-shanghai") == 2
    with Emulator(rate_limits=False) as emu:
        assert emu.lighthouse.quota("ap-guangzhou") == 20  # the sample state's
    emu.scf.shutdown()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "emulator", *args], cwd=ROOT, capture_output=True,  # noqa: S603
                          text=True, timeout=60, check=False)


def test_a_taken_port_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run("--port", str(port))
    assert done.returncode == 2
    assert done.stderr.strip() == f"cannot serve on 127.0.0.1:{port}: Address already in use"
    assert done.stdout == ""


def test_a_bad_state_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = run("--port", "0", "--state", str(tmp_path / "nope.json"))
    (tmp_path / "bad.json").write_text("[1, 2]")
    not_an_object = run("--port", "0", "--state", str(tmp_path / "bad.json"))
    for done in (missing, not_an_object):
        assert done.returncode == 2
        assert len(done.stderr.strip().splitlines()) == 1 and "cannot load the state file" in done.stderr
        assert "Traceback" not in done.stderr
