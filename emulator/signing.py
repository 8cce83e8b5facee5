"""TC3-HMAC-SHA256: computing signatures (for tests and hand-made requests) and verifying them."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from emulator.errors import ApiError

ALGORITHM = "TC3-HMAC-SHA256"
MAX_SKEW_SECONDS = 300
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

_AUTH_RE = re.compile(
    r"^TC3-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<sig>[0-9a-fA-F]{64})\s*$"
)


@dataclass(frozen=True)
class Authorization:
    """The parsed Authorization header."""

    secret_id: str
    date: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def utc_date(timestamp: int) -> str:
    """The `YYYY-MM-DD` UTC date of a Unix timestamp, as used in the credential scope."""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d")


def canonical_request(
    method: str, query: str, headers: Mapping[str, str], signed: tuple[str, ...], payload_hash: str
) -> str:
    """Build the canonical request from the headers the client declared as signed."""
    canonical_headers = "".join(f"{name}:{headers[name]}\n" for name in signed)
    return "\n".join([method, "/", query, canonical_headers, ";".join(signed), payload_hash])


def signature(secret_key: str, service: str, timestamp: int, canonical: str) -> str:
    """TC3 signature of a canonical request (Signature v3, https://tencentcloud.com/document/product/1084/39391)."""
    date = utc_date(timestamp)
    scope = f"{date}/{service}/tc3_request"
    to_sign = "\n".join([ALGORITHM, str(timestamp), scope, sha256_hex(canonical.encode("utf-8"))])
    k_date = _hmac(("TC3" + secret_key).encode("utf-8"), date)
    k_signing = _hmac(_hmac(k_date, service), "tc3_request")
    return hmac.new(k_signing, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization_header(secret_id: str, service: str, timestamp: int, signed: str, sig: str) -> str:
    """The Authorization header value for a computed signature."""
    scope = f"{utc_date(timestamp)}/{service}/tc3_request"
    return f"{ALGORITHM} Credential={secret_id}/{scope}, SignedHeaders={signed}, Signature={sig}"


def parse_authorization(value: str | None) -> Authorization:
    """Parse `Authorization: TC3-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.

    Raises:
        ApiError: AuthFailure.InvalidAuthorization when absent, of another algorithm or malformed.
    """
    match = _AUTH_RE.match(value or "")
    if match is None:
        raise ApiError("AuthFailure.InvalidAuthorization")
    parts = match["cred"].split("/")
    if len(parts) != 4 or parts[3] != "tc3_request" or not all(parts):
        raise ApiError("AuthFailure.InvalidAuthorization", "Credential scope is malformed.")
    signed = tuple(match["signed"].lower().split(";"))
    if "content-type" not in signed or "host" not in signed:
        raise ApiError("AuthFailure.InvalidAuthorization", "SignedHeaders must include content-type and host.")
    return Authorization(parts[0], parts[1], parts[2], signed, match["sig"].lower())


@dataclass(frozen=True)
class SignedRequest:
    """What the verifier needs from an HTTP request; header names lower-cased."""

    method: str
    query: str
    headers: Mapping[str, str]
    body: bytes


def _payload_hash(req: SignedRequest) -> str:
    if req.headers.get("x-tc-content-sha256", "").upper() == UNSIGNED_PAYLOAD:
        return sha256_hex(UNSIGNED_PAYLOAD.encode())
    return sha256_hex(b"" if req.method == "GET" else req.body)


def _timestamp(req: SignedRequest, now: float) -> int:
    raw = req.headers.get("x-tc-timestamp")
    if raw is None:
        raise ApiError("MissingParameter", "The request is missing a required parameter `Timestamp`.")
    try:
        stamp = int(raw)
    except ValueError:
        raise ApiError("InvalidParameter", "Timestamp must be an integer.") from None
    if abs(now - stamp) > MAX_SKEW_SECONDS:
        raise ApiError("AuthFailure.SignatureExpire")
    return stamp


def _candidates(req: SignedRequest, auth: Authorization, payload_hash: str) -> list[str]:
    """Canonical requests to accept: values as sent (SDKs) and lower-cased (the doc's example)."""
    try:
        as_sent = {name: req.headers[name].strip() for name in auth.signed_headers}
    except KeyError as err:
        raise ApiError("AuthFailure.InvalidAuthorization", f"Signed header {err} is absent.") from None
    lowered = {name: value.lower() for name, value in as_sent.items()}
    return [
        canonical_request(req.method, req.query, headers, auth.signed_headers, payload_hash)
        for headers in (as_sent, lowered)
    ]


def verify(req: SignedRequest, keys: Mapping[str, str], now: float) -> Authorization:
    """Check the TC3 signature of `req` against `keys` (SecretId -> SecretKey) at real time `now`.

    Raises:
        ApiError: AuthFailure.InvalidAuthorization, .SecretIdNotFound, .SignatureExpire or
            .SignatureFailure; MissingParameter when X-TC-Timestamp is absent.
    """
    auth = parse_authorization(req.headers.get("authorization"))
    secret_key = keys.get(auth.secret_id)
    if secret_key is None:
        raise ApiError("AuthFailure.SecretIdNotFound")
    stamp = _timestamp(req, now)
    if auth.date != utc_date(stamp):
        raise ApiError("AuthFailure.SignatureFailure")
    for canonical in _candidates(req, auth, _payload_hash(req)):
        expected = signature(secret_key, auth.service, stamp, canonical)
        if hmac.compare_digest(expected, auth.signature):
            return auth
    raise ApiError("AuthFailure.SignatureFailure")
