"""What every cloud API client shares: credentials, endpoint profile, client cache and error translation.

SCF injects the run role's temporary credentials as TENCENTCLOUD_SECRETID / SECRETKEY / SESSIONTOKEN, which
none of the SDK's providers read; they may rotate between warm invocations, so they are read on every
invocation and clients are rebuilt when they change. SDK errors are translated in ERROR_TABLE, once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

import orjson
from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from blueprint.errors import (
    AccessDenied,
    AgentUnavailable,
    BadRequest,
    CloudError,
    CloudRejected,
    CloudUnavailable,
    ConfigError,
    DiskQuotaExceeded,
    InstanceBusy,
    InstanceNotFound,
    InvalidInstanceState,
    NotFound,
    QuotaExceeded,
    Throttled,
)
from blueprint.events import as_printable
from blueprint.logs import redact, register_secrets
from blueprint.settings import env_text

if TYPE_CHECKING:
    import requests

__all__ = ["CALL_TIMEOUT", "ERROR_TABLE", "ClientCache", "Credentials", "call_json", "count", "keep_connections",
           "listed", "malformed", "read_credentials", "request_id", "tags_of", "time_of", "translate"]

# One table from cloud error codes to our errors (each carries its HTTP status and whether a retry helps).
ERROR_TABLE: dict[str, type[CloudError] | type[BadRequest] | type[AccessDenied] | type[NotFound]] = {
    "RequestLimitExceeded": Throttled,
    "RequestLimitExceeded.UinLimitExceeded": Throttled,
    "RequestLimitExceeded.GlobalRegionUinLimitExceeded": Throttled,
    "RequestLimitExceeded.IPLimitExceeded": Throttled,
    "InternalError": CloudUnavailable,
    "InternalError.DescribeInstanceStatus": CloudUnavailable,
    "ServiceUnavailable": CloudUnavailable,
    "ClientNetworkError": CloudUnavailable,
    "ServerNetworkError": CloudUnavailable,
    # The SDK wraps a malformed answer (e.g. a proxy's HTML page) as the Python exception's name.
    "JSONDecodeError": CloudUnavailable,
    "UnsupportedOperation.LatestOperationUnfinished": InstanceBusy,
    "OperationDenied.InstanceOperationInProgress": InstanceBusy,
    "OperationDenied.InstanceCreating": InstanceBusy,
    "UnsupportedOperation.InvalidInstanceState": InvalidInstanceState,
    # Data disks: a disk or point busy with another operation is waited out like a busy instance.
    "OperationDenied.DiskBusyForBackupOperation": InstanceBusy,
    "OperationDenied.DiskOperationInProgress": InstanceBusy,
    "UnsupportedOperation.DiskLatestOperationUnfinished": InstanceBusy,
    "UnsupportedOperation.InvalidDiskState": InvalidInstanceState,
    "LimitExceeded.DiskBackupQuotaLimitExceeded": DiskQuotaExceeded,
    "LimitExceeded.BlueprintQuotaLimitExceeded": QuotaExceeded,
    "ResourceNotFound.InstanceIdNotFound": InstanceNotFound,
    "ResourceNotFound.InstanceNotFound": InstanceNotFound,
    "InvalidParameterValue.InstanceIdMalformed": BadRequest,
    "InvalidParameterValue.TooLong": BadRequest,
    # A region the cloud does not serve came from the job: the caller's mistake.
    "UnsupportedRegion": BadRequest,
    "InvalidParameterValue.UnavailableRegion": BadRequest,
    "InvalidParameterValue.LimitExceeded": BadRequest,
    "UnauthorizedOperation.NoPermission": AccessDenied,
    "AuthFailure.UnauthorizedOperation": AccessDenied,
    "UnauthorizedOperation.CAM": AccessDenied,
    # Temporary credentials expired or the clock drifted: fresh credentials on the next try can fix it.
    "AuthFailure.TokenFailure": CloudUnavailable,
    "AuthFailure.SignatureExpire": CloudUnavailable,
    "FailedOperation.InsufficientBalance": CloudRejected,
    "FailedOperation.CreateBlueprintFailed": CloudRejected,
    "FailedOperation.UnableToCreateBlueprint": CloudRejected,
    "ResourceNotFound.BlueprintIdNotFound": NotFound,
    "ResourceNotFound.Function": NotFound,
    "ResourceNotFound": NotFound,
    # Documented as "try again later" (Lighthouse errorcodes: DescribeBlueprints, DescribeInstances).
    "FailedOperation.DescribeBlueprintsFailed": CloudUnavailable,
    "FailedOperation.DescribeInstanceStatus": CloudUnavailable,
    # TDMQ CMQ: the queue or topic is momentarily unavailable ("The resource is unavailable"); unlike
    # ResourceUnavailable.FundRequired / .InsufficientBalance (top up first), waiting can fix it.
    "ResourceUnavailable": CloudUnavailable,
    "ResourceUnavailable.FundRequired": CloudRejected,
    "ResourceUnavailable.InsufficientBalance": CloudRejected,
    "FailedOperation.OperateLater": CloudUnavailable,
    "FailedOperation.CloudService": CloudUnavailable,
    "FailedOperation.SendMessageTimeoutError": CloudUnavailable,
    # SCF, as `python -m blueprint deploy` meets it (tencentcloud-sdk-go scf/v20180416/client.go error lists).
    "ResourceNotFound.FunctionName": NotFound,
    "ResourceNotFound.Trigger": NotFound,
    "ResourceNotFound.Namespace": NotFound,
    "ResourceNotFound.Role": NotFound,
    "ResourceInUse.Function": CloudRejected,
    "ResourceInUse.FunctionName": CloudRejected,
    "ResourceInUse.Trigger": CloudRejected,
    "ResourceInUse.TriggerName": CloudRejected,
    # The function is being deployed (Creating / Updating): a later call, once it is Active, succeeds
    # (Invoke's "Operation failed. The function is deploying." included).
    "FailedOperation.FunctionStatusError": InstanceBusy,
    "FailedOperation.FunctionNameStatusError": InstanceBusy,
    "FailedOperation.UpdateFunctionCode": InstanceBusy,
    "FailedOperation.UpdateFunctionConfiguration": InstanceBusy,
    "FailedOperation.CreateTrigger": InstanceBusy,
    "FailedOperation.DeleteTrigger": InstanceBusy,
    "FailedOperation.UpdateTrigger": InstanceBusy,
    "FailedOperation.QcsRoleNotFound": CloudRejected,
    "LimitExceeded.Function": CloudRejected,
    "LimitExceeded.Trigger": CloudRejected,
    "LimitExceeded.Memory": BadRequest,
    "LimitExceeded.Timeout": BadRequest,
    "UnsupportedOperation.Trigger": BadRequest,
    "UnauthorizedOperation.Role": AccessDenied,
    # Bad keys: the deploying user's (or the role's) credentials are wrong, not the cloud.
    "AuthFailure.SecretIdNotFound": AccessDenied,
    "AuthFailure.SignatureFailure": AccessDenied,
    "AuthFailure.InvalidSecretId": AccessDenied,
    # TAT (automation agent) 2020-10-28, codes from the Go SDK's per-action lists.
    # The agent is offline or missing: nothing runs until someone fixes the instance, so no retry.
    "ResourceUnavailable.AgentStatusNotOnline": AgentUnavailable,
    "ResourceUnavailable.AgentNotInstalled": AgentUnavailable,
    "ResourceUnavailable.InstanceStateNotRunning": InvalidInstanceState,
    "ResourceNotFound.CommandNotFound": NotFound,
    "ResourceNotFound.InvocationNotFound": NotFound,
    # TAT could not reach the Lighthouse (or CVM) service behind it: their side, a retry can help.
    "FailedOperation.LighthouseError": CloudUnavailable,
    "FailedOperation.CVMError": CloudUnavailable,
    # TAT's wording for an expired or bad session token, like AuthFailure.TokenFailure above.
    "UnauthorizedOperation.InvalidToken": CloudUnavailable,
    "UnauthorizedOperation.CamAuthFailed": AccessDenied,
    "ResourceUnavailable.LighthouseUnsupportedRegion": BadRequest,
}
# Families of codes not named above.
_PREFIXES: tuple[tuple[str, type[CloudError] | type[BadRequest] | type[AccessDenied] | type[NotFound]], ...] = (
    ("RequestLimitExceeded", Throttled),
    ("InternalError", CloudUnavailable),
    ("ResourceNotFound", NotFound),
    ("UnauthorizedOperation", AccessDenied),
    ("InvalidParameter", BadRequest),
    ("MissingParameter", BadRequest),
)


def translate(err: TencentCloudSDKException, *, action: str) -> CloudError | BadRequest | AccessDenied | NotFound:
    """Turn an SDK exception into our error, keeping the cloud's code and request id."""
    code = str(err.get_code() or "FailedOperation")
    cls = ERROR_TABLE.get(code)
    if cls is None:
        cls = next((c for prefix, c in _PREFIXES if code.startswith(prefix)), CloudRejected)
    message = as_printable(redact(str(err.get_message() or code)))[:500]
    if code in ("ClientNetworkError", "ServerNetworkError"):
        message = f"{action}: the cloud API could not be reached or answered badly"
    return cls(f"{action}: {message}" if not message.startswith(action) else message,
               code=code, request_id=err.get_request_id())


