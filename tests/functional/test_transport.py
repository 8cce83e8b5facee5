"""The SDK clients' transport: what requests would read from the environment on every call is read once, when
a client is built (issue 18, warm path). Proxies still work as the SDK and requests read them; a ~/.netrc
entry for the API's host no longer replaces the TC3 signature."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.lighthouse.v20200324 import models
from tencentcloud.lighthouse.v20200324.lighthouse_client import LighthouseClient

from blueprint.cloud import ClientCache, Credentials, read_credentials
from tests.conftest import base_env, context, timer_event

JOB = {"InstanceId": "lhins-web00001"}


class ForwardProxy:
    """A plain HTTP forward proxy (absolute-form request targets), recording the URLs it forwarded."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                target = urlsplit(self.path)
                proxy.seen.append(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upstream = http.client.HTTPConnection(target.hostname or "", target.port, timeout=10)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection",)}
                upstream.request("POST", target.path or "/", body, headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream.close()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    server = ForwardProxy()
    yield server
    server.close()


@pytest.fixture
def clean_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def _client(emu: Any) -> Any:
    cache = ClientCache(emu.url)
    cache.use(read_credentials(base_env(emu, None)))
    return cache.get("lighthouse", "ap-guangzhou", LighthouseClient)


def test_a_netrc_entry_for_the_api_host_does_not_replace_the_signature(
        emu: Any, make_app: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine {urlsplit(emu.url).hostname} login someone password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    # The hazard: a stock SDK client lets requests add basic auth from the entry, over the TC3 Authorization.
    stock = LighthouseClient(_client(emu).credential, "ap-guangzhou", _client(emu).profile)
    with pytest.raises(TencentCloudSDKException, match="AuthFailure"):
        stock.DescribeBlueprints(models.DescribeBlueprintsRequest())
    emu.reset_calls()

    answer = make_app().handle(timer_event(JOB), context())

    assert answer["Results"][0]["BlueprintId"] in {b["BlueprintId"] for b in emu.lighthouse.blueprints()}, answer
    assert not [c for c in emu.calls if c.error]


@pytest.mark.usefixtures("clean_proxies")
@pytest.mark.parametrize("variable", ["ALL_PROXY", "all_proxy", "HTTP_PROXY"])
def test_a_proxy_from_the_environment_carries_every_call(
        emu: Any, make_app: Any, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    # The emulator speaks http: HTTP_PROXY is the SDK's own reading; ALL_PROXY only requests reads.
    monkeypatch.setenv(variable, proxy.url)

    answer = make_app().handle(timer_event(JOB), context())

    assert answer["Results"][0]["BlueprintId"] in {b["BlueprintId"] for b in emu.lighthouse.blueprints()}, answer
    # Every cloud call went through it (and the webhook's delivery too: requests reads the proxy for it).
    assert len([url for url in proxy.seen if url.startswith(emu.url)]) == len(emu.calls) >= 3


@pytest.mark.usefixtures("clean_proxies")
@pytest.mark.parametrize(("variable", "entry"), [("ALL_PROXY", "host"), ("ALL_PROXY", "host:port"),
                                                 ("HTTP_PROXY", "host"), ("HTTP_PROXY", "host:port")])
def test_no_proxy_for_the_api_host_bypasses_the_proxy(emu: Any, make_app: Any, proxy: ForwardProxy,
                                                      monkeypatch: pytest.MonkeyPatch, *, variable: str,
                                                      entry: str) -> None:
    monkeypatch.setenv(variable, proxy.url)
    host = urlsplit(emu.url).hostname if entry == "host" else urlsplit(emu.url).netloc
    monkeypatch.setenv("NO_PROXY", f"example.com, {host}")

    answer = make_app().handle(timer_event(JOB), context())

    assert answer["Results"][0]["BlueprintId"] in {b["BlueprintId"] for b in emu.lighthouse.blueprints()}, answer
    assert [url for url in proxy.seen if url.startswith(emu.url)] == []  # (the webhook's port is not named)


@pytest.mark.usefixtures("clean_proxies")
def test_the_environment_is_read_when_the_client_is_built_not_on_every_call(
        emu: Any, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client(emu)
    client.call("DescribeBlueprints", {})
    monkeypatch.setenv("ALL_PROXY", proxy.url)  # set after the client was built: a warm container's client keeps
    client.call("DescribeBlueprints", {})       # what it read (a changed environment rebuilds the App)

    assert proxy.seen == []
    assert client.request.conn._session.trust_env is False
    assert _client(emu).call("DescribeBlueprints", {}) and len(proxy.seen) == 1  # a new client reads it


@pytest.mark.usefixtures("clean_proxies")
@pytest.mark.parametrize(("no_proxy", "proxied"), [
    (".tencentcloudapi.com", False), ("tencentcloudapi.com", False), ("lighthouse.tencentcloudapi.com", False),
    ("*", False), ("example.com", True), ("", True)])
def test_no_proxy_is_read_as_requests_reads_it_for_the_real_endpoint(
        monkeypatch: pytest.MonkeyPatch, no_proxy: str, proxied: bool) -> None:
    # The SDK's own test is a substring of the host: a domain entry never matched, and HTTPS_PROXY was used.
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    cache = ClientCache(None)
    cache.use(Credentials("AKIDexample", "key", None))
    conn = cache.get("lighthouse", "ap-guangzhou", LighthouseClient).request.conn
    assert bool(conn.proxy) is proxied
    if proxied:
        assert conn.proxy["https"] == "http://proxy.example:3128"
