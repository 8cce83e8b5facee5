"""Where import time goes on a timer invocation: `python -X importtime`, per module and per group.

Each of the three cold variants (see `coldstart.py`) runs in a fresh process under `-X importtime`: its
import, then one timer invocation against the emulator, so imports made lazily by the first invocation
count too (a marker line on stderr tells the two phases apart). Medians per module over `import_runs`.

One experiment backs a suggestion: the same cold start with pydantic's `defer_build` switched on for every
model (set on `BaseModel.model_config` in the child only; the function is not changed).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bench.coldstart import LABELS, VARIANTS, check
from bench.common import EVENT_FILE, ROOT, Config, Section, child_env, local_cloud

GROUPS = {
    "ours (blueprint.*, handler)": ("blueprint", "handler"),
    "pydantic (+ pydantic_core, annotated_types, typing_*)": ("pydantic", "pydantic_core", "annotated_types",
                                                              "typing_extensions", "typing_inspection"),
    "SDK (tencentcloud.*)": ("tencentcloud",),
    "requests (+ urllib3, charset_normalizer, idna, certifi)": ("requests", "urllib3", "charset_normalizer", "idna",
                                                                "certifi"),
    "orjson": ("orjson",),
    "the baselines (bench.*)": ("bench",),
}
OTHER = "stdlib and the rest"
MARKER = "BENCH-IMPORTED-NOW-INVOKING"
CONTEXT = {"request_id": "bench-imports", "function_name": "lighthouse-blueprint", "namespace": "default",
           "function_version": "$LATEST", "time_limit_in_ms": 60000, "memory_limit_in_mb": 128,
           "tencentcloud_region": "ap-guangzhou"}
IMPORT_CHILD = """
import json, sys
{import_line}
sys.stderr.write({marker!r} + "\\n")
sys.stderr.flush()
with open({event!r}) as f:
    event = json.load(f)
answer = handler.main_handler(event, {context!r})
print(json.dumps(answer))
"""
TIMING_CHILD = """
import time
t0 = time.perf_counter()
{prelude}
import json
import handler
t1 = time.perf_counter()
with open({event!r}) as f:
    event = json.load(f)
answer = handler.main_handler(event, {context!r})
t2 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "invoke": t2 - t1, "answer": answer}}))
"""
DEFER = "import pydantic; pydantic.BaseModel.model_config['defer_build'] = True"
TOP = 15


@dataclass(frozen=True)
class Module:
    """One module's median import time (µs) and when it was first imported."""

    name: str
    self_us: float
    cumulative_us: float
    at_invocation: bool  # first imported by the first invocation, not by the handler's import


def group_of(module: str) -> str:
    """The group a module's self time counts for."""
    top = module.split(".", 1)[0]
    return next((g for g, tops in GROUPS.items() if top in tops), OTHER)


def parse_importtime(stderr: str) -> list[tuple[str, int, int, bool]]:
    """(module, self µs, cumulative µs, imported after the marker) per line of `-X importtime` output."""
    rows, after = [], False
    for line in stderr.splitlines():
        if line.startswith(MARKER):
            after = True
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative, name = line.split(":", 1)[1].split("|")
        rows.append((name.strip(), int(self_us), int(cumulative), after))
    return rows


def _run_child(code: str, env: dict[str, str], emu: Any, receiver: Any, name: str, *,
               importtime: bool) -> subprocess.CompletedProcess[str]:
    emu.reset()
    receiver.received.clear()
    argv = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c", code]
    proc = subprocess.run(argv, cwd=ROOT, env=child_env(env), capture_output=True, text=True, timeout=60,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} import child failed: {proc.stderr[-2000:]}")
    return proc


def medians(samples: list[list[tuple[str, int, int, bool]]]) -> dict[str, Module]:
    """Median self and cumulative µs per module over runs (modules seen in every run)."""
    per: dict[str, list[tuple[int, int, bool]]] = defaultdict(list)
    for rows in samples:
        for name, self_us, cumulative, late in rows:
            per[name].append((self_us, cumulative, late))
    return {name: Module(name, statistics.median(s for s, _, _ in v), statistics.median(c for _, c, _ in v), v[0][2])
            for name, v in per.items() if len(v) == len(samples)}


def measure(config: Config) -> dict[str, dict[str, Module]]:
    """`-X importtime` of each variant's import and first timer invocation, medians per module.

    The variants take turns run by run (one unmeasured round first), so drift in the machine's speed
    touches all of them alike.

    Raises:
        RuntimeError: a child failed or did not make its image.
    """
    samples: dict[str, list[list[tuple[str, int, int, bool]]]] = {name: [] for name in VARIANTS}
    with local_cloud() as (emu, receiver, env):
        for round_no in range(-1, max(1, config.import_runs)):
            for name, import_line in VARIANTS.items():
                code = IMPORT_CHILD.format(import_line=import_line, marker=MARKER, event=str(EVENT_FILE),
                                           context=CONTEXT)
                proc = _run_child(code, env, emu, receiver, name, importtime=True)
                check(name, json.loads(proc.stdout.strip().splitlines()[-1]), emu, receiver)
                if round_no >= 0:
                    samples[name].append(parse_importtime(proc.stderr))
    return {name: medians(runs) for name, runs in samples.items()}


