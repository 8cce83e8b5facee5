"""Attack on the records/models split (a timer's job, event and trigger became plain records; pydantic models
are their rules in `blueprint.triggers`; secrets are `blueprint.settings.Secret`).

What the function did before the split is the reference: the models still hold the old rules, so each test
here either compares the new plain path with the model that judged every value before, or pins the answer
the function gave before (an error message, an envelope's `Job`, a result's `Trigger`).

The tests that fail on the split's code show a defect and say what they expect:
* a timer's `TriggerName` the model refuses (a lone surrogate, which JSON can carry as `\\ud800`) is taken by
  the plain reader: the image is made, then the run dies on an internal error and reports nothing;
* validation messages name the internal model classes (`TagModel`, `InstanceSelectorModel`,
  `TriggerInfoModel`) where they named the public types (`Tag`, `InstanceSelector`, `TriggerInfo`).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from blueprint import chained, events, triggers
from blueprint.app import App
from blueprint.errors import BadRequest, ConfigError
from blueprint.localrun import Receiver
from blueprint.settings import Secret, load_settings
from emulator import Emulator
from tests.conftest import context, http_event, received_events, timer_event

FN = "lighthouse-blueprint"
MakeApp = Callable[..., App]
FAST = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def _outcome(parse: Any, value: object) -> object:
    try:
        return parse(value)
    except BadRequest as err:
        return ("BadRequest", err.message, err.code)


# ---- defect: the plain timer reader takes a TriggerName the model refuses --------------------------------------

# Text with every category, lone surrogates included (hypothesis' default text leaves them out, and so did the
# reader's own property test). A JSON event can carry one: `"TriggerName": "daily\ud800"` parses to it.
ANY_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, blacklist_categories=()), max_size=12)


@FAST
@given(st.fixed_dictionaries({"Type": st.just("Timer"), "Time": st.just("2026-11-27T03:00:00Z"),
                              "TriggerName": ANY_TEXT, "Message": ANY_TEXT}))
@example({"Type": "Timer", "Time": "2026-11-27T03:00:00Z", "TriggerName": "daily\ud800", "Message": ""})
def test_the_plain_timer_reader_refuses_what_the_model_refuses_surrogates_included(event: dict[str, Any]) -> None:
    # Before the split every timer event went through the model: `TriggerName: Input should be a valid string,
    # unable to parse raw data as a unicode string`. The plain reader must not take what the model refuses.
    assert _outcome(events.parse_event, event) == _outcome(triggers.parse_event, event), ascii(event)


def test_a_timer_named_with_a_lone_surrogate_is_refused_not_imaged_then_lost(
        make_app: MakeApp, emu: Emulator, receiver: Receiver) -> None:
    """Before: refused (InvalidParameter), one `.failed` event, no image. Now: the image is made, then the run
    raises an internal error (UnicodeEncodeError in the result's event id) and no event is ever delivered; every
    retry of the platform does the same."""
    event = {"Type": "Timer", "TriggerName": "daily\ud800", "Time": "2026-11-27T03:00:00Z",
             "Message": '{"InstanceId": "lhins-web00001"}'}
    answer = make_app().handle(event, context())
    assert answer["Error"]["Code"] == "InvalidParameter"
    assert "TriggerName" in answer["Error"]["Message"]
    assert emu.calls_of("CreateBlueprint") == []
    [failed] = received_events(receiver)
    assert failed["type"].endswith(".failed")


# ---- defect: validation messages name the internal model classes ------------------------------------------------

@pytest.mark.parametrize(("job", "message"), [
    ({"InstanceId": "lhins-abcdefgh", "Tags": ["env=prod"]},
     "invalid job: Tags.0: Input should be a valid dictionary or instance of Tag"),
    ({"Selector": "backup=daily"},
     "invalid job: Selector: Input should be a valid dictionary or instance of InstanceSelector"),
    ({"Selector": {"Regions": ["*"], "Tags": [5]}},
     "invalid job: Selector.Tags.0: Input should be a valid dictionary or instance of Tag"),
])
def test_a_job_error_names_the_public_type_as_before(job: dict[str, Any], message: str) -> None:
    # The messages the function gave before the split (measured at its parent commit); docs/openapi.yaml calls
    # these types Tag and Job.Selector, never TagModel or InstanceSelectorModel.
    with pytest.raises(BadRequest) as caught:
        events.parse_job(job)
    assert caught.value.message == message


def test_an_http_caller_sees_the_public_type_name_in_a_400(make_app: MakeApp) -> None:
    response = make_app().handle(http_event(body={"InstanceId": "lhins-web00001", "Tags": ["env=prod"]}),
                                 context())
    assert response["statusCode"] == 400
    message = orjson.loads(response["body"])["Error"]["Message"]
    assert "Model" not in message, message
    assert message.endswith("Input should be a valid dictionary or instance of Tag"), message


def test_a_refused_envelope_names_the_trigger_type_as_before() -> None:
    payload = {"Chained": 1, "Kind": "child", "Job": {}, "CorrelationId": "c", "SlotKey": "s",
               "Deadline": "2026-11-27T03:30:00Z", "Trigger": "junk",
               "Targets": [{"Region": "ap-guangzhou", "InstanceId": "lhins-web00001", "BlueprintName": "n"}]}
    with pytest.raises(chained.Refused) as caught:
        chained.parse(payload, now=datetime(2026, 11, 27, 3, tzinfo=timezone.utc), ttl=3600)
    assert caught.value.error.message == ("invalid chained call: Trigger: Input should be a valid dictionary or "
                                          "instance of TriggerInfo")


# ---- no change: a chained call carries the job the old model_dump wrote ------------------------------------------

class Text(str):
    """A str subclass: the plain reader must leave it to the model, which makes the same value as before."""


class Frozen(Mapping[str, Any]):
    """A Mapping that is not a dict (a job or tag given as one)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


ids = st.sampled_from(["lhins-abcdefgh", "lhins-12345678", "ap-shanghai:lhins-00000001", Text("lhins-qqqqqqqq")])
regions = st.sampled_from(["ap-guangzhou", "ap-shanghai", "na-siliconvalley", Text("ap-tokyo")])
keys = st.sampled_from(["env", "Env", "\u73af\u5883", "a b", "k" * 127, "tag@(1)", "\uff41\uff42", "x\u00b2",
                        "Scf-Blueprint", Text("own")])
values = st.sampled_from(["prod", "v" * 255, "\u751f\u4ea7", "a:b/c", "\uff11", Text("v"), "\u3010x\u3011"])
tags = st.lists(st.fixed_dictionaries({"Key": keys, "Value": values})
                | st.builds(lambda k, v: Frozen({"Key": k, "Value": v}), keys, values),
                max_size=8, unique_by=lambda t: t["Key"])
OPTIONS: dict[str, st.SearchStrategy[Any]] = {
    "Keep": st.sampled_from([1, 500, True, 3.0, "3", 7]),
    "CopyKeep": st.sampled_from([1, 3.0, "3"]),
    "MaxInstances": st.sampled_from([1, 10_000, 2.0]),
    "Wait": st.sampled_from([True, False, 1, "true", "yes"]),
    "DryRun": st.sampled_from([True, False, 0, "false"]),
    "ForcePowerOff": st.sampled_from([True, False, "on", None]),
    "Consistent": st.sampled_from([True, False, "no", None]),
    "Dispatch": st.sampled_from(["inline", "invoke", Text("invoke")]),
    "PostAfter": st.sampled_from(["accepted", "ready", None]),
    "DataDisks": st.sampled_from(["all", "none", ["lhdisk-abcdefgh", "lhdisk-12345678"], [Text("lhdisk-abcdefgh")],
                                  Text("all"), None]),
    "CopyTo": st.sampled_from([["ap-shanghai"], ["ap-shanghai", "ap-beijing"], [Text("ap-beijing")]]),
    "ShareWith": st.sampled_from([["100000000001"], ["12345", "100000000002"], [Text("123456")]]),
    "BlueprintName": st.sampled_from(["{InstanceId}-{Date}", "web {InstanceName}", Text("{Date}")]),
    "Description": st.sampled_from(["d", "x" * 60, Text("d"), "\u63cf\u8ff0"]),
    "IdempotencyKey": st.sampled_from(["k", "x" * 64, Text("k")]),
    "PreCommand": st.sampled_from(["cmd-abcdefgh", "sync"]),
    "PostCommand": st.sampled_from(["cmd-abcdefgh"]),
    "Region": regions,
    "Tags": tags,
}


def _target(draw: st.DrawFn, kind: str) -> object:
    if kind == "InstanceId":
        return draw(ids.filter(lambda ref: ":" not in ref))
    if kind == "InstanceIds":
        return draw(st.lists(ids, min_size=1, max_size=4, unique=True))
    return {"Regions": draw(st.lists(regions | st.just("*"), min_size=1, max_size=3)), "Tags": draw(tags.filter(bool))}


@st.composite
def jobs(draw: st.DrawFn) -> Mapping[str, Any]:
    kind = draw(st.sampled_from(["InstanceId", "InstanceIds", "Selector"]))
    job: dict[str, Any] = {kind: _target(draw, kind)}
    for name in draw(st.lists(st.sampled_from(sorted(OPTIONS)), max_size=8, unique=True)):
        job[name] = draw(OPTIONS[name])
    return Frozen(job) if draw(st.integers(0, 9)) == 0 else job


@FAST
@given(jobs())
@example({"InstanceId": "lhins-abcdefgh", "Keep": 3, "Tags": [{"Key": "env", "Value": "prod"}], "Wait": True})
@example({"Selector": {"Regions": ["*"], "Tags": [{"Key": "a", "Value": "b"}]}, "DataDisks": "all",
          "CopyTo": ["ap-shanghai"], "ShareWith": ["100000000001"], "Dispatch": "inline"})
def test_a_chained_call_carries_what_the_old_model_dump_wrote(job: Any) -> None:
    """`job_options(job)` (now `Job.fields()`) equals, keys in the same order, what the old
    `model_dump(mode="json", exclude=<run fields>, exclude_none=True)` of the same job gave; and the job the
    envelope rebuilds for the child is the parent's own options over the child's targets."""
    try:
        model = triggers.JobModel.model_validate(job)
    except ValidationError:  # an invalid job: both ways refuse it, with the same message
        with pytest.raises(BadRequest) as caught:
            events.parse_job(job)
        assert _outcome(triggers.read_job, job) == ("BadRequest", caught.value.message, caught.value.code)
        return
    record = events.parse_job(job)
    before = model.model_dump(mode="json", exclude=set(chained._RUN_FIELDS), exclude_none=True)
    options = chained.job_options(record)
    assert list(options.items()) == list(before.items())
    assert orjson.dumps(options) == orjson.dumps(before)
    # The Dispatch rule the app reads: None when the job does not say, else what it says.
    assert record.Dispatch == (model.Dispatch if "Dispatch" in model.model_fields_set else None)
    child = events.parse_job({**options, "InstanceIds": ["ap-guangzhou:lhins-abcdefgh"]}, what="chained call Job")
    assert chained.job_options(child) == options


# ---- no change: chained work end to end, and what results and webhooks say ---------------------------------------

def _calls(emu: Emulator, start: int = 0) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(orjson.loads(i["ClientContext"]), context(request_id=i["FunctionRequestId"]))
            for i in emu.scf.invocations[start:] if i["FunctionName"] == FN and i["InvocationType"] == "Event"]


