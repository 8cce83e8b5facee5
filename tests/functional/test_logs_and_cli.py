"""Logs a CLS user can query, and the local `python -m blueprint invoke` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from blueprint.errors import DeliveryError
from tests.conftest import context, timer_event

ROOT = Path(__file__).resolve().parents[2]


def lines(stream) -> list[dict]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_logs_are_json_lines_with_ids_and_one_summary_per_invocation(make_app, emu, log_stream) -> None:
    ctx = context()
    make_app().handle(timer_event({"InstanceIds": ["lhins-web00001", "lhins-db000001"]}), ctx)
    records = lines(log_stream)
    assert all({"time", "level", "message", "request_id", "correlation_id"} <= set(r) for r in records)
    assert {r["request_id"] for r in records} == {ctx["request_id"]}
    per_image = [r for r in records if r["message"] == "image created"]
    assert sorted(r["instance"] for r in per_image) == ["lhins-db000001", "lhins-web00001"]
    assert all(r["image_id"].startswith("lhbp-") and r["outcome"] == "created" for r in per_image)
    (summary,) = [r for r in records if r["message"] == "invocation finished"]
    assert summary["counts"] == {"created": 2}
    assert summary["trigger"] == "timer" and summary["outcome"] == "ok"
    assert isinstance(summary["duration"], float)


def test_summary_line_says_when_an_invocation_raised(make_app, emu, receiver, log_stream) -> None:
    receiver.fail_next(50)
    with pytest.raises(DeliveryError):
        make_app().handle(timer_event({"InstanceId": "lhins-web00001"}), context())
    (summary,) = [r for r in lines(log_stream) if r["message"] == "invocation finished"]
    assert summary["outcome"] == "raised FailedOperation.DeliveryFailed"
    assert summary["delivery_failed"] == ["webhook"]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "blueprint", *args], cwd=ROOT, env=env, capture_output=True,  # noqa: S603
                          text=True, timeout=120, check=False)


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("TENCENTCLOUD_", "BLUEPRINT_"))} | {"PYTHONPATH": str(ROOT)}


def test_invoke_emulate_runs_the_timer_sample_end_to_end() -> None:
    done = run_cli("invoke", "events/timer.json", "--emulate", env=clean_env())
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "--- handler returned" in out
    assert '"type": "com.tencentcloud.lighthouse.blueprint.created"' in out
    assert '"Action": "CreateBlueprint"' in out
    assert "Traceback" not in out + done.stderr


def test_invoke_without_credentials_says_what_is_missing() -> None:
    done = run_cli("invoke", "events/timer.json", env=clean_env())
    assert done.returncode == 2
    assert "TENCENTCLOUD_SECRETID" in done.stderr and "--emulate" in done.stderr
    assert "Traceback" not in done.stderr


def test_invoke_with_a_missing_event_file() -> None:
    done = run_cli("invoke", "events/nope.json", "--emulate", env=clean_env())
    assert done.returncode == 2
    assert "cannot read event file" in done.stderr
