"""A scriptable HTTP receiver for the sink tests: answers can carry headers and bodies, and it records the
client's TCP port so tests can see a connection being reused (keep-alive across warm invocations)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"ok": true}'
    delay: float = 0.0  # real seconds before answering (only for the per-attempt timeout test)


@dataclass
class Hook:
    """Answers POSTs from a script (then `default`), recording each request."""

    default: Answer = field(default_factory=Answer)
    script: list[Answer] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> Hook:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with hook._lock:
                    answer = hook.script.pop(0) if hook.script else hook.default
                    hook.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": body,
                                          "status": answer.status, "port": self.client_address[1]})
                if answer.delay:
                    time.sleep(answer.delay)
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A client that gave up (the per-attempt timeout test) makes the late answer hit a closed socket.
        self._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def then(self, *answers: Answer) -> None:
        with self._lock:
            self.script.extend(answers)

    def accepted(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["status"] < 300]


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook().start()
    yield server
    server.stop()
