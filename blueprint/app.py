"""The application: built once per warm container, it turns each trigger into a job, runs it, delivers.

`App.handle(event, context)` is what `handler.main_handler` calls. Trigger rules: HTTP never raises (status +
envelope); timer, queue and chained calls raise only when a retry can help, and report everything else as
`.failed` to every sink (a refused job, a poison queue record, a chained call that cannot run), so nothing
is lost and nothing is silent. What the handler raises carries no secret, not even in its chain.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import field
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

import requests

from blueprint import logs
from blueprint.cloud import ClientCache, keep_connections, read_credentials
from blueprint.errors import (
    AccessDenied,
    BadRequest,
    BlueprintError,
    ConfigError,
    DeadlineExceeded,
    DeliveryError,
    RecordsFailed,
    scrubbed,
)
from blueprint.events import (
    InstanceRef,
    Job,
    TimerEvent,
    TriggerInfo,
    named_in,
    parse_event,
    parse_job,
    parse_json,
)
from blueprint.images import PER_INSTANCE_BUDGET, ImageMaker, Quiesce, Target, is_managed
from blueprint.lighthouse import Lighthouse, LighthouseService
from blueprint.outcome import summarize
from blueprint.phases import Recovery
from blueprint.policy import Command, Policy
from blueprint.records import record, replace
from blueprint.results import Result, RunReport, Source, result_events, summary_event
from blueprint.retry import Clock, Deadline, Pacer, RetryPolicy, SystemClock, Waits
from blueprint.settings import Secret, Settings, load_settings
from blueprint.sinks import Delivery, Sink, SinkContext, build_sinks, deliver
from blueprint.slots import (
    INSTANCE_TAG,
    TriggerType,
    caller_slot,
    message_slot,
    request_slot,
    tick_slot,
    webhook_slot,
)

# A timer imports only what it uses (issue 18): the chained-call envelope, fan-out, HTTP, the other sinks,
# copies, shares, tags and restores load on first use, in the functions that use them.
if TYPE_CHECKING:
    from blueprint.dispatch import Chain, Dispatcher
    from blueprint.functions import FunctionRef, Functions
    from blueprint.http import Authenticator
    from blueprint.restore import Restorer
    from blueprint.triggers import (
        HttpRequest,
        InvokeEvent,
        QueueEvent,
        QueueRecord,
        RestoreJob,
    )

__all__ = ["App", "Invocation", "Spec", "answer_config_error", "build_app", "get_app"]

_CORRELATION = re.compile(r"[A-Za-z0-9._:|-]{1,100}")
_ACCOUNT = re.compile(r"[1-9][0-9]{4,19}")
RESTORE_OFF = "UnauthorizedOperation.RestoreOff"


@record
class Spec:
    """One job for one slot: what to do, who asked, and the key that makes it happen once."""

    job: Job | RestoreJob
    trigger: TriggerInfo
    key: str
    # Chained calls carry a deadline and the names their parent rendered (plain values, never templates).
    not_after: datetime | None = None
    names: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # Instances a follow-up must start again once their ForcePowerOff image is done.
    was_running: frozenset[str] = frozenset()
    # A chained call runs its targets itself: it never fans out again.
    chained: bool = False
    message_id: str | None = None

    @property
    def multi(self) -> bool:
        """True for a run over several instances (its answer is a list and it sends a run summary)."""
        if not isinstance(self.job, Job):  # a restore
            return False
        if self.chained:
            # A fan-out's batch is part of its parent's run: the parent sends the run's summary.
            return False
        return self.job.InstanceId is None

    def named(self, default_region: str) -> list[InstanceRef]:
        """The instances the job names (none for a selector): what a refusal is reported for."""
        if not isinstance(self.job, Job):  # a restore
            return [InstanceRef(Region=self.job.Region or default_region, InstanceId=self.job.InstanceId)]
        return [] if self.job.Selector is not None else self.job.targets(default_region)


@record(frozen=False)
class Invocation:
    """One call of the handler: its ids, clock and deadlines."""

    request_id: str
    context: Mapping[str, Any]
    work: Deadline
    delivery: Deadline
    correlation_id: str
    source: Source
    # The part of the account's API rates this invocation may use (a fan-out child's is less than 1).
    share: float = 1.0
    # Filled in as the invocation goes: the one summary log line per invocation.
    summary: dict[str, Any] = field(default_factory=dict)

    def count(self, report: RunReport, delivery: Delivery) -> None:
        """Add a run's outcomes to the invocation's summary."""
        counts: dict[str, int] = self.summary.setdefault("counts", {})
        for result in report.results:
            counts[result.outcome] = counts.get(result.outcome, 0) + 1
        self.summary["trigger"] = report.trigger.Type
        if report.dispatched:
            self.summary["dispatched"] = self.summary.get("dispatched", 0) + len(report.dispatched)
        if delivery.failed:
            failed = set(self.summary.get("delivery_failed", [])) | set(delivery.failed)
            self.summary["delivery_failed"] = sorted(failed)

    def account(self, configured: str | None) -> str | None:
        """The account id (UIN): SCF's context says it; BLUEPRINT_ACCOUNT_ID where no context does."""
        value = str(self.context.get("tencentcloud_uin") or configured or "")
        return value if _ACCOUNT.fullmatch(value) else None

    def self_function(self) -> FunctionRef | None:
        """This function, for fan-out and continuations (known from the context, or SCF's variables)."""
        from blueprint.functions import FunctionRef  # noqa: PLC0415 (only chained calls pay for it)

        name = self.context.get("function_name") or os.environ.get("SCF_FUNCTIONNAME")
        if not name:
            return None
        return FunctionRef(name=str(name), namespace=str(self.context.get("namespace") or "default"),
                           qualifier=str(self.context.get("function_version") or "$LATEST"),
                           region=self.source.region)


