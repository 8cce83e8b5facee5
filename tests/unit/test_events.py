"""Trigger models and the job (README.md, Triggers): every trigger variant and every job rule."""

from __future__ import annotations

import base64
from datetime import datetime, timezone

import orjson
import pytest

from blueprint.errors import BadRequest
from blueprint.events import (
    MAX_JSON_BYTES,
    MAX_USER_TAGS,
    ApiGatewayEvent,
    FunctionUrlEvent,
    HttpRequest,
    InstanceRef,
    InvokeEvent,
    QueueEvent,
    Tag,
    TimerEvent,
    named_in,
    parse_event,
    parse_job,
    parse_json,
)

ID = "lhins-web00001"


# ---- timer ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["Timer", "timer", "TIMER"])
def test_timer_type_in_any_case(kind: str) -> None:
    event = parse_event({"Type": kind, "TriggerName": "daily", "Time": "2026-11-27T03:00:00Z", "Message": ""})
    assert isinstance(event, TimerEvent)
    assert event.TriggerName == "daily"
    assert event.Time == datetime(2026, 11, 27, 3, tzinfo=timezone.utc)


@pytest.mark.parametrize(("message", "expected"), [("", ""), (None, ""),
                                                   ('{"InstanceId": "x"}', '{"InstanceId": "x"}')])
def test_timer_message_is_a_string_maybe_empty(message: object, expected: str) -> None:
    event = parse_event({"Type": "Timer", "Time": "2026-11-27T03:00:00Z", "Message": message})
    assert isinstance(event, TimerEvent) and event.Message == expected
    assert event.TriggerName == "timer"  # default when the platform sends none


def test_timer_time_without_zone_is_utc_and_offsets_are_converted() -> None:
    naive = parse_event({"Type": "Timer", "Time": "2026-11-27T03:00:00"})
    offset = parse_event({"Type": "Timer", "Time": "2026-11-27T11:00:00+08:00"})
    assert isinstance(naive, TimerEvent) and isinstance(offset, TimerEvent)
    assert naive.Time == offset.Time == datetime(2026, 11, 27, 3, tzinfo=timezone.utc)


@pytest.mark.parametrize("event", [
    {"Type": "Timer"},                                           # no Time
    {"Type": "Timer", "Time": "yesterday"},
    {"Type": "Timer", "Time": "2026-11-27T03:00:00Z", "TriggerName": "x" * 61},
    {"Type": "Timer", "Time": "2026-11-27T03:00:00Z", "Message": 5},
    {"Type": "Timer", "Time": "2026-11-27T03:00:00Z", "Message": "x" * 70_000},
])
def test_bad_timer_events(event: dict) -> None:
    with pytest.raises(BadRequest):
        parse_event(event)


# ---- HTTP ----------------------------------------------------------------------------------------------

def _http(**fields: object) -> dict:
    return {"httpMethod": "POST", "path": "/blueprints", "headers": {}, "body": "{}", **fields}


def test_api_gateway_and_function_url_are_told_apart_by_request_context() -> None:
    apigw = parse_event(_http(requestContext={"requestId": "r-1"}))
    url = parse_event(_http())
    assert isinstance(apigw, ApiGatewayEvent) and apigw.request_id() == "r-1"
    assert isinstance(url, FunctionUrlEvent) and url.request_id() is None


def test_gateway_request_id_from_header_when_context_has_none() -> None:
    event = parse_event(_http(requestContext={}, headers={"X-Api-RequestId": "h-1"}))
    assert isinstance(event, ApiGatewayEvent) and event.request_id() == "h-1"


@pytest.mark.parametrize(("flag", "decoded"), [(True, True), ("true", True), ("TRUE", True), (" true ", True),
                                               (False, False), ("false", False), (None, False)])
def test_is_base64_encoded_as_bool_or_string(flag: object, decoded: bool) -> None:
    body = base64.b64encode(b'{"a": 1}').decode() if decoded else '{"a": 1}'
    event = parse_event(_http(body=body, isBase64Encoded=flag))
    assert isinstance(event, HttpRequest)
    assert event.raw_body() == b'{"a": 1}'


