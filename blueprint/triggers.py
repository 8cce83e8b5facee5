"""Every pydantic model of what comes in: the job, the timer's event, HTTP requests, queue batches, direct
invocations and restore jobs. They are the rules.

`blueprint.events` reads a timer's usual event and job with plain code that takes only what these models take
(and makes the same values), and loads this module the first time anything else comes: a timer's cold start
never imports pydantic (issue 18). `blueprint.events` exports every name here (`from blueprint.events import
ApiGatewayEvent` works as before). The models' values become the plain records of `blueprint.events`
(`Job`, `TimerEvent`, `TriggerInfo`) that the rest of the function uses.

No `from __future__ import annotations` here: pydantic would compile each field's annotation from its text
when the class is defined.
"""

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from blueprint.errors import BadRequest
from blueprint.events import (
    ACCOUNT_ID_PATTERN,
    DISK_ID,
    INSTANCE_ID_PATTERN,
    MAX_COMMAND_TEXT,
    MAX_COPY_REGIONS,
    MAX_DATA_DISKS,
    MAX_MESSAGE_CHARS,
    MAX_NAME_TEMPLATE,
    MAX_SHARE_ACCOUNTS,
    MAX_USER_TAGS,
    REGION_PATTERN,
    InstanceSelector,
    Job,
    Tag,
    TimerEvent,
    TriggerInfo,
    _loc_part,
    check_name_template,
    describe_error,
    parse_job,
    printable,
    tag_key,
    tag_text,
    to_utc,
    user_tag_key,
)

__all__ = ["MAX_BATCH", "ApiGatewayEvent", "AwareUtc", "FunctionUrlEvent", "HttpRequest", "InstanceRefModel",
           "InvokeEvent", "JobModel", "QueueEvent", "QueueRecord", "RestoreJob", "TimerEventModel", "Trigger",
           "TriggerInfoModel", "job_of", "parse_event", "parse_request", "parse_restore", "read_job", "read_record",
           "trigger_of"]


def _timer_type(value: str) -> str:
    if value.lower() != "timer":
        raise ValueError("Type must be timer")
    return value


InstanceIdStr = Annotated[str, StringConstraints(pattern=INSTANCE_ID_PATTERN)]
RegionStr = Annotated[str, StringConstraints(pattern=REGION_PATTERN, max_length=40)]
BlueprintIdStr = Annotated[str, StringConstraints(pattern=r"^lhbp-[a-z0-9]{8}$")]
AccountIdStr = Annotated[str, StringConstraints(pattern=ACCOUNT_ID_PATTERN)]


def _data_disks(value: object) -> object:
    if value is None or value in ("all", "none"):
        return value
    if isinstance(value, list) and 1 <= len(value) <= MAX_DATA_DISKS and all(
            isinstance(v, str) and re.match(DISK_ID, v) for v in value):
        if len(set(value)) != len(value):
            raise ValueError("duplicate disk ids")
        return value
    raise ValueError(f'expected "all", "none" or a list of 1 to {MAX_DATA_DISKS} disk ids (lhdisk- and 8 of a-z0-9)')


DataDiskChoice = Annotated[str | list[str] | None, BeforeValidator(_data_disks)]


def _not_a_switch(value: object) -> object:
    # A count is a JSON number, never a boolean: pydantic reads true as 1, and `"Keep": true` would keep one image
    # and delete the rest.
    if isinstance(value, bool):
        raise ValueError("expected a number, not true or false")
    return value


def _unique(values: list[str] | None) -> list[str] | None:
    if values is not None and len(set(values)) != len(values):
        raise ValueError("duplicate values")
    return values


Text60 = Annotated[str, StringConstraints(min_length=1, max_length=60), AfterValidator(printable)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True, defer_build=True)


class TagModel(_Model):
    """A tag as the Lighthouse API spells it, held to the Tag service's rules."""

    Key: Annotated[str, StringConstraints(min_length=1, max_length=127), AfterValidator(tag_key)]
    Value: Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(tag_text)]


def _user_tag(tag: TagModel) -> TagModel:
    user_tag_key(tag.Key)
    return tag


UserTag = Annotated[TagModel, AfterValidator(_user_tag)]


def _unique_keys(tags: list[TagModel]) -> list[TagModel]:
    keys = [t.Key for t in tags]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate tag keys")
    return tags


