"""The CloudEvents webhook against real local receivers: signed, retried on what a retry can fix, bounded."""

from __future__ import annotations

from email.utils import formatdate

import orjson
import pytest
import requests
import standardwebhooks

from blueprint.errors import ConfigError, DeliveryError
from blueprint.localrun import Answer
from blueprint.retry import Deadline
from blueprint.sinks.webhook import WebhookSink
from tests.conftest import EmuClock, FrozenClock, context, http_event, timer_event
from tests.sinks.conftest import Hook
from tests.sinks.helpers import WHSEC, parse

JOB = {"InstanceId": "lhins-web00001"}


def test_signed_delivery_verifies_with_standardwebhooks_and_parses_as_a_cloudevent(make_app, receiver) -> None:
    app = make_app(BLUEPRINT_WEBHOOK_SECRET=WHSEC)
    app.handle(timer_event(JOB), context())
    [request] = receiver.accepted()
    assert request["headers"]["Content-Type"] == "application/cloudevents+json"
    payload = standardwebhooks.Webhook(WHSEC).verify(request["body"], request["headers"])
    event = parse(request["headers"], request["body"])
    assert payload["id"] == event.get_id() == request["headers"]["webhook-id"]
    assert event.get_type() == "com.tencentcloud.lighthouse.blueprint.created"
    tampered = request["body"].replace(b"lhins-web00001", b"lhins-web00002")
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(WHSEC).verify(tampered, request["headers"])


def test_unsigned_without_a_secret(make_app, receiver) -> None:
    make_app().handle(timer_event(JOB), context())
    [request] = receiver.accepted()
    assert not {"webhook-id", "webhook-signature"} & {k.lower() for k in request["headers"]}


def test_a_malformed_secret_fails_at_start_naming_the_variable(make_app) -> None:
    with pytest.raises(ConfigError, match="BLUEPRINT_WEBHOOK_SECRET"):
        make_app(BLUEPRINT_WEBHOOK_SECRET="whsec_not base64!")


def test_a_receiver_failing_twice_then_succeeding_gets_exactly_one_accepted_delivery(make_app, receiver, emu) -> None:
    clock = EmuClock(emu)
    app = make_app(clock=clock)
    receiver.fail_next(2, 503)
    answer = app.handle(timer_event(JOB), context())
    assert answer["Results"][0]["InstanceId"] == "lhins-web00001"
    assert [r["status"] for r in receiver.received] == [503, 503, 200]
    assert len(receiver.accepted()) == 1
    assert len(clock.slept) == 2 and clock.slept[0] < clock.slept[1]  # backoff, on the virtual clock


def test_retry_after_seconds_and_dates_are_honoured(make_app, hook: Hook, emu) -> None:
    clock = EmuClock(emu)
    app = make_app(clock=clock, BLUEPRINT_WEBHOOK_URL=hook.url)
    hook.then(Answer(429, {"Retry-After": "7"}),
              Answer(503, {"Retry-After": formatdate(clock.time() + 12, usegmt=True)}))
    app.handle(timer_event(JOB), context())
    assert [r["status"] for r in hook.received] == [429, 503, 200]
    assert clock.slept[0] == 7
    assert 3 <= clock.slept[1] <= 5  # the date was 12 s away when written, 7 of them already waited


def test_a_retry_after_beyond_the_time_left_is_not_cut_short(make_app, hook: Hook, emu) -> None:
    clock = EmuClock(emu)
    app = make_app(clock=clock, BLUEPRINT_WEBHOOK_URL=hook.url)
    hook.default = Answer(503, {"Retry-After": "3600"})
    with pytest.raises(DeliveryError, match="webhook"):
        app.handle(timer_event(JOB), context(time_limit_in_ms=30_000))
    assert len(hook.received) == 1 and clock.slept == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_other_4xx_are_not_retried(make_app, receiver, log_stream, status) -> None:
    receiver.fail_next(5, status)
    with pytest.raises(DeliveryError, match="delivered to: webhook"):
        make_app().handle(timer_event(JOB), context())
    assert len(receiver.received) == 1
    assert f"refused with HTTP {status}" in log_stream.getvalue()