@record(frozen=False)
class App:
    """Everything built once per warm container."""

    settings: Settings
    clients: ClientCache
    lighthouse: Lighthouse
    maker: ImageMaker
    sinks: list[Sink]
    clock: Clock = field(default_factory=SystemClock)
    default_job: Job | None = None
    env: Mapping[str, str] = field(default_factory=lambda: os.environ, repr=False)
    # Restores (None with a fake cloud port in tests): built on first use, like everything below.
    restorers: Callable[[], Restorer | None] = field(default=lambda: None, repr=False)

    @cached_property
    def functions(self) -> Functions:
        """SCF Invoke, for chained calls."""
        from blueprint.functions import Functions  # noqa: PLC0415 (only chained calls pay for it)

        return Functions(self.clients, clock=self.clock)

    @cached_property
    def dispatcher(self) -> Dispatcher:
        """What sends chained calls (fan-out, hand-on, follow-ups)."""
        from blueprint.dispatch import Dispatcher  # noqa: PLC0415 (only chained calls pay for it)

        return Dispatcher(self.functions)

    @cached_property
    def auth(self) -> Authenticator:
        """What authenticates HTTP requests."""
        from blueprint.http import Authenticator  # noqa: PLC0415 (only HTTP pays for it)

        settings = self.settings
        return Authenticator(settings.http_auth, tokens=[t.get_secret_value() for t in settings.http_tokens],
                             secrets=[s.get_secret_value() for s in settings.signing_secrets()], now=self.clock.time)

    @cached_property
    def restore_auth(self) -> Authenticator | None:
        """What authenticates HTTP restores (None: restores are off)."""
        return _restore_auth(self.settings, self.clock) if self.settings.restore else None

    @cached_property
    def restorer(self) -> Restorer | None:
        """Restores (None with a fake cloud port in tests)."""
        return self.restorers()

    @property
    def policy(self) -> Policy:
        """The operator's policy (limits, allowlists, defaults)."""
        return self.maker.policy

    # ---- entry ----------------------------------------------------------------------------------------

    def handle(self, event: Any, context: Any) -> Any:
        """Handle one invocation of any trigger.

        Raises:
            BlueprintError: for async triggers, when a retry can help (or the configuration is bad). The
                error is a scrubbed copy: redacted message, no cause and no context chain.
        """
        inv = self._invocation(context if isinstance(context, Mapping) else {}, event)
        token = logs.bind(request_id=inv.request_id, correlation_id=inv.correlation_id)
        started = time.monotonic()
        outcome = "raised"
        failure: BlueprintError | None = None
        try:
            answer = self._dispatch(event, inv)
            outcome = _outcome(answer, inv.summary.get("counts"))
            return answer
        except BlueprintError as err:
            outcome = f"raised {err.code}"
            failure = scrubbed(err)
        except Exception as err:
            # A bug must not leak its text to a sync invoker; the traceback goes to the log only.
            logs.log_exception("unexpected error", err)
            failure = BlueprintError(f"internal error; quote the RequestId {inv.request_id}")
        finally:
            waited = inv.work.waits.summary()
            logs.log("INFO", "invocation finished", duration=round(time.monotonic() - started, 3), outcome=outcome,
                     **inv.summary, waited=waited or None)
            logs.unbind(token)
        # Raised here, outside the `except` blocks, so the platform's traceback has no chain to print.
        raise failure

    def _budget(self, context: Mapping[str, Any]) -> float:
        """Seconds of work an invocation gets: its time limit less the margin kept for delivering results."""
        limit = _seconds(context.get("time_limit_in_ms")) or self.settings.default_time_limit
        return max(limit - self.settings.time_margin, limit * 0.5)

    def _invocation(self, context: Mapping[str, Any], event: Any) -> Invocation:
        limit = _seconds(context.get("time_limit_in_ms")) or self.settings.default_time_limit
        waits = Waits()
        work = Deadline.after(self.clock, self._budget(context), waits)
        request_id = str(context.get("request_id") or uuid.uuid4())
        correlation = event.get("CorrelationId") if isinstance(event, Mapping) else None
        source = Source(region=str(context.get("tencentcloud_region") or self.settings.region),
                        namespace=str(context.get("namespace") or "default"),
                        function=str(context.get("function_name") or "lighthouse-blueprint"))
        # A correlation id is copied into every log line and event: only a plain token is taken from an event.
        plain = isinstance(correlation, str) and _CORRELATION.fullmatch(correlation) is not None
        return Invocation(request_id=request_id, context=context, work=work,
                          delivery=Deadline.after(self.clock, max(limit - 0.5, 0.5), waits),
                          correlation_id=str(correlation) if plain else request_id, source=source)

    def _dispatch(self, event: Any, inv: Invocation) -> Any:
        try:
            self.clients.use(read_credentials(self.env))
            trigger = parse_event(event)
        except BlueprintError as err:
            return self._bad_event(err, event, inv)
        if isinstance(trigger, TimerEvent):
            return self._timer(trigger, inv)
        from blueprint.triggers import ApiGatewayEvent, FunctionUrlEvent, QueueEvent  # noqa: PLC0415 (not a timer's)

        if isinstance(trigger, ApiGatewayEvent | FunctionUrlEvent):
            return self._http(trigger, inv)
        if isinstance(trigger, QueueEvent):
            return self._queue(trigger, inv)
        return self._invoke(trigger, inv)

    def _bad_event(self, err: BlueprintError, event: Any, inv: Invocation) -> Any:
        """No credentials, or an event that does not validate.

        Raises:
            ConfigError: on the async triggers, so the failure shows in the platform's monitoring.
        """
        is_http = isinstance(event, Mapping) and "httpMethod" in event
        if isinstance(err, ConfigError):
            logs.log("ERROR", "configuration error", error=err.message)
            if is_http:
                from blueprint.http import generic_error  # noqa: PLC0415 (only HTTP pays for it)

                # The deployment's problem, not the caller's, and the caller is not authenticated yet.
                return generic_error(inv.request_id)
            raise err
        if is_http:
            from blueprint.http import error_response  # noqa: PLC0415 (only HTTP pays for it)

            return error_response(err, inv.request_id)
        kind: TriggerType = "timer" if _looks_like_timer(event) else "queue" if _has(event, "Records") else "invoke"
        # A timer refused for its Time (or Message) still says which trigger it was, when its name is plain.
        name = event.get("TriggerName") if kind == "timer" else None
        plain = name if isinstance(name, str) and 0 < len(name) <= 60 and name.isprintable() else None
        return self._refuse(err, inv, TriggerInfo(Type=kind, Time=_now(), Name=plain),
                            request_slot(kind, inv.request_id))

    # ---- triggers -------------------------------------------------------------------------------------

    def _timer(self, event: TimerEvent, inv: Invocation) -> dict[str, Any]:
        trigger = TriggerInfo(Type="timer", Name=event.TriggerName, Time=event.Time)
        slot = tick_slot(event.TriggerName, event.Time)
        data: object = None
        try:
            if event.Message.strip():
                data = parse_json(event.Message, what="timer Message")
                job = parse_job(data, what="timer Message job")
            elif self.default_job is not None:
                job = self.default_job
            else:
                raise BadRequest("the timer has no job: give it an argument (Message) or set BLUEPRINT_JOB")
        except BadRequest as err:
            return self._refuse(err, inv, trigger, slot, self._named_in(data))
        key = caller_slot("timer", job.IdempotencyKey) if job.IdempotencyKey else slot
        return self._async_run(Spec(job, trigger, key), inv)

    def _invoke(self, event: InvokeEvent, inv: Invocation) -> dict[str, Any]:
        from blueprint import chained  # noqa: PLC0415 (a timer never needs the envelope)
        from blueprint.triggers import parse_request  # noqa: PLC0415 (nor the other triggers' models)

        payload = event.payload
        if chained.is_chained(payload):
            return self._chained(payload, inv)
        trigger = TriggerInfo(Type="invoke", Name=None, Time=_now())
        try:
            job = parse_request(payload)
        except BadRequest as err:
            return self._refuse(err, inv, trigger, request_slot("invoke", inv.request_id), self._named_in(payload))
        key = caller_slot("invoke", job.IdempotencyKey) if job.IdempotencyKey else request_slot("invoke",
                                                                                                 inv.request_id)
        return self._async_run(Spec(job, trigger, key), inv)

    def _chained(self, payload: Mapping[str, Any], inv: Invocation) -> dict[str, Any]:
        """A call this function sent itself: validated up front; one that cannot run is reported as `.failed`
        for every instance it names."""
        from blueprint import chained  # noqa: PLC0415 (only chained calls pay for it)

        try:
            call, job = chained.parse(payload, now=_now(), ttl=self.settings.child_ttl)
        except chained.Refused as refused:
            trigger = refused.trigger or TriggerInfo(Type="invoke", Time=_now())
            slot = refused.slot_key or request_slot("invoke", inv.request_id)
            return self._refuse(refused.error, inv, trigger, slot, refused.targets)
        if call.Share < 1:
            inv.share, inv.work = call.Share, inv.work.paced(Pacer(call.Share, clock=self.clock))
        running = frozenset(t.InstanceId for t in call.Targets if t.WasRunning)
        trigger = call.trigger()
        # A queue record's trigger is named after its message: the children's results answer it too.
        spec = Spec(job, trigger, call.SlotKey, not_after=call.Deadline, names=call.names(), was_running=running,
                    chained=True, message_id=trigger.Name if trigger.Type == "queue" else None)
        return self._async_run(spec, inv)

    def _queue(self, event: QueueEvent, inv: Invocation) -> dict[str, Any]:
        """Every record on its own: a record that can never succeed is reported `.failed` (with its message
        id) and acknowledged; the batch raises only when a record failed in a way a retry can fix (the
        platform then redelivers the batch, and the records already done are found, not remade)."""
        answers: list[Any] = []
        retry: list[str] = []
        records = event.records()
        for index, queued in enumerate(records):
            if inv.work.remaining() < PER_INSTANCE_BUDGET:
                retry.extend(r.message_id for r in records[index:])
                answers.extend({"MessageId": r.message_id, "Error": DeadlineExceeded(
                    "not started: the function's time ran out; the batch is retried").as_dict()}
                    for r in records[index:])
                break
            # A busy instance is waited out for the record's share of the time left, no longer: records after it
            # still get theirs (what a record leaves unused goes to the ones after it).
            share = inv.work.remaining() / (len(records) - index)
            answer, retryable = self._record(queued, replace(inv, work=inv.work.busy_for(share)))
            answers.append(answer)
            if retryable:
                retry.append(queued.message_id)
        if retry:
            raise RecordsFailed(f"{len(retry)} of {len(records)} record(s) failed in a way a retry can fix "
                                f"(first: message {retry[0]}); the platform retries the batch")
        return {"Records": answers, "RequestId": inv.request_id}

    def _record(self, record: QueueRecord, inv: Invocation) -> tuple[Any, bool]:
        """One queue record: its answer, and whether it failed in a way a retry can fix."""
        trigger = TriggerInfo(Type="queue", Name=record.message_id, Time=record.time or _now())
        slot = message_slot(record.message_id)
        from blueprint.triggers import parse_request  # noqa: PLC0415 (a timer never needs the other triggers)

        data: object = None
        try:
            if record.problem is not None:
                raise BadRequest(record.problem)
            data = parse_json(record.body, what="record body")
            job = parse_request(data, what="record job")
        except BadRequest as err:
            logs.log("ERROR", "queue record refused", error=err.message, code=err.code, message_id=record.message_id)
            try:
                return self._refuse(err, inv, trigger, slot, self._named_in(data), message_id=record.message_id), False
            except DeliveryError as failed:
                return {"MessageId": record.message_id, "Error": failed.as_dict()}, True
        key = caller_slot("queue", job.IdempotencyKey) if job.IdempotencyKey else slot
        try:
            return {**self._async_run(Spec(job, trigger, key, message_id=record.message_id), inv),
                    "MessageId": record.message_id}, False
        except BlueprintError as err:
            logs.log("ERROR", "queue record failed", error=err.message, code=err.code, message_id=record.message_id)
            return {"MessageId": record.message_id, "Error": err.as_dict()}, True

    def _async_run(self, spec: Spec, inv: Invocation) -> dict[str, Any]:
        """Run a job for an async trigger.

        Raises:
            BlueprintError: when a retry can help (a sink did not take a result, an instance failed in a way
                a retry can fix); every other failure is reported and answered, not raised.
        """
        try:
            report, delivery = self.execute(spec, inv)
        except BlueprintError as err:
            if err.retryable:
                raise
            return self._refuse(err, inv, spec.trigger, spec.key, spec.named(self.settings.region),
                                message_id=spec.message_id)
        answer = {"Results": [r.data() for r in report.main_results()], "RequestId": inv.request_id,
                  "Dispatched": len(report.dispatched)}
        if not delivery.ok:
            raise _delivery_error(delivery)
        if report.retry_would_help():
            failed = [r for r in report.results if r.retryable]
            first = failed[0].error
            assert first is not None  # noqa: S101 (retryable implies an error)
            raise type(first)(f"{len(failed)} instance(s) failed in a way a retry can fix; first: {first.message}",
                              code=first.code)
        return answer

    def _named_in(self, data: object) -> list[InstanceRef]:
        """The instances a job (or a restore) that did not validate names, as far as they can be read."""
        if isinstance(data, Mapping) and "Restore" in data:
            data = data["Restore"]
        return named_in(data, self.settings.region)

    def _refuse(self, err: BlueprintError, inv: Invocation, trigger: TriggerInfo, slot_key: str,
                targets: Iterable[InstanceRef] = (), *, message_id: str | None = None) -> dict[str, Any]:
        """A job or event that cannot run, on an async trigger: reported as `.failed` to every sink (for each
        instance it names), answered, not raised (a retry cannot help).

        Raises:
            DeliveryError: no sink took the report: then a retry can help, and nothing is lost.
        """
        logs.log("ERROR", "event refused", error=err.message, code=err.code)
        refs: list[InstanceRef | None] = [*targets] or [None]
        results = [Result(outcome="failed", instance_id=ref.InstanceId if ref else "",
                          region=ref.Region if ref else self.settings.region, trigger=trigger, slot_key=slot_key,
                          force_power_off=self.policy.force_power_off, error=err, message_id=message_id)
                   for ref in refs]
        report = RunReport(trigger, slot_key, results=results)
        delivery = self._deliver(report, inv)
        inv.count(report, delivery)
        if not delivery.ok:
            raise _delivery_error(delivery)
        answer: dict[str, Any] = {"Error": err.as_dict(), "RequestId": inv.request_id}
        if message_id is not None:
            answer["MessageId"] = message_id
        return answer

    # ---- HTTP -----------------------------------------------------------------------------------------

    def _http(self, req: HttpRequest, inv: Invocation) -> dict[str, Any]:
        from blueprint.http import HttpApi, generic_error  # noqa: PLC0415 (only HTTP pays for it)

        # The caller waits for the answer: a busy instance is a quick 409 with Retry-After, not minutes of retries.
        inv = replace(inv, work=inv.work.impatient())
        api = HttpApi(self.auth, _HttpJobs(self, req, inv), restore_auth=self.restore_auth)
        try:
            return api.handle(req, inv.request_id)
        except Exception as err:
            logs.log_exception("unexpected error on the HTTP path", err)
            return generic_error(inv.request_id)

    # ---- the run --------------------------------------------------------------------------------------

    def execute(self, spec: Spec, inv: Invocation) -> tuple[RunReport, Delivery]:
        """Plan, run (or fan out), deliver every result.

        Raises:
            BlueprintError: planning failed as a whole (bad selection, operator limits, cloud unreachable).
        """
        report = self.run(spec, inv) if isinstance(spec.job, Job) else self._restore(spec, spec.job, inv)
        if spec.message_id is not None:  # every result of a queue record names the record it answers
            report.results[:] = [r if r.message_id else r.but(message_id=spec.message_id) for r in report.results]
        delivery = self._deliver(report, inv)
        inv.count(report, delivery)
        return report, delivery

    def _restore(self, spec: Spec, job: RestoreJob, inv: Invocation) -> RunReport:
        """A restore (only when turned on); a chained call goes on with it when time runs out.

        Raises:
            BlueprintError: the restore may not run (off, not allowed, no such image of this instance).
        """
        if not self.settings.restore or self.restorer is None:
            raise AccessDenied("restores are off: BLUEPRINT_RESTORE=on turns them on", code=RESTORE_OFF)
        report: RunReport = self.restorer.run(job, region=self.settings.region, trigger=spec.trigger,
                                              slot_key=spec.key, deadline=inv.work,
                                              account=inv.account(self.settings.account_id))
        if any(r.pending for r in report.results):
            from blueprint.chained import ChainTarget  # noqa: PLC0415 (only chained calls pay for it)

            chain = self._chain(spec, inv, spec.not_after or _now() + timedelta(seconds=self.settings.child_ttl))
            target = ChainTarget(Region=job.Region or self.settings.region, InstanceId=job.InstanceId,
                                 BlueprintName="restore", WasRunning=job.InstanceId in report.was_running)
            for _, err in self.dispatcher.send(inv.self_function(), chain, [target], kind="restore", report=report,
                                               deadline=inv.work, share=inv.share):
                report.results.append(Result(outcome="restore.failed", instance_id=job.InstanceId,
                                             region=target.Region, trigger=spec.trigger, slot_key=spec.key,
                                             force_power_off=False, blueprint_id=job.BlueprintId,
                                             error=_not_followed(err, "the restore is still in progress")))
        return report

    def run(self, spec: Spec, inv: Invocation) -> RunReport:
        """Plan and run one job; instances handed to other invocations are listed in `Dispatched`.

        Raises:
            BlueprintError: planning failed as a whole.
        """
        job = spec.job
        assert isinstance(job, Job)  # noqa: S101 (restores run in `_restore`)
        account = inv.account(self.settings.account_id)
        plan = self.maker.plan(job, self.settings.region, inv.work, slot_key=spec.key, account=account,
                               chained=spec.chained, inline_up_to=self._inline_up_to(spec))
        # A chained call carries the names its parent rendered and the instances it found running.
        targets = [replace(t, blueprint_name=spec.names.get((t.ref.Region, t.ref.InstanceId)),
                           was_running=t.ref.InstanceId in spec.was_running) for t in plan.targets
                   ] if spec.names or spec.was_running else plan.targets
        # Chained calls this run sends must start by then (a child's own calls keep its parent's deadline).
        not_after = spec.not_after or _now() + timedelta(seconds=self.settings.child_ttl)
        if self._fans_out(spec, len(targets)):
            report, _ = self.maker.run(job, [], trigger=spec.trigger, slot_key=spec.key, deadline=inv.work,
                                       multi=spec.multi, refused=plan.refused)
            report.matched += len(targets)
            # `Dispatch: "invoke"` asks for one async call per instance (each retried and dead-lettered on its own);
            # the automatic switch sends batches, which scale with the account's limits (docs/scale.md).
            self._send(report, self._chain(spec, inv, not_after), targets, inv, why="", share=inv.share,
                       size=1 if job.Dispatch == "invoke" else None)
            return report
        report, overflow = self.maker.run(job, targets, trigger=spec.trigger, slot_key=spec.key, deadline=inv.work,
                                          multi=spec.multi, refused=plan.refused, prefetched=plan.slot_images,
                                          prefetched_disks=plan.disks, account=account)
        # What this invocation hands on and what it follows run side by side: its share is split between them.
        share = inv.share / 2 if overflow and any(r.pending for r in report.results) else inv.share
        if overflow:
            self._send(report, self._chain(spec, inv, not_after), overflow, inv,
                       why="the function's time ran out before this instance; ", share=share)
        if any(r.pending for r in report.results):
            self._follow(report, self._chain(spec, inv, not_after), inv, share=share)
        return report

    @staticmethod
    def _chain(spec: Spec, inv: Invocation, not_after: datetime) -> Chain:
        """What every chained call of this run carries."""
        from blueprint.dispatch import Chain  # noqa: PLC0415 (only chained calls pay for it)

        return Chain(spec.job, spec.trigger, spec.key, inv.correlation_id, not_after)

    def _inline_up_to(self, spec: Spec) -> int | None:
        """The most instances this job runs inline (None: any number), as `_fans_out` decides."""
        job = spec.job
        if not isinstance(job, Job) or spec.chained or job.DryRun or job.Dispatch == "inline":
            return None
        return 0 if job.Dispatch == "invoke" else self.settings.dispatch_threshold

    def _fans_out(self, spec: Spec, count: int) -> bool:
        """Fan out when the job asks for it, or when it is large and did not ask to run inline."""
        job = spec.job
        if not isinstance(job, Job) or spec.chained or job.DryRun:
            return False
        if job.Dispatch == "invoke":
            return True
        return job.Dispatch is None and count > self.settings.dispatch_threshold

    def _send(self, report: RunReport, chain: Chain, targets: list[Target], inv: Invocation, *, why: str,
              share: float, size: int | None = None) -> None:
        """Hand instances to child calls (fan-out, or what this run had no time for: `why` says so), in batches
        (of at most `size` instances, default the largest) that share `share` of the account's rates."""
        from blueprint.chained import ChainTarget  # noqa: PLC0415 (only chained calls pay for it)
        from blueprint.dispatch import MAX_BATCH, batches, forecast  # noqa: PLC0415

        assert isinstance(chain.job, Job)  # noqa: S101 (restores never fan out)
        calls = [ChainTarget(Region=t.ref.Region, InstanceId=t.ref.InstanceId,
                             BlueprintName=self.maker.name_for(chain.job, t, chain.trigger),
                             WasRunning=t.was_running or t.ref.InstanceId in report.was_running) for t in targets]
        job = chain.job
        size = size or MAX_BATCH
        logs.log("INFO", "handing instances on", **vars(forecast(
            [len(b) for b in batches(calls, size)], share=share, create_rate=self.settings.create_rate,
            budget=self._budget(inv.context))))
        for call, err in self.dispatcher.send(inv.self_function(), chain, calls, kind="child", report=report,
                                              deadline=inv.work, share=share, size=size):
            report.results.append(Result(
                outcome="failed", instance_id=call.InstanceId, region=call.Region, trigger=chain.trigger,
                slot_key=chain.slot_key, force_power_off=self.maker.force_power_off(job),
                blueprint_name=call.BlueprintName, error=_not_started(err, why)))

    def _follow(self, report: RunReport, chain: Chain, inv: Invocation, *, share: float) -> None:
        """Images still being made when time ran out: a chained call of this function follows each one. One
        that cannot be scheduled is a failure of the run (retryable: the platform's retry follows it)."""
        from blueprint.chained import ChainTarget  # noqa: PLC0415 (only chained calls pay for it)

        pending = {(r.region, r.instance_id): n for n, r in enumerate(report.results) if r.pending}
        if not pending:
            return
        calls = [ChainTarget(Region=region, InstanceId=instance,
                             BlueprintName=report.results[n].blueprint_name or instance,
                             WasRunning=instance in report.was_running)
                 for (region, instance), n in pending.items()]

        for call, err in self.dispatcher.send(inv.self_function(), chain, calls, kind="follow", report=report,
                                              deadline=inv.work, share=share):
            index = pending[(call.Region, call.InstanceId)]
            why = report.results[index].reason or "still in progress"
            report.results[index] = report.results[index].but(outcome="failed", error=_not_followed(err, why))

    def _deliver(self, report: RunReport, inv: Invocation) -> Delivery:
        events = [e for r in report.results for e in result_events(r, inv.source, correlation_id=inv.correlation_id)
                  ] if self.sinks else []  # no sink: no event to build
        if report.multi and self.sinks:
            events.append(summary_event(report, inv.source, correlation_id=inv.correlation_id))
        for result in report.results:
            logs.log("INFO" if result.outcome != "failed" else "ERROR", f"image {result.outcome}",
                     instance=result.instance_id or None, region=result.region, image_id=result.blueprint_id,
                     state=result.state, outcome=result.outcome, duration=result.duration,
                     error=result.error.as_dict() if result.error else None)
        return deliver(self.sinks, events, inv.delivery)


