"""SCF functions and triggers as records: documented limits, checks and the API shapes they answer with.

Sources (public): the SDK's models (tencentcloud-sdk-python `tencentcloud/scf/v20180416/models.py`), the API
pages (https://cloud.tencent.com/document/product/583/18586 CreateFunction, .../18584 GetFunction,
.../18581 UpdateFunctionCode, .../18589 CreateTrigger, .../18588 DeleteTrigger), the status page
(https://www.tencentcloud.com/document/product/583/37883), the quota page
(https://cloud.tencent.com/document/product/583/11637) and the Function URL pages (583/96099, 583/100227).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from emulator.errors import ApiError

# Runtimes the CreateFunction docstring lists (tencentcloud-sdk-python models.py); API default Python2.7.
RUNTIMES = (
    "Python2.7", "Python3.6", "Python3.7", "Python3.9", "Python3.10",
    "Nodejs6.10", "Nodejs8.9", "Nodejs10.15", "Nodejs12.16", "Nodejs14.18", "Nodejs16.13", "Nodejs18.15",
    "Php5.6", "Php7", "Php7.4", "Php8.0", "Go1", "Java8", "CustomRuntime",
)
FUNCTION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,58}[A-Za-z0-9]$")  # 2-60, letter first, no -/_ last
HANDLER_PART = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,58}[A-Za-z]$")  # file and function: 2-60, letters at the ends
TRIGGER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")  # timer names: letters, digits, - and _, up to 100
# "letters, digits, spaces, commas, newlines and periods; Chinese supported", up to 1000 characters.
DESCRIPTION = re.compile(r"^[A-Za-z0-9 ,.\n\u4e00-\u9fff\u3000-\u303f\uff00-\uffef]{0,1000}$")
CRON_FIELD = re.compile(r"^[0-9A-Za-z*,/\-?]+$")
RESERVED_PREFIXES = ("SCF_", "QCLOUD_", "TENCENTCLOUD_")
MAX_ENVIRONMENT_BYTES = 4 * 1024
MAX_ZIP_CREATE = 50 * 1024 * 1024  # Code.ZipFile: "zip包大小上限为 50MB"
MAX_ZIP_UPDATE = 20 * 1024 * 1024  # UpdateFunctionCode.ZipFile: "最大支持20M"
MAX_CUSTOM_ARGUMENT = 4 * 1024
MAX_FUNCTIONS_PER_NAMESPACE = 50
MAX_TRIGGERS_PER_TYPE = 10
QUALIFIERS = ("$LATEST", "$DEFAULT")
TRIGGER_TYPES = ("timer", "http")
# Types the API knows but the emulator does not serve.
OTHER_TRIGGER_TYPES = ("cos", "cls", "ckafka", "cmq", "apigw", "mps", "clb")
# Where an update leaves the function when it may be updated again.
UPDATABLE = ("Active", "UpdateFailed")


def scf_time(epoch: float) -> str:
    """`YYYY-MM-DD hh:mm:ss`, the format of SCF's AddTime/ModTime (UTC here)."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class Trigger:
    """One trigger of a function, as CreateTrigger made it."""

    name: str
    type: str
    qualifier: str
    desc: str
    enable: bool
    custom_argument: str
    description: str
    add_time: float
    mod_time: float
    url_id: str = ""


@dataclass
class Function:
    """One function: what GetFunction shows (`config`), what invocations run (`live_*`), and its state."""

    name: str
    namespace: str
    region: str | None  # None: a function only registered for Invoke (any region)
    config: dict[str, Any]
    code: bytes | None
    status: str = "Active"
    reasons: list[dict[str, str]] = field(default_factory=list)
    due: float | None = None
    fail_with: str | None = None
    live_config: dict[str, Any] = field(default_factory=dict)
    live_code: bytes | None = None
    previous: tuple[dict[str, Any], bytes | None] | None = None
    handler: Any = None
    triggers: dict[str, Trigger] = field(default_factory=dict)
    function_id: str = ""
    add_time: float = 0.0
    mod_time: float = 0.0

    @property
    def code_sha256(self) -> str:
        """SHA-256 of the stored zip (hex), "" without code."""
        return hashlib.sha256(self.code).hexdigest() if self.code is not None else ""


def check_function_name(name: str) -> None:
    """Raises:
    ApiError: InvalidParameterValue.FunctionName for a name outside the documented rule.
    """
    if not FUNCTION_NAME.match(name):
        raise ApiError("InvalidParameterValue.FunctionName",
                       f"The function name `{name}` must be 2-60 letters, digits, - and _, start with a letter "
                       "and not end with - or _.")


