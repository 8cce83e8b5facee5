"""What comes in: the job and the trigger that carried it, as plain records (README.md, Triggers).

`parse_event(event)` recognises the trigger from the event's shape and returns a `Trigger` variant;
`parse_job` validates a job. An invalid job cannot exist past this module.

The rules are pydantic models (`blueprint.triggers`: `JobModel`, `TimerEventModel` and the other triggers'
events). A timer's usual event and job (a timer's time, an instance id, Keep, tags, switches) are read here
by plain code that takes only what it is sure the models take, and makes the same values; anything else,
and every invalid value, goes to the models, which decide with their own messages. So a timer's cold start
never imports pydantic (issue 18: some 300 M instructions and 9 MiB); tests/unit/test_events.py holds the
plain readers to the models' answers.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal, TypeGuard

import orjson

from blueprint.errors import BadRequest
from blueprint.logs import redact
from blueprint.records import record

if TYPE_CHECKING:
    from pydantic import ValidationError

    from blueprint.triggers import (
        MAX_BATCH,
        ApiGatewayEvent,
        FunctionUrlEvent,
        HttpRequest,
        InvokeEvent,
        JobModel,
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
    "FunctionUrlEvent",
    "HttpRequest",
    "InstanceRef",
    "InstanceSelector",
    "InvokeEvent",
    "Job",
    "JobModel",
    "QueueEvent",
    "QueueRecord",
    "RestoreJob",
    "Tag",
    "TimerEvent",
    "Trigger",
    "TriggerInfo",
    "as_printable",
    "describe_error",
    "named_in",
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
# A Tencent Cloud account id (UIN): digits only (https://www.tencentcloud.com/document/product/378/48586).
ACCOUNT_ID_PATTERN = r"^[1-9][0-9]{4,19}$"
# SyncBlueprint and ShareBlueprintAcrossAccounts take at most 10 regions / accounts.
MAX_COPY_REGIONS = 10
MAX_SHARE_ACCOUNTS = 10
# Data disks: "all" attached data disks, "none", or these disk ids (a Lighthouse instance has at most 20).
DISK_ID = r"lhdisk-[a-z0-9]{8}\Z"
MAX_DATA_DISKS = 20
# A BlueprintName template: its rendered name is at most 60 characters (the API's limit); the template itself
# may be longer (a long {InstanceName} renders shorter), within this bound.
MAX_NAME_TEMPLATE = 256
# A job names a command by id; any other text (shell text, however long the body allows) gets a 403 from the policy.
MAX_COMMAND_TEXT = 64 * 1024


def as_printable(text: str) -> str:
    """The text with each control or invisible character (what `str.isprintable` refuses) as a space: for text
    that is the cloud's or a caller's word, shown or sent on rather than refused."""
    return "".join(ch if ch.isprintable() else " " for ch in text)


def printable(value: str) -> str:
    """The value, if it holds no control characters (a space is fine, a newline or tab is not).

    Raises:
        ValueError: it does.
    """
    if any(ch.isspace() and ch != " " for ch in value) or not value.isprintable():
        raise ValueError("control characters are not allowed")
    return value


# The Tag service's naming rules (https://www.tencentcloud.com/document/product/651/13354): keys 1-127 and
# values 1-255 Unicode characters; letters (any script), digits, inner spaces and these specials only; keys
# starting with qcs:, project: or 项目 are reserved by the cloud.
TAG_SPECIALS = frozenset("+-=._:/@()[],;><") | frozenset("\u3010\u3011\uff08\uff09\uff1a\uff0b\uff0d\uff1d\uff0f\uff20")
RESERVED_TAG_PREFIXES = ("qcs:", "project:", "\u9879\u76ee")


def tag_text(value: str) -> str:
    """A tag key's or value's text, if it keeps the Tag service's rules of characters.

    Raises:
        ValueError: it does not; the message says which rule.
    """
    if value != value.strip(" "):
        raise ValueError("tags may not start or end with a space")
    if any(not (ch == " " or ch.isalnum() or ch in TAG_SPECIALS) for ch in value):
        raise ValueError("tags may hold letters, digits, inner spaces and + - = . _ : / @ ( ) [ ] , ; > < only")
    return value


def tag_key(value: str) -> str:
    """A tag key, if it keeps the rules of tag text and is not reserved by the cloud.

    Raises:
        ValueError: it does not.
    """
    if value.lower().startswith(RESERVED_TAG_PREFIXES):
        raise ValueError("tag keys starting with qcs:, project: or \u9879\u76ee are reserved by Tencent Cloud")
    return tag_text(value)


def user_tag_key(key: str) -> str:
    """A key a user may set: not one of the function's own tags (case-insensitive: a look-alike key must not
    pass for, or shadow, them).

    Raises:
        ValueError: it is.
    """
    if key.strip().lower().startswith(MANAGED_TAG_PREFIX):
        raise ValueError(f"tag keys starting with {MANAGED_TAG_PREFIX!r} are reserved for this function")
    return key


def check_name_template(value: str) -> str:
    """An image name template: known placeholders only, no format specs, at most 60 characters rendered.

    Raises:
        ValueError: it breaks one of these; the message says which.
    """
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
    # `{InstanceName}` alone is a name: an instance always has one (a blank one renders as its id), and a
    # template of at most 60 characters always leaves it room.
    if not sample.strip() and "InstanceName" not in fields:
        raise ValueError("the rendered name would be empty")
    return value


def to_utc(value: datetime) -> datetime:
    """The time in UTC; a time without a zone is taken as UTC.

    Raises:
        ValueError: the time is out of range in UTC (year 1 east of UTC, year 9999 west of it).
    """
    try:
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("the time is out of range in UTC") from None


@record
class Tag:
    """A tag as the Lighthouse API spells it, held to the Tag service's rules."""

    Key: str
    Value: str


