"""Sending chained calls: fan-out children, hand-on of what an inline run had no time for, Wait follow-ups.

A call carries a batch: up to `MAX_BATCH` instances of one region, which the child runs like an inline run
(one slot lookup for the batch, creates side by side, one listing after). Batches go out side by side, within
SCF's Invoke limit (100 calls per second per account: https://cloud.tencent.com/document/api/583/17243) and
no faster than the account can take the children's first calls (each child's first call is one
DescribeBlueprints, 10 per second per account). Each call gets an equal part of the sender's share of the
account's API rates (`Share` in the envelope; blueprint/retry.py, `Pacer`), so the children together stay
within the documented limits however many run at once.

Every instance handed to another invocation is accounted for: either its batch's call was accepted by SCF
(each instance listed in the report's `Dispatched` with its child's request id) or the instance gets a
`.failed` result that says why, with an error a retry can fix, so the run that sent it raises and the
platform retries.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
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
from blueprint.retry import Deadline, RateLimiter

__all__ = ["MAX_BATCH", "Chain", "Dispatcher", "Forecast", "batches", "forecast"]

# Instances per call: one DescribeInstances or StartInstances call, one page of a listing, and the most
# instances a job may name (InstanceIds); a batch of 100 is about 15 KB, far below SCF's 128 KB async limit.
MAX_BATCH = chained.MAX_TARGETS
# Calls in flight at once while sending (each waits about one API round trip).
SEND_WORKERS = 16


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


def batches(targets: Sequence[ChainTarget], size: int = MAX_BATCH) -> list[list[ChainTarget]]:
    """The targets per region, cut into batches of at most `size`, as even as possible (so the children of a
    region take about as long), in the order the targets came."""
    by_region: dict[str, list[ChainTarget]] = {}
    for target in targets:
        by_region.setdefault(target.Region, []).append(target)
    out: list[list[ChainTarget]] = []
    for group in by_region.values():
        per = math.ceil(len(group) / math.ceil(len(group) / size))
        out += [group[i:i + per] for i in range(0, len(group), per)]
    return out


@dataclass(frozen=True)
class Forecast:
    """How a fan-out will go: its children, each one's share, how long the slowest takes, in how many waves."""

    children: int
    share: float
    seconds: float
    waves: int


def forecast(sizes: Sequence[int], *, share: float, create_rate: float, budget: float) -> Forecast:
    """How long children of these batch sizes take at an equal part of `share` of `create_rate`, against each
    child's time `budget`: a child whose batch does not fit makes what it can and hands the rest on (a wave)."""
    part = share / max(1, len(sizes))
    seconds = max(sizes, default=0) / (create_rate * part)
    return Forecast(children=len(sizes), share=part, seconds=round(seconds, 1),
                    waves=max(1, math.ceil(seconds / budget)) if budget > 0 else 1)


@dataclass
class Dispatcher:
    """Sends chained calls of this function through SCF Invoke (async), one batch per call."""

    functions: Functions
    # Children started per second: each child's first call is a DescribeBlueprints (10/s per account).
    start_rate: float = 10.0

    def send(self, me: FunctionRef | None, chain: Chain, targets: Sequence[ChainTarget], *, kind: chained.Kind,
             report: RunReport, deadline: Deadline, share: float = 1.0,
             size: int = MAX_BATCH) -> list[tuple[ChainTarget, BlueprintError]]:
        """Send one call per batch, side by side, each with an equal part of `share`; record each instance of an
        accepted call in `report.dispatched`, and return each target whose call could not be sent, with why
        (the caller reports it)."""
        groups = batches(targets, size)
        part = share / max(1, len(groups))
        starts = RateLimiter(self.start_rate, name="child starts")
        context = contextvars.copy_context()

        def one(group: list[ChainTarget]) -> str | BlueprintError:
            try:
                if me is None:
                    raise CloudUnavailable("it could not be handed to another invocation: the function does not "
                                           "know its own name (context function_name); retry later",
                                           code="FailedOperation.Dispatch")
                starts.acquire(deadline)
                payload = chained.build(kind=kind, options=chain.options(), targets=group, trigger=chain.trigger,
                                        slot_key=chain.slot_key, correlation_id=chain.correlation_id,
                                        deadline=chain.deadline, share=part)
                return self.functions.invoke_async(me, payload, deadline=deadline)
            except BlueprintError as err:
                return err

        if len(groups) <= 1:
            outcomes = [one(group) for group in groups]
        else:
            with ThreadPoolExecutor(max_workers=min(SEND_WORKERS, len(groups))) as pool:
                outcomes = list(pool.map(lambda group: context.copy().run(one, group), groups))
        return self._account(groups, outcomes, kind=kind, report=report, share=part)

    @staticmethod
    def _account(groups: list[list[ChainTarget]], outcomes: list[str | BlueprintError], *, kind: chained.Kind,
                 report: RunReport, share: float) -> list[tuple[ChainTarget, BlueprintError]]:
        """Record what was sent; return what was not, with why."""
        failures: list[tuple[ChainTarget, BlueprintError]] = []
        for group, outcome in zip(groups, outcomes, strict=True):
            if isinstance(outcome, BlueprintError):
                failures += [(target, outcome) for target in group]
                continue
            report.dispatched += [{"InstanceId": t.InstanceId, "Region": t.Region, "FunctionRequestId": outcome,
                                   "Kind": kind} for t in group]
        sent = sum(1 for outcome in outcomes if not isinstance(outcome, BlueprintError))
        log("INFO", "chained calls sent", kind=kind, calls=sent, instances=sum(len(g) for g in groups) - len(failures),
            failed=len(failures), share=round(share, 6))
        return failures