def _fleet(emu: Emulator, count: int) -> list[str]:
    made = [f"lhins-rs{n:06d}" for n in range(count)]
    for n, instance in enumerate(made):
        emu.lighthouse.add_instance(instance, InstanceName=f"n{n}", Tags=[{"Key": "fleet", "Value": "rs"}])
    return made


TRIGGER = {"Type": "timer", "Name": "daily", "Time": "2026-11-27T03:00:00Z"}


def test_a_fan_out_sends_the_old_job_options_and_every_child_reports_the_parents_trigger(
        make_app: MakeApp, emu: Emulator, receiver: Receiver) -> None:
    emu.scf.add_function(FN)
    made = _fleet(emu, 5)
    job = {"Selector": {"Regions": ["ap-guangzhou"], "Tags": [{"Key": "fleet", "Value": "rs"}]}, "Keep": 2,
           "Tags": [{"Key": "env", "Value": "\u751f\u4ea7"}], "BlueprintName": "{InstanceName}-{Date}",
           "Description": "nightly", "Wait": False}
    parent = make_app(BLUEPRINT_DISPATCH_THRESHOLD="2")  # above the threshold, Dispatch unsaid: fans out
    assert parent.handle(timer_event(job), context())["Dispatched"] == 5
    sent = _calls(emu)
    assert sent, "no child was sent"
    expected = triggers.JobModel.model_validate(job).model_dump(mode="json", exclude=set(chained._RUN_FIELDS),
                                                                 exclude_none=True)
    for envelope, _ in sent:
        assert envelope["Job"] == expected
        assert envelope["Trigger"] == TRIGGER
    for envelope, ctx in sent:  # each child as SCF delivers it, in a warm container of its own
        answer = make_app(BLUEPRINT_DISPATCH_THRESHOLD="1").handle(envelope, ctx)
        assert answer["Dispatched"] == 0  # a child never fans out again, whatever its batch size
        assert all(r["Trigger"] == TRIGGER for r in answer["Results"])
    names = sorted(b["BlueprintName"] for b in emu.lighthouse.blueprints())
    assert names == sorted(f"n{n}-20261127" for n in range(len(made)))
    created = [e for e in received_events(receiver) if e["type"].endswith(".created")]
    assert len(created) == 5 and all(e["data"]["Trigger"] == TRIGGER for e in created)


