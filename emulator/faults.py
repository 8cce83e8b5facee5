"""Fault injection for the next calls of an action: errors, dropped connections, delays, HTTP 5xx, garbled answers."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from emulator.errors import ApiError

ANY_ACTION = "*"


@dataclass
class _Rule:
    kind: str  # "fail" | "drop" | "delay" | "http_status" | "garble"
    times: int | None  # None: every call
    code: str = ""
    message: str | None = None
    after: bool = False
    seconds: float = 0.0
    status: int = 0
    body: bytes = b""
    content_type: str = ""
    # Calls of the action that pass untouched before this rule starts to apply.
    skip: int = 0


@dataclass
class Plan:
    """What to do to one call; the server applies it around the action."""

    delay: float = 0.0
    error: ApiError | None = None
    drop_before: bool = False
    drop_after: bool = False
    status: int | None = None
    # HTTP 200 with this (body, content type) instead of the envelope; `drop_after`'s twin: with
    # `garble_after` the action runs first.
    garble: tuple[bytes, str] | None = None
    garble_after: bool = False
    notes: list[str] = field(default_factory=list)


class Faults:
    """Queued faults per action (or "*" for every action), consumed call by call."""

    def __init__(self) -> None:
        self._rules: dict[str, list[_Rule]] = {}
        self._lock = threading.Lock()

    def _add(self, action: str, rule: _Rule) -> None:
        if rule.times is not None and rule.times < 1:
            raise ValueError("times must be at least 1 (or None for every call)")
        with self._lock:
            self._rules.setdefault(action, []).append(rule)

    def fail(self, action: str, code: str, *, times: int = 1, message: str | None = None, skip: int = 0) -> None:
        """Answer the next `times` calls of `action` with the error `code` (after `skip` untouched calls).

        Raises:
            ValueError: when `times` < 1.
        """
        self._add(action, _Rule("fail", times, code=code, message=message, skip=skip))

    def drop(self, action: str, *, times: int = 1, after: bool = False, skip: int = 0) -> None:
        """Close the connection with no answer; `after=True` runs the action first (it took effect).
        The first `skip` calls of the action pass untouched.

        Raises:
            ValueError: when `times` < 1.
        """
        self._add(action, _Rule("drop", times, after=after, skip=skip))

    def delay(self, action: str, seconds: float, *, times: int | None = None) -> None:
        """Sleep `seconds` (real time) before answering; `times=None` for every call.

        Raises:
            ValueError: when `times` < 1.
        """
        self._add(action, _Rule("delay", times, seconds=seconds))

    def http_status(self, action: str, status: int, *, times: int = 1) -> None:
        """Answer with HTTP `status` and a text body instead of the API envelope.

        Raises:
            ValueError: when `times` < 1.
        """
        self._add(action, _Rule("http_status", times, status=status))

    def garble(self, action: str, *, times: int = 1, after: bool = False, body: bytes = b"<html>502</html>",
               content_type: str = "text/html", skip: int = 0) -> None:
        """Answer HTTP 200 with `body` (a proxy's page, or JSON that is not the API's envelope) instead of the
        API's answer; `after=True` runs the action first (it took effect, its answer was mangled).

        Raises:
            ValueError: when `times` < 1.
        """
        self._add(action, _Rule("garble", times, after=after, body=body, content_type=content_type, skip=skip))

    def clear(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._rules.clear()

    def pending(self) -> dict[str, list[dict[str, Any]]]:
        """The queued faults, for the control path."""
        with self._lock:
            return {action: [{k: v.decode("utf-8", "replace") if isinstance(v, bytes) else v
                              for k, v in vars(rule).items()} for rule in rules]
                    for action, rules in self._rules.items()}

    def plan(self, action: str) -> Plan:
        """Consume the faults that apply to this call of `action` (first rule of each kind)."""
        plan = Plan()
        with self._lock:
            for key in (action, ANY_ACTION):
                rules = self._rules.get(key, [])
                taken: set[str] = set()
                for rule in list(rules):
                    if rule.kind in taken:
                        continue
                    taken.add(rule.kind)
                    if rule.skip > 0:
                        rule.skip -= 1
                        continue
                    _apply(plan, rule)
                    _consume(rules, rule)
        return plan


def _consume(rules: list[_Rule], rule: _Rule) -> None:
    if rule.times is None:
        return
    rule.times -= 1
    if rule.times <= 0:
        rules.remove(rule)


def _apply(plan: Plan, rule: _Rule) -> None:
    if rule.kind == "delay":
        plan.delay += rule.seconds
    elif rule.kind == "fail" and plan.error is None:
        plan.error = ApiError(rule.code, rule.message)
    elif rule.kind == "drop":
        plan.drop_after = plan.drop_after or rule.after
        plan.drop_before = plan.drop_before or not rule.after
    elif rule.kind == "http_status" and plan.status is None:
        plan.status = rule.status
    elif rule.kind == "garble" and plan.garble is None:
        plan.garble, plan.garble_after = (rule.body, rule.content_type), rule.after
    plan.notes.append(rule.kind)
