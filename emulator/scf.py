"""SCF 2018-04-16: functions (create, read, update, list, delete), triggers, and Invoke.

A function is either deployed through the API (its zip runs in a fresh interpreter of its runtime, see
`emulator.runner`), registered from Python (`register(name, callable)`: the callable runs in-process), or only
known by name (`add_function`: calls are recorded and answered with an empty result). Deployments go through
the documented states on the emulated clock: `Creating` / `Updating` for `function_seconds`, then `Active`
(or `CreateFailed` / `UpdateFailed` when a failure was queued with `fail_next_deploy`). Invocations run what
the function was when it was last `Active`, as SCF keeps serving the previous code during an update.
Timer triggers fire from the control path (`fire_timer`); Function URLs answer under `/_fn/<url-id>`.
"""

from __future__ import annotations

import copy
import json
import random
import string
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from emulator import functions as fns
from emulator import furl
from emulator.clock import iso
from emulator.errors import ApiError
from emulator.functions import Function, Trigger
from emulator.runner import FunctionFailed, PackageRunner
from emulator.schema import Schema, define_list, define_object
from emulator.server import HttpRequest, Reply
from emulator.service import Ctx
from emulator.state import DEFAULT_REGION, World

Handler = Callable[[dict[str, Any], dict[str, Any]], Any]

MAX_EVENT_CONTEXT = 128 * 1024  # ClientContext limit for async (Event) invocations
MAX_SYNC_CONTEXT = 6 * 1024 * 1024  # and for synchronous ones
EVENT_RETRIES = 2  # SCF retries a failed async invocation twice
MEMORY_MB = 128
INVOCATION_TYPES = ("RequestResponse", "Event")
LOG_TAIL = 4 * 1024  # LogType=Tail returns the last 4 KB
# Statuses in which a function has nothing runnable yet (or any more).
NOT_RUNNABLE = ("Creating", "CreateFailed", "Deleting")
APP_ID, UIN = "1250000000", "100000000001"  # the emulated account

_CODE = define_object("scf.Code", {
    "ZipFile": ("str", False), "CosBucketName": ("str", False), "CosObjectName": ("str", False),
    "CosBucketRegion": ("str", False), "DemoId": ("str", False), "TempCosObjectName": ("str", False),
})
_VARIABLES = define_list("scf.Variable[]", {"Key": ("str", True), "Value": ("str", True)})
_ENVIRONMENT = define_object("scf.Environment", {"Variables": (_VARIABLES, False)})

SCHEMAS: dict[str, Schema] = {
    "Invoke": {
        "FunctionName": ("str", True),
        "InvocationType": ("str", False),
        "Qualifier": ("str", False),
        "ClientContext": ("str", False),
        "Namespace": ("str", False),
        "LogType": ("str", False),
        "RoutingKey": ("str", False),
    },
    "CreateFunction": {
        "FunctionName": ("str", True), "Code": (_CODE, True), "Handler": ("str", False),
        "Description": ("str", False), "MemorySize": ("int", False), "Timeout": ("int", False),
        "Environment": (_ENVIRONMENT, False), "Runtime": ("str", False), "Namespace": ("str", False),
        "Role": ("str", False), "Type": ("str", False), "CodeSource": ("str", False), "InitTimeout": ("int", False),
    },
    "GetFunction": {
        "FunctionName": ("str", True), "Qualifier": ("str", False), "Namespace": ("str", False),
        "ShowCode": ("str", False),
    },
    "UpdateFunctionCode": {
        "FunctionName": ("str", True), "Handler": ("str", False), "ZipFile": ("str", False),
        "Namespace": ("str", False), "Code": (_CODE, False), "CodeSource": ("str", False), "Publish": ("str", False),
    },
    "UpdateFunctionConfiguration": {
        "FunctionName": ("str", True), "Description": ("str", False), "MemorySize": ("int", False),
        "Timeout": ("int", False), "Runtime": ("str", False), "Environment": (_ENVIRONMENT, False),
        "Namespace": ("str", False), "Role": ("str", False), "InitTimeout": ("int", False), "Publish": ("str", False),
    },
    "ListFunctions": {
        "Order": ("str", False), "Orderby": ("str", False), "Offset": ("int", False), "Limit": ("int", False),
        "SearchKey": ("str", False), "Namespace": ("str", False), "Description": ("str", False),
        "Filters": ("filter[]", False),
    },
    "DeleteFunction": {"FunctionName": ("str", True), "Namespace": ("str", False), "Qualifier": ("str", False)},
    "ListTriggers": {
        "FunctionName": ("str", True), "Namespace": ("str", False), "Offset": ("int", False),
        "Limit": ("int", False), "OrderBy": ("str", False), "Order": ("str", False), "Filters": ("filter[]", False),
    },
    "CreateTrigger": {
        "FunctionName": ("str", True), "TriggerName": ("str", True), "Type": ("str", True),
        "TriggerDesc": ("str", False), "Namespace": ("str", False), "Qualifier": ("str", False),
        "Enable": ("str", False), "CustomArgument": ("str", False), "Description": ("str", False),
    },
    "UpdateTrigger": {
        "FunctionName": ("str", True), "TriggerName": ("str", True), "Type": ("str", True),
        "Enable": ("str", False), "Qualifier": ("str", False), "Namespace": ("str", False),
        "TriggerDesc": ("str", False), "Description": ("str", False), "CustomArgument": ("str", False),
    },
    "DeleteTrigger": {
        "FunctionName": ("str", True), "TriggerName": ("str", True), "Type": ("str", True),
        "Namespace": ("str", False), "TriggerDesc": ("str", False), "Qualifier": ("str", False),
    },
}


