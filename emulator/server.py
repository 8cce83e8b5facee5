"""HTTP front: a threaded loopback server that hands API calls and control calls to the emulator."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol
from urllib.parse import urlsplit

log = logging.getLogger("emulator")

CONTROL_PREFIX = "/_emulator/"
JSON = "application/json"  # exactly this: the SDK ignores errors under any other value (§2.4)


@dataclass
class Reply:
    """An answer to send, or `drop=True` to close the connection without one."""

    status: int = 200
    body: bytes = b""
    content_type: str = JSON
    drop: bool = False


@dataclass(frozen=True)
class HttpRequest:
    """The parts of an HTTP request the emulator looks at; header names lower-cased."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


class App(Protocol):
    """What the server serves."""

    def handle_api(self, request: HttpRequest) -> Reply:
        """Answer a cloud API call."""
        ...

    def handle_control(self, request: HttpRequest) -> Reply:
        """Answer a `/_emulator/...` control call."""
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

    def _read(self) -> HttpRequest:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        parts = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        return HttpRequest(self.command, parts.path, parts.query, headers, body)

    def _serve(self) -> None:
        request = self._read()
        app = self.server.app
        control = request.path.startswith(CONTROL_PREFIX)
        reply = app.handle_control(request) if control else app.handle_api(request)
        if reply.drop:
            self.close_connection = True  # the socket closes with nothing written
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

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
