"""Signed requests (BLUEPRINT_HTTP_AUTH=hmac): Standard Webhooks signatures made with the reference
`standardwebhooks` package, against the whole HTTP path. Replay, skew, wrong secret, rotation, tampering."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timezone

import orjson
import pytest
from standardwebhooks import Webhook

from blueprint.app import App
from blueprint.errors import BlueprintError, Unauthorized
from blueprint.events import HttpRequest
from blueprint.http import Authenticator
from tests.conftest import EmuClock, context, http_event

SECRET_A = "whsec_" + base64.b64encode(b"first-secret-of-thirty-two-bytes").decode()
SECRET_B = "whsec_" + base64.b64encode(b"second-secret-for-rotation-32byt").decode()
JOB = {"InstanceId": "lhins-web00001", "DryRun": True}


def signed_event(secret: str, body: bytes, *, msg_id: str = "msg_1", at: float, base64_body: bool = False,
                 headers: dict[str, str] | None = None) -> dict:
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(int(at), tz=timezone.utc), body.decode())
    hdrs = {"webhook-id": msg_id, "webhook-timestamp": str(int(at)), "webhook-signature": signature,
            **(headers or {})}
    event = http_event(body=body.decode(), token=None, headers=hdrs)
    if base64_body:
        event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), "true"
    return event


@pytest.fixture
def clock(emu) -> EmuClock:
    return EmuClock(emu)


@pytest.fixture
def app(make_app, clock: EmuClock) -> App:
    return make_app(clock=clock, BLUEPRINT_HTTP_AUTH="hmac", BLUEPRINT_HTTP_SECRET=f"{SECRET_A},{SECRET_B}",
                    BLUEPRINT_HTTP_TOKEN=None)


def status(app: App, event: dict) -> tuple[int, dict]:
    response = app.handle(event, context())
    return response["statusCode"], orjson.loads(response["body"])


BODY = orjson.dumps(JOB)


def test_valid_signature_passes(app, clock) -> None:
    assert status(app, signed_event(SECRET_A, BODY, at=clock.time()))[0] == 202


def test_each_rotated_secret_passes(app, clock) -> None:
    assert status(app, signed_event(SECRET_A, BODY, msg_id="a", at=clock.time()))[0] == 202
    assert status(app, signed_event(SECRET_B, BODY, msg_id="b", at=clock.time()))[0] == 202


def test_wrong_secret_is_401(app, clock, emu) -> None:
    other = "whsec_" + base64.b64encode(b"an-attackers-guess-of-the-secret").decode()
    code, body = status(app, signed_event(other, BODY, at=clock.time()))
    assert code == 401 and body["Error"]["Code"] == "AuthFailure"
    assert emu.calls == []


def test_replayed_id_is_401_within_the_window(app, clock) -> None:
    event = signed_event(SECRET_A, BODY, at=clock.time())
    assert status(app, event)[0] == 202
    code, body = status(app, event)
    assert code == 401 and "replay" in body["Error"]["Message"]
    # Re-signed with a fresh timestamp but the same id: still a replay.
    clock.sleep(120)
    assert status(app, signed_event(SECRET_A, BODY, at=clock.time()))[0] == 401


def test_same_id_after_the_window_is_not_remembered_forever(app, clock) -> None:
    assert status(app, signed_event(SECRET_A, BODY, msg_id="old", at=clock.time()))[0] == 202
    clock.sleep(601)
    assert status(app, signed_event(SECRET_A, BODY, msg_id="old", at=clock.time()))[0] == 202


def test_replay_to_another_container_finds_the_first_image(make_app, clock, emu) -> None:
    env = {"BLUEPRINT_HTTP_AUTH": "hmac", "BLUEPRINT_HTTP_SECRET": SECRET_A, "BLUEPRINT_HTTP_TOKEN": None}
    first, second = make_app(clock=clock, **env), make_app(clock=clock, **env)  # two warm containers
    event = signed_event(SECRET_A, orjson.dumps({"InstanceId": "lhins-web00001"}), at=clock.time())
    code1, body1 = status(first, event)
    code2, body2 = status(second, event)  # its replay memory is empty: the slot key stops a second image
    assert (code1, code2) == (202, 202)
    assert body2["BlueprintId"] == body1["BlueprintId"]
    assert len(emu.calls_of("CreateBlueprint")) == 1


@pytest.mark.parametrize("offset", [-301, 301, -10_000, 10**9])
def test_skewed_timestamp_is_401(app, clock, offset) -> None:
    code, body = status(app, signed_event(SECRET_A, BODY, at=clock.time() + offset))
    assert code == 401 and "5 minutes" in body["Error"]["Message"]


@pytest.mark.parametrize("offset", [-299, 299])
def test_timestamp_within_tolerance_passes(app, clock, offset) -> None:
    assert status(app, signed_event(SECRET_A, BODY, at=clock.time() + offset))[0] == 202


def test_tampered_body_is_401(app, clock) -> None:
    event = signed_event(SECRET_A, BODY, at=clock.time())
    event["body"] = orjson.dumps({"InstanceId": "lhins-db000001", "DryRun": True}).decode()
    assert status(app, event)[0] == 401


def test_signature_covers_the_decoded_base64_body(app, clock) -> None:
    assert status(app, signed_event(SECRET_A, BODY, at=clock.time(), base64_body=True))[0] == 202


@pytest.mark.parametrize("mutate", [
    lambda h: h.pop("webhook-id"),
    lambda h: h.pop("webhook-timestamp"),
    lambda h: h.pop("webhook-signature"),
    lambda h: h.update({"webhook-signature": h["webhook-signature"].replace("v1,", "v2,")}),
    lambda h: h.update({"webhook-signature": "v1," + "A" * 44}),
    lambda h: h.update({"webhook-timestamp": "١٢٣"}),  # unicode digits int() would accept
    lambda h: h.update({"webhook-timestamp": " 1 "}),
    lambda h: h.update({"webhook-timestamp": "9" * 5000}),
    lambda h: h.update({"webhook-id": "msg\ud800"}),
    lambda h: h.update({"webhook-signature": "v1,\ud800"}),
    lambda h: h.update({"webhook-id": "x" * 300}),
    lambda h: h.update({"webhook-signature": "v1,x " * 2000}),
])
def test_malformed_signature_headers_are_401_never_500(app, clock, mutate) -> None:
    event = signed_event(SECRET_A, BODY, at=clock.time())
    mutate(event["headers"])
    code, body = status(app, event)
    assert code == 401
    assert "Error" in body


def test_one_valid_among_several_signatures_passes(app, clock) -> None:
    event = signed_event(SECRET_A, BODY, at=clock.time())
    event["headers"]["webhook-signature"] = "v1,bogus v1a,whatever " + event["headers"]["webhook-signature"]
    assert status(app, event)[0] == 202


def test_header_names_in_any_case_and_as_lists(app, clock) -> None:
    event = signed_event(SECRET_A, BODY, at=clock.time())
    event["headers"] = {k.upper(): [v] for k, v in event["headers"].items()}
    assert status(app, event)[0] == 202


def test_a_bearer_token_is_not_a_signature(app, clock) -> None:
    assert status(app, http_event(body=JOB))[0] == 401


def test_refusals_are_logged_without_what_was_sent(app, clock, log_stream) -> None:
    event = signed_event(SECRET_A, BODY, at=clock.time())
    sent = event["headers"]["webhook-signature"]
    event["body"] = "{}"
    status(app, event)
    logged = log_stream.getvalue()
    assert "HTTP request refused" in logged
    assert sent.split(",", 1)[1] not in logged


# ---- restores are signed with their own secret (issue 14) -----------------------------------------------------

RESTORE_SECRET = "whsec_" + base64.b64encode(b"restore-secret-of-thirty-two-byt").decode()


def test_restores_need_the_restore_secret_and_it_never_makes_images(make_app, clock: EmuClock, emu) -> None:
    app = make_app(clock=clock, BLUEPRINT_HTTP_AUTH="hmac", BLUEPRINT_HTTP_SECRET=SECRET_A, BLUEPRINT_HTTP_TOKEN=None,
                   BLUEPRINT_RESTORE="on", BLUEPRINT_RESTORE_TOKEN=RESTORE_SECRET)
    image = app.handle(signed_event(SECRET_A, orjson.dumps({"InstanceId": "lhins-web00001", "Wait": True}),
                                    msg_id="make", at=clock.time()), context())
    assert image["statusCode"] == 202, image["body"]
    emu.advance(60)
    blueprint_id = orjson.loads(image["body"])["BlueprintId"]
    body = orjson.dumps({"InstanceId": "lhins-web00001", "BlueprintId": blueprint_id, "DryRun": True})

    def restore(secret: str, msg_id: str) -> int:
        event = signed_event(secret, body, msg_id=msg_id, at=clock.time())
        event["path"] = event["requestContext"]["path"] = "/release/restores"
        return int(app.handle(event, context())["statusCode"])

    assert restore(SECRET_A, "r1") == 401  # the secret that makes images never restores
    assert restore(RESTORE_SECRET, "r2") == 202
    made_with_restore_secret = signed_event(RESTORE_SECRET, orjson.dumps(JOB), msg_id="m2", at=clock.time())
    assert app.handle(made_with_restore_secret, context())["statusCode"] == 401
    assert emu.calls_of("ResetInstance") == []


# ---- edges mutation testing found unguarded (docs/mutation.md) ---------------------------------------------

def test_two_signed_requests_with_different_ids_are_two_pieces_of_work(app, clock, emu) -> None:
    job = orjson.dumps({"InstanceId": "lhins-web00001"})
    first = status(app, signed_event(SECRET_A, job, msg_id="msg-first", at=clock.time()))
    emu.advance(60)  # the first image is made: the instance is free again
    second = status(app, signed_event(SECRET_A, job, msg_id="msg-second", at=clock.time()))
    assert (first[0], second[0]) == (202, 202)
    assert first[1]["BlueprintId"] != second[1]["BlueprintId"]
    assert len(emu.calls_of("CreateBlueprint")) == 2


def test_the_longest_id_and_signature_header_allowed_pass(app, clock) -> None:
    assert status(app, signed_event(SECRET_A, BODY, msg_id="i" * 256, at=clock.time()))[0] == 202
    event = signed_event(SECRET_A, BODY, msg_id="msg-long-signature", at=clock.time())
    valid = event["headers"]["webhook-signature"]
    filler = "v1,bogus "
    padded = filler * ((4096 - len(valid)) // len(filler)) + valid
    event["headers"]["webhook-signature"] = " " * (4096 - len(padded)) + padded
    assert len(event["headers"]["webhook-signature"]) == 4096
    assert status(app, event)[0] == 202
    event["headers"]["webhook-id"] = "msg-too-long-signature"
    event["headers"]["webhook-signature"] = " " + event["headers"]["webhook-signature"]  # 4097 characters
    assert status(app, event)[0] == 401


def test_an_id_that_is_printable_but_not_ascii_is_refused(app, clock) -> None:
    code, body = status(app, signed_event(SECRET_A, BODY, msg_id="msg-é", at=clock.time()))
    assert code == 401 and body["Error"]["Message"] == "bad webhook-id or webhook-signature"


def _request(secret_key: bytes, msg_id: str, at: int, body: bytes) -> HttpRequest:
    mac = base64.b64encode(hmac.new(secret_key, f"{msg_id}.{at}.".encode() + body, hashlib.sha256).digest())
    return HttpRequest.model_validate({"httpMethod": "POST", "headers": {
        "webhook-id": msg_id, "webhook-timestamp": str(at), "webhook-signature": "v1," + mac.decode()}})


def test_a_plain_secret_signs_with_its_own_bytes() -> None:
    auth = Authenticator("hmac", secrets=["plain-shared-secret-1"], now=lambda: 1_000_000.0)
    auth.check(_request(b"plain-shared-secret-1", "msg-plain", 1_000_000, b"{}"), b"{}")
    with pytest.raises(Unauthorized, match="bad webhook-signature"):
        auth.check(_request(base64.b64decode(SECRET_A.removeprefix("whsec_")), "msg-other", 1_000_000, b"{}"), b"{}")


@pytest.mark.parametrize(("skew", "accepted"), [(300, True), (-300, True), (301, False), (-301, False)])
def test_the_tolerance_is_five_minutes_inclusive(skew: int, accepted: bool) -> None:
    key = base64.b64decode(SECRET_A.removeprefix("whsec_"))
    auth = Authenticator("hmac", secrets=[SECRET_A], now=lambda: 1_000_000.0)
    request = _request(key, "msg-skew", 1_000_000 + skew, b"{}")
    if accepted:
        auth.check(request, b"{}")
    else:
        with pytest.raises(Unauthorized, match="5 minutes"):
            auth.check(request, b"{}")


def test_an_id_is_remembered_for_ten_minutes_including_the_last_instant() -> None:
    now = [0.0]
    auth = Authenticator("hmac", secrets=[SECRET_A], now=lambda: now[0])
    auth._remember("msg-a")
    now[0] = 600.0  # exactly 2 x 300 s later: a signature of that moment could still be valid
    with pytest.raises(Unauthorized, match="replay"):
        auth._remember("msg-a")
    now[0] = 600.001
    auth._remember("msg-a")


def test_forgetting_expired_ids_never_forgets_a_recent_one() -> None:
    now = [0.0]
    auth = Authenticator("hmac", secrets=[SECRET_A], now=lambda: now[0])
    auth._remember("msg-old")
    now[0] = 500.0
    auth._remember("msg-recent")
    now[0] = 700.0  # msg-old expired; msg-recent (200 s old) must stay
    auth._remember("msg-new")
    for replay in ("msg-recent", "msg-new"):
        with pytest.raises(Unauthorized, match="replay"):
            auth._remember(replay)


def test_a_full_memory_forgets_the_oldest_id_not_the_newest() -> None:
    auth = Authenticator("hmac", secrets=[SECRET_A], now=lambda: 0.0)
    for n in range(100_000):
        auth._remember(f"msg-{n}")
    auth._remember("msg-latest")  # one over the cap: the oldest goes
    with pytest.raises(Unauthorized, match="replay"):
        auth._remember("msg-latest")
    with pytest.raises(Unauthorized, match="replay"):
        auth._remember("msg-1")
    auth._remember("msg-0")  # forgotten: accepted again (its signature would be checked first in real use)


def test_the_token_variable_holds_the_signing_secret_when_no_secret_variable_is_set(make_app, clock) -> None:
    # The contract names BLUEPRINT_HTTP_TOKEN and BLUEPRINT_HTTP_AUTH for HTTP auth: in hmac mode the token
    # variable is the signing secret (BLUEPRINT_HTTP_SECRET, when set, takes its place).
    app = make_app(clock=clock, BLUEPRINT_HTTP_AUTH="hmac", BLUEPRINT_HTTP_TOKEN=SECRET_A, BLUEPRINT_HTTP_SECRET=None)
    assert status(app, signed_event(SECRET_A, BODY, at=clock.time()))[0] == 202
    assert status(app, signed_event(SECRET_B, BODY, msg_id="b", at=clock.time()))[0] == 401
    bearer = http_event(body=JOB, token=SECRET_A)  # the secret is not a bearer token in hmac mode
    assert status(app, bearer)[0] == 401
    both = make_app(clock=clock, BLUEPRINT_HTTP_AUTH="hmac", BLUEPRINT_HTTP_TOKEN=SECRET_A,
                    BLUEPRINT_HTTP_SECRET=SECRET_B)
    assert status(both, signed_event(SECRET_A, BODY, msg_id="c", at=clock.time()))[0] == 401
    assert status(both, signed_event(SECRET_B, BODY, msg_id="d", at=clock.time()))[0] == 202


def test_a_token_variable_that_is_no_signing_secret_is_a_configuration_error(make_app, clock) -> None:
    with pytest.raises(BlueprintError, match="BLUEPRINT_HTTP_TOKEN: item 1 starts with whsec_"):
        make_app(clock=clock, BLUEPRINT_HTTP_AUTH="hmac", BLUEPRINT_HTTP_TOKEN="whsec_not*base64",
                 BLUEPRINT_HTTP_SECRET=None)
    with pytest.raises(BlueprintError, match=r"BLUEPRINT_HTTP_SECRET \(or BLUEPRINT_HTTP_TOKEN\): required"):
        make_app(clock=clock, BLUEPRINT_HTTP_AUTH="hmac", BLUEPRINT_HTTP_TOKEN=None, BLUEPRINT_HTTP_SECRET=None)
