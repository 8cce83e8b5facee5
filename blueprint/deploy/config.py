"""serverless.yml into a `Deployment`: the Serverless Framework's variables resolved, every field checked.

The file is the `scf` component's (serverless-components/tencent-scf docs/configure.md), so `sls deploy` and
this command read one description. Variables follow the Framework's components CLI
(serverless/components `src/cli/utils.js` `resolveInputVariables`, `commands-cn/utils.js`): `${env:VAR}` is the
deploying shell's variable (a value that is only the reference and whose variable is unset counts as absent),
`${stage}` is `--stage` or the file's `stage` (default `dev`), `${app}` the file's `app` (default `name`),
`${name}` the instance name. The Function URL, which the component cannot declare, sits in the top-level
`x-blueprint-deploy` section that only this command reads.

Every problem is a `ConfigFileError` whose message names the field, in one line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml  # a deploy-only dependency (requirements-deploy.txt); `python -m blueprint deploy` says so if missing

from blueprint.deploy.models import Deployment, FunctionSpec, FunctionUrl, Timer

__all__ = ["DEPLOY_SECTION", "RUNTIME", "ConfigFileError", "load_deployment"]

DEPLOY_SECTION = "x-blueprint-deploy"
RUNTIME = "Python3.10"  # what `python -m blueprint package` builds for (cp310 wheels and .pyc files)
# The runtimes the SCF API lists (CreateFunctionRequest.Runtime in the SDK's models.py).
SCF_RUNTIMES = ("Python2.7", "Python3.6", "Python3.7", "Python3.9", "Python3.10", "Nodejs6.10", "Nodejs8.9",
                "Nodejs10.15", "Nodejs12.16", "Nodejs14.18", "Nodejs16.13", "Nodejs18.15", "Php5.6", "Php7",
                "Php7.4", "Php8.0", "Go1", "Java8", "CustomRuntime")
TOP_KEYS = ("org", "app", "stage", "component", "name", "inputs", DEPLOY_SECTION)
# Inputs this command applies; `src` is for `sls deploy` (this command always deploys the package it builds).
INPUT_KEYS = ("name", "namespace", "type", "src", "handler", "runtime", "region", "description", "memorySize",
              "timeout", "initTimeout", "role", "environment", "events")
# Documented component inputs this command does not apply: refused rather than silently ignored.
UNSUPPORTED_INPUTS = {
    "layers": "this project deploys one zip with its dependencies and no layer (docs/deploy.md); remove it",
    "deadLetter": "set the dead-letter queue with tccli (docs/deploy.md)",
    "msgTTL": "set async retries with tccli (docs/deploy.md)",
    "retryNum": "set async retries with tccli (docs/deploy.md)",
    "asyncRunEnable": "async execution is not used by this function",
}
TIMER_KEYS = ("name", "qualifier", "cronExpression", "argument", "enable")
URL_KEYS = ("name", "qualifier", "authType", "extranet", "intranet")
SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD")
RESERVED_PREFIXES = ("SCF_", "QCLOUD_", "TENCENTCLOUD_")
FUNCTION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,58}[A-Za-z0-9]$")
TRIGGER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,59}$")
HANDLER = re.compile(r"^([A-Za-z][A-Za-z0-9_-]{0,58}[A-Za-z])\.([A-Za-z][A-Za-z0-9_-]{0,58}[A-Za-z])$")
REGION = re.compile(r"^[a-z]+(-[a-z0-9]+)+$")
# SCF's Description: letters, digits, spaces, commas, newlines and periods (and Chinese), up to 1000.
DESCRIPTION = re.compile(r"^[A-Za-z0-9 ,.\n\u4e00-\u9fff]{0,1000}$")
VARIABLE = re.compile(r"\$\{([^}]*)\}")
MAX_ARGUMENT = 4096
# Cron fields, seconds first (https://cloud.tencent.com/document/product/583/9708): name, low, high, names.
CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("second", 0, 59, ()),
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("week", 0, 6, ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")),
    ("year", 1970, 2099, ()),
)


class ConfigFileError(Exception):
    """serverless.yml cannot be deployed; `str()` is one line naming the file and the field."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where


