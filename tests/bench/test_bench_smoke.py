"""The benchmarks run end to end with tiny counts so they never rot; nothing here is about speed.

`python -m bench` with the full counts is what produces bench/RESULTS.md; thresholds live in that report.
The package benchmark is left out: it is the packaging command's own run (seconds, possibly network).
"""

from __future__ import annotations

import time
from pathlib import Path

from bench import package
from bench.__main__ import main
from bench.common import Config

TINY = ["--cold-runs", "1", "--import-runs", "1", "--warm-calls", "3", "--limiter-calls", "2",
        "--fleet-instances", "4", "--fleet-latency", "0.01", "--fleet-concurrency", "2", "--skip", "package"]

SUMMARY_ROWS = (
    "| Cold start, median ratio |",
    "| Peak RSS, ratio |",
    "| Peak RSS, fits SCF 64 MB |",
    "| Warm overhead, adjusted (median / p99) |",
    "| Warm overhead, total incl. 2 extra cloud calls (median) |",
    "| Fleet of 4, function vs the 20/s bound |",
    "| Fleet of 4, function vs naive sequential loop |",
)
SECTIONS = (
    "## Machine",
    "## Cold start (spawn to first answered invocation)",
    "## Peak memory (ru_maxrss of the child after one invocation)",
    "## Import time (`python -X importtime`, medians)",
    "## Warm invocation overhead",
    "## Fleet throughput: 4 instances",
)


def test_the_whole_benchmark_writes_its_table(tmp_path: Path) -> None:
    output = tmp_path / "RESULTS.md"
    started = time.monotonic()

    assert main([*TINY, "--output", str(output)]) == 0

    report = output.read_text()
    for heading in SECTIONS:
        assert heading in report
    for row in SUMMARY_ROWS:
        assert row in report
    for group in ("| ours (blueprint.*, handler) |", "| pydantic (", "| SDK (tencentcloud.*) |", "| requests ("):
        assert group in report
    assert "| Naive sequential loop" in report
    assert "4 of 4" in report  # every fleet instance got its image, in both runs
    assert "Skipped in this run: package." in report
    assert "| Python | CPython 3." in report
    assert time.monotonic() - started < 60  # a hang guard, not a speed goal


def test_the_report_says_pending_when_there_is_no_packaging_command() -> None:
    (section,) = package.run(Config(), packager="blueprint.no_such_packaging_module")

    assert section.rows[0][1] == "pending"
    assert section.summary[0][1] == "pending"