def test_bad_base64_is_a_bad_request() -> None:
    event = parse_event(_http(body="%%%", isBase64Encoded=True))
    assert isinstance(event, HttpRequest)
    with pytest.raises(BadRequest, match="base64"):
        event.raw_body()


def test_headers_any_case_lists_and_duplicates() -> None:
    event = parse_event(_http(headers={"Content-TYPE": ["application/json", "text/plain"], "X-N": 5,
                                       "x-a": "first", "X-A": "second", "x-obj": {"a": 1}, "x-empty": []}))
    assert isinstance(event, HttpRequest)
    assert event.header("content-type") == "application/json"
    assert event.header("X-n") == "5"
    assert event.header("x-a") == "first"
    assert event.header("x-obj") is None and event.header("x-empty") is None


@pytest.mark.parametrize("fields", [{"headers": "x"}, {"httpMethod": 3}, {"body": 3}, {"path": None},
                                    {"requestContext": "x"}, {"isBase64Encoded": "perhaps"}])
def test_odd_http_shapes(fields: dict) -> None:
    with pytest.raises(BadRequest):
        parse_event(_http(**{"requestContext": {}, **fields}))


def test_missing_optional_http_fields_default() -> None:
    event = parse_event({"httpMethod": "GET"})
    assert isinstance(event, FunctionUrlEvent)
    assert (event.path, event.headers, event.body, event.queryString) == ("/", {}, "", {})
    assert parse_event(_http(queryString="junk")).queryString == {}  # type: ignore[union-attr]


# ---- queue ---------------------------------------------------------------------------------------------

def test_cmq_and_ckafka_records() -> None:
    event = parse_event({"Records": [
        {"CMQ": {"type": "queue", "msgBody": '{"InstanceId": "lhins-web00001"}', "msgId": "m-1",
                 "publishTime": "2026-11-27T03:00:00.000Z"}},
        {"Ckafka": {"topic": "t", "partition": 1, "offset": 36, "msgKey": "None", "msgBody": "{}"}},
    ]})
    assert isinstance(event, QueueEvent)
    first, second = event.records()
    assert (first.message_id, first.time, first.problem) == ("m-1", datetime(2026, 11, 27, 3, tzinfo=timezone.utc),
                                                             None)
    assert second.message_id == "t/1/36" and second.body == "{}"


@pytest.mark.parametrize("records", [[], "x", [{"CMQ": {"msgBody": "{}"}}] * 10_001])
def test_bad_queue_events(records: object) -> None:
    with pytest.raises(BadRequest):
        parse_event({"Records": records})


def test_a_batch_of_ten_thousand_is_accepted() -> None:
    event = parse_event({"Records": [{"CMQ": {"msgId": str(n), "msgBody": "{}"}} for n in range(10_000)]})
    assert isinstance(event, QueueEvent) and len(event.records()) == 10_000


@pytest.mark.parametrize(("record", "problem"), [
    ({"Other": {}}, "CMQ or Ckafka"), ({"CMQ": {"msgId": "m", "msgBody": None}}, "msgBody"), ("x", "CMQ or Ckafka"),
    ({"Ckafka": {"topic": "t", "partition": 0, "offset": 1, "msgBody": 3}}, "msgBody")])
def test_a_record_that_cannot_be_read_says_why_without_failing_the_batch(record: object, problem: str) -> None:
    event = parse_event({"Records": [record, {"CMQ": {"msgId": "ok", "msgBody": "{}"}}]})
    assert isinstance(event, QueueEvent)
    bad, good = event.records()
    assert problem in (bad.problem or "") and good.problem is None


# ---- direct and chained invoke --------------------------------------------------------------------------

def test_anything_else_that_is_an_object_is_an_invoke() -> None:
    event = parse_event({"InstanceId": ID})
    assert isinstance(event, InvokeEvent) and event.payload == {"InstanceId": ID}
    assert isinstance(parse_event({}), InvokeEvent)


