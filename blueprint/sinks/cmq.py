"""TDMQ for CMQ sinks: SendCmqMsg to a queue, PublishCmqMsg to a topic (tagged with the event type).

Through the SDK's tdmq client with the function's own credentials (the shared ClientCache). The message is
the CloudEvent JSON. A lost answer followed by a retry can deliver a message twice: consumers drop
duplicates by the event `id`, which is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from blueprint.cloud import ClientCache, translate
from blueprint.errors import BlueprintError, DeliveryError
from blueprint.retry import Clock, Deadline, RateLimiter, RetryPolicy, SystemClock
from blueprint.sinks import SinkContext

__all__ = ["CmqSink", "queue_from_settings", "topic_from_settings"]

# CMQ messages are at most 1 MiB; tags at most 64 characters each.
MAX_MESSAGE = 1024 * 1024
MAX_TAG = 64


@dataclass
class CmqSink:
    """Send each event's JSON to a CMQ queue or topic through the cloud API."""

    clients: ClientCache
    region: str
    target: str
    kind: Literal["queue", "topic"]
    clock: Clock = field(default_factory=SystemClock)
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(attempts=3))
    limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        # Root accounts may send 20/s, sub-accounts 10/s (since 2024-08-15): stay under the lower one.
        # The cloud counts requests in real time, so the pacing does too (retries wait on the app's clock).
        self.limiter = RateLimiter(10.0, clock=SystemClock(), name=f"cmq-{self.kind}")

    @property
    def name(self) -> str:
        """`cmq-queue` or `cmq-topic`."""
        return f"cmq-{self.kind}"

    def send(self, event: dict[str, Any], body: bytes, deadline: Deadline) -> None:
        """Send one message.

        Raises:
            DeliveryError: the message is too large, or CMQ did not take it after retries.
        """
        if len(body) > MAX_MESSAGE:
            raise DeliveryError(f"{self.name} {self.target}: message of {len(body)} bytes is over the CMQ limit "
                                f"of {MAX_MESSAGE}", code="FailedOperation.MaxMessageSizeError")
        try:
            self.retry.call(lambda: self._send_once(event, body.decode(), deadline), deadline=deadline)
        except BlueprintError as err:
            raise DeliveryError(f"{self.name} {self.target}: {err.message}", code=err.code) from err

    def _send_once(self, event: dict[str, Any], content: str, deadline: Deadline) -> None:
        self.limiter.acquire(deadline)
        # The TDMQ models cost ~35 ms to import: only functions that send to CMQ pay it.
        from tencentcloud.tdmq.v20200217 import models, tdmq_client  # noqa: PLC0415

        client = self.clients.get("tdmq", self.region, tdmq_client.TdmqClient)
        try:
            if self.kind == "queue":
                req = models.SendCmqMsgRequest()
                req.QueueName, req.MsgContent, req.DelaySeconds = self.target, content, 0
                resp = client.SendCmqMsg(req)
            else:
                req = models.PublishCmqMsgRequest()
                req.TopicName, req.MsgContent = self.target, content
                req.MsgTag = [_tag(str(event["type"]))]
                resp = client.PublishCmqMsg(req)
        except TencentCloudSDKException as err:
            raise translate(err, action="SendCmqMsg" if self.kind == "queue" else "PublishCmqMsg") from err
        if resp.Result is False:
            raise DeliveryError(f"{self.name} {self.target} did not accept the message")


def _tag(event_type: str) -> str:
    """The event type as a CMQ tag (subscribers filter on it); our types are all well under 64 characters."""
    return event_type if len(event_type) <= MAX_TAG else event_type[-MAX_TAG:]


def queue_from_settings(ctx: SinkContext) -> CmqSink | None:
    """The queue sink when BLUEPRINT_CMQ_QUEUE is set."""
    name = ctx.settings.cmq_queue
    return CmqSink(ctx.clients, ctx.settings.region, name, "queue", clock=ctx.clock) if name else None


def topic_from_settings(ctx: SinkContext) -> CmqSink | None:
    """The topic sink when BLUEPRINT_CMQ_TOPIC is set."""
    name = ctx.settings.cmq_topic
    return CmqSink(ctx.clients, ctx.settings.region, name, "topic", clock=ctx.clock) if name else None