@record
class InstanceSelector:
    """Every instance carrying all these tags in these regions (`["*"]`: every region)."""

    Regions: list[str]
    Tags: list[Tag]


@record
class InstanceRef:
    """One instance and its region."""

    Region: str
    InstanceId: str


@record(kw_only=True)
class Job:
    """What to image and how (README.md, the job table); its rules are `triggers.JobModel`'s.

    `Dispatch` is None when the job does not say (the function then picks by fleet size).
    """

    InstanceId: str | None = None
    InstanceIds: list[str] | None = None
    Selector: InstanceSelector | None = None
    Region: str | None = None
    BlueprintName: str | None = None
    Description: str | None = None
    ForcePowerOff: bool | None = None
    Tags: list[Tag] = field(default_factory=list)
    Keep: int | None = None
    Wait: bool = False
    DryRun: bool = False
    IdempotencyKey: str | None = None
    MaxInstances: int | None = None
    Dispatch: Literal["inline", "invoke"] | None = None
    CopyTo: list[str] | None = None
    CopyKeep: int | None = None
    ShareWith: list[str] | None = None
    Consistent: bool | None = None
    PreCommand: str | None = None
    PostCommand: str | None = None
    PostAfter: Literal["accepted", "ready"] | None = None
    DataDisks: str | list[str] | None = None

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

    def fields(self) -> dict[str, Any]:
        """The job as JSON values, its unset (None) fields left out: what a chained call carries."""
        values: dict[str, Any] = {}
        for name in _JOB_FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            if name == "Tags":
                value = _tag_fields(value)
            elif name == "Selector":
                value = {"Regions": list(value.Regions), "Tags": _tag_fields(value.Tags)}
            elif isinstance(value, list):
                value = list(value)
            values[name] = value
        return values


_JOB_FIELDS = tuple(Job.__dataclass_fields__)


def _tag_fields(tags: list[Tag]) -> list[dict[str, str]]:
    return [{"Key": t.Key, "Value": t.Value} for t in tags]


@record
class TriggerInfo:
    """Which trigger started the run (the `Trigger` field of every result); `Time` is in UTC."""

    Type: Literal["timer", "http", "queue", "invoke"]
    Time: datetime
    Name: str | None = None


@record
class TimerEvent:
    """SCF timer trigger: `Message` is the timer's argument (a string, maybe JSON, maybe empty)."""

    Type: str
    Time: datetime
    TriggerName: str = "timer"
    Message: str = ""


# Defined in blueprint.triggers, loaded on first use (a timer's usual event and job never need them).
_ELSEWHERE = frozenset({"MAX_BATCH", "ApiGatewayEvent", "FunctionUrlEvent", "HttpRequest", "InvokeEvent", "JobModel",
                        "QueueEvent", "QueueRecord", "RestoreJob", "Trigger", "parse_request", "parse_restore",
                        "read_record"})


