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


@dataclass(frozen=True)
class Config:
    """How much of each benchmark to run (the defaults are the full run; the smoke test shrinks them)."""

    cold_runs: int = 10           # fresh processes per handler, alternating
    import_runs: int = 5          # `python -X importtime` runs (medians per module)
    warm_calls: int = 1000        # warm invocations (and as many raw SDK calls)
    limiter_calls: int = 20       # warm invocations through the function's own 10/s DescribeBlueprints limiter
    fleet_instances: int = 200
    fleet_latency: float = 0.15   # seconds per emulated cloud call
    fleet_concurrency: int = 8     # the function's default BLUEPRINT_CONCURRENCY
    fleet_runs: int = 3           # function runs of the fleet (median reported: one throttled call can cost a window)
    create_rate: float = 20.0     # CreateBlueprint per second (documented limit), for the fleet's lower bound
    skip: frozenset[str] = frozenset()  # benchmark names not to run: cold, imports, warm, fleet, package


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


def ratio(value: float, base: float) -> str:
    """`1.23x`, or `n/a` when the base is zero."""
    return f"{value / base:.2f}x" if base else "n/a"


def verdict(ok: bool) -> str:
    """The goal column."""
    return "met" if ok else "**not met**"


def _no_delay() -> None:
    """Workaround: the emulator's HTTP handler leaves Nagle's algorithm on.

    Its keep-alive answers go out as two writes (headers, then body); the second waits for the client's
    delayed ACK, about 40 ms per call on Linux loopback, which would swamp every warm measurement (the
    real endpoint does not behave like that). Reported to the emulator's owner; harmless once fixed there.
    """
    from emulator import server

    handler: Any = server._Handler
    handler.disable_nagle_algorithm = True


@contextmanager
def local_cloud(*, webhook: bool = True, **options: Any) -> Iterator[tuple[Any, Any, dict[str, str]]]:
    """The emulator (and a webhook receiver) in this process; yields them and the function's environment."""
    from blueprint.localrun import Receiver
    from emulator import SECRET_ID, SECRET_KEY, Emulator

    _no_delay()
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
    }
    if webhook:
        env["BLUEPRINT_WEBHOOK_URL"] = receiver.url
    try:
        yield emu, receiver, env
    finally:
        receiver.stop()
        emu.stop()


def context(**overrides: Any) -> dict[str, Any]:
    """An SCF-like invocation context."""
    import uuid

    return {"request_id": str(uuid.uuid4()), "function_name": "lighthouse-blueprint", "namespace": "default",
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
