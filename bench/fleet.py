"""Fleet throughput: one job over many tagged instances, paced by the documented 20/s CreateBlueprint limit.

The emulator holds only the fleet (instances tagged backup=daily in ap-guangzhou), answers every call after
`fleet_latency` seconds and enforces the documented rate limits. The function runs the selector job inline
(BLUEPRINT_DISPATCH_THRESHOLD above the fleet size) with BLUEPRINT_CONCURRENCY workers and delivers every
result to the local webhook receiver. The baseline is a hand-written sequential loop: list the tagged
instances (DescribeInstances, paged) and CreateBlueprint each in turn on one reused client.
"""

from __future__ import annotations

import json
import time
from typing import Any

from bench.common import Config, Section, context, local_cloud, quiet_logs, ratio, throttled, verdict

TAG = {"Key": "backup", "Value": "daily"}


def fleet_state(count: int) -> dict[str, Any]:
    instances = [{"InstanceId": f"lhins-fl{i:06d}", "Region": "ap-guangzhou", "InstanceName": f"fleet-{i}",
                  "InstanceState": "RUNNING", "Tags": [TAG]} for i in range(count)]
    return {"regions": ["ap-guangzhou"], "instances": instances}


def fleet_job(count: int) -> dict[str, Any]:
    return {"Selector": {"Regions": ["ap-guangzhou"], "Tags": [TAG]}, "MaxInstances": max(500, count)}


def run_function(config: Config, emu: Any, receiver: Any, env: dict[str, str]) -> dict[str, Any]:
    """The function's job, inline; returns its time and what the cloud saw."""
    from blueprint.app import build_app

    # MaxInstances may only lower the operator's ceiling: raise the ceiling itself for the fleet.
    env = {**env, "BLUEPRINT_DISPATCH_THRESHOLD": str(config.fleet_instances * 10),
           "BLUEPRINT_MAX_INSTANCES": str(max(500, config.fleet_instances)),
           "BLUEPRINT_CONCURRENCY": str(config.fleet_concurrency)}
    event = {"Type": "Timer", "TriggerName": "fleet", "Time": "2026-11-27T03:00:00Z",
             "Message": json.dumps(fleet_job(config.fleet_instances))}
    with quiet_logs():
        app = build_app(env)
        wall_start = time.time()
        started = time.perf_counter()
        answer = app.handle(event, context())
        elapsed = time.perf_counter() - started
    created = sum(1 for r in answer["Results"] if r.get("BlueprintId") and "Error" not in r)
    creates = [c.time for c in emu.calls_of("CreateBlueprint")]
    phases = (creates[0] - wall_start, creates[-1] - creates[0], wall_start + elapsed - creates[-1]) if creates \
        else (0.0, 0.0, 0.0)
    return {"seconds": elapsed, "phases": phases, "created": created, "results": len(answer["Results"]),
            "throttled": throttled(emu.calls), "calls": len(emu.calls), "webhooks": len(receiver.accepted())}


def run_naive(config: Config, emu: Any, env: dict[str, str]) -> dict[str, Any]:
    """The hand-written loop: list the tagged instances, then CreateBlueprint each, one after another."""
    from tencentcloud.lighthouse.v20200324 import models

    from bench import naive_handler

    client = naive_handler.make_client(env)
    started = time.perf_counter()
    ids: list[str] = []
    while True:
        req = models.DescribeInstancesRequest()
        f = models.Filter()
        f.Name, f.Values = f"tag:{TAG['Key']}", [TAG["Value"]]
        req.Filters, req.Offset, req.Limit = [f], len(ids), 100
        page = client.DescribeInstances(req)
        ids += [i.InstanceId for i in page.InstanceSet or []]
        if not page.InstanceSet or len(ids) >= page.TotalCount:
            break
    for instance_id in ids:
        naive_handler.create(client, instance_id, f"{instance_id}-20261127-030000")
    elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "created": len(emu.calls_of("CreateBlueprint")), "results": len(ids),
            "throttled": throttled(emu.calls), "calls": len(emu.calls)}