NOT_THE_API = "the answer is not the API's JSON envelope (a Response object with its RequestId)"


def call_json(client: Any, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """One API call by name with plain JSON both ways: the answer's `Response` object.

    The SDK still signs, sends, retries (its profile's retryer) and raises the cloud's errors
    (`AbstractClient.call`); what this leaves out is the generated method's round trip through request and
    response models (`_serialize`/`_deserialize`, a second `json.loads`), which a caller that reads a few
    fields does not need (a warm timer run's own time, issue 18). An answer that is not the API's JSON (a
    proxy's HTML page with HTTP 200, an envelope without a `Response` object or without its `RequestId`) is
    raised as a `TencentCloudSDKException` named `JSONDecodeError`, as the generated methods name a page that
    is not JSON; the lists an answer must hold are checked where they are read (`blueprint.disks.listed`).

    Raises:
        TencentCloudSDKException: the cloud's error, a network error, or a malformed answer.
    """
    try:
        raw = client.call(action, params)
    except TencentCloudSDKException:
        raise
    except Exception as err:
        # The SDK turns network errors into its own exception; what else escapes is its reading of an answer
        # that is not the API's envelope (`{"Error": ...}` without `Response`: KeyError), a retry's business.
        # The message is ours: a Python exception's text is no help to whoever reads the result.
        raise TencentCloudSDKException("JSONDecodeError", NOT_THE_API) from err
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise TencentCloudSDKException("JSONDecodeError", NOT_THE_API) from err
    answer = body.get("Response") if isinstance(body, dict) else None
    if not isinstance(answer, dict):
        raise TencentCloudSDKException("JSONDecodeError", NOT_THE_API)
    request_id = answer.get("RequestId")
    error = answer.get("Error")
    if isinstance(error, dict):
        # The SDK raises an error answer only under a Content-Type of exactly `application/json` (or
        # `text/plain`); under `application/json; charset=utf-8` it hands the error back as an answer.
        raise TencentCloudSDKException(str(error.get("Code") or "InternalError"), str(error.get("Message") or ""),
                                       request_id if isinstance(request_id, str) else None)
    # Every answer of API 3.0 carries its RequestId, errors and successes alike.
    if not isinstance(request_id, str):
        raise TencentCloudSDKException("JSONDecodeError", NOT_THE_API)
    return answer


# What an answer read by `call_json` holds, read defensively: its fields are the cloud's word, not a model's.

def request_id(answer: Mapping[str, Any]) -> str:
    """The answer's RequestId (`call_json` saw to it that there is one)."""
    return str(answer.get("RequestId"))


def malformed(message: str, answer: Mapping[str, Any] | None = None) -> CloudUnavailable:
    """The error for an answer that lacks what the API says it holds: retryable, like a page that is not JSON."""
    return CloudUnavailable(message, code="JSONDecodeError",
                            request_id=request_id(answer) if answer is not None else None)


_ABSENT = object()


def listed(answer: Mapping[str, Any], name: str, key: str | None = None) -> list[dict[str, Any]]:
    """The answer's list `name` (its entries that carry their id `key`); null is read as an empty list.

    Every list the function reads is one the API document says an answer holds (none is documented as
    nullable); an answer without it was mangled on the way, and reading it as "none" would image no fleet,
    stop no instance or share again (issue 18's garbled-answer attacks).

    Raises:
        CloudUnavailable: the answer lacks the list, or holds something else there (retryable).
    """
    rows = answer.get(name, _ABSENT)
    if rows is None:
        return []
    if not isinstance(rows, list):
        raise malformed(f"the answer has no {name} list; it is not the API's", answer)
    return [row for row in rows if isinstance(row, dict) and (key is None or row.get(key))]


def count(value: object) -> int:
    """A count the cloud gave (0 when it gave none, or something that is not a count)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def tags_of(items: object) -> dict[str, str]:
    """An answer's `Tags` list as a dict (entries without a key left out)."""
    return {str(t["Key"]): str(t.get("Value") or "") for t in items if isinstance(t, dict) and t.get("Key")} \
        if isinstance(items, list) else {}


def time_of(text: object) -> datetime | None:
    """A time the cloud gave (`2026-11-27T03:00:00Z` or with an offset) in UTC; None for none or anything else."""
    if not text or not isinstance(text, str):
        return None
    try:
        # fromisoformat is ~10x faster than strptime; Python 3.10's does not read a trailing Z.
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)
    except ValueError:
        return None


