"""Local runs without an account: the embedded emulator, a webhook receiver, and the environment for both.

Used by `python -m blueprint invoke|serve --emulate` and by the tests. Not part of the deployed function's
path: nothing here is imported by `handler.py`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["LOCAL_TOKEN", "Receiver", "emulated"]

# The bearer token the sample HTTP events carry; only ever accepted by an emulated local run.
LOCAL_TOKEN = "local-dev-token"  # noqa: S105 (a documented local-only value, not a secret)


@dataclass
class Receiver:
    """A local webhook receiver on loopback that records every POST (and can be told to fail)."""

    host: str = "127.0.0.1"
    received: list[dict[str, Any]] = field(default_factory=list)
    _failures: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        """Serve in a daemon thread on an ephemeral port."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive like a real receiver: the function's session reuses its connections.
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status = receiver._next_status()
                with receiver._lock:
                    receiver.received.append({"path": self.path, "headers": dict(self.headers.items()),
                                              "body": body, "status": status})
                reply = b'{"ok": true}' if status < 300 else b'{"ok": false}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        """The URL to configure as BLUEPRINT_WEBHOOK_URL."""
        assert self._server is not None  # noqa: S101 (started first)
        return f"http://{self.host}:{self._server.server_address[1]}/hook"

    def fail_next(self, times: int, status: int = 503) -> None:
        """Answer the next `times` POSTs with `status`."""
        with self._lock:
            self._failures.extend([status] * times)

    def accepted(self) -> list[dict[str, Any]]:
        """The POSTs that were answered 2xx."""
        with self._lock:
            return [r for r in self.received if r["status"] < 300]

    def _next_status(self) -> int:
        with self._lock:
            return self._failures.pop(0) if self._failures else 200


@contextmanager
def emulated(env: Mapping[str, str], **emulator_options: Any) -> Iterator[tuple[Any, Receiver, dict[str, str]]]:
    """Start the emulator (sample instances) and a receiver; yield them and the environment that uses them."""
    from emulator import SECRET_ID, SECRET_KEY, Emulator  # noqa: PLC0415 (dev-only dependency)

    emu = Emulator(**{"image_seconds": 5.0, **emulator_options}).start()
    receiver = Receiver().start()
    local = {
        **env,
        "BLUEPRINT_API_ENDPOINT": emu.url,
        "TENCENTCLOUD_SECRETID": SECRET_ID,
        "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
        "BLUEPRINT_WEBHOOK_URL": receiver.url,
    }
    local.setdefault("TENCENTCLOUD_REGION", "ap-guangzhou")
    if "BLUEPRINT_HTTP_TOKEN" not in env and env.get("BLUEPRINT_HTTP_AUTH", "token") == "token":
        local["BLUEPRINT_HTTP_TOKEN"] = LOCAL_TOKEN
    try:
        yield emu, receiver, local
    finally:
        receiver.stop()
        emu.stop()
