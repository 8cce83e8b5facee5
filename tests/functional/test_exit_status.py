"""Issue 16, item 2: the summary line's `outcome` and `invoke`'s exit status say what happened.

In process against the emulator for the outcomes (a fault the CLI cannot inject), and through
`python -m blueprint invoke --emulate` for the exit statuses a user sees.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from blueprint.cli import EXIT_STATUSES
from blueprint.cli import _call as cli_call
from blueprint.errors import DeliveryError
from blueprint.outcome import exit_status, summarize
from emulator import DEFAULT_UIN
from tests.conftest import context, http_event, timer_event

ROOT = Path(__file__).resolve().parents[2]


def summary(log_stream: io.StringIO) -> dict:
    [line] = [orjson.loads(x) for x in log_stream.getvalue().splitlines() if '"invocation finished"' in x]
    return line


def test_an_instance_that_failed_is_not_ok(make_app, emu, log_stream) -> None:
    emu.faults.fail("CreateBlueprint", "FailedOperation.InsufficientBalance")
    answer = make_app().handle(timer_event({"InstanceId": "lhins-web00001"}), context())
    assert answer["Results"][0]["Error"]["Code"] == "FailedOperation.InsufficientBalance"
    line = summary(log_stream)
    assert (line["outcome"], line["counts"]) == ("failed", {"failed": 1})
    assert exit_status(summarize(answer)) == 4


def test_some_failed_is_partial(make_app, emu, log_stream) -> None:
    emu.faults.fail("CreateBlueprint", "FailedOperation.InsufficientBalance")
    answer = make_app().handle(timer_event({"InstanceIds": ["lhins-web00001", "lhins-db000001"]}), context())
    line = summary(log_stream)
    assert line["outcome"] == "partial" and line["counts"] == {"created": 1, "failed": 1}
    assert exit_status(summarize(answer)) == 4


def test_all_done_is_ok_and_a_refusal_says_its_code(make_app, log_stream) -> None:
    app = make_app()
    done = app.handle(timer_event({"InstanceId": "lhins-web00001"}), context())
    refused = app.handle(timer_event(None), context())
    lines = [orjson.loads(x) for x in log_stream.getvalue().splitlines() if '"invocation finished"' in x]
    assert [x["outcome"] for x in lines] == ["ok", "refused InvalidParameter"]
    assert (exit_status(summarize(done)), exit_status(summarize(refused))) == (0, 3)


def test_a_queue_batch_with_a_poison_record_is_partial(make_app, log_stream) -> None:
    [sample] = orjson.loads((ROOT / "events/cmq-queue.json").read_bytes())["Records"]
    records = [{"CMQ": {**sample["CMQ"], "msgId": f"msg-{n}", "requestId": f"r{n}", "msgBody": body}}
               for n, body in enumerate(['{"InstanceId": "lhins-web00001"}', "not json"])]
    answer = make_app().handle({"Records": records}, context())
    assert summary(log_stream)["outcome"] == "partial"
    assert exit_status(summarize(answer)) == 4


def test_http_outcomes(make_app, emu, log_stream) -> None:
    app = make_app()
    ok = app.handle(http_event(body={"InstanceId": "lhins-web00001"}), context())
    # The first image is made: neither instance is busy, so the one refused create (whichever instance's call
    # comes first) makes the second run partial every time.
    emu.advance(60)
    emu.faults.fail("CreateBlueprint", "FailedOperation.InsufficientBalance")
    mixed = app.handle(http_event(body={"InstanceIds": ["lhins-web00001", "lhins-db000001"],
                                        "IdempotencyKey": "second-run"}), context())
    denied = app.handle(http_event(body={"InstanceId": "lhins-web00001"}, token="wrong-token-123"), context())
    outcomes = [orjson.loads(x)["outcome"] for x in log_stream.getvalue().splitlines() if '"invocation finished"' in x]
    assert outcomes == ["http 202", "http 202 partial", "http 401"]
    assert [exit_status(summarize(a)) for a in (ok, mixed, denied)] == [0, 4, 3]


def test_a_copy_that_failed_beside_a_made_image_is_partial_in_the_summary_and_the_exit_status(
        make_app, emu, capsys: pytest.CaptureFixture[str]) -> None:
    # The answer lists only the instance's image (made, NORMAL); the failed copy is counted and delivered.
    emu.faults.fail("SyncBlueprint", "UnauthorizedOperation.NoPermission")
    job = {"InstanceId": "lhins-web00001", "Wait": True, "ForcePowerOff": False, "CopyTo": ["ap-shanghai"]}
    # The CLI's context carries no account id (SCF's does): the variable gives it, as a local run sets it.
    status = cli_call(make_app(BLUEPRINT_ACCOUNT_ID=DEFAULT_UIN), timer_event(job), {})
    out = capsys.readouterr().out
    [line] = [orjson.loads(x) for x in out.splitlines() if '"invocation finished"' in x]
    assert (line["outcome"], line["counts"]) == ("partial", {"ready": 1, "failed": 1})
    assert status == 4


def test_a_raise_is_said_in_the_summary(make_app, receiver, log_stream) -> None:
    receiver.fail_next(50)
    with pytest.raises(DeliveryError):
        make_app().handle(timer_event({"InstanceId": "lhins-web00001"}), context())
    assert summary(log_stream)["outcome"] == "raised FailedOperation.DeliveryFailed"
    assert exit_status("raised FailedOperation.DeliveryFailed") == 1


# ---- through the command, as a user runs it ---------------------------------------------------------------


def run_invoke(event: dict | str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "event.json"
    path.write_text(event if isinstance(event, str) else orjson.dumps(event).decode())
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TENCENTCLOUD_", "BLUEPRINT_"))}
    return subprocess.run([sys.executable, "-m", "blueprint", "invoke", str(path), "--emulate"],  # noqa: S603
                          cwd=ROOT, env={**clean, "PYTHONPATH": str(ROOT), **env}, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.parametrize(("job", "expected"), [
    ({"InstanceId": "lhins-web00001"}, 0),
    (None, 3),  # an empty timer Message and no BLUEPRINT_JOB: refused
    ({"InstanceId": "lhins-nothere1"}, 4),  # no such instance: failed
    ({"InstanceIds": ["lhins-web00001", "lhins-nothere1"]}, 4),  # partial
])
def test_invoke_exit_status(job: dict | None, expected: int, tmp_path: Path) -> None:
    done = run_invoke(timer_event(job), tmp_path)
    assert done.returncode == expected, done.stdout[-2000:] + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_invoke_exit_status_when_the_handler_raises(tmp_path: Path) -> None:
    # Nothing listens on port 9 of loopback: the configured webhook refuses the connection, the handler raises.
    done = run_invoke(timer_event({"InstanceId": "lhins-web00001"}), tmp_path,
                      BLUEPRINT_WEBHOOK_URL="http://127.0.0.1:9/hook")
    assert done.returncode == 1, done.stderr
    assert "--- the handler raised" in done.stdout and "FailedOperation.DeliveryFailed" in done.stdout


def test_invoke_exit_status_of_a_bad_event_file(tmp_path: Path) -> None:
    done = run_invoke("{not json", tmp_path)
    assert done.returncode == 2 and "cannot read event file" in done.stderr


def test_help_documents_every_exit_status() -> None:
    done = subprocess.run([sys.executable, "-m", "blueprint", "invoke", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True)
    assert EXIT_STATUSES.strip() in done.stdout
    for status in range(5):
        assert f"\n  {status}  " in done.stdout, status
