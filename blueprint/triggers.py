"""The triggers a timer never sees: HTTP requests, queue batches, direct invocations, and restore jobs.

Their models live apart from `blueprint.events` so that a timer's cold start does not define them (defining a
pydantic model costs about 1 to 3.5 M instructions, some of a millisecond each). `blueprint.events` still
exports every name here (`from blueprint.events import ApiGatewayEvent` works as before) and loads this module
the first time one of them is used; `parse_event` recognises the trigger the same way as ever.

No `from __future__ import annotations` here (nor in `blueprint.events`): pydantic would compile each field's
annotation from its text when the class is defined.
"""

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, NamedTuple

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError

from blueprint.errors import BadRequest
from blueprint.events import (
    BlueprintIdStr,
    DataDiskChoice,
    InstanceIdStr,
    Job,
    RegionStr,
    TimerEvent,
    _loc_part,
    _Model,
    _utc,
    describe_error,
    parse_job,
    printable,
)

__all__ = ["MAX_BATCH", "ApiGatewayEvent", "FunctionUrlEvent", "HttpRequest", "InvokeEvent", "QueueEvent",
           "QueueRecord", "RestoreJob", "Trigger", "parse_request", "parse_restore", "read_record"]


def _truthy(value: object) -> object:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if value is None:
        return False
    return value


Headers = dict[str, str]
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def _fold_headers(value: object) -> object:
    """Lower-case header names; a repeated header (list value) keeps its first value.

    Names differing only in case are one header: the first one wins, so a second spelling can never
    override what was checked. Values that are not scalars (objects, nested lists) are dropped.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        return value
    folded: dict[str, str] = {}
    for key, raw in value.items():
        item = raw[0] if isinstance(raw, list | tuple) and raw else raw
        if isinstance(key, str) and isinstance(item, str | int | float | bool):
            folded.setdefault(key.strip().lower(), str(item))
    return folded


class HttpRequest(BaseModel):
    """Fields common to the API Gateway and Function URL events."""

    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True, defer_build=True)

    httpMethod: Annotated[str, StringConstraints(min_length=1, max_length=16)]
    path: Annotated[str, StringConstraints(max_length=2048)] = "/"
    headers: Annotated[Headers, BeforeValidator(_fold_headers)] = {}
    body: Annotated[str, BeforeValidator(lambda v: "" if v is None else v)] = ""
    isBase64Encoded: Annotated[bool, BeforeValidator(_truthy)] = False
    queryString: Annotated[dict[str, Any], BeforeValidator(lambda v: v if isinstance(v, Mapping) else {})] = {}

    def header(self, name: str) -> str | None:
        """A header's value by case-insensitive name."""
        return self.headers.get(name.lower())

    def raw_body(self) -> bytes:
        """The body as the client sent it (base64 decoded when flagged).

        Raises:
            BadRequest: the body is flagged base64 but is not valid base64.
        """
        if not self.isBase64Encoded:
            # surrogatepass: a lone surrogate becomes invalid UTF-8 that the JSON parser refuses (400), not a crash.
            return self.body.encode("utf-8", "surrogatepass")
        # Strict on every Python: 3.11+ `b64decode(validate=True)` accepts excess padding ("YWJj====").
        if not _BASE64.fullmatch(self.body) or len(self.body) % 4:
            raise BadRequest("isBase64Encoded is true but the body is not valid base64")
        try:
            return base64.b64decode(self.body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("isBase64Encoded is true but the body is not valid base64") from None


class ApiGatewayEvent(HttpRequest):
    """API Gateway trigger (legacy, offline since 2025-06-30), integrated request."""

    requestContext: dict[str, Any]

    def request_id(self) -> str | None:
        """The gateway's request id, when it sent one."""
        value = self.requestContext.get("requestId") or self.header("x-api-requestid")
        return str(value) if value else None


class FunctionUrlEvent(HttpRequest):
    """Function URL trigger: the API Gateway shape without `requestContext`."""

    def request_id(self) -> str | None:
        """Function URL events carry no request id of their own."""
        return None


# CKafka delivers up to 10,000 records per batch (its trigger's maximum batch size).
MAX_BATCH = 10_000


class QueueRecord(NamedTuple):
    """One record of a CMQ or CKafka batch: its body, an id, and why it cannot be read (if so)."""

    message_id: str
    body: str
    time: datetime | None = None
    problem: str | None = None


def read_record(raw: object, index: int) -> QueueRecord:
    """Read one record; a record that cannot be read says why in `problem` (it never fails the batch)."""
    if isinstance(raw, Mapping) and isinstance(raw.get("CMQ"), Mapping):
        cmq = raw["CMQ"]
        ident, body, when = cmq.get("msgId"), cmq.get("msgBody"), _record_time(cmq.get("publishTime"))
    elif isinstance(raw, Mapping) and isinstance(raw.get("Ckafka"), Mapping):
        kafka = raw["Ckafka"]
        ident = f"{kafka.get('topic')}/{kafka.get('partition')}/{kafka.get('offset')}"
        body, when = kafka.get("msgBody"), None
    else:
        return QueueRecord(f"record-{index}", "", problem="a record must hold a CMQ or Ckafka message")
    text = str(ident) if isinstance(ident, str | int) and not isinstance(ident, bool) else ""
    message_id = _loc_part(text) if text else f"record-{index}"
    if not isinstance(body, str):
        return QueueRecord(message_id, "", when, problem="the record's msgBody must be a string (a JSON job)")
    return QueueRecord(message_id, body, when)


def _record_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return _utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


class QueueEvent(BaseModel):
    """TDMQ CMQ / CKafka trigger: a batch of records, each body a JSON job, each read on its own."""

    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True, defer_build=True)

    Records: Annotated[list[Any], Field(min_length=1, max_length=MAX_BATCH)]

    def records(self) -> list[QueueRecord]:
        """Every record, read (a record that cannot be read carries its `problem`)."""
        return [read_record(raw, index) for index, raw in enumerate(self.Records)]


