"""TDMQ for CMQ sinks: SendCmqMsg to a queue, PublishCmqMsg to a topic (tagged with the event type)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.tdmq.v20200217 import models, tdmq_client

from blueprint.cloud import ClientCache, translate
from blueprint.errors import BlueprintError, DeliveryError
from blueprint.retry import Deadline, RateLimiter, RetryPolicy
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
    kind: str  # "queue" or "topic"
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(attempts=3))
    # Root accounts may send 20/s, sub-accounts 10/s (since 2024-08-15): stay under the lower one.
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(10.0))

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
            raise DeliveryError(f"message of {len(body)} bytes is over the CMQ limit of {MAX_MESSAGE}")
        try:
            self.retry.call(lambda: self._send_once(event, body.decode(), deadline), deadline=deadline)
        except BlueprintError as err:
            raise DeliveryError(f"{self.name} {self.target}: {err.message}", code=err.code) from err

    def _send_once(self, event: dict[str, Any], content: str, deadline: Deadline) -> None:
        self.limiter.acquire(deadline)
        client = self.clients.get("tdmq", self.region, tdmq_client.TdmqClient)
        try:
            if self.kind == "queue":
                req = models.SendCmqMsgRequest()
                req.QueueName, req.MsgContent, req.DelaySeconds = self.target, content, 0
                resp = client.SendCmqMsg(req)
            else:
                req = models.PublishCmqMsgRequest()
                req.TopicName, req.MsgContent = self.target, content
                req.MsgTag = [str(event["type"])[-MAX_TAG:]]
                resp = client.PublishCmqMsg(req)
        except TencentCloudSDKException as err:
            raise translate(err, action="SendCmqMsg" if self.kind == "queue" else "PublishCmqMsg") from err
        if resp.Result is False:
            raise DeliveryError(f"{self.name} {self.target} did not accept the message")


def queue_from_settings(ctx: SinkContext) -> CmqSink | None:
    """The queue sink when BLUEPRINT_CMQ_QUEUE is set."""
    name = ctx.settings.cmq_queue
    return CmqSink(ctx.clients, ctx.settings.region, name, "queue") if name else None


def topic_from_settings(ctx: SinkContext) -> CmqSink | None:
    """The topic sink when BLUEPRINT_CMQ_TOPIC is set."""
    name = ctx.settings.cmq_topic
    return CmqSink(ctx.clients, ctx.settings.region, name, "topic") if name else None
