"""The Emulator: wires state, services, signing, limits and faults behind one HTTP endpoint."""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from emulator import control
from emulator.errors import ApiError
from emulator.faults import Faults, Plan
from emulator.lh_core import Options
from emulator.lighthouse import Lighthouse
from emulator.ratelimit import RateLimiter, resolve_limits
from emulator.scf import Scf
from emulator.schema import unflatten, validate
from emulator.server import JSON, HttpRequest, HttpServer, Reply
from emulator.service import Ctx, Service
from emulator.signing import SignedRequest, verify
from emulator.state import DEFAULT_UIN, World, load_state
from emulator.tag import Tag
from emulator.tat import Tat
from emulator.tdmq import Tdmq

log = logging.getLogger("emulator")

# Public, fixed test credentials, not secrets.
SECRET_ID = "AKIDEMULATOR"  # noqa: S105
SECRET_KEY = "emulator-secret"  # noqa: S105


@dataclass(frozen=True)
class Call:
    """One API call as the emulator saw it; `error` is the code answered, None on success."""

    service: str | None
    action: str | None
    region: str | None
    params: dict[str, Any]
    time: float
    request_id: str
    error: str | None
    dropped: bool = False


@dataclass
class _Pending:
    """What is known about a call while it is being served."""

    request_id: str
    service: str | None = None
    action: str | None = None
    region: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


