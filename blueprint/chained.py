"""Chained calls: the async invocations this function sends itself, and the one owner of their envelope.

Three paths send them: fan-out (a fleet split into children), hand-on (what an inline run had no time for)
and Wait follow-ups (an image still being made when time ran out). They share one envelope, written by
`build` and read by `parse`:

    {"Chained": 1, "Kind": "child" | "follow", "Job": {options}, "Targets": [{"Region", "InstanceId",
     "BlueprintName", "WasRunning"}], "Trigger": {...}, "SlotKey": "...", "CorrelationId": "...",
     "Deadline": "...Z", "Share": 0.5}

* Names travel rendered, as plain data: the parent fills the `BlueprintName` template once, and the child
  never reads the rendered text as a template again (an instance named `web{prod}` stays `web{prod}`).
* `Job` holds the job's options only (Keep, Wait, Tags, ...); the targets are the envelope's, and the child
  re-checks them (allowlists, operator limits) like any other job.
* `Deadline` is required and carries its zone; one further away than BLUEPRINT_CHILD_TTL, or naive, or not a
  date, is refused up front. A call that starts after its deadline makes no image (SlotExpired).
* `Targets` is a batch: up to MAX_TARGETS instances of one region (blueprint/dispatch.py cuts them), run by
  the child like an inline run (one slot lookup, creates side by side, one listing after).
* `Share` is the part of the account's API rates the call may use (blueprint/retry.py, `Pacer`): the sender
  splits its own share between the calls it sends, so all children together stay within the account's
  documented limits. Absent (an envelope from before it existed): the whole rate.
* A refused envelope still names what it can (instances, slot, trigger: `salvage`), so the refusal is
  reported as `.failed` for those instances instead of vanishing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from blueprint.errors import BadRequest, BlueprintError, SlotExpired
from blueprint.events import (
    INSTANCE_ID_PATTERN,
    REGION_PATTERN,
    InstanceRef,
    TriggerInfo,
    describe_error,
    parse_job,
    printable,
)
from blueprint.events import Job as JobRecord
from blueprint.results import iso_utc
from blueprint.triggers import AwareUtc, InstanceRefModel, RestoreJob, TriggerInfoModel, parse_restore, trigger_of

__all__ = ["CALL_CODE", "ChainTarget", "ChainedCall", "Refused", "build", "is_chained", "job_options", "parse",
           "restore_options", "salvage"]

# child: a fan-out or hand-on child; follow: a Wait (or copy) follow-up; restore: a restore going on.
Kind = Literal["child", "follow", "restore"]
CALL_CODE = "InvalidParameter.ChainedCall"
# Fields that belong to the run that sends the call, not to the child's own job.
_RUN_FIELDS = frozenset({"InstanceId", "InstanceIds", "Selector", "Region", "BlueprintName", "MaxInstances",
                         "Dispatch", "IdempotencyKey"})
# Keys only an envelope has (none of them is a job field): their presence routes a call here.
_ENVELOPE_KEYS = frozenset({"Chained", "Targets", "SlotKey", "Job"})
# Clock skew tolerated between the sender's and the child's clocks.
SKEW = timedelta(seconds=120)
MAX_TARGETS = 100


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True, defer_build=True)


class ChainTarget(_Model):
    """One instance of a chained call, with its image name already rendered (plain text, not a template)."""

    Region: Annotated[str, StringConstraints(pattern=REGION_PATTERN, max_length=40)]
    InstanceId: Annotated[str, StringConstraints(pattern=INSTANCE_ID_PATTERN)]
    BlueprintName: Annotated[str, StringConstraints(min_length=1, max_length=60), AfterValidator(printable)]
    # The instance was running before its ForcePowerOff image: the follow-up starts it again if needed.
    WasRunning: bool = False

    @property
    def ref(self) -> InstanceRef:
        """The instance as the job model spells it."""
        return InstanceRef(Region=self.Region, InstanceId=self.InstanceId)


class ChainedCall(_Model):
    """The envelope of a call this function sent itself."""

    Chained: Literal[1] = 1
    Kind: Kind
    Job: dict[str, Any]
    Targets: Annotated[list[ChainTarget], Field(min_length=1, max_length=MAX_TARGETS)]
    Trigger: TriggerInfoModel
    SlotKey: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    CorrelationId: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    Deadline: AwareUtc
    # The part of the account's API rates this call may use (the sender's share, split between its calls).
    Share: Annotated[float, Field(gt=0, le=1)] = 1.0

    def job(self) -> JobRecord:
        """The child's own job: the options it was sent with, over the envelope's targets.

        Raises:
            BadRequest: the options do not make a valid job.
        """
        refs = [f"{t.Region}:{t.InstanceId}" for t in self.Targets]
        return parse_job({**self.Job, "InstanceIds": refs}, what="chained call Job")

    def restore(self) -> RestoreJob:
        """The restore a `restore` call goes on with (its one target is the instance).

        Raises:
            BadRequest: the options do not make a valid restore.
        """
        target = self.Targets[0]
        return parse_restore({**self.Job, "InstanceId": target.InstanceId, "Region": target.Region},
                             what="chained call Job")

    def trigger(self) -> TriggerInfo:
        """The trigger of the run that sent the call."""
        return trigger_of(self.Trigger)

    def names(self) -> dict[tuple[str, str], str]:
        """The rendered image name of each target."""
        return {(t.Region, t.InstanceId): t.BlueprintName for t in self.Targets}


@dataclass
class Refused(Exception):
    """A chained call that cannot run: why, and what it was about (as far as the envelope says)."""

    error: BlueprintError
    targets: list[InstanceRef]
    slot_key: str | None
    trigger: TriggerInfo | None


def is_chained(payload: Mapping[str, Any]) -> bool:
    """True when a direct invocation carries our envelope (or something that means to)."""
    return not _ENVELOPE_KEYS.isdisjoint(payload)


def job_options(job: JobRecord) -> dict[str, Any]:
    """What a child inherits from the job that sends it: every option, none of the run's own fields."""
    return {name: value for name, value in job.fields().items() if name not in _RUN_FIELDS}


