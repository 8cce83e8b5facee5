"""The README's Deploy section, followed word for word with the emulator standing in for the account.

The section's first `sh` block runs as written in bash, from the project's directory; the only things the
test provides are what a user provides: credentials and the endpoint (here the emulator's). Then the `curl`
line the deploy printed runs as printed and must reach the deployed function and pass its token check (the
line asks for a dry run, so the function answers with the plan for the placeholder instance).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator import SECRET_ID, SECRET_KEY, Emulator
from tests.conftest import python310

ROOT = Path(__file__).resolve().parents[2]


def deploy_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Deploy\n(.*?)^## ", readme, re.S | re.M)
    assert match, "README.md has a Deploy section"
    return match.group(1)


def first_block(section: str) -> str:
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "the Deploy section starts with a sh block"
    return match.group(1)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(function_seconds=0.3, runtimes={"Python3.10": python310() or sys.executable}) as started:
        yield started
    started.scf.shutdown()


def bash(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env,  # noqa: S603, S607 (the README, run as written)
                          capture_output=True, text=True, timeout=600, check=False)


def test_the_section_leads_with_the_command() -> None:
    section = deploy_section()
    assert section.lstrip().startswith("```sh\n")
    assert "python -m blueprint deploy --dry-run\npython -m blueprint deploy\n" in first_block(section)


@pytest.mark.python310
def test_the_readme_deploy_section_word_for_word(emu: Emulator, tmp_path: Path) -> None:
    block = first_block(deploy_section())
    venv_bin = str(Path(sys.executable).parent)  # `python` and `pip` of the project's virtualenv
    env = {"PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "TENCENTCLOUD_SECRET_ID": SECRET_ID, "TENCENTCLOUD_SECRET_KEY": SECRET_KEY,
           "BLUEPRINT_API_ENDPOINT": emu.url, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    # The block as written; afterwards the harness reads the token the block exported (to run the curl line).
    done = bash(block + 'echo "token-for-the-harness=$BLUEPRINT_HTTP_TOKEN"\n', env)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "Dry run: nothing was changed." in out
    assert "Deployed lighthouse-blueprint-prod: 4 steps." in out
    lines = out.splitlines()
    token = lines[-1].removeprefix("token-for-the-harness=")
    url_line, curl_line = lines[-3], lines[-2]
    assert url_line.startswith(f"Function URL: {emu.url}/_fn/") and curl_line.startswith("curl -s -X POST ")
    assert emu.scf.function("lighthouse-blueprint-prod")["Status"] == "Active"

    answer = bash(curl_line, {**env, "BLUEPRINT_HTTP_TOKEN": token})
    assert answer.returncode == 0, answer.stderr
    # As printed, the line names a placeholder, no instance of the account: the dry run says so (the real run would
    # meet it too), which shows the URL, the token and the function's cloud access all work.
    missing = json.loads(answer.stdout)
    assert missing["Error"]["Code"] == "ResourceNotFound.InstanceIdNotFound", missing
    emu.lighthouse.add_instance("lhins-xxxxxxxx")  # the reader's own instance in its place
    plan = json.loads(bash(curl_line, {**env, "BLUEPRINT_HTTP_TOKEN": token}).stdout)
    assert (plan["InstanceId"], plan["DryRun"], plan["Trigger"]["Type"]) == ("lhins-xxxxxxxx", True, "http"), plan
    requests = [i for i in emu.scf.invocations if i["RequestSource"] == "HTTP"]
    assert [r["Error"] for r in requests] == [None, None]
    assert os.environ.get("BLUEPRINT_HTTP_TOKEN") != token  # the test process never had it
