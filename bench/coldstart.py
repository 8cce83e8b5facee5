"""Cold start and memory: a fresh `python -c` process per run, from spawn to the first answered invocation.

Three variants handle `events/timer.json` against the same local cloud (the emulator, reset before every
run): (a) `naive_handler.py`, the hand-written handler (SDK, one CreateBlueprint); (b)
`naive_pydantic_handler.py`, the same plus `import pydantic, orjson` and one small model validated; (c)
the function, `handler.main_handler` (parse, DescribeBlueprints slot lookup, CreateBlueprint, the
post-create listing, a webhook to the local receiver). The function's own cold cost is (c) - (b).

Each round runs all three, the order rotated by one every round, so drift in the machine's speed spreads
evenly. A child reports its wall and CPU time (`time.process_time()`, which counts from the process's
start, interpreter start-up included) at the moment it has the answer, its peak RSS (`VmHWM` from
/proc/self/status: `ru_maxrss` would also count the benchmark's own memory, inherited at the fork), and
then which loaded modules had no current `.pyc`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from bench.common import (
    EVENT_FILE,
    MIB,
    ROOT,
    Config,
    Section,
    Stats,
    child_env,
    local_cloud,
    ms,
    ratio,
    spread,
    verdict,
)

MARK = "BENCH-RESULT "
MARK_PYC = "BENCH-PYC "
VARIANTS = {
    "naive": "from bench import naive_handler as handler",
    "pydantic": "from bench import naive_pydantic_handler as handler",
    "function": "import handler",
}
LABELS = {"naive": "(a) hand-written", "pydantic": "(b) + pydantic, orjson", "function": "(c) function"}
# The same child for every variant; only the import line differs. `{after}` runs once the answer is out.
CHILD = """
import time
t0 = time.perf_counter()
import json, os, resource, sys
{import_line}
t1 = time.perf_counter()
with open({event!r}) as f:
    event = json.load(f)
context = {{"request_id": "bench-cold", "function_name": "lighthouse-blueprint", "namespace": "default",
           "function_version": "$LATEST", "time_limit_in_ms": 60000, "memory_limit_in_mb": 128,
           "tencentcloud_region": "ap-guangzhou"}}
