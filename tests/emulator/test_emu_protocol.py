"""The API 3.0 protocol: envelope, routing errors, schema errors, GET requests, regions."""

from __future__ import annotations

import hashlib
import time
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from emu_helpers import error_code, lighthouse, signed_post
from tencentcloud.lighthouse.v20200324 import models

from emulator import Emulator
from emulator.signing import authorization_header, canonical_request, signature


def test_success_envelope_and_content_type(emu: Emulator) -> None:
    reply = signed_post(emu, "DescribeRegions", {})
    assert set(reply) == {"TotalCount", "RegionSet", "RequestId"}
    assert len(reply["RequestId"]) == 36


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"action": "NoSuchThing"}, "InvalidAction"),
        ({"version": "2017-03-12"}, "NoSuchVersion"),
        ({"service": "cvm"}, "NoSuchProduct"),
        ({"region": None}, "MissingParameter"),
        ({"region": "mars-north-1"}, "UnsupportedRegion"),
    ],
)
def test_routing_errors(emu: Emulator, kwargs: dict[str, Any], code: str) -> None:
    action = kwargs.pop("action", "DescribeInstances")
    reply = signed_post(emu, action, {}, **kwargs)
    assert reply["Error"]["Code"] == code
    assert emu.calls[-1].error == code


@pytest.mark.parametrize(
    ("action", "params", "code"),
    [
        ("CreateBlueprint", {"InstanceId": "lhins-web00001"}, "MissingParameter"),
        ("CreateBlueprint", {"BlueprintName": "x", "Colour": "red"}, "UnknownParameter"),
        ("CreateBlueprint", {"BlueprintName": 5}, "InvalidParameter"),
        ("CreateBlueprint", {"BlueprintName": "x", "ForcePowerOff": "yes"}, "InvalidParameter"),
        ("CreateBlueprint", {"BlueprintName": "x", "Tags": [{"Key": "k"}]}, "MissingParameter"),
        ("DescribeBlueprints", {"Limit": "10"}, "InvalidParameter"),
        ("DescribeBlueprints", {"Filters": [{"Name": "x", "Values": "y"}]}, "InvalidParameter"),
        ("DeleteBlueprints", {}, "MissingParameter"),
    ],
)
def test_schema_errors(emu: Emulator, action: str, params: dict[str, Any], code: str) -> None:
    assert signed_post(emu, action, params)["Error"]["Code"] == code


def test_errors_raise_in_the_sdk(lh: Any) -> None:
    req = models.CreateBlueprintRequest()
    req.InstanceId = "lhins-web00001"
    assert error_code(lambda: lh.CreateBlueprint(req)) == "MissingParameter"


def test_sdk_get_requests_with_flattened_filters(emu: Emulator) -> None:
    client = lighthouse(emu, method="GET")
    req = models.DescribeInstancesRequest()
    req.from_json_string('{"Filters": [{"Name": "tag:backup", "Values": ["daily"]}], "Limit": 1}')
    result = client.DescribeInstances(req)
    assert (result.TotalCount, len(result.InstanceSet)) == (2, 1)
    create = models.CreateBlueprintRequest()
    create.from_json_string('{"BlueprintName": "g", "InstanceId": "lhins-web00001", "ForcePowerOff": false}')
    client.CreateBlueprint(create)
    assert emu.calls_of("CreateBlueprint")[0].params["ForcePowerOff"] == "False"
    assert emu.lighthouse.instances()[0]["InstanceState"] == "RUNNING"


def test_hand_made_get_with_lowercase_boolean(emu: Emulator) -> None:
    query = urlencode({"BlueprintName": "g", "InstanceId": "lhins-web00001", "ForcePowerOff": "true"})
    stamp = int(time.time())
    content_type = "application/x-www-form-urlencoded"
    canonical = canonical_request(
        "GET",
        query,
        {"content-type": content_type, "host": emu.endpoint},
        ("content-type", "host"),
        hashlib.sha256(b"").hexdigest(),
    )
    sig = signature("emulator-secret", "lighthouse", stamp, canonical)
    headers = {
        "Content-Type": content_type,
        "X-TC-Action": "CreateBlueprint",
        "X-TC-Version": "2020-03-24",
        "X-TC-Region": "ap-guangzhou",
        "X-TC-Timestamp": str(stamp),
        "Authorization": authorization_header("AKIDEMULATOR", "lighthouse", stamp, "content-type;host", sig),
    }
    reply = requests.get(f"{emu.url}/?{query}", headers=headers, timeout=5).json()["Response"]
    assert reply["BlueprintId"].startswith("lhbp-")
    assert emu.lighthouse.instances()[0]["InstanceState"] == "STOPPED"


def test_calls_are_recorded(emu: Emulator, lh: Any) -> None:
    lh.DescribeRegions(models.DescribeRegionsRequest())
    [call] = emu.calls_of("DescribeRegions")
    assert (call.service, call.region, call.error, call.params) == ("lighthouse", "ap-guangzhou", None, {})
    emu.reset_calls()
    assert emu.calls == []


def test_state_from_dict_and_file(tmp_path: Any) -> None:
    state = {
        "regions": ["ap-beijing"],
        "quota": 3,
        "instances": [{"InstanceId": "lhins-bj000001", "Region": "ap-beijing", "InstanceState": "STOPPED"}],
        "blueprints": [{"BlueprintName": "seed", "Region": "ap-beijing", "BlueprintId": "lhbp-seed0001"}],
        "queues": ["q"],
        "topics": [],
        "functions": ["f"],
    }
    path = tmp_path / "state.json"
    path.write_text(__import__("json").dumps(state))
    for source in (state, str(path), path):
        with Emulator(source, rate_limits=False) as emu:
            client = lighthouse(emu, "ap-beijing")
            assert client.DescribeInstances(models.DescribeInstancesRequest()).InstanceSet[0].InstanceState == "STOPPED"
            req = models.DescribeGeneralResourceQuotasRequest()
            req.ResourceNames = ["BLUEPRINT"]
            row = client.DescribeGeneralResourceQuotas(req).GeneralResourceQuotaSet[0]
            assert (row.ResourceQuotaTotal, row.ResourceQuotaAvailable) == (3, 2)
        emu.scf.shutdown()