@pytest.mark.parametrize(("dispatch", "invoked"), [("inline", 0), ("invoke", 3)])
def test_an_explicit_dispatch_is_obeyed_above_and_below_the_threshold(make_app: MakeApp, emu: Emulator, dispatch: str,
                                                                      invoked: int) -> None:
    emu.scf.add_function(FN)
    made = _fleet(emu, 3)
    answer = make_app(BLUEPRINT_DISPATCH_THRESHOLD="1").handle(
        timer_event({"InstanceIds": made, "Dispatch": dispatch}), context())
    assert answer["Dispatched"] == invoked
    assert sum(len(e["Targets"]) for e, _ in _calls(emu)) == invoked
    assert len(emu.calls_of("CreateBlueprint")) == 3 - invoked


def test_a_wait_follow_up_carries_the_trigger_and_options_and_ends_ready(
        make_app: MakeApp, emu: Emulator, receiver: Receiver) -> None:
    emu.scf.add_function(FN)
    app = make_app()
    job = {"InstanceId": "lhins-web00001", "Wait": True, "Keep": 3, "Tags": [{"Key": "k", "Value": "v"}]}
    first = app.handle(timer_event(job, time_="2026-11-27T11:00:00+08:00"), context(time_limit_in_ms=20_000))
    assert first["Dispatched"] == 1
    [(envelope, ctx)] = _calls(emu)
    assert envelope["Kind"] == "follow"
    assert envelope["Trigger"] == TRIGGER  # the offset is converted; the written time is UTC with a Z
    assert envelope["Job"] == {"Tags": [{"Key": "k", "Value": "v"}], "Keep": 3, "Wait": True, "DryRun": False}
    emu.advance(60)
    answer = app.handle(envelope, ctx)
    assert answer["Results"][0]["State"] == "NORMAL" and answer["Results"][0]["Trigger"] == TRIGGER
    assert [e["type"].rsplit(".", 1)[-1] for e in received_events(receiver)] == ["created", "created", "ready"]