def check_handler(handler: str) -> None:
    """Raises:
    ApiError: InvalidParameterValue.Handler unless `file.function`, each part 2-60 characters.
    """
    module, dot, function = handler.rpartition(".")
    if not dot or not all(HANDLER_PART.match(part) for part in (module, function)):
        raise ApiError("InvalidParameterValue.Handler",
                       f"The handler `{handler}` must be `file.function`, each 2-60 letters, digits, - and _.")


def check_memory(memory: int) -> None:
    """Raises:
    ApiError: InvalidParameterValue.MemorySize unless 64, or 128-3072 in steps of 128.
    """
    if not (memory == 64 or (128 <= memory <= 3072 and memory % 128 == 0)):
        raise ApiError("InvalidParameterValue.MemorySize",
                       f"`MemorySize` {memory} must be 64, or 128-3072 in steps of 128.")


def check_timeout(timeout: int) -> None:
    """Raises:
    ApiError: LimitExceeded.Timeout outside 1-900 s (an event function).
    """
    if not 1 <= timeout <= 900:
        raise ApiError("LimitExceeded.Timeout", f"`Timeout` {timeout} must be 1-900 seconds.")


def check_runtime(runtime: str) -> None:
    """Raises:
    ApiError: InvalidParameterValue.Runtime for a runtime the API does not list.
    """
    if runtime not in RUNTIMES:
        raise ApiError("InvalidParameterValue.Runtime", f"The runtime `{runtime}` is not supported.")


def check_description(text: str) -> None:
    """Raises:
    ApiError: InvalidParameterValue.Description outside the documented characters or over 1000.
    """
    if not DESCRIPTION.match(text):
        raise ApiError("InvalidParameterValue.Description",
                       "`Description` allows up to 1000 letters, digits, spaces, commas, newlines and periods.")


def environment(value: dict[str, Any] | None) -> dict[str, str]:
    """The `Environment` parameter as a dict.

    Raises:
        ApiError: InvalidParameterValue.Environment (empty key or value, duplicate key),
            InvalidParameterValue.EnvironmentSystemProtect (a reserved prefix),
            InvalidParameterValue.EnvironmentExceededLimit (over 4 KB in total).
    """
    result: dict[str, str] = {}
    for item in (value or {}).get("Variables") or []:
        key, val = item["Key"], item["Value"]
        if not key or not val or key in result:
            raise ApiError("InvalidParameterValue.Environment",
                           f"Environment variable `{key}`: keys and values must be non-empty and keys unique.")
        if key.upper().startswith(RESERVED_PREFIXES):
            raise ApiError("InvalidParameterValue.EnvironmentSystemProtect",
                           f"Environment variable `{key}` uses a reserved prefix ({', '.join(RESERVED_PREFIXES)}).")
        result[key] = val
    if sum(len(k.encode()) + len(v.encode()) for k, v in result.items()) > MAX_ENVIRONMENT_BYTES:
        raise ApiError("InvalidParameterValue.EnvironmentExceededLimit",
                       f"Environment variables exceed {MAX_ENVIRONMENT_BYTES} bytes in total.")
    return result


def decode_zip(text: str, limit: int) -> bytes:
    """The zip bytes of a base64 `ZipFile`.

    Raises:
        ApiError: InvalidParameterValue.ZipFileBase64BinasciiError (not base64),
            InvalidParameterValue.ZipFile (over `limit` or not a zip file).
    """
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError("InvalidParameterValue.ZipFileBase64BinasciiError", "`ZipFile` is not base64.") from None
    if len(data) > limit:
        raise ApiError("InvalidParameterValue.ZipFile", f"The zip file is larger than {limit} bytes.")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ApiError("InvalidParameterValue.ZipFile", "The file is not a standard zip file.")
    return data


def check_cron(expression: str) -> None:
    """Raises:
    ApiError: InvalidParameterValue.TriggerDesc unless 7 fields (or the legacy 5) of cron characters.
    """
    fields = expression.split()
    if len(fields) not in (5, 7) or not all(CRON_FIELD.match(part) for part in fields):
        raise ApiError("InvalidParameterValue.TriggerDesc",
                       f"The cron expression `{expression}` must have 7 fields (second first) or the legacy 5.")


