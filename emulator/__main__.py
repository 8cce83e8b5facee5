"""`python -m emulator`: serve the emulator until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Sequence

from emulator.core import Emulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__,
                                     epilog="Flags win over the state file. Exit status: 0 stopped (Ctrl-C, "
                                            "SIGTERM); 2 a bad state file, or the address cannot be used.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--state", help="JSON state file (default: the sample state)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every call")
    parser.add_argument("--image-seconds", type=float, default=30.0, help="emulated seconds to make an image")
    parser.add_argument("--quota", type=int, default=None,
                        help="custom-image quota of every region, over the state file's (default: the state's, "
                             "else 20)")
    parser.add_argument("--function-seconds", type=float, default=1.0,
                        help="emulated seconds an SCF function stays Creating/Updating")
    parser.add_argument("--runtime", action="append", default=[], metavar="NAME=PYTHON",
                        help="interpreter for an SCF runtime, e.g. Python3.10=/usr/bin/python3.10 (default: PATH)")
    parser.add_argument("--command-seconds", type=float, default=1.0, help="emulated seconds a TAT command runs")
    parser.add_argument(
        "--deliver-seconds", type=float, default=0.0, help="emulated seconds before a TAT task starts running"
    )
    return parser


def _runtimes(items: Sequence[str]) -> dict[str, str]:
    runtimes = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--runtime wants NAME=PYTHON, got {item!r}")
        runtimes[name] = path
    return runtimes


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, serve, and return the exit status (2: a bad state file, or the address is taken)."""
    args = _parser().parse_args(argv)
    emu = _emulator(args)
    if emu is None:
        return 2
    try:
        emu.start()
    except OSError as err:
        sys.stderr.write(f"cannot serve on {args.host}:{args.port}: {err.strerror or err}\n")
        return 2
    stop = threading.Event()
    # SIGTERM from a test harness should end as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with emu:
        print(f"emulator listening on {emu.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    emu.scf.shutdown()
    return 0


def _emulator(args: argparse.Namespace) -> Emulator | None:
    """The emulator the flags describe (flags win over the state file), or None after saying why not."""
    try:
        return Emulator(
            args.state,
            host=args.host,
            port=args.port,
            latency=args.latency,
            image_seconds=args.image_seconds,
            quota=args.quota,
            function_seconds=args.function_seconds,
            runtimes=_runtimes(args.runtime),
            command_seconds=args.command_seconds,
            deliver_seconds=args.deliver_seconds,
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        if args.state is None:
            raise
        sys.stderr.write(f"cannot load the state file {args.state}: {err}\n")
        return None


if __name__ == "__main__":
    sys.exit(main())