class InstanceSelectorModel(_Model):
    """Every instance carrying all these tags in these regions (`["*"]`: every region)."""

    Regions: Annotated[list[Annotated[str, StringConstraints(pattern=r"^\*$|" + REGION_PATTERN)]],
                       Field(min_length=1, max_length=50)]
    Tags: Annotated[list[TagModel], Field(min_length=1, max_length=10), AfterValidator(_unique_keys)]


class InstanceRefModel(_Model):
    """One instance and its region."""

    Region: RegionStr
    InstanceId: InstanceIdStr


def _split_ref(value: object) -> object:
    if isinstance(value, str) and ":" in value:
        region, _, instance = value.partition(":")
        return {"Region": region, "InstanceId": instance}
    return value


class JobModel(_Model):
    """What to image and how (README.md, the job table). A CreateBlueprint request is a valid job."""

    InstanceId: InstanceIdStr | None = None
    InstanceIds: Annotated[
        list[Annotated[str, StringConstraints(max_length=60)]] | None, Field(min_length=1, max_length=100)
    ] = None
    Selector: InstanceSelectorModel | None = None
    Region: RegionStr | None = None
    BlueprintName: Annotated[str | None, StringConstraints(min_length=1, max_length=MAX_NAME_TEMPLATE),
                             AfterValidator(lambda v: v if v is None else check_name_template(printable(v)))] = None
    Description: Text60 | None = None
    ForcePowerOff: bool | None = None
    Tags: Annotated[list[UserTag], Field(max_length=MAX_USER_TAGS), AfterValidator(_unique_keys)] = []
    Keep: Annotated[int | None, Field(ge=1, le=500), BeforeValidator(_not_a_switch)] = None
    Wait: bool = False
    DryRun: bool = False
    IdempotencyKey: Annotated[str | None, StringConstraints(min_length=1, max_length=64),
                              AfterValidator(lambda v: v if v is None else printable(v))] = None
    MaxInstances: Annotated[int | None, Field(ge=1, le=10_000), BeforeValidator(_not_a_switch)] = None
    Dispatch: Literal["inline", "invoke"] = "inline"
    # Copies in other regions (SyncBlueprint) once the image is NORMAL, and how many copies each keeps.
    CopyTo: Annotated[list[RegionStr] | None, Field(min_length=1, max_length=MAX_COPY_REGIONS),
                      AfterValidator(_unique)] = None
    CopyKeep: Annotated[int | None, Field(ge=1, le=500), BeforeValidator(_not_a_switch)] = None
    # Accounts the image is shared with once NORMAL (BLUEPRINT_ALLOWED_SHARE_ACCOUNTS decides who may be).
    ShareWith: Annotated[list[AccountIdStr] | None, Field(min_length=1, max_length=MAX_SHARE_ACCOUNTS),
                         AfterValidator(_unique)] = None
    # Application-consistent images without powering off: operator-defined TAT commands around the image.
    # `Consistent` picks the configured pair (BLUEPRINT_PRE_COMMAND / BLUEPRINT_POST_COMMAND; unset: used when
    # configured); PreCommand / PostCommand pick commands by id from BLUEPRINT_ALLOWED_COMMANDS. Anything but an
    # allowed id is refused with 403 by the policy (a job never carries shell text), so the text is only capped.
    Consistent: bool | None = None
    PreCommand: Annotated[str | None, StringConstraints(min_length=1, max_length=MAX_COMMAND_TEXT)] = None
    PostCommand: Annotated[str | None, StringConstraints(min_length=1, max_length=MAX_COMMAND_TEXT)] = None
    # When the post-command runs: once the cloud accepted the image (default), or once it is NORMAL.
    PostAfter: Literal["accepted", "ready"] | None = None
    # The data disks backed up in the same slot as the image (default BLUEPRINT_DATA_DISKS, else "all").
    DataDisks: DataDiskChoice = None

    @field_validator("InstanceIds")
    @classmethod
    def _check_ids(cls, ids: list[str] | None) -> list[str] | None:
        if ids is None:
            return None
        for index, ref in enumerate(ids):
            try:
                raw = _split_ref(ref) if ":" in ref else {"Region": "ap-x", "InstanceId": ref}
                InstanceRefModel.model_validate(raw)
            except ValidationError:
                raise ValueError(f"item {index} is not an instance id (lhins- and 8 of a-z0-9, "
                                 "optionally region:lhins-...)") from None
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate instance ids")
        return ids

    @model_validator(mode="after")
    def _exactly_one_target(self) -> "JobModel":
        given = [name for name in ("InstanceId", "InstanceIds", "Selector") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of InstanceId, InstanceIds, Selector"
                             + (f" (got {', '.join(given)})" if given else ""))
        return self


