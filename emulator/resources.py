"""Builders for Lighthouse objects in their API shape."""

from __future__ import annotations

import random
import re
import string
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from emulator.clock import iso

INSTANCE_ID_RE = re.compile(r"^lhins-[a-z0-9]{8}$")
BLUEPRINT_ID_RE = re.compile(r"^lhbp-[a-z0-9]{8}$")
DISK_ID_RE = re.compile(r"^lhdisk-[a-z0-9]{8}$")
DISK_BACKUP_ID_RE = re.compile(r"^lhbak-[a-z0-9]{8}$")
# Internal keys kept next to the API shape; stripped from API answers. "Data" is what a disk holds (a
# marker tests write and read); an image keeps the system-disk data it was made from, a backup point its disk's.
INSTANCE_INTERNAL = ("Region", "OwnerUin")
BLUEPRINT_INTERNAL = ("Region", "InstanceId", "OwnerUin", "Data", "SharedWith", "SourceBlueprintId")
DISK_INTERNAL = ("Region", "OwnerUin", "Data")
DISK_BACKUP_INTERNAL = ("Region", "OwnerUin", "Data")
_ID_CHARS = string.ascii_lowercase + string.digits


def new_id(prefix: str, taken: Iterable[str]) -> str:
    """A fresh `prefix-xxxxxxxx` id (8 of [a-z0-9]) not in `taken`."""
    existing = set(taken)
    while True:
        candidate = f"{prefix}-{''.join(random.choices(_ID_CHARS, k=8))}"
        if candidate not in existing:
            return candidate


def tags_of(pairs: Iterable[Mapping[str, str]]) -> list[dict[str, str]]:
    """Copy a tag list, keeping only Key and Value."""
    return [{"Key": str(tag["Key"]), "Value": str(tag["Value"])} for tag in pairs]


def public_blueprints() -> list[dict[str, Any]]:
    """The public images every region offers, so `blueprint-type` filters matter."""
    rows = [
        ("lhbp-ubuntu22", "Ubuntu", "22.04 LTS", "Ubuntu Server 22.04 LTS 64bit", "UBUNTU", "PURE_OS"),
        ("lhbp-centos79", "CentOS", "7.9", "CentOS 7.9 64bit", "CENTOS", "PURE_OS"),
        ("lhbp-wordpres", "WordPress", "6.4", "Ubuntu Server 22.04 LTS 64bit", "UBUNTU", "APP_OS"),
    ]
    return [
        _blueprint(
            BlueprintId=bp_id,
            BlueprintName=f"{title} {version}",
            DisplayTitle=title,
            DisplayVersion=version,
            OsName=os_name,
            Platform=platform,
            BlueprintType=kind,
            CreatedTime="2023-01-01T00:00:00Z",
        )
        for bp_id, title, version, os_name, platform, kind in rows
    ]


def _blueprint(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "BlueprintId": "",
        "DisplayTitle": "",
        "DisplayVersion": "",
        "Description": None,
        "OsName": "Ubuntu Server 22.04 LTS 64bit",
        "Platform": "UBUNTU",
        "PlatformType": "LINUX_UNIX",
        "BlueprintType": "PRIVATE",
        "ImageUrl": "",
        "RequiredSystemDiskSize": 20,
        "BlueprintState": "NORMAL",
        "CreatedTime": None,
        "BlueprintName": "",
        "SupportAutomationTools": True,
        "RequiredMemorySize": 1,
        "ImageId": None,
        "CommunityUrl": "",
        "GuideUrl": "",
        "SceneIdSet": [],
        "DockerVersion": None,
        "BlueprintShared": False,
        "Tags": [],
    }
    base.update(fields)
    return base


