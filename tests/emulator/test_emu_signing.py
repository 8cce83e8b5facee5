"""TC3-HMAC-SHA256: the reference vector, and every AuthFailure the emulator answers."""

from __future__ import annotations

import hashlib
import time

import pytest
import requests
from emu_helpers import error_code, lighthouse, signed_post
from tencentcloud.lighthouse.v20200324 import models

from emulator import Emulator
from emulator.errors import ApiError
from emulator.signing import SignedRequest, authorization_header, canonical_request, signature, verify

BODY = b'{"BlueprintName": "bp", "InstanceId": "lhins-abc"}'
HOST = "lighthouse.tencentcloudapi.com"
STAMP = 1700000000
POST_SIG = "ca19a86b2f313ac6409c0ac5895fde8510d7473040757b92500e80786e66455a"
SIGNED = "SignedHeaders=content-type;host"
HOST_ONLY = "SignedHeaders=host"
ZEROS = "0" * 64
SCOPE = "AKIDEMULATOR/2024-01-01/lighthouse/tc3_request"
GET_SIG = "eefe15f161aca63cec77421c7fbb47391228fa1a5bc5ae17e7686d246bff5a3d"


def _vector_request(method: str, sig: str) -> SignedRequest:
    content_type = "application/json" if method == "POST" else "application/x-www-form-urlencoded"
    headers = {
        "content-type": content_type,
        "host": HOST,
        "x-tc-timestamp": str(STAMP),
        "authorization": authorization_header("AKIDEXAMPLE", "lighthouse", STAMP, "content-type;host", sig),
    }
    query = "BlueprintName=bp&InstanceId=lhins-abc" if method == "GET" else ""
    return SignedRequest(method, query, headers, BODY if method == "POST" else b"")


def test_reference_vector_intermediate_hashes() -> None:
    payload = hashlib.sha256(BODY).hexdigest()
    assert payload == "f3b772e003a1c2b862397a9f419277ecb18faa78a22c7aefe329b46b5162c57a"
    canonical = canonical_request(
        "POST", "", {"content-type": "application/json", "host": HOST}, ("content-type", "host"), payload
    )
    assert hashlib.sha256(canonical.encode()).hexdigest() == (
        "0c8b4a4ba49565e7d4d28acfcb1b4726cce2167751bc25fa537abba7bae55b0e"
    )
    assert signature("EXAMPLEKEY", "lighthouse", STAMP, canonical) == POST_SIG


@pytest.mark.parametrize(("method", "sig"), [("POST", POST_SIG), ("GET", GET_SIG)])
def test_verifier_accepts_the_reference_vector(method: str, sig: str) -> None:
    auth = verify(_vector_request(method, sig), {"AKIDEXAMPLE": "EXAMPLEKEY"}, now=STAMP + 10)
    assert (auth.secret_id, auth.service, auth.date) == ("AKIDEXAMPLE", "lighthouse", "2023-11-14")


def test_verifier_rejects_a_changed_body() -> None:
    req = _vector_request("POST", POST_SIG)
    tampered = SignedRequest(req.method, req.query, req.headers, BODY.replace(b"bp", b"bq"))
    with pytest.raises(ApiError) as info:
        verify(tampered, {"AKIDEXAMPLE": "EXAMPLEKEY"}, now=STAMP)
    assert info.value.code == "AuthFailure.SignatureFailure"


def test_wrong_key_is_signature_failure(emu: Emulator) -> None:
    reply = signed_post(emu, "DescribeInstances", {}, key="not-the-key")
    assert reply["Error"]["Code"] == "AuthFailure.SignatureFailure"
    assert reply["RequestId"]
    assert emu.calls[-1].error == "AuthFailure.SignatureFailure"


def test_correct_hand_signed_request_succeeds(emu: Emulator) -> None:
    reply = signed_post(emu, "DescribeInstances", {"Limit": 1})
    assert reply["TotalCount"] == 3
    assert len(reply["InstanceSet"]) == 1


def test_wrong_service_in_scope_is_signature_failure(emu: Emulator) -> None:
    stamp = int(time.time())
    body = b"{}"
    canonical = canonical_request(
        "POST",
        "",
        {"content-type": "application/json", "host": emu.endpoint},
        ("content-type", "host"),
        hashlib.sha256(body).hexdigest(),
    )
    sig = signature("emulator-secret", "tdmq", stamp, canonical)  # signed for tdmq, scope says lighthouse
    headers = {
        "Content-Type": "application/json",
        "X-TC-Action": "DescribeInstances",
        "X-TC-Version": "2020-03-24",
        "X-TC-Region": "ap-guangzhou",
        "X-TC-Timestamp": str(stamp),
        "Authorization": authorization_header("AKIDEMULATOR", "lighthouse", stamp, "content-type;host", sig),
    }
    reply = requests.post(emu.url, data=body, headers=headers, timeout=5).json()["Response"]
    assert reply["Error"]["Code"] == "AuthFailure.SignatureFailure"


def test_clock_skew_over_300_seconds_is_signature_expire(emu: Emulator) -> None:
    reply = signed_post(emu, "DescribeInstances", {}, timestamp=int(time.time()) - 400)
    assert reply["Error"]["Code"] == "AuthFailure.SignatureExpire"


