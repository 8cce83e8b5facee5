"""`python -m blueprint invoke EVENT_FILE [--emulate]`, `serve`, `package` and `deploy`."""

from __future__ import annotations

import argparse
import io
import os
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, cast

import orjson

from blueprint.outcome import EXIT_USAGE

__all__ = ["EXIT_STATUSES", "main"]

EXIT_STATUSES = """exit status of invoke:
  0  done: every instance imaged, found or pruned (also a dry run, or instances handed to fan-out children)
  1  the handler raised: SCF would retry an async call (a sink did not take a result, a cloud error a retry
     can fix)
  2  nothing ran: bad event file, bad configuration (the message names the variable), no credentials
  3  refused: the event or its job cannot run (reported as .failed; a retry would not help), or HTTP 4xx
  4  failed: an instance (or a copy or share of its image) failed: the summary log line says partial or
     failed; or HTTP 5xx
The status follows the outcome of the invocation's summary log line ("invocation finished").
"""


def _context(env: Mapping[str, str]) -> dict[str, Any]:
    """A context like SCF's, for a local run."""
    return {"request_id": str(uuid.uuid4()), "function_name": env.get("SCF_FUNCTIONNAME", "lighthouse-blueprint"),
            "namespace": "default", "function_version": "$LATEST", "time_limit_in_ms": 60_000,
            "memory_limit_in_mb": 128, "tencentcloud_region": env.get("TENCENTCLOUD_REGION", "ap-guangzhou")}


def _print(title: str, value: Any) -> None:
    sys.stdout.write(f"--- {title}\n")
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