@pytest.mark.parametrize("event", [None, [], "x", 3])
def test_an_event_must_be_an_object(event: object) -> None:
    with pytest.raises(BadRequest, match="JSON object"):
        parse_event(event)


# ---- the job: README.md -------------------------------------------------------------------------------

def test_a_create_blueprint_request_is_a_valid_job() -> None:
    job = parse_job({"InstanceId": ID, "BlueprintName": "web", "Description": "nightly", "ForcePowerOff": False,
                     "Tags": [{"Key": "env", "Value": "prod"}]})
    assert (job.InstanceId, job.BlueprintName, job.ForcePowerOff, job.Tags[0].Key) == (ID, "web", False, "env")
    # Dispatch: None when the job does not say (the function picks by fleet size).
    assert (job.Wait, job.DryRun, job.Dispatch, job.Keep, job.MaxInstances) == (False, False, None, None, None)


@pytest.mark.parametrize("targets", [
    {}, {"InstanceId": ID, "InstanceIds": [ID]},
    {"InstanceId": ID, "Selector": {"Regions": ["*"], "Tags": [{"Key": "a", "Value": "b"}]}},
    {"InstanceIds": [ID], "Selector": {"Regions": ["*"], "Tags": [{"Key": "a", "Value": "b"}]}},
])
def test_exactly_one_target(targets: dict) -> None:
    with pytest.raises(BadRequest, match="exactly one"):
        parse_job(targets)


@pytest.mark.parametrize("instance", ["lhins-web0000", "lhins-web000011", "LHINS-web00001", "lhins-WEB00001",
                                      "ins-web00001", "lhins-web0000!", "lhins-web00001\n", ""])
def test_instance_id_format(instance: str) -> None:
    with pytest.raises(BadRequest, match="InstanceId"):
        parse_job({"InstanceId": instance})


def test_instance_ids_with_regions_and_targets() -> None:
    job = parse_job({"InstanceIds": [ID, "ap-shanghai:lhins-sh000001"], "Region": "ap-beijing"})
    assert job.targets("ap-guangzhou") == [InstanceRef(Region="ap-beijing", InstanceId=ID),
                                           InstanceRef(Region="ap-shanghai", InstanceId="lhins-sh000001")]
    assert parse_job({"InstanceId": ID}).targets("ap-guangzhou") == [InstanceRef(Region="ap-guangzhou",
                                                                                 InstanceId=ID)]


@pytest.mark.parametrize("ids", [[], [ID, ID], ["bad"], ["nowhere!:" + ID], [f"lhins-{i:08d}" for i in range(101)]])
def test_bad_instance_ids(ids: list) -> None:
    with pytest.raises(BadRequest, match="InstanceIds"):
        parse_job({"InstanceIds": ids})


def test_selector() -> None:
    job = parse_job({"Selector": {"Regions": ["*", "ap-shanghai"], "Tags": [{"Key": "backup", "Value": "daily"}]}})
    assert job.Selector is not None and job.Selector.Regions == ["*", "ap-shanghai"]
    for bad in ({"Regions": [], "Tags": [{"Key": "a", "Value": "b"}]}, {"Regions": ["*"], "Tags": []},
                {"Regions": ["*"], "Tags": [{"Key": "a", "Value": "b"}, {"Key": "a", "Value": "c"}]},
                {"Regions": ["*"]}, {"Regions": ["*"], "Tags": [{"Key": "a", "Value": "b"}], "Other": 1}):
        with pytest.raises(BadRequest, match="Selector"):
            parse_job({"Selector": bad})


@pytest.mark.parametrize("name", ["x" * 60, "{InstanceId}-{Date}-{Time}", "{InstanceName}-{Date}", "{{braces}}",
                                  "web-{Date}" + "x" * 41, "{InstanceName}", " {InstanceName} ",
                                  # 60 characters is the rendered name's limit, not the template's
                                  "x" * 48 + "{InstanceName}", "x" * 55 + "{InstanceName}", "{InstanceName}-" * 5,
                                  "{{" * 60, "{InstanceName}" * 18])