def timing(runs: int) -> dict[str, dict[str, float]]:
    """Median wall seconds of `import handler` and the first timer invocation in fresh processes, as shipped
    and with `defer_build` (alternating, one unmeasured round first).

    Raises:
        RuntimeError: a child failed.
    """
    preludes = {"plain": "", "deferred": DEFER}
    values: dict[str, dict[str, list[float]]] = {name: defaultdict(list) for name in preludes}
    with local_cloud() as (emu, receiver, env):
        for round_no in range(-1, runs):
            for name, prelude in preludes.items():
                code = TIMING_CHILD.format(prelude=prelude, event=str(EVENT_FILE), context=CONTEXT)
                proc = _run_child(code, env, emu, receiver, "function", importtime=False)
                data = json.loads(proc.stdout.strip().splitlines()[-1])
                check("function", data.pop("answer"), emu, receiver)
                for key, value in data.items():
                    if round_no >= 0:
                        values[name][key].append(value)
    return {name: {key: statistics.median(v) for key, v in per.items()} for name, per in values.items()}


def _ms(us: float) -> str:
    return f"{us / 1000:.1f}"


def _rows(mods: Iterable[Module], key: str, n: int) -> list[list[str]]:
    chosen = sorted(mods, key=lambda m: getattr(m, key), reverse=True)[:n]
    return [[f"`{m.name}`", _ms(m.cumulative_us), _ms(m.self_us), "first invocation" if m.at_invocation else
             "import"] for m in chosen]


def _group_rows(mods: dict[str, dict[str, Module]]) -> list[list[str]]:
    totals: dict[str, dict[str, float]] = {name: defaultdict(float) for name in mods}
    for name, per in mods.items():
        for module in per.values():
            totals[name][group_of(module.name)] += module.self_us
    rows = []
    for group in [*GROUPS, OTHER]:
        values = [totals[name][group] for name in VARIANTS]
        rows.append([group, *(_ms(v) for v in values), _ms(values[2] - values[1])])
    sums = [sum(totals[name].values()) for name in VARIANTS]
    rows.append(["**all imports (sum of self times)**", *(_ms(v) for v in sums), _ms(sums[2] - sums[1])])
    return rows


def _experiment(runs: int) -> tuple[str, list[str], list[list[str]]]:
    both = timing(runs)
    plain, deferred = both["plain"], both["deferred"]
    rows = [[label, f"{plain[k] * 1000:.1f}", f"{deferred[k] * 1000:.1f}", f"{(deferred[k] - plain[k]) * 1000:+.1f}"]
            for k, label in (("import", "`import handler`"), ("invoke", "first timer invocation"))]
    rows.append(["**sum**", f"{sum(plain.values()) * 1000:.1f}", f"{sum(deferred.values()) * 1000:.1f}",
                 f"{(sum(deferred.values()) - sum(plain.values())) * 1000:+.1f}"])
    return ("Experiment: pydantic `defer_build` on every model (wall ms, fresh process, median)",
            ["Step", "As shipped", "defer_build=True", "Difference"], rows)


def run(config: Config) -> list[Section]:
    """The import-time section."""
    runs = max(1, config.import_runs)
    mods = measure(config)
    fn = mods["function"]
    section = Section("imports", "Import time on a timer invocation (`python -X importtime`, medians)",
                      ["Group (self time, ms)", *LABELS.values(), "(c) - (b)"])
    section.rows += _group_rows(mods)
    headers = ["Module", "Cumulative", "Self", "Imported by"]
    section.extra += [
        (f"(c) function: top {TOP} modules by cumulative time (ms)", headers, _rows(fn.values(), "cumulative_us", TOP)),
        (f"(c) function: top {TOP} modules by self time (ms)", headers, _rows(fn.values(), "self_us", TOP)),
        ("(c) function: our modules (blueprint.*, handler), by cumulative time (ms)", headers,
         _rows([m for m in fn.values() if group_of(m.name).startswith("ours")], "cumulative_us", len(fn))),
        ("(c) function: modules first imported by the first invocation (not by `import handler`), by cumulative "
         "time (ms)", headers, _rows([m for m in fn.values() if m.at_invocation], "cumulative_us", TOP)),
        _experiment(runs),
    ]
    section.notes += [
        f"{runs} run(s) per variant: `import` of the handler, then one timer invocation (`events/timer.json`) against "
        "the emulator, in a fresh process with .pyc present. Self times are medians per module, so group sums "
        "differ slightly from run totals. `-X importtime` itself inflates the times; the cold start section has "
        "the uninstrumented wall and CPU times.",
        "Cumulative times nest (a package's includes its submodules'); \"Imported by\" says whether the module "
        "was first imported by the handler's import or lazily during the first invocation.",
        "Self time of `stdlib and the rest` is mostly what requests/urllib3 and pydantic pull from the "
        "standard library (http.client, email, ssl, typing, ...).",
    ]
    return [section]
