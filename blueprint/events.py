"""What comes in: one pydantic model per trigger, and the job they all carry (README.md, Triggers).

`parse_event(event, context)` recognises the trigger from the event's shape and returns a `Trigger` variant.
The job itself is validated by `parse_job`: an invalid job cannot exist past this module.

The models of the other triggers (HTTP, queue, invoke) and of restores are defined in `blueprint.triggers`,
which this module loads the first time one of them is asked for: a timer never defines them. No
`from __future__ import annotations` here: pydantic would compile each field's annotation from its text.
"""

import re
import string
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
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
from blueprint.logs import redact

if TYPE_CHECKING:
    from blueprint.triggers import (
        MAX_BATCH,
        ApiGatewayEvent,
        FunctionUrlEvent,
        HttpRequest,
        InvokeEvent,
        QueueEvent,
        QueueRecord,
        RestoreJob,
        Trigger,
        parse_request,
        parse_restore,
        read_record,
    )

__all__ = [
    "INSTANCE_ID_PATTERN",
    "MANAGED_TAG_PREFIX",
    "MAX_BATCH",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_USER_TAGS",
    "REGION_PATTERN",
    "ApiGatewayEvent",
    "AwareUtc",
    "FunctionUrlEvent",
    "HttpRequest",
    "InstanceRef",
    "InstanceSelector",
    "InvokeEvent",
    "Job",
    "QueueEvent",
    "QueueRecord",
    "RestoreJob",
    "Tag",
    "TimerEvent",
    "Trigger",
    "TriggerInfo",
    "describe_error",
    "parse_event",
    "parse_job",
    "parse_json",
    "parse_request",
    "parse_restore",
    "printable",
    "read_record",
]

INSTANCE_ID_PATTERN = r"^lhins-[a-z0-9]{8}$"
REGION_PATTERN = r"^[a-z]{2,}(-[a-z0-9]+){1,3}$"
# Tags the function puts on its own images start with this; users may not set them.
MANAGED_TAG_PREFIX = "scf-blueprint:"
MANAGED_TAG_COUNT = 2
# CreateBlueprint takes at most 10 tags, ours included.
MAX_USER_TAGS = 10 - MANAGED_TAG_COUNT
NAME_FIELDS = frozenset({"InstanceId", "InstanceName", "Date", "Time"})
MAX_JSON_DEPTH = 32
# Any JSON document we parse (HTTP body, timer Message, queue record, BLUEPRINT_JOB): a job is a few hundred bytes.
MAX_JSON_BYTES = 64 * 1024
# A timer's Message is at most 4 KB on the platform; anything much larger did not come from a timer.
MAX_MESSAGE_CHARS = 64 * 1024

InstanceIdStr = Annotated[str, StringConstraints(pattern=INSTANCE_ID_PATTERN)]
RegionStr = Annotated[str, StringConstraints(pattern=REGION_PATTERN, max_length=40)]
BlueprintIdStr = Annotated[str, StringConstraints(pattern=r"^lhbp-[a-z0-9]{8}$")]
# A Tencent Cloud account id (UIN): digits only (https://www.tencentcloud.com/document/product/378/48586).
ACCOUNT_ID_PATTERN = r"^[1-9][0-9]{4,19}$"
AccountIdStr = Annotated[str, StringConstraints(pattern=ACCOUNT_ID_PATTERN)]
# SyncBlueprint and ShareBlueprintAcrossAccounts take at most 10 regions / accounts.
MAX_COPY_REGIONS = 10
MAX_SHARE_ACCOUNTS = 10
# Data disks: "all" attached data disks, "none", or these disk ids (a Lighthouse instance has at most 20).
DISK_ID = re.compile(r"lhdisk-[a-z0-9]{8}\Z")
MAX_DATA_DISKS = 20


