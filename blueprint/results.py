"""What goes out: one Result per instance (and per pruned image), and the CloudEvents that carry them.

The core returns Results; sinks and the HTTP layer serialise them (orjson) at the edge. Event ids are
deterministic per (type, instance, slot), and per image for `.pruned`, so consumers can drop duplicates.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import field
from datetime import datetime, timezone
from typing import Any, Literal

from blueprint import logs
from blueprint.errors import BlueprintError
from blueprint.events import TriggerInfo
from blueprint.records import record, replace

__all__ = ["CORRELATION_ATTRIBUTE", "EVENT_PREFIX", "EVENT_TYPES", "CommandRun", "Consistency", "DiskPoint", "Outcome",
           "Result",
           "RunReport", "Source",
           "cloud_event", "iso_utc", "result_events", "summary_event"]

EVENT_PREFIX = "com.tencentcloud.lighthouse.blueprint"
Outcome = Literal["created", "ready", "failed", "skipped", "pruned", "copied", "shared", "restore.started",
                  "restore.completed", "restore.failed"]
EVENT_TYPES = tuple(f"{EVENT_PREFIX}.{kind}" for kind in ("created", "ready", "failed", "skipped", "pruned", "copied",
                                                         "shared", "restore.started", "restore.completed",
                                                         "restore.failed", "run.completed"))
# Outcomes that report on an instance's image of the slot (one per instance); the rest ride beside it.
MAIN_OUTCOMES = frozenset({"created", "ready", "failed", "skipped", "restore.started", "restore.completed",
                           "restore.failed"})
# CloudEvents extension attribute carrying the correlation id of chained calls. Extension names must be
# lowercase ASCII letters and digits only (CloudEvents 1.0 §3.1.1), so not `correlation_id`.
CORRELATION_ATTRIBUTE = "correlationid"
_ID_NAMESPACE = uuid.UUID("6f1c4f7e-3b1a-4c55-9a57-2d1f0f1e5b10")
MAX_SUMMARY_FAILURES = 100


# Characters of a command's output a result carries (its end; TAT keeps the first 24 KiB of it).
COMMAND_OUTPUT = 1000
Consistency = Literal["power-off", "commands", "crash-consistent"]


@record
class CommandRun:
    """A pre- or post-command's run on one instance, as a result reports it (never the command's text)."""

    phase: Literal["pre", "post"]
    name: str  # the variable that holds it (BLUEPRINT_PRE_COMMAND) or the TAT command id
    invocation_id: str | None = None
    task_id: str | None = None
    status: str | None = None
    exit_code: int | None = None
    output: str = ""  # the end of the output, redacted

    def data(self) -> dict[str, Any]:
        """The result's `Command` field."""
        data = {"Phase": self.phase, "Command": self.name, "InvocationId": self.invocation_id,
                "InvocationTaskId": self.task_id, "TaskStatus": self.status, "ExitCode": self.exit_code,
                "Output": self.output[-COMMAND_OUTPUT:] or None}
        return {k: v for k, v in data.items() if v is not None}


@record
class DiskPoint:
    """A data disk's backup point made (or found) in the image's slot."""

    disk_id: str
    point_id: str | None
    state: str | None

    def data(self) -> dict[str, Any]:
        """One entry of the result's `DiskBackups`."""
        return {"DiskId": self.disk_id, "DiskBackupId": self.point_id, "State": self.state}


