"""What every benchmark shares: the configuration, statistics, result sections and the local cloud."""

from __future__ import annotations

import statistics
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EVENT_FILE = ROOT / "events" / "timer.json"
FUNCTION_NAME = "lighthouse-blueprint"
# The tag every image the function makes carries (a fixed name of the function's contract, see README.md).
INSTANCE_TAG = "scf-blueprint:instance"
MIB = 1024 * 1024


@dataclass(frozen=True)
class Config:
    """How much of each benchmark to run (the defaults are the full run; `smoke()` is what CI runs)."""

    cold_runs: int = 9            # rotated rounds of the three cold variants (medians reported)
    cold_warmup: int = 1          # unmeasured rounds first (OS file cache)
    callgrind_runs: int = 2       # runs of each variant under callgrind (deterministic; 2 show it)
    import_runs: int = 5          # `python -X importtime` runs per variant (medians per module)
    warm_calls: int = 200         # timed warm invocations (each followed by the same calls made raw)
    warm_rate: float = 3.0        # warm invocations per second: well below the function's 10/s describe limiter
    profile_calls: int = 60       # warm invocations under cProfile (separate from the timed ones)
    fleet_instances: int = 200
    fleet_latency: float = 0.15   # seconds per emulated cloud call (fleet and fan-out)
    fleet_concurrency: int = 20   # the function's default BLUEPRINT_CONCURRENCY
    fleet_runs: int = 3           # function runs of the inline fleet (median reported)
    fanout_instances: int = 200
    fanout_containers: int = 8    # warm containers (App instances) the children run in
    fanout_runs: int = 3          # fan-out runs (median reported)
    create_rate: float = 20.0     # CreateBlueprint per second (documented limit): the fleet's floor
    smoke: bool = False           # tiny counts; callgrind checks its parser on a tiny program only
    skip: frozenset[str] = frozenset()  # benchmark names not to run

    @classmethod
    def smoke_config(cls) -> Config:
        """The tiny run CI makes (tests/bench/test_bench_smoke.py): every code path, a few seconds."""
        return cls(cold_runs=1, cold_warmup=0, callgrind_runs=2, import_runs=1, warm_calls=2, warm_rate=5.0,
                   profile_calls=1, fleet_instances=4, fleet_latency=0.01, fleet_concurrency=2, fleet_runs=1,
                   fanout_instances=4, fanout_containers=2, fanout_runs=1, smoke=True, skip=frozenset({"package"}))


@dataclass
class Section:
    """One benchmark's results: a table, optional extra tables, and notes saying what was measured."""

    name: str
    title: str
    headers: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: list[tuple[str, Sequence[str], list[Sequence[str]]]] = field(default_factory=list)
    summary: list[Sequence[str]] = field(default_factory=list)  # rows for the summary table


@dataclass(frozen=True)
class Stats:
    """Summary of a sample of durations (seconds) or sizes."""

    n: int
    median: float
    p99: float
    low: float
    high: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        """Median, 99th percentile (nearest rank), min and max.

        Raises:
            ValueError: no samples.
        """
        if not samples:
            raise ValueError("no samples")
        ordered = sorted(samples)
        rank = max(0, min(len(ordered) - 1, -(-99 * len(ordered) // 100) - 1))
        return cls(len(ordered), statistics.median(ordered), ordered[rank], ordered[0], ordered[-1])


def ms(seconds: float) -> str:
    """Milliseconds with a precision that suits the size."""
    value = seconds * 1000
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def spread(stats: Stats, fmt: Any = ms) -> str:
    """`median [min-max]` in one cell."""
    return f"{fmt(stats.median)} [{fmt(stats.low)} to {fmt(stats.high)}]"


def ratio(value: float, base: float) -> str:
    """`1.23x`, or `n/a` when the base is zero."""
    return f"{value / base:.2f}x" if base else "n/a"


def verdict(ok: bool) -> str:
    """The goal column."""
    return "met" if ok else "**not met**"


def throttled(calls: Sequence[Any]) -> int:
    """How many of the emulator's recorded calls were answered RequestLimitExceeded."""
    return sum(1 for c in calls if c.error and c.error.startswith("RequestLimitExceeded"))


@contextmanager
def local_cloud(*, webhook: bool = True, **options: Any) -> Iterator[tuple[Any, Any, dict[str, str]]]:
    """The emulator (and a webhook receiver) in this process; yields them and the function's environment."""
    from blueprint.localrun import Receiver
    from emulator import SECRET_ID, SECRET_KEY, Emulator

    emu = Emulator(**{"image_seconds": 0.0, "quota": 100_000, **options}).start()
    receiver = Receiver().start()
    env = {
        "TENCENTCLOUD_SECRETID": SECRET_ID,
        "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
        "TENCENTCLOUD_SESSIONTOKEN": "bench-session-token",
        "TENCENTCLOUD_REGION": "ap-guangzhou",
        "BLUEPRINT_API_ENDPOINT": emu.url,
        "BLUEPRINT_HTTP_TOKEN": "bench-local-token",
        "BLUEPRINT_LOG_LEVEL": "INFO",
        # The hand-written handlers make one image: the function's data-disk points (the sample instance has a
        # data disk) would be work they do not do.
        "BLUEPRINT_DATA_DISKS": "none",
    }
    if webhook:
        env["BLUEPRINT_WEBHOOK_URL"] = receiver.url
    try:
        yield emu, receiver, env
    finally:
        receiver.stop()
        emu.stop()


@contextmanager
def quiet_logs() -> Iterator[None]:
    """The function's JSON log lines go to /dev/null while the benchmark runs in this process."""
    import os

    from blueprint import logs

    with open(os.devnull, "w") as null:
        logs.set_stream(null)
        try:
            yield
        finally:
            logs.set_stream(None)


def context(**overrides: Any) -> dict[str, Any]:
    """An SCF-like invocation context."""
    import uuid

    return {"request_id": str(uuid.uuid4()), "function_name": FUNCTION_NAME, "namespace": "default",
            "function_version": "$LATEST", "time_limit_in_ms": 900_000, "memory_limit_in_mb": 128,
            "tencentcloud_region": "ap-guangzhou", **overrides}


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """A small SCF-like environment for child processes: PATH, the project on sys.path, and `extra`."""
    import os

    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    # SCF sets PYTHONDONTWRITEBYTECODE: bytecode already present is used, none is written.
    return {**base, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "x", "TENCENTCLOUD_RUNENV": "SCF",
            **extra}


def compile_tree() -> str:
    """Compile the work tree's bytecode, as the package ships it (`compileall`, timestamp-checked .pyc).

    Cold runs then load `.pyc` like a deployed function; without this an edited tree starts ~45 ms slower.

    Raises:
        RuntimeError: a file did not compile.
    """
    import compileall

    ok = compileall.compile_file(str(ROOT / "handler.py"), quiet=1)
    for folder in ("blueprint", "bench"):
        ok = compileall.compile_dir(str(ROOT / folder), quiet=1) and ok
    if not ok:
        raise RuntimeError("compileall failed on the work tree")
    count = 1 + sum(1 for folder in ("blueprint", "bench") for _ in (ROOT / folder).rglob("*.py"))
    return (f"compiled before the cold runs (compileall: handler.py, blueprint/, bench/; {count} files, "
            "timestamp-checked .pyc); site-packages carry the .pyc pip wrote")
