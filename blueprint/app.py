"""The application: built once per warm container, it turns each trigger into a job, runs it, delivers.

`App.handle(event, context)` is what `handler.main_handler` calls. Trigger rules (CONTRACT §2): HTTP never
raises (status + envelope); timer and chained calls raise only when a retry can help; queue batches raise
when any record failed, so the platform retries the batch (or dead-letters it) and nothing is lost.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import requests

from blueprint import logs
from blueprint.cloud import ClientCache, read_credentials
from blueprint.errors import BadRequest, BlueprintError, ConfigError, DeliveryError, RecordsFailed, SlotExpired
from blueprint.events import (
    ApiGatewayEvent,
    ChainedCall,
    FunctionUrlEvent,
    HttpRequest,
    InstanceRef,
    InvokeEvent,
    Job,
    QueueEvent,
    TimerEvent,
    TriggerInfo,
    parse_chained,
    parse_event,
    parse_job,
    parse_json,
)
from blueprint.functions import FunctionRef, Functions
from blueprint.http import Authenticator, HttpApi, error_response, generic_error
from blueprint.images import ImageMaker, Policy, Target, render_name
from blueprint.lighthouse import Lighthouse, LighthouseService
from blueprint.results import Result, RunReport, Source, cloud_event, summary_event
from blueprint.retry import Clock, Deadline, SystemClock
from blueprint.settings import Settings, load_settings
from blueprint.sinks import Delivery, Sink, SinkContext, build_sinks, deliver

__all__ = ["App", "Invocation", "answer_config_error", "build_app", "get_app"]

# What fan-out children and continuations carry: the job for one instance, minus the run-level fields.
_CHILD_DROP = {"InstanceIds", "Selector", "MaxInstances", "Dispatch", "IdempotencyKey"}


@dataclass(frozen=True)
class Spec:
    """One job for one slot: what to do, who asked, and the key that makes it happen once."""

    job: Job
    trigger: TriggerInfo
    key: str
    # Chained calls carry a deadline: past it, the instance is reported, not imaged.
    not_after: datetime | None = None
    # Instances a follow-up must start again once their ForcePowerOff image is done.
    was_running: frozenset[str] = frozenset()


@dataclass
class Invocation:
    """One call of the handler: its ids, clock and deadlines."""

    request_id: str
    context: Mapping[str, Any]
    work: Deadline
    delivery: Deadline
    correlation_id: str
    source: Source
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

    def self_function(self) -> FunctionRef | None:
        """This function, for fan-out and continuations (known from the context, or SCF's variables)."""
        name = self.context.get("function_name") or os.environ.get("SCF_FUNCTIONNAME")
        if not name:
            return None
        return FunctionRef(name=str(name), namespace=str(self.context.get("namespace") or "default"),
                           qualifier=str(self.context.get("function_version") or "$LATEST"),
                           region=self.source.region)


@dataclass
class App:
    """Everything built once per warm container."""

    settings: Settings
    clients: ClientCache
    lighthouse: Lighthouse
    maker: ImageMaker
    sinks: list[Sink]
    functions: Functions
    auth: Authenticator
    clock: Clock = field(default_factory=SystemClock)
    default_job: Job | None = None
    env: Mapping[str, str] = field(default_factory=lambda: os.environ, repr=False)

    # ---- entry ----------------------------------------------------------------------------------------

    def handle(self, event: Any, context: Any) -> Any:
        """Handle one invocation of any trigger.

        Raises:
            BlueprintError: for async triggers, when a retry can help (or a queue record failed).
        """
        inv = self._invocation(context if isinstance(context, Mapping) else {}, event)
        token = logs.bind(request_id=inv.request_id, correlation_id=inv.correlation_id)
        started = time.monotonic()
        outcome = "raised"
        try:
            answer = self._dispatch(event, inv)
            outcome = _outcome(answer)
            return answer
        except BlueprintError as err:
            outcome = f"raised {err.code}"
            raise
        except Exception as err:
            # A bug must not leak its text to a sync invoker; the traceback goes to the log only.
            logs.log_exception("unexpected error", err)
            raise BlueprintError(f"internal error; quote the RequestId {inv.request_id}") from None
        finally:
            logs.log("INFO", "invocation finished", duration=round(time.monotonic() - started, 3), outcome=outcome,
                     **inv.summary)
            logs.unbind(token)

    def _invocation(self, context: Mapping[str, Any], event: Any) -> Invocation:
        limit = _seconds(context.get("time_limit_in_ms")) or self.settings.default_time_limit
        work = Deadline.after(self.clock, max(limit - self.settings.time_margin, limit * 0.5))
        request_id = str(context.get("request_id") or uuid.uuid4())
        correlation = event.get("CorrelationId") if isinstance(event, Mapping) else None
        source = Source(region=str(context.get("tencentcloud_region") or self.settings.region),
                        namespace=str(context.get("namespace") or "default"),
                        function=str(context.get("function_name") or "lighthouse-blueprint"))
        return Invocation(request_id=request_id, context=context, work=work,
                          delivery=Deadline.after(self.clock, max(limit - 0.5, 0.5)),
                          correlation_id=str(correlation) if isinstance(correlation, str) else request_id,
                          source=source)

    def _dispatch(self, event: Any, inv: Invocation) -> Any:
        is_http = isinstance(event, Mapping) and "httpMethod" in event
        try:
            self.clients.use(read_credentials(self.env))
            trigger = parse_event(event)
        except BlueprintError as err:
            if not isinstance(err, ConfigError):
                return error_response(err, inv.request_id) if is_http else self._refuse(err, inv)
            logs.log("ERROR", "configuration error", error=err.message)
            if is_http:
                # The deployment's problem, not the caller's, and the caller is not authenticated yet.
                return generic_error(inv.request_id)
            raise
        if isinstance(trigger, ApiGatewayEvent | FunctionUrlEvent):
            return self._http(trigger, inv)
        try:
            return self._async_trigger(trigger, inv)
        except BadRequest as err:
            return self._refuse(err, inv)

    def _async_trigger(self, trigger: TimerEvent | QueueEvent | InvokeEvent, inv: Invocation) -> dict[str, Any]:
        if isinstance(trigger, TimerEvent):
            return self._timer(trigger, inv)
        if isinstance(trigger, QueueEvent):
            return self._queue(trigger, inv)
        return self._invoke(trigger, inv)

    def _refuse(self, err: BlueprintError, inv: Invocation) -> dict[str, Any]:
        """A bad event or job on an async trigger: a retry cannot help, so say so and do not raise."""
        logs.log("ERROR", "event refused", error=err.message, code=err.code)
        return {"Error": err.as_dict(), "RequestId": inv.request_id}

    # ---- triggers -------------------------------------------------------------------------------------

    def _timer(self, event: TimerEvent, inv: Invocation) -> dict[str, Any]:
        if event.Message.strip():
            job = parse_job(parse_json(event.Message, what="timer Message"), what="timer Message job")
        elif self.default_job is not None:
            job = self.default_job
        else:
            raise BadRequest("the timer has no job: give it an argument (Message) or set BLUEPRINT_JOB")
        trigger = TriggerInfo(Type="timer", Name=event.TriggerName, Time=event.Time)
        key = job.IdempotencyKey or f"timer:{event.TriggerName}:{event.Time:%Y-%m-%dT%H:%M:%SZ}"
        return self._async_run(Spec(job, trigger, key), inv)

    def _invoke(self, event: InvokeEvent, inv: Invocation) -> dict[str, Any]:
        payload = event.payload
        if "Job" in payload and "SlotKey" in payload:
            call = parse_chained(payload)
            job = parse_job(call.Job)
            running = frozenset({job.InstanceId} if call.WasRunning and job.InstanceId else set())
            return self._async_run(Spec(job, call.Trigger, call.SlotKey, call.Deadline, running), inv)
        job = parse_job(payload)
        trigger = TriggerInfo(Type="invoke", Name=None, Time=_now())
        return self._async_run(Spec(job, trigger, job.IdempotencyKey or f"invoke:{inv.request_id}"), inv)

    def _queue(self, event: QueueEvent, inv: Invocation) -> dict[str, Any]:
        answers: list[Any] = []
        failed: list[BlueprintError] = []
        for record in event.Records:
            try:
                job = parse_job(parse_json(record.body, what="record body"), what="record job")
                trigger = TriggerInfo(Type="queue", Name=None, Time=record.time or _now())
                key = job.IdempotencyKey or f"queue:{record.message_id or inv.request_id}"
                answers.append(self._async_run(Spec(job, trigger, key), inv))
            except BlueprintError as err:
                logs.log("ERROR", "queue record failed", error=err.message, code=err.code, message_id=record.message_id)
                answers.append({"Error": err.as_dict()})
                failed.append(err)
        if failed:
            # Raise so the platform retries the batch (idempotency skips what was done) or dead-letters it.
            raise RecordsFailed(f"{len(failed)} of {len(event.Records)} record(s) failed; first: {failed[0].message}")
        return {"Records": answers, "RequestId": inv.request_id}

    def _async_run(self, spec: Spec, inv: Invocation) -> dict[str, Any]:
        report, delivery = self.execute(spec, inv, allow_continuation=True)
        answer = {"Results": [r.data() for r in report.main_results()], "RequestId": inv.request_id,
                  "Dispatched": len(report.dispatched)}
        if not delivery.ok:
            raise DeliveryError("results were not delivered to: " + ", ".join(sorted(delivery.failed)) + " ("
                                + "; ".join(why for _, why in sorted(delivery.failed.items())) + ")")
        if report.retry_would_help():
            failed = [r for r in report.results if r.retryable]
            err = failed[0].error
            assert err is not None  # noqa: S101 (retryable implies an error)
            raise type(err)(f"{len(failed)} instance(s) failed in a way a retry can fix; first: {err.message}",
                            code=err.code)
        return answer

    # ---- HTTP -----------------------------------------------------------------------------------------

    def _http(self, req: HttpRequest, inv: Invocation) -> dict[str, Any]:
        api = HttpApi(self.auth, _HttpJobs(self, req, inv))
        try:
            return api.handle(req, inv.request_id)
        except Exception as err:
            logs.log_exception("unexpected error on the HTTP path", err)
            return generic_error(inv.request_id)

    # ---- the run --------------------------------------------------------------------------------------

    def execute(self, spec: Spec, inv: Invocation, *, allow_continuation: bool) -> tuple[RunReport, Delivery]:
        """Plan, run (or fan out), deliver every result.

        Raises:
            BlueprintError: planning failed as a whole (bad selection, cloud unreachable).
        """
        job, trigger, key = spec.job, spec.trigger, spec.key
        multi = job.InstanceId is None
        targets, refused = self.maker.plan(job, self.settings.region, inv.work, slot_key=key)
        if spec.not_after is not None and _now() > spec.not_after:
            late = SlotExpired(f"this call started after its deadline {spec.not_after:%Y-%m-%dT%H:%M:%SZ}; "
                               "no image was made (a later run of the schedule covers the instance)")
            refused, targets = [*refused, *((t, late) for t in targets)], []
        me = inv.self_function()
        fan_out = job.Dispatch == "invoke" or len(targets) > self.settings.dispatch_threshold
        if fan_out and not job.DryRun:
            if me is None:
                raise BadRequest("fan-out needs the function's own name (context function_name)",
                                 code="UnsupportedOperation.Dispatch")
            # Refused instances are reported here and never dispatched: children re-check, but need not.
            report, _ = self.maker.run(job, [], trigger=trigger, slot_key=key, deadline=inv.work, multi=multi,
                                       refused=refused)
            report.matched += len(targets)
            self._fan_out(report, spec, targets, inv, me)
        else:
            report, overflow = self.maker.run(job, targets, trigger=trigger, slot_key=key, deadline=inv.work,
                                              multi=multi, refused=refused, was_running=spec.was_running)
            if overflow and me is not None and allow_continuation:
                self._hand_on(report, spec, overflow, inv, me)
            if job.Wait and allow_continuation and me is not None and trigger.Type != "http":
                self._continue_waiting(report, spec, inv, me)
        delivery = self._deliver(report, inv)
        inv.count(report, delivery)
        return report, delivery

    def _deliver(self, report: RunReport, inv: Invocation) -> Delivery:
        events = [cloud_event(r, inv.source, correlation_id=inv.correlation_id) for r in report.results]
        if report.multi:
            events.append(summary_event(report, inv.source, correlation_id=inv.correlation_id))
        for result in report.results:
            logs.log("INFO" if result.outcome != "failed" else "ERROR", f"image {result.outcome}",
                     instance=result.instance_id, region=result.region, image_id=result.blueprint_id,
                     state=result.state, outcome=result.outcome, duration=result.duration,
                     error=result.error.as_dict() if result.error else None)
        return deliver(self.sinks, events, inv.delivery)

    def _child(self, spec: Spec, target: Target, inv: Invocation) -> str:
        """The chained call that images one instance of this slot in its own invocation."""
        name = render_name(spec.job.BlueprintName, target.ref.InstanceId, target.name, spec.trigger.Time)
        data = spec.job.model_dump(exclude=_CHILD_DROP, exclude_none=True)
        data |= {"InstanceId": target.ref.InstanceId, "Region": target.ref.Region, "Dispatch": "inline",
                 "BlueprintName": name}
        call = ChainedCall(Job=data, Trigger=spec.trigger, SlotKey=spec.key, CorrelationId=inv.correlation_id,
                           Deadline=spec.not_after or _now() + timedelta(seconds=self.settings.child_ttl),
                           WasRunning=target.ref.InstanceId in spec.was_running)
        return orjson.dumps(call.model_dump(mode="json")).decode()

    def _fan_out(self, report: RunReport, spec: Spec, targets: list[Target], inv: Invocation,
                 me: FunctionRef, *, report_failures: bool = True) -> None:
        """One async invocation of this function per instance; an instance whose call failed is reported."""
        sent = 0
        for target in targets:
            try:
                child_id = self.functions.invoke_async(me, self._child(spec, target, inv), deadline=inv.work)
            except BlueprintError as err:
                if not report_failures:
                    logs.log("ERROR", "could not schedule a follow-up", instance=target.ref.InstanceId,
                             error=err.message)
                    continue
                report.results.append(Result(outcome="failed", instance_id=target.ref.InstanceId,
                                             region=target.ref.Region, trigger=spec.trigger, slot_key=spec.key,
                                             force_power_off=self.maker.force_power_off(spec.job), error=err))
                continue
            sent += 1
            report.dispatched.append({"InstanceId": target.ref.InstanceId, "Region": target.ref.Region,
                                      "FunctionRequestId": child_id})
        logs.log("INFO", "fanned out", count=sent, failed=len(targets) - sent)

    def _hand_on(self, report: RunReport, spec: Spec, overflow: list[Target], inv: Invocation,
                 me: FunctionRef) -> None:
        """Instances the time did not allow go to child invocations instead of failing."""
        handed = {(t.ref.Region, t.ref.InstanceId) for t in overflow}
        report.results = [r for r in report.results if (r.region, r.instance_id) not in handed]
        self._fan_out(report, spec, overflow, inv, me)

    def _continue_waiting(self, report: RunReport, spec: Spec, inv: Invocation, me: FunctionRef) -> None:
        """Images still in progress when time ran out: a chained call of this function follows them."""
        pending = [r for r in report.results if r.outcome in ("created", "skipped") and r.reason
                   and r.reason.startswith("still in progress")]
        targets = [Target(InstanceRef(Region=r.region, InstanceId=r.instance_id)) for r in pending]
        if targets:
            follow = replace(spec, was_running=frozenset(report.was_running) | spec.was_running)
            self._fan_out(report, follow, targets, inv, me, report_failures=False)


@dataclass
class _HttpJobs:
    """The application as the HTTP API sees it, for one request."""

    app: App
    req: HttpRequest
    inv: Invocation

    def submit(self, job_data: object, idempotency_key: str | None) -> tuple[int, Any, dict[str, str]]:
        """Run the job; 202 with the result(s), or the failure's own status for a single instance."""
        job = parse_job(job_data)
        key = job.IdempotencyKey or idempotency_key or f"http:{self.inv.request_id}"
        trigger = TriggerInfo(Type="http", Name=self.req.path[:100], Time=_now())
        report, delivery = self.app.execute(Spec(job, trigger, key), self.inv, allow_continuation=False)
        headers = {} if delivery.ok else {"X-Blueprint-Delivery": "failed: " + ", ".join(sorted(delivery.failed))}
        main = report.main_results()
        extra = {} if delivery.ok else {"DeliveryFailed": sorted(delivery.failed)}
        if report.dispatched:
            # Instances refused before the fan-out (allowlists) or whose child could not be sent are listed too.
            body = {"Dispatched": report.dispatched, "Matched": report.matched,
                    "Results": [r.data() for r in main], **extra}
            return 202, body, headers
        if not report.multi and len(main) == 1:
            result = main[0]
            if result.outcome == "failed" and result.error is not None:
                body = {"Error": result.error.as_dict(), "RequestId": self.inv.request_id, **extra}
                return result.error.status, body, headers
            return 202, {**result.data(), **extra}, headers
        return 202, [r.data() | extra for r in main], headers

    def image(self, blueprint_id: str, region: str | None) -> dict[str, Any] | None:
        """DescribeBlueprints for one id."""
        try:
            found = self.app.lighthouse.find_images(region or self.app.settings.region, ids=[blueprint_id],
                                                    deadline=self.inv.work)
        except BlueprintError as err:
            if err.status == 404 or err.code.startswith("InvalidParameter"):
                return None
            raise
        return found[0].as_dict() if found else None


def _outcome(answer: object) -> str:
    """`ok`, or what went wrong, for the summary line."""
    if isinstance(answer, Mapping):
        status = answer.get("statusCode")
        if isinstance(status, int):
            return f"http {status}"
        error = answer.get("Error")
        if isinstance(error, Mapping):
            return f"refused {error.get('Code')}"
    return "ok"


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
    clients = ClientCache(settings.api_endpoint)
    service = lighthouse or LighthouseService(clients, create_rate=settings.create_rate,
                                              describe_rate=settings.describe_rate)
    policy = Policy(force_power_off=settings.force_power_off, keep=settings.keep,
                    max_instances=settings.max_instances, concurrency=settings.concurrency,
                    allowed_instances=frozenset(settings.allowed_instances), allowed_tags=settings.allowed_tags,
                    restart_instances=settings.restart_instance)
    http_session = session or requests.Session()
    default_job = None
    if settings.job:
        try:
            default_job = parse_job(parse_json(settings.job, what="BLUEPRINT_JOB"), what="BLUEPRINT_JOB")
        except BadRequest as err:
            raise ConfigError(f"BLUEPRINT_JOB: {err.message}") from None
    auth = Authenticator(settings.http_auth, tokens=[t.get_secret_value() for t in settings.http_tokens],
                         secrets=[s.get_secret_value() for s in settings.http_secrets], now=clock.time)
    if settings.http_auth == "none":
        logs.log("WARNING", "HTTP authentication is OFF (BLUEPRINT_HTTP_AUTH=none): anyone who can reach the "
                            "HTTP trigger can image instances")
    sinks = build_sinks(SinkContext(settings=settings, clients=clients, session=http_session, clock=clock))
    maker = ImageMaker(service, policy=policy, clock=clock)
    return App(settings=settings, clients=clients, lighthouse=service, maker=maker, sinks=sinks,
               functions=Functions(clients, clock=clock), auth=auth, clock=clock, default_job=default_job, env=env)


def answer_config_error(err: ConfigError, event: Any, context: Any) -> dict[str, Any]:
    """A bad configuration: HTTP callers get the fixed 500 (never a raise); other triggers raise it.

    Raises:
        ConfigError: for every trigger but HTTP, so the failure shows in the platform's monitoring.
    """
    logs.log("ERROR", "configuration error: the function cannot start", error=err.message)
    if isinstance(event, Mapping) and "httpMethod" in event:
        request_id = context.get("request_id") if isinstance(context, Mapping) else None
        return generic_error(str(request_id or uuid.uuid4()))
    raise err


_cache: dict[str, Any] = {}
_cache_lock = threading.Lock()


def get_app(env: Mapping[str, str] | None = None) -> App:
    """The warm container's App, rebuilt only when the function's configuration changes.

    Raises:
        ConfigError: a variable has a bad value.
    """
    env = os.environ if env is None else env
    fingerprint = repr(sorted((k, v) for k, v in env.items()
                              if k.startswith("BLUEPRINT_") or k == "TENCENTCLOUD_REGION"))
    with _cache_lock:
        app = _cache.get("app")
        if app is None or _cache.get("fingerprint") != fingerprint:
            app = build_app(env)
            _cache["app"], _cache["fingerprint"] = app, fingerprint
    result: App = app
    return result

