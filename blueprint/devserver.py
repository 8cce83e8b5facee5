"""`python -m blueprint serve [--emulate]`: the HTTP API on loopback, for development (like `sam local start-api`).

Each HTTP request becomes an API Gateway integrated-request event for the real `App.handle`, and the integrated
response it returns becomes the HTTP answer. Not part of the deployed function: `handler.py` never imports it.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

__all__ = ["MAX_REQUEST", "DevServer", "Handle", "api_event", "is_loopback_host", "make_server", "running", "serve"]

# SCF's limit for a synchronous request event; the app itself answers 413 above 64 KiB.
MAX_REQUEST = 6 * 1024 * 1024
# A stalled client must not hold a thread forever.
SOCKET_TIMEOUT = 30.0
STAGE = "release"

Handle = Callable[[Any, Any], Any]


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and loopback addresses (`127.0.0.0/8`, `::1`)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _query(raw: str) -> dict[str, Any]:
    """API Gateway's `queryString`: one value as a string, a repeated key as a list."""
    parsed = parse_qs(raw, keep_blank_values=True)
    return {key: values[0] if len(values) == 1 else values for key, values in parsed.items()}


def _headers(items: list[tuple[str, str]]) -> dict[str, Any]:
    """Header names as sent; a repeated header becomes a list of its values."""
    headers: dict[str, Any] = {}
    for name, value in items:
        if name in headers:
            previous = headers[name]
            headers[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            headers[name] = value
    return headers


def api_event(method: str, target: str, headers: list[tuple[str, str]], body: bytes, *,
              request_id: str, source_ip: str = "127.0.0.1") -> dict[str, Any]:
    """The API Gateway integrated-request event (docs/platform-facts.md, SCF) for one HTTP request.

    A body that is not UTF-8 is sent base64-encoded with `isBase64Encoded` true, as API Gateway does.
    """
    parts = urlsplit(target)
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode("ascii"), True
    path = parts.path or "/"
    query = _query(parts.query)
    return {
        "httpMethod": method,
        "path": path,
        "headers": _headers(headers),
        "body": text,
        "isBase64Encoded": encoded,
        "queryString": query,
        "queryStringParameters": {},
        "pathParameters": {},
        "headerParameters": {},
        "stageVariables": {"stage": STAGE},
        "requestContext": {"serviceId": "service-local", "path": path, "httpMethod": method,
                           "requestId": request_id, "identity": {}, "sourceIp": source_ip, "stage": STAGE},
    }


def _context(env: Mapping[str, str], request_id: str) -> dict[str, Any]:
    """An SCF-like context for one request (API Gateway calls are synchronous, up to the function's timeout)."""
    return {"request_id": request_id, "function_name": env.get("SCF_FUNCTIONNAME", "lighthouse-blueprint"),
            "namespace": "default", "function_version": "$LATEST", "time_limit_in_ms": 900_000,
            "memory_limit_in_mb": 256, "tencentcloud_region": env.get("TENCENTCLOUD_REGION", "ap-guangzhou")}


def _answer(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Turn what the handler returned into status, headers and body, as the integrated response says.

    A value without `statusCode` is answered 200 with the value as JSON, as a Function URL does.
    """
    if not isinstance(result, Mapping) or not isinstance(result.get("statusCode"), int):
        return 200, [("Content-Type", "application/json")], orjson.dumps(result, default=str)
    headers: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        values = value if isinstance(value, list) else [value]
        headers.extend((str(name), str(item)) for item in values)
    body = result.get("body") or ""
    if not isinstance(body, str):
        body = orjson.dumps(body, default=str).decode()
    if str(result.get("isBase64Encoded")).lower() == "true":
        try:
            return int(result["statusCode"]), headers, base64.b64decode(body)
        except (binascii.Error, ValueError):
            return 502, [("Content-Type", "application/json")], _envelope("InternalError", "bad base64 body")
    return int(result["statusCode"]), headers, body.encode("utf-8", "surrogatepass")


def _envelope(code: str, message: str, request_id: str = "") -> bytes:
    return orjson.dumps({"Error": {"Code": code, "Message": message}, "RequestId": request_id})


class DevServer(ThreadingHTTPServer):
    """A threading HTTP server that feeds every request to `handle(event, context)`."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handle: Handle, env: Mapping[str, str], *, quiet: bool) -> None:
        super().__init__(address, _ApiHandler)
        self.handle = handle
        self.env = env
        self.quiet = quiet

    @property
    def url(self) -> str:
        """The base URL, e.g. `http://127.0.0.1:8080`."""
        host, port = str(self.server_address[0]), self.server_address[1]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _ApiHandler(BaseHTTPRequestHandler):
    server_version = "blueprint-devserver"
    timeout = SOCKET_TIMEOUT
    server: DevServer

    def _dispatch(self) -> None:
        request_id = str(uuid.uuid4())
        body = self._body(request_id)
        if body is None:
            return
        event = api_event(self.command, self.path, list(self.headers.items()), body,
                          request_id=request_id, source_ip=str(self.client_address[0]))
        try:
            status, headers, payload = _answer(self.server.handle(event, _context(self.server.env, request_id)))
        except Exception as err:  # the real platform answers a crashed function with a 5xx, so do we
            sys.stderr.write(f"the handler raised {type(err).__name__}: {err}\n")
            status, headers, payload = 502, [("Content-Type", "application/json")], _envelope(
                "InternalError", "the function raised", request_id)
        self._send(status, headers, payload)

    def _body(self, request_id: str) -> bytes | None:
        """The request body, or None after answering a request whose body cannot be taken."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            self._send(411, [("Content-Type", "application/json")],
                       _envelope("MissingParameter", "send a Content-Length", request_id))
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_REQUEST:
            self.close_connection = True
            self._send(413, [("Content-Type", "application/json")],
                       _envelope("RequestSizeLimitExceeded", "the request is too large", request_id))
            return None
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def __getattr__(self, name: str) -> Any:
        # Every method (TRACE, PROPFIND, ...) goes to the function, which answers 405 where it should.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)


def make_server(handle: Handle, *, host: str = "127.0.0.1", port: int = 0, env: Mapping[str, str] | None = None,
                allow_remote: bool = False, quiet: bool = False) -> DevServer:
    """A server that feeds `handle(event, context)`; call `serve_forever` on it (or use `running`).

    Raises:
        ValueError: `host` is not a loopback address and `allow_remote` is false.
        OSError: the address cannot be bound.
    """
    if not allow_remote and not is_loopback_host(host):
        raise ValueError(f"refusing to listen on {host!r}: the dev server is for loopback only "
                         "(anyone who can reach it can image instances)")
    return DevServer((host, port), handle, os.environ if env is None else env, quiet=quiet)


@contextmanager
def running(server: DevServer) -> Iterator[str]:
    """Serve in a daemon thread; yield the base URL; stop on exit."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _run(handle: Handle, env: Mapping[str, str], *, host: str, port: int, allow_remote: bool,
         banner: Callable[[str], None]) -> int:
    try:
        server = make_server(handle, host=host, port=port, env=env, allow_remote=allow_remote)
    except ValueError as err:
        sys.stderr.write(f"cannot serve: {err}\n")
        return 2
    except OSError as err:
        sys.stderr.write(f"cannot serve on {host}:{port}: {err.strerror or err}\n")
        return 2
    banner(server.url)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def serve(host: str = "127.0.0.1", port: int = 8080, emulate: bool = False, *, allow_remote: bool = False) -> int:
    """Serve the HTTP API until Ctrl-C, printing each result as a sink accepts it; returns the exit status
    (2: bad configuration or address)."""
    if not emulate:
        app = _local_app(os.environ, hint="\n(or add --emulate to use the local emulator)")
        if app is None:
            return 2
        endpoint = app.settings.api_endpoint
        where = f"cloud APIs at {endpoint}" if endpoint else "real cloud APIs"

        def real_banner(url: str) -> None:
            _warn_if_closed(app)
            print(f"serving the HTTP API on {url}/blueprints ({where}; Ctrl-C to stop)", flush=True)

        return _run(app.handle, os.environ, host=host, port=port, allow_remote=allow_remote, banner=real_banner)
    from blueprint.localrun import LOCAL_TOKEN, emulated, with_receiver  # noqa: PLC0415 (local runs only)

    with emulated(os.environ) as (emu, receiver, env):
        app = _local_app(env, add=lambda built: with_receiver(built, receiver))
        if app is None:
            return 2
        emu.scf.register(env.get("SCF_FUNCTIONNAME", "lighthouse-blueprint"), app.handle)
        # Only the documented local token is printed; a token the user set stays theirs.
        token = LOCAL_TOKEN if env.get("BLUEPRINT_HTTP_TOKEN") == LOCAL_TOKEN else "<your BLUEPRINT_HTTP_TOKEN>"

        def emulated_banner(url: str) -> None:
            _warn_if_closed(app)
            print(f"serving the HTTP API on {url}/blueprints (emulated cloud at {emu.url}, results to "
                  f"{_sinks(app)}; Ctrl-C to stop)\ntoken: {token}\ntry:   curl -s -H 'Authorization: Bearer "
                  f"{token}' -H 'Content-Type: application/json' -d '{{\"InstanceId\": \"lhins-web00001\"}}' "
                  f"{url}/blueprints", flush=True)

        return _run(app.handle, env, host=host, port=port, allow_remote=allow_remote, banner=emulated_banner)


def _local_app(env: Mapping[str, str], *, hint: str = "", add: Callable[[Any], None] | None = None) -> Any:
    """The app, with the local receiver added (`add`) and every delivery printed as it is accepted; None
    after saying what is misconfigured."""
    from blueprint.app import build_app  # noqa: PLC0415 (keeps `--help` fast)
    from blueprint.errors import BlueprintError  # noqa: PLC0415
    from blueprint.localrun import watch  # noqa: PLC0415

    try:
        app = build_app(env)
    except BlueprintError as err:
        sys.stderr.write(f"configuration error: {err.message}{hint}\n")
        return None
    if add is not None:
        add(app)
    watch(app, on_delivery=_print_delivery)
    return app


_print_lock = threading.Lock()


def _print_delivery(where: str, event: dict[str, Any]) -> None:
    """One line per accepted delivery: the sink and the whole CloudEvent."""
    line = f"delivered to {where}: {orjson.dumps(event, default=str).decode()}\n"
    with _print_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def _sinks(app: Any) -> str:
    return ", ".join(sink.where for sink in app.sinks)


def _warn_if_closed(app: Any) -> None:
    """Say at start (before the banner) that no request can pass, rather than on every refused one."""
    if app.auth.refuses_everything:
        sys.stderr.write("warning: BLUEPRINT_HTTP_TOKEN is not set: every request will be refused with 401 "
                         "(set it, or BLUEPRINT_HTTP_AUTH=none on purpose)\n")
        sys.stderr.flush()