class Emulator:
    """A local Tencent Cloud API 3.0 endpoint: Lighthouse, TAT, TDMQ CMQ, SCF (functions, triggers, Invoke), Tag."""

    def __init__(
        self,
        state: dict[str, Any] | str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        image_seconds: float = 30.0,
        op_seconds: float = 0.0,
        in_progress_state: str = "CREATING",
        restart_after_image: bool = True,
        quota: int | None = None,
        latency: float | Mapping[str, float] = 0.0,
        rate_limits: Mapping[str, int | None] | bool | None = None,
        rate_window: float = 1.0,
        credentials: Mapping[str, str] | None = None,
        tokens: Mapping[str, str] | None = None,
        accounts: Mapping[str, str] | None = None,
        time_limit_ms: int = 900_000,
        retry_events: bool = True,
        function_seconds: float = 1.0,
        runtimes: Mapping[str, str] | None = None,
        command_seconds: float = 1.0,
        deliver_seconds: float = 0.0,
        **lighthouse_options: Any,
    ) -> None:
        self._initial = load_state(state)
        self._host, self._port = host, port
        self.latency = latency
        self.keys = {SECRET_ID: SECRET_KEY, **dict(credentials or {})}
        # secret id -> session token: those ids are temporary keys (a run role's), valid only with their token.
        self.tokens: dict[str, str] = dict(tokens or {})
        # secret id -> account uin; every other secret id belongs to DEFAULT_UIN.
        self.uins: dict[str, str] = dict(accounts or {})
        self.world = World()
        self.faults = Faults()
        self.limiter = RateLimiter(resolve_limits(rate_limits), window=rate_window)
        options = Options(
            image_seconds=image_seconds,
            op_seconds=op_seconds,
            in_progress_state=in_progress_state,
            restart_after_image=restart_after_image,
            quota=quota,
            **lighthouse_options,
        )
        self.lighthouse = Lighthouse(self.world, options)
        self.tat: Tat = Tat(
            self.world, self.lighthouse, command_seconds=command_seconds, deliver_seconds=deliver_seconds
        )
        self.tdmq = Tdmq(self.world)
        self.scf = Scf(
            self.world,
            time_limit_ms=time_limit_ms,
            retry_events=retry_events,
            function_seconds=function_seconds,
            runtimes=runtimes,
            base_url=self._base_url,
            credentials=(SECRET_ID, SECRET_KEY),
        )
        self.tag = Tag(self.world, self.lighthouse.tag_target, self.lighthouse.taggable)
        services: tuple[Service, ...] = (self.lighthouse, self.tat, self.tdmq, self.scf, self.tag)
        self.services: dict[str, Service] = {s.name: s for s in services}
        self._calls: list[Call] = []
        self._calls_lock = threading.Lock()
        self._server: HttpServer | None = None
        self.reset()

    # ---- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Serve on host:port in a daemon thread; returns self.

        Raises:
            OSError: when the address cannot be bound.
        """
        if self._server is None:
            self._server = HttpServer(self, self._host, self._port)
            self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Back to the initial state: services reloaded, calls, faults and rate windows cleared."""
        with self.world.lock:
            self.world.regions[:] = list(self._initial.get("regions") or [])
            for service in self.services.values():
                service.reset(self._initial)
            for uin in set(self.uins.values()):
                self.lighthouse.add_account(uin)
        self.faults.clear()
        self.limiter.reset()
        self.reset_calls()

    @property
    def endpoint(self) -> str:
        """`host:port` for HttpProfile(endpoint=...).

        Raises:
            RuntimeError: before start().
        """
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        host, port = self._server.address
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        """`http://host:port`.

        Raises:
            RuntimeError: before start().
        """
        return f"http://{self.endpoint}"

    def _base_url(self) -> str:
        """Where functions reach the emulator (and Function URLs live); a placeholder before start()."""
        return self.url if self._server is not None else "http://127.0.0.1:0"

    def add_account(self, secret_id: str, secret_key: str, uin: str) -> None:
        """Let `secret_id`/`secret_key` sign requests as the (main) account `uin`.

        Raises:
            ValueError: when `uin` is not all digits.
        """
        self.lighthouse.add_account(uin)
        self.keys[secret_id] = secret_key
        self.uins[secret_id] = uin

    def add_temporary_key(self, secret_id: str, secret_key: str, token: str) -> None:
        """Let a temporary key sign requests, each of which must carry its session token (`X-TC-Token`).

        Calling it again for the same secret id replaces the token: the old one stops working (a rotation).
        """
        self.keys[secret_id] = secret_key
        self.tokens[secret_id] = token

    def _check_token(self, secret_id: str, token: str | None) -> None:
        """A temporary key is valid only with its session token; a permanent key needs none.

        Raises:
            ApiError: AuthFailure.TokenFailure for a temporary key whose token is missing or not its own.
        """
        expected = self.tokens.get(secret_id)
        if expected is not None and not hmac.compare_digest((token or "").encode(), expected.encode()):
            raise ApiError("AuthFailure.TokenFailure", "The token is missing, invalid or expired.")

    def uin_of(self, secret_id: str) -> str:
        """The account a secret id signs as."""
        return self.uins.get(secret_id, DEFAULT_UIN)

    # ---- clock and calls -------------------------------------------------------------------------------

    def now(self) -> float:
        """Emulated epoch seconds."""
        return self.world.clock.now()

    def advance(self, seconds: float) -> None:
        """Move emulated time forward and apply the transitions that became due (TAT tasks follow the clock).

        Raises:
            ValueError: when `seconds` is negative.
        """
        self.world.clock.advance(seconds)
        self.lighthouse.tick()

    @property
    def calls(self) -> list[Call]:
        """A snapshot of every call so far, oldest first."""
        with self._calls_lock:
            return list(self._calls)

    def calls_of(self, action: str) -> list[Call]:
        """The calls of one action."""
        return [call for call in self.calls if call.action == action]

    def reset_calls(self) -> None:
        """Forget recorded calls."""
        with self._calls_lock:
            self._calls.clear()

    def _record(self, pending: _Pending, error: str | None, dropped: bool = False) -> None:
        call = Call(
            pending.service,
            pending.action,
            pending.region,
            pending.params,
            self.now(),
            pending.request_id,
            error,
            dropped,
        )
        with self._calls_lock:
            self._calls.append(call)

    # ---- serving ---------------------------------------------------------------------------------------

    def handle_control(self, request: HttpRequest) -> Reply:
        """Answer a `/_emulator/...` call (see emulator.control)."""
        return control.handle(self, request)

    def handle_function_url(self, request: HttpRequest) -> Reply:
        """Answer a request to a Function URL (`/_fn/<url-id>/...`, see emulator.furl)."""
        return self.scf.serve_url(request, cam_signed=lambda: self._cam_signed(request))

    def _cam_signed(self, request: HttpRequest) -> bool:
        """True when the request carries a valid TC3 signature by a known key (AuthType CAM URLs)."""
        try:
            auth = verify(_signed(request), self.keys, time.time())
            self._check_token(auth.secret_id, request.headers.get("x-tc-token"))
        except ApiError:
            return False
        return True

    def handle_api(self, request: HttpRequest) -> Reply:
        """Answer one cloud API call: always HTTP 200 with the envelope, unless a fault says otherwise."""
        pending = _Pending(str(uuid.uuid4()))
        try:
            return self._serve(request, pending)
        except ApiError as err:
            self._record(pending, err.code)
            return _envelope({"Error": {"Code": err.code, "Message": err.message}}, pending.request_id)
        except Exception:  # a bug here must still look like the cloud's InternalError to the client
            log.exception("emulator failure on %s", pending.action)
            self._record(pending, "InternalError")
            return _envelope({"Error": {"Code": "InternalError", "Message": "Internal error."}}, pending.request_id)

    def _serve(self, request: HttpRequest, pending: _Pending) -> Reply:
        headers = request.headers
        pending.action = headers.get("x-tc-action")
        pending.region = headers.get("x-tc-region")
        raw = _raw_params(request)
        pending.params = raw
        auth = verify(_signed(request), self.keys, time.time())  # real time: the SDK signs with it
        self._check_token(auth.secret_id, headers.get("x-tc-token"))
        service = self._route(auth.service, headers, pending)
        action = str(pending.action)
        plan = self._plan(action)
        if plan.drop_before:
            self._record(pending, None, dropped=True)
            return Reply(drop=True)
        if plan.status is not None:
            self._record(pending, f"HTTP {plan.status}")
            return Reply(status=plan.status, body=b"<html>Bad Gateway</html>", content_type="text/plain")
        if plan.garble is not None and not plan.garble_after:
            self._record(pending, "garbled")
            return Reply(status=200, body=plan.garble[0], content_type=plan.garble[1])
        if plan.error is not None:
            raise plan.error
        params = validate(raw, service.schemas[action], from_query=request.method == "GET")
        ctx = Ctx(action, pending.region or "", pending.request_id, self.uin_of(auth.secret_id))
        result = service.call(action, params, ctx)
        self._record(pending, None, dropped=plan.drop_after)
        if plan.drop_after:
            return Reply(drop=True)
        if plan.garble is not None:  # the action took effect; its answer is mangled on the way back
            return Reply(status=200, body=plan.garble[0], content_type=plan.garble[1])
        return _envelope(result, pending.request_id)

    def _route(self, service_name: str, headers: Mapping[str, str], pending: _Pending) -> Service:
        pending.service = service_name
        service = self.services.get(service_name)
        if service is None:
            raise ApiError("NoSuchProduct", f"The product `{service_name}` does not exist.")
        version = headers.get("x-tc-version")
        if not version or not pending.action:
            missing = "Version" if not version else "Action"
            raise ApiError("MissingParameter", f"The request is missing a required parameter `{missing}`.")
        if version != service.version:
            raise ApiError("NoSuchVersion", f"The version `{version}` of `{service_name}` does not exist.")
        if pending.action not in service.schemas:
            raise ApiError("InvalidAction", f"The action `{pending.action}` of `{service_name}` does not exist.")
        if service.regional or pending.region:
            self._check_region(pending.region)
        if not self.limiter.allow(pending.action):
            raise ApiError("RequestLimitExceeded", f"`{pending.action}` exceeds its request rate limit.")
        return service

    def _check_region(self, region: str | None) -> None:
        if not region:
            raise ApiError("MissingParameter", "The request is missing a required parameter `Region`.")
        with self.world.lock:
            if region not in self.world.regions:
                raise ApiError("UnsupportedRegion", f"The region `{region}` is not supported.")

    def _plan(self, action: str) -> Plan:
        plan = self.faults.plan(action)
        latency = self.latency
        seconds = latency.get(action, latency.get("*", 0.0)) if isinstance(latency, Mapping) else latency
        total = seconds + plan.delay
        if total > 0:
            time.sleep(total)
        return plan

    def snapshot(self) -> dict[str, Any]:
        """Everything the control path's GET /_emulator/state shows."""
        return {
            "now": self.now(),
            "regions": list(self.world.regions),
            "instances": self.lighthouse.instances(),
            "instance_states": {
                i["InstanceId"]: self.lighthouse.state_history(i["InstanceId"]) for i in self.lighthouse.instances()
            },
            "blueprints": self.lighthouse.blueprints(),
            "disks": self.lighthouse.disks(),
            "disk_backups": self.lighthouse.disk_backups(),
            "resets": self.lighthouse.all_resets(),
            "accounts": self.lighthouse.accounts(),
            "unavailable_regions": sorted(self.world.unavailable),
            "quotas": {region: self.lighthouse.quota(region) for region in self.world.regions},
            **self.tdmq.snapshot(),
            "functions": self.scf.functions(),
            "invocations": self.scf.invocations,
            "tat": self.tat.snapshot(),
            "faults": self.faults.pending(),
        }

    def calls_json(self) -> list[dict[str, Any]]:
        """The recorded calls as JSON-ready dicts."""
        return [asdict(call) for call in self.calls]


def _envelope(fields: Mapping[str, Any], request_id: str) -> Reply:
    body = json.dumps({"Response": {**fields, "RequestId": request_id}}, ensure_ascii=False)
    return Reply(status=200, body=body.encode("utf-8"), content_type=JSON)


def _raw_params(request: HttpRequest) -> dict[str, Any]:
    if request.method == "GET":
        return unflatten(dict(parse_qsl(request.query, keep_blank_values=True)))
    if not request.body:
        return {}
    try:
        data = json.loads(request.body)
    except ValueError:
        raise ApiError("InvalidParameter", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError("InvalidParameter", "The request body must be a JSON object.")
    return data


def _signed(request: HttpRequest) -> SignedRequest:
    return SignedRequest(
        request.method, request.query if request.method == "GET" else "", request.headers, request.body
    )
