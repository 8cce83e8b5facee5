"""Cold start and memory: a fresh `python -c` process per run, from spawn to the first answered invocation.

The function handles `events/timer.json` (parse, DescribeBlueprints slot lookup, CreateBlueprint, the
post-create listing, a webhook to the local receiver); the naive handler makes its one CreateBlueprint.
Runs alternate (function first on even runs, naive first on odd ones) and the emulator is reset before
each, so both see the same cloud. The child reports its peak RSS (`ru_maxrss`) after the invocation.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from bench.common import EVENT_FILE, ROOT, Config, Section, Stats, child_env, local_cloud, ms, ratio, verdict

MARK = "BENCH-RESULT "
# The same child for both handlers; only the import line differs.
CHILD = """
import time
t0 = time.perf_counter()
import json, resource, sys
{import_line}
t1 = time.perf_counter()
with open({event!r}) as f:
    event = json.load(f)
context = {{"request_id": "bench-cold", "function_name": "lighthouse-blueprint", "namespace": "default",
           "function_version": "$LATEST", "time_limit_in_ms": 60000, "memory_limit_in_mb": 128,
           "tencentcloud_region": "ap-guangzhou"}}
answer = handler.main_handler(event, context)
t2 = time.perf_counter()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print({mark!r} + json.dumps({{"imports": t1 - t0, "invoke": t2 - t1, "maxrss_kb": rss, "answer": answer}}),
      flush=True)
"""
HANDLERS = {
    "function": "import handler",
    "naive": "from bench import naive_handler as handler",
}
SCF_64MB = 64 * 1024  # KiB


def child_code(name: str) -> str:
    """The `python -c` program for one handler."""
    return CHILD.format(import_line=HANDLERS[name], event=str(EVENT_FILE), mark=MARK)


def run_child(name: str, env: dict[str, str]) -> dict[str, Any]:
    """Spawn one process; the wall time runs from spawn to the line that reports the answer.

    Raises:
        RuntimeError: the child failed or printed no result.
    """
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", child_code(name)], cwd=ROOT, env=child_env(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    result: dict[str, Any] | None = None
    for line in proc.stdout:
        if line.startswith(MARK):
            result = {"wall": time.perf_counter() - started, **json.loads(line[len(MARK):])}
            break
    _out, err = proc.communicate(timeout=60)
    if result is None or proc.returncode != 0:
        raise RuntimeError(f"{name} child failed (exit {proc.returncode}): {err[-2000:]}")
    return result


def _check(name: str, result: dict[str, Any], emu: Any, receiver: Any) -> None:
    answer = result["answer"]
    created = [c for c in emu.calls_of("CreateBlueprint") if c.error is None]
    if len(created) != 1:
        raise RuntimeError(f"{name}: expected one CreateBlueprint, the emulator saw {len(created)}: {answer}")
    if name == "function":
        if not answer.get("Results") or answer["Results"][0].get("BlueprintId") is None:
            raise RuntimeError(f"function answered without an image: {answer}")
        if len(receiver.accepted()) != 1:
            raise RuntimeError(f"function delivered {len(receiver.accepted())} webhooks, expected 1")
    elif not answer.get("BlueprintId"):
        raise RuntimeError(f"naive handler answered without an image: {answer}")


def measure(config: Config) -> dict[str, list[dict[str, Any]]]:
    """Alternating cold runs of both handlers (plus one unmeasured warm-up each for the OS file cache)."""
    samples: dict[str, list[dict[str, Any]]] = {"function": [], "naive": []}
    with local_cloud() as (emu, receiver, env):
        for run in range(-1, config.cold_runs):
            order = ("function", "naive") if run % 2 == 0 else ("naive", "function")
            for name in order:
                emu.reset()
                receiver.received.clear()
                result = run_child(name, env)
                _check(name, result, emu, receiver)
                if run >= 0:
                    samples[name].append(result)
    return samples


def run(config: Config) -> list[Section]:
    """The cold start and memory sections."""
    samples = measure(config)
    stats = {name: {key: Stats.of([s[key] for s in runs]) for key in ("wall", "imports", "invoke", "maxrss_kb")}
             for name, runs in samples.items()}
    fn, nv = stats["function"], stats["naive"]
    cold = Section("cold", "Cold start (spawn to first answered invocation)",
                   ["Measure (ms)", "Function median", "Function min-max", "Naive median", "Naive min-max",
                    "Ratio of medians"])
    for key, label in (("wall", "Whole process, spawn to answer"), ("imports", "Imports (in the child)"),
                       ("invoke", "First invocation (in the child)")):
        cold.rows.append([label, ms(fn[key].median), f"{ms(fn[key].low)}-{ms(fn[key].high)}", ms(nv[key].median),
                          f"{ms(nv[key].low)}-{ms(nv[key].high)}", ratio(fn[key].median, nv[key].median)])
    wall_ratio = fn["wall"].median / nv["wall"].median
    cold.notes += [
        f"{config.cold_runs} runs per handler, alternating, emulator latency 0, bytecode (.pyc) present, "
        "PYTHONDONTWRITEBYTECODE set as on SCF; one unmeasured warm-up run each first.",
        "The function's first invocation also builds its App (settings, clients, sinks) and makes 3 cloud calls "
        "(DescribeBlueprints slot lookup, CreateBlueprint, DescribeBlueprints listing) plus one webhook POST; "
        "the naive handler makes 1 call and delivers nothing.",
    ]
    cold.summary.append(["Cold start, median ratio", f"{ms(fn['wall'].median)} ms",
                         f"{ms(nv['wall'].median)} ms", f"{wall_ratio:.2f}x", "≤ 1.10x",
                         verdict(wall_ratio <= 1.10)])
    mem = Section("memory", "Peak memory (ru_maxrss of the child after one invocation)",
                  ["Handler", "Median (MiB)", "Min-max (MiB)"])
    for name in ("function", "naive"):
        s = stats[name]["maxrss_kb"]
        mem.rows.append([name, f"{s.median / 1024:.1f}", f"{s.low / 1024:.1f}-{s.high / 1024:.1f}"])
    mem_ratio = fn["maxrss_kb"].median / nv["maxrss_kb"].median
    mem.notes.append("SCF bills memory in tiers; the smallest is 64 MB. ru_maxrss is the whole interpreter's peak "
                     "resident set, including Python itself.")
    mem.summary += [
        ["Peak RSS, ratio", f"{fn['maxrss_kb'].median / 1024:.1f} MiB", f"{nv['maxrss_kb'].median / 1024:.1f} MiB",
         f"{mem_ratio:.2f}x", "≤ 1.25x", verdict(mem_ratio <= 1.25)],
        ["Peak RSS, fits SCF 64 MB", f"{fn['maxrss_kb'].high / 1024:.1f} MiB (max)", "64 MB",
         f"{fn['maxrss_kb'].high / SCF_64MB:.2f}x", "≤ 1.00x", verdict(fn["maxrss_kb"].high <= SCF_64MB)],
    ]
    return [cold, mem]