def test_good_names(name: str) -> None:
    assert parse_job({"InstanceId": ID, "BlueprintName": name}).BlueprintName == name


@pytest.mark.parametrize(("name", "fragment"), [
    ("x" * 61, "BlueprintName"), ("", "BlueprintName"), ("{Nope}", "unknown placeholder"), ("{", "placeholder syntax"),
    ("{0}", "unknown placeholder"), ("{Date:>99}", "format spec"), ("{InstanceId!r}", "format spec"),
    ("{InstanceId}" + "x" * 47, "over 60"), ("   ", "empty"), ("tab\there", "control"),
    ("x" * 61 + "{InstanceName}", "over 60"), ("{InstanceId}" * 5, "over 60"), ("{InstanceName}" * 19, "BlueprintName"),
])
def test_bad_names(name: str, fragment: str) -> None:
    with pytest.raises(BadRequest, match=fragment):
        parse_job({"InstanceId": ID, "BlueprintName": name})


@pytest.mark.parametrize("field", ["Keep", "MaxInstances", "CopyKeep"])
@pytest.mark.parametrize("value", [True, False])
def test_a_count_is_never_a_boolean(field: str, value: bool) -> None:
    # pydantic would read true as 1: `"Keep": true` would keep one image and delete the others.
    job = {"InstanceId": ID, field: value, **({"CopyTo": ["ap-shanghai"]} if field == "CopyKeep" else {})}
    with pytest.raises(BadRequest, match=f"{field}: expected a number, not true or false"):
        parse_job(job)
    assert getattr(parse_job({**job, field: 2}), field) == 2
    assert getattr(parse_job({**job, field: None}), field) is None


def test_description_limit() -> None:
    assert parse_job({"InstanceId": ID, "Description": "d" * 60}).Description == "d" * 60
    with pytest.raises(BadRequest, match="Description"):
        parse_job({"InstanceId": ID, "Description": "d" * 61})


def test_tags_limit_leaves_room_for_the_two_managed_tags() -> None:
    assert MAX_USER_TAGS == 8
    tags = [{"Key": f"k{i}", "Value": "v"} for i in range(8)]
    assert len(parse_job({"InstanceId": ID, "Tags": tags}).Tags) == 8
    with pytest.raises(BadRequest, match="Tags"):
        parse_job({"InstanceId": ID, "Tags": [*tags, {"Key": "k8", "Value": "v"}]})


@pytest.mark.parametrize("key", ["scf-blueprint:instance", "scf-blueprint:slot", "SCF-BLUEPRINT:x", " scf-blueprint:y"])
def test_managed_tag_keys_are_reserved(key: str) -> None:
    with pytest.raises(BadRequest, match=r"reserved|space"):
        parse_job({"InstanceId": ID, "Tags": [{"Key": key, "Value": "v"}]})


@pytest.mark.parametrize("tags", [[{"Key": "", "Value": "v"}], [{"Key": "k" * 128, "Value": "v"}],
                                  [{"Key": "k", "Value": "v" * 256}], [{"Key": "k"}],
                                  [{"Key": "k", "Value": "v", "Extra": 1}], [{"Key": "k", "Value": "a"},
                                                                             {"Key": "k", "Value": "b"}]])
def test_bad_tags(tags: list) -> None:
    with pytest.raises(BadRequest, match="Tags"):
        parse_job({"InstanceId": ID, "Tags": tags})


@pytest.mark.parametrize(("field", "good", "bad"), [
    ("Keep", 1, 0), ("Keep", 500, 501), ("MaxInstances", 1, 0), ("Dispatch", "invoke", "parallel"),
    ("IdempotencyKey", "k" * 64, "k" * 65), ("IdempotencyKey", "k", ""), ("Region", "ap-shanghai", "Shanghai"),
    ("ForcePowerOff", True, "sometimes"), ("Wait", True, [1]), ("DryRun", False, {}),
])
def test_scalar_fields(field: str, good: object, bad: object) -> None:
    assert getattr(parse_job({"InstanceId": ID, field: good}), field) == good
    with pytest.raises(BadRequest, match=field):
        parse_job({"InstanceId": ID, field: bad})


