"""Result sinks: where each result goes. One file per sink, one registration in `FACTORIES`.

A sink is anything with a `name` and `send(event, body, deadline)` that raises `DeliveryError` when the
message was not accepted after its own retries. `deliver` tries every sink for every event, so one failing
sink never stops the others, and remembers what was accepted so nothing is sent twice in one invocation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from blueprint.errors import BlueprintError, DeliveryError
from blueprint.logs import log
from blueprint.retry import Deadline

__all__ = ["FACTORIES", "Delivery", "Sink", "SinkContext", "build_sinks", "deliver"]


class Sink(Protocol):
    """Something that accepts CloudEvents."""

    @property
    def name(self) -> str:
        """A short name for logs and delivery reports."""
        ...

    def send(self, event: dict[str, Any], body: bytes, deadline: Deadline) -> None:
        """Deliver one event (`body` is its orjson serialisation).

        Raises:
            DeliveryError: not accepted after the sink's own retries.
        """
        ...


@dataclass(frozen=True)
class SinkContext:
    """What sink factories may use: the settings and shared clients, built once per warm container."""

    settings: Any
    clients: Any
    session: Any
    clock: Any


@dataclass
class Delivery:
    """What happened to the results of one invocation."""

    sent: set[tuple[str, str]] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every sink accepted every event."""
        return not self.failed


# Each factory returns its sink when configured, or None. Add a sink: write its file, add it here.
def _factories() -> list[Callable[[SinkContext], Sink | None]]:
    from blueprint.sinks import cmq, invoke, webhook  # noqa: PLC0415 (sinks load only when configured)

    factories: list[Callable[[SinkContext], Sink | None]] = [
        webhook.from_settings, cmq.queue_from_settings, cmq.topic_from_settings, invoke.from_settings]
    return factories


FACTORIES: Callable[[], list[Callable[[SinkContext], Sink | None]]] = _factories


def build_sinks(ctx: SinkContext) -> list[Sink]:
    """Every configured sink."""
    return [sink for factory in FACTORIES() if (sink := factory(ctx)) is not None]


def deliver(sinks: Sequence[Sink], events: Sequence[dict[str, Any]], deadline: Deadline,
            delivery: Delivery | None = None) -> Delivery:
    """Send every event to every sink; failures are collected, never raised, never silent."""
    delivery = delivery or Delivery()
    for event in events:
        body = orjson.dumps(event)
        for sink in sinks:
            key = (sink.name, str(event["id"]))
            if key in delivery.sent:
                continue
            try:
                sink.send(event, body, deadline)
            except BlueprintError as err:
                failure = err if isinstance(err, DeliveryError) else DeliveryError(err.message, code=err.code)
                delivery.failed[sink.name] = failure.message
                log("ERROR", "delivery failed", sink=sink.name, event_id=event["id"], event_type=event["type"],
                    error=failure.message)
            else:
                delivery.sent.add(key)
    return delivery
