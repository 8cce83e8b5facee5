"""The chained-call envelope (blueprint/chained.py) on its own: what `build` writes, where `parse` draws its
lines, and what `salvage` keeps of a broken envelope so a refusal can still name its instances and slot.

The end-to-end paths (a parent's invocations run as SCF delivers them) are in tests/functional/
test_chained_calls.py; these pin the edges mutation testing found unguarded (docs/mutation.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from blueprint.chained import CALL_CODE, MAX_TARGETS, SKEW, ChainTarget, Refused, build, parse, salvage
from blueprint.events import InstanceRef, TriggerInfo

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=timezone.utc)
TTL = 600.0
TRIGGER = TriggerInfo(Type="timer", Name="daily", Time=NOW)
WEB = ChainTarget(Region="ap-guangzhou", InstanceId="lhins-web00001", BlueprintName="web{prod}-20261127")


def envelope(**changes: Any) -> dict[str, Any]:
    call = orjson.loads(build(kind="child", options={"Keep": 3}, targets=[WEB], trigger=TRIGGER,
                              slot_key="timer|tick|daily|2026-11-27T03:00:00Z", correlation_id="corr-1",
                              deadline=NOW + timedelta(seconds=300)))
    call.update(changes)
    return dict(call)


def refusal(payload: dict[str, Any], *, now: datetime = NOW) -> Refused:
    with pytest.raises(Refused) as caught:
        parse(payload, now=now, ttl=TTL)
    return caught.value


def test_build_carries_the_parents_correlation_id_cut_to_100_characters() -> None:
    assert envelope()["CorrelationId"] == "corr-1"
    long = orjson.loads(build(kind="child", options={}, targets=[WEB], trigger=TRIGGER, slot_key="k",
                              correlation_id="c" * 150, deadline=NOW))
    assert long["CorrelationId"] == "c" * 100
    empty = orjson.loads(build(kind="child", options={}, targets=[WEB], trigger=TRIGGER, slot_key="k",
                               correlation_id="", deadline=NOW))
    assert empty["CorrelationId"] == "-"


def test_a_deadline_exactly_ttl_plus_skew_away_is_accepted_and_one_microsecond_more_is_refused() -> None:
    edge = NOW + timedelta(seconds=TTL) + SKEW
    call, job = parse(envelope(Deadline=edge.isoformat()), now=NOW, ttl=TTL)
    assert call.Deadline == edge and job.Keep == 3
    refused = refusal(envelope(Deadline=(edge + timedelta(microseconds=1)).isoformat()))
    assert refused.error.code == CALL_CODE and refused.error.status == 400
    assert "BLUEPRINT_CHILD_TTL" in refused.error.message


def test_a_call_that_starts_at_its_deadline_still_runs_and_one_after_it_is_expired() -> None:
    call, _ = parse(envelope(), now=NOW + timedelta(seconds=300), ttl=TTL)
    assert call.Deadline == NOW + timedelta(seconds=300)
    late = refusal(envelope(), now=NOW + timedelta(seconds=300, microseconds=1))
    assert (late.error.code, late.error.status, late.error.retryable) == ("FailedOperation.SlotExpired", 410, False)
    assert late.slot_key == "timer|tick|daily|2026-11-27T03:00:00Z"


def test_a_job_the_envelope_cannot_run_is_refused_with_the_envelope_code() -> None:
    refused = refusal(envelope(Job={"Keep": "many"}))
    assert (refused.error.code, refused.error.status) == (CALL_CODE, 400)
    assert refused.targets == [InstanceRef(Region="ap-guangzhou", InstanceId="lhins-web00001")]


def test_a_refusal_names_the_slot_and_the_trigger_it_could_read() -> None:
    refused = refusal(envelope(Chained=2))
    assert refused.error.code == CALL_CODE
    assert refused.slot_key == "timer|tick|daily|2026-11-27T03:00:00Z"
    assert refused.trigger == TRIGGER


@pytest.mark.parametrize(("slot", "kept"), [
    ("s", True), ("s" * 300, True), ("s" * 301, False), ("", False), ("tab\there", False), (7, False), (None, False)])
def test_salvage_keeps_a_slot_key_only_when_it_could_be_one(slot: object, kept: bool) -> None:
    _, slot_key, _ = salvage({"SlotKey": slot})
    assert slot_key == (slot if kept else None)


def test_salvage_keeps_each_readable_target_once_and_never_guesses() -> None:
    web = {"Region": "ap-guangzhou", "InstanceId": "lhins-web00001"}
    elsewhere = {"Region": "ap-shanghai", "InstanceId": "lhins-web00001"}
    bad = {"Region": "ap-guangzhou", "InstanceId": "i-bad"}
    targets, _, trigger = salvage({"Targets": [web, dict(web), bad, "not a target", elsewhere],
                                   "Trigger": {"Type": "nope"}})
    assert targets == [InstanceRef(Region="ap-guangzhou", InstanceId="lhins-web00001"),
                       InstanceRef(Region="ap-shanghai", InstanceId="lhins-web00001")]
    assert trigger is None


@pytest.mark.parametrize("raw", [None, {"Region": "ap-guangzhou"}, "lhins-web00001", 7])
def test_salvage_of_targets_that_are_not_a_list_finds_none(raw: object) -> None:
    assert salvage({"Targets": raw}) == ([], None, None)


def test_salvage_reads_at_most_max_targets() -> None:
    many = [{"Region": "ap-guangzhou", "InstanceId": f"lhins-{n:08d}"} for n in range(MAX_TARGETS + 5)]
    assert len(salvage({"Targets": many})[0]) == MAX_TARGETS