@pytest.mark.parametrize("field", ["Unknown", "instanceId", "Webhook", "Tags2"])
def test_unknown_fields_are_rejected(field: str) -> None:
    with pytest.raises(BadRequest, match=f"{field}: unknown field"):
        parse_job({"InstanceId": ID, field: 1})


def test_errors_never_echo_values() -> None:
    with pytest.raises(BadRequest) as caught:
        parse_job({"InstanceId": "lhins-SECRETVALUE", "Description": "SECRETVALUE" * 10})
    assert "SECRETVALUE" not in caught.value.message


@pytest.mark.parametrize("data", [None, [], "x", 1])
def test_a_job_must_be_an_object(data: object) -> None:
    with pytest.raises(BadRequest, match="JSON object"):
        parse_job(data)


# ---- JSON ---------------------------------------------------------------------------------------------

def test_parse_json_bytes_and_str() -> None:
    assert parse_json(b'{"a": [1]}') == parse_json('{"a": [1]}') == {"a": [1]}


@pytest.mark.parametrize(("raw", "fragment"), [
    ("{", "not valid JSON"), (b"\xff", "not valid JSON"), ('"\ud800"', "not valid JSON"),
    ("[" * 33 + "]" * 33, "nested deeper"), ("[" * 5000 + "]" * 5000, "JSON"), ("NaN", "not valid JSON"),
    (" " * (MAX_JSON_BYTES + 1), "over"),
])
def test_parse_json_refuses(raw: bytes | str, fragment: str) -> None:
    with pytest.raises(BadRequest, match=fragment):
        parse_json(raw)


def test_parse_json_depth_limit_is_inclusive() -> None:
    assert parse_json("[" * 32 + "]" * 32) == orjson.loads("[" * 32 + "]" * 32)


# ---- the plain-job reader (a timer's usual job, read without building the Job model's validator) -----------

PLAIN_VALUES: dict[str, list[object]] = {
    "InstanceId": [ID, "lhins-abc", "lhins-web00001\n", "LHINS-WEB00001", "lhins-wéb00001", "", None, 5,
                   ["lhins-web00001"]],
    "Region": ["ap-guangzhou", "ap-guangzhou\n", "AP-x", "a-b", "ap", "ap-" + "x" * 37, "ap-" + "x" * 38,
               "na-siliconvalley", "ap-a-b-c-d", None, 1],
    "Keep": [1, 3, 500, 0, 501, -1, True, 3.0, "3", None],
    "Tags": [[], [{"Key": "backup", "Value": "daily"}], [{"Key": "k", "Value": "v", "X": 1}],
             [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}], [{"Key": " a", "Value": "v"}],
             [{"Key": "scf-blueprint:slot", "Value": "v"}], [{"Key": "SCF-Blueprint:x", "Value": "v"}],
             [{"Key": "qcs:x", "Value": "v"}], [{"Key": "k", "Value": ""}], [{"Key": "k" * 127, "Value": "v" * 255}],
             [{"Key": "k" * 128, "Value": "v"}], [{"Key": "k", "Value": "v" * 256}], [{"Key": "k!", "Value": "v"}],
             [{"Key": "\u9879\u76ee", "Value": "v"}], [{"Key": "键", "Value": "值 (1)"}], [{"Key": 1, "Value": "v"}],
             [{"Key": f"k{i}", "Value": "v"} for i in range(MAX_USER_TAGS)],
             [{"Key": f"k{i}", "Value": "v"} for i in range(MAX_USER_TAGS + 1)], ["backup=daily"], {}, None],
    "Wait": [True, False, 1, "true", None],
    "DryRun": [True, False, 0, None],
    "ForcePowerOff": [True, False, "yes", None],
    "BlueprintName": ["web-{Date}"],
    "InstanceIds": [[ID]],
}


