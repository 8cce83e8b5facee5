"""The emulated clock: real time plus an offset tests move forward instead of sleeping."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone


class Clock:
    """Wall-clock seconds plus an offset that only grows."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Emulated epoch seconds."""
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move emulated time forward.

        Raises:
            ValueError: when `seconds` is negative (state machines never run backwards).
        """
        if seconds < 0:
            raise ValueError("the emulated clock cannot go backwards")
        with self._lock:
            self._offset += seconds


def iso(epoch: float) -> str:
    """`YYYY-MM-DDThh:mm:ssZ`, the format of every Lighthouse time field."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