@record(frozen=False)
class _HttpJobs:
    """The application as the HTTP API sees it, for one request."""

    app: App
    req: HttpRequest
    inv: Invocation

    def _key(self, own: str | None, header_key: str | None, webhook_id: str | None) -> str:
        if own:
            return caller_slot("http", own)
        if webhook_id is not None:
            return webhook_slot(webhook_id)
        if header_key is not None:
            return caller_slot("http", header_key)
        return request_slot("http", self.inv.request_id)

    def _trigger(self) -> TriggerInfo:
        return TriggerInfo(Type="http", Name=self.req.path[:100], Time=_now())

    def restore(self, job_data: object, *, header_key: str | None, webhook_id: str | None) -> tuple[
            int, Any, dict[str, str]]:
        """Run a restore; 202 with where it stands (and its safety image), or the failure's own status."""
        from blueprint.triggers import parse_restore  # noqa: PLC0415 (a timer never needs restores)

        job = parse_restore(job_data)
        report, delivery = self.app.execute(Spec(job, self._trigger(), self._key(job.IdempotencyKey, header_key,
                                                                                    webhook_id)), self.inv)
        headers = {} if delivery.ok else {"X-Blueprint-Delivery": "failed: " + ", ".join(sorted(delivery.failed))}
        mine = [r for r in report.results if r.outcome.startswith("restore.") or r.dry_run]
        safety = next((r for r in report.results if r.main and not r.outcome.startswith("restore.")
                       and not r.dry_run), None)
        result = mine[-1] if mine else safety
        if result is None:
            return 500, {"Error": {"Code": "InternalError", "Message": "the restore left no result"}}, headers
        body = {**result.data(), **({"SafetyImage": safety.data()} if safety is not None else {})}
        if not delivery.ok:
            body["DeliveryFailed"] = sorted(delivery.failed)
        if result.outcome == "restore.failed" and result.error is not None:
            # The envelope's RequestId is this invocation's; the result's own (its cloud call's) must not replace it.
            return result.error.status, {"Error": result.error.as_dict(), **body, "RequestId": self.inv.request_id}, \
                _retry_headers(result.error) | headers
        return 202, body, headers

    def listing(self, instance_id: str, region: str | None) -> list[dict[str, Any]] | None:
        """The managed images of an instance the allowlists admit (None otherwise: 404)."""
        where = region or self.app.settings.region
        if not self._admits(where, instance_id):
            return None
        from blueprint.listing import list_images  # noqa: PLC0415 (only listings pay for it)

        restorer = self.app.restorer
        return list_images(self.app.lighthouse if restorer is None else restorer.cloud,  # type: ignore[arg-type]
                           None if restorer is None else restorer.tagger, region=where, instance_id=instance_id,
                           deadline=self.inv.work, retry=self.app.maker.retry,
                           disks=None if restorer is None else restorer.disks)

    def submit(self, job_data: object, *, header_key: str | None, webhook_id: str | None) -> tuple[
            int, Any, dict[str, str]]:
        """Run the job; 202 with the result(s), or the failure's own status for a single instance."""
        job = parse_job(job_data)
        key = self._key(job.IdempotencyKey, header_key, webhook_id)
        report, delivery = self.app.execute(Spec(job, self._trigger(), key), self.inv)
        headers = {} if delivery.ok else {"X-Blueprint-Delivery": "failed: " + ", ".join(sorted(delivery.failed))}
        main = report.main_results()
        extra: dict[str, Any] = {} if delivery.ok else {"DeliveryFailed": sorted(delivery.failed)}
        if report.dispatched:
            # Instances refused before the fan-out (allowlists) or whose child could not be sent are listed too.
            body = {"Dispatched": report.dispatched, "Matched": report.matched,
                    "Results": [r.data() for r in main], **extra}
            return 202, body, headers
        if not report.multi and len(main) == 1:
            result = main[0]
            beside = report.beside(result)
            if beside:
                # E.g. a post-command that failed: the application may still be paused, whatever the image did.
                extra["Beside"] = [r.data() | {"Type": r.type} for r in beside]
            if result.outcome == "failed" and result.error is not None and not result.blueprint_id:
                body = {"Error": result.error.as_dict(), "RequestId": self.inv.request_id, **extra}
                return result.error.status, body, _retry_headers(result.error) | headers
            return 202, {**result.data(), **extra}, headers
        return 202, [r.data() | extra for r in main], headers

    def image(self, blueprint_id: str, region: str | None) -> dict[str, Any] | None:
        """DescribeBlueprints for one id: only an image this function made, of an instance the allowlists
        admit (reads are scoped like writes); anything else is None (404)."""
        where = region or self.app.settings.region
        try:
            found = self.app.lighthouse.find_images(where, ids=[blueprint_id], deadline=self.inv.work)
        except BlueprintError as err:
            if err.status == 404 or err.code.startswith("InvalidParameter"):
                return None
            raise
        image = found[0] if found else None
        if image is None or not is_managed(image) or not self._admits(where, image.tags[INSTANCE_TAG]):
            return None
        return image.as_dict()

    def _admits(self, region: str, instance_id: str) -> bool:
        policy = self.app.policy
        if not policy.lists(instance_id):
            return False
        if not policy.needs_tags:
            return True
        found = self.app.lighthouse.find_instances(region, ids=[instance_id], deadline=self.inv.work)
        return policy.refusal(instance_id, found[0].tags if found else {}) is None