def _plain_cases(count: int) -> list[dict[str, object]]:
    import random

    rng = random.Random(18)
    fields = list(PLAIN_VALUES)
    cases = [{"InstanceId": ID}, {"InstanceId": ID, "Keep": 3, "Tags": [{"Key": "backup", "Value": "daily"}]}]
    for _ in range(count):
        chosen = rng.sample(fields, rng.randint(0, 4))
        case = {name: rng.choice(PLAIN_VALUES[name]) for name in chosen}
        if rng.random() < 0.9:
            case.setdefault("InstanceId", ID)
        cases.append(case)
    return cases


def test_the_plain_job_reader_agrees_with_the_model() -> None:
    from blueprint.events import _plain_job
    from blueprint.triggers import JobModel, job_of

    read = 0
    for case in _plain_cases(3000):
        plain = _plain_job(case)
        if plain is None:
            continue  # the model judges it, as before
        read += 1
        model = job_of(JobModel.model_validate(case))
        assert plain == model, case
        assert repr(plain) == repr(model), case
        assert [type(t) for t in plain.Tags] == [type(t) for t in model.Tags], case
    assert read > 300  # the reader takes the plain jobs, not none of them


@pytest.mark.parametrize("case", [{"InstanceId": ID}, {"InstanceId": ID, "Keep": 3, "Region": "ap-guangzhou",
                                  "Tags": [{"Key": "backup", "Value": "daily"}], "Wait": True}])
def test_a_timers_plain_job_imports_no_pydantic(case: dict[str, object]) -> None:
    import subprocess
    import sys

    code = ("import json, sys; from blueprint.events import parse_job; "
            "job = parse_job(json.loads(sys.argv[1])); print('pydantic' in sys.modules, job.InstanceId)")
    out = subprocess.run([sys.executable, "-c", code, orjson.dumps(case).decode()], capture_output=True, text=True,  # noqa: S603
                         check=True, timeout=60)
    assert out.stdout.split() == ["False", ID]