def _data_disks(value: object) -> object:
    if value is None or value in ("all", "none"):
        return value
    if isinstance(value, list) and 1 <= len(value) <= MAX_DATA_DISKS and all(
            isinstance(v, str) and DISK_ID.match(v) for v in value):
        if len(set(value)) != len(value):
            raise ValueError("duplicate disk ids")
        return value
    raise ValueError(f'expected "all", "none" or a list of 1 to {MAX_DATA_DISKS} disk ids (lhdisk- and 8 of a-z0-9)')


DataDiskChoice = Annotated[str | list[str] | None, BeforeValidator(_data_disks)]
# A job names a command by id; any other text (shell text, however long the body allows) gets a 403 from the policy.
MAX_COMMAND_TEXT = 64 * 1024


def _unique(values: list[str] | None) -> list[str] | None:
    if values is not None and len(set(values)) != len(values):
        raise ValueError("duplicate values")
    return values


def printable(value: str) -> str:
    """The value, if it holds no control characters (a space is fine, a newline or tab is not).

    Raises:
        ValueError: it does.
    """
    if any(ch.isspace() and ch != " " for ch in value) or not value.isprintable():
        raise ValueError("control characters are not allowed")
    return value


Text60 = Annotated[str, StringConstraints(min_length=1, max_length=60), AfterValidator(printable)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True, defer_build=True)


# The Tag service's naming rules (https://www.tencentcloud.com/document/product/651/13354): keys 1-127 and
# values 1-255 Unicode characters; letters (any script), digits, inner spaces and these specials only; keys
# starting with qcs:, project: or 项目 are reserved by the cloud.
TAG_SPECIALS = frozenset("+-=._:/@()[],;><") | frozenset("\u3010\u3011\uff08\uff09\uff1a\uff0b\uff0d\uff1d\uff0f\uff20")
RESERVED_TAG_PREFIXES = ("qcs:", "project:", "\u9879\u76ee")


def _tag_text(value: str) -> str:
    if value != value.strip(" "):
        raise ValueError("tags may not start or end with a space")
    if any(not (ch == " " or ch.isalnum() or ch in TAG_SPECIALS) for ch in value):
        raise ValueError("tags may hold letters, digits, inner spaces and + - = . _ : / @ ( ) [ ] , ; > < only")
    return value


def _tag_key(value: str) -> str:
    if value.lower().startswith(RESERVED_TAG_PREFIXES):
        raise ValueError("tag keys starting with qcs:, project: or \u9879\u76ee are reserved by Tencent Cloud")
    return _tag_text(value)


class Tag(_Model):
    """A tag as the Lighthouse API spells it, held to the Tag service's rules."""

    Key: Annotated[str, StringConstraints(min_length=1, max_length=127), AfterValidator(_tag_key)]
    Value: Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(_tag_text)]


def _user_tag(tag: Tag) -> Tag:
    # Case-insensitive: a look-alike key must not pass for (or shadow) the function's own tags.
    if tag.Key.strip().lower().startswith(MANAGED_TAG_PREFIX):
        raise ValueError(f"tag keys starting with {MANAGED_TAG_PREFIX!r} are reserved for this function")
    return tag


UserTag = Annotated[Tag, AfterValidator(_user_tag)]


def _unique_keys(tags: list[Tag]) -> list[Tag]:
    keys = [t.Key for t in tags]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate tag keys")
    return tags


class InstanceSelector(_Model):
    """Every instance carrying all these tags in these regions (`["*"]`: every region)."""

    Regions: Annotated[list[Annotated[str, StringConstraints(pattern=r"^\*$|" + REGION_PATTERN)]],
                       Field(min_length=1, max_length=50)]
    Tags: Annotated[list[Tag], Field(min_length=1, max_length=10), AfterValidator(_unique_keys)]


class InstanceRef(_Model):
    """One instance and its region."""

    Region: RegionStr
    InstanceId: InstanceIdStr


