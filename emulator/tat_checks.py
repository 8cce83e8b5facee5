"""TAT request checks: limits, id shapes, custom parameters, Describe* lists and paging (emulator.tat uses them).

Limits and codes: SDK tencentcloud-sdk-python-tat 3.1.106 models.py and the Go SDK's per-action error lists
(tencentcloud/tat/v20201028/client.go); rules the docs do not state (user name and directory shapes) are the
emulator's and listed as unverified in emulator/README.md.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from emulator.errors import ApiError
from emulator.query import Getter

MAX_RUN_INSTANCES = 200  # RunCommand / InvokeCommand InstanceIds ("上限200", SDK 3.1.106)
MAX_IDS = 100  # ids per Describe* request
MAX_FILTERS = 10
MAX_FILTER_VALUES = 5
MAX_LIMIT = 100
DEFAULT_LIMIT = 20
MAX_CONTENT = 64 * 1024  # Base64 Content, characters
TIMEOUT_RANGE = (1, 86400)
DEFAULT_TIMEOUT = 60
MAX_NAME_BYTES = 60
MAX_DESCRIPTION = 120
MAX_TAGS = 10
MAX_PARAMETERS = 20
MAX_PARAMETER_KEY = 64
COMMAND_TYPES = ("SHELL", "POWERSHELL", "BAT")
LINUX_TYPES = ("SHELL",)

COMMAND_ID_RE = re.compile(r"^cmd-[a-z0-9]{8}$")
# Docs say 10 characters after `inv-` / `invt-`, their examples show 8: both are accepted.
INVOCATION_ID_RE = re.compile(r"^inv-[a-z0-9]{8,10}$")
TASK_ID_RE = re.compile(r"^invt-[a-z0-9]{8,10}$")
ANY_INSTANCE_ID_RE = re.compile(r"^(ins|lhins|rins)-[a-z0-9]{8}$")
COMMAND_NAME_RE = re.compile(r"^[\w\-.]+$")  # Chinese, letters, digits, `_`, `-`, `.`
USERNAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
PARAMETER_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")
PLACEHOLDER_RE = re.compile(r"\{\{\s*(?:tat-hidden:)?([A-Za-z0-9_-]+)\s*\}\}")

# Per Describe action: (ids field, id check, code for too many ids/filters, code for too many filter values).
# The codes are the ones the Go SDK lists for that action; where none fits, the bare InvalidParameterValue.
_LISTS: dict[str, tuple[str, str, str]] = {
    "DescribeInvocationTasks": ("InvocationTaskIds", "InvalidParameterValue", "InvalidParameterValue"),
    "DescribeInvocations": (
        "InvocationIds",
        "InvalidParameterValue.LimitExceeded",
        "LimitExceeded.FilterValueExceeded",
    ),
    "DescribeAutomationAgentStatus": (
        "InstanceIds",
        "InvalidParameterValue.LimitExceeded",
        "InvalidParameterValue.LimitExceeded",
    ),
    "DescribeCommands": ("CommandIds", "InvalidParameterValue", "InvalidParameterValue"),
}
# Filter value checks: filter name -> (pattern, error code) for id-valued filters.
_ID_FILTERS: dict[str, tuple[re.Pattern[str], str]] = {
    "invocation-id": (INVOCATION_ID_RE, "InvalidParameterValue.InvalidInvocationId"),
    "invocation-task-id": (TASK_ID_RE, "InvalidParameterValue.InvalidInvocationTaskId"),
    "instance-id": (ANY_INSTANCE_ID_RE, "InvalidParameterValue.InvalidInstanceId"),
    "command-id": (COMMAND_ID_RE, "InvalidParameterValue.InvalidCommandId"),
}
_ID_FIELDS: dict[str, tuple[re.Pattern[str], str]] = {
    "InvocationTaskIds": _ID_FILTERS["invocation-task-id"],
    "InvocationIds": _ID_FILTERS["invocation-id"],
    "InstanceIds": _ID_FILTERS["instance-id"],
    "CommandIds": _ID_FILTERS["command-id"],
}


def decode_content(content: str) -> str:
    if len(content) > MAX_CONTENT:
        raise ApiError("InvalidParameterValue.TooLong", f"`Content` is longer than {MAX_CONTENT} characters.")
    try:
        raw = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError("InvalidParameterValue.InvalidContent", "`Content` is not valid Base64.") from None
    if not raw.strip():
        raise ApiError("InvalidParameterValue.InvalidContent", "`Content` is empty.")
    return raw.decode("utf-8", "replace")


def check_run_fields(params: Mapping[str, Any]) -> None:
    """Timeout, names, description, user, directory, tags and COS fields of RunCommand / InvokeCommand."""
    low, high = TIMEOUT_RANGE
    if "Timeout" in params and not low <= params["Timeout"] <= high:
        raise ApiError("InvalidParameterValue.Range", f"`Timeout` must be between {low} and {high}.")
    name = params.get("CommandName")
    if name is not None and (len(name.encode("utf-8")) > MAX_NAME_BYTES or not COMMAND_NAME_RE.match(name)):
        raise ApiError("InvalidParameterValue.InvalidCommandName", f"The command name `{name}` is invalid.")
    if len(params.get("Description") or "") > MAX_DESCRIPTION:
        raise ApiError("InvalidParameterValue.TooLong", f"`Description` is longer than {MAX_DESCRIPTION} characters.")
    if "Username" in params and not USERNAME_RE.match(params["Username"]):
        raise ApiError("InvalidParameterValue.InvalidUsername", f"The user name `{params['Username']}` is invalid.")
    if "WorkingDirectory" in params and not params["WorkingDirectory"].strip():
        raise ApiError("InvalidParameterValue.InvalidWorkingDirectory", "`WorkingDirectory` is empty.")
    if len(params.get("Tags") or []) > MAX_TAGS:
        raise ApiError("InvalidParameterValue.LimitExceeded", f"At most {MAX_TAGS} tags are allowed.")
    bucket = params.get("OutputCOSBucketUrl")
    if bucket is not None and not bucket.startswith("https://"):
        raise ApiError("InvalidParameterValue.InvalidOutputCOSBucketUrl", "`OutputCOSBucketUrl` must start with https.")
    prefix = params.get("OutputCOSKeyPrefix") or ""
    if prefix.startswith("/") or "//" in prefix or ".." in prefix.split("/") or len(prefix) > 60:
        raise ApiError("InvalidParameterValue.InvalidOutputCOSKeyPrefix", f"`{prefix}` is not a valid key prefix.")


def check_instance_ids(ids: Sequence[str], *, limit: int = MAX_RUN_INSTANCES) -> None:
    if not ids:
        raise ApiError("MissingParameter", "The request is missing a required parameter `InstanceIds`.")
    if len(ids) > limit:
        raise ApiError("InvalidParameterValue.LimitExceeded", f"`InstanceIds` holds more than {limit} values.")
    for instance_id in ids:
        if not ANY_INSTANCE_ID_RE.match(instance_id):
            raise ApiError("InvalidParameterValue.InvalidInstanceId", f"The instance ID `{instance_id}` is malformed.")
    kinds = {instance_id.split("-", 1)[0] for instance_id in ids}
    if len(kinds) > 1:
        raise ApiError("InvalidParameterValue.InconsistentInstance", "CVM and Lighthouse instances cannot be mixed.")
    if len(set(ids)) != len(ids):
        raise ApiError("InvalidParameterValue", "`InstanceIds` holds duplicate values.")


def document(params: Mapping[str, Any], content_b64: str, command_type: str) -> dict[str, Any]:
    """The CommandDocument: what the agent is told to run."""
    return {
        "Content": content_b64,
        "CommandType": command_type,
        "Timeout": params.get("Timeout") or DEFAULT_TIMEOUT,
        "WorkingDirectory": params.get("WorkingDirectory") or "/root",
        "Username": params.get("Username") or "root",
        "OutputCOSBucketUrl": params.get("OutputCOSBucketUrl") or "",
        "OutputCOSKeyPrefix": params.get("OutputCOSKeyPrefix") or "",
    }


def _json_object(text: str, field_name: str) -> dict[str, str]:
    try:
        data = json.loads(text)
    except ValueError:
        raise ApiError("InvalidParameterValue.ParameterInvalidJsonFormat", f"`{field_name}` is not JSON.") from None
    if not isinstance(data, dict):
        raise ApiError("InvalidParameterValue.ParameterInvalidJsonFormat", f"`{field_name}` is not a JSON object.")
    if len(data) > MAX_PARAMETERS:
        raise ApiError("InvalidParameterValue.ParameterNumberExceeded", f"At most {MAX_PARAMETERS} parameters.")
    for key, value in data.items():
        if len(key) > MAX_PARAMETER_KEY:
            raise ApiError("InvalidParameterValue.ParameterKeyLenExceeded", f"The key `{key}` is too long.")
        if not PARAMETER_KEY_RE.match(key):
            raise ApiError("InvalidParameterValue.ParameterKeyContainsInvalidChar", f"The key `{key}` is invalid.")
        if not isinstance(value, str):
            raise ApiError("InvalidParameterValue.ParameterValueNotString", f"The value of `{key}` is not a string.")
    return data


def parameters(params: Mapping[str, Any], *, enabled: bool, run: bool) -> dict[str, str] | None:
    """The custom parameter values ({{key}} placeholders), or None when the feature is off."""
    given = [name for name in ("DefaultParameters", "DefaultParameterConfs", "Parameters") if params.get(name)]
    if not enabled:
        if run and given:
            raise ApiError(
                "InvalidParameterValue.SupportParametersOnlyIfEnableParameter", f"`{given[0]}` needs EnableParameter."
            )
        if not run and params.get("Parameters"):
            raise ApiError("InvalidParameterValue.ParameterDisabled", "The command does not take parameters.")
        return None
    if params.get("DefaultParameters") and params.get("DefaultParameterConfs"):
        raise ApiError("InvalidParameter", "`DefaultParameters` and `DefaultParameterConfs` are exclusive.")
    values = _json_object(params.get("DefaultParameters") or "{}", "DefaultParameters")
    values.update({c["ParameterName"]: c.get("ParameterValue", "") for c in params.get("DefaultParameterConfs") or []})
    values.update(_json_object(params.get("Parameters") or "{}", "Parameters"))
    return values


def substitute(content: str, values: dict[str, str] | None) -> str:
    if values is None:
        return content

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise ApiError("InvalidParameterValue.LackOfParameterInfo", f"No value for the parameter `{key}`.")
        return values[key]

    return PLACEHOLDER_RE.sub(value, content)


def check_list(params: Mapping[str, Any], action: str, getters: Mapping[str, Getter]) -> None:
    """Ids XOR Filters, their counts, filter names and id shapes, Offset/Limit: the Describe* checks."""
    ids_field, too_many, too_many_values = _LISTS[action]
    if ids_field in params and "Filters" in params:
        raise ApiError("InvalidParameter.ConflictParameter", f"`{ids_field}` and `Filters` cannot be used together.")
    pattern, code = _ID_FIELDS[ids_field]
    ids = params.get(ids_field, [])
    if len(ids) > MAX_IDS:
        raise ApiError(too_many, f"`{ids_field}` holds more than {MAX_IDS} values.")
    _check_ids(ids, pattern, code)
    filters = params.get("Filters", [])
    if len(filters) > MAX_FILTERS:
        raise ApiError(too_many, f"At most {MAX_FILTERS} filters are allowed.")
    for item in filters:
        _check_filter(item, getters, too_many_values)
    offset, limit = params.get("Offset", 0), params.get("Limit", DEFAULT_LIMIT)
    if offset < 0 or not 0 <= limit <= MAX_LIMIT:
        raise ApiError("InvalidParameterValue", f"`Offset` must be >= 0 and `Limit` between 0 and {MAX_LIMIT}.")


def _check_filter(item: Mapping[str, Any], getters: Mapping[str, Getter], too_many_values: str) -> None:
    name = item["Name"]
    tagged = name.startswith("tag:") and len(name) > 4 and "tag-key" in getters
    if name not in getters and not tagged:
        raise ApiError("InvalidParameterValue.InvalidFilter", f"The filter name `{name}` is not supported.")
    if len(item["Values"]) > MAX_FILTER_VALUES:
        raise ApiError(too_many_values, f"Filter `{name}` has more than {MAX_FILTER_VALUES} values.")
    if name in _ID_FILTERS:
        _check_ids(item["Values"], *_ID_FILTERS[name])


def _check_ids(ids: Iterable[str], pattern: re.Pattern[str], code: str) -> None:
    for value in ids:
        if not pattern.match(value):
            raise ApiError(code, f"The ID `{value}` is malformed.")


def page(items: Sequence[dict[str, Any]], params: Mapping[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    offset, limit = params.get("Offset", 0), params.get("Limit", DEFAULT_LIMIT)
    return len(items), [copy.deepcopy(item) for item in items[offset : offset + limit]]