@pytest.mark.parametrize("case", [
    {"InstanceId": ID},
    {"InstanceId": ID, "Keep": 1, "Wait": False, "DryRun": False, "ForcePowerOff": False},
    {"InstanceId": ID, "Keep": 500, "Wait": True, "DryRun": True, "ForcePowerOff": True},
    {"InstanceId": ID, "Region": "abcdefghij-abcdefghij-abcdefghij-abcdefg"},  # 40 characters, three parts
    {"InstanceId": ID, "Region": "ap-guangzhou", "Tags": [{"Key": "backup", "Value": "daily"}]},
    {"InstanceId": ID, "Tags": [{"Key": "k" * 127, "Value": "v" * 255}]},
    {"InstanceId": ID, "Tags": [{"Key": "键", "Value": "值 (1)"}, {"Key": "a b", "Value": "x=y/z@w"}]},
    {"InstanceId": ID, "Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(MAX_USER_TAGS)]},
    {"InstanceId": ID, "Tags": []},
])
def test_the_plain_job_reader_takes_a_timers_usual_jobs_up_to_their_limits(case: dict[str, object]) -> None:
    """The cold start's path: these never build the model (a reader that sent them there would still be right,
    only slower, so the differential test above cannot tell)."""
    from blueprint.events import _plain_job
    from blueprint.triggers import JobModel, job_of

    plain = _plain_job(case)
    assert plain is not None, case
    assert plain == job_of(JobModel.model_validate(case))
    assert plain.Dispatch is None and plain.Tags == [Tag(Key=t["Key"], Value=t["Value"]) for t in case.get("Tags", [])]


@pytest.mark.parametrize("case", [
    {"InstanceId": ID, "Keep": 3, "Tags": [{"Key": "backup", "Value": "daily"}]},
    {"Selector": {"Regions": ["ap-guangzhou", "*"], "Tags": [{"Key": "backup", "Value": "daily"},
                                                            {"Key": "env", "Value": "prod"}]},
     "MaxInstances": 20, "Dispatch": "inline", "BlueprintName": "{InstanceName}-{Date}"},
    {"InstanceIds": [ID, "ap-shanghai:lhins-sh000001"], "CopyTo": ["ap-beijing"], "CopyKeep": 2,
     "ShareWith": ["100000000001"], "DataDisks": ["lhdisk-webdata1"], "Consistent": True, "PostAfter": "ready",
     "Wait": True, "IdempotencyKey": "k-1", "Description": "nightly", "ForcePowerOff": False},
    {"InstanceId": ID, "DataDisks": "none", "Dispatch": "invoke", "DryRun": True},
])
def test_a_jobs_fields_are_its_json_and_read_back_as_the_same_job(case: dict[str, object]) -> None:
    """`Job.fields()` is the job as JSON (what a chained call carries): read again, it is the same job."""
    job = parse_job(case)
    fields = job.fields()
    assert orjson.loads(orjson.dumps(fields)) == fields == {**{"Tags": [], "Wait": False, "DryRun": False}, **case}
    assert parse_job(fields) == job


def test_an_instance_named_with_and_without_its_default_region_is_one_target() -> None:
    job = parse_job({"InstanceIds": [ID, f"ap-guangzhou:{ID}", f"ap-shanghai:{ID}"]})
    assert job.targets("ap-guangzhou") == [InstanceRef(Region="ap-guangzhou", InstanceId=ID),
                                           InstanceRef(Region="ap-shanghai", InstanceId=ID)]


@pytest.fixture
def shanghai_local_time():
    """The local zone SCF gives a function (TZ=Asia/Shanghai, UTC+8): a naive time must not be read in it."""
    import os
    import time

    saved = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Shanghai"
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()


@pytest.mark.parametrize("spelling", ["2026-11-27T03:00:00", "2026-11-27 03:00:00", "2026-11-27T03:00:00.000"])
def test_a_timer_time_without_zone_is_utc_whatever_the_local_zone(shanghai_local_time, spelling: str) -> None:
    # The first spelling is the plain reader's, the others the model's: both read it as UTC, not as local time.
    event = parse_event({"Type": "Timer", "Time": spelling})
    assert isinstance(event, TimerEvent)
    assert event.Time == datetime(2026, 11, 27, 3, tzinfo=timezone.utc)


@pytest.mark.parametrize("key", ["qcs:owner", "QCS:owner", "project:web", "Project:web", "\u9879\u76ee\u540d"])
@pytest.mark.parametrize("where", ["Tags", "Selector"])
def test_tag_keys_the_cloud_reserves_are_refused(key: str, where: str) -> None:
    tags = [{"Key": key, "Value": "x"}]
    job = {"InstanceId": ID, "Tags": tags} if where == "Tags" else {"Selector": {"Regions": ["*"], "Tags": tags}}
    with pytest.raises(BadRequest, match="reserved by Tencent Cloud"):
        parse_job(job)


def test_a_bad_job_names_its_plain_instances_in_their_regions() -> None:
    job = {"InstanceIds": ["lhins-web00001"] * 150 + ["ap-shanghai:lhins-sh000001", "nowhere!:lhins-db000001",
                                                      "lhins-db000001", "ap-shanghai:lhins-BAD"],
           "Region": "ap-beijing", "Keep": 0}
    assert named_in(job, "ap-guangzhou") == [
        InstanceRef(Region="ap-beijing", InstanceId="lhins-web00001"),
        InstanceRef(Region="ap-shanghai", InstanceId="lhins-sh000001"),
        InstanceRef(Region="ap-beijing", InstanceId="lhins-db000001")]
    assert named_in({"InstanceId": "lhins-web00001", "Region": ["x"]}, "ap-guangzhou") == [
        InstanceRef(Region="ap-guangzhou", InstanceId="lhins-web00001")]
    assert named_in(["lhins-web00001"], "ap-guangzhou") == []