@record
class Result:
    """The outcome for one instance (or one pruned image)."""

    outcome: Outcome
    instance_id: str
    region: str
    trigger: TriggerInfo
    slot_key: str
    force_power_off: bool
    blueprint_id: str | None = None
    blueprint_name: str | None = None
    state: str | None = None
    request_id: str | None = None
    error: BlueprintError | None = None
    reason: str | None = None
    pruned: tuple[str, ...] = ()
    would_delete: tuple[str, ...] = ()
    dry_run: bool = False
    restarted: bool = False
    # The image was found already made for this slot (a retry, a repeated tick, a race's loser): its events
    # are sent again with the ids they had the first time (at least once, stable ids).
    resent: bool = False
    # Still being made when the function's time ran out (a Wait follow-up takes over).
    pending: bool = False
    # The queue message this result answers (queue trigger).
    message_id: str | None = None
    # A copy in another region (`.copied`, or `.failed` for a copy that failed): the image it copies.
    source_id: str | None = None
    # `.shared`: the account the image is shared with.
    account: str | None = None
    # `.restore.*`: the image of the instance made just before it was reset (its way back).
    safety_id: str | None = None
    # What kind of image it is: made with the server off, between the operator's commands, or neither.
    consistency: Consistency | None = None
    # A command that failed: a pre-command on the instance's own result; a post-command on a `.failed` result
    # beside the image's (the image is fine; the application may still be paused).
    command: CommandRun | None = None
    # Data disks: the backup points of the slot, the data disks left out (DataDisks), the points retention
    # deleted; in a dry run, the price of the image and how many images and points would be kept.
    disk_backups: tuple[DiskPoint, ...] = ()
    unprotected: tuple[str, ...] | None = None
    pruned_points: tuple[str, ...] = ()
    price: dict[str, Any] | None = field(default=None, compare=False)
    kept: dict[str, Any] | None = field(default=None, compare=False)
    # Data disks whose point failed, with why: the result becomes `.failed` once its image was followed.
    disk_failures: tuple[tuple[str, BlueprintError], ...] = field(default=(), compare=False)
    started: float | None = field(default=None, compare=False)
    finished: float | None = field(default=None, compare=False)

    @property
    def type(self) -> str:
        """The CloudEvents type of the result's final outcome."""
        return f"{EVENT_PREFIX}.{self.outcome}"

    def outcomes(self) -> tuple[Outcome, ...]:
        """Every event the result stands for, in order: an image that is ready (or that failed after the
        cloud accepted it) was created first, and `.created` is sent too, with its own stable id."""
        made_here = self.blueprint_id and not self.dry_run and self.source_id is None and self.account is None \
            and not self.after_image
        if self.outcome == "ready" or (self.outcome == "failed" and made_here):
            return ("created", self.outcome)
        # A reset that ended was started first (its request id is the ResetInstance call's).
        if self.outcome == "restore.completed" or (self.outcome == "restore.failed" and self.request_id):
            return ("restore.started", self.outcome)
        return (self.outcome,)

    @property
    def main(self) -> bool:
        """True for the one result per instance (copies, shares, pruned images and post-commands ride beside it)."""
        return self.outcome in MAIN_OUTCOMES and self.source_id is None and not self.after_image

    @property
    def after_image(self) -> bool:
        """True for the report of a post-command, which rides beside the image's result."""
        return self.command is not None and self.command.phase == "post"

    @property
    def retryable(self) -> bool:
        """True when the instance failed and another try could help."""
        return self.outcome == "failed" and self.error is not None and self.error.retryable

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish, when both are known."""
        if self.started is None or self.finished is None:
            return None
        return round(self.finished - self.started, 3)

    def but(self, **changes: Any) -> Result:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def data(self) -> dict[str, Any]:
        """The `data` of the CloudEvent, also the HTTP answer for one instance (absent fields are left out)."""
        data: dict[str, Any] = {
            "BlueprintId": self.blueprint_id,
            "BlueprintName": self.blueprint_name,
            "InstanceId": self.instance_id,
            "Region": self.region,
            "State": self.state,
            "ForcePowerOff": self.force_power_off,
            "RequestId": self.request_id,
            "Trigger": {"Type": self.trigger.Type, "Name": self.trigger.Name, "Time": iso_utc(self.trigger.Time)},
        }
        optional: dict[str, Any] = {
            "Error": self.error.as_dict() if self.error is not None else None,
            "Reason": self.reason or None,
            "Pruned": list(self.pruned) or None,
            "InstanceRestarted": self.restarted or None,
            "Resent": self.resent or None,
            "MessageId": self.message_id,
            "SourceBlueprintId": self.source_id,
            "AccountId": self.account,
            "SafetyBlueprintId": self.safety_id,
            "Consistency": self.consistency,
            "Command": self.command.data() if self.command is not None else None,
            "DiskBackups": [p.data() for p in self.disk_backups] or None,
            "Unprotected": list(self.unprotected) if self.unprotected is not None else None,
            "PrunedDiskBackups": list(self.pruned_points) or None,
            "Price": self.price,
            "Kept": self.kept,
            "DryRun": self.dry_run or None,
            "WouldDelete": list(self.would_delete) if self.dry_run else None,
            "Duration": self.duration,
        }
        data.update((key, value) for key, value in optional.items() if value is not None)
        return data

    def event_id(self, outcome: Outcome | None = None) -> str:
        """Deterministic: the same instance, slot and type always give the same id (per image for `.pruned`).

        A slot has one image, but when it failed (CREATEFAILED) a later run of the slot makes another: its
        `.created`, `.ready` and `.failed` are news about a different image, so their ids name the image too (a
        consumer that drops repeats by id would otherwise drop them).
        """
        kind = outcome or self.outcome
        key = f"pruned|{self.blueprint_id}" if kind == "pruned" else \
            f"{kind}|{self.region}|{self.instance_id}|{self.slot_key}"
        if kind in ("created", "ready", "failed") and self.main and self.blueprint_id:
            key += f"|{self.blueprint_id}"
        if self.account is not None:
            key += f"|{self.account}"
        if self.after_image:
            key += "|post-command"
        return str(uuid.uuid5(_ID_NAMESPACE, key))


@record
class Source:
    """Where events come from: `scf://{region}/{namespace}/{function}`."""

    region: str
    namespace: str = "default"
    function: str = "lighthouse-blueprint"

    def uri(self) -> str:
        """The CloudEvents `source`."""
        return f"scf://{self.region}/{self.namespace}/{self.function}"


@record(frozen=False)
class RunReport:
    """Everything one run produced."""

    trigger: TriggerInfo
    slot_key: str
    results: list[Result] = field(default_factory=list)
    matched: int = 0
    dispatched: list[dict[str, Any]] = field(default_factory=list)
    multi: bool = False
    # Instances found RUNNING before a ForcePowerOff image (a follow-up starts them again if needed).
    was_running: set[str] = field(default_factory=set)

    def main_results(self) -> list[Result]:
        """One result per instance (pruned images, copies and shares are reported on the side)."""
        return [r for r in self.results if r.main]

    def beside(self, result: Result) -> list[Result]:
        """The copies and shares of one instance's image (for answers that show them next to it)."""
        return [r for r in self.results if not r.main and r.outcome != "pruned"
                and r.instance_id == result.instance_id and r.slot_key == result.slot_key]

    def failures(self) -> list[Result]:
        """The instances that failed."""
        return [r for r in self.results if r.outcome == "failed"]

    def retry_would_help(self) -> bool:
        """True when some instance failed for a reason a later try could fix."""
        return any(r.retryable for r in self.results)


