"""Sending chained calls: fan-out children, hand-on of what an inline run had no time for, Wait follow-ups.

Every instance handed to another invocation is accounted for: either its call was accepted by SCF (listed in
the report's `Dispatched`) or the instance gets a `.failed` result that says why, with an error a retry can
fix, so the run that sent it raises and the platform retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from blueprint import chained
from blueprint.chained import ChainTarget
from blueprint.errors import BlueprintError, CloudUnavailable
from blueprint.events import Job, RestoreJob, TriggerInfo
from blueprint.functions import FunctionRef, Functions
from blueprint.logs import log
from blueprint.results import RunReport
from blueprint.retry import Deadline

__all__ = ["Chain", "Dispatcher"]


@dataclass(frozen=True)
class Chain:
    """What every call of one run carries: the job, its trigger and slot, and where it came from."""

    job: Job | RestoreJob
    trigger: TriggerInfo
    slot_key: str
    correlation_id: str
    deadline: datetime

    def options(self) -> dict[str, Any]:
        """What each call carries of the job (never its targets or its key)."""
        if isinstance(self.job, RestoreJob):
            return chained.restore_options(self.job)
        return chained.job_options(self.job)


@dataclass
class Dispatcher:
    """Sends chained calls of this function through SCF Invoke (async), one instance per call."""

    functions: Functions

    def send(self, me: FunctionRef | None, chain: Chain, targets: Sequence[ChainTarget], *, kind: chained.Kind,
             report: RunReport, deadline: Deadline) -> list[tuple[ChainTarget, BlueprintError]]:
        """Send one call per target; record each accepted call in `report.dispatched`, and return each target
        whose call could not be sent, with why (the caller reports it)."""
        failures: list[tuple[ChainTarget, BlueprintError]] = []
        for target in targets:
            try:
                if me is None:
                    raise CloudUnavailable("it could not be handed to another invocation: the function does not "
                                           "know its own name (context function_name); retry later",
                                           code="FailedOperation.Dispatch")
                payload = chained.build(kind=kind, options=chain.options(), targets=[target], trigger=chain.trigger,
                                        slot_key=chain.slot_key, correlation_id=chain.correlation_id,
                                        deadline=chain.deadline)
                child_id = self.functions.invoke_async(me, payload, deadline=deadline)
            except BlueprintError as err:
                failures.append((target, err))
                continue
            report.dispatched.append({"InstanceId": target.InstanceId, "Region": target.Region,
                                      "FunctionRequestId": child_id, "Kind": kind})
        log("INFO", "chained calls sent", kind=kind, count=len(targets) - len(failures), failed=len(failures))
        return failures
