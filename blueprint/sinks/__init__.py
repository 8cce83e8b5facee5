"""Result sinks: where each result goes. One file per sink, one registration in `FACTORIES`.

A sink is anything with a `name` and `send(event, body, deadline)` that raises `DeliveryError` when the
message was not accepted after its own retries. `deliver` tries every sink for every event, so one failing
sink never stops the others, and remembers what was accepted so nothing is sent twice in one invocation.

Add a sink: write `blueprint/sinks/<name>.py` with a class that has `name` and `send`, and a
`from_settings(ctx) -> Sink | None` factory; add that factory to `_factories` below. Nothing else changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import orjson

from blueprint.errors import BlueprintError
from blueprint.logs import clean, log, log_exception
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


class SinkContext(NamedTuple):
    """What sink factories may use: the settings and shared clients, built once per warm container."""

    settings: Any
    clients: Any
    session: Any
    clock: Any


class Delivery:
    """What happened to the results of one invocation."""

    __slots__ = ("failed", "sent")

    def __init__(self, sent: set[tuple[str, str]] | None = None, failed: dict[str, str] | None = None) -> None:
        # (sink name, event id) pairs that were accepted: never sent twice within one invocation.
        self.sent: set[tuple[str, str]] = set() if sent is None else sent
        # sink name -> why it failed (the first failure); HTTP answers and raised errors name these sinks.
        self.failed: dict[str, str] = {} if failed is None else failed

    @property
    def ok(self) -> bool:
        """True when every sink accepted every event."""
        return not self.failed


# Each factory returns its sink when configured, or None. Add a sink: write its file, add it here. A sink's
# module is imported only when its variable is set (a cold start pays for the sinks it uses, issue 18).
def _webhook(ctx: SinkContext) -> Sink | None:
    if not ctx.settings.webhook_url:
        return None
    from blueprint.sinks import webhook  # noqa: PLC0415

    return webhook.from_settings(ctx)


def _cmq_queue(ctx: SinkContext) -> Sink | None:
    if not ctx.settings.cmq_queue:
        return None
    from blueprint.sinks import cmq  # noqa: PLC0415

    return cmq.queue_from_settings(ctx)


def _cmq_topic(ctx: SinkContext) -> Sink | None:
    if not ctx.settings.cmq_topic:
        return None
    from blueprint.sinks import cmq  # noqa: PLC0415

    return cmq.topic_from_settings(ctx)


def _next_function(ctx: SinkContext) -> Sink | None:
    if ctx.settings.next_function is None:
        return None
    from blueprint.sinks import invoke  # noqa: PLC0415

    return invoke.from_settings(ctx)


def _factories() -> list[Callable[[SinkContext], Sink | None]]:
    return [_webhook, _cmq_queue, _cmq_topic, _next_function]


FACTORIES: Callable[[], list[Callable[[SinkContext], Sink | None]]] = _factories


def build_sinks(ctx: SinkContext) -> list[Sink]:
    """Every configured sink."""
    return [sink for factory in FACTORIES() if (sink := factory(ctx)) is not None]


# Events of one run go out this many at a time (fleets make hundreds); the run summary goes last.
PARALLEL_SENDS = 16


def deliver(sinks: Sequence[Sink], events: Sequence[dict[str, Any]], deadline: Deadline,
            delivery: Delivery | None = None) -> Delivery:
    """Send every event to every sink; failures are collected and logged, never raised, never silent.

    Each sink is independent: one that fails (even with an unexpected exception) never stops the others.
    A sink that already failed after its own retries is not tried again for the later events of this
    delivery (they are recorded as failed too): its retries would only eat the time the other sinks need,
    and the caller raises anyway so the platform retries the whole invocation. The events of one result go
    out in order (`.created` before `.ready`), results concurrently; the `.run.completed` summary is sent after
    them, so a consumer sees it last.
    """
    delivery = delivery or Delivery()
    lock = threading.Lock()
    groups: dict[tuple[Any, ...], list[tuple[dict[str, Any], bytes]]] = {}
    summaries: list[tuple[dict[str, Any], bytes]] = []
    for event in events:
        item = _serialised(event)
        if str(event.get("type", "")).endswith(".run.completed"):
            summaries.append(item)
        else:
            # The events of one result (`.created` then `.ready`) reach each sink in order.
            groups.setdefault(_group(event), []).append(item)

    def send_all(items: list[tuple[dict[str, Any], bytes]]) -> None:
        for event, body in items:
            for sink in sinks:
                _deliver_one(sink, event, body, deadline=deadline, delivery=delivery, lock=lock)

    ordered = list(groups.values())
    # The first group goes alone: a sink that is down fails once, not once per parallel sender.
    for items in ordered[:1]:
        send_all(items)
    if len(ordered) > 2 and sinks:
        from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 (a pool only for several at once; one instance needs none)
        with ThreadPoolExecutor(max_workers=min(PARALLEL_SENDS, len(ordered) - 1)) as pool:
            list(pool.map(send_all, ordered[1:]))
    else:
        for items in ordered[1:]:
            send_all(items)
    send_all(summaries)
    return delivery


def _group(event: dict[str, Any]) -> tuple[Any, ...]:
    """Events of one result share their subject, region and image."""
    found = event.get("data")
    data: dict[str, Any] = found if isinstance(found, dict) else {}
    return (event.get("subject"), data.get("Region"), data.get("BlueprintId"), data.get("AccountId"))


def _serialised(event: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """The event and its JSON. Text from an event (a trigger name, say) that is not valid UTF-8 is sent with
    escapes, not lost."""
    try:
        return event, orjson.dumps(event)
    except (TypeError, orjson.JSONEncodeError):
        safe: dict[str, Any] = clean(event)
        return safe, orjson.dumps(safe)


def _deliver_one(sink: Sink, event: dict[str, Any], body: bytes, *, deadline: Deadline, delivery: Delivery,
                 lock: threading.Lock) -> None:
    key = (sink.name, str(event["id"]))
    with lock:
        if key in delivery.sent:
            return
        already_failed = sink.name in delivery.failed
    if already_failed:
        _log_failure(sink, event, "not attempted: this sink already failed in this invocation")
        return
    error = _send(sink, event, body, deadline)
    with lock:
        if error is None:
            delivery.sent.add(key)
        else:
            delivery.failed.setdefault(sink.name, error)
    if error is not None:
        _log_failure(sink, event, error)


def _send(sink: Sink, event: dict[str, Any], body: bytes, deadline: Deadline) -> str | None:
    """One sink, one event: None when accepted, else why not."""
    try:
        sink.send(event, body, deadline)
    except BlueprintError as err:
        return err.message
    except Exception as err:  # a bug in one sink must not cost the others their delivery
        log_exception("delivery crashed", err, sink=sink.name, event_id=event["id"])
        return f"unexpected {type(err).__name__} in the {sink.name} sink"
    return None


def _log_failure(sink: Sink, event: dict[str, Any], error: str) -> None:
    log("ERROR", "delivery failed", sink=sink.name, event_id=event["id"], event_type=event["type"],
        subject=event.get("subject"), error=error)
