"""The plain timer reader (`blueprint.events._plain_timer`) takes what `TimerEventModel` takes, as it reads it.

A timer's usual event is read without pydantic (issue 18: a timer's cold start never imports it). Every event
here goes through `blueprint.events.parse_event` (plain reader first) and `blueprint.triggers.parse_event` (the
model only): both must give the same record, or both the same BadRequest. Generated events mix the spellings
SCF uses with everything near them (other separators, fractions, offsets out of range, impossible dates,
numbers, None, long and control-character names, long messages).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from blueprint import events, triggers
from blueprint.errors import BadRequest

digits = st.integers(min_value=0, max_value=99)
years = st.sampled_from([1, 999, 1970, 2026, 9999]) | st.integers(min_value=0, max_value=9999)
zones = st.sampled_from(["", "Z", "z", "+00:00", "-00:00", "+08:00", "-05:30", "+23:59", "-23:59", "+24:00",
                         "+08:60", "+0800", "+08", " Z", "UTC", "+99:99"])
separators = st.sampled_from(["T", "T", "T", " ", "t", "_"])
fractions = st.sampled_from(["", "", "", ".5", ".123456", ".1234567", "."])


@st.composite
def timer_times(draw: Any) -> object:
    if draw(st.booleans()):  # a real moment (the reader's usual input), in any of the spellings below
        moment = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))
        year, month, day = moment.year, moment.month, moment.day
        hour, minute, second = moment.hour, moment.minute, moment.second
    else:  # each part anywhere near its range
        year, month, day = draw(years), draw(st.integers(0, 13)), draw(st.integers(0, 32))
        hour, minute, second = draw(st.integers(0, 25)), draw(st.integers(0, 61)), draw(st.integers(0, 61))
    text = (f"{year:04d}-{month:02d}-{day:02d}{draw(separators)}{hour:02d}:{minute:02d}:{second:02d}"
            f"{draw(fractions)}{draw(zones)}")
    return draw(st.sampled_from([text, text, text, text.lower(), text[:10], text + " "])
                | st.integers(-10**10, 10**10) | st.none() | st.floats(allow_nan=False) | st.text(max_size=30))


names = (st.sampled_from(["timer", "daily-image", "", "x" * 60, "x" * 61, "定时", "tab\there", None, 5])
         | st.text(max_size=70))
messages = (st.sampled_from(["", None, '{"InstanceId": "lhins-web00001"}', "x" * 65_536, "x" * 65_537, 5, [], {}])
            | st.text(max_size=50))


@st.composite
def timer_events(draw: Any) -> dict[str, object]:
    event: dict[str, object] = {"Type": draw(st.sampled_from(["Timer", "timer", "TIMER"]))}
    for key, values in (("Time", timer_times()), ("TriggerName", names), ("Message", messages)):
        if draw(st.integers(0, 9)) > 0:
            event[key] = draw(values)
    if draw(st.booleans()):
        event["Extra"] = draw(st.integers())
    return event


def _outcome(parse: Any, event: dict[str, object]) -> object:
    try:
        return parse(event)
    except BadRequest as err:
        return ("BadRequest", err.message, err.code)


@settings(max_examples=1500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(timer_events())
@example({"Type": "Timer", "Time": "2026-11-27T03:00:00Z", "TriggerName": "daily", "Message": ""})
@example({"Type": "Timer", "Time": "0001-01-01T00:00:00+01:00"})  # before year 1 in UTC
@example({"Type": "Timer", "Time": "9999-12-31T23:59:59-01:00"})  # after year 9999 in UTC
@example({"Type": "Timer", "Time": "2026-02-29T03:00:00Z"})  # not a leap year
def test_the_plain_timer_reader_agrees_with_the_model(event: dict[str, object]) -> None:
    plain, model = _outcome(events.parse_event, event), _outcome(triggers.parse_event, event)
    assert plain == model, event
    if isinstance(plain, events.TimerEvent):
        assert plain.Time.tzinfo is timezone.utc
        assert repr(plain) == repr(model)


@pytest.mark.parametrize("event", [
    {"Type": "Timer", "TriggerName": "daily-image", "Time": "2026-11-27T03:00:00Z",
     "Message": '{"InstanceId": "lhins-web00001"}'},
    {"Type": "Timer", "TriggerName": "daily-image", "Time": "2026-11-27T11:00:00+08:00", "Message": ""},
    {"Type": "timer", "Time": "2026-11-27T03:00:00"},
    # Every part of the time counts: minutes and seconds that differ, offsets with minutes, either sign.
    {"Type": "Timer", "Time": "2026-11-27T03:07:09Z"},
    {"Type": "Timer", "Time": "2026-11-27T08:37:09+05:30"},
    {"Type": "Timer", "Time": "2026-11-26T21:37:09-05:30"},
    {"Type": "Timer", "Time": "2026-11-28T02:58:09+23:59"},
    {"Type": "Timer", "Time": "2026-12-31T23:59:59-00:01"},
    # The limits themselves: a name of 60 characters, a message of 64 KiB, None for a message.
    {"Type": "Timer", "Time": "2026-11-27T03:00:00Z", "TriggerName": "n" * 60, "Message": "m" * 65_536},
    {"Type": "TIMER", "Time": "2026-11-27T03:00:00Z", "TriggerName": "x", "Message": None},
])
def test_the_plain_reader_takes_the_events_scf_sends_and_reads_them_as_the_model(event: dict[str, object]) -> None:
    plain = events._plain_timer(event)
    assert plain is not None, event  # the cold start's path, not the model's
    assert plain == triggers.parse_event(event)
    assert repr(plain) == repr(triggers.parse_event(event))
