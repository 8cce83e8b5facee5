"""Cold start in instructions: the three cold variants once more, each under valgrind's callgrind.

Times on a shared machine wander by tens of milliseconds; the number of instructions a process executes
does not. Each variant runs the cold child of `coldstart.py` (same program, same emulator, reset before
every run) under `valgrind --tool=callgrind`, and the total instructions executed (Ir) are read from the
`summary:` (or `totals:`) line of the profile callgrind writes. The count stops at the answer
(`os._exit` right after it, like the cold wall time). PYTHONHASHSEED is fixed so string hashing does not
vary between runs. Smoke mode only checks valgrind and the parser on a tiny program.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.coldstart import EXIT_AT_ANSWER, LABELS, MARK, VARIANTS, check, child_code
from bench.common import ROOT, Config, Section, child_env, local_cloud, verdict

GOAL = 35e6  # instructions, (c) - (b)
TINY = [sys.executable, "-S", "-c", "pass"]
TIMEOUT = 600


def parse_totals(text: str) -> int:
    """Instructions executed (Ir) from a callgrind out file's `events:` and `summary:`/`totals:` lines.

    Raises:
        ValueError: the file has no Ir event or no summary line.
    """
    events: list[str] = []
    for line in text.splitlines():
        if line.startswith("events:"):
            events = line.split(":", 1)[1].split()
        elif line.startswith(("summary:", "totals:")) and events:
            if "Ir" not in events:
                raise ValueError(f"callgrind collected no Ir event: {events}")
            return int(line.split(":", 1)[1].split()[events.index("Ir")])
    raise ValueError("no `events:` and `summary:`/`totals:` lines in the callgrind output")


def valgrind() -> str | None:
    """The valgrind executable, or None when it is not installed."""
    return shutil.which("valgrind")


def instructions(argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run `argv` under callgrind; returns (instructions executed, the program's stdout).

    Raises:
        RuntimeError: valgrind is missing, or the program failed.
    """
    binary = valgrind()
    if binary is None:
        raise RuntimeError("valgrind is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        proc = subprocess.run([binary, "--tool=callgrind", f"--callgrind-out-file={out}", *argv], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"callgrind run failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
        return parse_totals(out.read_text(errors="replace")), proc.stdout


def variant_instructions(config: Config) -> dict[str, list[int]]:
    """Instructions of each cold variant, `callgrind_runs` times, sequentially on a freshly reset emulator.

    Raises:
        RuntimeError: a run failed or did not make its image.
    """
    import json

    counts: dict[str, list[int]] = {name: [] for name in VARIANTS}
    with local_cloud() as (emu, receiver, env):
        for _ in range(config.callgrind_runs):
            for name in VARIANTS:
                emu.reset()
                receiver.received.clear()
                argv = [sys.executable, "-c", child_code(name, after=EXIT_AT_ANSWER)]
                count, stdout = instructions(argv, child_env({**env, "PYTHONHASHSEED": "0"}))
                lines = [line for line in stdout.splitlines() if line.startswith(MARK)]
                if not lines:
                    raise RuntimeError(f"{name} under callgrind printed no answer: {stdout[-500:]}")
                check(name, json.loads(lines[-1][len(MARK):])["answer"], emu, receiver)
                counts[name].append(count)
    return counts


def _m(count: float) -> str:
    return f"{count / 1e6:.1f}"


def _spread(values: Sequence[int]) -> str:
    low, high = min(values), max(values)
    return f"{(high - low) / low * 100:.3f} %" if low else "n/a"


def _smoke(config: Config, section: Section) -> list[Section]:
    """Valgrind and the parser on a tiny program (`python -S -c pass`)."""
    counts = [instructions(TINY)[0] for _ in range(max(1, config.callgrind_runs))]
    section.rows.append(["tiny program `python -S -c pass`", *(_m(c) for c in counts[:1]), "-",
                         _spread(counts), ", ".join(_m(c) for c in counts)])
    section.notes.append("Smoke mode: only the tiny program; the full run counts the three cold variants.")
    section.summary.append(["Callgrind parser on a tiny program", f"{_m(statistics.median(counts))} M", "-", "-",
                            "(check)", "ok" if min(counts) > 0 else "**failed**"])
    return [section]


def run(config: Config) -> list[Section]:
    """The instruction-count section (skipped, with the reason, when valgrind is missing)."""
    section = Section("callgrind", "Cold start in instructions (valgrind callgrind, whole process to the answer)",
                      ["Variant", "Instructions (M), median", "vs (b) (M)", "Run-to-run spread", "Runs (M)"])
    if valgrind() is None:
        section.notes.append("Skipped: valgrind is not installed (`apt-get install valgrind`).")
        section.summary.append(["Own cold cost (c) - (b), instructions", "skipped (no valgrind)", "-", "-",
                                "≤ 35 M", "-"])
        return [section]
    if config.smoke:
        return _smoke(config, section)
    counts = variant_instructions(config)
    med = {name: statistics.median(values) for name, values in counts.items()}
    for name in VARIANTS:
        section.rows.append([LABELS[name], _m(med[name]), f"{(med[name] - med['pydantic']) / 1e6:+.1f}",
                             _spread(counts[name]), ", ".join(_m(c) for c in counts[name])])
    own = med["function"] - med["pydantic"]
    section.notes += [
        f"{config.callgrind_runs} run(s) per variant, sequential, each on a freshly reset emulator, "
        "PYTHONHASHSEED=0, .pyc present; the count covers interpreter start-up, imports and the first "
        "invocation up to the answer, in every thread of the process.",
        f"(c) - (b) = {_m(own)} M instructions (goal ≤ 35 M); (c) - (a) = {_m(med['function'] - med['naive'])} M; "
        f"(b) - (a) = {_m(med['pydantic'] - med['naive'])} M (what pydantic and orjson cost).",
    ]
    section.summary.append(["Own cold cost (c) - (b), instructions", f"{_m(own)} M", f"(b) {_m(med['pydantic'])} M",
                            f"{med['function'] / med['pydantic']:.2f}x", "≤ 35 M", verdict(own <= GOAL)])
    return [section]
