"""`python -m bench`: run every benchmark against the local emulator and write bench/RESULTS.md."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from bench import coldstart, fleet, imports, machine, package, warm
from bench.common import ROOT, Config, Section, table

BENCHMARKS: dict[str, Callable[[Config], list[Section]]] = {
    "cold": coldstart.run,
    "imports": imports.run,
    "warm": warm.run,
    "fleet": fleet.run,
    "package": package.run,
}
SUMMARY_HEADERS = ["Benchmark", "Function", "Baseline", "Ratio", "Goal", "Result"]


def render(config: Config, sections: Sequence[Section], seconds: float) -> str:
    """The Markdown report."""
    parts = ["# Benchmark results", "",
             f"Written by `python -m bench` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC in {seconds:.0f} s. "
             "Everything runs against the local emulator (`emulator/`), so the cloud's latency is what the "
             "benchmark sets. Goals are judged here, never in tests.", "", "## Machine", "",
             table(["", ""], machine.describe()), "", "## Summary", "",
             table(SUMMARY_HEADERS, [row for s in sections for row in s.summary]), ""]
    skipped = [name for name in BENCHMARKS if name in config.skip]
    if skipped:
        parts += [f"Skipped in this run: {', '.join(skipped)}.", ""]
    for section in sections:
        parts += [f"## {section.title}", "", table(section.headers, section.rows), ""]
        for title, headers, rows in section.extra:
            parts += [f"**{title}**", "", table(headers, rows), ""]
        parts += [f"- {note}" for note in section.notes] + ([""] if section.notes else [])
    parts += ["## Configuration", "", "`" + repr(config) + "`", ""]
    return "\n".join(parts)


def _parser() -> argparse.ArgumentParser:
    defaults = Config()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--cold-runs", type=int, default=defaults.cold_runs)
    parser.add_argument("--import-runs", type=int, default=defaults.import_runs)
    parser.add_argument("--warm-calls", type=int, default=defaults.warm_calls)
    parser.add_argument("--limiter-calls", type=int, default=defaults.limiter_calls)
    parser.add_argument("--fleet-instances", type=int, default=defaults.fleet_instances)
    parser.add_argument("--fleet-latency", type=float, default=defaults.fleet_latency)
    parser.add_argument("--fleet-concurrency", type=int, default=defaults.fleet_concurrency)
    parser.add_argument("--fleet-runs", type=int, default=defaults.fleet_runs)
    parser.add_argument("--skip", action="append", default=[], choices=sorted(BENCHMARKS),
                        help="leave a benchmark out (repeatable)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "RESULTS.md")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks, write the report, return the exit status."""
    args = _parser().parse_args(argv)
    config = Config(cold_runs=args.cold_runs, import_runs=args.import_runs, warm_calls=args.warm_calls,
                    limiter_calls=args.limiter_calls, fleet_instances=args.fleet_instances,
                    fleet_latency=args.fleet_latency, fleet_concurrency=args.fleet_concurrency,
                    fleet_runs=args.fleet_runs,
                    skip=frozenset(args.skip))
    started = time.perf_counter()
    sections: list[Section] = []
    for name, bench in BENCHMARKS.items():
        if name in config.skip:
            continue
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        sections += bench(config)
    args.output.write_text(render(config, sections, time.perf_counter() - started))
    print(f"bench: wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
