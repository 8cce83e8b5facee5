"""Next-function sink: an async SCF Invoke of BLUEPRINT_NEXT_FUNCTION with the CloudEvent as its event.

`ClientContext` is the CloudEvent JSON, so the callee's `event` is the CloudEvent itself. The correlation id
travels as the `correlationid` extension attribute, so logs join across the chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from blueprint.errors import BlueprintError, DeliveryError
from blueprint.functions import ASYNC_EVENT_LIMIT, FunctionRef, Functions
from blueprint.logs import current
from blueprint.results import CORRELATION_ATTRIBUTE
from blueprint.retry import Deadline
from blueprint.sinks import SinkContext

__all__ = ["InvokeSink", "from_settings"]


@dataclass
class InvokeSink:
    """Invoke the next function asynchronously with each event."""

    functions: Functions
    target: FunctionRef
    name: str = "next-function"

    def send(self, event: dict[str, Any], body: bytes, deadline: Deadline) -> None:
        """Invoke once per event (InvocationType=Event).

        Raises:
            DeliveryError: too large for an async event, or SCF refused it after retries.
        """
        payload = body
        correlation = current("correlation_id")
        if correlation and CORRELATION_ATTRIBUTE not in event:
            payload = orjson.dumps({**event, CORRELATION_ATTRIBUTE: correlation})
        where = f"{self.name} {self.target.namespace}/{self.target.name}:{self.target.qualifier}"
        if len(payload) > ASYNC_EVENT_LIMIT:
            raise DeliveryError(f"{where}: event of {len(payload)} bytes is over SCF's async limit of "
                                f"{ASYNC_EVENT_LIMIT}", code="InvalidParameterValue.ClientContext")
        try:
            self.functions.invoke_async(self.target, payload.decode(), deadline=deadline)
        except BlueprintError as err:
            raise DeliveryError(f"{where}: {err.message}", code=err.code) from err


def from_settings(ctx: SinkContext) -> InvokeSink | None:
    """The next-function sink when BLUEPRINT_NEXT_FUNCTION is set."""
    nxt = ctx.settings.next_function
    if nxt is None:
        return None
    ref = FunctionRef(name=nxt.name, namespace=nxt.namespace, qualifier=nxt.qualifier, region=ctx.settings.region)
    return InvokeSink(Functions(ctx.clients, clock=ctx.clock), ref)