def _check_name_template(value: str) -> str:
    try:
        parsed = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(value) if name is not None]
    except ValueError as err:
        raise ValueError(f"bad placeholder syntax: {err}") from None
    # No format specs or conversions: "{Date:>999999999}" would build a gigabyte string before any length check.
    if any(spec or conv for _, spec, conv in parsed):
        raise ValueError("placeholders take no format spec or conversion (write {Date}, not {Date:...})")
    fields = {name for name, _, _ in parsed}
    unknown = fields - NAME_FIELDS
    if unknown:
        raise ValueError(f"unknown placeholder(s) {sorted(unknown)}; allowed: {sorted(NAME_FIELDS)}")
    # Rendered with the longest values the fixed placeholders can take; InstanceName is trimmed later.
    sample = value.format(InstanceId="lhins-00000000", InstanceName="", Date="00000000", Time="000000")
    if len(sample) > 60:
        raise ValueError("the rendered name would be over 60 characters")
    if not sample.strip():
        raise ValueError("the rendered name would be empty")
    return value


def _split_ref(value: object) -> object:
    if isinstance(value, str) and ":" in value:
        region, _, instance = value.partition(":")
        return {"Region": region, "InstanceId": instance}
    return value


class Job(_Model):
    """What to image and how (README.md, the job table). A CreateBlueprint request is a valid job."""

    InstanceId: InstanceIdStr | None = None
    InstanceIds: Annotated[
        list[Annotated[str, StringConstraints(max_length=60)]] | None, Field(min_length=1, max_length=100)
    ] = None
    Selector: InstanceSelector | None = None
    Region: RegionStr | None = None
    BlueprintName: Annotated[str | None, StringConstraints(min_length=1, max_length=60),
                             AfterValidator(lambda v: v if v is None else _check_name_template(printable(v)))] = None
    Description: Text60 | None = None
    ForcePowerOff: bool | None = None
    Tags: Annotated[list[UserTag], Field(max_length=MAX_USER_TAGS), AfterValidator(_unique_keys)] = []
    Keep: Annotated[int | None, Field(ge=1, le=500)] = None
    Wait: bool = False
    DryRun: bool = False
    IdempotencyKey: Annotated[str | None, StringConstraints(min_length=1, max_length=64),
                              AfterValidator(lambda v: v if v is None else printable(v))] = None
    MaxInstances: Annotated[int | None, Field(ge=1, le=10_000)] = None
    Dispatch: Literal["inline", "invoke"] = "inline"
    # Copies in other regions (SyncBlueprint) once the image is NORMAL, and how many copies each keeps.
    CopyTo: Annotated[list[RegionStr] | None, Field(min_length=1, max_length=MAX_COPY_REGIONS),
                      AfterValidator(_unique)] = None
    CopyKeep: Annotated[int | None, Field(ge=1, le=500)] = None
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
                InstanceRef.model_validate(_split_ref(ref) if ":" in ref else {"Region": "ap-x", "InstanceId": ref})
            except ValidationError:
                raise ValueError(f"item {index} is not an instance id (lhins- and 8 of a-z0-9, "
                                 "optionally region:lhins-...)") from None
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate instance ids")
        return ids

    @model_validator(mode="after")
    def _exactly_one_target(self) -> "Job":
        given = [name for name in ("InstanceId", "InstanceIds", "Selector") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of InstanceId, InstanceIds, Selector"
                             + (f" (got {', '.join(given)})" if given else ""))
        return self

    def targets(self, default_region: str) -> list[InstanceRef]:
        """The instances named by id, each with its region (a selector is resolved elsewhere)."""
        region = self.Region or default_region
        if self.InstanceId is not None:
            return [InstanceRef(Region=region, InstanceId=self.InstanceId)]
        refs: dict[tuple[str, str], InstanceRef] = {}
        for ref in self.InstanceIds or []:
            reg, _, inst = ref.rpartition(":")
            # `lhins-x` and `<default region>:lhins-x` are one instance: imaged once, reported once.
            refs.setdefault((reg or region, inst), InstanceRef(Region=reg or region, InstanceId=inst))
        return list(refs.values())




