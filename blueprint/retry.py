"""Time-aware pacing: the invocation's deadline, our retries, and a per-action rate limiter.

The SDK's StandardRetryer re-sends attempts that already succeeded (docs/platform-facts.md), so retries are ours:
named retryable errors only, jittered exponential backoff, a total budget taken from the function's time
left, and the last error let through. Clock, sleep and random are injected so tests never wait.

Every wait goes through `Deadline.pause`: it is logged (what the function waits for, how long: INFO from one
second up, DEBUG below) and added to the invocation's `Waits`, which the summary line prints as `waited`.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple, TypeVar

from blueprint.errors import BlueprintError, CloudUnavailable, InstanceBusy, NotSent, Throttled
from blueprint.logs import log

__all__ = ["Clock", "Deadline", "LostAnswer", "Pacer", "RateLimiter", "RetryPolicy", "SystemClock", "Waits"]

# A wait this long or longer is logged at INFO (shorter ones at DEBUG; all are counted in `Waits`).
LOUD_WAIT = 1.0

T = TypeVar("T")


class Clock:
    """Monotonic time and sleep; replaced by a fake in tests."""

    def monotonic(self) -> float:
        """Seconds on a monotonic clock."""
        raise NotImplementedError

    def sleep(self, seconds: float) -> None:
        """Wait this long."""
        raise NotImplementedError

    def time(self) -> float:
        """Wall-clock epoch seconds."""
        raise NotImplementedError


class SystemClock(Clock):
    """The real clock."""

    def monotonic(self) -> float:
        """Seconds on the process's monotonic clock."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Really sleep (never negative)."""
        if seconds > 0:
            time.sleep(seconds)

    def time(self) -> float:
        """Epoch seconds."""
        return time.time()


class Waits:
    """What one invocation waited for and how long, by reason (shared by its deadlines; thread-safe)."""

    __slots__ = ("_by", "_lock")

    def __init__(self) -> None:
        self._by: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def add(self, what: str, seconds: float) -> None:
        """Count one wait."""
        with self._lock:
            entry = self._by.setdefault(what, [0, 0.0])
            entry[0] += 1
            entry[1] += seconds

    def summary(self) -> dict[str, dict[str, float]]:
        """{reason: {"count": n, "seconds": total}}, empty when nothing was waited for."""
        with self._lock:
            return {what: {"count": int(count), "seconds": round(total, 3)}
                    for what, (count, total) in sorted(self._by.items())}


class BusyBudget:
    """Seconds that busy instances may still be waited out (shared by every step that holds it)."""

    def __init__(self, seconds: float) -> None:
        self.left = seconds
        self._lock = threading.Lock()

    def spend(self, seconds: float) -> bool:
        """Take `seconds` if that many are left; False (nothing taken) otherwise."""
        with self._lock:
            if seconds > self.left:
                return False
            self.left -= seconds
            return True


