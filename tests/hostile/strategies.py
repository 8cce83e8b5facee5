"""Hypothesis strategies for hostile input: every trigger's shape, with odd types, unicode and sizes."""

from __future__ import annotations

import base64

import orjson
from hypothesis import strategies as st

from blueprint.localrun import LOCAL_TOKEN

# Every unicode category, lone surrogates and control characters included.
any_char = st.characters(exclude_categories=())
text = (st.text(any_char, max_size=40) | st.sampled_from(["", " ", "\x00", "\ud800", "\u202e"])
        | st.integers(55, 70).map(lambda n: "é" * n) | st.integers(4000, 6000).map(lambda n: "x" * n))

IDS = ["lhins-web00001", "lhins-db000001", "lhins-zzzzzzzz", "lhins-BAD", "lhins-web00001\n",
       "ap-guangzhou:lhins-web00001", "ap-shanghai:lhins-sh000001", "nowhere:lhins-web00001", ""]
JOB_KEYS = ["InstanceId", "InstanceIds", "Selector", "Region", "BlueprintName", "Description", "ForcePowerOff",
            "Tags", "Keep", "Wait", "DryRun", "IdempotencyKey", "MaxInstances", "Dispatch"]

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | text)
json_like = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(st.sampled_from(JOB_KEYS) | text, inner, max_size=4), max_leaves=20)

_keys = st.sampled_from(["env", "scf-blueprint:slot", "SCF-Blueprint:instance", "k"])
tag = st.fixed_dictionaries({"Key": _keys | text,
                             "Value": st.sampled_from(["prod", ""]) | text})
names = st.sampled_from(["{InstanceId}-{Date}", "{InstanceName}", "{", "}", "{0}", "{Date:>999999999}",
                         "{InstanceId!r}", "{InstanceName[0]}", "x" * 61, "ok-name"]) | text

job = st.fixed_dictionaries({}, optional={
    "InstanceId": st.sampled_from(IDS) | json_like,
    "InstanceIds": st.lists(st.sampled_from(IDS) | text, max_size=4) | st.integers(100, 102).map(
        lambda n: [f"lhins-{i:08d}" for i in range(n)]) | json_like,
    "Selector": st.fixed_dictionaries({"Regions": st.lists(st.sampled_from(["ap-guangzhou", "*", "x"]) | text,
                                                           max_size=3),
                                       "Tags": st.lists(tag, max_size=3)}) | json_like,
    "Region": st.sampled_from(["ap-guangzhou", "ap-shanghai", "AP-X", "ap-guangzhou\n"]) | text,
    "BlueprintName": names,
    "Description": text,
    "ForcePowerOff": st.booleans() | json_like,
    "Tags": st.lists(tag, max_size=10) | json_like,
    "Keep": st.integers(-2, 600) | json_like,
    "Wait": st.booleans() | json_like,
    "DryRun": st.booleans(),
    "IdempotencyKey": text,
    "MaxInstances": st.integers(-1, 20_000) | json_like,
    "Dispatch": st.sampled_from(["inline", "invoke", "INLINE"]) | json_like,
    "Unknown": json_like,
})
jobs = job | json_like


def json_bytes(value: object) -> bytes:
    """Serialise what orjson can; an unserialisable value (a 70-bit integer) becomes a broken document."""
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return b"{"


def _json_text(value: object) -> str:
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        return "{"


bodies = st.one_of(
    jobs.map(_json_text),
    text,
    st.integers(60_000, 100_000).map(lambda n: '{"InstanceId": "lhins-web00001", "Description": "' + "x" * n + '"}'),
    st.sampled_from(["", "{", "[" * 40 + "]" * 40, '{"InstanceId": "lhins-web00001"}',
                     '{"InstanceId":"lhins-web00001","Description":"\\ud800"}', "null", "[]", '"s"']),
    st.none(), st.integers(), st.lists(st.integers(), max_size=2), st.dictionaries(text, text, max_size=2),
)

header_value = (st.sampled_from([f"Bearer {LOCAL_TOKEN}", "Bearer", "bearer  " + LOCAL_TOKEN, "Basic x", ""]) | text
                | st.lists(text, max_size=2) | st.integers() | st.none() | st.dictionaries(text, text, max_size=1))