def test_the_same_timer_event_in_two_warm_containers_makes_one_image_and_the_same_answer(
        make_app: MakeApp, emu: Emulator, receiver: Receiver) -> None:
    event = timer_event({"InstanceId": "lhins-web00001", "Keep": 1}, time_="2026-11-27T03:00:00")  # naive: UTC
    first = make_app().handle(event, context())
    second = make_app().handle(event, context())
    assert len(emu.calls_of("CreateBlueprint")) == 1
    [one], [two] = first["Results"], second["Results"]
    assert one["BlueprintId"] == two["BlueprintId"] and two["Resent"] is True
    assert one["Trigger"] == two["Trigger"] == TRIGGER
    created = [e for e in received_events(receiver) if e["type"].endswith(".created")]
    assert len({e["id"] for e in created}) == 1


# ---- no change: secrets, by the plain reader and by the fallback model ------------------------------------------

WHSEC = "whsec_" + base64.b64encode(b"k" * 32).decode()
SECRET_VALUES = {
    "BLUEPRINT_HTTP_TOKEN": "tok-aaaa-1111,tok-bbbb-2222",
    "BLUEPRINT_RESTORE_TOKEN": "rst-cccc-3333",
    "BLUEPRINT_WEBHOOK_SECRET": WHSEC,
    "BLUEPRINT_WEBHOOK_URL": "https://hooks.example.com/in",
    "BLUEPRINT_PRE_COMMAND": "echo pre-secret-text",
    "BLUEPRINT_POST_COMMAND": "echo post-secret-text",
}
HMAC_VALUES = {"BLUEPRINT_HTTP_AUTH": "hmac", "BLUEPRINT_HTTP_SECRET": "hmac-dddd-4444,hmac-eeee-5555"}
# A spelling only the model reads (" 5" for an int): every other variable is then read by the model too.
FALLBACK = {"BLUEPRINT_DISPATCH_THRESHOLD": " 5"}


