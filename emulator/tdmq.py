"""TDMQ 2020-02-17, the CMQ slice: SendCmqMsg to queues and PublishCmqMsg to topics."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from typing import Any

from emulator.errors import ApiError
from emulator.schema import Schema
from emulator.service import Ctx
from emulator.state import World

MAX_MESSAGE_BYTES = 1024 * 1024  # CMQ limit: 1 MiB of UTF-8 content
MAX_TAG_CHARS = 64

SCHEMAS: dict[str, Schema] = {
    "SendCmqMsg": {"QueueName": ("str", True), "MsgContent": ("str", True), "DelaySeconds": ("int", True)},
    "PublishCmqMsg": {"TopicName": ("str", True), "MsgContent": ("str", True), "MsgTag": ("str[]", False)},
}


def _msg_id() -> str:
    # Real ids look like 32 upper-case hex characters.
    return uuid.uuid4().hex.upper()


def _check_size(content: str) -> None:
    if len(content.encode("utf-8")) > MAX_MESSAGE_BYTES:
        raise ApiError("FailedOperation.MaxMessageSizeError", f"The message is larger than {MAX_MESSAGE_BYTES} bytes.")


class Tdmq:
    """Queues and topics by name, with every accepted message kept for tests to read."""

    name = "tdmq"
    version = "2020-02-17"
    regional = True
    schemas = SCHEMAS

    def __init__(self, world: World) -> None:
        self._world = world
        self._queues: dict[str, list[dict[str, Any]]] = {}
        self._topics: dict[str, list[dict[str, Any]]] = {}
        self._handlers: dict[str, Callable[[dict[str, Any], Ctx], dict[str, Any]]] = {
            "SendCmqMsg": self._send,
            "PublishCmqMsg": self._publish,
        }

    def reset(self, state: dict[str, Any]) -> None:
        """Forget queues, topics and messages; load the names in `state`."""
        with self._world.lock:
            self._queues = {name: [] for name in state.get("queues") or []}
            self._topics = {name: [] for name in state.get("topics") or []}

    def call(self, action: str, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        """Run a TDMQ action."""
        with self._world.lock:
            return self._handlers[action](params, ctx)

    def add_queue(self, name: str) -> None:
        """Create a CMQ queue (no-op when it exists)."""
        with self._world.lock:
            self._queues.setdefault(name, [])

    def add_topic(self, name: str) -> None:
        """Create a CMQ topic (no-op when it exists)."""
        with self._world.lock:
            self._topics.setdefault(name, [])

    def queue_messages(self, name: str) -> list[dict[str, Any]]:
        """Messages sent to queue `name`: {"MsgId","MsgContent","DelaySeconds","Region","Time"}.

        Raises:
            KeyError: for an unknown queue.
        """
        with self._world.lock:
            return copy.deepcopy(self._queues[name])

    def topic_messages(self, name: str) -> list[dict[str, Any]]:
        """Messages published to topic `name`: {"MsgId","MsgContent","MsgTag","Region","Time"}.

        Raises:
            KeyError: for an unknown topic.
        """
        with self._world.lock:
            return copy.deepcopy(self._topics[name])

    def snapshot(self) -> dict[str, Any]:
        """Every queue and topic with its messages, for the control path."""
        with self._world.lock:
            return {"queues": copy.deepcopy(self._queues), "topics": copy.deepcopy(self._topics)}

    def _send(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        messages = self._queues.get(params["QueueName"])
        if messages is None:
            raise ApiError("ResourceNotFound", f"The queue `{params['QueueName']}` does not exist.")
        if params["DelaySeconds"] < 0:
            raise ApiError("InvalidParameterValue", "`DelaySeconds` cannot be negative.")
        _check_size(params["MsgContent"])
        msg_id = _msg_id()
        messages.append(
            {
                "MsgId": msg_id,
                "MsgContent": params["MsgContent"],
                "DelaySeconds": params["DelaySeconds"],
                "Region": ctx.region,
                "Time": self._world.clock.now(),
            }
        )
        return {"Result": True, "MsgId": msg_id}

    def _publish(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        messages = self._topics.get(params["TopicName"])
        if messages is None:
            raise ApiError("ResourceNotFound", f"The topic `{params['TopicName']}` does not exist.")
        tags = params.get("MsgTag") or []
        if any(len(tag) > MAX_TAG_CHARS for tag in tags):
            raise ApiError("InvalidParameterValue", f"Each `MsgTag` can hold at most {MAX_TAG_CHARS} characters.")
        _check_size(params["MsgContent"])
        msg_id = _msg_id()
        messages.append(
            {
                "MsgId": msg_id,
                "MsgContent": params["MsgContent"],
                "MsgTag": list(tags),
                "Region": ctx.region,
                "Time": self._world.clock.now(),
            }
        )
        return {"Result": True, "MsgId": msg_id}
