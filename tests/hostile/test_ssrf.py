"""No SSRF: outbound URLs come only from configuration, https unless loopback (or explicitly allowed), URLs
that parsers read differently are refused, and redirects are never followed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from blueprint.errors import ConfigError
from blueprint.events import Job, JobModel
from blueprint.localrun import Receiver
from blueprint.settings import load_settings
from tests.conftest import context, http_event, timer_event


@pytest.mark.parametrize("url", [
    "http://example.com/hook",                 # plain http off loopback
    "http://evil.example\\@localhost/hook",    # urllib says localhost, urllib3 (requests) connects to evil
    "http://localhost\\@evil.example/",
    "http://127.0.0.1.evil.example/",
    "http://localhost.evil.example/",
    "http://localhost@evil.example/",           # userinfo: the host is evil.example
    "http://127.1/",                            # not recognised as loopback: refused, not guessed
    "https://exa mple.com/",
    "https://example.com/\r\nX-Injected: 1",
    "ftp://example.com/",
    "file:///etc/passwd",
    "//example.com/hook",
    "https:///nohost",
])
def test_webhook_urls_that_could_reach_somewhere_else_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="BLUEPRINT_WEBHOOK_URL"):
        load_settings({"BLUEPRINT_WEBHOOK_URL": url})


@pytest.mark.parametrize("url", ["https://example.com/hook", "http://127.0.0.1:8080/h", "http://[::1]:9/h",
                                 "http://localhost/h", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc"])
def test_good_webhook_urls(url: str) -> None:
    assert load_settings({"BLUEPRINT_WEBHOOK_URL": url}).webhook_url == url


def test_plain_http_only_when_allowed_on_purpose() -> None:
    settings = load_settings({"BLUEPRINT_WEBHOOK_URL": "http://hooks.internal/x",
                              "BLUEPRINT_ALLOW_INSECURE_WEBHOOK": "true"})
    assert settings.webhook_url == "http://hooks.internal/x"


@pytest.mark.parametrize("url", ["http://api.example.com", "https://user:pw@api.example.com",
                                 "https://api.example.com/some/path", "http://evil\\@127.0.0.1"])
def test_api_endpoint_https_and_host_only(url: str) -> None:
    with pytest.raises(ConfigError, match="BLUEPRINT_API_ENDPOINT"):
        load_settings({"BLUEPRINT_API_ENDPOINT": url})


def test_api_endpoint_loopback_or_allowed() -> None:
    assert load_settings({"BLUEPRINT_API_ENDPOINT": "http://127.0.0.1:9000"}).api_endpoint
    assert load_settings({"BLUEPRINT_API_ENDPOINT": "http://emulator:9000",
                          "BLUEPRINT_ALLOW_INSECURE_API_ENDPOINT": "true"}).api_endpoint
    assert load_settings({"BLUEPRINT_API_ENDPOINT": "https://lighthouse.tencentcloudapi.com"}).api_endpoint


@pytest.mark.parametrize("field", ["WebhookUrl", "Url", "Endpoint", "CallbackUrl", "NextFunction", "Queue"])
def test_a_job_cannot_carry_a_destination(make_app, emu, receiver, field: str) -> None:
    response = make_app().handle(http_event(body={"InstanceId": "lhins-web00001", field: "http://169.254.0.23/"}),
                                 context())
    assert response["statusCode"] == 400
    assert field not in JobModel.model_fields and field not in Job.__dataclass_fields__
    assert receiver.received == []


class Redirector:
    """A webhook endpoint that answers 302 to another server."""

    def __init__(self, location: str) -> None:
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.hits += 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def target() -> Iterator[Receiver]:
    rec = Receiver().start()
    yield rec
    rec.stop()


@pytest.fixture
def redirector(target: Receiver) -> Iterator[Redirector]:
    red = Redirector(target.url)
    yield red
    red.stop()


def test_redirects_are_not_followed(make_app, emu, redirector: Redirector, target: Receiver, log_stream) -> None:
    app = make_app(BLUEPRINT_WEBHOOK_URL=redirector.url)
    response = app.handle(http_event(body={"InstanceId": "lhins-web00001"}), context())
    assert redirector.hits >= 1
    assert target.received == []  # the server the redirect pointed at got nothing
    assert "HTTP 302" in log_stream.getvalue()
    assert response["statusCode"] == 202
    assert response["headers"].get("X-Blueprint-Delivery", "").startswith("failed")


def test_redirect_on_a_timer_is_a_delivery_failure(make_app, emu, redirector: Redirector, target: Receiver) -> None:
    from blueprint.errors import DeliveryError

    app = make_app(BLUEPRINT_WEBHOOK_URL=redirector.url)
    with pytest.raises(DeliveryError):
        app.handle(timer_event({"InstanceId": "lhins-web00001"}), context())
    assert target.received == []