answer = handler.main_handler(event, context)
t2 = time.perf_counter()
cpu = time.process_time()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:  # VmHWM: this process's own peak (ru_maxrss also counts the parent's memory at the fork)
    with open("/proc/self/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
except (OSError, StopIteration, ValueError):
    pass
print({mark!r} + json.dumps({{"imports": t1 - t0, "invoke": t2 - t1, "cpu": cpu, "maxrss_kb": rss,
                              "answer": answer}}), flush=True)
{after}
"""
PYC_CHECK = f"""
from bench import bytecode
print({MARK_PYC!r} + json.dumps({{"modules": len(sys.modules), "stale": bytecode.stale_modules()}}), flush=True)
"""
# Under callgrind the count stops at the answer, as the wall time does (interpreter teardown is not billed work).
EXIT_AT_ANSWER = "os._exit(0)"
HALF_64MB = 32 * MIB


def child_code(name: str, *, after: str = PYC_CHECK) -> str:
    """The `python -c` program for one variant."""
    return CHILD.format(import_line=VARIANTS[name], event=str(EVENT_FILE), mark=MARK, after=after)


def rotation(rounds: int, warmup: int) -> list[tuple[int, tuple[str, ...]]]:
    """(round, order) pairs: warm-up rounds get negative numbers; each round starts one variant later."""
    names = tuple(VARIANTS)
    return [(r, names[r % len(names):] + names[:r % len(names)]) for r in range(-warmup, rounds)]


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
        elif line.startswith(MARK_PYC) and result is not None:
            result["pyc"] = json.loads(line[len(MARK_PYC):])
    _out, err = proc.communicate(timeout=60)
    if result is None or proc.returncode != 0:
        raise RuntimeError(f"{name} child failed (exit {proc.returncode}): {err[-2000:]}")
    return result


def check(name: str, answer: Any, emu: Any, receiver: Any) -> None:
    """The run did what its variant does: one image made (and, for the function, one webhook delivered).

    Raises:
        RuntimeError: it did not.
    """
    created = [c for c in emu.calls_of("CreateBlueprint") if c.error is None]
    if len(created) != 1:
        raise RuntimeError(f"{name}: expected one CreateBlueprint, the emulator saw {len(created)}: {answer}")
    if name != "function":
        if not answer.get("BlueprintId"):
            raise RuntimeError(f"{name} handler answered without an image: {answer}")
        return
    if not answer.get("Results") or answer["Results"][0].get("BlueprintId") is None:
        raise RuntimeError(f"function answered without an image: {answer}")
    if len(receiver.accepted()) != 1:
        raise RuntimeError(f"function delivered {len(receiver.accepted())} webhooks, expected 1")


def measure(config: Config) -> dict[str, list[dict[str, Any]]]:
    """Rotated cold runs of the three variants (after `cold_warmup` unmeasured rounds)."""
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    with local_cloud() as (emu, receiver, env):
        for round_no, order in rotation(config.cold_runs, config.cold_warmup):
            for name in order:
                emu.reset()
                receiver.received.clear()
                result = run_child(name, env)
                check(name, result["answer"], emu, receiver)
                if round_no >= 0:
                    samples[name].append(result)
    return samples


def paired(samples: dict[str, list[dict[str, Any]]], key: str, a: str, b: str) -> Stats:
    """Per-round differences a - b of one measure (rounds are close in time, so drift cancels)."""
    return Stats.of([x[key] - y[key] for x, y in zip(samples[a], samples[b], strict=True)])


def _cold_section(config: Config, samples: dict[str, list[dict[str, Any]]]) -> Section:
    stats = {n: {k: Stats.of([s[k] for s in runs]) for k in ("wall", "cpu", "imports", "invoke")}
             for n, runs in samples.items()}
    cold = Section("cold", "Cold start (whole process, spawn to first answered invocation)",
                   ["Measure (ms): median [min to max]", *LABELS.values(), "(c) - (b), paired", "(c) - (a), paired"])
    measures = (("wall", "Wall, spawn to answer"), ("cpu", "CPU (user + system), spawn to answer"),
                ("imports", "Imports, wall (in the child)"), ("invoke", "First invocation, wall (in the child)"))
    for key, label in measures:
        cold.rows.append([label, *(spread(stats[n][key]) for n in VARIANTS),
                          spread(paired(samples, key, "function", "pydantic")),
                          spread(paired(samples, key, "function", "naive"))])
    stale = sorted({m for runs in samples.values() for s in runs for m in s.get("pyc", {}).get("stale", [])})
    cold.notes += [
        f"{config.cold_runs} rounds after {config.cold_warmup} unmeasured; each round runs (a), (b), (c) in an order "
        "rotated by one per round; emulator latency 0, reset before every run; PYTHONDONTWRITEBYTECODE set as on SCF.",
        "Bytecode: " + ("every loaded module had a current .pyc." if not stale else
                        f"**{len(stale)} loaded module(s) had no current .pyc** (compiled at import): "
                        + ", ".join(f"`{m}`" for m in stale[:10])),
        "The function's first invocation builds its App (settings, clients, sinks), makes 4 cloud calls "
        "(DescribeBlueprints slot lookup, DescribeDisks for the data disks, CreateBlueprint, DescribeBlueprints "
        "listing) and POSTs one webhook; "
        "(a) and (b) make 1 call and deliver nothing.",
        "The differences are medians of per-round differences (their min to max shows the noise); "
        "the callgrind section counts the same runs in instructions, which do not vary with the machine's load.",
    ]
    own_cpu, own_wall = paired(samples, "cpu", "function", "pydantic"), paired(samples, "wall", "function", "pydantic")
    cold.summary += [
        ["Own cold cost (c) - (b), CPU", f"{ms(own_cpu.median)} ms [{ms(own_cpu.low)} to {ms(own_cpu.high)}]",
         f"(b) {ms(stats['pydantic']['cpu'].median)} ms", ratio(stats["function"]["cpu"].median,
                                                              stats["pydantic"]["cpu"].median),
         "≤ 15 ms", verdict(own_cpu.median <= 0.015)],
        ["Own cold cost (c) - (b), wall", f"{ms(own_wall.median)} ms [{ms(own_wall.low)} to {ms(own_wall.high)}]",
         f"(b) {ms(stats['pydantic']['wall'].median)} ms", ratio(stats["function"]["wall"].median,
                                                               stats["pydantic"]["wall"].median),
         "≤ 15 ms", verdict(own_wall.median <= 0.015)],
    ]
    return cold


def _memory_section(samples: dict[str, list[dict[str, Any]]]) -> Section:
    rss = {n: Stats.of([s["maxrss_kb"] * 1024 for s in runs]) for n, runs in samples.items()}
    mem = Section("memory", "Peak memory (VmHWM of the cold child after its first invocation)",
                  ["Variant", "Median (MiB)", "Min to max (MiB)", "vs (a)"])

    def mib(value: float) -> str:
        return f"{value / MIB:.1f}"

    for name in VARIANTS:
        mem.rows.append([LABELS[name], mib(rss[name].median), f"{mib(rss[name].low)} to {mib(rss[name].high)}",
                         ratio(rss[name].median, rss["naive"].median)])
    fn, naive = rss["function"], rss["naive"]
    mem.notes.append("VmHWM (/proc/self/status) is the whole interpreter's peak resident set, Python itself "
                     "included. It replaces ru_maxrss, which Linux carries over a fork and exec: a child's "
                     "ru_maxrss is at least the benchmark process's own resident set at the fork, so it measured the "
                     "parent whenever the parent was the larger. SCF bills memory in tiers; the "
                     "smallest is 64 MB. The 64 MB tier is safe when the peak leaves 2x headroom: at most 32 MiB "
                     "(the highest run counts). This is the sample timer job's peak, the path that never imports "
                     "pydantic; the same function's Function URL requests and tag-selected fleets load the pydantic "
                     "models and peak near 38 MiB (`python deploy/measure_rss.py`), so serverless.yml keeps 128 MB.")
    mem.summary += [
        ["Peak RSS, (c) / (a)", f"{mib(fn.median)} MiB", f"(a) {mib(naive.median)} MiB",
         ratio(fn.median, naive.median), "≤ 1.25x", verdict(fn.median <= 1.25 * naive.median)],
        ["Peak RSS, 2x headroom under 64 MB (the timer path)", f"{mib(fn.high)} MiB (highest run)", "32.0 MiB",
         ratio(fn.high, HALF_64MB), "≤ 1.00x", verdict(fn.high <= HALF_64MB)],
    ]
    return mem


def run(config: Config) -> list[Section]:
    """The cold start and memory sections."""
    samples = measure(config)
    return [_cold_section(config, samples), _memory_section(samples)]