def test_redirects_are_not_followed(make_app, hook: Hook, receiver, log_stream) -> None:
    hook.default = Answer(307, {"Location": receiver.url})
    with pytest.raises(DeliveryError, match="webhook"):
        make_app(BLUEPRINT_WEBHOOK_URL=hook.url).handle(timer_event(JOB), context())
    assert "redirect not followed" in log_stream.getvalue()
    assert len(hook.received) == 1
    assert receiver.received == []


def test_network_errors_are_retried_within_the_time_left(make_app, emu, log_stream) -> None:
    clock = EmuClock(emu)
    app = make_app(clock=clock, BLUEPRINT_WEBHOOK_URL="http://127.0.0.1:9/hook")  # nothing listens there
    with pytest.raises(DeliveryError, match="webhook"):
        app.handle(timer_event(JOB), context(time_limit_in_ms=10_000))
    assert "could not be reached" in log_stream.getvalue()
    assert 1 <= len(clock.slept) <= 3
    assert sum(clock.slept) < 10


def test_each_attempt_has_its_own_timeout(make_app, hook: Hook, emu) -> None:
    clock = EmuClock(emu)
    hook.then(Answer(200, delay=1.0))  # the first answer comes too late; the retry is answered at once
    app = make_app(clock=clock, BLUEPRINT_WEBHOOK_URL=hook.url, BLUEPRINT_WEBHOOK_TIMEOUT="0.2")
    app.handle(timer_event(JOB), context())
    assert len(hook.received) == 2
    assert len(clock.slept) == 1


def test_the_session_is_reused_across_warm_invocations(make_app, hook: Hook) -> None:
    app = make_app(BLUEPRINT_WEBHOOK_URL=hook.url)
    app.handle(timer_event({"InstanceId": "lhins-web00001"}), context())
    app.handle(timer_event({"InstanceId": "lhins-db000001"}), context())
    assert len(hook.received) == 2
    assert hook.received[0]["port"] == hook.received[1]["port"]  # one TCP connection, kept alive


def test_a_receiver_down_for_good_makes_the_timer_raise_and_the_retry_delivers_without_a_second_image(
        make_app, hook: Hook, emu) -> None:
    app = make_app(BLUEPRINT_WEBHOOK_URL=hook.url)
    event = timer_event(JOB)
    hook.default = Answer(503)
    with pytest.raises(DeliveryError, match="webhook"):
        app.handle(event, context())
    assert hook.accepted() == []
    hook.default = Answer(200)
    answer = app.handle(event, context())  # SCF's retry: the same timer event
    [request] = hook.accepted()
    delivered = parse(request["headers"], request["body"])
    assert delivered.get_data()["BlueprintId"] == answer["Results"][0]["BlueprintId"]  # type: ignore[index]
    assert len(emu.lighthouse.blueprints()) == 1
    assert len(emu.calls_of("CreateBlueprint")) == 1


def test_http_answers_name_the_failing_sink(make_app, receiver) -> None:
    receiver.fail_next(10, 500)
    response = make_app().handle(http_event(body=JOB), context())
    assert response["statusCode"] == 202
    assert response["headers"]["X-Blueprint-Delivery"] == "failed: webhook"
    body = orjson.loads(response["body"])
    assert body["DeliveryFailed"] == ["webhook"] and body["BlueprintId"].startswith("lhbp-")


# ---- the sink on its own: attempts, timeouts and waits on a frozen clock (docs/mutation.md) ---------------------