def _secrets(config: Any) -> dict[str, Any]:
    return {"http_tokens": config.http_tokens, "http_secrets": config.http_secrets,
            "restore_tokens": config.restore_tokens, "webhook_secret": config.webhook_secret,
            "pre_command": config.pre_command, "post_command": config.post_command}


@pytest.mark.parametrize("extra", [SECRET_VALUES, HMAC_VALUES])
def test_secrets_are_the_same_secrets_by_the_reader_and_by_the_model_and_never_shown(extra: dict[str, str]) -> None:
    plain = load_settings(extra)
    model = load_settings({**extra, **FALLBACK})
    assert (plain.dispatch_threshold, model.dispatch_threshold) == (100, 5)
    assert _secrets(plain) == _secrets(model)
    for config in (plain, model):
        shown = repr(config) + str(config)
        for name, value in extra.items():
            for part in value.split(","):
                if name != "BLUEPRINT_HTTP_AUTH":
                    assert part not in shown, (name, part)
        for value in _secrets(config).values():
            for secret in value if isinstance(value, tuple) else () if value is None else (value,):
                assert type(secret) is Secret
                assert repr(secret) == "Secret('**********')" and str(secret) == "**********"
                assert f"{secret}" == "**********" and f"{secret!r}" == "Secret('**********')"
    assert [s.get_secret_value() for s in model.http_tokens + model.http_secrets] == [
        part for name in ("BLUEPRINT_HTTP_TOKEN", "BLUEPRINT_HTTP_SECRET") for part in extra.get(name, "").split(",")
        if part]


def test_a_secret_compares_and_hashes_by_its_value_like_secretstr() -> None:
    a, b, c = Secret("tok-aaaa-1111"), Secret("tok-aaaa-1111"), Secret("tok-zzzz-9999")
    assert a == b and hash(a) == hash(b) and a != c
    assert a != "tok-aaaa-1111" and len(a) == 13 and bool(Secret("")) is False and str(Secret("")) == ""
    assert {a, b, c} == {a, c}


