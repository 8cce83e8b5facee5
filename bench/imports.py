"""Where import time goes: `python -X importtime`, grouped into ours / pydantic / SDK+requests / the rest.

Also times the first `get_app()` (building the App imports the configured sinks) and runs one experiment
that backs a suggestion: the same cold import and first parse with pydantic's `defer_build` switched on
for every model (set on `BaseModel.model_config` in the child only; the function is not changed).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable

from bench.common import EVENT_FILE, ROOT, Config, Section, child_env

GROUPS = {
    "ours (blueprint.*, handler)": ("blueprint", "handler"),
    "pydantic (+ pydantic_core, annotated_types, typing_*)": ("pydantic", "pydantic_core", "annotated_types",
                                                              "typing_extensions", "typing_inspection"),
    "SDK (tencentcloud.*)": ("tencentcloud",),
    "requests (+ urllib3, charset_normalizer, idna, certifi)": ("requests", "urllib3", "charset_normalizer", "idna",
                                                                "certifi"),
    "orjson": ("orjson",),
}
OTHER = "stdlib and the rest"
# Subtrees worth naming: their cumulative time where they are first imported.
SUBTREES = ("pydantic", "requests", "tencentcloud.lighthouse.v20200324.models",
            "tencentcloud.lighthouse.v20200324.lighthouse_client", "tencentcloud.common.abstract_client",
            "tencentcloud.scf.v20180416.scf_client", "tencentcloud.tdmq.v20200217.tdmq_client",
            "blueprint.events", "blueprint.settings", "blueprint.functions", "blueprint.sinks.cmq",
            "blueprint.sinks.webhook", "orjson")
ENV = {"TENCENTCLOUD_SECRETID": "AKIDBENCH", "TENCENTCLOUD_SECRETKEY": "bench-key",
       "TENCENTCLOUD_REGION": "ap-guangzhou", "BLUEPRINT_API_ENDPOINT": "http://127.0.0.1:9",
       "BLUEPRINT_WEBHOOK_URL": "http://127.0.0.1:9/hook", "BLUEPRINT_HTTP_TOKEN": "bench-local-token"}

TIMING_CHILD = """
import time
t0 = time.perf_counter()
{prelude}
import handler
t1 = time.perf_counter()
from blueprint.app import get_app
get_app()
t2 = time.perf_counter()
import json
from blueprint.events import parse_event, parse_job, parse_json
with open({event!r}) as f:
    event = json.load(f)
trigger = parse_event(event)
parse_job(parse_json(trigger.Message))
t3 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "build": t2 - t1, "first_parse": t3 - t2}}))
"""
DEFER = "import pydantic; pydantic.BaseModel.model_config['defer_build'] = True"


def group_of(module: str) -> str:
    """The group a module's self time counts for."""
    top = module.split(".", 1)[0]
    return next((g for g, tops in GROUPS.items() if top in tops), OTHER)


def parse_importtime(stderr: str) -> list[tuple[str, int, int, int]]:
    """(module, self µs, cumulative µs, depth) per line of `-X importtime` output."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative, name = line.split(":", 1)[1].split("|")
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        rows.append((name.strip(), int(self_us), int(cumulative), depth))
    return rows


def importtime(code: str, runs: int, env: dict[str, str] | None = None) -> list[list[tuple[str, int, int, int]]]:
    """`python -X importtime -c code`, `runs` times.

    Raises:
        RuntimeError: the child failed.
    """
    samples = []
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=ROOT, env=child_env(env or {}),
                              capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"importtime child failed: {proc.stderr[-2000:]}")
        samples.append(parse_importtime(proc.stderr))
    return samples


def medians(samples: list[list[tuple[str, int, int, int]]]) -> dict[str, tuple[float, float]]:
    """Median self and cumulative µs per module over runs (modules seen in every run)."""
    per: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for rows in samples:
        for name, self_us, cumulative, _ in rows:
            per[name].append((self_us, cumulative))
    return {name: (statistics.median(s for s, _ in v), statistics.median(c for _, c in v))
            for name, v in per.items() if len(v) == len(samples)}


def group_totals(mods: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Sum of median self times per group (µs)."""
    totals: dict[str, float] = defaultdict(float)
    for name, (self_us, _) in mods.items():
        totals[group_of(name)] += self_us
    return totals