class Deadline(NamedTuple):
    """The moment the function must stop working (its time limit minus a margin for delivery).

    `patient` is False when a caller waits for the answer (HTTP): an instance busy with another operation is
    then reported at once (409 with Retry-After) instead of being waited out for minutes. (A NamedTuple, not
    a frozen dataclass: a cold start pays for every dataclass it defines, issue 18.)
    """

    clock: Clock
    at: float
    waits: Waits
    patient: bool = True
    # A fan-out child's share of the account's API rates (None: the whole rate, as one container paces it).
    pace: Pacer | None = None
    # How many more seconds busy instances may be waited out (None: as long as the deadline allows); a queue
    # record's share of the batch's time, so that a few busy instances cannot keep the records after them from
    # ever being started. Only busy waits spend it: following an image does not.
    busy_budget: BusyBudget | None = None

    @classmethod
    def after(cls, clock: Clock, seconds: float, waits: Waits | None = None) -> Deadline:
        """A deadline `seconds` from now (its waits counted in `waits`, when given)."""
        return cls(clock, clock.monotonic() + seconds, waits if waits is not None else Waits())

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.at - self.clock.monotonic()

    def expired(self) -> bool:
        """True once the deadline has passed."""
        return self.remaining() <= 0

    def sooner(self, seconds: float) -> Deadline:
        """A deadline that is `seconds` earlier than this one."""
        return self._replace(at=self.at - seconds)

    @staticmethod
    def min(first: Deadline, second: Deadline) -> Deadline:
        """The sooner of two deadlines (the first's waits and patience)."""
        return first._replace(at=min(first.at, second.at))

    def within(self, seconds: float) -> Deadline:
        """This deadline, or `seconds` from now if that is sooner (a step with a time limit of its own)."""
        return self._replace(at=min(self.at, self.clock.monotonic() + seconds))

    def impatient(self) -> Deadline:
        """The same deadline, for a caller who waits for the answer (see `patient`)."""
        return self._replace(patient=False)

    def busy_for(self, seconds: float) -> Deadline:
        """The same deadline, waiting busy instances out for at most `seconds` in all."""
        return self._replace(busy_budget=BusyBudget(seconds))

    def busy_at_least(self, seconds: float) -> Deadline:
        """The same deadline, with at least `seconds` of busy waits left for this step (when they are limited)."""
        if self.busy_budget is None or self.busy_budget.left >= seconds:
            return self
        return self._replace(busy_budget=BusyBudget(seconds))

    def waits_out(self, seconds: float) -> bool:
        """True when a busy instance may be waited out `seconds` more (and spends them, when they are limited)."""
        if not self.patient:
            return False
        return self.busy_budget is None or self.busy_budget.spend(seconds)

    def paced(self, pace: Pacer) -> Deadline:
        """The same deadline, for an invocation paced at its share of the account's rates."""
        return self._replace(pace=pace)

    def pause(self, seconds: float, what: str, **fields: object) -> None:
        """Wait `seconds` for `what`: logged, counted, then slept on this deadline's clock."""
        pause(self.clock, seconds, what, self.waits, **fields)


def pause(clock: Clock, seconds: float, what: str, waits: Waits | None = None, **fields: object) -> None:
    """Wait `seconds` for `what` on `clock`; logged (INFO from `LOUD_WAIT` up) and counted in `waits`."""
    if seconds <= 0:
        return
    log("INFO" if seconds >= LOUD_WAIT else "DEBUG", f"waiting for {what}", waiting_for=what,
        seconds=round(seconds, 3), **fields)
    if waits is not None:
        waits.add(what, seconds)
    clock.sleep(seconds)


class RateLimiter:
    """At most `rate` calls in any sliding one-second window (the strictest reading of "N per second").

    A token bucket would allow a burst of N right after N spent at the end of the previous second: up to 2N
    in one window, which a strict server answers with RequestLimitExceeded. A rate under one per second (a
    fan-out child's share) is one call per 1/rate seconds; a fraction above one is rounded down.
    """

    # A plain class, not a dataclass: a cold start pays for every dataclass it defines (issue 18).
    __slots__ = ("_lock", "_sent", "clock", "name", "rate", "window")

    def __init__(self, rate: float, clock: Clock | None = None, name: str = "", window: float = 1.05) -> None:
        self.rate = rate
        self.clock = clock or SystemClock()
        # The action it paces, for the log line of a wait.
        self.name = name
        # A little over one second: requests leave in order but may arrive a few ms apart in another order.
        self.window = window
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RateLimiter(rate={self.rate!r}, name={self.name!r})"

    def _shape(self) -> tuple[int, float]:
        """Calls allowed per window, and the window's length."""
        if self.rate >= 1:
            return int(self.rate), self.window
        return 1, self.window / self.rate

    def acquire(self, deadline: Deadline | None = None) -> None:
        """Block until one more call fits in the window.

        Raises:
            NotSent: the slot would come after the deadline (the call was not sent).
        """
        capacity, window = self._shape()
        while True:
            with self._lock:
                now = self.clock.monotonic()
                while self._sent and now - self._sent[0] >= window:
                    self._sent.popleft()
                if len(self._sent) < capacity:
                    self._sent.append(now)
                    return
                wait = window - (now - self._sent[0]) + 0.001
            if deadline is not None and deadline.remaining() < wait:
                raise NotSent("no time left to send another request within the API rate limit")
            pause(self.clock, wait, "the API rate limit", deadline.waits if deadline is not None else None,
                  action=self.name or None)

    def saturate(self) -> None:
        """The cloud said the limit is reached (other callers share the account's rate): count the window as
        full, so the next call waits for it to pass instead of being throttled again at once."""
        capacity, _ = self._shape()
        with self._lock:
            now = self.clock.monotonic()
            self._sent.clear()
            self._sent.extend([now] * capacity)