def _decode(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace")


def invoke(event_file: str, *, emulate: bool) -> int:
    """Run the handler once on an event file; print its answer, where each result went and, with the
    emulator, what it received; return the exit status (`EXIT_STATUSES`)."""
    try:
        event = orjson.loads(Path(event_file).read_bytes())
    except (OSError, orjson.JSONDecodeError) as err:
        sys.stderr.write(f"cannot read event file {event_file}: {err}\n")
        return EXIT_USAGE
    if not emulate:
        return _invoke_real(event)
    from blueprint.localrun import emulated, with_receiver  # noqa: PLC0415 (local runs only)

    if os.environ.get("BLUEPRINT_API_ENDPOINT"):
        sys.stderr.write("note: --emulate sends the cloud API calls to the embedded emulator, not to "
                         "BLUEPRINT_API_ENDPOINT\n")
    with emulated(os.environ) as (emu, receiver, env):
        built = _build(env, add=lambda app: with_receiver(app, receiver))
        if built is None:
            return EXIT_USAGE
        app, deliveries = built
        emu.scf.register(_context(env)["function_name"], app.handle)
        code = _call(app, event, env)
        emu.scf.wait_idle(timeout=30)
        _print("where each event went", deliveries.rows())
        _print(f"received by the local receiver ({receiver.url})", [_decode(r["body"]) for r in receiver.accepted()])
        _print("cloud API calls", [{"Action": c.action, "Region": c.region, "Error": c.error} for c in emu.calls])
        _print("images in the emulator", [{k: b.get(k) for k in ("BlueprintId", "BlueprintName", "BlueprintState",
                                                                  "Region")} for b in emu.lighthouse.blueprints()])
    return code


def _build(env: Mapping[str, str], *, add: Callable[[Any], None] | None = None) -> tuple[Any, Any] | None:
    """The app for a local run with every delivery recorded, or None after saying what is misconfigured."""
    from blueprint.app import build_app  # noqa: PLC0415 (keeps `--help` fast)
    from blueprint.errors import BlueprintError  # noqa: PLC0415
    from blueprint.localrun import watch  # noqa: PLC0415

    try:
        app = build_app(env)
    except BlueprintError as err:
        sys.stderr.write(f"configuration error: {err.message}\n")
        return None
    if add is not None:
        add(app)
    return app, watch(app)


def _call(app: Any, event: Any, env: Mapping[str, str]) -> int:
    """Call the handler once, print what it returned (or raised), return the exit status: the `outcome` of its
    `invocation finished` log line (read from the answer alone when the log level hides that line)."""
    from blueprint import logs  # noqa: PLC0415
    from blueprint.errors import BlueprintError  # noqa: PLC0415
    from blueprint.outcome import EXIT_RAISED, exit_status, summarize  # noqa: PLC0415

    context = _context(env)
    tap = _SummaryTap(sys.stdout, context["request_id"])
    logs.set_stream(cast("IO[str]", tap))  # a text stream: typeshed does not count TextIOBase as IO[str]
    try:
        answer = app.handle(event, context)
    except BlueprintError as err:
        _print("the handler raised (SCF would retry an async call)", {"Error": err.as_dict()})
        return EXIT_RAISED
    finally:
        logs.set_stream(None)
    _print("handler returned", answer)
    return exit_status(tap.outcome or summarize(answer))


class _SummaryTap(io.TextIOBase):
    """Passes log lines through to `out` and keeps the `outcome` of one invocation's summary line."""

    def __init__(self, out: Any, request_id: str) -> None:
        super().__init__()
        self.out = out
        self.request_id = request_id
        self.outcome: str | None = None

    def write(self, text: str) -> int:
        """Write through; note the outcome when the line is this invocation's `invocation finished`."""
        self.out.write(text)
        if '"invocation finished"' in text and self.request_id in text:
            try:
                record = orjson.loads(text)
            except orjson.JSONDecodeError:
                return len(text)
            if record.get("message") == "invocation finished" and record.get("request_id") == self.request_id:
                self.outcome = str(record.get("outcome"))
        return len(text)

    def flush(self) -> None:
        """Flush the stream written through, unless it is closed already (Python 3.13 flushes a tap that is
        being collected, maybe after the stream it wrote to was closed)."""
        if not getattr(self.out, "closed", False):
            self.out.flush()


def _invoke_real(event: Any) -> int:
    from blueprint.cloud import read_credentials  # noqa: PLC0415
    from blueprint.errors import ConfigError  # noqa: PLC0415

    try:
        read_credentials(os.environ)
    except ConfigError as err:
        sys.stderr.write(f"{err.message}\n(or add --emulate to run against the local emulator)\n")
        return EXIT_USAGE
    built = _build(os.environ)
    if built is None:
        return EXIT_USAGE
    app, deliveries = built
    code = _call(app, event, os.environ)
    _print("where each event went", deliveries.rows())
    return code


def _parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="python -m blueprint", description=__doc__, epilog=EXIT_STATUSES,
                                     formatter_class=raw)
    sub = parser.add_subparsers(dest="command", required=True)
    inv = sub.add_parser("invoke", help="run the handler once on an event file", epilog=EXIT_STATUSES,
                         formatter_class=raw, description="Run the handler once on an event file; print what it "
                         "returned,\nwhere each result went and (with --emulate) what the emulator holds.")
    inv.add_argument("event_file")
    inv.add_argument("--emulate", action="store_true",
                     help="cloud API calls go to an embedded emulator; results go to the configured sinks and to "
                          "a local webhook receiver")
    serve = sub.add_parser("serve", help="serve the HTTP API on loopback; print each result delivered",
                           epilog="exit status: 0 stopped (Ctrl-C); 2 bad configuration, or the address cannot be "
                                  "used")
    serve.add_argument("--emulate", action="store_true",
                       help="cloud API calls go to an embedded emulator; results go to the configured sinks and to "
                            "a local webhook receiver")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--allow-remote", action="store_true", help="listen on a non-loopback host on purpose")
    pkg = sub.add_parser("package", help="build the deployment zip")
    pkg.add_argument("--output", default="dist/blueprint-fn.zip")
    dep = sub.add_parser("deploy", help="apply serverless.yml through the SCF API (create or update, triggers)")
    dep.add_argument("--stage", help="the ${stage} of serverless.yml (default: its `stage`, else dev)")
    dep.add_argument("--region", help="deploy to this region instead of inputs.region")
    dep.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    dep.add_argument("--generate-token", action="store_true",
                     help="make a new BLUEPRINT_HTTP_TOKEN for the function and print it once")
    dep.add_argument("--config", default="serverless.yml", help="the serverless.yml to read")
    dep.add_argument("--package", help="deploy this zip (built by `python -m blueprint package`) instead of "
                                       "building one")
    return parser


def _deploy(args: argparse.Namespace) -> int:
    # Imported here: the deploy tool needs PyYAML (requirements-deploy.txt), the other commands do not.
    try:
        from blueprint.deploy.command import Options, deploy  # noqa: PLC0415
    except ModuleNotFoundError as err:
        sys.stderr.write(f"error: {err.name} is missing: pip install -r requirements-deploy.txt\n")
        return 2
    options = Options(config=Path(args.config), stage=args.stage, region=args.region, dry_run=args.dry_run,
                      generate_token=args.generate_token, package=Path(args.package) if args.package else None)
    return deploy(options, env=os.environ, home=Path.home(), out=sys.stdout, err=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m blueprint`."""
    args = _parser().parse_args(argv)
    if args.command == "invoke":
        return invoke(args.event_file, emulate=args.emulate)
    if args.command == "serve":
        from blueprint.devserver import serve  # noqa: PLC0415

        return serve(host=args.host, port=args.port, emulate=args.emulate, allow_remote=args.allow_remote)
    if args.command == "deploy":
        return _deploy(args)
    from blueprint.packaging import build  # noqa: PLC0415

    return build(args.output)
