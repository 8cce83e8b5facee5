"""What every cloud client shares (blueprint/cloud.py): the error table's defaults, the credentials the SDK is
given, the endpoint profile and the client cache. The SDK's own exception and client classes are used as
they are; nothing of the SDK is replaced.

The paths that talk to the cloud are covered against the emulator elsewhere (tests/hostile/test_secrets.py
for the session token); these pin the details mutation testing found unguarded (docs/mutation.md).
"""

from __future__ import annotations

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.lighthouse.v20200324.lighthouse_client import LighthouseClient

from blueprint.cloud import ClientCache, Credentials, http_profile, read_credentials, translate
from blueprint.errors import CloudRejected, CloudUnavailable, ConfigError


def test_an_sdk_error_without_a_code_is_a_failed_operation_that_is_not_retried() -> None:
    err = translate(TencentCloudSDKException(None, None, "req-7"), action="CreateBlueprint")
    assert isinstance(err, CloudRejected) and not err.retryable
    assert (err.code, err.request_id, err.message) == ("FailedOperation", "req-7", "CreateBlueprint: FailedOperation")


def test_the_clouds_code_message_and_request_id_are_kept() -> None:
    err = translate(TencentCloudSDKException("InternalError", "the backend\nfailed\tbadly", "req-1"),
                    action="DescribeBlueprints")
    assert isinstance(err, CloudUnavailable) and err.retryable
    assert (err.code, err.request_id) == ("InternalError", "req-1")
    # Control characters become spaces: a cloud message never breaks a log line or a chat message.
    assert err.message == "DescribeBlueprints: the backend failed badly"


def test_a_message_is_cut_to_500_characters_and_names_the_action_once() -> None:
    err = translate(TencentCloudSDKException("InternalError", "x" * 700), action="DescribeBlueprints")
    assert err.message == "DescribeBlueprints: " + "x" * 500
    named = translate(TencentCloudSDKException("InternalError", "DescribeBlueprints timed out"),
                      action="DescribeBlueprints")
    assert named.message == "DescribeBlueprints timed out"


@pytest.mark.parametrize("code", ["ClientNetworkError", "ServerNetworkError"])
def test_network_errors_say_what_happened_not_what_the_sdk_printed(code: str) -> None:
    err = translate(TencentCloudSDKException(code, "HTTPSConnectionPool(host=..., port=443): Max retries"),
                    action="CreateBlueprint")
    assert isinstance(err, CloudUnavailable)
    assert err.message == "CreateBlueprint: the cloud API could not be reached or answered badly"
    other = translate(TencentCloudSDKException("InternalError", "Max retries"), action="CreateBlueprint")
    assert other.message == "CreateBlueprint: Max retries"


def test_the_sdks_own_variable_names_are_read_when_scfs_are_absent() -> None:
    creds = read_credentials({"TENCENTCLOUD_SECRET_ID": " AKIDlocal ", "TENCENTCLOUD_SECRET_KEY": "local-key-1"})
    assert (creds.secret_id, creds.secret_key, creds.token) == ("AKIDlocal", "local-key-1", None)
    scf = read_credentials({"TENCENTCLOUD_SECRETID": "AKIDscf", "TENCENTCLOUD_SECRET_ID": "AKIDlocal",
                            "TENCENTCLOUD_SECRETKEY": "scf-key-1", "TENCENTCLOUD_SECRET_KEY": "local-key-1",
                            "TENCENTCLOUD_SESSIONTOKEN": "session-token-1"})
    assert (scf.secret_id, scf.secret_key, scf.token) == ("AKIDscf", "scf-key-1", "session-token-1")


def test_credentials_are_read_without_the_spaces_around_them() -> None:
    # Spaces only are no value: the other spelling is read (before, "   " was taken, and every call failed).
    creds = read_credentials({"TENCENTCLOUD_SECRETID": "   ", "TENCENTCLOUD_SECRET_ID": "AKIDlocal",
                              "TENCENTCLOUD_SECRETKEY": "\t", "TENCENTCLOUD_SECRET_KEY": "local-key-1",
                              "TENCENTCLOUD_SESSIONTOKEN": "\ufeffsession-token-1\u200b\n"})
    assert (creds.secret_id, creds.secret_key, creds.token) == ("AKIDlocal", "local-key-1", "session-token-1")
    assert read_credentials({"TENCENTCLOUD_SECRETID": "AKIDscf", "TENCENTCLOUD_SECRETKEY": "scf-key-1",
                             "TENCENTCLOUD_SESSIONTOKEN": "  "}).token is None
    with pytest.raises(ConfigError, match="no cloud credentials"):
        read_credentials({"TENCENTCLOUD_SECRETID": "AKIDscf", "TENCENTCLOUD_SECRETKEY": " "})


def test_the_repr_shows_whether_there_is_a_token_never_the_token() -> None:
    with_token = Credentials("AKIDabcdefgh", "the-key", "the-token")
    assert repr(with_token) == "Credentials(secret_id=AKIDab…, secret_key=***, token=***)"
    assert str(Credentials("AKIDabcdefgh", "the-key", None)).endswith("token=None)")


def test_the_profile_of_the_real_cloud_and_of_a_configured_endpoint() -> None:
    real = http_profile(None, "lighthouse", 7)
    assert (real.endpoint, real.protocol, real.reqTimeout) == ("lighthouse.tencentcloudapi.com", "https", 7)
    # (Settings accept only http(s) URLs for BLUEPRINT_API_ENDPOINT, so the endpoint always has a scheme.)
    local = http_profile("http://127.0.0.1:9000", "tat", 3)
    assert (local.endpoint, local.protocol, local.reqTimeout) == ("127.0.0.1:9000", "http", 3)


def test_a_client_is_built_once_with_the_credentials_token_language_and_timeout() -> None:
    cache = ClientCache("http://127.0.0.1:9000", timeout=4)
    with pytest.raises(ConfigError, match="no cloud credentials"):
        cache.get("lighthouse", "ap-guangzhou", LighthouseClient)
    cache.use(Credentials("AKIDfirst", "first-key", "first-token"))
    client = cache.get("lighthouse", "ap-guangzhou", LighthouseClient)
    assert cache.get("lighthouse", "ap-guangzhou", LighthouseClient) is client  # reused: the connection stays warm
    assert cache.get("lighthouse", "ap-shanghai", LighthouseClient) is not client
    assert (client.credential.secretId, client.credential.secretKey, client.credential.token) == (
        "AKIDfirst", "first-key", "first-token")
    assert (client.profile.language, client.profile.httpProfile.reqTimeout) == ("en-US", 4)
    assert client.profile.httpProfile.endpoint == "127.0.0.1:9000"
    cache.use(Credentials("AKIDfirst", "first-key", "rotated-token"))
    rotated = cache.get("lighthouse", "ap-guangzhou", LighthouseClient)
    assert rotated is not client and rotated.credential.token == "rotated-token"
    real = ClientCache(None)
    real.use(Credentials("AKIDfirst", "first-key", None))
    on_cloud = real.get("lighthouse", "ap-guangzhou", LighthouseClient)
    assert on_cloud.profile.httpProfile.endpoint == "lighthouse.tencentcloudapi.com"
    assert on_cloud.profile.httpProfile.reqTimeout == 10
