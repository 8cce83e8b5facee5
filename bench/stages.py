"""Where a warm invocation's own time goes, cold (after a pause) and hot (right after): `python -m bench.stages`.

Not part of `python -m bench`: it explains the warm figure rather than judging it. The function runs the
sample timer job as the `warm` benchmark runs it, but its cloud answers are canned (the first invocation's
answers, recorded, handed back in order by a stand-in at `ClientCache.get`), so only the function's own code
is timed. Each round sleeps `--pause` seconds, wakes the HTTP stack with one raw DescribeBlueprints, as the
warm benchmark does, then runs one invocation (cold) and at once another of the next slot (hot). Stages are
timed by wrappers around the functions in STAGES (inclusive times; a few µs of wrapper each).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from bench.common import context, local_cloud, quiet_logs
from bench.warm import _events, function_environ

# (module, class or "", function): the invocation's stages, outermost first.
STAGES = (
    ("blueprint.app", "App", "handle"), ("blueprint.app", "App", "_invocation"),
    ("blueprint.app", "", "read_credentials"), ("blueprint.app", "", "parse_event"),
    ("blueprint.app", "", "parse_job"), ("blueprint.app", "App", "_timer"), ("blueprint.app", "App", "execute"),
    ("blueprint.images", "ImageMaker", "plan"), ("blueprint.images", "ImageMaker", "run"),
    ("blueprint.images", "ImageMaker", "_todo"), ("blueprint.protect", "DiskSteps", "prepare"),
    ("blueprint.images", "ImageMaker", "_create_all"), ("blueprint.images", "ImageMaker", "_settle"),
    ("blueprint.app", "App", "_deliver"), ("blueprint.logs", "", "log"),
)


class Canned:
    """A client that answers each action with the recorded answers of that action, in order."""

    def __init__(self, answers: dict[str, list[Any]]) -> None:
        self.answers = answers
        self.used: dict[str, int] = {}

    def call(self, action: str, params: Any) -> Any:
        n = self.used.get(action, 0)
        self.used[action] = n + 1
        recorded = self.answers[action]
        return recorded[n % len(recorded)]


def _timed(key: str, fn: Callable[..., Any], spent: dict[str, float]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[key] = spent.get(key, 0.0) + time.perf_counter() - started

    return wrapper


class _Recorder:
    """The real client, with each answer kept for `Canned`."""

    def __init__(self, client: Any, recorded: dict[str, list[Any]]) -> None:
        self.client, self.recorded = client, recorded

    def call(self, action: str, params: Any) -> Any:
        answer = self.client.call(action, params)
        self.recorded.setdefault(action, []).append(answer)
        return answer


@contextmanager
def _canned_clients(canned: Canned, recording: list[bool]) -> Iterator[None]:
    """`ClientCache.get` hands out recording clients while `recording[0]`, then the canned one."""
    from blueprint.cloud import ClientCache

    stock = ClientCache.get

    def get(self: ClientCache, service: str, region: str, factory: Any) -> Any:
        if recording[0]:
            return _Recorder(stock(self, service, region, factory), canned.answers)
        return canned

    ClientCache.get = get  # type: ignore[method-assign]
    try:
        yield
    finally:
        ClientCache.get = stock  # type: ignore[method-assign]


@contextmanager
def _stages_timed(spent: dict[str, float]) -> Iterator[None]:
    originals = []
    for module_name, owner_name, name in STAGES:
        owner: Any = importlib.import_module(module_name)
        owner = getattr(owner, owner_name) if owner_name else owner
        fn = getattr(owner, name)
        originals.append((owner, name, fn))
        setattr(owner, name, _timed(f"{owner_name + '.' if owner_name else ''}{name}", fn, spent))
    try:
        yield
    finally:
        for owner, name, fn in originals:
            setattr(owner, name, fn)


def measure(rounds: int, pause: float, warmup: int = 20) -> list[list[str]]:
    """The table: per stage, the median cold and hot inclusive times (µs) and their ratio.

    Raises:
        RuntimeError: an invocation made no image.
    """
    from tencentcloud.lighthouse.v20200324 import models

    import handler
    from bench import naive_handler
    from blueprint.app import get_app

    canned, recording = Canned({}), [True]
    spent: dict[str, float] = {}
    times: dict[str, list[dict[str, float]]] = {"cold": [], "hot": []}
    events = _events(2 * (rounds + warmup) + 1)
    with local_cloud(webhook=False, rate_limits=False) as (emu, _rx, env), quiet_logs(), function_environ(env), \
            _canned_clients(canned, recording):
        emu.reset()
        handler.main_handler(events[0], context())
        recording[0] = False
        for limiter in get_app().lighthouse._limits.values():  # no wait may hide in a stage
            limiter.rate = 1e9
        raw, primer = naive_handler.make_client(env), models.DescribeBlueprintsRequest()
        with _stages_timed(spent):
            for i in range(rounds + warmup):
                for kind, event in (("cold", events[1 + 2 * i]), ("hot", events[2 + 2 * i])):
                    ctx = context()
                    if kind == "cold":
                        time.sleep(pause)
                        raw.DescribeBlueprints(primer)
                    canned.used = {}
                    spent.clear()
                    answer = handler.main_handler(event, ctx)
                    if not answer["Results"][0].get("BlueprintId"):
                        raise RuntimeError(f"stages: the invocation made no image: {answer}")
                    if i >= warmup:
                        times[kind].append(dict(spent))
    return _rows(times["cold"], times["hot"])


def _rows(cold: Sequence[dict[str, float]], hot: Sequence[dict[str, float]]) -> list[list[str]]:
    rows = []
    for key in cold[0]:
        c = statistics.median(s.get(key, 0.0) for s in cold) * 1e6
        h = statistics.median(s.get(key, 0.0) for s in hot) * 1e6
        rows.append([key, f"{c:.1f}", f"{h:.1f}", f"{c / h:.2f}x" if h else "-", f"{c - h:.1f}"])
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stages", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=150, help="measured rounds (default 150)")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds before each cold invocation (0.2)")
    args = parser.parse_args(argv)
    rows = measure(args.rounds, args.pause)
    print("| Stage (inclusive) | Cold, µs | Hot, µs | Cold / hot | Cold - hot, µs |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
