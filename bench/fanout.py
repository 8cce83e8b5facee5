"""Fan-out: the fleet through child invocations, the children run concurrently as SCF would.

The emulator holds the same fleet as `fleet.py` (instances tagged backup=daily in ap-guangzhou), answers
every call after `fleet_latency` seconds and enforces the documented per-account rate limits, shared by
every caller (one sliding window per action, as the cloud counts an account). The parent is a timer
invocation of one App with BLUEPRINT_DISPATCH_THRESHOLD below the fleet size, so the function decides to
fan out by itself. The emulator's SCF `Invoke` runs the function's registered callable for each async
child in its pool of 8 threads and redelivers a child that raised (twice, as SCF does). That callable
stands for the function's warm containers: `fanout_containers` Apps, each built separately (own clients,
own client-side limiters), each running one invocation at a time, handed out to the pool threads as they
are free. Every call is recorded by the emulator with its error code; the figures come from that record.
"""

from __future__ import annotations

import json
import queue
import statistics
import time
from collections import Counter
from typing import Any

from bench.common import (
    FUNCTION_NAME,
    INSTANCE_TAG,
    Config,
    Section,
    context,
    local_cloud,
    quiet_logs,
    ratio,
    throttled,
    verdict,
)
from bench.fleet import fleet_job, fleet_state

POOL_THREADS = 8  # the emulator's SCF pool for async invocations (not a constructor option of Emulator)
IDLE_TIMEOUT = 1800.0


class Containers:
    """Warm containers of the function: separately built Apps, one invocation at a time each."""

    def __init__(self, apps: list[Any]) -> None:
        self._free: queue.Queue[Any] = queue.Queue()
        for app in apps:
            self._free.put(app)
        self.handled = 0

    def handle(self, event: dict[str, Any], ctx: dict[str, Any]) -> Any:
        """The callable SCF runs per child: the next free container handles it."""
        app = self._free.get()
        try:
            self.handled += 1
            return app.handle(event, ctx)
        finally:
            self._free.put(app)


def _env(config: Config, env: dict[str, str]) -> dict[str, str]:
    threshold = max(1, config.fanout_instances // 2)
    return {**env, "BLUEPRINT_DISPATCH_THRESHOLD": str(threshold),
            "BLUEPRINT_MAX_INSTANCES": str(max(500, config.fanout_instances))}


def run_once(config: Config, emu: Any, receiver: Any, env: dict[str, str]) -> dict[str, Any]:
    """One fan-out on a fresh emulator state; returns its time and what the cloud and SCF saw.

    Raises:
        RuntimeError: the children did not finish within IDLE_TIMEOUT.
    """
    from blueprint.app import build_app

    emu.reset()
    receiver.received.clear()
    fn_env = _env(config, env)
    parent = build_app(fn_env)
    containers = Containers([build_app(fn_env) for _ in range(config.fanout_containers)])
    emu.scf.register(FUNCTION_NAME, containers.handle)
    event = {"Type": "Timer", "TriggerName": "fleet", "Time": "2026-11-27T03:00:00Z",
             "Message": json.dumps(fleet_job(config.fanout_instances))}
    wall_start = time.time()
    started = time.perf_counter()
    try:
        answer = parent.handle(event, context())
    except Exception as err:  # the parent raises when a child could not be sent: still count what happened
        answer = {"Error": repr(err)}
    parent_done = time.perf_counter() - started
    if not emu.scf.wait_idle(timeout=IDLE_TIMEOUT):
        raise RuntimeError(f"fan-out: the children did not finish within {IDLE_TIMEOUT:.0f} s")
    elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "parent_seconds": parent_done, "handled": containers.handled,
            **_tally(emu, receiver, answer, wall_start)}


def _tally(emu: Any, receiver: Any, answer: Any, wall_start: float) -> dict[str, Any]:
    """What the emulator recorded: calls, throttling, images, SCF invocations and redeliveries."""
    calls = emu.calls
    invocations = [i for i in emu.scf.invocations if i["FunctionName"] == FUNCTION_NAME]
    managed = [t["Value"] for b in emu.lighthouse.blueprints() for t in b.get("Tags", []) if t["Key"] == INSTANCE_TAG]
    creates = sorted(c.time for c in calls if c.action == "CreateBlueprint" and c.error is None)
    return {
        "dispatched": answer.get("Dispatched") if isinstance(answer, dict) else None,
        "parent_error": answer.get("Error") if isinstance(answer, dict) else None,
        "calls": len(calls), "invokes": sum(1 for c in calls if c.action == "Invoke"),
        "throttled": throttled(calls), "images": len(managed), "instances": len(set(managed)),
        "children": len(invocations), "redeliveries": sum(max(0, i["Attempts"] - 1) for i in invocations),
        "children_failed": sum(1 for i in invocations if i["Error"]),
        "by_action": Counter(c.action for c in calls),
        "throttled_by_action": Counter(c.action for c in calls if c.error and c.error.startswith("RequestLimit")),
        "first_create": creates[0] - wall_start if creates else None,
        "last_create": creates[-1] - wall_start if creates else None,
        "webhooks": len(receiver.accepted()),
    }


def per_image(run: dict[str, Any]) -> float:
    """Cloud calls per image made, Invoke left out (inf when nothing was made)."""
    return (run["calls"] - run["invokes"]) / run["images"] if run["images"] else float("inf")


