"""Shared world (lock, clock, regions), the sample state and loading a state file."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.clock import Clock

DEFAULT_REGION = "ap-guangzhou"
# The account (main-account uin) of every secret id that `accounts=` does not bind elsewhere.
DEFAULT_UIN = "100000000001"

# Display names for DescribeRegions; unknown regions fall back to their id.
REGION_NAMES: dict[str, tuple[str, bool]] = {
    "ap-guangzhou": ("South China(Guangzhou)", True),
    "ap-shanghai": ("East China(Shanghai)", True),
    "ap-beijing": ("North China(Beijing)", True),
    "ap-chengdu": ("Southwest China(Chengdu)", True),
    "ap-nanjing": ("East China(Nanjing)", True),
    "ap-chongqing": ("Southwest China(Chongqing)", True),
    "ap-hongkong": ("Hong Kong, Macau and Taiwan (China)(Hong Kong, China)", False),
    "ap-singapore": ("Southeast Asia(Singapore)", False),
    "ap-tokyo": ("Northeast Asia(Tokyo)", False),
    "ap-seoul": ("Northeast Asia(Seoul)", False),
    "ap-bangkok": ("Southeast Asia(Bangkok)", False),
    "ap-jakarta": ("Southeast Asia(Jakarta)", False),
    "ap-mumbai": ("South Asia(Mumbai)", False),
    "na-ashburn": ("East US(Virginia)", False),
    "na-siliconvalley": ("West US(Silicon Valley)", False),
    "eu-frankfurt": ("Europe(Frankfurt)", False),
}


@dataclass
class World:
    """What every service shares: one re-entrant lock around all state, the clock, the regions."""

    clock: Clock = field(default_factory=Clock)
    lock: threading.RLock = field(default_factory=threading.RLock)
    regions: list[str] = field(default_factory=list)
    unavailable: set[str] = field(default_factory=set)

    def add_region(self, region: str) -> None:
        """Make `region` known (requests naming it are accepted)."""
        with self.lock:
            if region not in self.regions:
                self.regions.append(region)


def is_mainland(region: str) -> bool:
    """Whether `region` is in the Chinese mainland (unknown regions count as not)."""
    return REGION_NAMES.get(region, (region, False))[1]


def region_info(region: str, available: bool = True) -> dict[str, Any]:
    """A RegionInfo object of DescribeRegions."""
    name = REGION_NAMES.get(region, (region, False))[0]
    state = "AVAILABLE" if available else "UNAVAILABLE"
    return {"Region": region, "RegionName": name, "RegionState": state, "IsChinaMainland": is_mainland(region)}


def _tags(pairs: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in pairs]


def _disk(disk_id: str, instance_id: str | None, name: str) -> dict[str, Any]:
    # The sample user bought 3 backup points per data disk (the default quota is a knob, UNVERIFIED).
    return {"DiskId": disk_id, "Region": DEFAULT_REGION, "InstanceId": instance_id, "DiskName": name,
            "DiskSize": 40, "DiskBackupQuota": 3}


def sample_state() -> dict[str, Any]:
    """A fresh copy of the sample state served when no state is given."""
    return {
        "regions": ["ap-guangzhou", "ap-shanghai"],
        "quota": 20,
        "quotas": {},
        "instances": [
            {
                "InstanceId": "lhins-web00001",
                "Region": "ap-guangzhou",
                "InstanceName": "web-1",
                "InstanceState": "RUNNING",
                "Tags": _tags([("backup", "daily"), ("env", "prod")]),
            },
            {
                "InstanceId": "lhins-db000001",
                "Region": "ap-guangzhou",
                "InstanceName": "db-1",
                "InstanceState": "RUNNING",
                "Tags": _tags([("backup", "daily")]),
            },
            {
                "InstanceId": "lhins-stop0001",
                "Region": "ap-guangzhou",
                "InstanceName": "staging",
                "InstanceState": "STOPPED",
                "Tags": [],
            },
            {
                "InstanceId": "lhins-sh000001",
                "Region": "ap-shanghai",
                "InstanceName": "sh-1",
                "InstanceState": "RUNNING",
                "Tags": _tags([("backup", "daily")]),
            },
        ],
        "blueprints": [],
        # Data disks: the timer event's instance (lhins-web00001) has exactly one, db-1 has two, one is spare.
        "disks": [
            _disk("lhdisk-webdata1", "lhins-web00001", "web-1-data"),
            _disk("lhdisk-dbdata01", "lhins-db000001", "db-1-data"),
            _disk("lhdisk-dbdata02", "lhins-db000001", "db-1-logs"),
            _disk("lhdisk-spare001", None, "spare"),
        ],
        "disk_backups": [],
        "accounts": [],
        "queues": ["blueprint-results"],
        "topics": ["blueprint-events"],
        "functions": [{"FunctionName": "blueprint-next", "Namespace": "default"}],
    }


def load_state(source: dict[str, Any] | str | Path | None) -> dict[str, Any]:
    """The state dict for `source`: None -> sample, a dict (copied), or a JSON file path.

    Raises:
        OSError: when the file cannot be read.
        ValueError: when the file is not a JSON object.
    """
    if source is None:
        return sample_state()
    if isinstance(source, dict):
        copied: dict[str, Any] = json.loads(json.dumps(source))
        return copied
    data = json.loads(Path(source).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{source}: the state file must hold a JSON object")
    return data