def private_blueprint(
    blueprint_id: str,
    name: str,
    region: str,
    now: float,
    *,
    source: Mapping[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A custom (PRIVATE) image; OS and sizes come from the source instance when there is one."""
    inherited: dict[str, Any] = {}
    if source is not None:
        inherited = {
            "OsName": source["OsName"],
            "Platform": source["Platform"],
            "PlatformType": source["PlatformType"],
            "RequiredSystemDiskSize": source["SystemDisk"]["DiskSize"],
            "RequiredMemorySize": source["Memory"],
        }
    bp = _blueprint(
        BlueprintId=blueprint_id,
        BlueprintName=name,
        DisplayTitle=name,
        CreatedTime=iso(now),
        Region=region,
        InstanceId=source["InstanceId"] if source else None,
        **inherited,
    )
    bp.update(fields)
    bp["Tags"] = tags_of(bp.get("Tags") or [])
    return bp


def instance(instance_id: str, region: str, now: float, **fields: Any) -> dict[str, Any]:
    """An instance in API shape plus "Region"; `fields` override the defaults."""
    state = fields.get("InstanceState", "RUNNING")
    suffix = instance_id.split("-", 1)[-1]
    base: dict[str, Any] = {
        "InstanceId": instance_id,
        "BundleId": "bundle_gen_mc_med2_02",
        "BlueprintId": "lhbp-ubuntu22",
        "CPU": 2,
        "Memory": 2,
        "InstanceName": instance_id,
        "InstanceChargeType": "PREPAID",
        "SystemDisk": {"DiskType": "CLOUD_PREMIUM", "DiskSize": 50, "DiskId": f"lhdisk-{suffix}"},
        "PrivateAddresses": ["10.0.0.10"],
        "PublicAddresses": ["203.0.113.10"],
        "InternetAccessible": {
            "InternetChargeType": "TRAFFIC_POSTPAID_BY_HOUR",
            "InternetMaxBandwidthOut": 30,
            "PublicIpAssigned": True,
        },
        "RenewFlag": "NOTIFY_AND_MANUAL_RENEW",
        "LoginSettings": {"KeyIds": []},
        "InstanceState": state,
        "Uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, instance_id)),
        "LatestOperation": "StartInstances" if state == "RUNNING" else "StopInstances",
        "LatestOperationState": "SUCCESS",
        "LatestOperationRequestId": str(uuid.uuid4()),
        "LatestOperationStartedTime": iso(now - 86400),
        "IsolatedTime": None,
        "CreatedTime": iso(now - 30 * 86400),
        "ExpiredTime": iso(now + 335 * 86400),
        "PlatformType": "LINUX_UNIX",
        "Platform": "UBUNTU",
        "OsName": "Ubuntu Server 22.04 LTS 64bit",
        "Zone": f"{region}-3",
        "Tags": [],
        "InstanceRestrictState": "NORMAL",
        "Region": region,
    }
    base.update(fields)
    base["Tags"] = tags_of(base.get("Tags") or [])
    if not base.get("InstanceName"):
        base["InstanceName"] = instance_id
    return base


def api_view(obj: Mapping[str, Any], internal: tuple[str, ...]) -> dict[str, Any]:
    """The object as the API returns it (`internal` keys removed, deep-copied)."""
    return {key: _copy(value) for key, value in obj.items() if key not in internal}


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def disk(disk_id: str, region: str, now: float, **fields: Any) -> dict[str, Any]:
    """A cloud disk (Disk object) plus "Region", "OwnerUin" and "Data"; `fields` override the defaults."""
    attached = fields.get("InstanceId") is not None
    base: dict[str, Any] = {
        "DiskId": disk_id,
        "InstanceId": None,
        "Zone": f"{region}-3",
        "DiskName": disk_id,
        "DiskUsage": "DATA_DISK",
        "DiskType": "CLOUD_PREMIUM",
        "DiskChargeType": "PREPAID",
        "DiskSize": 20,
        "RenewFlag": "NOTIFY_AND_MANUAL_RENEW",
        "DiskState": "ATTACHED" if attached else "UNATTACHED",
        "Attached": attached,
        "DeleteWithInstance": False,
        "LatestOperation": None,
        "LatestOperationState": None,
        "LatestOperationRequestId": None,
        "CreatedTime": iso(now - 30 * 86400),
        "ExpiredTime": iso(now + 335 * 86400),
        "IsolatedTime": None,
        "DiskBackupCount": 0,
        "DiskBackupQuota": 0,
        "Tags": [],
        "Region": region,
        "Data": f"{disk_id}:initial",
    }
    base.update(fields)
    base["Tags"] = tags_of(base.get("Tags") or [])
    if not base.get("DiskName"):
        base["DiskName"] = disk_id
    return base


def disk_backup(backup_id: str, source: Mapping[str, Any], now: float, **fields: Any) -> dict[str, Any]:
    """A backup point (DiskBackup object) of the data disk `source`, plus "Region", "OwnerUin", "Data"."""
    base: dict[str, Any] = {
        "DiskBackupId": backup_id,
        "DiskUsage": source["DiskUsage"],
        "DiskId": source["DiskId"],
        "DiskSize": source["DiskSize"],
        "DiskBackupName": backup_id,
        "DiskBackupState": "NORMAL",
        "Percent": 100,
        "LatestOperation": "CreateDiskBackup",
        "LatestOperationState": "SUCCESS",
        "LatestOperationRequestId": str(uuid.uuid4()),
        "CreatedTime": iso(now),
        "Tags": [],
        "Region": source["Region"],
        "OwnerUin": source["OwnerUin"],
        "Data": source["Data"],
    }
    base.update(fields)
    base["Tags"] = tags_of(base.get("Tags") or [])
    return base
