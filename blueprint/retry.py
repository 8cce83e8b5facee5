"""Time-aware pacing: the invocation's deadline, our retries, and a per-action rate limiter.

The SDK's StandardRetryer re-sends attempts that already succeeded (docs/platform-facts.md), so retries are ours:
named retryable errors only, jittered exponential backoff, a total budget taken from the function's time
left, and the last error let through. Clock, sleep and random are injected so tests never wait.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from blueprint.errors import BlueprintError, DeadlineExceeded, InstanceBusy, Throttled

__all__ = ["Clock", "Deadline", "RateLimiter", "RetryPolicy", "SystemClock"]

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


@dataclass(frozen=True)
class Deadline:
    """The moment the function must stop working (its time limit minus a margin for delivery)."""

    clock: Clock
    at: float

    @classmethod
    def after(cls, clock: Clock, seconds: float) -> Deadline:
        """A deadline `seconds` from now."""
        return cls(clock, clock.monotonic() + seconds)

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.at - self.clock.monotonic()

    def expired(self) -> bool:
        """True once the deadline has passed."""
        return self.remaining() <= 0

    def sooner(self, seconds: float) -> Deadline:
        """A deadline that is `seconds` earlier than this one."""
        return Deadline(self.clock, self.at - seconds)


@dataclass
class RateLimiter:
    """At most `rate` calls in any sliding one-second window (the strictest reading of "N per second").

    A token bucket would allow a burst of N right after N spent at the end of the previous second: up to 2N
    in one window, which a strict server answers with RequestLimitExceeded.
    """

    rate: float
    clock: Clock = field(default_factory=SystemClock)
    # A little over one second: requests leave in order but may arrive a few ms apart in another order.
    window: float = 1.05
    _sent: deque[float] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def acquire(self, deadline: Deadline | None = None) -> None:
        """Block until one more call fits in the window.

        Raises:
            DeadlineExceeded: the slot would come after the deadline.
        """
        capacity = max(1, int(self.rate))
        while True:
            with self._lock:
                now = self.clock.monotonic()
                while self._sent and now - self._sent[0] >= self.window:
                    self._sent.popleft()
                if len(self._sent) < capacity:
                    self._sent.append(now)
                    return
                wait = self.window - (now - self._sent[0]) + 0.001
            if deadline is not None and deadline.remaining() < wait:
                raise DeadlineExceeded("no time left to send another request within the API rate limit")
            self.clock.sleep(wait)

    def saturate(self) -> None:
        """The cloud said the limit is reached (other callers share the account's rate): count the window as
        full, so the next call waits for it to pass instead of being throttled again at once."""
        capacity = max(1, int(self.rate))
        with self._lock:
            now = self.clock.monotonic()
            self._sent.clear()
            self._sent.extend([now] * capacity)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with full-jitter exponential backoff, on retryable errors only."""

    attempts: int = 4
    base: float = 0.5
    cap: float = 8.0
    # An unfinished operation on the instance takes minutes, not milliseconds: wait longer.
    busy_base: float = 5.0
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
        (e.g. the image a lost CreateBlueprint answer did make).

        Raises:
            BlueprintError: the last error, when it is not retryable, attempts ran out, or time did.
        """
        attempt = 0
        while True:
            try:
                return fn()
            except BlueprintError as err:
                if not err.retryable or attempt + 1 >= self.attempts:
                    raise
                wait = self.backoff(attempt, err)
                if deadline.remaining() < wait + 1.0:
                    raise
                deadline.clock.sleep(wait)
                attempt += 1
                if before_retry is not None:
                    found = before_retry(err)
                    if found is not None:
                        return found