def _row(label: str, run: dict[str, Any], n: int, floor: float) -> list[str]:
    share = run["throttled"] / run["calls"] * 100 if run["calls"] else 0.0
    return [label, f"{run['seconds']:.2f}", ratio(run["seconds"], floor), f"{run['instances']} of {n}",
            f"{per_image(run):.2f}", str(run["invokes"]), f"{run['throttled']} ({share:.1f} %)",
            str(run["redeliveries"])]


def _notes(config: Config, runs: list[dict[str, Any]], mid: dict[str, Any]) -> list[str]:
    actions = ", ".join(f"{a} {k}" + (f" ({mid['throttled_by_action'][a]} throttled)"
                                      if mid["throttled_by_action"][a] else "")
                        for a, k in sorted(mid["by_action"].items()))
    when = ("first CreateBlueprint at {:.2f} s, last at {:.2f} s".format(mid["first_create"], mid["last_create"])
            if mid["first_create"] is not None else "no CreateBlueprint succeeded")
    return [
        f"Job: selector tag backup=daily in ap-guangzhou, MaxInstances {max(500, config.fanout_instances)}, no "
        f"`Dispatch`; BLUEPRINT_DISPATCH_THRESHOLD={max(1, config.fanout_instances // 2)}, so the function fans "
        f"out on its own. Children run in {config.fanout_containers} warm containers (separately built Apps) on "
        f"the emulator's SCF pool of {POOL_THREADS} threads; the time runs from the parent's start until SCF is "
        "idle (every child and redelivery done).",
        f"Median run: the parent returned after {mid['parent_seconds']:.2f} s having dispatched "
        f"{mid['dispatched']}; {when}; {mid['children']} child invocations, {mid['redeliveries']} SCF "
        f"redeliveries, {mid['children_failed']} children failed for good, {mid['images']} images for "
        f"{mid['instances']} instances, {mid['webhooks']} webhooks delivered."
        + (f" The parent raised: {mid['parent_error']}." if mid["parent_error"] else ""),
        f"Median run's cloud calls by action: {actions}.",
        "Calls per image = all cloud calls except Invoke (throttled ones included), divided by the images made; "
        "throttling = RequestLimitExceeded answers as a share of all calls (Invoke included).",
        "The emulator redelivers a child that raised at once (twice at most); SCF's async retry policy waits about "
        "a minute between attempts, so on the cloud every run with redeliveries would take a minute or more longer "
        "than here. The emulator also answers a throttled call at once, without the set latency.",
        "All runs (fresh emulator state each): " + "; ".join(
            f"{r['seconds']:.2f} s, {per_image(r):.2f} calls/image, {r['throttled']} throttled" for r in runs) + ".",
    ]


def run(config: Config) -> list[Section]:
    """The fan-out section."""
    n = config.fanout_instances
    floor = n / config.create_rate
    with local_cloud(state=fleet_state(n), latency=config.fleet_latency, image_seconds=600.0) as (emu, receiver, env), \
            quiet_logs():
        runs = [run_once(config, emu, receiver, env) for _ in range(max(1, config.fanout_runs))]
    runs.sort(key=lambda r: r["seconds"])
    mid = runs[len(runs) // 2]
    section = Section("fanout", f"Fan-out: {n} instances through child invocations, "
                                f"{config.fleet_latency * 1000:.0f} ms per cloud call, shared rate limits",
                      ["Run", "Seconds", "vs the floor", "Instances imaged", "Calls per image (no Invoke)",
                       "Invoke calls", "RequestLimitExceeded", "SCF redeliveries"])
    section.rows += [
        _row(f"Function, fan-out, {config.fanout_containers} containers (median of {len(runs)})", mid, n, floor),
        [f"Floor: {n} CreateBlueprint at {config.create_rate:.0f}/s", f"{floor:.2f}", "1.00x", "-", "1.00",
         "-", "-", "-"],
    ]
    section.notes += _notes(config, runs, mid)
    share = mid["throttled"] / mid["calls"] * 100 if mid["calls"] else 0.0
    ok = mid["instances"] == n
    section.summary += [
        [f"Fan-out of {n}, time vs the floor", f"{mid['seconds']:.2f} s", f"{floor:.2f} s",
         ratio(mid["seconds"], floor), "≤ 1.2x", verdict(ok and mid["seconds"] <= 1.2 * floor)
         + ("" if ok else f" (only {mid['instances']} of {n} imaged)")],
        [f"Fan-out of {n}, cloud calls per image (+ Invoke calls)",
         f"{per_image(mid):.2f} (+ {mid['invokes']} Invoke)", f"{mid['children']} children", "-",
         "≤ 1.1 (+ 1 per child)", verdict(per_image(mid) <= 1.1 and mid["invokes"] <= mid["children"])],
        [f"Fan-out of {n}, throttling answers", f"{share:.1f} % ({mid['throttled']} of {mid['calls']})", "-", "-",
         "< 1 %", verdict(share < 1.0)],
    ]
    section.notes.append("Spread over runs: " + (
        f"{min(r['seconds'] for r in runs):.2f} to {max(r['seconds'] for r in runs):.2f} s, median "
        f"{statistics.median(r['seconds'] for r in runs):.2f} s." if len(runs) > 1 else "one run only."))
    return [section]