def test_skew_within_300_seconds_is_accepted(emu: Emulator) -> None:
    reply = signed_post(emu, "DescribeInstances", {}, timestamp=int(time.time()) - 200)
    assert "Error" not in reply


def test_advancing_the_emulated_clock_does_not_expire_signatures(emu: Emulator) -> None:
    emu.advance(3600)
    assert lighthouse(emu).DescribeInstances(models.DescribeInstancesRequest()).TotalCount == 3


def test_unknown_secret_id(emu: Emulator) -> None:
    reply = signed_post(emu, "DescribeInstances", {}, secret_id="AKIDUNKNOWN")
    assert reply["Error"]["Code"] == "AuthFailure.SecretIdNotFound"


def test_extra_credentials_are_accepted() -> None:
    with Emulator(credentials={"AKIDOTHER": "other-key"}) as emu:
        reply = signed_post(emu, "DescribeInstances", {}, secret_id="AKIDOTHER", key="other-key")
        assert reply["TotalCount"] == 3


@pytest.mark.parametrize(
    "authorization",
    [
        "",
        "HMAC-SHA1 Credential=x",
        f"TC3-HMAC-SHA256 Credential=AKIDEMULATOR/2024-01-01/lighthouse, {SIGNED}, Signature={ZEROS}",
        f"TC3-HMAC-SHA256 Credential={SCOPE}, {HOST_ONLY}, Signature={ZEROS}",
    ],
)
def test_malformed_authorization(emu: Emulator, authorization: str) -> None:
    headers = {
        "Content-Type": "application/json",
        "X-TC-Action": "DescribeInstances",
        "X-TC-Version": "2020-03-24",
        "X-TC-Region": "ap-guangzhou",
        "X-TC-Timestamp": str(int(time.time())),
        "Authorization": authorization,
    }
    reply = requests.post(emu.url, data=b"{}", headers=headers, timeout=5)
    assert reply.status_code == 200
    assert reply.json()["Response"]["Error"]["Code"] == "AuthFailure.InvalidAuthorization"


def test_session_token_is_accepted(emu: Emulator) -> None:
    client = lighthouse(emu, token="a-session-token")
    assert client.DescribeInstances(models.DescribeInstancesRequest()).TotalCount == 3


def test_sdk_with_wrong_key_raises_signature_failure(emu: Emulator) -> None:
    from emu_helpers import profile
    from tencentcloud.common import credential
    from tencentcloud.lighthouse.v20200324 import lighthouse_client

    client = lighthouse_client.LighthouseClient(
        credential.Credential("AKIDEMULATOR", "wrong"), "ap-guangzhou", profile(emu)
    )
    assert error_code(lambda: client.DescribeInstances(models.DescribeInstancesRequest())) == (
        "AuthFailure.SignatureFailure"
    )


def test_more_signed_headers_are_rebuilt_from_the_declaration(emu: Emulator) -> None:
    stamp = int(time.time())
    body = b"{}"
    signed = ("content-type", "host", "x-tc-action")
    values = {"content-type": "application/json", "host": emu.endpoint, "x-tc-action": "describeinstances"}
    canonical = canonical_request("POST", "", values, signed, hashlib.sha256(body).hexdigest())
    sig = signature("emulator-secret", "lighthouse", stamp, canonical)
    headers = {
        "Content-Type": "application/json",
        "X-TC-Action": "DescribeInstances",
        "X-TC-Version": "2020-03-24",
        "X-TC-Region": "ap-guangzhou",
        "X-TC-Timestamp": str(stamp),
        "Authorization": authorization_header("AKIDEMULATOR", "lighthouse", stamp, ";".join(signed), sig),
    }
    reply = requests.post(emu.url, data=body, headers=headers, timeout=5).json()["Response"]
    assert reply["TotalCount"] == 3


def test_a_temporary_key_needs_its_own_session_token() -> None:
    from emu_helpers import profile
    from tencentcloud.common import credential
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
    from tencentcloud.lighthouse.v20200324 import lighthouse_client

    with Emulator(tokens={"AKIDTEMP": "token-1"}, credentials={"AKIDTEMP": "temp-key"}) as emu:
        def code(token: str | None) -> str | None:
            client = lighthouse_client.LighthouseClient(
                credential.Credential("AKIDTEMP", "temp-key", token), "ap-guangzhou", profile(emu))
            try:
                client.DescribeInstances(models.DescribeInstancesRequest())
            except TencentCloudSDKException as err:
                return str(err.code)
            return None

        assert code("token-1") is None
        assert code(None) == code("token-2") == "AuthFailure.TokenFailure"
        emu.add_temporary_key("AKIDTEMP", "temp-key", "token-2")  # rotated: the old token stops working
        assert code("token-2") is None
        assert code("token-1") == "AuthFailure.TokenFailure"
        assert [c.error for c in emu.calls_of("DescribeInstances")] == [
            None, "AuthFailure.TokenFailure", "AuthFailure.TokenFailure", None, "AuthFailure.TokenFailure"]
