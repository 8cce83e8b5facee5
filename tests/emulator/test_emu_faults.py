"""Fault injection, rate limits and latency, seen through the real SDK."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from emu_helpers import error_code, lighthouse
from tencentcloud.lighthouse.v20200324 import models

from emulator import Emulator

SEED_CODES = [
    "FailedOperation",
    "FailedOperation.CreateBlueprintFailed",
    "FailedOperation.InsufficientBalance",
    "FailedOperation.UnableToCreateBlueprint",
    "InternalError",
    "InternalError.DescribeInstanceStatus",
    "UnauthorizedOperation.NoPermission",
]


def create_req(name: str = "bp") -> Any:
    req = models.CreateBlueprintRequest()
    req.BlueprintName = name
    req.InstanceId = "lhins-web00001"
    return req


@pytest.mark.parametrize("code", SEED_CODES)
def test_fail_injects_each_seed_code_once(emu: Emulator, lh: Any, code: str) -> None:
    emu.faults.fail("CreateBlueprint", code, message="injected")
    assert error_code(lambda: lh.CreateBlueprint(create_req())) == code
    assert emu.lighthouse.blueprints() == []
    assert lh.CreateBlueprint(create_req()).BlueprintId


def test_fail_times_and_wildcard(emu: Emulator, lh: Any) -> None:
    emu.faults.fail("*", "InternalError", times=2)
    for _ in range(2):
        assert error_code(lambda: lh.DescribeRegions(models.DescribeRegionsRequest())) == "InternalError"
    lh.DescribeRegions(models.DescribeRegionsRequest())


def test_drop_before_leaves_no_image(emu: Emulator, lh: Any) -> None:
    emu.faults.drop("CreateBlueprint")
    assert error_code(lambda: lh.CreateBlueprint(create_req())) == "ClientNetworkError"
    assert emu.lighthouse.blueprints() == []
    assert emu.calls_of("CreateBlueprint")[0].dropped


def test_drop_after_makes_the_image_the_client_never_heard_of(emu: Emulator, lh: Any) -> None:
    emu.faults.drop("CreateBlueprint", after=True)
    assert error_code(lambda: lh.CreateBlueprint(create_req("lost"))) == "ClientNetworkError"
    [image] = emu.lighthouse.blueprints()
    assert image["BlueprintName"] == "lost"
    req = models.DescribeBlueprintsRequest()
    req.from_json_string('{"Filters": [{"Name": "blueprint-name", "Values": ["lost"]}]}')
    assert lh.DescribeBlueprints(req).TotalCount == 1
    assert error_code(lambda: lh.CreateBlueprint(create_req())) == "UnsupportedOperation.LatestOperationUnfinished"


def test_http_status(emu: Emulator, lh: Any) -> None:
    emu.faults.http_status("DescribeInstances", 502)
    assert error_code(lambda: lh.DescribeInstances(models.DescribeInstancesRequest())) == "ServerNetworkError"
    assert lh.DescribeInstances(models.DescribeInstancesRequest()).TotalCount == 3


def test_delay_and_clear(emu: Emulator, lh: Any) -> None:
    emu.faults.delay("DescribeRegions", 0.3)
    started = time.monotonic()
    lh.DescribeRegions(models.DescribeRegionsRequest())
    assert time.monotonic() - started >= 0.3
    emu.faults.clear()
    started = time.monotonic()
    lh.DescribeRegions(models.DescribeRegionsRequest())
    assert time.monotonic() - started < 0.3


def test_latency_per_action() -> None:
    with Emulator(rate_limits=False, latency={"DescribeRegions": 0.2}) as emu:
        lh = lighthouse(emu)
        started = time.monotonic()
        lh.DescribeRegions(models.DescribeRegionsRequest())
        assert time.monotonic() - started >= 0.2


def test_describe_blueprints_rate_limit_10_per_second() -> None:
    with Emulator() as emu:
        lh = lighthouse(emu)
        req = models.DescribeBlueprintsRequest()
        codes = []
        for _ in range(11):
            try:
                lh.DescribeBlueprints(req)
                codes.append(None)
            except Exception as err:  # the SDK exception
                codes.append(getattr(err, "code", None))
        assert codes.count("RequestLimitExceeded") >= 1
        assert codes[:10] == [None] * 10


def test_21_create_blueprint_calls_hit_the_limit() -> None:
    with Emulator(quota=100, image_seconds=0) as emu:
        lh = lighthouse(emu)
        results = []
        for index in range(21):
            try:
                results.append(lh.CreateBlueprint(create_req(f"bp{index}")).BlueprintId)
            except Exception as err:
                results.append(getattr(err, "code", "?"))
        assert "RequestLimitExceeded" in results
        assert sum(1 for r in results if str(r).startswith("lhbp-")) <= 20


def test_rate_limit_overrides() -> None:
    with Emulator(rate_limits={"DescribeRegions": 1}) as emu:
        lh = lighthouse(emu)
        lh.DescribeRegions(models.DescribeRegionsRequest())
        assert error_code(lambda: lh.DescribeRegions(models.DescribeRegionsRequest())) == "RequestLimitExceeded"


def test_concurrent_create_blueprint_exactly_one_wins(emu: Emulator) -> None:
    clients = [lighthouse(emu) for _ in range(12)]

    def attempt(client: Any) -> str:
        try:
            return str(client.CreateBlueprint(create_req()).BlueprintId)
        except Exception as err:
            return str(getattr(err, "code", err))

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(attempt, clients))
    winners = [r for r in results if r.startswith("lhbp-")]
    assert len(winners) == 1
    assert set(results) - set(winners) == {"UnsupportedOperation.LatestOperationUnfinished"}
    assert len(emu.lighthouse.blueprints()) == 1