def iso_utc(value: datetime) -> str:
    """A moment as the events write it: UTC, whole seconds, `Z`."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _envelope(event_id: str, source: Source, event_type: str, subject: str | None, data: dict[str, Any], *,
              now: datetime | None, correlation_id: str | None) -> dict[str, Any]:
    """CloudEvents 1.0 structured mode: required attributes, then optional ones, then extensions."""
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": source.uri(),
        "type": event_type,
        "time": iso_utc(now or datetime.now(timezone.utc)),
        "datacontenttype": "application/json",
    }
    if subject:
        # Optional in CloudEvents; a refusal that names no instance has none.
        event["subject"] = subject
    correlation = correlation_id if correlation_id is not None else logs.current("correlation_id")
    if correlation:
        event[CORRELATION_ATTRIBUTE] = str(correlation)
    event["data"] = data
    return event


def cloud_event(result: Result, source: Source, *, now: datetime | None = None,
                correlation_id: str | None = None, outcome: Outcome | None = None) -> dict[str, Any]:
    """The CloudEvents 1.0 structured-mode envelope for one result (of its final outcome, or of `outcome`).

    `correlation_id` defaults to the one bound to the current invocation's logs (`logs.bind`).
    """
    kind = outcome or result.outcome
    data = result.data()
    if kind == "created" and result.outcome != "created":
        # The `.created` of an image that is ready or failed by now: what was known when it was accepted.
        data = {k: v for k, v in data.items() if k not in ("Error", "Duration", "InstanceRestarted")}
    return _envelope(result.event_id(kind), source, f"{EVENT_PREFIX}.{kind}", result.instance_id or None, data,
                     now=now, correlation_id=correlation_id)


def result_events(result: Result, source: Source, *, correlation_id: str | None = None) -> list[dict[str, Any]]:
    """Every CloudEvent one result stands for (`.created` then `.ready`, for a ready image)."""
    return [cloud_event(result, source, correlation_id=correlation_id, outcome=kind) for kind in result.outcomes()]


def summary_event(report: RunReport, source: Source, *, now: datetime | None = None,
                  correlation_id: str | None = None) -> dict[str, Any]:
    """The `.run.completed` summary of a multi-instance run (id deterministic per slot)."""
    counts: dict[str, int] = {}
    for result in report.results:
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    failures: Sequence[Result] = report.failures()
    data = {
        "Trigger": {"Type": report.trigger.Type, "Name": report.trigger.Name, "Time": iso_utc(report.trigger.Time)},
        "Matched": report.matched,
        "Counts": counts,
        # Capped so the summary stays far below every sink's size limit (SCF async events: 128 KB).
        "Failures": [{"InstanceId": r.instance_id, "Region": r.region,
                      "Error": r.error.as_dict() if r.error else None} for r in failures[:MAX_SUMMARY_FAILURES]],
        "FailureCount": len(failures),
        "Dispatched": len(report.dispatched),
    }
    return _envelope(str(uuid.uuid5(_ID_NAMESPACE, f"run.completed|{report.slot_key}")), source,
                     f"{EVENT_PREFIX}.run.completed", report.slot_key[:200], data, now=now,
                     correlation_id=correlation_id)
