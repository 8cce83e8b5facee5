"""`python -m blueprint serve`: HTTP requests become API Gateway events for the real App, answers come back."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from blueprint.app import build_app
from blueprint.devserver import api_event, make_server, running
from blueprint.localrun import LOCAL_TOKEN, emulated

ROOT = Path(__file__).resolve().parents[2]
AUTH = {"Authorization": f"Bearer {LOCAL_TOKEN}"}


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with emulated({}) as (_emu, _receiver, env):
        app = build_app(env)
        with running(make_server(app.handle, env=env, quiet=True)) as base:
            yield base


def test_post_then_get(url: str) -> None:
    made = requests.post(f"{url}/blueprints", json={"InstanceId": "lhins-web00001"}, headers=AUTH, timeout=30)
    assert made.status_code == 202, made.text
    assert made.headers["Content-Type"] == "application/json"
    blueprint_id = made.json()["BlueprintId"]
    got = requests.get(f"{url}/blueprints/{blueprint_id}", headers=AUTH, timeout=30)
    assert got.status_code == 200 and got.json()["BlueprintId"] == blueprint_id


def test_without_token_401_with_the_envelope(url: str) -> None:
    answer = requests.post(f"{url}/blueprints", json={"InstanceId": "lhins-web00001"}, timeout=30)
    assert answer.status_code == 401
    assert answer.json()["Error"]["Code"] == "AuthFailure" and answer.json()["RequestId"]


def test_stage_prefix_unknown_method_and_bad_body(url: str) -> None:
    assert requests.get(f"{url}/release/blueprints/lhbp-nothere1", headers=AUTH, timeout=30).status_code == 404
    odd = requests.request("PROPFIND", f"{url}/blueprints", headers=AUTH, timeout=30)
    assert odd.status_code == 405 and odd.headers["Allow"] == "GET, POST"
    bad = requests.post(f"{url}/blueprints", data=b"\xff\xfe", headers={**AUTH, "Content-Type": "application/json"},
                        timeout=30)
    assert bad.status_code == 400


def test_event_shape() -> None:
    event = api_event("POST", "/release/blueprints?Region=ap-guangzhou&a=1&a=2", [("X-A", "1"), ("X-A", "2")],
                      b"\xff", request_id="rid")
    assert event["httpMethod"] == "POST" and event["path"] == "/release/blueprints"
    assert event["queryString"] == {"Region": "ap-guangzhou", "a": ["1", "2"]}
    assert event["headers"] == {"X-A": ["1", "2"]}
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\xff"
    assert event["requestContext"]["requestId"] == "rid" and event["requestContext"]["stage"] == "release"
    assert api_event("GET", "/", [], "é".encode(), request_id="r")["body"] == "é"


def test_refuses_a_non_loopback_host() -> None:
    with pytest.raises(ValueError, match="loopback"):
        make_server(lambda e, c: {}, host="0.0.0.0")  # noqa: S104 (the point of the test)


def test_cli_serve_emulate_prints_url_and_token() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLUEPRINT_", "TENCENTCLOUD_"))}
    proc = subprocess.Popen([sys.executable, "-m", "blueprint", "serve", "--emulate", "--port", "0"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        token_line = proc.stdout.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+)/blueprints", banner)
        assert found, banner
        assert token_line.strip() == f"token: {LOCAL_TOKEN}"
        answer = requests.post(f"{found.group(1)}/blueprints", json={"InstanceId": "lhins-web00001"},
                               headers=AUTH, timeout=30)
        assert answer.status_code == 202, answer.text
    finally:
        proc.terminate()
        proc.wait(timeout=10)
