"""SCF 2018-04-16 Invoke: calls are recorded; registered Python callables run sync or in a pool."""

from __future__ import annotations

import copy
import json
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from emulator.errors import ApiError
from emulator.schema import Schema
from emulator.service import Ctx
from emulator.state import World

Handler = Callable[[dict[str, Any], dict[str, Any]], Any]

MAX_EVENT_CONTEXT = 128 * 1024  # ClientContext limit for async (Event) invocations
MAX_SYNC_CONTEXT = 6 * 1024 * 1024  # and for synchronous ones
EVENT_RETRIES = 2  # SCF retries a failed async invocation twice
MEMORY_MB = 128
INVOCATION_TYPES = ("RequestResponse", "Event")

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
}


class Scf:
    """Known functions, optional Python handlers, and every invocation."""

    name = "scf"
    version = "2018-04-16"
    regional = True
    schemas = SCHEMAS

    def __init__(
        self, world: World, *, time_limit_ms: int = 900_000, workers: int = 8, retry_events: bool = True
    ) -> None:
        self._world = world
        self.time_limit_ms = time_limit_ms
        self.retry_events = retry_events
        self._functions: dict[tuple[str, str], Handler | None] = {}
        self._invocations: list[dict[str, Any]] = []
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scf-event")
        self._pending = 0
        self._idle = threading.Condition()

    def reset(self, state: dict[str, Any]) -> None:
        """Forget functions and invocations; load the functions in `state` (names or objects)."""
        with self._world.lock:
            self._functions.clear()
            self._invocations.clear()
            for item in state.get("functions") or []:
                if isinstance(item, str):
                    self.add_function(item)
                else:
                    self.add_function(item["FunctionName"], namespace=item.get("Namespace", "default"))

    def shutdown(self) -> None:
        """Stop the async worker pool (waits for running invocations)."""
        self._pool.shutdown(wait=True)

    # ---- Python API ------------------------------------------------------------------------------

    def add_function(self, name: str, *, namespace: str = "default") -> None:
        """Make a function known; calls are recorded and answered with an empty result."""
        with self._world.lock:
            self._functions.setdefault((namespace, name), None)

    def register(self, name: str, fn: Handler, *, namespace: str = "default") -> None:
        """Run `fn(event, context)` on each invocation of `name`."""
        with self._world.lock:
            self._functions[(namespace, name)] = fn

    @property
    def invocations(self) -> list[dict[str, Any]]:
        """Copies of every invocation record, oldest first."""
        with self._world.lock:
            return copy.deepcopy(self._invocations)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every Event invocation (with its retries) finished; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    # ---- the action ----------------------------------------------------------------------------------

    def call(self, action: str, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        """Invoke a function; the handler runs outside the state lock (it may call the emulator)."""
        with self._world.lock:
            fn, record, event = self._accept(params, ctx)
        context = self._context(record, ctx)
        if record["InvocationType"] == "Event":
            self._submit(fn, event, context, record)
            return {"Result": {"FunctionRequestId": record["FunctionRequestId"]}}
        return {"Result": self._run_sync(fn, event, context, record)}

    def _accept(self, params: dict[str, Any], ctx: Ctx) -> tuple[Handler | None, dict[str, Any], dict[str, Any]]:
        kind = params.get("InvocationType", "RequestResponse")
        if kind not in INVOCATION_TYPES:
            raise ApiError("InvalidParameterValue", f"`InvocationType` must be one of {', '.join(INVOCATION_TYPES)}.")
        namespace = params.get("Namespace", "default")
        key = (namespace, params["FunctionName"])
        if key not in self._functions:
            raise ApiError("ResourceNotFound.Function", f"The function `{params['FunctionName']}` does not exist.")
        raw = params.get("ClientContext")
        event = _parse_context(raw, kind)
        record = {
            "FunctionName": params["FunctionName"],
            "Namespace": namespace,
            "Qualifier": params.get("Qualifier", "$LATEST"),
            "InvocationType": kind,
            "ClientContext": raw,
            "FunctionRequestId": str(uuid.uuid4()),
            "Region": ctx.region,
            "Time": self._world.clock.now(),
            "Error": None,
            "Attempts": 0,
        }
        self._invocations.append(record)
        return self._functions[key], record, event

    def _context(self, record: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        return {
            "request_id": record["FunctionRequestId"],
            "function_name": record["FunctionName"],
            "namespace": record["Namespace"],
            "function_version": record["Qualifier"],
            "time_limit_in_ms": self.time_limit_ms,
            "memory_limit_in_mb": MEMORY_MB,
            "tencentcloud_region": ctx.region,
        }

    def _attempt(
        self, fn: Handler | None, event: dict[str, Any], context: dict[str, Any], record: dict[str, Any]
    ) -> tuple[Any, str]:
        """Run the handler once; returns (return value, error text or "")."""
        with self._world.lock:
            record["Attempts"] += 1
        if fn is None:
            return None, ""
        try:
            return fn(copy.deepcopy(event), dict(context)), ""
        except Exception as err:  # the function's failure is data for the caller, not ours
            text = "".join(traceback.format_exception_only(type(err), err)).strip()
            with self._world.lock:
                record["Error"] = text
            return None, text

    def _run_sync(
        self, fn: Handler | None, event: dict[str, Any], context: dict[str, Any], record: dict[str, Any]
    ) -> dict[str, Any]:
        started = time.perf_counter()
        value, error = self._attempt(fn, event, context, record)
        duration = round((time.perf_counter() - started) * 1000, 3)
        ret = "" if error else (value if isinstance(value, str) else json.dumps(value))
        return {
            "RetMsg": ret,
            "ErrMsg": error,
            "Log": "",
            "MemUsage": 0,
            "Duration": duration,
            "BillDuration": max(1, int(duration + 0.999)),
            "FunctionRequestId": record["FunctionRequestId"],
            "InvokeResult": 0,
        }

    def _submit(
        self, fn: Handler | None, event: dict[str, Any], context: dict[str, Any], record: dict[str, Any]
    ) -> None:
        with self._idle:
            self._pending += 1
        self._pool.submit(self._run_event, fn, event, context, record)

    def _run_event(
        self, fn: Handler | None, event: dict[str, Any], context: dict[str, Any], record: dict[str, Any]
    ) -> None:
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
