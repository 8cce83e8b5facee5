"""`python -m bench`: run every benchmark against the local emulator, print the report, write bench/RESULTS.md."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from bench import callgrind, coldstart, fanout, fleet, imports, machine, package, warm
from bench.common import ROOT, Config, Section, compile_tree, table

BENCHMARKS: dict[str, Callable[[Config], list[Section]]] = {
    "cold": coldstart.run,
    "callgrind": callgrind.run,
    "imports": imports.run,
    "warm": warm.run,
    "fleet": fleet.run,
    "fanout": fanout.run,
    "package": package.run,
}
SUMMARY_HEADERS = ["Figure", "Function", "Baseline (same run)", "Ratio", "Goal", "Result"]
# Every count and rate of Config can be set from the command line.
NUMBERS = [f for f in dataclasses.fields(Config) if f.type in ("int", "float")]


def render(config: Config, sections: Sequence[Section], seconds: float, setup: Sequence[tuple[str, str]]) -> str:
    """The Markdown report."""
    mode = "smoke mode: tiny counts, checks that every benchmark runs, judges nothing" if config.smoke else "full run"
    summary = [row for s in sections for row in s.summary]
    if config.smoke:
        summary = [[*row[:5], "not judged (smoke)"] for row in summary]
    parts = ["# Benchmark results", "",
             f"Written by `python -m bench` ({mode}) on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC in "
             f"{seconds:.0f} s. Everything runs against the local emulator (`emulator/`), so the cloud's latency is "
             "what the benchmark sets. Goals are judged here, never in tests; each figure's baseline comes from the "
             "same run.", "", "## Machine", "",
             table(["", ""], [*machine.describe(), *setup]), "", "## Summary", "",
             table(SUMMARY_HEADERS, summary), ""]
    skipped = [name for name in BENCHMARKS if name in config.skip]
    if skipped:
        parts += [f"Skipped in this run: {', '.join(skipped)}.", ""]
    for section in sections:
        parts += [f"## {section.title}", "", table(section.headers, section.rows), ""]
        for title, headers, rows in section.extra:
            parts += [f"**{title}**", "", table(headers, rows), ""]
        parts += [f"- {note}" for note in section.notes] + ([""] if section.notes else [])
    history = ROOT / "bench" / "history.md"
    if history.exists():  # measured once per step, by hand: copied in, never re-measured by this run
        parts += [history.read_text(encoding="utf-8").rstrip(), ""]
    parts += ["## Configuration", "", "`" + repr(config) + "`", ""]
    return "\n".join(parts)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny counts, every code path in seconds (what CI runs); options below still apply")
    for f in NUMBERS:
        parser.add_argument("--" + f.name.replace("_", "-"), type=int if f.type == "int" else float, default=None,
                            help=f"default {f.default} (smoke: {getattr(Config.smoke_config(), f.name)})")
    parser.add_argument("--skip", action="append", default=[], choices=sorted(BENCHMARKS),
                        help="leave a benchmark out (repeatable)")
    parser.add_argument("--only", action="append", default=[], choices=sorted(BENCHMARKS),
                        help="run only this benchmark (repeatable)")
    parser.add_argument("--output", type=Path, default=None,
                        help="where to write the report (default bench/RESULTS.md; in smoke mode: nowhere)")
    return parser


def config_from(args: argparse.Namespace) -> Config:
    """The configuration the command line asks for."""
    base = Config.smoke_config() if args.smoke else Config()
    numbers = {f.name: getattr(args, f.name) for f in NUMBERS if getattr(args, f.name) is not None}
    skip = set(base.skip) | set(args.skip)
    if args.only:
        skip = set(BENCHMARKS) - set(args.only)
    return dataclasses.replace(base, **numbers, skip=frozenset(skip))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks, print and write the report, return the exit status."""
    args = _parser().parse_args(argv)
    config = config_from(args)
    output = args.output if args.output is not None or config.smoke else ROOT / "bench" / "RESULTS.md"
    started = time.perf_counter()
    print(f"bench: {sys.executable} (Python {sys.version.split()[0]}); load {machine.load()}", file=sys.stderr)
    setup = [("Work tree bytecode", compile_tree()), ("Load average (1/5/15 min) at start", machine.load())]
    sections: list[Section] = []
    for name, bench in BENCHMARKS.items():
        if name in config.skip:
            continue
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        sections += bench(config)
    setup.append(("Load average (1/5/15 min) at the end", machine.load()))
    report = render(config, sections, time.perf_counter() - started, setup)
    print(report)
    if output is not None:
        output.write_text(report)
        print(f"bench: wrote {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