class Scf:
    """Functions, their triggers and every invocation."""

    name = "scf"
    version = "2018-04-16"
    regional = True
    schemas = SCHEMAS

    def __init__(
        self,
        world: World,
        *,
        time_limit_ms: int = 900_000,
        workers: int = 8,
        retry_events: bool = True,
        function_seconds: float = 1.0,
        runtimes: Mapping[str, str] | None = None,
        base_url: Callable[[], str] = lambda: "http://127.0.0.1",
        credentials: tuple[str, str] = ("", ""),
    ) -> None:
        self._world = world
        self.time_limit_ms = time_limit_ms
        self.retry_events = retry_events
        self.function_seconds = function_seconds
        self._base_url = base_url
        self._credentials = credentials
        self._packages = PackageRunner(runtimes)
        self._functions: dict[tuple[str, str], Function] = {}
        self._namespaces: set[str] = {"default"}
        self._failures: list[tuple[str | None, str]] = []
        self._invocations: list[dict[str, Any]] = []
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scf-event")
        self._pending = 0
        self._idle = threading.Condition()
        self._handlers: dict[str, Callable[[dict[str, Any], Ctx], dict[str, Any]]] = {
            "CreateFunction": self._create_function,
            "GetFunction": self._get_function,
            "UpdateFunctionCode": self._update_code,
            "UpdateFunctionConfiguration": self._update_configuration,
            "ListFunctions": self._list_functions,
            "DeleteFunction": self._delete_function,
            "ListTriggers": self._list_triggers,
            "CreateTrigger": self._create_trigger,
            "UpdateTrigger": self._update_trigger,
            "DeleteTrigger": self._delete_trigger,
        }

    def reset(self, state: dict[str, Any]) -> None:
        """Forget functions, failures and invocations; load the functions and namespaces in `state`."""
        with self._world.lock:
            self._functions.clear()
            self._failures.clear()
            self._invocations.clear()
            self._namespaces = {"default", *(state.get("namespaces") or [])}
            for item in state.get("functions") or []:
                if isinstance(item, str):
                    self.add_function(item)
                else:
                    self.add_function(item["FunctionName"], namespace=item.get("Namespace", "default"))

    def shutdown(self) -> None:
        """Stop the async worker pool (waits for running invocations) and delete unzipped code."""
        self._pool.shutdown(wait=True)
        self._packages.close()

    # ---- Python API ------------------------------------------------------------------------------

    def add_function(self, name: str, *, namespace: str = "default") -> None:
        """Make a function known (any region); calls are recorded and answered with an empty result."""
        with self._world.lock:
            self._namespaces.add(namespace)
            if (namespace, name) not in self._functions:
                now = self._world.clock.now()
                self._functions[(namespace, name)] = Function(
                    name, namespace, None, {"Runtime": "Python3.10", "Handler": "index.main_handler"}, None,
                    function_id=_function_id(), add_time=now, mod_time=now)

    def register(self, name: str, fn: Handler, *, namespace: str = "default") -> None:
        """Run `fn(event, context)` in-process on each invocation of `name` (before any deployed code)."""
        with self._world.lock:
            self.add_function(name, namespace=namespace)
            self._functions[(namespace, name)].handler = fn

    @property
    def invocations(self) -> list[dict[str, Any]]:
        """Copies of every invocation record, oldest first."""
        with self._world.lock:
            return copy.deepcopy(self._invocations)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every Event invocation (with its retries) finished; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    def functions(self) -> list[dict[str, Any]]:
        """Every function as GetFunction shows it, plus "Region" (None for registered ones)."""
        with self._world.lock:
            self._settle_all()
            base = self._base_url()
            return [{**fns.function_shape(f, base), "Region": f.region} for f in self._functions.values()]

    def function(self, name: str, namespace: str = "default") -> dict[str, Any]:
        """One function as GetFunction shows it, plus "Region".

        Raises:
            KeyError: for an unknown function.
        """
        with self._world.lock:
            self._settle_all()
            fn = self._functions[(namespace, name)]
            return {**fns.function_shape(fn, self._base_url()), "Region": fn.region}

    def fail_next_deploy(self, function: str | None = None, times: int = 1,
                         message: str = "The function failed to deploy (emulated fault).") -> None:
        """Make the next `times` creates or updates (of `function`, or of any) end CreateFailed / UpdateFailed."""
        with self._world.lock:
            self._failures.extend([(function, message)] * times)

    def fire_timer(self, function: str, trigger: str, *, namespace: str = "default") -> str:
        """Fire a timer trigger now: an async invocation with the timer event; returns its FunctionRequestId.

        Raises:
            KeyError: no such function or timer trigger.
            ApiError: the trigger is closed, or the function cannot run here (see `emulator.runner`).
        """
        with self._world.lock:
            self._settle_all()
            fn = self._functions[(namespace, function)]
            found = fn.triggers.get(trigger)
            if found is None or found.type != "timer":
                raise KeyError(f"no timer trigger {trigger!r} on {namespace}/{function}")
            if not found.enable:
                raise ApiError("FailedOperation.UpdateTriggerStatus",
                               f"The timer `{trigger}` is CLOSE: it never fires.")
            event = {"Type": "Timer", "TriggerName": trigger, "Time": iso(self._world.clock.now()),
                     "Message": found.custom_argument}
        record = self._start(fn, event, kind="Event", qualifier=found.qualifier, region=fn.region or DEFAULT_REGION,
                             raw=json.dumps(event), source="TRIGGER_TIMER")
        return str(record["FunctionRequestId"])

    # ---- the actions ----------------------------------------------------------------------------------

    def call(self, action: str, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        """Run an action; Invoke runs the function outside the state lock (it may call the emulator)."""
        if action == "Invoke":
            return self._invoke(params, ctx)
        with self._world.lock:
            self._settle_all()
            return self._handlers[action](params, ctx)

    def _find(self, params: Mapping[str, Any], region: str) -> Function:
        fn = self._functions.get((params.get("Namespace", "default"), params["FunctionName"]))
        if fn is None or fn.region not in (None, region):
            raise ApiError("ResourceNotFound.Function", f"The function `{params['FunctionName']}` does not exist.")
        return fn

    def _create_function(self, p: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        fns.check_function_name(p["FunctionName"])
        namespace = p.get("Namespace", "default")
        if namespace not in self._namespaces:
            raise ApiError("ResourceNotFound.Namespace", f"The namespace `{namespace}` does not exist.")
        if (namespace, p["FunctionName"]) in self._functions:
            raise ApiError("ResourceInUse.Function", f"The function `{p['FunctionName']}` already exists.")
        if sum(1 for f in self._functions.values() if f.namespace == namespace) >= fns.MAX_FUNCTIONS_PER_NAMESPACE:
            raise ApiError("LimitExceeded.Function", f"A namespace holds at most {fns.MAX_FUNCTIONS_PER_NAMESPACE}.")
        if p.get("Type", "Event") != "Event":
            raise ApiError("UnsupportedOperation", "Only event functions are emulated (Type=Event).")
        config = _configure({"Runtime": "Python2.7", "Handler": "index.main_handler", "MemorySize": 128,
                             "Timeout": 3, "InitTimeout": 65, "Description": "", "Role": "", "Environment": {}},
                            p, creating=True)
        code = _code_of(p.get("CodeSource"), p["Code"], None)
        now = self._world.clock.now()
        fn = Function(p["FunctionName"], namespace, ctx.region, config, code, status="Creating",
                      function_id=_function_id(), add_time=now, mod_time=now)
        self._begin(fn, "Creating")
        self._functions[(namespace, fn.name)] = fn
        return {}

    def _get_function(self, p: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        fn = self._find(p, ctx.region)
        if p.get("Qualifier", "$LATEST") not in fns.QUALIFIERS:
            raise ApiError("ResourceNotFound.Version", f"The version `{p['Qualifier']}` does not exist.")
        return fns.function_shape(fn, self._base_url())

    def _update_code(self, p: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        fn = self._find(p, ctx.region)
        _check_updatable(fn, "FailedOperation.FunctionStatusError")
        code = _code_of(p.get("CodeSource"), p.get("Code"), p.get("ZipFile"))
        if p.get("Handler") is not None:
            fns.check_handler(p["Handler"])
        fn.previous = (copy.deepcopy(fn.config), fn.code)
        fn.code = code
        if p.get("Handler") is not None:
            fn.config["Handler"] = p["Handler"]
        self._begin(fn, "Updating")
        return {}

    def _update_configuration(self, p: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        fn = self._find(p, ctx.region)
        _check_updatable(fn, "FailedOperation.UpdateFunctionConfiguration")
        config = _configure(copy.deepcopy(fn.config), p, creating=False)
        fn.previous = (copy.deepcopy(fn.config), fn.code)
        fn.config = config
        self._begin(fn, "Updating")
        return {}

    def _list_functions(self, p: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        namespace = p.get("Namespace", "default")
        found = [f for f in self._functions.values() if f.namespace == namespace and f.region in (None, ctx.region)]
        if p.get("SearchKey"):
            found = [f for f in found if p["SearchKey"] in f.name]
        if p.get("Description"):
            found = [f for f in found if p["Description"] in f.config.get("Description", "")]
        found = _filter_functions(found, p.get("Filters") or [])
        found = _order_functions(found, p.get("Orderby"), p.get("Order"))
        offset, limit = _page_of(p)
        return {"Functions": [fns.list_shape(f) for f in found[offset:offset + limit]], "TotalCount": len(found)}

    def _delete_function(self, p: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        fn = self._find(p, ctx.region)
        if fn.status in ("Creating", "Updating", "Deleting"):
            raise ApiError("FailedOperation.FunctionStatusError", f"The function is `{fn.status}`: try again later.")
        self._begin(fn, "Deleting")
        return {}

    # ---- triggers ---------------------------------------------------------------------------------

    def _list_triggers(self, p: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        try:
            fn = self._find(p, ctx.region)
        except ApiError:  # ListTriggers documents no not-found error: an unknown function has no triggers
            return {"Triggers": [], "TotalCount": 0}
        found = list(fn.triggers.values())
        for flt in p.get("Filters") or []:
            getter = {"Qualifier": lambda t: t.qualifier, "TriggerName": lambda t: t.name,
                      "Description": lambda t: t.description}.get(flt["Name"])
            if getter is None:
                raise ApiError("InvalidParameterValue.Filters", f"Unknown filter `{flt['Name']}`.")
            found = [t for t in found if getter(t) in flt["Values"]]
        orders: dict[str, Callable[[Trigger], float]] = {"add_time": lambda t: t.add_time,
                                                         "mod_time": lambda t: t.mod_time}
        order_key = orders.get(p.get("OrderBy", "mod_time"))
        if order_key is None or p.get("Order", "DESC") not in ("ASC", "DESC"):
            raise ApiError("InvalidParameterValue.OrderBy", "OrderBy is add_time or mod_time; Order ASC or DESC.")
        found.sort(key=order_key, reverse=p.get("Order", "DESC") == "DESC")
        offset, limit = _page_of(p)
        base = self._base_url()
        return {"Triggers": [fns.trigger_shape(t, base, listing=True) for t in found[offset:offset + limit]],
                "TotalCount": len(found)}

    def _create_trigger(self, p: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        fn = self._find(p, ctx.region)
        _check_updatable(fn, "FailedOperation.CreateTrigger")
        kind, name, qualifier = _trigger_type(p["Type"]), p["TriggerName"], p.get("Qualifier", "$LATEST")
        if not fns.TRIGGER_NAME.match(name):
            raise ApiError("InvalidParameterValue.TriggerName", f"The trigger name `{name}` is not allowed.")
        if qualifier not in fns.QUALIFIERS:
            raise ApiError("ResourceNotFound.Qualifier", f"The qualifier `{qualifier}` does not exist.")
        if name in fn.triggers:
            raise ApiError("ResourceInUse.TriggerName", f"The trigger `{name}` already exists.")
        if sum(1 for t in fn.triggers.values() if t.type == kind) >= fns.MAX_TRIGGERS_PER_TYPE:
            raise ApiError("LimitExceeded.Trigger",
                           f"A function has at most {fns.MAX_TRIGGERS_PER_TYPE} {kind} triggers.")
        desc = _trigger_desc(kind, p.get("TriggerDesc"), p.get("CustomArgument"))
        if kind == "http" and any(t.type == "http" and t.qualifier == qualifier for t in fn.triggers.values()):
            raise ApiError("ResourceInUse.Trigger", f"`{qualifier}` already has a Function URL (one per qualifier).")
        now = self._world.clock.now()
        url_id = _url_id(self._functions.values()) if kind == "http" else ""
        trigger = Trigger(name, kind, qualifier, desc, _enable(p.get("Enable", "OPEN")),
                          p.get("CustomArgument") or "", p.get("Description") or "", now, now, url_id)
        fn.triggers[name] = trigger
        return {"TriggerInfo": fns.trigger_shape(trigger, self._base_url())}

    def _trigger_of(self, fn: Function, p: dict[str, Any]) -> Trigger:
        trigger = fn.triggers.get(p["TriggerName"])
        if trigger is None or trigger.type != p["Type"] or trigger.qualifier != p.get("Qualifier", "$LATEST"):
            raise ApiError("ResourceNotFound.Trigger", f"The trigger `{p['TriggerName']}` ({p['Type']}, "
                           f"{p.get('Qualifier', '$LATEST')}) does not exist.")
        return trigger

    def _update_trigger(self, p: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        fn = self._find(p, ctx.region)
        _check_updatable(fn, "FailedOperation.UpdateTrigger")
        if p["Type"] not in ("timer", "http", "ckafka"):
            raise ApiError("InvalidParameterValue.Type", "UpdateTrigger supports timer, ckafka and http triggers.")
        trigger = self._trigger_of(fn, p)
        if p.get("TriggerDesc") is not None or p.get("CustomArgument") is not None:
            trigger.desc = _trigger_desc(trigger.type, p.get("TriggerDesc") or trigger.desc, p.get("CustomArgument"))
        if p.get("CustomArgument") is not None:
            trigger.custom_argument = p["CustomArgument"]
        if p.get("Enable") is not None:
            trigger.enable = _enable(p["Enable"])
        if p.get("Description") is not None:
            trigger.description = p["Description"]
        trigger.mod_time = self._world.clock.now()
        return {}

    def _delete_trigger(self, p: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        fn = self._find(p, ctx.region)
        _check_updatable(fn, "FailedOperation.DeleteTrigger")
        trigger = self._trigger_of(fn, p)
        del fn.triggers[trigger.name]
        return {}

    # ---- state machine ----------------------------------------------------------------------------

    def _begin(self, fn: Function, status: str) -> None:
        """Start a transition that completes `function_seconds` later (emulated clock)."""
        now = self._world.clock.now()
        fn.status, fn.reasons, fn.mod_time, fn.due = status, [], now, now + self.function_seconds
        fn.fail_with = self._take_failure(fn.name) if status in ("Creating", "Updating") else None

    def _take_failure(self, name: str) -> str | None:
        for index, (target, message) in enumerate(self._failures):
            if target in (None, name):
                del self._failures[index]
                return message
        return None

    def _settle_all(self) -> None:
        now = self._world.clock.now()
        for key, fn in list(self._functions.items()):
            if fn.due is None or now < fn.due:
                continue
            fn.due = None
            if fn.status == "Deleting":
                del self._functions[key]
            elif fn.fail_with is not None:
                _fail(fn)
            else:
                fn.status, fn.reasons, fn.previous = "Active", [], None
                fn.live_config, fn.live_code = copy.deepcopy(fn.config), fn.code

    # ---- invocations ----------------------------------------------------------------------------

    def _invoke(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        kind = params.get("InvocationType", "RequestResponse")
        if kind not in INVOCATION_TYPES:
            raise ApiError("InvalidParameterValue", f"`InvocationType` must be one of {', '.join(INVOCATION_TYPES)}.")
        with self._world.lock:
            self._settle_all()
            fn = self._find(params, ctx.region)
        event = _parse_context(params.get("ClientContext"), kind)
        record = self._start(fn, event, kind=kind, qualifier=params.get("Qualifier", "$LATEST"), region=ctx.region,
                             raw=params.get("ClientContext"), source="API", tail=params.get("LogType") == "Tail")
        if kind == "Event":
            return {"Result": {"FunctionRequestId": record["FunctionRequestId"]}}
        return {"Result": record.pop("_result")}

    def _start(self, fn: Function, event: Any, *, kind: str, qualifier: str, region: str, raw: str | None,
               source: str, tail: bool = False) -> dict[str, Any]:
        """Record an invocation and run it (in the pool for Event); a sync record carries `_result`.

        Raises:
            ApiError: the function has nothing to run yet, or its runtime cannot run here.
        """
        with self._world.lock:
            self._settle_all()
            runner, context_base = self._runner(fn, region, event, source)
            record = {"FunctionName": fn.name, "Namespace": fn.namespace, "Qualifier": qualifier,
                      "InvocationType": kind, "ClientContext": raw, "FunctionRequestId": str(uuid.uuid4()),
                      "Region": region, "Time": self._world.clock.now(), "Error": None, "Attempts": 0,
                      "RequestSource": source, "Log": ""}
            self._invocations.append(record)
        context = {**context_base, "request_id": record["FunctionRequestId"], "function_version": qualifier}
        if kind == "Event":
            self._submit(runner, event, context, record)
            return record
        result = self._run_sync(runner, event, context, record, tail)
        return {**record, "_result": result}

    def _runner(self, fn: Function, region: str, event: Any, source: str) -> tuple[Handler | None, dict[str, Any]]:
        """What runs this invocation (None: record only) and the SCF context it gets."""
        base = {"function_name": fn.name, "namespace": fn.namespace, "tencentcloud_region": region,
                "tencentcloud_appid": APP_ID, "tencentcloud_uin": UIN}
        if fn.handler is not None or (fn.live_code is None and fn.status not in NOT_RUNNABLE):
            return fn.handler, {**base, "time_limit_in_ms": self.time_limit_ms, "memory_limit_in_mb": MEMORY_MB}
        if fn.live_code is None:
            raise ApiError("FailedOperation.FunctionStatusError", f"The function is `{fn.status}`: nothing to run.")
        config, code = copy.deepcopy(fn.live_config), fn.live_code
        self._packages.interpreter(config["Runtime"])
        env = self._environment(fn, config, region, source)
        context = {**base, "time_limit_in_ms": config["Timeout"] * 1000, "memory_limit_in_mb": config["MemorySize"],
                   "environment": json.dumps({"SCF_NAMESPACE": fn.namespace}),
                   "environ": f"SCF_NAMESPACE={fn.namespace}"}

        def run(event: dict[str, Any], context: dict[str, Any]) -> Any:
            try:
                result = self._packages.run(runtime=config["Runtime"], handler=config["Handler"], code=code,
                                            env=env, event=event, context=context, timeout=config["Timeout"])
            except FunctionFailed as err:
                context["_log"] = err.log
                raise
            context["_log"] = result.log
            return result.value

        return run, context

    def _environment(self, fn: Function, config: Mapping[str, Any], region: str, source: str) -> dict[str, str]:
        """The process environment SCF gives the function (plus the emulator's endpoint for its API calls)."""
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "x", "TENCENTCLOUD_RUNENV": "SCF", "SCF_FUNCTIONNAME": fn.name,
               "SCF_NAMESPACE": fn.namespace, "SCF_FUNCTIONVERSION": "$LATEST", "TENCENTCLOUD_REGION": region,
               "TENCENTCLOUD_APPID": APP_ID, "TENCENTCLOUD_UIN": UIN, **config["Environment"]}
        if config.get("Role"):  # SCF injects the run role's temporary keys only when a role is set
            secret_id, secret_key = self._credentials
            env.update(TENCENTCLOUD_SECRETID=secret_id, TENCENTCLOUD_SECRETKEY=secret_key,
                       TENCENTCLOUD_SESSIONTOKEN="emulator-session-token")
        if source == "TRIGGER_TIMER":
            env["TRIGGER_SRC"] = "timer"
        env["BLUEPRINT_API_ENDPOINT"] = self._base_url()
        return env

    def _attempt(self, fn: Handler | None, event: Any, context: dict[str, Any],
                 record: dict[str, Any]) -> tuple[Any, str]:
        """Run the handler once; returns (return value, error text or "")."""
        with self._world.lock:
            record["Attempts"] += 1
        if fn is None:
            return None, ""
        run_context = dict(context)
        try:
            value = fn(copy.deepcopy(event), run_context)
            error = ""
        except FunctionFailed as err:
            value, error = None, str(err)
        except Exception as err:  # the function's failure is data for the caller, not ours
            value, error = None, "".join(traceback.format_exception_only(type(err), err)).strip()
        with self._world.lock:
            record["Log"] = str(run_context.get("_log", record["Log"]))
            if error:
                record["Error"] = error
        return value, error

    def _run_sync(self, fn: Handler | None, event: Any, context: dict[str, Any], record: dict[str, Any],
                  tail: bool) -> dict[str, Any]:
        started = time.perf_counter()
        value, error = self._attempt(fn, event, context, record)
        duration = round((time.perf_counter() - started) * 1000, 3)
        ret = "" if error else (value if isinstance(value, str) else json.dumps(value))
        log = record["Log"].encode("utf-8")[-LOG_TAIL:].decode("utf-8", "ignore") if tail else ""
        return {"RetMsg": ret, "ErrMsg": error, "Log": log, "MemUsage": 0, "Duration": duration,
                "BillDuration": max(1, int(duration + 0.999)), "FunctionRequestId": record["FunctionRequestId"],
                "InvokeResult": 0}

    def _submit(self, fn: Handler | None, event: Any, context: dict[str, Any], record: dict[str, Any]) -> None:
        with self._idle:
            self._pending += 1
        self._pool.submit(self._run_event, fn, event, context, record)

    def _run_event(self, fn: Handler | None, event: Any, context: dict[str, Any], record: dict[str, Any]) -> None:
        try:
            tries = 1 + (EVENT_RETRIES if self.retry_events else 0)
            for _ in range(tries):
                _, error = self._attempt(fn, event, context, record)
                if not error:
                    with self._world.lock:
                        record["Error"] = None
                    return
        finally:
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    # ---- Function URLs --------------------------------------------------------------------------------

    def serve_url(self, request: HttpRequest, *, cam_signed: Callable[[], bool]) -> Reply:
        """Answer one request to a Function URL: the event goes to the function synchronously."""
        url_id, path = furl.split_path(request.path)
        with self._world.lock:
            self._settle_all()
            found = self._url_target(url_id)
        if found is None:
            return furl.json_reply(404, {"errno": 404, "error": f"domain[{url_id}] not found or empty"})
        fn, trigger = found
        if json.loads(trigger.desc)["AuthType"] == "CAM" and not cam_signed():
            return furl.json_reply(403, {"errno": 403, "error": "CAM authentication failed"})
        if len(request.body) > furl.MAX_EVENT:
            return furl.json_reply(413, {"errno": 413, "error": "request body is larger than 6 MB"})
        event = furl.build_event(request, path)
        try:
            record = self._start(fn, event, kind="RequestResponse", qualifier=trigger.qualifier,
                                 region=fn.region or DEFAULT_REGION, raw=None, source="HTTP")
        except ApiError as err:
            return furl.json_reply(502, {"errorCode": err.code, "errorMessage": err.message})
        result = record["_result"]
        if result["ErrMsg"]:
            return furl.json_reply(502, {"errorCode": -1, "errorMessage": result["ErrMsg"]})
        return furl.to_reply(json.loads(result["RetMsg"]) if _is_json(result["RetMsg"]) else result["RetMsg"])

    def _url_target(self, url_id: str) -> tuple[Function, Trigger] | None:
        intranet = url_id.endswith("-in")
        wanted = url_id.removesuffix("-in")
        for fn in self._functions.values():
            for trigger in fn.triggers.values():
                if trigger.type == "http" and trigger.url_id == wanted:
                    net = json.loads(trigger.desc)["NetConfig"]
                    return (fn, trigger) if net["EnableIntranet" if intranet else "EnableExtranet"] else None
        return None


def _is_json(text: str) -> bool:
    """True when a RetMsg is JSON text (registered callables may return plain strings)."""
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _function_id() -> str:
    return "lam-" + "".join(random.choices(string.ascii_lowercase + string.digits, k=8))


def _url_id(functions: Iterable[Function]) -> str:
    taken = {t.url_id for f in functions for t in f.triggers.values()}
    while True:
        candidate = "".join(random.choices(string.ascii_lowercase + string.digits, k=10))
        if candidate not in taken:
            return candidate


def _check_updatable(fn: Function, code: str) -> None:
    if fn.status not in fns.UPDATABLE:
        raise ApiError(code, f"The function is `{fn.status}`: it can change only when Active.")


def _fail(fn: Function) -> None:
    failed = "CreateFailed" if fn.status == "Creating" else "UpdateFailed"
    fn.reasons = [{"ErrorCode": failed, "ErrorMessage": str(fn.fail_with)}]
    if failed == "UpdateFailed" and fn.previous is not None:
        fn.config, fn.code = fn.previous  # the update did not take
    fn.status, fn.fail_with, fn.previous = failed, None, None


def _configure(config: dict[str, Any], p: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
    """The function's configuration with the parameters of a create or update applied and checked.

    Raises:
        ApiError: a documented parameter error.
    """
    if p.get("Runtime") is not None:
        fns.check_runtime(p["Runtime"])
        if not creating and p["Runtime"] != config["Runtime"]:
            raise ApiError("InvalidParameterValue.Runtime", "The runtime is set at creation and cannot change.")
        config["Runtime"] = p["Runtime"]
    if creating and p.get("Handler") is not None:
        fns.check_handler(p["Handler"])
        config["Handler"] = p["Handler"]
    checks: dict[str, Callable[[Any], None]] = {"MemorySize": fns.check_memory, "Timeout": fns.check_timeout,
                                                "Description": fns.check_description}
    for key, check in checks.items():
        if p.get(key) is not None:
            check(p[key])
            config[key] = p[key]
    for key in ("Role", "InitTimeout"):
        if p.get(key) is not None:
            config[key] = p[key]
    if p.get("Environment") is not None:
        config["Environment"] = fns.environment(p["Environment"])
    return config


def _code_of(source: str | None, code: Mapping[str, Any] | None, zip_file: str | None) -> bytes:
    """The zip bytes of a create or update (`ZipFile` of UpdateFunctionCode: 20 MB; `Code.ZipFile`: 50 MB).

    Raises:
        ApiError: MissingParameter.Code, UnsupportedOperation (COS or demo code), or a ZipFile error.
    """
    if source not in (None, "ZipFile"):
        raise ApiError("UnsupportedOperation", f"CodeSource `{source}` is not emulated: upload a ZipFile.")
    if zip_file is not None:
        return fns.decode_zip(zip_file, fns.MAX_ZIP_UPDATE)
    text = (code or {}).get("ZipFile")
    if text is None:
        if code and any(code.get(k) for k in ("CosBucketName", "CosObjectName", "DemoId", "TempCosObjectName")):
            raise ApiError("UnsupportedOperation", "Code from COS or a demo is not emulated: upload a ZipFile.")
        raise ApiError("MissingParameter.Code", "The code is missing: give Code.ZipFile (base64).")
    return fns.decode_zip(text, fns.MAX_ZIP_CREATE)


def _trigger_type(kind: str) -> str:
    if kind in fns.TRIGGER_TYPES:
        return kind
    if kind == "apigw":
        raise ApiError("UnsupportedOperation.Trigger", "New API Gateway triggers are refused since 2024-07-01.")
    if kind in fns.OTHER_TRIGGER_TYPES:
        raise ApiError("UnsupportedOperation.Trigger", f"`{kind}` triggers are not emulated.")
    raise ApiError("InvalidParameterValue.Type", f"Unknown trigger type `{kind}`.")


def _trigger_desc(kind: str, desc: str | None, custom_argument: str | None) -> str:
    if custom_argument is not None:
        if kind != "timer":
            raise ApiError("InvalidParameterValue.CustomArgument", "CustomArgument is for timer triggers only.")
        if len(custom_argument.encode("utf-8")) > fns.MAX_CUSTOM_ARGUMENT:
            raise ApiError("InvalidParameterValue.CustomArgument",
                           f"CustomArgument is longer than {fns.MAX_CUSTOM_ARGUMENT} bytes.")
    if not desc:
        raise ApiError("InvalidParameterValue.TriggerDesc", f"A {kind} trigger needs a TriggerDesc.")
    if kind == "timer":
        fns.check_cron(desc)
        return desc.strip()
    return json.dumps(fns.http_desc(desc))


def _enable(value: str) -> bool:
    if value not in ("OPEN", "CLOSE"):
        raise ApiError("InvalidParameterValue.Enable", "Enable is OPEN or CLOSE.")
    return value == "OPEN"


def _page_of(p: Mapping[str, Any]) -> tuple[int, int]:
    offset, limit = p.get("Offset", 0), p.get("Limit", 20)
    if offset < 0:
        raise ApiError("InvalidParameterValue.Offset", "Offset must not be negative.")
    if not 1 <= limit <= 1000:
        raise ApiError("InvalidParameterValue.Limit", "Limit must be 1-1000.")
    return offset, limit


_FUNCTION_FILTERS: dict[str, Callable[[Function], str]] = {
    "Status": lambda f: f.status,
    "Runtime": lambda f: str(f.config.get("Runtime")),
    "Type": lambda f: str(f.config.get("Type", "Event")),
    "FunctionType": lambda f: str(f.config.get("Type", "Event")),
}


def _filter_functions(found: list[Function], filters: list[dict[str, Any]]) -> list[Function]:
    for flt in filters:
        getter = _FUNCTION_FILTERS.get(flt["Name"])
        if getter is None:
            raise ApiError("InvalidParameterValue.Filters", f"The filter `{flt['Name']}` is not emulated.")
        found = [f for f in found if getter(f) in flt["Values"]]
    return found


def _order_functions(found: list[Function], by: str | None, order: str | None) -> list[Function]:
    keys: dict[str, Callable[[Function], Any]] = {"AddTime": lambda f: f.add_time, "ModTime": lambda f: f.mod_time,
                                                  "FunctionName": lambda f: f.name}
    if (by is not None and by not in keys) or order not in (None, "ASC", "DESC"):
        raise ApiError("InvalidParameterValue.Order", "Orderby is AddTime, ModTime or FunctionName; Order ASC|DESC.")
    return sorted(found, key=keys[by or "AddTime"], reverse=order == "DESC")


def _parse_context(raw: str | None, kind: str) -> dict[str, Any]:
    if raw is None:
        return {}
    limit = MAX_EVENT_CONTEXT if kind == "Event" else MAX_SYNC_CONTEXT
    if len(raw.encode("utf-8")) > limit:
        raise ApiError("InvalidParameterValue.ClientContext", f"`ClientContext` is larger than {limit} bytes.")
    try:
        event = json.loads(raw)
    except ValueError:
        raise ApiError("InvalidParameterValue.Param", "`ClientContext` is not valid JSON.") from None
    if not isinstance(event, dict):
        raise ApiError("InvalidParameterValue.Param", "`ClientContext` must be a JSON object.")
    return event
