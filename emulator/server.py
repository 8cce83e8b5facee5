"""HTTP front: a threaded loopback server that hands API calls, control calls and Function URL traffic on."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol
from urllib.parse import urlsplit

log = logging.getLogger("emulator")

CONTROL_PREFIX = "/_emulator/"
FUNCTION_URL_PREFIX = "/_fn/"
JSON = "application/json"  # exactly this: the SDK ignores errors under any other value (emulator/README.md)


@dataclass
class Reply:
    """An answer to send, or `drop=True` to close the connection without one."""

    status: int = 200
    body: bytes = b""
    content_type: str = JSON
    drop: bool = False
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class HttpRequest:
    """The parts of an HTTP request the emulator looks at; header names lower-cased."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    client: str = ""


class App(Protocol):
    """What the server serves."""

    def handle_api(self, request: HttpRequest) -> Reply:
        """Answer a cloud API call."""
        ...

    def handle_control(self, request: HttpRequest) -> Reply:
        """Answer a `/_emulator/...` control call."""
        ...

    def handle_function_url(self, request: HttpRequest) -> Reply:
        """Answer a request to a Function URL (`/_fn/<url-id>/...`)."""
        ...


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real endpoint; the SDK reuses its session
    # Replies are written in pieces; with Nagle on, a keep-alive client waits ~40 ms for a delayed ACK.
    disable_nagle_algorithm = True
    server: _Server

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    # Function URLs take any method; the API and the control path only GET and POST.
    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_OPTIONS(self) -> None:
        self._serve()

    def _read(self) -> HttpRequest:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        parts = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        return HttpRequest(self.command, parts.path, parts.query, headers, body, str(self.client_address[0]))

    def _route(self, request: HttpRequest) -> Reply:
        app = self.server.app
        if request.path.startswith(FUNCTION_URL_PREFIX):
            return app.handle_function_url(request)
        if request.method not in ("GET", "POST"):
            return Reply(status=405, body=b'{"error": "method not allowed"}')
        if request.path.startswith(CONTROL_PREFIX):
            return app.handle_control(request)
        return app.handle_api(request)

    def _serve(self) -> None:
        request = self._read()
        reply = self._route(request)
        if reply.drop:
            self.close_connection = True  # the socket closes with nothing written
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        if request.method != "HEAD":
            self.wfile.write(reply.body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The listen backlog: the default of 5 drops connections a busy client opens side by side (a fan-out's
    # children each keep several), and a dropped SYN costs the client a one-second retransmit.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: App) -> None:
        super().__init__(address, _Handler)
        self.app = app


class HttpServer:
    """The threaded server running in a daemon thread."""

    def __init__(self, app: App, host: str, port: int) -> None:
        self._server = _Server((host, port), app)
        # A short poll interval keeps stop() (and so every test teardown) fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="emulator-http",
            daemon=True,
        )

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually bound."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