def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


# A time without a zone is taken as UTC where the platform documents UTC (the timer's `Time`).
UtcTime = Annotated[datetime, AfterValidator(_utc)]
# A time we wrote ourselves (chained calls): it must carry its zone; a naive one was not written by us.
AwareUtc = Annotated[AwareDatetime, AfterValidator(_utc)]


class TriggerInfo(_Model):
    """Which trigger started the run (the `Trigger` field of every result)."""

    Type: Literal["timer", "http", "queue", "invoke"]
    Name: Annotated[str, StringConstraints(max_length=200)] | None = None
    Time: AwareUtc


class TimerEvent(BaseModel):
    """SCF timer trigger: `Message` is the timer's argument (a string, maybe JSON, maybe empty)."""

    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True, defer_build=True)

    Type: Annotated[str, AfterValidator(lambda v: v if v.lower() == "timer" else _raise("Type must be timer"))]
    TriggerName: Annotated[str, StringConstraints(min_length=1, max_length=60)] = "timer"
    Time: UtcTime
    Message: Annotated[str, BeforeValidator(lambda v: "" if v is None else v),
                       StringConstraints(max_length=MAX_MESSAGE_CHARS)] = ""


def _raise(message: str) -> Any:
    raise ValueError(message)


# Defined in blueprint.triggers, loaded on first use (a timer never needs them).
_ELSEWHERE = frozenset({"MAX_BATCH", "ApiGatewayEvent", "FunctionUrlEvent", "HttpRequest", "InvokeEvent", "QueueEvent",
                        "QueueRecord", "RestoreJob", "Trigger", "parse_request", "parse_restore", "read_record"})