def _retry_headers(err: BlueprintError) -> dict[str, str]:
    from blueprint.http import retry_headers  # noqa: PLC0415 (only HTTP pays for it)

    return retry_headers(err)


def _not_started(err: BlueprintError, why: str) -> BlueprintError:
    """An instance handed on whose call could not be sent: not started (the error says whether a retry helps)."""
    return type(err)(f"not started: {why}{err.message}", code=err.code, request_id=err.request_id)


def _not_followed(err: BlueprintError, why: str) -> BlueprintError:
    """A follow-up that could not be scheduled: the run failed, and a retry can schedule it."""
    return DeadlineExceeded(f"{why}, and its follow-up could not be scheduled ({err.message}); the retry follows "
                            "it", code="FailedOperation.FollowUp")


def _delivery_error(delivery: Delivery) -> DeliveryError:
    return DeliveryError("results were not delivered to: " + ", ".join(sorted(delivery.failed)) + " ("
                         + "; ".join(why for _, why in sorted(delivery.failed.items())) + ")")


def _outcome(answer: object, counts: Mapping[str, int] | None) -> str:
    """The summary line's `outcome`: `ok`, `partial`, `failed`, `refused <code>` or `http <status>`, never `ok`
    next to a failed count (a copy or share that failed beside a done image makes it `partial`);
    `python -m blueprint invoke` turns the same words into its exit status."""
    return summarize(answer, counts)