def timing(prelude: str, runs: int) -> dict[str, float]:
    """Median wall seconds of import, first get_app() and first event parse in fresh processes.

    Raises:
        RuntimeError: the child failed.
    """
    code = TIMING_CHILD.format(prelude=prelude, event=str(EVENT_FILE))
    values: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=child_env(ENV), capture_output=True,
                              text=True, timeout=60, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"timing child failed: {proc.stderr[-2000:]}")
        for key, value in json.loads(proc.stdout.strip().splitlines()[-1]).items():
            values[key].append(value)
    return {key: statistics.median(v) for key, v in values.items()}


def _ms(us: float) -> str:
    return f"{us / 1000:.1f}"


def _top(mods: dict[str, tuple[float, float]], names: Iterable[str], key: int,
         n: int) -> list[tuple[str, float, float]]:
    chosen = [(name, *mods[name]) for name in names if name in mods]
    return sorted(chosen, key=lambda r: r[key], reverse=True)[:n]


def run(config: Config) -> list[Section]:
    """The import-time section."""
    runs = max(1, config.import_runs)
    fn = medians(importtime("import handler", runs))
    naive = medians(importtime("from bench import naive_handler", runs))
    built = medians(importtime("import handler; from blueprint.app import get_app; get_app()", runs, ENV))
    total_fn, total_naive = fn["handler"][1], naive["bench.naive_handler"][1]
    section = Section("imports", "Import time (`python -X importtime`, medians)",
                      ["Group (self time, ms)", "`import handler`", "`import bench.naive_handler`", "Difference"])
    fn_groups, naive_groups = group_totals(fn), group_totals(naive)
    for group in [*GROUPS, OTHER]:
        section.rows.append([group, _ms(fn_groups.get(group, 0)), _ms(naive_groups.get(group, 0)),
                             _ms(fn_groups.get(group, 0) - naive_groups.get(group, 0))])
    section.rows.append(["**total (cumulative of the top module)**", _ms(total_fn), _ms(total_naive),
                         _ms(total_fn - total_naive)])
    ours = [m for m in fn if group_of(m).startswith("ours")]
    section.extra.append(("Our modules, by self time (ms)", ["Module", "Self", "Cumulative"],
                          [[f"`{m}`", _ms(s), _ms(c)] for m, s, c in _top(fn, ours, 1, 12)]))
    new_at_build = {m: v for m, v in built.items() if m not in fn}
    section.extra.append(("Subtrees, cumulative where first imported (ms)", ["Module", "`import handler`",
                                                                             "first `get_app()` adds"],
                          [[f"`{m}`", _ms(fn[m][1]) if m in fn else "-",
                            _ms(new_at_build[m][1]) if m in new_at_build else "-"]
                           for m in SUBTREES if m in fn or m in new_at_build]))
    section.extra.append(("Modules imported by the first `get_app()` (not by `import handler`), by cumulative (ms)",
                          ["Module", "Self", "Cumulative"],
                          [[f"`{m}`", _ms(s), _ms(c)] for m, s, c in _top(new_at_build, new_at_build, 2, 8)]))
    plain, deferred = timing("", runs), timing(DEFER, runs)
    section.extra.append(("Experiment: pydantic `defer_build` on every model (wall ms, fresh process, median)",
                          ["Step", "As shipped", "defer_build=True", "Difference"],
                          [[label, f"{plain[k] * 1000:.1f}", f"{deferred[k] * 1000:.1f}",
                            f"{(deferred[k] - plain[k]) * 1000:+.1f}"]
                           for k, label in (("import", "`import handler`"), ("build", "first `get_app()`"),
                                            ("first_parse", "first timer parse (event + job)"))]
                          + [["**sum**", f"{sum(plain.values()) * 1000:.1f}", f"{sum(deferred.values()) * 1000:.1f}",
                              f"{(sum(deferred.values()) - sum(plain.values())) * 1000:+.1f}"]]))
    section.notes += [
        f"{runs} runs each; self times per module are medians, so group sums differ slightly from the total. "
        "`-X importtime` itself inflates the times; the cold start section has the uninstrumented wall times.",
        "Self time of `stdlib and the rest` is mostly what requests/urllib3 and pydantic pull from the "
        "standard library (http.client, email, ssl, typing, ...).",
    ]
    return [section]