def restore_options(job: RestoreJob) -> dict[str, Any]:
    """What a restore's follow-up carries: every field but the instance (its target) and the key (its slot)."""
    return job.model_dump(mode="json", exclude={"InstanceId", "Region", "IdempotencyKey"}, exclude_none=True)


def build(*, kind: Kind, options: Mapping[str, Any], targets: Sequence[ChainTarget], trigger: TriggerInfo,
          slot_key: str, correlation_id: str, deadline: datetime, share: float = 1.0) -> str:
    """The JSON of one chained call (validated by the same model that reads it)."""
    told = TriggerInfoModel(Type=trigger.Type, Name=trigger.Name, Time=trigger.Time)
    call = ChainedCall(Kind=kind, Job=dict(options), Targets=list(targets), Trigger=told, SlotKey=slot_key,
                       CorrelationId=correlation_id[:100] or "-", Deadline=deadline, Share=share)
    return orjson.dumps(call.model_dump(mode="json")).decode()


def parse(payload: Mapping[str, Any], *, now: datetime, ttl: float) -> tuple[ChainedCall, JobRecord | RestoreJob]:
    """Validate a chained call and the job it carries, before anything is done for it.

    Raises:
        Refused: the envelope is malformed, its deadline is naive, unreadable, further away than `ttl`, or
            already past (SlotExpired); the refusal carries what the envelope says about its targets.
    """
    try:
        call = ChainedCall.model_validate(payload)
    except ValidationError as err:
        raise _refused(payload, BadRequest(describe_error(err, what="chained call"), code=CALL_CODE)) from None
    if call.Deadline > now + timedelta(seconds=ttl) + SKEW:
        raise _refused(payload, BadRequest(
            f"the chained call's deadline {iso_utc(call.Deadline)} is further away than BLUEPRINT_CHILD_TTL ({ttl:g} s)"
            "; this function never sends one like it", code=CALL_CODE))
    if now > call.Deadline:
        raise _refused(payload, SlotExpired(
            f"this call started after its deadline {iso_utc(call.Deadline)}; no image was made (a later run of the "
            "schedule covers the instance)"))
    try:
        return call, call.restore() if call.Kind == "restore" else call.job()
    except BadRequest as err:
        raise _refused(payload, BadRequest(err.message, code=CALL_CODE)) from None


def _refused(payload: Mapping[str, Any], error: BlueprintError) -> Refused:
    targets, slot_key, trigger = salvage(payload)
    return Refused(error, targets, slot_key, trigger)


def salvage(payload: Mapping[str, Any]) -> tuple[list[InstanceRef], str | None, TriggerInfo | None]:
    """What a (possibly malformed) envelope says about its instances, slot and trigger; each part that does
    not validate on its own is left out, never guessed."""
    targets: list[InstanceRef] = []
    raw_targets = payload.get("Targets")
    for item in raw_targets[:MAX_TARGETS] if isinstance(raw_targets, list) else []:
        if isinstance(item, Mapping):
            ref = _ref(item.get("Region"), item.get("InstanceId"))
            if ref is not None and ref not in targets:
                targets.append(ref)
    slot = payload.get("SlotKey")
    slot_key = slot if isinstance(slot, str) and 0 < len(slot) <= 300 and slot.isprintable() else None
    try:
        trigger: TriggerInfo | None = trigger_of(TriggerInfoModel.model_validate(payload.get("Trigger")))
    except ValidationError:
        trigger = None
    return targets, slot_key, trigger


def _ref(region: object, instance_id: object) -> InstanceRef | None:
    try:
        ref = InstanceRefModel.model_validate({"Region": region, "InstanceId": instance_id})
    except ValidationError:
        return None
    return InstanceRef(Region=ref.Region, InstanceId=ref.InstanceId)


