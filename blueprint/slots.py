"""Slot keys: the one owner of "which calls are the same piece of work".

A slot key names one unit of work (a timer tick, a caller's idempotency key, one queue message, one request);
every image carries a digest of it (`scf-blueprint:slot`), so a retried or repeated call finds what the first
one made. Keys are scoped by the trigger type that produced them, in a form no caller can forge across
scopes: an HTTP caller's `IdempotencyKey` of `timer:daily:...` is `http|key|timer:daily:...`, never the timer's
own slot `timer|tick|daily|...`.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

__all__ = ["INSTANCE_TAG", "SLOT_TAG", "TriggerType", "caller_slot", "message_slot", "request_slot", "slot_digest",
           "tick_slot", "webhook_slot"]

# The tags every image the function makes carries: its source instance and the digest of its slot.
INSTANCE_TAG = "scf-blueprint:instance"
SLOT_TAG = "scf-blueprint:slot"

TriggerType = Literal["timer", "http", "queue", "invoke"]


def slot_digest(slot_key: str) -> str:
    """A short, stable tag value for a slot key (keys may be long or hold characters tags refuse)."""
    return hashlib.sha256(slot_key.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def tick_slot(trigger_name: str, when: datetime) -> str:
    """A timer's own slot: its trigger name and the tick's time (a timer that fires twice hits it twice)."""
    return f"timer|tick|{trigger_name}|{when:%Y-%m-%dT%H:%M:%SZ}"


def caller_slot(trigger: TriggerType, key: str) -> str:
    """A caller's `IdempotencyKey` (job field or header), inside its trigger's own scope."""
    return f"{trigger}|key|{key}"


def request_slot(trigger: TriggerType, request_id: str) -> str:
    """No key given: the request itself is the slot (only its own retries repeat it)."""
    return f"{trigger}|request|{request_id}"


def message_slot(message_id: str) -> str:
    """A queue record without a key: its message id (the platform redelivers the same id)."""
    return f"queue|message|{message_id}"


def webhook_slot(webhook_id: str) -> str:
    """A signed HTTP request (`BLUEPRINT_HTTP_AUTH=hmac`): the signed `webhook-id`, never an unsigned header."""
    return "http|webhook|" + hashlib.sha256(webhook_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