header_name = st.sampled_from(["Authorization", "authorization", "AUTHORIZATION", "Content-Type", "content-type",
                               "Idempotency-Key", "webhook-id", "Webhook-Signature", "webhook-timestamp"]) | text
headers = st.dictionaries(header_name, header_value, max_size=5) | st.none() | st.lists(text, max_size=2) | text


@st.composite
def http_events(draw: st.DrawFn) -> dict[str, object]:
    """API Gateway / Function URL events: mostly well-formed, each field sometimes wrong."""
    body = draw(bodies)
    flag = draw(st.sampled_from([False, True, "true", "True", "false", "yes", 1, 0, None, {}, "junk", [True]]))
    if flag in (True, "true", "True") and isinstance(body, str) and draw(st.booleans()):
        body = base64.b64encode(body.encode("utf-8", "surrogatepass")).decode()
    hdrs = draw(headers)
    if isinstance(hdrs, dict) and draw(st.booleans()):
        hdrs = {**hdrs, "Authorization": f"Bearer {LOCAL_TOKEN}"}
    event: dict[str, object] = {
        "httpMethod": draw(st.sampled_from(["POST", "GET", "post", "PUT", "DELETE", ""]) | text | json_like),
        "path": draw(st.sampled_from(["/blueprints", "/release/blueprints", "/blueprints/lhbp-00000000",
                                      "/blueprints/lhbp-00000000\n", "/blueprints/..", "/x", "/blueprints\n"])
                     | text | json_like),
        "headers": hdrs,
        "body": body,
        "isBase64Encoded": flag,
        "queryString": draw(st.dictionaries(st.sampled_from(["Region", "x"]) | text, json_like, max_size=2)
                            | json_like),
    }
    if draw(st.booleans()):
        event["requestContext"] = draw(st.just({"requestId": "r", "stage": "release"}) | json_like)
    for key in draw(st.lists(st.sampled_from(list(event)), max_size=2, unique=True)):
        if key != "httpMethod":
            del event[key]
    return event


@st.composite
def other_events(draw: st.DrawFn) -> object:
    """Timer, queue and direct-invoke shapes, and anything else."""
    kind = draw(st.sampled_from(["timer", "queue", "invoke", "chained", "any"]))
    if kind == "timer":
        return {"Type": draw(st.sampled_from(["Timer", "timer", "TIMER"]) | text),
                "TriggerName": draw(st.sampled_from(["daily"]) | text | json_like),
                "Time": draw(st.sampled_from(["2026-11-27T03:00:00Z", "bad", "9999-99-99"]) | json_like),
                "Message": draw(jobs.map(_json_text) | text | json_like)}
    if kind == "queue":
        record = st.fixed_dictionaries({"CMQ": st.fixed_dictionaries({"msgBody": bodies, "msgId": json_like})}) \
            | st.fixed_dictionaries({"Ckafka": st.fixed_dictionaries({"msgBody": bodies, "offset": json_like})}) \
            | json_like
        return {"Records": draw(st.lists(record, max_size=3) | json_like)}
    if kind == "chained":
        target = st.fixed_dictionaries({"Region": st.just("ap-guangzhou") | text,
                                        "InstanceId": st.just("lhins-web00001") | text,
                                        "BlueprintName": st.just("n") | text | json_like})
        return {"Chained": draw(st.just(1) | json_like), "Kind": draw(st.sampled_from(["child", "follow"]) | text),
                "Job": draw(jobs | json_like), "SlotKey": draw(text | json_like), "CorrelationId": draw(text),
                "Targets": draw(st.lists(target, max_size=3) | json_like),
                "Deadline": draw(st.sampled_from(["2099-01-01T00:00:00Z", "2026-12-01T00:00:00", "x"]) | json_like),
                "Trigger": draw(st.just({"Type": "timer", "Name": "t", "Time": "2026-11-27T03:00:00Z"}) | json_like)}
    if kind == "invoke":
        return draw(job)
    return draw(json_like)
