"""The HTTP API (README.md, HTTP API; docs/openapi.yaml): routing, authentication, and the integrated response.
The only module that knows HTTP shapes. Every answer is an API Gateway integrated response; every error the
Tencent envelope.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from blueprint.errors import (
    AccessDenied,
    BadRequest,
    BlueprintError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
)
from blueprint.events import HttpRequest, parse_job, parse_json, parse_restore
from blueprint.logs import log, redact

__all__ = ["MAX_BODY", "Authenticator", "HttpApi", "error_response", "generic_error", "respond", "retry_headers"]

MAX_BODY = 64 * 1024
# \Z, not $: `$` also matches before a trailing newline, so "lhbp-12345678\n" would pass.
BLUEPRINT_ID = re.compile(r"lhbp-[a-z0-9]{8}\Z")
_COLLECTION = re.compile(r"(?:^|/)blueprints/?\Z")
_RESTORES = re.compile(r"(?:^|/)restores/?\Z")
INSTANCE_ID = re.compile(r"lhins-[a-z0-9]{8}\Z")
_ITEM = re.compile(r"(?:^|/)blueprints/([^/]*)/?\Z")
_REGION = re.compile(r"[a-z]{2,}(-[a-z0-9]+){1,3}\Z")
SIGNATURE_TOLERANCE = 300
# Seconds a client should wait before retrying, by status: a busy instance finishes its operation in
# minutes; throttling clears within seconds; a cloud-side failure is retried after a short pause.
RETRY_AFTER = {409: 30, 429: 2, 502: 5, 503: 5}
# Header values we look at are short; anything longer is refused before any parsing or hashing.
MAX_ID_HEADER = 256
MAX_SIGNATURE_HEADER = 4096


def respond(status: int, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway / Function URL integrated response with a JSON body.

    The body passes through `redact` like every log line: whatever a message quotes (an unknown field's
    name, a cloud error's text), a configured secret never leaves in an answer.
    """
    return {
        "isBase64Encoded": False,
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **{k: redact(v) for k, v in (headers or {}).items()}},
        "body": redact(orjson.dumps(body).decode()),
    }


