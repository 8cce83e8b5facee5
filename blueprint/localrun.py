"""Local runs without an account: the embedded emulator, a webhook receiver, and the environment for both;
and, for every local run, a record of where each result went.

Used by `python -m blueprint invoke|serve` and by the tests. Not part of the deployed function's path:
nothing here is imported by `handler.py`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import requests

from blueprint.errors import BlueprintError
from blueprint.retry import Deadline
from blueprint.settings import mask_url
from blueprint.sinks import Sink
from blueprint.sinks.webhook import WebhookSink

if TYPE_CHECKING:
    from blueprint.app import App

__all__ = ["LOCAL_TOKEN", "RECEIVER_SINK", "Answer", "Deliveries", "Receiver", "emulated", "watch", "with_receiver"]

# The bearer token the sample HTTP events carry; only ever accepted by an emulated local run.
LOCAL_TOKEN = "local-dev-token"  # noqa: S105 (a documented local-only value, not a secret)
# The name the local receiver's sink has in logs and delivery reports (the configured webhook is `webhook`).
RECEIVER_SINK = "local receiver"


class _BackloggedServer(ThreadingHTTPServer):
    # The default backlog of 5 drops connections that parallel senders open at once (a dropped SYN costs the
    # sender a one-second retransmit); a real webhook endpoint accepts them.
    request_queue_size = 128


@dataclass
class Answer:
    """How the receiver answers one POST."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    body: bytes = b'{"ok": true}'
    delay: float = 0.0  # real seconds before answering (for per-attempt timeout tests)


@dataclass
class Receiver:
    """A local webhook receiver on loopback: answers POSTs from a script (then `default`), records each one
    (with the client's port, so tests can see a kept-alive connection being reused)."""

    host: str = "127.0.0.1"
    default: Answer = field(default_factory=Answer)
    script: list[Answer] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
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
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    answer = receiver.script.pop(0) if receiver.script else receiver.default
                    receiver.received.append({"path": self.path, "headers": dict(self.headers.items()),
                                              "body": body, "status": answer.status, "port": self.client_address[1]})
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

        self._server = _BackloggedServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        # A client that gave up (a timeout test) makes a late answer hit a closed socket: not an error here.
        self._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
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

    def then(self, *answers: Answer) -> None:
        """Answer the next POSTs with these, in order."""
        with self._lock:
            self.script.extend(answers)

    def fail_next(self, times: int, status: int = 503) -> None:
        """Answer the next `times` POSTs with `status`."""
        self.then(*[Answer(status, body=b'{"ok": false}') for _ in range(times)])

    def accepted(self) -> list[dict[str, Any]]:
        """The POSTs that were answered 2xx."""
        with self._lock:
            return [r for r in self.received if r["status"] < 300]


@contextmanager
def emulated(env: Mapping[str, str], **emulator_options: Any) -> Iterator[tuple[Any, Receiver, dict[str, str]]]:
    """Start the emulator (sample instances) and a receiver; yield them and the environment for a local run.

    The environment sends every cloud API call to the emulator, with its credentials. Everything else the
    user set stays as set, BLUEPRINT_WEBHOOK_URL included: a bad value is refused as it would be in the
    cloud, a good one still gets the results. The receiver is not in the environment: `with_receiver` adds
    it to the app as a second webhook, beside the configured sinks.
    """
    from emulator import DEFAULT_UIN, SECRET_ID, SECRET_KEY, Emulator  # noqa: PLC0415 (local runs only)

    # Short, so the README's first command (which stops, backs up, images and starts again) answers in seconds.
    emu = Emulator(**{"image_seconds": 2.0, "backup_seconds": 2.0, **emulator_options}).start()
    receiver = Receiver().start()
    local = {
        **env,
        "BLUEPRINT_API_ENDPOINT": emu.url,
        "TENCENTCLOUD_SECRETID": SECRET_ID,
        "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
    }
    local.pop("TENCENTCLOUD_SESSIONTOKEN", None)
    local.setdefault("TENCENTCLOUD_REGION", "ap-guangzhou")
    # The emulated account (SCF's context carries it as tencentcloud_uin; local contexts do not).
    local.setdefault("BLUEPRINT_ACCOUNT_ID", DEFAULT_UIN)
    if "BLUEPRINT_HTTP_TOKEN" not in env and env.get("BLUEPRINT_HTTP_AUTH", "token") == "token":
        local["BLUEPRINT_HTTP_TOKEN"] = LOCAL_TOKEN
    try:
        yield emu, receiver, local
    finally:
        receiver.stop()
        emu.stop()