def _looks_like_timer(event: object) -> bool:
    return isinstance(event, Mapping) and isinstance(event.get("Type"), str) and event["Type"].lower() == "timer"


def _has(event: object, key: str) -> bool:
    return isinstance(event, Mapping) and key in event


def _seconds(value: object) -> float | None:
    """`time_limit_in_ms` in seconds; None when absent or not a positive number (local runs, odd contexts)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        ms = float(value)
    except ValueError:
        return None
    return ms / 1000 if 0 < ms < float("inf") else None


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def build_app(env: Mapping[str, str], *, clock: Clock | None = None, session: requests.Session | None = None,
              lighthouse: Lighthouse | None = None) -> App:
    """Wire the application from environment variables.

    Raises:
        ConfigError: a variable has a bad value (the message names it).
    """
    settings = load_settings(env)
    logs.set_level(settings.log_level)
    logs.register_secrets([s.get_secret_value() for s in (*settings.http_tokens, *settings.http_secrets)]
                          + [settings.webhook_secret.get_secret_value() if settings.webhook_secret else None,
                             env.get("TENCENTCLOUD_SECRETKEY"), env.get("TENCENTCLOUD_SECRET_KEY"),
                             env.get("TENCENTCLOUD_SESSIONTOKEN")])
    clock = clock or SystemClock()
    # Beside a fleet's creates: its listings, and the points and polls of instances being imaged.
    clients = ClientCache(settings.api_endpoint, connections=settings.concurrency + 4)
    service = lighthouse or LighthouseService(clients, create_rate=settings.create_rate,
                                              describe_rate=settings.describe_rate)
    policy = Policy(force_power_off=settings.force_power_off, keep=settings.keep,
                    max_instances=settings.max_instances, concurrency=settings.concurrency,
                    allowed_instances=frozenset(settings.allowed_instances), allowed_tags=settings.allowed_tags,
                    restart_instances=settings.restart_instance,
                    in_progress_states=frozenset(settings.in_progress_states),
                    share_with=settings.share_with, allowed_share_accounts=frozenset(settings.allowed_share_accounts),
                    pre_command=_command("BLUEPRINT_PRE_COMMAND", settings.pre_command),
                    post_command=_command("BLUEPRINT_POST_COMMAND", settings.post_command),
                    allowed_commands=frozenset(c for c in settings.allowed_commands if ":" not in c),
                    command_pairs=dict(c.split(":") for c in settings.allowed_commands if ":" in c),
                    command_timeout=settings.command_timeout)
    http_session = session or _sink_session()
    default_job = None
    if settings.job:
        try:
            default_job = parse_job(parse_json(settings.job, what="BLUEPRINT_JOB"), what="BLUEPRINT_JOB")
        except BadRequest as err:
            raise ConfigError(f"BLUEPRINT_JOB: {err.message}") from None
    if settings.http_auth == "none":
        logs.log("WARNING", "HTTP authentication is OFF (BLUEPRINT_HTTP_AUTH=none): anyone who can reach the "
                            "HTTP trigger can image instances")
    sinks = build_sinks(SinkContext(settings=settings, clients=clients, session=http_session, clock=clock))
    maker, restorers = _maker(service, clients, settings, policy, clock)
    return App(settings=settings, clients=clients, lighthouse=service, maker=maker, sinks=sinks, clock=clock,
               default_job=default_job, env=env, restorers=restorers)


def _restore_auth(settings: Settings, clock: Clock) -> Authenticator:
    """Restores over HTTP take their own credentials: BLUEPRINT_RESTORE_TOKEN as a bearer token, or (with
    BLUEPRINT_HTTP_AUTH=hmac) as the signing secret; never the credentials that make images, not even with
    BLUEPRINT_HTTP_AUTH=none."""
    secrets = [t.get_secret_value() for t in settings.restore_tokens]
    mode = "hmac" if settings.http_auth == "hmac" and secrets else "token"
    from blueprint.http import Authenticator  # noqa: PLC0415 (only HTTP pays for it)

    return Authenticator(mode, tokens=secrets, secrets=secrets, now=clock.time, variable="BLUEPRINT_RESTORE_TOKEN")


def _maker(service: Lighthouse, clients: ClientCache, settings: Settings, policy: Policy,
           clock: Clock) -> tuple[ImageMaker, Callable[[], Restorer | None]]:
    """The use case, with what happens after an image is NORMAL (shares, then copies), and restores, when the
    cloud port can (a fake port in tests makes images only); each is built the first time a job uses it."""
    if not isinstance(service, LighthouseService):
        return ImageMaker(service, policy=policy, clock=clock), lambda: None
    from blueprint.protect import DiskSteps  # noqa: PLC0415 (a small module; every run with disks uses it)

    recovery = Recovery(service, clients, settings.region, policy)
    maker = ImageMaker(service, policy=policy, clock=clock, phases=recovery.phases(), release=recovery.release,
                       quiesce=_quiescer(service, clients, recovery, settings),
                       disks=DiskSteps(service, service, RetryPolicy(), default=settings.data_disks,
                                       tagger=lambda: recovery.tagger))
    return maker, lambda: recovery.restorer(maker)


def _quiescer(service: LighthouseService, clients: ClientCache, recovery: Recovery,
              settings: Settings) -> Quiesce | None:
    """The commands around images (TAT), when the operator configured any: otherwise TAT is never imported."""
    if not (settings.pre_command or settings.post_command or settings.allowed_commands):
        return None
    from blueprint.consistency import MAX_BATCH, Quiescer  # noqa: PLC0415
    from blueprint.tat import TatService  # noqa: PLC0415

    return Quiescer(service, TatService(clients), recovery.tagger, RetryPolicy(),
                    batch=min(settings.concurrency, MAX_BATCH),
                    configured_post=_command("BLUEPRINT_POST_COMMAND", settings.post_command))


def _sink_session() -> requests.Session:
    """The session the webhook sinks send on: a kept-alive connection for each of the PARALLEL_SENDS events a
    delivery sends at once (requests keeps 10 per host, and would open, and TLS-handshake, one for every send
    beyond them)."""
    from blueprint.sinks import PARALLEL_SENDS  # noqa: PLC0415

    return keep_connections(requests.Session(), PARALLEL_SENDS)


def _command(variable: str, value: Secret | None) -> Command | None:
    return Command.configured(variable, value.get_secret_value()) if value is not None else None


def answer_config_error(err: ConfigError, event: Any, context: Any) -> dict[str, Any]:
    """A bad configuration: HTTP callers get the fixed 500 (never a raise); other triggers raise it.

    Raises:
        ConfigError: for every trigger but HTTP, so the failure shows in the platform's monitoring.
    """
    logs.log("ERROR", "configuration error: the function cannot start", error=err.message)
    if isinstance(event, Mapping) and "httpMethod" in event:
        from blueprint.http import generic_error  # noqa: PLC0415 (only HTTP pays for it)

        request_id = context.get("request_id") if isinstance(context, Mapping) else None
        return generic_error(str(request_id or uuid.uuid4()))
    raise err


def _fingerprint(env: Mapping[str, str]) -> str:
    """What the App is built from: the BLUEPRINT_* variables and the region (read on every invocation)."""
    data = getattr(env, "_data", None)
    if env is os.environ and isinstance(data, dict):
        # os.environ's own dict of bytes: filtered without decoding every variable.
        return repr(sorted(_configuration(data)))
    return repr(sorted((k, v) for k, v in env.items() if k.startswith("BLUEPRINT_") or k == "TENCENTCLOUD_REGION"))


_cache: dict[str, Any] = {}
_cache_lock = threading.Lock()


def get_app(env: Mapping[str, str] | None = None) -> App:
    """The warm container's App, rebuilt only when the function's configuration changes.

    Raises:
        ConfigError: a variable has a bad value.
    """
    env = os.environ if env is None else env
    app = _cache.get("app")
    if app is not None and _environ_unchanged(env):
        return app  # type: ignore[no-any-return]
    fingerprint = _fingerprint(env)
    with _cache_lock:
        app = _cache.get("app")
        if app is None or _cache.get("fingerprint") != fingerprint:
            app = build_app(env)
            _cache["app"], _cache["fingerprint"] = app, fingerprint
        _cache["environ"] = _environ_seen(env)
    result: App = app
    return result


def _environ_seen(env: Mapping[str, str]) -> tuple[frozenset[bytes], tuple[tuple[bytes, bytes], ...]] | None:
    """What `_environ_unchanged` compares: os.environ's names, and its BLUEPRINT_* and region values."""
    data = getattr(env, "_data", None)
    if env is not os.environ or not isinstance(data, dict):
        return None
    return frozenset(data), _configuration(data)


def _configuration(data: dict[bytes, bytes]) -> tuple[tuple[bytes, bytes], ...]:
    """The BLUEPRINT_* variables and the region in os.environ's own dict of bytes (`_fingerprint`'s input)."""
    return tuple((k, v) for k, v in data.items() if k.startswith(b"BLUEPRINT_") or k == b"TENCENTCLOUD_REGION")


def _environ_unchanged(env: Mapping[str, str]) -> bool:
    """True when os.environ is as the App last saw it: the same names, and each BLUEPRINT_* and region value the
    very same object (setting a variable again, even to the same text, makes a new one: the fingerprint is then
    compared). A warm invocation's check, without sorting and printing every variable (issue 18)."""
    seen = _cache.get("environ")
    if seen is None or env is not os.environ:
        return False
    data = getattr(env, "_data", None)
    names, values = seen
    return isinstance(data, dict) and data.keys() == names and all(data.get(k) is v for k, v in values)