class RecordingSession(requests.Session):
    """A real session that notes the timeout of each POST."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[object] = []

    def post(self, url, data=None, json=None, **kwargs):  # type: ignore[no-untyped-def,override]
        self.timeouts.append(kwargs.get("timeout"))
        return super().post(url, data=data, json=json, **kwargs)


def sink(hook: Hook, clock: FrozenClock, *, rng: float = 0.5) -> tuple[WebhookSink, RecordingSession]:
    session = RecordingSession()
    return WebhookSink(url=hook.url, session=session, clock=clock, timeout=5.0, rng=lambda: rng), session


EVENT = {"id": "evt-1", "type": "com.tencentcloud.lighthouse.blueprint.created"}


def test_no_time_for_an_attempt_is_a_failed_delivery_never_a_silent_one(hook: Hook) -> None:
    clock = FrozenClock(1_000_000.0)
    webhook, _ = sink(hook, clock)
    with pytest.raises(DeliveryError, match="not attempted: no time left"):
        webhook.send(EVENT, b"{}", Deadline.after(clock, 0.49))
    assert hook.received == []
    webhook.send(EVENT, b"{}", Deadline.after(clock, 0.5))  # exactly the minimum: one attempt is made
    assert len(hook.received) == 1


def test_four_attempts_with_jittered_exponential_backoff(hook: Hook) -> None:
    clock = FrozenClock(1_000_000.0)
    hook.default = Answer(503)
    webhook, session = sink(hook, clock, rng=0.5)
    with pytest.raises(DeliveryError, match=r"not accepted after retries \(HTTP 503\)"):
        webhook.send(EVENT, b"{}", Deadline.after(clock, 60))
    assert len(hook.received) == 4
    assert clock.slept == [0.25 * 0.75, 0.5 * 0.75, 1.0 * 0.75]  # base 0.25 s doubling, times 0.5 + rng/2
    assert session.timeouts == [(3.05, 5.0)] * 4  # connect at most 3.05 s, the whole attempt 5 s


def test_an_attempt_never_outlasts_the_time_left(hook: Hook) -> None:
    clock = FrozenClock(1_000_000.0)
    webhook, session = sink(hook, clock)
    webhook.send(EVENT, b"{}", Deadline.after(clock, 2.0))
    assert session.timeouts == [(1.9, 1.9)]


@pytest.mark.parametrize("status", [500, 502, 504, 429])
def test_500_and_up_and_429_are_retried(hook: Hook, status: int) -> None:
    clock = FrozenClock(1_000_000.0)
    hook.then(Answer(status))
    webhook, _ = sink(hook, clock)
    webhook.send(EVENT, b"{}", Deadline.after(clock, 60))
    assert [r["status"] for r in hook.received] == [status, 200]


@pytest.mark.parametrize("status", [300, 301, 308])
def test_any_3xx_is_a_refusal_not_a_delivery(hook: Hook, status: int) -> None:
    clock = FrozenClock(1_000_000.0)
    hook.default = Answer(status, {"Location": "http://127.0.0.1:9/elsewhere"})
    webhook, _ = sink(hook, clock)
    with pytest.raises(DeliveryError, match=f"HTTP {status} redirect not followed"):
        webhook.send(EVENT, b"{}", Deadline.after(clock, 60))
    assert len(hook.received) == 1


@pytest.mark.parametrize(("left", "posts"), [(3.5, 2), (3.4, 1)])
def test_a_retry_after_is_waited_only_when_an_attempt_still_fits_after_it(hook: Hook, left: float, posts: int) -> None:
    clock = FrozenClock(1_000_000.0)
    hook.then(Answer(429, {"Retry-After": "3"}))
    webhook, _ = sink(hook, clock)
    if posts == 2:
        webhook.send(EVENT, b"{}", Deadline.after(clock, left))
        assert clock.slept == [3.0]
    else:
        with pytest.raises(DeliveryError, match="HTTP 429"):
            webhook.send(EVENT, b"{}", Deadline.after(clock, left))
        assert clock.slept == []
    assert len(hook.received) == posts


def test_a_retry_after_date_in_the_past_means_at_once(hook: Hook) -> None:
    clock = FrozenClock(1_000_000.0)
    hook.then(Answer(503, {"Retry-After": formatdate(clock.time() - 60, usegmt=True)}))
    webhook, _ = sink(hook, clock)
    webhook.send(EVENT, b"{}", Deadline.after(clock, 60))
    assert (len(hook.received), clock.slept) == (2, [])


def test_every_post_says_who_sends_it(make_app, hook: Hook) -> None:
    make_app(BLUEPRINT_WEBHOOK_URL=hook.url).handle(timer_event(JOB), context())
    make_app(BLUEPRINT_WEBHOOK_URL=hook.url, BLUEPRINT_WEBHOOK_FORMAT="slack").handle(
        timer_event({"InstanceId": "lhins-db000001"}), context())
    assert [r["headers"]["User-Agent"] for r in hook.received] == ["lighthouse-blueprint-fn"] * 2