def with_receiver(app: App, receiver: Receiver) -> None:
    """Add the local receiver to the app's sinks, beside the configured ones (unsigned CloudEvents)."""
    app.sinks.append(WebhookSink(url=receiver.url, session=requests.Session(), clock=app.clock,
                                 timeout=app.settings.webhook_timeout, name=RECEIVER_SINK))


@dataclass
class Deliveries:
    """Where each event went in a local run: every sink of the app reports what it accepted or refused.

    `on_delivery(where, event)` is called for each accepted delivery (`serve` prints them as they happen).
    """

    on_delivery: Callable[[str, dict[str, Any]], None] | None = None
    _events: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Per event id, the sinks that were tried; and the sinks that refused an event, which the function does not
    # try again in the same invocation.
    _tried: dict[str, set[str]] = field(default_factory=dict)
    _failed: dict[str, None] = field(default_factory=dict)

    def record(self, where: str, event: dict[str, Any], error: str | None) -> None:
        """Note one delivery of one event (error: why the sink did not accept it)."""
        with self._lock:
            key = str(event.get("id"))
            row = self._events.setdefault(key, {
                "type": str(event.get("type", "")).rpartition(".blueprint.")[2], "subject": event.get("subject"),
                "id": event.get("id"), "delivered to": [], "not delivered to": []})
            self._tried.setdefault(key, set()).add(where)
            if error is None:
                row["delivered to"].append(where)
            else:
                row["not delivered to"].append(f"{where} ({error})")
                self._failed[where] = None
        if error is None and self.on_delivery is not None:
            self.on_delivery(where, event)

    def rows(self) -> list[dict[str, Any]]:
        """One row per event, in the order they were first sent (empty lists left out). A sink that refused an
        earlier event was not tried again for the later ones: it is listed for them as not attempted."""
        with self._lock:
            return [{k: v for k, v in self._with_skipped(key, row).items() if v != []}
                    for key, row in self._events.items()]

    def _with_skipped(self, key: str, row: dict[str, Any]) -> dict[str, Any]:
        skipped = [f"{where} (not attempted: it refused an earlier event of this invocation)"
                   for where in self._failed if where not in self._tried[key]]
        return {**row, "not delivered to": [*row["not delivered to"], *skipped]}


@dataclass
class _Watched:
    """A sink whose deliveries are recorded; it sends exactly as the sink it wraps."""

    sink: Sink
    where: str
    deliveries: Deliveries

    @property
    def name(self) -> str:
        return self.sink.name

    def send(self, event: dict[str, Any], body: bytes, deadline: Deadline) -> None:
        """Send through the wrapped sink and record the result.

        Raises:
            BlueprintError: whatever the wrapped sink raised (DeliveryError when it did not accept).
        """
        try:
            self.sink.send(event, body, deadline)
        except BlueprintError as err:
            self.deliveries.record(self.where, event, err.message)
            raise
        self.deliveries.record(self.where, event, None)


def watch(app: App, on_delivery: Callable[[str, dict[str, Any]], None] | None = None) -> Deliveries:
    """Record every delivery of the app's sinks from now on; returns the record."""
    deliveries = Deliveries(on_delivery)
    app.sinks[:] = [_Watched(sink, _where(sink), deliveries) for sink in app.sinks]
    return deliveries


def _where(sink: Sink) -> str:
    """A sink and its destination, as a local run prints it (a webhook's URL without its path or query,
    which may hold a robot's key; the local receiver's in full)."""
    url = getattr(sink, "url", None)
    if isinstance(url, str):
        return f"{sink.name} {url if sink.name == RECEIVER_SINK else mask_url(url)}"
    target = getattr(sink, "target", None)
    if target is None:
        return sink.name
    if hasattr(target, "namespace"):
        return f"{sink.name} {target.namespace}/{target.name}:{target.qualifier}"
    return f"{sink.name} {target}"