class Credentials(NamedTuple):
    """The run role's credentials as read from the environment (never shown by `repr`/`str`)."""

    secret_id: str
    secret_key: str
    token: str | None

    def __repr__(self) -> str:
        return f"Credentials(secret_id={self.secret_id[:6]}…, secret_key=***, token={'***' if self.token else None})"

    def __str__(self) -> str:
        return self.__repr__()


def read_credentials(env: Mapping[str, str]) -> Credentials:
    """Read SCF's credential variables (the SDK's own names as a fallback).

    Raises:
        ConfigError: no secret id / key is set.
    """
    # Read as every variable is: without the spaces around it, and one of spaces only is no value (the other
    # spelling is read then; a token with a stray newline would be a header the HTTP client refuses).
    secret_id = env_text(env, "TENCENTCLOUD_SECRETID") or env_text(env, "TENCENTCLOUD_SECRET_ID")
    secret_key = env_text(env, "TENCENTCLOUD_SECRETKEY") or env_text(env, "TENCENTCLOUD_SECRET_KEY")
    if not secret_id or not secret_key:
        raise ConfigError("no cloud credentials: give the function a run role (SCF sets TENCENTCLOUD_SECRETID, "
                          "TENCENTCLOUD_SECRETKEY, TENCENTCLOUD_SESSIONTOKEN), or set them for a local run")
    credentials = Credentials(secret_id, secret_key, env_text(env, "TENCENTCLOUD_SESSIONTOKEN") or None)
    # Read on every invocation (SCF rotates the role's keys), so fresh values are registered as they come.
    register_secrets([credentials.secret_key, credentials.token])
    return credentials


