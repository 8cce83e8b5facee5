"""Per-action rate limits: at most N accepted calls in any sliding 1.0 s window of REAL time."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

# Documented limits, with their sources in emulator/README.md (TAT: the API overview
# https://cloud.tencent.com/document/api/1340/52696 and each action's page); actions not listed are unlimited.
# Keys are action names alone: no two emulated services share a rate-limited action name.
DEFAULT_LIMITS: dict[str, int] = {
    "CreateBlueprint": 20,
    "DescribeBlueprints": 10,
    "DeleteBlueprints": 20,
    "DescribeInstances": 100,
    "SyncBlueprint": 20,
    "ShareBlueprintAcrossAccounts": 20,
    "CancelShareBlueprintAcrossAccounts": 20,
    "DescribeBlueprintsShareAcrossAccountInfos": 20,
    "InquirePriceCreateBlueprint": 20,
    "ResetInstance": 10,
    "CreateDiskBackup": 20,
    "DescribeDiskBackups": 20,
    "DeleteDiskBackups": 20,
    "ApplyDiskBackup": 20,
    "ModifyDisksBackupQuota": 20,
    "TagResources": 20,
    "SendCmqMsg": 20,
    "PublishCmqMsg": 20,
    "Invoke": 100,
    # SCF deploy calls (current API pages; older pages said CreateFunction 10/s and UpdateFunctionCode 20/s).
    # UpdateFunctionConfiguration, ListFunctions, ListTriggers, UpdateTrigger and DeleteFunction: not found.
    "CreateFunction": 100,
    "GetFunction": 100,
    "UpdateFunctionCode": 100,
    "CreateTrigger": 100,
    "DeleteTrigger": 100,
    "RunCommand": 20,
    "InvokeCommand": 20,
    "DescribeInvocationTasks": 20,
    "DescribeInvocations": 20,
    "DescribeAutomationAgentStatus": 60,
    "DescribeCommands": 20,
    "CancelInvocation": 20,
}


def resolve_limits(option: Mapping[str, int | None] | bool | None) -> dict[str, int]:
    """Turn the `rate_limits` option into a table: None defaults, dict merged (None drops), False off."""
    if option is False:
        return {}
    limits = dict(DEFAULT_LIMITS)
    if isinstance(option, Mapping):
        for action, limit in option.items():
            if limit is None:
                limits.pop(action, None)
            else:
                limits[action] = limit
    return limits


class RateLimiter:
    """Sliding-window limiter; the strictest reading of "N requests per second"."""

    def __init__(
        self,
        limits: Mapping[str, int],
        *,
        window: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = dict(limits)
        self.window = window
        self._monotonic = monotonic
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, action: str) -> bool:
        """Record a call of `action` and say whether it is within its limit."""
        limit = self.limits.get(action)
        if limit is None:
            return True
        now = self._monotonic()
        with self._lock:
            seen = self._seen.setdefault(action, deque())
            while seen and seen[0] <= now - self.window:
                seen.popleft()
            if len(seen) >= limit:
                return False
            seen.append(now)
            return True

    def reset(self) -> None:
        """Forget past calls."""
        with self._lock:
            self._seen.clear()