@pytest.mark.parametrize(("env", "message"), [
    ({"BLUEPRINT_HTTP_TOKEN": "short"},
     "bad configuration: BLUEPRINT_HTTP_TOKEN: item 1 must be at least 8 printable ASCII characters without spaces"),
    ({"BLUEPRINT_HTTP_TOKEN": "abcdefgh1234,has space1"},
     "bad configuration: BLUEPRINT_HTTP_TOKEN: item 2 must be at least 8 printable ASCII characters without spaces"),
    ({"BLUEPRINT_RESTORE_TOKEN": "abcdefgh1234", "BLUEPRINT_HTTP_TOKEN": "abcdefgh1234"},
     "bad configuration: BLUEPRINT_RESTORE_TOKEN: must differ from BLUEPRINT_HTTP_TOKEN / BLUEPRINT_HTTP_SECRET "
     "(a restore formats a disk: the token that makes images must not allow it)"),
    ({"BLUEPRINT_WEBHOOK_SECRET": "notwhsec12345", "BLUEPRINT_WEBHOOK_URL": "https://h.example/x"},
     "bad configuration: BLUEPRINT_WEBHOOK_SECRET: expected a Standard Webhooks secret (whsec_ + base64)"),
    # Spaces only are refused before any variable is read, for every variable alike (test_settings.py).
    ({"BLUEPRINT_PRE_COMMAND": "   "},
     "bad configuration: BLUEPRINT_PRE_COMMAND: spaces only, or invisible characters (leave the variable empty or "
     "unset)"),
    ({"BLUEPRINT_POST_COMMAND": "x" * (48 * 1024 + 1)},
     "bad configuration: BLUEPRINT_POST_COMMAND: expected shell text of 1 to 49152 bytes, or a TAT command id "
     "(cmd-...)"),
    ({"BLUEPRINT_HTTP_AUTH": "hmac"},
     # Since the contract audit the token variable may hold the signing secret: the message names both.
     "bad configuration: BLUEPRINT_HTTP_SECRET (or BLUEPRINT_HTTP_TOKEN): required when BLUEPRINT_HTTP_AUTH=hmac"),
])
@pytest.mark.parametrize("extra", [{}, FALLBACK])
def test_a_bad_secret_gets_the_message_it_got_before(env: dict[str, str], message: str,
                                                     extra: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**env, **extra})
    assert caught.value.message == message


# ---- no change: a timer's time, as results and envelopes write it -------------------------------------------------

@pytest.mark.parametrize(("written", "utc"), [
    ("2026-11-27T03:00:00Z", "2026-11-27T03:00:00Z"),
    ("2026-11-27T03:00:00", "2026-11-27T03:00:00Z"),
    ("2026-11-27T11:00:00+08:00", "2026-11-27T03:00:00Z"),
    ("2026-11-26T22:00:00-05:00", "2026-11-27T03:00:00Z"),
    ("2026-11-27t03:00:00z", "2026-11-27T03:00:00Z"),  # the model's spelling, read as before
    ("2026-11-27T03:00:00.750Z", "2026-11-27T03:00:00Z"),
])
def test_a_timers_time_is_written_in_utc_with_a_z(make_app: MakeApp, emu: Emulator, written: str, utc: str) -> None:
    answer = make_app().handle(timer_event({"InstanceId": "lhins-web00001"}, time_=written), context())
    assert answer["Results"][0]["Trigger"] == {"Type": "timer", "Name": "daily", "Time": utc}


def test_a_chained_trigger_read_back_is_the_record_it_was_written_from() -> None:
    told = events.TriggerInfo(Type="queue", Name="topic/0/42",
                              Time=datetime(2026, 11, 27, 3, 0, 0, 123000, tzinfo=timezone.utc))
    target = chained.ChainTarget(Region="ap-guangzhou", InstanceId="lhins-web00001", BlueprintName="n")
    deadline = told.Time + timedelta(minutes=30)
    text = chained.build(kind="child", options={"Keep": 2}, targets=[target], trigger=told, slot_key="s",
                         correlation_id="c", deadline=deadline)
    call, job = chained.parse(orjson.loads(text), now=told.Time, ttl=3600)
    assert call.trigger() == told
    assert isinstance(job, events.Job) and job.Keep == 2 and job.Dispatch is None
