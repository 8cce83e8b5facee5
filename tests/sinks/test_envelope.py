"""The envelope every sink gets: CloudEvents 1.0 structured JSON as README.md and docs/delivery.md pin it."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import orjson

from blueprint.errors import CloudRejected
from blueprint.events import TriggerInfo
from blueprint.results import CORRELATION_ATTRIBUTE, EVENT_TYPES, Result, RunReport, Source, cloud_event, summary_event
from tests.conftest import context, timer_event
from tests.sinks.helpers import by_type, data, parse, parse_json

TRIGGER = TriggerInfo(Type="timer", Name="daily", Time=datetime(2026, 11, 27, 3, tzinfo=timezone.utc))
SOURCE = Source(region="ap-guangzhou", namespace="prod", function="lighthouse-blueprint")


def result(outcome: str = "created", **fields: object) -> Result:
    base: dict[str, object] = {"outcome": outcome, "instance_id": "lhins-web00001", "region": "ap-guangzhou",
                               "trigger": TRIGGER, "slot_key": "timer:daily:2026-11-27T03:00:00Z",
                               "force_power_off": True, "blueprint_id": "lhbp-aaaa0001",
                               "blueprint_name": "web-20261127", "state": "CREATING", "request_id": "req-1"}
    return Result(**(base | fields))  # type: ignore[arg-type]


def test_the_contract_types_and_nothing_else() -> None:
    assert set(EVENT_TYPES) == {f"com.tencentcloud.lighthouse.blueprint.{t}"
                                for t in ("created", "ready", "failed", "skipped", "pruned", "run.completed",
                                          "copied", "shared", "restore.started", "restore.completed",
                                          "restore.failed")}


def test_a_result_is_a_valid_cloudevent_with_the_contract_fields() -> None:
    event = cloud_event(result(), SOURCE, correlation_id="corr-1")
    parsed = parse({"Content-Type": "application/cloudevents+json"}, orjson.dumps(event))
    assert parsed.get_specversion() == "1.0"
    assert parsed.get_source() == "scf://ap-guangzhou/prod/lighthouse-blueprint"
    assert parsed.get_type() == "com.tencentcloud.lighthouse.blueprint.created"
    assert parsed.get_subject() == "lhins-web00001"
    assert parsed.get_time() is not None
    assert parsed.get_datacontenttype() == "application/json"
    assert parsed.get_extension(CORRELATION_ATTRIBUTE) == "corr-1"
    assert data(parsed) == {
        "BlueprintId": "lhbp-aaaa0001", "BlueprintName": "web-20261127", "InstanceId": "lhins-web00001",
        "Region": "ap-guangzhou", "State": "CREATING", "ForcePowerOff": True, "RequestId": "req-1",
        "Trigger": {"Type": "timer", "Name": "daily", "Time": "2026-11-27T03:00:00Z"}}


def test_extension_names_follow_the_cloudevents_rule() -> None:
    event = cloud_event(result(), SOURCE, correlation_id="c")
    standard = {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema", "data"}
    for name in set(event) - standard:
        assert re.fullmatch(r"[a-z0-9]+", name), name


def test_failed_results_carry_the_error() -> None:
    err = CloudRejected("CreateBlueprint: no", code="FailedOperation.CreateBlueprintFailed")
    payload = cloud_event(result("failed", error=err, state=None), SOURCE)["data"]
    assert payload["Error"] == {"Code": "FailedOperation.CreateBlueprintFailed", "Message": "CreateBlueprint: no"}


def test_ids_are_deterministic_per_instance_slot_and_type() -> None:
    first = cloud_event(result(), SOURCE)["id"]
    assert cloud_event(result(), SOURCE)["id"] == first  # an SCF retry sends the same id
    assert cloud_event(result("ready"), SOURCE)["id"] != first
    assert cloud_event(result(slot_key="timer:daily:2026-11-28T03:00:00Z"), SOURCE)["id"] != first
    assert cloud_event(result(instance_id="lhins-db000001"), SOURCE)["id"] != first


def test_pruned_ids_are_per_image() -> None:
    one = cloud_event(result("pruned", blueprint_id="lhbp-old00001"), SOURCE)["id"]
    assert cloud_event(result("pruned", blueprint_id="lhbp-old00001", slot_key="other"), SOURCE)["id"] == one
    assert cloud_event(result("pruned", blueprint_id="lhbp-old00002"), SOURCE)["id"] != one


def test_the_summary_is_one_per_slot_and_a_valid_cloudevent() -> None:
    report = RunReport(TRIGGER, "timer:daily:2026-11-27T03:00:00Z", results=[result(), result("failed")],
                       matched=2, multi=True)
    event = summary_event(report, SOURCE, correlation_id="c")
    parsed = parse_json(orjson.dumps(event).decode())
    assert parsed.get_type() == "com.tencentcloud.lighthouse.blueprint.run.completed"
    assert parsed.get_id() == summary_event(report, SOURCE)["id"]
    assert data(parsed)["Counts"] == {"created": 1, "failed": 1}
    assert data(parsed)["Matched"] == 2


def test_a_multi_instance_run_sends_exactly_one_summary_and_the_invocation_correlation_id(
        make_app, receiver) -> None:
    app = make_app()
    app.handle(timer_event({"InstanceIds": ["lhins-web00001", "lhins-db000001"]}), context(request_id="rq-42"))
    events = [parse(r["headers"], r["body"]) for r in receiver.accepted()]
    assert len(by_type(events, ".created")) == 2
    assert len(by_type(events, ".run.completed")) == 1
    assert {e.get_extension("correlationid") for e in events} == {"rq-42"}
    assert len({e.get_id() for e in events}) == 3


def test_a_chained_call_keeps_its_correlation_id(make_app, receiver) -> None:
    app = make_app()
    call = {"Job": {"InstanceId": "lhins-web00001", "Region": "ap-guangzhou"},
            "Trigger": {"Type": "timer", "Name": "daily", "Time": "2026-11-27T03:00:00Z"},
            "SlotKey": "timer:daily:2026-11-27T03:00:00Z", "CorrelationId": "corr-from-parent"}
    app.handle(call, context())
    events = [parse(r["headers"], r["body"]) for r in receiver.accepted()]
    assert events and {e.get_extension("correlationid") for e in events} == {"corr-from-parent"}