def http_profile(endpoint: str | None, service: str, timeout: int) -> HttpProfile:
    """The SDK profile for a service: the real endpoint, or BLUEPRINT_API_ENDPOINT for every service."""
    if endpoint:
        parts = urlsplit(endpoint)
        # The SDK derives its scheme from `protocol` in the constructor only.
        return HttpProfile(protocol=parts.scheme or "https", endpoint=parts.netloc or parts.path, reqTimeout=timeout)
    return HttpProfile(endpoint=f"{service}.tencentcloudapi.com", reqTimeout=timeout)


T = TypeVar("T")

# Seconds one API call may take (the SDK's HTTP timeout for every client the function builds).
CALL_TIMEOUT = 10


class ClientCache:
    """One SDK client per (service, region), reused across warm invocations; rebuilt when credentials change.

    The SDK keeps one `requests.Session` per client, so reuse keeps the TCP/TLS connection warm.
    """

    def __init__(self, endpoint: str | None, *, timeout: int = CALL_TIMEOUT, connections: int = 10) -> None:
        self._endpoint = endpoint
        self._timeout = timeout
        # Kept-alive connections per client: as many as calls of one client may run side by side.
        self._connections = connections
        self._lock = threading.Lock()
        self._credentials: Credentials | None = None
        self._clients: dict[tuple[str, str], Any] = {}

    def use(self, credentials: Credentials) -> None:
        """Switch to these credentials (a no-op when they did not change)."""
        with self._lock:
            if credentials != self._credentials:
                self._credentials = credentials
                self._clients.clear()

    def get(self, service: str, region: str, factory: Callable[[Credential, str, ClientProfile], T]) -> T:
        """The client for a service in a region, built on first use.

        Raises:
            ConfigError: no credentials were given with `use`.
        """
        key = (service, region)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                if self._credentials is None:
                    raise ConfigError("no cloud credentials")
                cred = Credential(self._credentials.secret_id, self._credentials.secret_key,
                                  self._credentials.token)
                profile = ClientProfile(httpProfile=http_profile(self._endpoint, service, self._timeout))
                profile.language = "en-US"
                client = factory(cred, region, profile)
                _keep_connections(client, self._connections)
                _environment_once(client)
                self._clients[key] = client
        result: T = client
        return result