def http_desc(text: str) -> dict[str, Any]:
    """A Function URL `TriggerDesc` as a dict.

    Raises:
        ApiError: InvalidParameterValue.TriggerDesc unless JSON with AuthType NONE|CAM and NetConfig booleans.
    """
    try:
        desc = json.loads(text)
    except ValueError:
        desc = None
    net = desc.get("NetConfig") if isinstance(desc, dict) else None
    if (not isinstance(desc, dict) or desc.get("AuthType") not in ("NONE", "CAM") or not isinstance(net, dict)
            or not all(isinstance(net.get(k), bool) for k in ("EnableIntranet", "EnableExtranet"))):
        raise ApiError("InvalidParameterValue.TriggerDesc",
                       'A Function URL needs TriggerDesc {"AuthType": "NONE"|"CAM", "NetConfig": '
                       '{"EnableIntranet": bool, "EnableExtranet": bool}}.')
    if not (net["EnableIntranet"] or net["EnableExtranet"]):
        raise ApiError("InvalidParameterValue.TriggerDesc", "A Function URL needs intranet or extranet access.")
    return desc


def trigger_desc(trigger: Trigger, base_url: str) -> str:
    """`TriggerDesc` as the API reads it back: `{"cron": ...}` for timers; the URLs filled in for http."""
    if trigger.type == "timer":
        return json.dumps({"cron": trigger.desc})
    desc = json.loads(trigger.desc)
    net = dict(desc["NetConfig"])
    net["ExtranetUrl"] = f"{base_url}/_fn/{trigger.url_id}" if net["EnableExtranet"] else ""
    net["IntranetUrl"] = f"{base_url}/_fn/{trigger.url_id}-in" if net["EnableIntranet"] else ""
    return json.dumps({**desc, "NetConfig": net})


def trigger_shape(trigger: Trigger, base_url: str, *, listing: bool = False) -> dict[str, Any]:
    """A `Trigger` object (GetFunction, CreateTrigger), or with `listing` a `TriggerInfo` (ListTriggers)."""
    shape = {
        "TriggerName": trigger.name,
        "Type": trigger.type,
        "TriggerDesc": trigger_desc(trigger, base_url),
        "Qualifier": trigger.qualifier,
        "Enable": 1 if trigger.enable else 0,
        "CustomArgument": trigger.custom_argument,
        "Description": trigger.description,
        "AddTime": scf_time(trigger.add_time),
        "ModTime": scf_time(trigger.mod_time),
        "AvailableStatus": "Available",
        "ResourceId": "",
        "BindStatus": "",
        "TriggerAttribute": "",
    }
    if listing:
        shape["BoundResources"] = ""
    return shape


def function_shape(fn: Function, base_url: str) -> dict[str, Any]:
    """The GetFunction answer (without RequestId)."""
    cfg = fn.config
    return {
        "FunctionName": fn.name,
        "Namespace": fn.namespace,
        "FunctionId": fn.function_id,
        "FunctionVersion": "$LATEST",
        "Qualifier": "$LATEST",
        "Runtime": cfg.get("Runtime"),
        "Handler": cfg.get("Handler", ""),
        "MemorySize": cfg.get("MemorySize", 128),
        "Timeout": cfg.get("Timeout", 3),
        "InitTimeout": cfg.get("InitTimeout", 65),
        "Description": cfg.get("Description", ""),
        "Role": cfg.get("Role", ""),
        "Type": cfg.get("Type", "Event"),
        "Environment": {"Variables": [{"Key": k, "Value": v} for k, v in cfg.get("Environment", {}).items()]},
        "Status": fn.status,
        "StatusDesc": fn.reasons[0]["ErrorMessage"] if fn.reasons else "",
        "StatusReasons": list(fn.reasons),
        "CodeSize": len(fn.code) if fn.code is not None else 0,
        "CodeInfo": "",
        "CodeResult": "success",
        "CodeError": "",
        "ErrNo": 0,
        "AvailableStatus": "Available",
        "AddTime": scf_time(fn.add_time),
        "ModTime": scf_time(fn.mod_time),
        "Layers": [],
        "Tags": [],
        "AsyncRunEnable": "FALSE",
        "TraceEnable": "FALSE",
        "Triggers": [trigger_shape(t, base_url) for t in fn.triggers.values()],
    }


def list_shape(fn: Function) -> dict[str, Any]:
    """A `Function` object of ListFunctions."""
    return {
        "FunctionName": fn.name,
        "Namespace": fn.namespace,
        "FunctionId": fn.function_id,
        "Runtime": fn.config.get("Runtime"),
        "Status": fn.status,
        "StatusDesc": fn.reasons[0]["ErrorMessage"] if fn.reasons else "",
        "StatusReasons": list(fn.reasons),
        "Description": fn.config.get("Description", ""),
        "Type": fn.config.get("Type", "Event"),
        "AddTime": scf_time(fn.add_time),
        "ModTime": scf_time(fn.mod_time),
        "Tags": [],
        "AsyncRunEnable": "FALSE",
        "TraceEnable": "FALSE",
    }
