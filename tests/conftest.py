"""Shared fixtures: the emulator (real SDK over HTTP), a webhook receiver, and apps wired to both.

Tests never sleep for real: `EmuClock.sleep` moves a virtual offset and the emulator's clock together, so
a 30-second image completes instantly while deadlines still see the time pass.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from blueprint import logs
from blueprint.app import App, build_app
from blueprint.localrun import LOCAL_TOKEN, Receiver
from blueprint.retry import Clock
from emulator import SECRET_ID, SECRET_KEY, Emulator


def _longrun_wanted(config: pytest.Config) -> bool:
    expr = str(config.getoption("-m") or "")
    return os.environ.get("BLUEPRINT_LONGRUN") == "1" or ("longrun" in expr and "not longrun" not in expr)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`@pytest.mark.longrun` tests (thousands of fuzz cases, 200-child fan-outs) run only when asked for;
    `@pytest.mark.python310` tests only where a Python 3.10 interpreter can run the deployed package."""
    if not _longrun_wanted(config):
        skip = pytest.mark.skip(reason="long run: use `pytest -m longrun` or BLUEPRINT_LONGRUN=1")
        for item in items:
            if "longrun" in item.keywords:
                item.add_marker(skip)
    if any("python310" in item.keywords for item in items) and python310() is None:
        no_310 = pytest.mark.skip(reason="the package is built for SCF's Python3.10 (cp310 wheels): running it needs "
                                  "a Python 3.10 interpreter, and there is none here (put python3.10 on PATH)")
        for item in items:
            if "python310" in item.keywords:
                item.add_marker(no_310)


@functools.cache
def python310() -> str | None:
    """An interpreter of SCF's Python3.10 runtime: this one, or a working `python3.10` on PATH; None without."""
    if sys.version_info[:2] == (3, 10):
        return sys.executable
    found = shutil.which("python3.10")
    check = [found or "", "-c", "import sys; sys.exit(sys.version_info[:2] != (3, 10))"]
    ok = found is not None and subprocess.run(  # noqa: S603 (our own fixed command)
        check, capture_output=True, timeout=30, check=False).returncode == 0
    return found if ok else None


class FrozenClock(Clock):
    """Time stands still except when the code under test sleeps: every budget is exact, every wait recorded."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class EmuClock(Clock):
    """Real time plus a virtual offset; sleeping advances the offset and the emulator's clock."""

    def __init__(self, emu: Emulator | None = None) -> None:
        self.emu = emu
        self.offset = 0.0
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def time(self) -> float:
        return time.time() + self.offset

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._lock:
            self.offset += seconds
            self.slept.append(seconds)
        if self.emu is not None:
            self.emu.advance(seconds)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(image_seconds=30.0) as emulator:
        yield emulator


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver().start()
    yield rec
    rec.stop()


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    logs.set_stream(stream)
    yield stream
    logs.set_stream(None)


def base_env(emu: Emulator, receiver: Receiver | None) -> dict[str, str]:
    env = {
        "TENCENTCLOUD_SECRETID": SECRET_ID,
        "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
        "TENCENTCLOUD_SESSIONTOKEN": "emulator-session-token",
        "TENCENTCLOUD_REGION": "ap-guangzhou",
        "BLUEPRINT_API_ENDPOINT": emu.url,
        "BLUEPRINT_HTTP_TOKEN": LOCAL_TOKEN,
        # The sample instances have data disks; the suites written before data-disk points test other things
        # and keep their one-image-per-run shape. tests/functional/test_data_disks.py removes this (`None`).
        "BLUEPRINT_DATA_DISKS": "none",
    }
    if receiver is not None:
        env["BLUEPRINT_WEBHOOK_URL"] = receiver.url
    return env


@pytest.fixture
def make_app(emu: Emulator, receiver: Receiver, log_stream: io.StringIO) -> Callable[..., App]:
    """`make_app(**env)`: an App on the emulator and receiver; `None` values remove a variable."""

    def factory(*, clock: Clock | None = None, **overrides: str | None) -> App:
        env: dict[str, str] = base_env(emu, receiver)
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return build_app(env, clock=clock or EmuClock(emu))

    return factory


def context(**overrides: Any) -> dict[str, Any]:
    """An SCF-like context."""
    return {"request_id": str(uuid.uuid4()), "function_name": "lighthouse-blueprint", "namespace": "default",
            "function_version": "$LATEST", "time_limit_in_ms": 900_000, "memory_limit_in_mb": 128,
            "tencentcloud_region": "ap-guangzhou", "tencentcloud_uin": "100000000001", **overrides}


def timer_event(job: dict[str, Any] | None, *, time_: str = "2026-11-27T03:00:00Z",
                name: str = "daily") -> dict[str, Any]:
    message = orjson.dumps(job).decode() if job else ""
    return {"Type": "Timer", "TriggerName": name, "Time": time_, "Message": message}


def http_event(method: str = "POST", path: str = "/release/blueprints", body: Any = None, *,
               token: str | None = LOCAL_TOKEN, headers: dict[str, str] | None = None,
               apigw: bool = True) -> dict[str, Any]:
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    raw = body if isinstance(body, str) else ("" if body is None else orjson.dumps(body).decode())
    event: dict[str, Any] = {"httpMethod": method, "path": path, "headers": hdrs, "body": raw,
                             "isBase64Encoded": False, "queryString": {}}
    if apigw:
        event["requestContext"] = {"requestId": str(uuid.uuid4()), "stage": "release", "httpMethod": method,
                                   "path": path, "sourceIp": "10.0.0.1"}
    return event


def tolerate_stalls(emu: Emulator) -> None:
    """Count the emulator's rate limits in 0.75 s windows, for a test that sends bursts at the full rate.

    The emulator counts a call when it reads it, and it shares this process with the function: a stall of the
    process (a loaded CI machine) delays a whole burst's reading, so the next window's first call is read less
    than a second after it (CI saw 9 throttles from one such stall). A 0.75 s window tolerates stalls up to
    250 ms and still catches a client that sends more than 20 in a second (the limiter's exact window has unit
    tests on a fake clock).
    """
    emu.limiter.window = 0.75


def received_events(receiver: Receiver) -> list[dict[str, Any]]:
    return [orjson.loads(r["body"]) for r in receiver.accepted()]