def __getattr__(name: str) -> Any:
    """The names that live in `blueprint.triggers`, imported the first time one is asked for.

    Raises:
        AttributeError: no such name.
    """
    if name in _ELSEWHERE:
        from blueprint import triggers  # noqa: PLC0415 (the models: a timer's usual event never defines them)

        return getattr(triggers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def parse_event(event: object) -> Trigger:
    """Recognise the trigger from the event's shape (README.md, Triggers) and validate it.

    Raises:
        BadRequest: the event is not an object, or has a trigger's shape but invalid fields.
    """
    if not isinstance(event, Mapping):
        raise BadRequest("the event must be a JSON object")
    kind = event.get("Type")
    if isinstance(kind, str) and kind.lower() == "timer":
        timer = _plain_timer(event)
        if timer is not None:
            return timer
    from blueprint import triggers  # noqa: PLC0415 (the models: a timer's usual event never defines them)

    return triggers.parse_event(event)


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
    from blueprint import triggers  # noqa: PLC0415 (the job's model: a timer's usual job never builds it)

    return triggers.read_job(data, what=what)


# The fields a plain job may give (a timer's usual Message); any other field sends the job to the model.
_PLAIN_FIELDS = frozenset({"InstanceId", "Region", "Keep", "Tags", "Wait", "DryRun", "ForcePowerOff"})


def _plain_job(data: Mapping[Any, Any]) -> Job | None:
    """The job, read without the `JobModel`, when it is of the plain kind a timer sends (an InstanceId, maybe
    Region, Keep, Tags and switches, each of its exact JSON type and within its rules); None for anything else,
    which the model then judges.
    """
    if not _PLAIN_FIELDS.issuperset(data) or not _plain_scalars(data):
        return None
    if "Tags" not in data:
        return Job(**data)
    tags = _plain_tags(data["Tags"])
    return None if tags is None else Job(**{**data, "Tags": tags})


_INSTANCE_ID = re.compile(INSTANCE_ID_PATTERN[1:-1])
_REGION = re.compile(REGION_PATTERN[1:-1])


# How many entries of a bad job's InstanceIds are read for its report (a job may name 100; repeats are dropped).
_SCANNED = 1000


def named_in(data: object, default_region: str, limit: int = 100) -> list[InstanceRef]:
    """The instances a job that did not validate names, read as far as they are plain: what its `.failed` is
    reported for. Ids that do not look like instance ids are left out (their text is the caller's, not ours to
    echo), as is a region that does not look like one (the default then). At most `limit` of them."""
    if not isinstance(data, Mapping):
        return []
    given = data.get("Region")
    region = given if _plain_region(given) else default_region
    ids = data.get("InstanceIds")
    named = [data.get("InstanceId"), *(ids[:_SCANNED] if type(ids) is list else [])]
    plain: dict[tuple[str, str], None] = {}
    for item in named:
        # An InstanceIds entry may name its region: "ap-shanghai:lhins-xxxxxxxx".
        where, _, instance = item.rpartition(":") if type(item) is str else ("", "", "")
        if _INSTANCE_ID.fullmatch(instance) and (not where or _plain_region(where)):
            plain[(where or region, instance)] = None
    return [InstanceRef(Region=r, InstanceId=i) for r, i in list(plain)[:limit]]


def _plain_region(region: object) -> TypeGuard[str]:
    """A region of its exact JSON type within the job's rule."""
    return type(region) is str and len(region) <= 40 and _REGION.fullmatch(region) is not None


def _plain_scalars(data: Mapping[Any, Any]) -> bool:
    """InstanceId, Region, Keep and the switches are of their exact JSON type and within their rules."""
    instance, region, keep = data.get("InstanceId"), data.get("Region"), data.get("Keep", 1)
    return (type(instance) is str and _INSTANCE_ID.fullmatch(instance) is not None
            and (region is None or _plain_region(region))
            and type(keep) is int and 1 <= keep <= 500
            and all(type(data.get(name, False)) is bool for name in ("Wait", "DryRun", "ForcePowerOff")))


def _plain_tags(tags: object) -> list[Tag] | None:
    """The user tags when each is a plain {Key, Value} within the rules; else None."""
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
            made.append(Tag(Key=user_tag_key(tag_key(key)), Value=tag_text(value)))
        except ValueError:
            return None
    return made if len({t.Key for t in made}) == len(made) else None


# A timer's time as SCF writes it ("2026-11-27T03:00:00Z"), or with an offset, or none (UTC); any other
# spelling (fractions, a space, lower case, a number) is the model's.
_TIMER_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(Z|[+-][0-9]{2}:[0-9]{2})?")


def _plain_timer(event: Mapping[Any, Any]) -> TimerEvent | None:
    """The timer event, read without the `TimerEventModel`, when its fields are of their exact types and plain
    spellings (see `_TIMER_TIME`); None for anything else, which the model then judges."""
    name, message = event.get("TriggerName", "timer"), event.get("Message")
    if type(event) is not dict or type(event["Type"]) is not str:
        return None
    if type(name) is not str or not 0 < len(name) <= 60:
        return None
    if message is None:
        message = ""
    elif type(message) is not str or len(message) > MAX_MESSAGE_CHARS:
        return None
    try:  # text that is not valid Unicode (a lone surrogate, which JSON can carry) is the model's to refuse
        name.encode()
        message.encode()
    except UnicodeEncodeError:
        return None
    time = _plain_time(event.get("Time"))
    return None if time is None else TimerEvent(Type=event["Type"], Time=time, TriggerName=name, Message=message)


def _plain_time(value: object) -> datetime | None:
    match = _TIMER_TIME.fullmatch(value) if type(value) is str else None
    if match is None:
        return None
    zone = match[7]
    try:
        if zone is None or zone == "Z":
            offset = timedelta(0)
        else:
            hours, minutes = int(zone[1:3]), int(zone[4:6])
            if minutes > 59:
                return None
            offset = timedelta(hours=hours, minutes=minutes) * (-1 if zone[0] == "-" else 1)
        year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
        return datetime(year, month, day, hour, minute, second, tzinfo=timezone(offset)).astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return None


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
