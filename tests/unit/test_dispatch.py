"""Issue 18: how a fan-out is cut into batches, how long it takes, and the pacing at a share of the rate."""

from __future__ import annotations

import pytest

from blueprint.chained import ChainTarget
from blueprint.dispatch import MAX_BATCH, batches, forecast
from blueprint.errors import DeadlineExceeded, NotSent
from blueprint.retry import Deadline, Pacer, RateLimiter
from tests.conftest import FrozenClock


def targets(region: str, count: int, start: int = 0) -> list[ChainTarget]:
    return [ChainTarget(Region=region, InstanceId=f"lhins-{n:08d}", BlueprintName=f"n{n}")
            for n in range(start, start + count)]


def test_batches_are_per_region_at_most_100_and_as_even_as_possible() -> None:
    fleet = targets("ap-guangzhou", 250) + targets("ap-shanghai", 100, 250) + targets("ap-guangzhou", 1, 400)
    cut = batches(fleet)
    assert [len(b) for b in cut] == [84, 84, 83, 100]
    assert all(len({t.Region for t in b}) == 1 for b in cut)
    assert [t.InstanceId for b in cut for t in b] == [t.InstanceId for t in fleet if t.Region == "ap-guangzhou"] + \
        [t.InstanceId for t in fleet if t.Region == "ap-shanghai"]
    assert MAX_BATCH == 100
    assert batches([]) == []
    assert [len(b) for b in batches(targets("ap-guangzhou", 7), size=3)] == [3, 3, 1]


def test_forecast_of_the_bench_fleet_and_of_ten_thousand_instances() -> None:
    # 200 in one region: two children at half the rate each, 10 s, one wave.
    bench = forecast([100, 100], share=1.0, create_rate=20, budget=897)
    assert (bench.children, bench.share, bench.seconds, bench.waves) == (2, 0.5, 10.0, 1)
    # 10,000 over 10 regions: 100 children at 1 % each; 500 s fits one 900 s invocation, not a 300 s one.
    big = forecast([100] * 100, share=1.0, create_rate=20, budget=897)
    assert (big.children, big.share, big.seconds, big.waves) == (100, 0.01, 500.0, 1)
    assert forecast([100] * 100, share=1.0, create_rate=20, budget=297).waves == 2


def test_a_rate_under_one_per_second_is_one_call_per_its_period() -> None:
    clock = FrozenClock()
    limiter = RateLimiter(0.2, clock=clock)
    deadline = Deadline.after(clock, 60)
    for _ in range(3):
        limiter.acquire(deadline)
    assert sum(clock.slept) == pytest.approx(2 * 1.05 / 0.2, abs=0.01)


def test_a_fractional_rate_above_one_rounds_down() -> None:
    clock = FrozenClock()
    limiter = RateLimiter(2.5, clock=clock)
    for _ in range(3):
        limiter.acquire(Deadline.after(clock, 60))
    assert len(clock.slept) == 1  # two per window, the third waits


def test_a_pacer_gives_each_action_its_share_of_its_documented_rate() -> None:
    clock = FrozenClock()
    pacer = Pacer(0.25, clock=clock)
    deadline = Deadline.after(clock, 60)
    for _ in range(5):
        pacer.acquire("CreateBlueprint", 20.0, deadline)  # 5 per window
    assert clock.slept == []
    pacer.acquire("DescribeBlueprints", 10.0, deadline)  # 2 per window: its own limiter
    pacer.acquire("DescribeBlueprints", 10.0, deadline)
    assert clock.slept == []
    pacer.acquire("CreateBlueprint", 20.0, deadline)
    assert len(clock.slept) == 1


def test_a_slot_after_the_deadline_is_not_sent() -> None:
    clock = FrozenClock()
    pacer = Pacer(0.01, clock=clock)
    deadline = Deadline.after(clock, 5)
    pacer.acquire("CreateBlueprint", 20.0, deadline)
    with pytest.raises(NotSent) as caught:
        pacer.acquire("CreateBlueprint", 20.0, deadline)  # the next slot is 5.25 s away
    assert isinstance(caught.value, DeadlineExceeded) and caught.value.retryable
    assert clock.slept == []