@dataclass(frozen=True)
class _Context:
    """What the variables resolve against."""

    file: str
    stage: str
    app: str
    name: str
    env: Mapping[str, str]

    def fail(self, field: str, message: str) -> ConfigFileError:
        return ConfigFileError(f"{self.file}: {field}" if field else self.file, message)


def load_deployment(path: Path, *, stage: str | None = None, region: str | None = None,
                    env: Mapping[str, str], root: Path | None = None) -> Deployment:
    """Read and check serverless.yml; `root` is where the handler's file must be (the package's sources).

    Raises:
        ConfigFileError: the file is missing, not YAML, or a field is wrong (the message names it).
    """
    document = _read(path)
    top = _mapping(document, "", _Context(path.name, "", "", "", env))
    name = top.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigFileError(f"{path.name}: name", "required: the component instance name")
    file_stage = top.get("stage")
    ctx = _Context(path.name, stage or (str(file_stage) if file_stage else "dev"),
                   str(top.get("app") or name), name, env)
    _check_top(top, ctx)
    _check_secret_sources(_mapping(top["inputs"], "inputs", ctx), ctx)
    inputs = _mapping(_resolve(top["inputs"], "inputs", ctx), "inputs", ctx)
    section = _mapping(_resolve(top.get(DEPLOY_SECTION) or {}, DEPLOY_SECTION, ctx), DEPLOY_SECTION, ctx)
    return _deployment(inputs, section, ctx, region, root)


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError(str(path), "not found (run from the project's directory, or give --config)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigFileError(str(path), f"cannot be read: {err}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigFileError(path.name, f"not valid YAML{where}: {problem}") from None


def _check_top(top: Mapping[str, Any], ctx: _Context) -> None:
    unknown = sorted(set(top) - set(TOP_KEYS))
    if unknown:
        raise ctx.fail(unknown[0], f"unknown top-level key (known: {', '.join(TOP_KEYS)})")
    if top.get("component") != "scf":
        raise ctx.fail("component", "must be `scf` (the Serverless Framework's SCF component)")
    if "inputs" not in top:
        raise ctx.fail("inputs", "required")


def _mapping(value: Any, field: str, ctx: _Context) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ctx.fail(field, "must be a mapping" if field else "must hold a YAML mapping (key: value lines)")
    return value


# ---- variables ------------------------------------------------------------------------------------------


def _resolve(value: Any, field: str, ctx: _Context) -> Any:
    """`value` with every variable resolved (None where a whole-value `${env:VAR}` is unset)."""
    if isinstance(value, dict):
        return {k: _resolve(v, f"{field}.{k}", ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, f"{field}[{i}]", ctx) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value
    whole = VARIABLE.fullmatch(value)
    if whole:
        return _variable(whole.group(1), field, ctx, embedded=False)
    return VARIABLE.sub(lambda m: str(_variable(m.group(1), field, ctx, embedded=True)), value)


def _variable(name: str, field: str, ctx: _Context, *, embedded: bool) -> str | None:
    fixed = {"stage": ctx.stage, "app": ctx.app, "name": ctx.name}
    if name in fixed:
        return fixed[name]
    if name.startswith("env:"):
        var = name.removeprefix("env:")
        value = ctx.env.get(var)
        if value is None and embedded:
            raise ctx.fail(field, f"${{env:{var}}} is not set in this shell (inside a longer value it cannot "
                                  "be left out)")
        return value
    raise ctx.fail(field, f"${{{name}}} cannot be resolved here (known: ${{stage}}, ${{app}}, ${{name}}, "
                          "${env:VAR})")


# ---- the deployment -------------------------------------------------------------------------------------


def _deployment(inputs: dict[str, Any], section: dict[str, Any], ctx: _Context, region: str | None,
                root: Path | None) -> Deployment:
    _check_input_keys(inputs, ctx)
    env, secrets = _environment(inputs.get("environment"), ctx)
    function = FunctionSpec(
        name=_function_name(inputs, ctx),
        namespace=_text(inputs, "namespace", ctx, default="default"),
        runtime=_runtime(inputs, ctx),
        handler=_handler(inputs, ctx, root),
        description=_description(inputs, ctx),
        memory=_memory(inputs, ctx),
        timeout=_bounded(inputs, "timeout", 1, 900, ctx, default=3, unit="seconds"),
        init_timeout=_bounded(inputs, "initTimeout", 3, 300, ctx, default=None, unit="seconds"),
        role=_text(inputs, "role", ctx, default=""),
        environment=env,
    )
    timers = _timers(inputs.get("events"), ctx)
    url = _function_url(section, ctx)
    names = [t.name for t in timers] + ([url.name] if url else [])
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise ctx.fail("inputs.events", f"the trigger name `{duplicate}` is used twice")
    return Deployment(region=_region(inputs, region, ctx), stage=ctx.stage, function=function,
                      timers=tuple(timers), url=url, secrets=frozenset(secrets))


def _check_secret_sources(inputs: Mapping[str, Any], ctx: _Context) -> None:
    """A secret variable (…TOKEN, …SECRET, …PASSWORD) must be `${env:VAR}`: never written in the file."""
    environment = inputs.get("environment")
    variables = environment.get("variables") if isinstance(environment, dict) else None
    for key, value in (variables if isinstance(variables, dict) else {}).items():
        if _is_secret(str(key)) and not (isinstance(value, str) and re.fullmatch(r"\$\{env:[^}]+\}", value)):
            raise ctx.fail(f"inputs.environment.variables.{key}",
                           f"a secret must come from the deploying shell (`{key}: ${{env:{key}}}`), never be "
                           "written in the file")


def _is_secret(name: str) -> bool:
    return any(word in name.upper() for word in SECRET_WORDS)


def _check_input_keys(inputs: Mapping[str, Any], ctx: _Context) -> None:
    for key in inputs:
        if key in UNSUPPORTED_INPUTS:
            raise ctx.fail(f"inputs.{key}", f"not applied by python -m blueprint deploy: {UNSUPPORTED_INPUTS[key]}")
        if key not in INPUT_KEYS:
            raise ctx.fail(f"inputs.{key}", f"unknown input (known: {', '.join(INPUT_KEYS)})")
    if inputs.get("type", "event") != "event":
        raise ctx.fail("inputs.type", "must be `event` (this function is an event function)")


def _text(inputs: Mapping[str, Any], key: str, ctx: _Context, *, default: str) -> str:
    value = inputs.get(key)
    if value is None:
        return default
    if not isinstance(value, str) or not value:
        raise ctx.fail(f"inputs.{key}", "must be a non-empty string")
    return value


def _function_name(inputs: Mapping[str, Any], ctx: _Context) -> str:
    # The component's default function name is ${name}-${stage}-${app}.
    name = _text(inputs, "name", ctx, default=f"{ctx.name}-{ctx.stage}-{ctx.app}")
    if not FUNCTION_NAME.match(name):
        raise ctx.fail("inputs.name", f"`{name}` is not a function name: 2-60 letters, digits, - and _, starting "
                                      "with a letter, not ending with - or _")
    return name


def _region(inputs: Mapping[str, Any], override: str | None, ctx: _Context) -> str:
    region = override or _text(inputs, "region", ctx, default="ap-guangzhou")
    if not REGION.match(region):
        raise ctx.fail("--region" if override else "inputs.region", f"`{region}` is not a region (ap-guangzhou)")
    return region


def _runtime(inputs: Mapping[str, Any], ctx: _Context) -> str:
    runtime = inputs.get("runtime")
    if runtime == RUNTIME:
        return RUNTIME
    if runtime in SCF_RUNTIMES:
        raise ctx.fail("inputs.runtime", f"`{runtime}` is an SCF runtime, but the package is built for {RUNTIME} "
                                         "(its compiled wheels and .pyc files)")
    if runtime is None:
        raise ctx.fail("inputs.runtime", f"required: {RUNTIME} (the SCF API's default is Python2.7)")
    raise ctx.fail("inputs.runtime", f"unknown runtime `{runtime}`; this function runs on {RUNTIME}")


def _handler(inputs: Mapping[str, Any], ctx: _Context, root: Path | None) -> str:
    handler = _text(inputs, "handler", ctx, default="index.main_handler")
    match = HANDLER.match(handler)
    if not match:
        raise ctx.fail("inputs.handler", f"`{handler}` must be `file.function` (handler.main_handler)")
    if root is not None and not (root / f"{match.group(1)}.py").is_file():
        raise ctx.fail("inputs.handler", f"`{handler}`: the package has no {match.group(1)}.py at its root")
    return handler


def _description(inputs: Mapping[str, Any], ctx: _Context) -> str:
    text = inputs.get("description", "")
    if not isinstance(text, str) or not DESCRIPTION.match(text):
        raise ctx.fail("inputs.description", "SCF takes up to 1000 letters, digits, spaces, commas, newlines and "
                                             "periods (no other punctuation)")
    return text


def _integer(inputs: Mapping[str, Any], key: str, ctx: _Context) -> int | None:
    value = inputs.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ctx.fail(f"inputs.{key}", f"must be a whole number, got {value!r}")
    return value


def _memory(inputs: Mapping[str, Any], ctx: _Context) -> int:
    memory = _integer(inputs, "memorySize", ctx)
    if memory is None:
        return 128
    if not (memory == 64 or (128 <= memory <= 3072 and memory % 128 == 0)):
        raise ctx.fail("inputs.memorySize", f"{memory} MB: SCF takes 64, or 128 to 3072 in steps of 128")
    return memory


def _bounded(inputs: Mapping[str, Any], key: str, low: int, high: int, ctx: _Context, *, default: int | None,
             unit: str) -> Any:
    value = _integer(inputs, key, ctx)
    if value is None:
        return default
    if not low <= value <= high:
        raise ctx.fail(f"inputs.{key}", f"{value} {unit}: must be {low} to {high}")
    return value


def _environment(value: Any, ctx: _Context) -> tuple[dict[str, str], set[str]]:
    """The resolved variables (unset `${env:...}` ones left out) and the names holding secrets."""
    if value is None:
        return {}, set()
    variables = _mapping(value, "inputs.environment", ctx).get("variables") or {}
    variables = _mapping(variables, "inputs.environment.variables", ctx)
    result: dict[str, str] = {}
    secrets: set[str] = set()
    for key, item in variables.items():
        field = f"inputs.environment.variables.{key}"
        if str(key).upper().startswith(RESERVED_PREFIXES):
            raise ctx.fail(field, f"SCF reserves the prefixes {', '.join(RESERVED_PREFIXES)} (it sets them itself)")
        if _is_secret(str(key)):
            secrets.add(str(key))
        if item is None:
            continue  # `${env:VAR}` with VAR unset: the Framework leaves the input out
        if not isinstance(item, str):
            raise ctx.fail(field, f"must be a string (SCF variables are strings): quote it, '{item}'")
        if item:
            result[str(key)] = item
    return result, secrets


def _timers(events: Any, ctx: _Context) -> list[Timer]:
    if events is None:
        return []
    if not isinstance(events, list):
        raise ctx.fail("inputs.events", "must be a list of `- timer: ...` items")
    timers = []
    for index, event in enumerate(events):
        field = f"inputs.events[{index}]"
        if not isinstance(event, dict) or len(event) != 1:
            raise ctx.fail(field, "must be one `timer:` mapping")
        (kind, body), = event.items()
        if kind == "apigw":
            raise ctx.fail(f"{field}.apigw", "API Gateway triggers went offline on 2025-06-30; declare the "
                                             f"Function URL under `{DEPLOY_SECTION}: functionUrl:` instead")
        if kind != "timer":
            raise ctx.fail(f"{field}.{kind}", "only timer events are deployed by this command")
        timers.append(_timer(body, f"{field}.timer", ctx))
    return timers


def _timer(body: Any, field: str, ctx: _Context) -> Timer:
    params = _mapping(_mapping(body, field, ctx).get("parameters"), f"{field}.parameters", ctx)
    field = f"{field}.parameters"
    unknown = sorted(set(params) - set(TIMER_KEYS))
    if unknown:
        raise ctx.fail(f"{field}.{unknown[0]}", f"unknown timer parameter (known: {', '.join(TIMER_KEYS)})")
    name = params.get("name") or f"timer-{ctx.name}-{ctx.stage}"  # the component's default
    if not isinstance(name, str) or not TRIGGER_NAME.match(name):
        raise ctx.fail(f"{field}.name", f"`{name}`: 1-60 letters, digits, - and _, starting with a letter")
    cron = params.get("cronExpression")
    if not isinstance(cron, str):
        raise ctx.fail(f"{field}.cronExpression", "required: a 7-field cron expression, seconds first")
    check_cron(cron, f"{field}.cronExpression", ctx.fail)
    argument = params.get("argument", "")
    if not isinstance(argument, str):
        raise ctx.fail(f"{field}.argument", "must be a string (JSON text): the API's CustomArgument is a string")
    if len(argument.encode("utf-8")) > MAX_ARGUMENT:
        raise ctx.fail(f"{field}.argument", f"{len(argument.encode())} bytes: at most {MAX_ARGUMENT}")
    enable = params.get("enable", False)  # the component's default: a timer left CLOSE
    if not isinstance(enable, bool):
        raise ctx.fail(f"{field}.enable", "must be true or false")
    return Timer(name, " ".join(cron.split()), argument, enable, _qualifier(params, field, ctx))


def _qualifier(params: Mapping[str, Any], field: str, ctx: _Context) -> str:
    qualifier = params.get("qualifier", "$DEFAULT")
    if qualifier not in ("$DEFAULT", "$LATEST"):
        raise ctx.fail(f"{field}.qualifier", "must be $DEFAULT or $LATEST (versions are not deployed here)")
    return str(qualifier)


def check_cron(expression: str, field: str, fail: Callable[[str, str], ConfigFileError]) -> None:
    """Check a 7-field cron expression (seconds first) field by field.

    Raises:
        ConfigFileError: (through `fail`) the expression is not 7 fields, or a field is out of its range.
    """
    parts = expression.split()
    if len(parts) != len(CRON_FIELDS):
        raise fail(field, f"`{expression}` has {len(parts)} fields; SCF wants 7, seconds first "
                          "(`0 0 3 * * * *` is 03:00 every day)")
    for part, (name, low, high, names) in zip(parts, CRON_FIELDS, strict=True):
        for item in part.split(","):
            problem = _cron_item(item.upper(), low, high, names)
            if problem:
                raise fail(field, f"the {name} field `{part}` {problem} (allowed: {low}-{high}"
                                  f"{', ' + '/'.join(names[:3]) + '...' if names else ''}, * , - /)")


def _cron_item(item: str, low: int, high: int, names: tuple[str, ...]) -> str:
    """"" when `item` (no commas) is a valid cron item of that field, else what is wrong."""
    base, slash, step = item.partition("/")
    if slash and not (step.isdigit() and int(step) > 0):
        return "has a bad step"
    if base == "*":
        return ""
    bounds = base.split("-")
    if len(bounds) > 2 or not all(bounds):
        return "is not a value or a range"
    for bound in bounds:
        value = names.index(bound) + low if bound in names else (int(bound) if bound.isdigit() else None)
        if value is None or not low <= value <= high:
            return f"has `{bound}`, out of range"
    return ""


def _function_url(section: Mapping[str, Any], ctx: _Context) -> FunctionUrl | None:
    unknown = sorted(set(section) - {"functionUrl"})
    if unknown:
        raise ctx.fail(f"{DEPLOY_SECTION}.{unknown[0]}", "unknown key (known: functionUrl)")
    if section.get("functionUrl") is None:
        return None
    field = f"{DEPLOY_SECTION}.functionUrl"
    params = _mapping(section["functionUrl"], field, ctx)
    unknown = sorted(set(params) - set(URL_KEYS))
    if unknown:
        raise ctx.fail(f"{field}.{unknown[0]}", f"unknown key (known: {', '.join(URL_KEYS)})")
    name = params.get("name", "blueprint-url")
    if not isinstance(name, str) or not TRIGGER_NAME.match(name):
        raise ctx.fail(f"{field}.name", f"`{name}`: 1-60 letters, digits, - and _, starting with a letter")
    auth = params.get("authType", "NONE")
    if auth not in ("NONE", "CAM"):
        raise ctx.fail(f"{field}.authType", "must be NONE (the function checks its bearer token) or CAM")
    extranet, intranet = params.get("extranet", True), params.get("intranet", False)
    if not isinstance(extranet, bool) or not isinstance(intranet, bool) or not (extranet or intranet):
        raise ctx.fail(f"{field}.extranet", "extranet and intranet are true/false, and one must be true")
    return FunctionUrl(name, _qualifier(params, field, ctx), str(auth), extranet, intranet)