# A time without a zone is taken as UTC where the platform documents UTC (the timer's `Time`).
UtcTime = Annotated[datetime, AfterValidator(to_utc)]
# A time we wrote ourselves (chained calls): it must carry its zone; a naive one was not written by us.
AwareUtc = Annotated[AwareDatetime, AfterValidator(to_utc)]


class TriggerInfoModel(_Model):
    """Which trigger started the run (the `Trigger` field of every result)."""

    Type: Literal["timer", "http", "queue", "invoke"]
    Name: Annotated[str, StringConstraints(max_length=200)] | None = None
    Time: AwareUtc


# Errors name a model's type by its class name ("a valid dictionary or instance of Tag"): the job's own words.
for _model, _public in ((TagModel, "Tag"), (InstanceSelectorModel, "InstanceSelector"),
                        (InstanceRefModel, "InstanceRef"), (JobModel, "Job"), (TriggerInfoModel, "TriggerInfo")):
    _model.__name__ = _model.__qualname__ = _public
del _model, _public


class TimerEventModel(BaseModel):
    """SCF timer trigger: `Message` is the timer's argument (a string, maybe JSON, maybe empty)."""

    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True, defer_build=True)

    Type: Annotated[str, AfterValidator(_timer_type)]
    TriggerName: Annotated[str, StringConstraints(min_length=1, max_length=60)] = "timer"
    Time: UtcTime
    Message: Annotated[str, BeforeValidator(lambda v: "" if v is None else v),
                       StringConstraints(max_length=MAX_MESSAGE_CHARS)] = ""


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

    @model_validator(mode="before")
    @classmethod
    def _declared_query(cls, data: Any) -> Any:
        """API Gateway puts the whole query in `queryString` and the parameters declared in the gateway in
        `queryStringParameters` as well: an event with only the latter is read from it."""
        if isinstance(data, Mapping) and not data.get("queryString") \
                and isinstance(data.get("queryStringParameters"), Mapping):
            return {**data, "queryString": data["queryStringParameters"]}
        return data

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
        return to_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:  # not a time, or out of range in UTC (`to_utc` says so with a ValueError)
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


def parse_event(event: Mapping[Any, Any]) -> Trigger:
    """The trigger of an event that `blueprint.events.parse_event` did not read plainly, by the event's shape.

    Raises:
        BadRequest: it has a trigger's shape but invalid fields.
    """
    kind = event.get("Type")
    model: type[TimerEventModel | ApiGatewayEvent | FunctionUrlEvent | QueueEvent]
    if isinstance(kind, str) and kind.lower() == "timer":
        model = TimerEventModel
    elif "httpMethod" in event:
        model = ApiGatewayEvent if "requestContext" in event else FunctionUrlEvent
    elif "Records" in event:
        model = QueueEvent
    else:
        return InvokeEvent(payload=dict(event))
    try:
        result = model.model_validate(event)
    except ValidationError as err:
        raise BadRequest(describe_error(err)) from None
    if isinstance(result, TimerEventModel):
        return TimerEvent(Type=result.Type, Time=result.Time, TriggerName=result.TriggerName, Message=result.Message)
    return result


def read_job(data: Mapping[Any, Any], *, what: str = "job") -> Job:
    """A job that `blueprint.events.parse_job` did not read plainly, as `JobModel` judges it.

    Raises:
        BadRequest: it breaks a rule of the job; the message says which.
    """
    try:
        model = JobModel.model_validate(data)
    except ValidationError as err:
        raise BadRequest(describe_error(err, what=what)) from None
    return job_of(model)


def _tags(tags: list[TagModel]) -> list[Tag]:
    return [Tag(Key=t.Key, Value=t.Value) for t in tags]


def job_of(model: JobModel) -> Job:
    """The job a valid `JobModel` describes, as the record the function uses."""
    values = {name: getattr(model, name) for name in JobModel.model_fields}
    values["Tags"] = _tags(model.Tags)
    if model.Selector is not None:
        values["Selector"] = InstanceSelector(Regions=list(model.Selector.Regions), Tags=_tags(model.Selector.Tags))
    if "Dispatch" not in model.model_fields_set:
        values["Dispatch"] = None  # the job does not say: the function picks by fleet size
    return Job(**values)


def trigger_of(model: TriggerInfoModel) -> TriggerInfo:
    """The record of a valid `TriggerInfoModel`."""
    return TriggerInfo(Type=model.Type, Time=model.Time, Name=model.Name)