class Pacer:
    """One invocation's share of the account's API rates: a fan-out child's limiter per action.

    The documented limits (20 CreateBlueprint/s, 10 DescribeBlueprints/s, ...) hold per account, for every
    container at once. Each container paces itself at the whole rate; a child of a fan-out is paced at its
    `share` of it as well, so children running side by side stay within the account's limits together.
    """

    def __init__(self, share: float, clock: Clock | None = None) -> None:
        self.share = share
        # The cloud counts requests in real time, so the pacing does too.
        self._clock = clock or SystemClock()
        self._limits: dict[str, RateLimiter] = {}
        self._lock = threading.Lock()

    def acquire(self, action: str, rate: float, deadline: Deadline) -> None:
        """Block until this invocation's share of `action`'s documented `rate` allows one more call.

        Raises:
            NotSent: the slot would come after the deadline.
        """
        with self._lock:
            limiter = self._limits.get(action)
            if limiter is None:
                limiter = self._limits[action] = RateLimiter(rate * self.share, clock=self._clock, name=action)
        limiter.acquire(deadline)


class LostAnswer:
    """A `before_retry` that remembers whether an attempt's answer was lost (the connection dropped, a garbled
    answer): the cloud may have acted on it. A retry that the cloud then refuses because the work is already
    done (what was to be deleted is gone, what was to be started is running) is the lost attempt's success,
    and the caller, told by `seen`, checks and reports it so."""

    def __init__(self) -> None:
        self.seen = False

    def __call__(self, err: BlueprintError) -> None:
        self.seen = self.seen or isinstance(err, CloudUnavailable)


class RetryPolicy(NamedTuple):
    """Bounded retries with full-jitter exponential backoff, on retryable errors only."""

    attempts: int = 4
    base: float = 0.5
    cap: float = 8.0
    # An unfinished operation on the instance takes minutes, not milliseconds: wait longer, and more often (12
    # tries wait about 2.5 to 5 minutes in all, within the deadline), before SCF's own retries take over.
    busy_base: float = 5.0
    busy_attempts: int = 12
    throttle_base: float = 0.2
    rng: Callable[[], float] = random.random

    def backoff(self, attempt: int, err: BlueprintError) -> float:
        """Seconds to wait before attempt number `attempt + 1` (attempt counts from 0)."""
        if isinstance(err, InstanceBusy):
            base, cap = self.busy_base, self.cap * 4
        elif isinstance(err, Throttled):
            # Our own limiter paces the retry too; a rate window frees up within a second.
            base, cap = self.throttle_base, self.cap
        else:
            base, cap = self.base, self.cap
        return float(min(cap, base * 2**attempt) * (0.5 + self.rng() / 2))

    def call(self, fn: Callable[[], T], *, deadline: Deadline,
             before_retry: Callable[[BlueprintError], T | None] | None = None) -> T:
        """Run `fn`, retrying retryable BlueprintErrors within the deadline.

        `before_retry(err)` runs before each new attempt; if it returns a value, that is the result
        (e.g. the image a lost CreateBlueprint answer did make). A busy instance is waited out only as long as
        the deadline's patience lasts (none for a caller who waits for the answer): then `before_retry` runs
        at once, and if it finds nothing the error is raised. Busy answers and other errors are counted apart,
        so the instance's minutes of being busy leave a lost answer or a throttle its own retries.

        Raises:
            BlueprintError: the last error, when it is not retryable, attempts ran out, or time did.
        """
        tries = [0, 0]  # [other errors, busy answers]
        while True:
            try:
                return fn()
            except BlueprintError as err:
                busy = isinstance(err, InstanceBusy)
                attempt = tries[busy]
                if not err.retryable or attempt + 1 >= (self.busy_attempts if busy else self.attempts):
                    raise
                wait = self.backoff(attempt, err)
                if busy and not deadline.waits_out(wait):
                    found = before_retry(err) if before_retry is not None else None
                    if found is None:
                        raise
                    return found
                if deadline.remaining() < wait + 1.0:
                    raise
                deadline.pause(wait, "a retry", error=err.code, attempt=attempt + 1)
                tries[busy] += 1
                if before_retry is not None:
                    found = before_retry(err)
                    if found is not None:
                        return found
