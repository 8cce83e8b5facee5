"""serverless.yml against the `scf` component's documented inputs (serverless-components/tencent-scf
docs/configure.md) and against what `python -m blueprint deploy` reads from it."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from blueprint.events import parse_job, parse_json
from blueprint.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

# serverless-components/tencent-scf docs/configure.md.
INPUT_KEYS = {"name", "namespace", "type", "src", "handler", "runtime", "region", "description", "memorySize",
              "timeout", "initTimeout", "role", "environment", "layers", "deadLetter", "msgTTL", "retryNum",
              "asyncRunEnable", "events"}
TRIGGER_TYPES = {"apigw", "cos", "timer", "cmq", "ckafka", "cls", "mps", "clb"}
TIMER_KEYS = {"name", "qualifier", "cronExpression", "argument", "enable"}
APIGW_KEYS = {"environment", "serviceId", "instanceId", "protocols", "netTypes", "serviceName", "description",
              "endpoints"}
ENDPOINT_KEYS = {"path", "method", "apiId", "apiName", "description", "enableCORS", "responseType",
                 "serviceTimeout", "param", "function", "usagePlan", "auth", "authType", "app", "isBase64Encoded",
                 "isBase64Trigger", "base64EncodedTriggerRules"}
# The SCF API's runtimes (the component's own allow-list is older, see the comment in serverless.yml).
RUNTIMES = {"Python3.6", "Python3.7", "Python3.9", "Python3.10"}
CRON_FIELD = re.compile(r"^[0-9A-Za-z*,/\-]+$")
ENV_REFERENCE = re.compile(r"^\$\{env:[A-Z0-9_]+\}$")


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "serverless.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def inputs(config: dict[str, Any]) -> dict[str, Any]:
    return config["inputs"]


def triggers(inputs: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [event[kind]["parameters"] for event in inputs["events"] if kind in event]


def test_component_and_only_documented_inputs(config: dict[str, Any], inputs: dict[str, Any]) -> None:
    assert config["component"] == "scf"
    assert config["name"]
    assert set(inputs) <= INPUT_KEYS, f"undocumented inputs: {set(inputs) - INPUT_KEYS}"
    for event in inputs["events"]:
        assert len(event) == 1 and set(event) <= TRIGGER_TYPES


def test_runtime_memory_timeout(inputs: dict[str, Any]) -> None:
    assert inputs["runtime"] == "Python3.10" and inputs["runtime"] in RUNTIMES
    memory = inputs["memorySize"]
    assert memory == 64 or (128 <= memory <= 3072 and memory % 128 == 0)
    assert isinstance(inputs["timeout"], int) and 1 <= inputs["timeout"] <= 900
    assert inputs["timeout"] >= 300, "Wait and fleet runs need minutes, not the 3 s default"


def test_handler_file_exists_and_exposes_main_handler(inputs: dict[str, Any]) -> None:
    module, _, function = inputs["handler"].partition(".")
    assert inputs["handler"] == "handler.main_handler"
    tree = ast.parse((ROOT / f"{module}.py").read_text(encoding="utf-8"))
    handlers = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function]
    assert handlers and [a.arg for a in handlers[0].args.args] == ["event", "context"]


def test_src_is_the_one_zip_unpacked_and_there_is_no_layer(inputs: dict[str, Any]) -> None:
    # One zip with the code and every dependency (`python -m blueprint package`), no layer: the sls route
    # uploads that zip unpacked (docs/deploy.md); `python -m blueprint deploy` uploads the zip itself.
    assert "layers" not in inputs
    assert inputs["src"] == "./dist/package"
    assert (ROOT / inputs["src"]).resolve().relative_to(ROOT / "dist")  # under dist/, which git ignores
    assert "dist/" in (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    docs = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert "python -m blueprint package --output dist/blueprint-fn.zip" in docs
    assert "unzip -o dist/blueprint-fn.zip -d dist/package" in docs


def test_environment_has_no_secret_values(inputs: dict[str, Any]) -> None:
    variables: dict[str, Any] = inputs["environment"]["variables"]
    known = {field.validation_alias for field in Settings.model_fields.values()}
    for name, value in variables.items():
        assert isinstance(value, str), f"{name}: SCF variables are strings"
        assert not name.startswith(("TENCENTCLOUD_", "SCF_", "QCLOUD_")), f"{name}: reserved prefix"
        assert name in known, f"{name}: not a variable the function reads"
        if any(word in name for word in ("TOKEN", "SECRET", "KEY")) and name != "BLUEPRINT_KEEP":
            assert ENV_REFERENCE.match(value), f"{name}: a secret must come from ${{env:...}}"
    assert variables["BLUEPRINT_HTTP_TOKEN"] == "${env:BLUEPRINT_HTTP_TOKEN}"
    # The literal values must be valid for the function (a bad one would fail every invocation at start).
    from blueprint.settings import load_settings

    load_settings({k: v for k, v in variables.items() if not ENV_REFERENCE.match(v)})


def test_role_is_set(inputs: dict[str, Any]) -> None:
    assert inputs["role"] == "SCF_LighthouseBlueprintRole"


def test_timer(inputs: dict[str, Any]) -> None:
    (timer,) = triggers(inputs, "timer")
    assert set(timer) <= TIMER_KEYS
    fields = timer["cronExpression"].split()
    assert len(fields) == 7 and all(CRON_FIELD.match(f) for f in fields)
    assert timer["enable"] is True, "left out, the component creates the timer CLOSED"
    assert isinstance(timer["argument"], str) and len(timer["argument"].encode()) <= 4096
    job = parse_job(parse_json(timer["argument"], what="timer argument"))
    assert job.Selector is not None or job.InstanceId is not None or job.InstanceIds


def test_no_api_gateway_and_the_function_url_is_in_the_deploy_section(config: dict[str, Any],
                                                                        inputs: dict[str, Any]) -> None:
    # API Gateway triggers went offline on 2025-06-30; the component cannot declare a Function URL, so the
    # file's own section declares it for `python -m blueprint deploy`.
    assert not triggers(inputs, "apigw")
    assert set(config) - {"app", "stage", "component", "name", "inputs"} == {"x-blueprint-deploy"}
    url = config["x-blueprint-deploy"]["functionUrl"]
    assert url == {"name": "blueprint-url", "qualifier": "$DEFAULT", "authType": "NONE", "extranet": True,
                   "intranet": False}


def test_the_deploy_command_reads_this_file() -> None:
    from blueprint.deploy.config import load_deployment

    deployment = load_deployment(ROOT / "serverless.yml", env={"BLUEPRINT_HTTP_TOKEN": "t" * 20}, root=ROOT)
    fn = deployment.function
    assert (fn.name, fn.runtime, fn.handler, fn.memory, fn.timeout, fn.role) == (
        "lighthouse-blueprint-prod", "Python3.10", "handler.main_handler", 128, 900, "SCF_LighthouseBlueprintRole")
    assert fn.environment["BLUEPRINT_HTTP_TOKEN"] == "t" * 20 and deployment.region == "ap-guangzhou"
    [timer] = deployment.timers
    assert (timer.name, timer.cron, timer.enable) == ("nightly-blueprint", "0 0 3 * * * *", True)
    assert deployment.url is not None and deployment.url.auth_type == "NONE"