def per_image(run: dict[str, Any]) -> str:
    """Cloud calls per image made."""
    return f"{run['calls'] / run['created']:.2f}" if run["created"] else "n/a"


def run(config: Config) -> list[Section]:
    """The fleet section."""
    n = config.fleet_instances
    bound = n / config.create_rate
    runs = []
    with local_cloud(state=fleet_state(n), latency=config.fleet_latency, image_seconds=600.0) as (emu, receiver, env):
        for _ in range(max(1, config.fleet_runs)):
            emu.reset()
            receiver.received.clear()
            runs.append(run_function(config, emu, receiver, env))
        emu.reset()
        naive = run_naive(config, emu, env)
    runs.sort(key=lambda r: r["seconds"])
    fn = runs[len(runs) // 2]
    section = Section("fleet", f"Fleet throughput: {n} instances, {config.fleet_latency * 1000:.0f} ms per cloud "
                               "call, documented rate limits on",
                      ["Run", "Seconds", "vs the 20/s bound", "Images created", "Cloud calls", "Calls per image",
                       "RequestLimitExceeded answers"])
    section.rows += [
        [f"Function, inline, BLUEPRINT_CONCURRENCY={config.fleet_concurrency}", f"{fn['seconds']:.2f}",
         ratio(fn["seconds"], bound), f"{fn['created']} of {n}", str(fn["calls"]), per_image(fn), str(fn["throttled"])],
        ["Naive sequential loop (list, then create one by one)", f"{naive['seconds']:.2f}",
         ratio(naive["seconds"], bound), f"{naive['created']} of {n}", str(naive["calls"]), per_image(naive),
         str(naive["throttled"])],
        [f"Bound: {n} CreateBlueprint at {config.create_rate:.0f}/s", f"{bound:.2f}", "1.00x", "-", "-", "-", "-"],
    ]
    section.notes += [
        f"Function job: selector tag backup=daily in ap-guangzhou, MaxInstances {max(500, n)}, run inline "
        "(BLUEPRINT_DISPATCH_THRESHOLD above the fleet size); it also lists the instances, looks up the slot, "
        f"lists the managed images after creating and POSTs {fn['webhooks']} webhooks (one per result and a "
        "summary) to the local receiver, all inside the measured time.",
        "Function phases (from the emulator's call log): {:.2f} s before the first CreateBlueprint (instance "
        "listing beside the slot lookup and the data-disk listing), {:.2f} s from the first to the last "
        "CreateBlueprint (as logged by the emulator), "
        "{:.2f} s after it "
        "(last answer, managed-image listing, webhooks).".format(*fn["phases"]),
        "A sliding one-second window strictly needs only (n/20 - 1) s + one call's latency for n creates; "
        "the goal is stated against n/20 s.",
        f"The function's row is the median of {len(runs)} runs (each on a fresh emulator state): "
        + ", ".join(f"{r['seconds']:.2f} s ({r['throttled']} throttled)" for r in runs)
        + ". A throttled CreateBlueprint (the emulator counts arrivals, our limiter counts sends) is retried "
        "in a later window, which can add up to one window at the tail.",
    ]
    ok = fn["created"] == n
    section.summary += [
        [f"Fleet of {n}, function vs the 20/s bound", f"{fn['seconds']:.2f} s", f"{bound:.2f} s",
         ratio(fn["seconds"], bound), "≤ 1.05x", verdict(ok and fn["seconds"] <= 1.05 * bound)
         + ("" if ok else f" (only {fn['created']} of {n} created)")],
        [f"Fleet of {n}, cloud calls per image", per_image(fn), "1.00", "-", "≤ 1.05",
         verdict(ok and fn["calls"] <= 1.05 * fn["created"])],
        [f"Fleet of {n}, function vs naive sequential loop", f"{fn['seconds']:.2f} s", f"{naive['seconds']:.2f} s",
         ratio(fn["seconds"], naive["seconds"]), "(context)", "-"],
    ]
    return [section]
