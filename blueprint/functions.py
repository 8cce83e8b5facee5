"""The thin service over SCF `Invoke` (2018-04-16): async calls of another function, or of this one.

Used by the next-function sink, by fan-out (one child invocation per batch of instances) and by `Wait`
continuations. SCF documents Invoke at 100 calls per second ("默认接口请求频率限制：100次/秒",
https://cloud.tencent.com/document/api/583/17243; an older international page said 20/s).
"""

from __future__ import annotations

from dataclasses import dataclass

from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from blueprint.cloud import ClientCache, translate
from blueprint.errors import PayloadTooLarge
from blueprint.retry import Clock, Deadline, RateLimiter, RetryPolicy, SystemClock

__all__ = ["ASYNC_EVENT_LIMIT", "FunctionRef", "Functions"]

# SCF caps an async event at 128 KB.
ASYNC_EVENT_LIMIT = 128 * 1024


@dataclass(frozen=True)
class FunctionRef:
    """A function to invoke."""

    name: str
    namespace: str = "default"
    qualifier: str = "$LATEST"
    region: str = "ap-guangzhou"


class Functions:
    """SCF Invoke with InvocationType=Event, paced at the documented 100/s and retried on our terms."""

    def __init__(self, clients: ClientCache, *, retry: RetryPolicy | None = None, clock: Clock | None = None) -> None:
        self._clients = clients
        # The cloud counts requests in real time, so the pacing does too (retries wait on the app's clock).
        self._limit = RateLimiter(100.0, clock=SystemClock(), name="Invoke")
        self._retry = retry or RetryPolicy(attempts=3)

    def invoke_async(self, fn: FunctionRef, payload: str, *, deadline: Deadline,
                     routing: str | None = None) -> str:
        """Queue one async invocation; returns the callee's request id.

        Raises:
            PayloadTooLarge: the payload is over SCF's 128 KB limit for async events.
            BlueprintError: the cloud refused the call (translated), after retries where they help.
        """
        size = len(payload.encode())
        if size > ASYNC_EVENT_LIMIT:
            raise PayloadTooLarge(f"an async event of {size} bytes is over SCF's limit of {ASYNC_EVENT_LIMIT}",
                                  code="InvalidParameterValue.ClientContext")

        def attempt() -> str:
            self._limit.acquire(deadline)
            # Imported on first use: most invocations never call another function.
            from tencentcloud.scf.v20180416 import models, scf_client  # noqa: PLC0415

            req = models.InvokeRequest()
            req.FunctionName = fn.name
            req.Namespace = fn.namespace
            req.Qualifier = fn.qualifier
            req.InvocationType = "Event"
            req.ClientContext = payload
            client = self._clients.get("scf", fn.region, scf_client.ScfClient)
            try:
                resp = client.Invoke(req)
            except TencentCloudSDKException as err:
                raise translate(err, action="Invoke") from err
            result = resp.Result
            return str(result.FunctionRequestId if result and result.FunctionRequestId else resp.RequestId)

        return self._retry.call(attempt, deadline=deadline)
