"""Issue 16, items 1, 8 and 9: local runs keep the user's settings and say what they did.

`invoke --emulate` refuses a bad BLUEPRINT_WEBHOOK_URL as the cloud run does and delivers to a good one,
with the local receiver beside it, saying where each event went; `serve` says which cloud it talks to,
warns at start when no request can pass, and prints each result as it is delivered.
"""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import requests

from blueprint.localrun import LOCAL_TOKEN, Receiver
from emulator import SECRET_ID, SECRET_KEY, Emulator
from tests.conftest import context, received_events, timer_event

ROOT = Path(__file__).resolve().parents[2]
NO_TOKEN_WARNING = "every HTTP request is refused"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TENCENTCLOUD_", "BLUEPRINT_"))}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "blueprint", *args], cwd=ROOT, env=env,  # noqa: S603
                          capture_output=True, text=True, timeout=120, check=False)


def section(out: str, title: str) -> object:
    """The JSON printed under `--- <title>`."""
    match = re.search(rf"^--- {re.escape(title)}[^\n]*\n(.*?)(?=^--- |\Z)", out, re.S | re.M)
    assert match, f"no section {title!r} in:\n{out[-3000:]}"
    return orjson.loads(match.group(1))


# ---- item 1: --emulate keeps the configured webhook --------------------------------------------------------


@pytest.mark.parametrize("emulate", [True, False])
def test_a_bad_webhook_url_is_refused_with_and_without_emulate(emulate: bool) -> None:
    # Without --emulate the credentials and endpoint are placeholders: the run must stop before any call.
    env = clean_env(BLUEPRINT_WEBHOOK_URL="ftp://x")
    if not emulate:
        env |= {"TENCENTCLOUD_SECRETID": "AKIDplaceholder", "TENCENTCLOUD_SECRETKEY": "placeholder",
                "BLUEPRINT_API_ENDPOINT": "http://127.0.0.1:9"}
    done = cli("invoke", "events/timer.json", *(["--emulate"] if emulate else []), env=env)
    assert done.returncode == 2, done.stdout[-2000:]
    assert "BLUEPRINT_WEBHOOK_URL" in done.stderr and "ftp://x" not in done.stderr
    assert "--- handler returned" not in done.stdout


def test_a_good_webhook_url_still_gets_the_results_beside_the_local_receiver() -> None:
    mine = Receiver().start()
    try:
        done = cli("invoke", "events/timer.json", "--emulate", env=clean_env(BLUEPRINT_WEBHOOK_URL=mine.url))
        assert done.returncode == 0, done.stderr
        events = received_events(mine)
    finally:
        mine.stop()
    # The sample instance has a data disk: stopped, its point and image made, followed to NORMAL, started again.
    assert [e["type"].rsplit(".", 1)[1] for e in events] == ["created", "ready"]
    assert events[1]["data"]["DiskBackups"][0]["DiskId"] == "lhdisk-webdata1"
    rows = section(done.stdout, "where each event went")
    port = mine.url.split(":")[2].split("/")[0]
    assert [(r["id"], r["type"]) for r in rows] == [(e["id"], e["type"].rsplit(".", 1)[1]) for e in events]
    for row in rows:
        assert [where.split(" ")[0] for where in row["delivered to"]] == ["webhook", "local"]
        assert row["delivered to"][0] == f"webhook http://127.0.0.1:{port}/***"
    local = section(done.stdout, "received by the local receiver")
    assert [e["id"] for e in local] == [e["id"] for e in events]


def test_a_webhook_that_is_down_is_listed_for_every_event_it_did_not_get() -> None:
    done = cli("invoke", "events/timer.json", "--emulate", env=clean_env(BLUEPRINT_WEBHOOK_URL="http://127.0.0.1:9/hook"))
    assert done.returncode == 1, done.stdout[-2000:]  # the handler raised: SCF would retry
    rows = section(done.stdout, "where each event went")
    assert [r["type"] for r in rows] == ["created", "ready"]
    for row in rows:
        assert [where.split(" ")[0] for where in row["delivered to"]] == ["local"]
        [missed] = row["not delivered to"]
        assert missed.startswith("webhook http://127.0.0.1:9/***")
    assert "not attempted" not in rows[0]["not delivered to"][0]
    assert "not attempted: it refused an earlier event" in rows[1]["not delivered to"][0]


def test_without_a_webhook_the_local_receiver_is_the_only_sink() -> None:
    done = cli("invoke", "events/timer.json", "--emulate", env=clean_env())
    assert done.returncode == 0, done.stderr
    rows = section(done.stdout, "where each event went")
    assert rows
    for row in rows:
        [where] = row["delivered to"]
        assert where.startswith("local receiver http://127.0.0.1:")


# ---- item 8: the HTTP token warning only where HTTP is served -------------------------------------------


def test_a_timer_run_without_an_http_token_does_not_warn_about_http(make_app, log_stream) -> None:
    make_app(BLUEPRINT_HTTP_TOKEN=None).handle(timer_event({"InstanceId": "lhins-web00001"}), context())
    assert NO_TOKEN_WARNING not in log_stream.getvalue()


class Served:
    """`python -m blueprint serve` in a child process; its stdout read line by line with a deadline."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "blueprint", "serve", "--port", "0", *args],  # noqa: S603
                                     cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self._pending = b""

    def until(self, pattern: str, timeout: float = 30.0) -> str:
        """Read stdout until a line matches; return it (raw reads: a buffered reader hides lines from select)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        selector = selectors.DefaultSelector()
        selector.register(fd, selectors.EVENT_READ)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            while b"\n" in self._pending:
                raw, self._pending = self._pending.split(b"\n", 1)
                line = raw.decode()
                self.lines.append(line)
                if re.search(pattern, line):
                    return line
            if selector.select(timeout=max(0.0, end - time.monotonic())):
                chunk = os.read(fd, 65536)
                assert chunk, "serve exited:\n" + "\n".join(self.lines)
                self._pending += chunk
        raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(self.lines))

    def stop(self) -> str:
        """Stop the server; return its stderr."""
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=10)
        return err.decode()


@pytest.fixture
def served_emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


def test_serve_pointed_at_a_local_endpoint_says_so_and_warns_without_a_token(served_emulator: Emulator) -> None:
    env = clean_env(TENCENTCLOUD_SECRETID=SECRET_ID, TENCENTCLOUD_SECRETKEY=SECRET_KEY,
                    BLUEPRINT_API_ENDPOINT=served_emulator.url)
    server = Served(env=env)
    try:
        banner = server.until(r"serving the HTTP API")
    finally:
        err = server.stop()
    assert f"cloud APIs at {served_emulator.url}" in banner and "real cloud" not in banner
    assert "BLUEPRINT_HTTP_TOKEN is not set" in err


def test_serve_emulate_prints_each_delivered_result() -> None:
    server = Served("--emulate", env=clean_env())
    try:
        base = re.search(r"(http://127\.0\.0\.1:\d+)/blueprints", server.until(r"serving the HTTP API"))
        assert base
        made = requests.post(f"{base.group(1)}/blueprints", json={"InstanceId": "lhins-web00001"},
                             headers={"Authorization": f"Bearer {LOCAL_TOKEN}"}, timeout=30)
        assert made.status_code == 202, made.text
        line = server.until(r"^delivered to local receiver ")
    finally:
        err = server.stop()
    event = orjson.loads(line.split(": ", 1)[1])
    assert event["type"] == "com.tencentcloud.lighthouse.blueprint.created"
    assert event["data"]["BlueprintId"] == made.json()["BlueprintId"]
    assert "BLUEPRINT_HTTP_TOKEN is not set" not in err
