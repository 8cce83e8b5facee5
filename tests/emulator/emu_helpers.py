"""Helpers for the emulator tests: real SDK clients aimed at an emulator, hand-signed requests."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.lighthouse.v20200324 import lighthouse_client
from tencentcloud.scf.v20180416 import scf_client
from tencentcloud.tag.v20180813 import tag_client
from tencentcloud.tat.v20201028 import tat_client
from tencentcloud.tdmq.v20200217 import tdmq_client

from emulator import SECRET_ID, SECRET_KEY, Emulator
from emulator.signing import authorization_header, canonical_request, signature

VERSIONS = {"lighthouse": "2020-03-24", "tdmq": "2020-02-17", "scf": "2018-04-16", "tag": "2018-08-13",
            "tat": "2020-10-28"}


def profile(emu: Emulator, method: str = "POST") -> ClientProfile:
    """A client profile aimed at the emulator over plain HTTP."""
    return ClientProfile(
        httpProfile=HttpProfile(protocol="http", endpoint=emu.endpoint, reqTimeout=5, reqMethod=method)
    )


def lighthouse(
    emu: Emulator,
    region: str = "ap-guangzhou",
    *,
    token: str | None = None,
    method: str = "POST",
    secret_id: str = SECRET_ID,
    secret_key: str = SECRET_KEY,
) -> Any:
    """A real LighthouseClient (of another account when given that account's secret id and key)."""
    cred = credential.Credential(secret_id, secret_key, token)
    return lighthouse_client.LighthouseClient(cred, region, profile(emu, method))


def tag(emu: Emulator, region: str = "", *, secret_id: str = SECRET_ID, secret_key: str = SECRET_KEY) -> Any:
    """A real TagClient; the Tag service takes no region."""
    return tag_client.TagClient(credential.Credential(secret_id, secret_key), region, profile(emu))


def call(client: Any, action: str, **params: Any) -> Any:
    """Call `action` with `params` through the SDK's own request model."""
    module = __import__(type(client).__module__.rsplit(".", 1)[0] + ".models", fromlist=["models"])
    request = getattr(module, f"{action}Request")()
    request.from_json_string(json.dumps(params))
    return getattr(client, action)(request)


def tdmq(emu: Emulator, region: str = "ap-guangzhou") -> Any:
    """A real TdmqClient."""
    return tdmq_client.TdmqClient(credential.Credential(SECRET_ID, SECRET_KEY), region, profile(emu))


def scf(emu: Emulator, region: str = "ap-guangzhou") -> Any:
    """A real ScfClient."""
    return scf_client.ScfClient(credential.Credential(SECRET_ID, SECRET_KEY), region, profile(emu))


def tat(emu: Emulator, region: str = "ap-guangzhou", *, method: str = "POST") -> Any:
    """A real TatClient."""
    return tat_client.TatClient(credential.Credential(SECRET_ID, SECRET_KEY), region, profile(emu, method))


def signed_post(
    emu: Emulator,
    action: str,
    params: dict[str, Any],
    *,
    service: str = "lighthouse",
    key: str = SECRET_KEY,
    secret_id: str = SECRET_ID,
    timestamp: int | None = None,
    version: str | None = None,
    region: str | None = "ap-guangzhou",
    extra: dict[str, str] | None = None,
) -> dict[str, Any]:
    """POST a hand-signed request with `requests` (so tests control every part of it)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    body = json.dumps(params).encode()
    headers = {"content-type": "application/json", "host": emu.endpoint}
    canonical = canonical_request("POST", "", headers, ("content-type", "host"), hashlib.sha256(body).hexdigest())
    sig = signature(key, service, stamp, canonical)
    send = {
        "Content-Type": "application/json",
        "X-TC-Action": action,
        "X-TC-Version": version or VERSIONS.get(service, "2020-03-24"),
        "X-TC-Timestamp": str(stamp),
        "Authorization": authorization_header(secret_id, service, stamp, "content-type;host", sig),
        **(extra or {}),
    }
    if region is not None:
        send["X-TC-Region"] = region
    reply = requests.post(emu.url + "/", data=body, headers=send, timeout=5)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "application/json"
    result: dict[str, Any] = reply.json()["Response"]
    return result


def error_code(fn: Callable[[], Any]) -> str:
    """Run an SDK call that must fail; return its error code."""
    with pytest.raises(TencentCloudSDKException) as info:
        fn()
    return str(info.value.code)
