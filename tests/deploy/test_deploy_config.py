"""serverless.yml as `python -m blueprint deploy` reads it: variables, defaults, and one clear line per bad field."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from blueprint.cli import main
from blueprint.deploy.config import ConfigFileError, load_deployment

ROOT = Path(__file__).resolve().parents[2]
BASE: dict[str, Any] = yaml.safe_load((ROOT / "serverless.yml").read_text(encoding="utf-8"))
TOKEN_ENV = {"BLUEPRINT_HTTP_TOKEN": "a-token-from-the-shell"}


def write(tmp_path: Path, change: Callable[[dict[str, Any]], None] | None = None) -> Path:
    document = copy.deepcopy(BASE)
    if change is not None:
        change(document)
    path = tmp_path / "serverless.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def load(path: Path, **kwargs: Any) -> Any:
    return load_deployment(path, env=kwargs.pop("env", TOKEN_ENV), root=ROOT, **kwargs)


def timer_params(doc: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = doc["inputs"]["events"][0]["timer"]["parameters"]
    return params


def test_variables_resolve_like_the_framework(tmp_path: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["inputs"]["environment"]["variables"]["BLUEPRINT_NOTE"] = "${app}/${name}/${stage}"
        doc["inputs"]["environment"]["variables"]["BLUEPRINT_JOB"] = '{"InstanceId": "${env:INSTANCE}"}'
        doc["inputs"]["environment"]["variables"]["BLUEPRINT_WEBHOOK_URL"] = "${env:NOT_SET_ANYWHERE}"

    path = write(tmp_path, change)
    deployment = load(path, env={**TOKEN_ENV, "INSTANCE": "lhins-web00001"})
    fn = deployment.function
    assert fn.name == "lighthouse-blueprint-prod" and deployment.stage == "prod"
    assert fn.environment["BLUEPRINT_NOTE"] == "lighthouse-blueprint/lighthouse-blueprint/prod"
    assert fn.environment["BLUEPRINT_JOB"] == '{"InstanceId": "lhins-web00001"}'
    assert "BLUEPRINT_WEBHOOK_URL" not in fn.environment  # a whole-value ${env:...} that is unset is left out
    assert load(path, env={**TOKEN_ENV, "INSTANCE": "x"}, stage="dev").function.name == "lighthouse-blueprint-dev"
    assert load(path, env={**TOKEN_ENV, "INSTANCE": "x"}, region="ap-shanghai").region == "ap-shanghai"
    with pytest.raises(ConfigFileError, match=r"inputs\.environment\.variables\.BLUEPRINT_JOB: \$\{env:INSTANCE\}"):
        load(path)  # inside a longer value an unset variable cannot be left out
    assert "BLUEPRINT_HTTP_TOKEN" not in load(write(tmp_path), env={}).function.environment


def test_the_components_defaults(tmp_path: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        del doc["stage"], doc["inputs"]["name"], doc["inputs"]["memorySize"], doc["inputs"]["timeout"]
        del doc["inputs"]["initTimeout"], timer_params(doc)["name"], timer_params(doc)["enable"]
        del doc["x-blueprint-deploy"]

    deployment = load(write(tmp_path, change))
    fn = deployment.function
    assert (fn.name, fn.memory, fn.timeout, fn.init_timeout) == (
        "lighthouse-blueprint-dev-lighthouse-blueprint", 128, 3, None)
    [timer] = deployment.timers
    assert (timer.name, timer.enable, timer.qualifier) == ("timer-lighthouse-blueprint-dev", False, "$DEFAULT")
    assert deployment.url is None


def _walk(doc: dict[str, Any], path: str) -> tuple[Any, Any]:
    """The container holding the last key of a dotted path (digits index lists), and that key."""
    node: Any = doc
    keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
    for key in keys[:-1]:
        node = node[key]
    return node, keys[-1]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        node, key = _walk(doc, path)
        node[key] = value

    return change


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        node, key = _walk(doc, path)
        del node[key]

    return change


TIMER = "inputs.events.0.timer.parameters"
AT = "inputs.events[0].timer.parameters"  # how messages name it
URL = "x-blueprint-deploy.functionUrl"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (_set("inputs.runtime", "Python4.2"), "inputs.runtime", "unknown runtime `Python4.2`"),
        (_set("inputs.runtime", "Python3.9"), "inputs.runtime", "the package is built for Python3.10"),
        (_delete("inputs.runtime"), "inputs.runtime", "required"),
        (_set("inputs.memorySize", 100), "inputs.memorySize", "64, or 128 to 3072 in steps of 128"),
        (_set("inputs.memorySize", 3200), "inputs.memorySize", "64, or 128 to 3072"),
        (_set("inputs.memorySize", "128"), "inputs.memorySize", "whole number"),
        (_set("inputs.timeout", 0), "inputs.timeout", "must be 1 to 900"),
        (_set("inputs.timeout", 901), "inputs.timeout", "must be 1 to 900"),
        (_set(f"{TIMER}.cronExpression", "0 3 * * *"), f"{AT}.cronExpression", "has 5 fields; SCF wants 7"),
        (_set(f"{TIMER}.cronExpression", "0 0 25 * * * *"), f"{AT}.cronExpression", "hour field `25`"),
        (_set(f"{TIMER}.cronExpression", "0 0 3 ? * * *"), f"{AT}.cronExpression", "day field `?`"),
        (_set(f"{TIMER}.cronExpression", "0 0 3 * * FUN *"), f"{AT}.cronExpression", "week field `FUN`"),
        (_delete(f"{TIMER}.cronExpression"), f"{AT}.cronExpression", "required"),
        (_set(f"{TIMER}.argument", {"InstanceId": "lhins-web00001"}), f"{AT}.argument", "must be a string"),
        (_set(f"{TIMER}.argument", "x" * 4097), f"{AT}.argument", "at most 4096"),
        (_set(f"{TIMER}.enable", "yes"), f"{AT}.enable", "true or false"),
        (_set(f"{TIMER}.qualifier", "3"), f"{AT}.qualifier", "$DEFAULT or $LATEST"),
        (_set("inputs.events.0", {"apigw": {"parameters": {}}}), "inputs.events[0].apigw", "went offline"),
        (_set("inputs.events.0", {"cos": {"parameters": {}}}), "inputs.events[0].cos", "only timer events"),
        (_set("inputs.layers", [{"name": "deps", "version": 1}]), "inputs.layers", "one zip"),
        (_set("inputs.vpcConfig", {}), "inputs.vpcConfig", "unknown input"),
        (_set("inputs.type", "web"), "inputs.type", "must be `event`"),
        (_set("inputs.description", "Images (nightly)"), "inputs.description", "no other punctuation"),
        (_set("inputs.name", "9-lives"), "inputs.name", "not a function name"),
        (_set("inputs.region", "Guangzhou"), "inputs.region", "not a region"),
        (_set("inputs.handler", "index.main_handler"), "inputs.handler", "no index.py"),
        (_set("inputs.handler", "handler"), "inputs.handler", "must be `file.function`"),
        (_set("inputs.environment.variables.TENCENTCLOUD_REGION", "x"),
         "inputs.environment.variables.TENCENTCLOUD_REGION", "reserves the prefixes"),
        (_set("inputs.environment.variables.BLUEPRINT_KEEP", 7), "inputs.environment.variables.BLUEPRINT_KEEP",
         "quote it"),
        (_set("inputs.environment.variables.BLUEPRINT_HTTP_TOKEN", "written-in-the-file"),
         "inputs.environment.variables.BLUEPRINT_HTTP_TOKEN", "never be written in the file"),
        (_set("inputs.description", "${org}"), "inputs.description", "cannot be resolved here"),
        (_set("component", "website"), "component", "must be `scf`"),
        (_set("provider", "tencent"), "provider", "unknown top-level key"),
        (_set(f"{URL}.authType", "APP"), f"{URL}.authType", "NONE"),
        (_set(f"{URL}.port", 80), f"{URL}.port", "unknown key"),
        (_set(f"{URL}.extranet", False), f"{URL}.extranet", "one must be true"),
        (_set(f"{URL}.name", "nightly-blueprint"), "inputs.events", "`nightly-blueprint` is used twice"),
    ],
)
def test_bad_fields_are_named_in_one_line(tmp_path: Path, change: Callable[[dict[str, Any]], None], field: str,
                                          words: str) -> None:
    with pytest.raises(ConfigFileError) as info:
        load(write(tmp_path, change))
    message = str(info.value)
    assert message.startswith(f"serverless.yml: {field}: "), message
    assert words in message and "\n" not in message


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="not found"):
        load(tmp_path / "serverless.yml")
    bad = tmp_path / "serverless.yml"
    bad.write_text("inputs:\n  name: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigFileError, match=r"serverless.yml: not valid YAML \(line 3, column 1\)"):
        load(bad)
    bad.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(ConfigFileError, match="must hold a YAML mapping"):
        load(bad)


def test_the_cli_answers_a_bad_file_with_exit_2_and_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLUEPRINT_HTTP_TOKEN", "a-token-from-the-shell")
    path = write(tmp_path, _set("inputs.memorySize", 100))
    assert main(["deploy", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == "error: serverless.yml: inputs.memorySize: 100 MB: SCF takes 64, or 128 to 3072 in steps of 128\n"


def test_a_real_process_shows_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "serverless.yml").write_text("inputs: [\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "blueprint", "deploy"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: serverless.yml: not valid YAML (line 2") and "Traceback" not in done.stderr
    missing = subprocess.run([sys.executable, "-m", "blueprint", "deploy", "--config", "nope.yml"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(ROOT)}, check=False)
    assert missing.returncode == 2 and missing.stderr.startswith("error: nope.yml: not found")


def test_the_deploy_tool_reads_its_credentials_as_the_function_does(tmp_path: Path) -> None:
    # Without what is around a value, and a value of spaces only is none: the other spelling is read then.
    from blueprint.deploy.scf import find_credentials
    from blueprint.errors import ConfigError

    creds = find_credentials({"TENCENTCLOUD_SECRET_ID": "   ", "TENCENTCLOUD_SECRET_KEY": " ",
                              "TENCENTCLOUD_SECRETID": " AKIDscf\n", "TENCENTCLOUD_SECRETKEY": "\ufeffkey-1",
                              "TENCENTCLOUD_SESSIONTOKEN": "token-1\u200b\n"}, tmp_path)
    assert (creds.secret_id, creds.secret_key, creds.token) == ("AKIDscf", "key-1", "token-1")
    with pytest.raises(ConfigError, match="no Tencent Cloud credentials"):
        find_credentials({"TENCENTCLOUD_SECRET_ID": "AKIDx", "TENCENTCLOUD_SECRET_KEY": "\u200b"}, tmp_path)
    # The SDK's profile file is read the same way.
    (tmp_path / ".tencentcloud").mkdir()
    (tmp_path / ".tencentcloud" / "credentials").write_text(
        "[default]\nsecret_id = AKIDfile\u200b\nsecret_key = \ufeffkey-2\n", encoding="utf-8")
    creds = find_credentials({}, tmp_path)
    assert (creds.secret_id, creds.secret_key) == ("AKIDfile", "key-2")