class InvokeEvent(BaseModel):
    """A direct or chained call: the event itself is the job (or our own `ChainedCall` envelope)."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True, defer_build=True)

    payload: dict[str, Any]


class RestoreJob(_Model):
    """Put an instance back to an image this function made of it. Formats its system disk."""

    InstanceId: InstanceIdStr
    BlueprintId: BlueprintIdStr
    Region: RegionStr | None = None
    # First an image of the instance as it is now (a way back), unless the caller says otherwise.
    SafetyImage: bool = True
    DryRun: bool = False
    IdempotencyKey: Annotated[str | None, StringConstraints(min_length=1, max_length=64),
                              AfterValidator(lambda v: v if v is None else printable(v))] = None
    # The data disks rolled back to the image's backup points: "all" (default) of them, "none", or these ids.
    DataDisks: DataDiskChoice = None


def parse_request(data: object, *, what: str = "job") -> Job | RestoreJob:
    """A job, or a restore (`{"Restore": {...}}`, the queue and invoke triggers' way to ask for one).

    Raises:
        BadRequest: neither is valid; the message says why.
    """
    if isinstance(data, Mapping) and "Restore" in data:
        if len(data) != 1:
            raise BadRequest(f"invalid {what}: a restore is {{\"Restore\": {{...}}}} and nothing beside it")
        return parse_restore(data["Restore"], what=f"{what} Restore")
    return parse_job(data, what=what)


def parse_restore(data: object, *, what: str = "restore") -> RestoreJob:
    """Validate a restore (already parsed JSON).

    Raises:
        BadRequest: not an object, or a field breaks its rule; the message says which.
    """
    if not isinstance(data, Mapping):
        raise BadRequest(f"the {what} must be a JSON object")
    try:
        return RestoreJob.model_validate(data)
    except ValidationError as err:
        raise BadRequest(describe_error(err, what=what)) from None


Trigger = TimerEvent | ApiGatewayEvent | FunctionUrlEvent | QueueEvent | InvokeEvent