def __getattr__(name: str) -> Any:
    """The names that live in `blueprint.triggers`, imported the first time one is asked for.

    Raises:
        AttributeError: no such name.
    """
    if name in _ELSEWHERE:
        from blueprint import triggers  # noqa: PLC0415 (the other triggers' models: a timer never defines them)

        return getattr(triggers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def parse_event(event: object) -> "Trigger":
    """Recognise the trigger from the event's shape (README.md, Triggers) and validate it.

    Raises:
        BadRequest: the event is not an object, or has a trigger's shape but invalid fields.
    """
    if not isinstance(event, Mapping):
        raise BadRequest("the event must be a JSON object")
    kind = event.get("Type")
    model: type[TimerEvent | ApiGatewayEvent | FunctionUrlEvent | QueueEvent]
    if isinstance(kind, str) and kind.lower() == "timer":
        model = TimerEvent
    else:
        from blueprint import triggers  # noqa: PLC0415 (a timer never defines the other triggers' models)

        if "httpMethod" in event:
            model = triggers.ApiGatewayEvent if "requestContext" in event else triggers.FunctionUrlEvent
        elif "Records" in event:
            model = triggers.QueueEvent
        else:
            return triggers.InvokeEvent(payload=dict(event))
    try:
        result: Trigger = model.model_validate(event)
    except ValidationError as err:
        raise BadRequest(describe_error(err)) from None
    return result


def parse_json(raw: bytes | str, *, what: str = "body") -> object:
    """Parse JSON with orjson, bounding nesting depth.

    Raises:
        BadRequest: over MAX_JSON_BYTES, not valid JSON (or not UTF-8), or nested deeper than MAX_JSON_DEPTH.
    """
    if len(raw) > MAX_JSON_BYTES:
        raise BadRequest(f"the {what} is over {MAX_JSON_BYTES} bytes", code="InvalidParameterValue.TooLarge")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise BadRequest(f"the {what} is not valid JSON: {err.msg} at position {err.pos}") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise BadRequest(f"the {what} is nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _depth(value: object, level: int = 1) -> int:
    stack = [(value, level)]
    deepest = 0
    while stack:
        item, lvl = stack.pop()
        deepest = max(deepest, lvl)
        if deepest > MAX_JSON_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((child, lvl + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, lvl + 1) for child in item)
    return deepest


def parse_job(data: object, *, what: str = "job") -> Job:
    """Validate a job (already parsed JSON).

    Raises:
        BadRequest: the job is not an object or breaks a rule of the job (README.md); the message says which.
    """
    if not isinstance(data, Mapping):
        raise BadRequest(f"the {what} must be a JSON object")
    plain = _plain_job(data)
    if plain is not None:
        return plain
    try:
        return Job.model_validate(data)
    except ValidationError as err:
        raise BadRequest(describe_error(err, what=what)) from None


# The fields a plain job may give (a timer's usual Message); any other field sends the job to the model.
_PLAIN_FIELDS = frozenset({"InstanceId", "Region", "Keep", "Tags", "Wait", "DryRun", "ForcePowerOff"})


def _plain_job(data: Mapping[Any, Any]) -> Job | None:
    """The job, made without building the `Job` model's validator, when it is of the plain kind a timer sends
    (an InstanceId, maybe Region, Keep, Tags and switches, each of its exact JSON type and within its rules);
    None for anything else, which `Job.model_validate` then judges. Building the validator costs a cold start
    about 12 M instructions; tests/unit/test_events.py holds this reader to the model's answers.
    """
    if not _PLAIN_FIELDS.issuperset(data) or not _plain_scalars(data):
        return None
    tags = _plain_tags(data.get("Tags", []))
    if tags is None:
        return None
    return Job.model_construct(**{**data, "Tags": tags} if "Tags" in data else data)


def _plain_scalars(data: Mapping[Any, Any]) -> bool:
    """InstanceId, Region, Keep and the switches are of their exact JSON type and within their rules."""
    instance, region, keep = data.get("InstanceId"), data.get("Region"), data.get("Keep", 1)
    return (type(instance) is str and re.fullmatch(INSTANCE_ID_PATTERN[1:-1], instance) is not None
            and (region is None or (type(region) is str and len(region) <= 40
                                    and re.fullmatch(REGION_PATTERN[1:-1], region) is not None))
            and type(keep) is int and 1 <= keep <= 500
            and all(type(data.get(name, False)) is bool for name in ("Wait", "DryRun", "ForcePowerOff")))


def _plain_tags(tags: object) -> list[Tag] | None:
    """The user tags as `Tag` models when each is a plain {Key, Value} within the rules; else None."""
    if type(tags) is not list or len(tags) > MAX_USER_TAGS:
        return None
    made = []
    for tag in tags:
        if type(tag) is not dict or tag.keys() != {"Key", "Value"}:
            return None
        key, value = tag["Key"], tag["Value"]
        if type(key) is not str or type(value) is not str or not (0 < len(key) <= 127 and 0 < len(value) <= 255):
            return None
        try:
            made.append(_user_tag(Tag.model_construct(Key=_tag_key(key), Value=_tag_text(value))))
        except ValueError:
            return None
    return made if len({t.Key for t in made}) == len(made) else None


def _loc_part(part: object) -> str:
    """One step of an error location, safe to echo: an unknown field's name is the caller's own text."""
    text = str(part)
    text = "".join(ch if ch.isprintable() and ch.isascii() else "?" for ch in text[:40])
    return text + ("..." if len(str(part)) > 40 else "")


def describe_error(err: ValidationError, *, what: str = "") -> str:
    """A short, input-free description of a validation error (never echoes values back).

    Field names are echoed (so `Unknown: unknown field` says which), but cut to 40 printable ASCII characters.
    """
    parts = []
    for item in err.errors(include_input=False, include_url=False, include_context=False)[:5]:
        loc = ".".join(_loc_part(p) for p in item["loc"])
        msg = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{loc}: {msg}" if loc else msg)
    prefix = f"invalid {what}: " if what else "invalid event: "
    # A caller could name a field after a secret it fished for; the answer must not confirm it verbatim.
    return redact(prefix + "; ".join(parts))