def error_response(err: BlueprintError, request_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """The Tencent error envelope with the error's own status (messages are written never to hold secrets).

    An error a retry can fix says when to retry (`Retry-After`), so a client neither hammers nor gives up.
    """
    return respond(err.status, {"Error": err.as_dict(), "RequestId": request_id}, retry_headers(err) | (headers or {}))


def retry_headers(err: BlueprintError) -> dict[str, str]:
    """`Retry-After` for an error a retry can fix (none otherwise)."""
    return {"Retry-After": str(RETRY_AFTER.get(err.status, 5))} if err.retryable else {}


def generic_error(request_id: str) -> dict[str, Any]:
    """The fixed answer for anything unexpected: no detail, only the request id to quote."""
    return respond(500, {"Error": {"Code": "InternalError", "Message": "internal error; quote the RequestId"},
                         "RequestId": request_id})


class Authenticator:
    """Checks an HTTP request's credentials: bearer tokens, Standard Webhooks signatures, or none.

    Every comparison is constant-time and made against every configured token or secret, so neither the
    answer nor its timing says which one (or whether any) was close. Failures never echo what was sent.
    """

    def __init__(self, mode: str, *, tokens: Sequence[str] = (), secrets: Sequence[str] = (),
                 now: Callable[[], float], variable: str = "BLUEPRINT_HTTP_TOKEN") -> None:
        if mode not in ("token", "hmac", "none"):
            raise ValueError("mode must be token, hmac or none")
        self.mode = mode
        self.variable = variable
        self._tokens = [_digest(t) for t in tokens if t]
        self._keys = [key for key in (_secret_key(s) for s in secrets) if key]
        self._now = now
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def refuses_everything(self) -> bool:
        """True when token auth has no token: every request it guards is refused (`serve` says so at start)."""
        return self.mode == "token" and not self._tokens

    def check(self, req: HttpRequest, body: bytes) -> None:
        """Let the request through or raise.

        Raises:
            Unauthorized: missing, wrong, stale or replayed credentials (the message never says which token).
        """
        if self.mode == "none":
            return
        if self.mode == "hmac":
            self._check_signature(req, body)
            return
        if not self._tokens:
            # Logged here, on an HTTP request, not at start: a function with only a timer needs no token.
            what = "HTTP request" if self.variable == "BLUEPRINT_HTTP_TOKEN" else "HTTP restore"
            log("WARNING", f"HTTP authentication has no token ({self.variable}): every {what} is refused")
            raise Unauthorized(f"HTTP access is not configured: set {self.variable}"
                               + (" (or BLUEPRINT_HTTP_AUTH=none on purpose)" if self.variable.endswith("HTTP_TOKEN")
                                  else ""))
        scheme, _, given = (req.header("authorization") or "").strip().partition(" ")
        presented = _digest(given.strip())
        # Equal-length digests, compared against every token: timing says nothing about any of them.
        matched = False
        for token in self._tokens:
            matched |= hmac.compare_digest(presented, token)
        if scheme.lower() != "bearer" or not given.strip() or not matched:
            raise Unauthorized("missing or wrong bearer token")

    def _check_signature(self, req: HttpRequest, body: bytes) -> None:
        msg_id, stamp, signatures = (req.header(h) or "" for h in ("webhook-id", "webhook-timestamp",
                                                                  "webhook-signature"))
        if not msg_id or not stamp or not signatures:
            raise Unauthorized("missing webhook-id, webhook-timestamp or webhook-signature")
        if len(msg_id) > MAX_ID_HEADER or not (msg_id.isascii() and msg_id.isprintable()) \
                or len(signatures) > MAX_SIGNATURE_HEADER:
            raise Unauthorized("bad webhook-id or webhook-signature")
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
            raise Unauthorized("bad webhook-timestamp")
        sent_at = int(stamp)
        if abs(self._now() - sent_at) > SIGNATURE_TOLERANCE:
            raise Unauthorized("webhook-timestamp is more than 5 minutes off")
        signed = f"{msg_id}.{sent_at}.".encode() + body
        expected = [base64.b64encode(hmac.new(k, signed, hashlib.sha256).digest()) for k in self._keys]
        matched = False
        for part in signatures.split():
            version, _, value = part.partition(",")
            presented = value.encode("utf-8", "surrogatepass")
            for candidate in expected:
                matched |= hmac.compare_digest(presented, candidate) and version == "v1"
        if not matched:
            raise Unauthorized("bad webhook-signature")
        self._remember(msg_id)

    def _remember(self, msg_id: str) -> None:
        """Refuse a webhook-id seen within the window a signature stays valid in (replay).

        A timestamp is accepted from 5 minutes before to 5 minutes after it, so an id is kept 10 minutes.
        The memory is per warm container; the idempotency key derived from the id covers the others.
        """
        now = self._now()
        with self._lock:
            while self._seen and next(iter(self._seen.values())) < now - 2 * SIGNATURE_TOLERANCE:
                self._seen.popitem(last=False)
            if msg_id in self._seen:
                raise Unauthorized("webhook-id was already used (replay)")
            self._seen[msg_id] = now
            while len(self._seen) > 100_000:
                self._seen.popitem(last=False)


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def _secret_key(secret: str) -> bytes:
    """The HMAC key: `whsec_` + base64 (Standard Webhooks), else the secret's own bytes."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            pass
    return secret.encode("utf-8", "surrogatepass")


class Jobs(Protocol):
    """What the HTTP API needs from the application."""

    def submit(self, job_data: object, *, header_key: str | None, webhook_id: str | None) -> tuple[
            int, Any, dict[str, str]]:
        """Run a job (keyed by the job's IdempotencyKey, else the signed webhook-id, else the header); returns
        status, body and extra headers."""
        ...

    def restore(self, job_data: object, *, header_key: str | None, webhook_id: str | None) -> tuple[
            int, Any, dict[str, str]]:
        """Run a restore, keyed like a job; returns status, body and extra headers."""
        ...

    def image(self, blueprint_id: str, region: str | None) -> dict[str, Any] | None:
        """The image as DescribeBlueprints returns it, or None."""
        ...

    def listing(self, instance_id: str, region: str | None) -> list[dict[str, Any]] | None:
        """The managed images of an instance, newest first, or None when the instance is not admitted."""
        ...


@dataclass
class HttpApi:
    """Routes one HTTP request to the application.

    `restore_auth` checks `POST /restores` instead of `auth`: a restore formats a disk, so the token that makes
    images never allows one. None when restores are off (then an authenticated caller learns so: 403).
    """

    auth: Authenticator
    jobs: Jobs
    restore_auth: Authenticator | None = None

    def handle(self, req: HttpRequest, request_id: str) -> dict[str, Any]:
        """Answer one request; client mistakes become 4xx envelopes, never exceptions.

        Raises:
            Exception: only the unexpected, which the caller answers with `generic_error`.
        """
        try:
            return self._handle(req)
        except MethodNotAllowed as err:
            return error_response(err, request_id, {"Allow": _allow(_route(req))})
        except Unauthorized as err:
            log("WARNING", "HTTP request refused", code=err.code, error=err.message, auth=self.auth.mode)
            return error_response(err, request_id)
        except BlueprintError as err:
            return error_response(err, request_id)

    def _handle(self, req: HttpRequest) -> dict[str, Any]:
        if len(req.body) > MAX_BODY * 4 // 3 + 4:
            raise PayloadTooLarge(f"the body is over {MAX_BODY} bytes")
        body = req.raw_body()
        if len(body) > MAX_BODY:
            raise PayloadTooLarge(f"the body is over {MAX_BODY} bytes")
        path = _route(req)
        restoring = _RESTORES.search(path) is not None
        guard = self.restore_auth if restoring and self.restore_auth is not None else self.auth
        guard.check(req, body)
        method = req.httpMethod.upper()
        if restoring:
            return self._restore(req, body, method)
        if _COLLECTION.search(path):
            if method not in ("POST", "GET"):
                raise MethodNotAllowed(f"{method} is not allowed here; use POST (or GET with ?InstanceId=)")
            return self._post(req, body) if method == "POST" else self._list(req)
        item = _ITEM.search(path)
        if item:
            if method != "GET":
                raise MethodNotAllowed(f"{method} is not allowed here; use GET")
            return self._get(item.group(1), req)
        raise NotFound("no such route; the API serves POST and GET /blueprints, GET /blueprints/{BlueprintId} and "
                       "POST /restores")

    def _keys(self, req: HttpRequest, guard: Authenticator) -> tuple[str | None, str | None]:
        """The request's idempotency key (header) or, with signed requests, its signed webhook-id."""
        header_key = req.header("idempotency-key")
        if header_key is not None:
            header_key = header_key.strip(" \t")  # the spaces around a field's value are not part of it (RFC 9110)
        if header_key is not None and not (0 < len(header_key) <= 64 and header_key.isprintable()):
            raise BadRequest("the Idempotency-Key header must be 1 to 64 printable characters")
        if guard.mode == "hmac":
            # Only signed material names the slot: the webhook-id (or the job's own IdempotencyKey, in the signed
            # body). An unsigned header could turn a replayed request into a new image in another warm container.
            return None, req.header("webhook-id") or ""
        return header_key, None

    def _json_body(self, req: HttpRequest, body: bytes) -> object:
        ctype = (req.header("content-type") or "").split(";", 1)[0].strip().lower()
        if ctype and ctype != "application/json" and not ctype.endswith("+json"):
            raise UnsupportedMediaType("send the job as application/json")
        if not body.strip():
            raise BadRequest("the body is empty: send a job as JSON")
        return parse_json(body)

    def _post(self, req: HttpRequest, body: bytes) -> dict[str, Any]:
        data = self._json_body(req, body)
        parse_job(data)  # fail fast with a 400 before any cloud call
        header_key, webhook_id = self._keys(req, self.auth)
        status, answer, headers = self.jobs.submit(data, header_key=header_key, webhook_id=webhook_id)
        return respond(status, answer, headers)

    def _restore(self, req: HttpRequest, body: bytes, method: str) -> dict[str, Any]:
        if method != "POST":
            raise MethodNotAllowed(f"{method} is not allowed here; use POST")
        if self.restore_auth is None:
            raise AccessDenied("restores are off: BLUEPRINT_RESTORE=on (with BLUEPRINT_RESTORE_TOKEN) turns them on",
                               code="UnauthorizedOperation.RestoreOff")
        data = self._json_body(req, body)
        parse_restore(data)  # fail fast with a 400 before any cloud call
        header_key, webhook_id = self._keys(req, self.restore_auth)
        status, answer, headers = self.jobs.restore(data, header_key=header_key, webhook_id=webhook_id)
        return respond(status, answer, headers)

    def _list(self, req: HttpRequest) -> dict[str, Any]:
        instance = _query_value(req, "InstanceId")
        if instance is None:
            raise BadRequest("GET /blueprints lists the images of one instance: add ?InstanceId=lhins-xxxxxxxx",
                             code="InvalidParameterValue.InstanceIdMalformed")
        if not INSTANCE_ID.match(instance):
            raise BadRequest("InstanceId must be an instance id like lhins-xxxxxxxx (lhins- and 8 letters or digits)",
                             code="InvalidParameterValue.InstanceIdMalformed")
        found = self.jobs.listing(instance, _query_region(req))
        if found is None:
            raise NotFound(f"no images of {instance}", code="ResourceNotFound.InstanceIdNotFound")
        points = sum(len(entry.get("DiskBackups", [])) for entry in found)
        return respond(200, {"InstanceId": instance, "TotalCount": len(found), "DiskBackupCount": points,
                             "BlueprintSet": found})

    def _get(self, blueprint_id: str, req: HttpRequest) -> dict[str, Any]:
        if not BLUEPRINT_ID.match(blueprint_id):
            raise BadRequest("a BlueprintId looks like lhbp-xxxxxxxx",
                             code="InvalidParameterValue.BlueprintIdMalformed")
        region = _query_region(req)
        image = self.jobs.image(blueprint_id, region)
        if image is None:
            raise NotFound(f"no image {blueprint_id}", code="ResourceNotFound.BlueprintIdNotFound")
        return respond(200, image)


def _allow(path: str) -> str:
    if _RESTORES.search(path):
        return "POST"
    return "GET, POST" if _COLLECTION.search(path) else "GET"


def _query_value(req: HttpRequest, name: str) -> str | None:
    value = req.queryString.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, str) else None


def _route(req: HttpRequest) -> str:
    return req.path.split("?", 1)[0]


def _query_region(req: HttpRequest) -> str | None:
    value = req.queryString.get("Region")
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return None
    if not isinstance(value, str) or not _REGION.match(value):
        raise BadRequest("Region is not a region name", code="InvalidParameterValue.Region")
    return value