# What requests keeps per host unless told otherwise (`requests.adapters.DEFAULT_POOLSIZE`).
_DEFAULT_CONNECTIONS = 10


def _keep_connections(client: Any, count: int) -> None:
    """Let `count` calls of one SDK client run side by side on kept-alive connections.

    The SDK sends through one `requests.Session` per client (`client.request.conn._session` in
    tencentcloud-sdk-python-common 3.1), which keeps 10 connections per host: a fleet's creates, up to
    BLUEPRINT_CONCURRENCY at once, would open (and TLS-handshake) a new connection for every call beyond
    those 10. Where the SDK does not look like that, it is left as it is.
    """
    if count <= _DEFAULT_CONNECTIONS:
        return
    session = getattr(getattr(getattr(client, "request", None), "conn", None), "_session", None)
    if session is not None and hasattr(session, "mount"):
        keep_connections(session, count)


def _environment_once(client: Any) -> None:
    """Give the client's session, once, what requests would otherwise read from the environment on every call.

    A `requests.Session` trusts the environment by default: each call scans os.environ for proxies (twice),
    looks for a ~/.netrc (two stat calls) and reads the CA-bundle variables, about 100 µs per call when hot
    (`bench/`), more than the function's own code around that call. The SDK reads HTTPS_PROXY / HTTP_PROXY
    and NO_PROXY itself when the client is built and passes its CA file explicitly, so the session adds only
    two things: a proxy from ALL_PROXY (read here, once, for the client's host, as requests would) and basic
    auth from a ~/.netrc entry for the host, which would replace the TC3 signature's Authorization header and
    fail every call. NO_PROXY is read here as requests reads it, for every proxy variable (`_bypassed`). Where
    the SDK does not look like that, it is left as it is.
    """
    request = getattr(client, "request", None)
    conn: Any = getattr(request, "conn", None)
    session = getattr(conn, "_session", None)
    if session is None or not hasattr(session, "trust_env") or not hasattr(conn, "proxy"):
        return
    from requests.utils import get_environ_proxies  # noqa: PLC0415 (already imported by requests)

    url = f"{'http' if getattr(request, 'is_http', False) else 'https'}://{conn.request_host}"
    if _bypassed(url, str(conn.request_host)):
        conn.proxy = None
    elif not conn.proxy:  # the SDK found no proxy for its host
        conn.proxy = get_environ_proxies(url) or None
    session.trust_env = False


def _bypassed(url: str, host: str) -> bool:
    """NO_PROXY names the host: as requests reads it (a domain covers its subdomains), or the exact `host:port`.

    The SDK reads NO_PROXY for its HTTPS_PROXY / HTTP_PROXY by a substring test of the host: a domain entry
    (`.tencentcloudapi.com`) never matched `lighthouse.tencentcloudapi.com`, and the proxy was used anyway.
    """
    from requests.utils import should_bypass_proxies  # noqa: PLC0415 (already imported by requests)

    entries = {e.strip() for e in (os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or "").split(",")}
    return host in entries or bool(should_bypass_proxies(url, no_proxy=None))


def keep_connections(session: requests.Session, count: int) -> requests.Session:
    """The session, keeping `count` connections per host alive (both schemes), not requests' 10."""
    from requests.adapters import HTTPAdapter  # noqa: PLC0415 (already imported by requests)

    adapter = HTTPAdapter(pool_maxsize=count)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
