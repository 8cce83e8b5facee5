"""`deliver` itself: sinks are independent, nothing is sent twice in one invocation, nothing fails silently."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from blueprint.errors import DeliveryError
from blueprint.retry import Deadline
from blueprint.sinks import Delivery, deliver
from tests.conftest import EmuClock

EVENTS = [{"id": f"e{i}", "type": "com.tencentcloud.lighthouse.blueprint.created", "subject": "lhins-web00001"}
          for i in range(3)]


@dataclass
class Recorder:
    name: str
    fail: type[Exception] | None = None
    got: list[str] = field(default_factory=list)

    def send(self, event: dict[str, Any], body: bytes, deadline: Deadline) -> None:
        self.got.append(event["id"])
        if self.fail is DeliveryError:
            raise DeliveryError("receiver said no")
        if self.fail is not None:
            raise self.fail("a bug")


def deadline() -> Deadline:
    return Deadline.after(EmuClock(), 60)


def test_a_crashing_sink_does_not_stop_the_others(log_stream) -> None:
    good, broken = Recorder("good"), Recorder("broken", fail=KeyError)
    result = deliver([broken, good], EVENTS, deadline())
    assert good.got == ["e0", "e1", "e2"]
    assert result.failed == {"broken": "unexpected KeyError in the broken sink"}
    assert "Traceback" in log_stream.getvalue()


def test_a_failed_sink_is_tried_once_and_every_event_it_missed_is_logged(log_stream) -> None:
    bad = Recorder("bad", fail=DeliveryError)
    result = deliver([bad], EVENTS, deadline())
    assert bad.got == ["e0"] and not result.ok
    assert log_stream.getvalue().count('"delivery failed"') == 3


def test_accepted_events_are_not_sent_twice_in_one_invocation() -> None:
    sink = Recorder("once")
    delivery = deliver([sink], EVENTS[:2], deadline())
    deliver([sink], EVENTS, deadline(), delivery)
    assert sink.got == ["e0", "e1", "e2"]
    assert delivery.ok and isinstance(delivery, Delivery)
