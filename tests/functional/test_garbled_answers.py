"""An answer that is not the API's JSON (a proxy's page with HTTP 200, an envelope without `Response`) is a
failure a retry can fix, on every call of the timer's path, before and after the call took effect: the
function reads answers as plain JSON (`blueprint.cloud.call_json`), so it checks their shape itself."""

from __future__ import annotations

import orjson
import pytest

from blueprint.errors import BlueprintError
from blueprint.images import INSTANCE_TAG
from tests.conftest import EmuClock, context, received_events, timer_event

JOB = {"InstanceId": "lhins-web00001"}
# (body, content type): what a proxy or a broken gateway may hand back with HTTP 200.
BODIES = {
    "html page": (b"<html><body>502 Bad Gateway</body></html>", "text/html"),
    "html as text/plain": (b"<html>502</html>", "text/plain"),  # the SDK itself parses text/plain answers
    "json without Response": (b'{"Error": "gateway"}', "application/json"),
    "Response null": (b'{"Response": null}', "application/json"),
    "Response a list": (b'{"Response": []}', "application/json"),
    "json array": (b"[1, 2]", "application/json"),
    "empty": (b"", "application/json"),
}


def images(emu) -> list[dict]:
    return [b for b in emu.lighthouse.blueprints() if {"Key": INSTANCE_TAG, "Value": JOB["InstanceId"]} in b["Tags"]]


@pytest.mark.parametrize("body", list(BODIES))
@pytest.mark.parametrize("call", ["DescribeBlueprints/none", "CreateBlueprint/none", "DescribeDisks/all"])
def test_a_garbled_answer_before_the_call_acted_is_retried(make_app, emu, receiver, call: str, body: str) -> None:
    action, disks = call.split("/")  # the action garbled, and BLUEPRINT_DATA_DISKS (DescribeDisks needs disks)
    emu.faults.garble(action, body=BODIES[body][0], content_type=BODIES[body][1])
    answer = make_app(clock=EmuClock(emu), BLUEPRINT_DATA_DISKS=disks).handle(timer_event(JOB), context())
    assert "Error" not in answer["Results"][0], answer
    assert len(images(emu)) == 1 and answer["Results"][0]["BlueprintId"] == images(emu)[0]["BlueprintId"]
    assert [c.error for c in emu.calls_of(action)][:2] == ["garbled", None]  # the fault hit, the retry passed
    kinds = [e["type"].rsplit(".", 1)[-1] for e in received_events(receiver)]
    if disks == "none":
        assert kinds == ["created"]
    else:  # the data disk's point is made with the image, and the run follows both
        assert kinds == ["created", "ready"] and len(answer["Results"][0]["DiskBackups"]) == 1


@pytest.mark.parametrize("body", ["html page", "Response null"])
def test_a_garbled_answer_after_the_image_was_made_makes_one_image(make_app, emu, receiver, body: str) -> None:
    emu.faults.garble("CreateBlueprint", after=True, body=BODIES[body][0], content_type=BODIES[body][1])
    answer = make_app(clock=EmuClock(emu)).handle(timer_event(JOB), context())
    assert len(images(emu)) == 1
    # The image the mangled answer hid is found by its slot before any second CreateBlueprint.
    assert len(emu.calls_of("CreateBlueprint")) == 1
    assert answer["Results"][0]["BlueprintId"] == images(emu)[0]["BlueprintId"]
    assert received_events(receiver)[0]["type"].endswith(".created")


def test_answers_garbled_every_time_raise_a_retryable_error_without_the_page(make_app, emu, receiver) -> None:
    emu.faults.garble("DescribeBlueprints", times=50, body=b"<html>secret-proxy-page</html>")
    with pytest.raises(BlueprintError) as caught:
        make_app(clock=EmuClock(emu)).handle(timer_event(JOB), context())
    assert caught.value.retryable and caught.value.code == "JSONDecodeError"
    assert "secret-proxy-page" not in caught.value.message
    assert images(emu) == []  # nothing made without the slot lookup: SCF's retry starts over


def _error(code: str) -> bytes:
    return orjson.dumps({"Response": {"Error": {"Code": code, "Message": "refused"}, "RequestId": "r-err"}})


# The SDK raises an error answer only under a Content-Type of exactly `application/json`; with a charset it hands
# the error back as if it were an answer (docs/platform-facts.md). The function reads the error itself.
CHARSET = "application/json; charset=utf-8"


def test_an_error_under_a_content_type_with_a_charset_is_an_error_a_retry_can_fix(make_app, emu, receiver,
                                                                                  log_stream) -> None:
    emu.faults.garble("CreateBlueprint", body=_error("RequestLimitExceeded"), content_type=CHARSET)
    answer = make_app(clock=EmuClock(emu), BLUEPRINT_LOG_LEVEL="DEBUG").handle(timer_event(JOB), context())
    assert "Error" not in answer["Results"][0] and len(images(emu)) == 1, answer
    assert [c.error for c in emu.calls_of("CreateBlueprint")] == ["garbled", None]  # throttled, then sent again
    retries = [orjson.loads(line) for line in log_stream.getvalue().splitlines() if "waiting for a retry" in line]
    assert [r["error"] for r in retries] == ["RequestLimitExceeded"]  # read as the cloud's error, not as garbage


def test_an_error_under_a_content_type_with_a_charset_is_reported_with_its_code(make_app, emu, receiver) -> None:
    emu.faults.garble("CreateBlueprint", times=5, body=_error("FailedOperation.InsufficientBalance"),
                      content_type=CHARSET)
    answer = make_app(clock=EmuClock(emu)).handle(timer_event(JOB), context())
    assert answer["Results"][0]["Error"]["Code"] == "FailedOperation.InsufficientBalance", answer
    assert answer["Results"][0]["RequestId"] == "r-err"
    assert len(emu.calls_of("CreateBlueprint")) == 1 and images(emu) == []  # not retried: a retry cannot help
    assert received_events(receiver)[0]["type"].endswith(".failed")
