"""The benchmarks run end to end with tiny counts so they never rot; nothing here is about speed.

`python -m bench` with the full counts is what produces bench/RESULTS.md; thresholds live in that report.
`--smoke` leaves the package benchmark out: it is the packaging command's own run (seconds, possibly network).
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from bench import callgrind, package
from bench.__main__ import main
from bench.coldstart import rotation
from bench.common import Config
from bench.warm import max_in_window

SUMMARY_ROWS = (
    "| Own cold cost (c) - (b), CPU |",
    "| Own cold cost (c) - (b), wall |",
    "| Peak RSS, (c) / (a) |",
    "| Peak RSS, 2x headroom under 64 MB (the timer path) |",
    "| Warm overhead over the same calls made raw (median, order-balanced / p99) |",
    "| Fleet of 4, function vs the 20/s bound |",
    "| Fleet of 4, cloud calls per image |",
    "| Fleet of 4, function vs naive sequential loop |",
    "| Fan-out of 4, time vs the floor |",
    "| Fan-out of 4, cloud calls per image (+ Invoke calls) |",
    "| Fan-out of 4, throttling answers |",
)
SECTIONS = (
    "## Machine",
    "## Cold start (whole process, spawn to first answered invocation)",
    "## Peak memory (VmHWM of the cold child after its first invocation)",
    "## Cold start in instructions (valgrind callgrind, whole process to the answer)",
    "## Import time on a timer invocation (`python -X importtime`, medians)",
    "## Warm invocation overhead",
    "## Fleet throughput: 4 instances",
    "## Fan-out: 4 instances through child invocations",
)
CALLGRIND_OUT = """# callgrind format
version: 1
creator: callgrind-3.19.0
cmd:  python -S -c pass
events: Ir
fl=(1) ???
fn=(1) 0x0000000000001100
0 3
summary: 26731884
totals: 26731884
"""


def test_the_whole_benchmark_writes_its_table(tmp_path: Path) -> None:
    output = tmp_path / "RESULTS.md"
    started = time.monotonic()

    assert main(["--smoke", "--output", str(output)]) == 0

    report = output.read_text()
    for heading in SECTIONS:
        assert heading in report
    for row in SUMMARY_ROWS:
        assert row in report
    for group in ("| ours (blueprint.*, handler) |", "| pydantic (", "| SDK (tencentcloud.*) |", "| requests ("):
        assert group in report
    for variant in ("| (a) hand-written |", "| (b) + pydantic, orjson |", "| (c) function |"):
        assert variant in report  # rows of the memory table: all three cold variants ran
    assert "| Naive sequential loop" in report
    assert report.count("4 of 4") >= 2  # every instance got its image, inline and through the fan-out
    assert "Bytecode: every loaded module had a current .pyc." in report
    assert "| Work tree bytecode | compiled before the cold runs" in report
    assert "**cProfile: the function's top functions by own time" in report
    assert "**cProfile: functions with the most own time over the raw calls" in report
    assert "Skipped in this run: package." in report
    assert "| Python | CPython 3." in report
    assert not re.search(r"(?<![\w.])/(?:work|tmp|root|home|usr|opt|var)/", report)  # no path outside the project
    if shutil.which("valgrind"):
        assert "| Callgrind parser on a tiny program |" in report
    else:
        assert "Skipped: valgrind is not installed" in report
    assert time.monotonic() - started < 60  # a hang guard, not a speed goal


def test_the_callgrind_parser_reads_the_instruction_total() -> None:
    assert callgrind.parse_totals(CALLGRIND_OUT) == 26_731_884
    several = CALLGRIND_OUT.replace("events: Ir", "events: Ir Dr Dw").replace("summary: 26731884", "summary: 5 6 7")
    assert callgrind.parse_totals(several) == 5
    with pytest.raises(ValueError, match="no `events:`"):
        callgrind.parse_totals("version: 1\n")
    with pytest.raises(ValueError, match="no Ir event"):
        callgrind.parse_totals("events: Dr\nsummary: 4\n")


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_callgrind_counts_a_tiny_program_the_same_way_twice() -> None:
    first, _ = callgrind.instructions(callgrind.TINY)
    second, _ = callgrind.instructions(callgrind.TINY)

    assert first > 1_000_000  # an interpreter start-up, not an empty file
    assert abs(first - second) / first < 0.01


def test_cold_rounds_rotate_the_order_of_the_variants() -> None:
    rounds = rotation(3, warmup=1)

    assert [r for r, _ in rounds] == [-1, 0, 1, 2]
    orders = [order for r, order in rounds if r >= 0]
    assert orders == [("naive", "pydantic", "function"), ("pydantic", "function", "naive"),
                      ("function", "naive", "pydantic")]
    assert [order[i] for order in orders for i in range(3)].count("function") == 3


def test_max_in_window_counts_the_busiest_second() -> None:
    assert max_in_window([0.0, 0.5, 1.04, 1.06, 2.5], 1.05) == 3
    assert max_in_window([0.0, 1.05, 2.1], 1.05) == 1
    assert max_in_window([], 1.05) == 0


def test_the_report_says_pending_when_there_is_no_packaging_command() -> None:
    (section,) = package.run(Config(), packager="blueprint.no_such_packaging_module")

    assert section.rows[0][1] == "pending"
    assert section.summary[0][1] == "pending"


def test_stages_diagnostic_times_every_stage_and_restores_the_functions(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m bench.stages` (the warm figure's explanation) still finds every stage it times, and leaves the
    function's code and client cache as they were."""
    from bench import stages
    from blueprint import app, images
    from blueprint.cloud import ClientCache

    before = (app.App.handle, app.parse_job, images.ImageMaker.run, ClientCache.get)
    stages.main(["--rounds", "2", "--pause", "0"])
    lines = capsys.readouterr().out.splitlines()
    timed = {line.split("|")[1].strip() for line in lines[2:]}
    assert timed == {f"{owner + '.' if owner else ''}{name}" for _, owner, name in stages.STAGES}
    assert all(float(line.split("|")[2]) > 0 for line in lines[2:])
    assert (app.App.handle, app.parse_job, images.ImageMaker.run, ClientCache.get) == before
