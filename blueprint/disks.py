"""Data disks over the SDK: the instance's disks, their backup points, rollbacks, stopping an instance, prices.

A Lighthouse custom image holds the system disk only; a data disk is protected by a backup point
(`CreateDiskBackup`, API 2020-03-24). These calls live on `LighthouseService` (`blueprint.lighthouse`), which
mixes `DiskCalls` in: one client, one limiter per action (listed there), one error translation. Rate limits:
20/s for the backup actions (their API pages, https://cloud.tencent.com/document/api/1207/84379 and
siblings); DescribeDisks states none, 10/s is assumed. A point that could not be made is not listed at all
(`DiskBackupState` has no failure value: NORMAL, CREATING, ROLLBACKING, DELETING).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import field
from datetime import datetime
from typing import Any, Protocol

from blueprint.cloud import count, listed, malformed, request_id, tags_of, time_of
from blueprint.records import record
from blueprint.retry import Deadline

__all__ = ["Disk", "DiskCalls", "Disks", "Point", "Price"]

PAGE = 100
# DescribeDisks takes at most 100 values per filter.
MAX_FILTER_VALUES = 100
# DeleteDiskBackups removes only NORMAL points; CREATING and ROLLBACKING ones are busy.
POINT_DELETABLE = frozenset({"NORMAL"})


@record
class Disk:
    """A data disk as far as the function cares."""

    id: str
    instance_id: str
    name: str = ""
    state: str = ""
    backup_quota: int | None = None
    # The disk's last operation (ApplyDiskBackup, CreateDiskBackup, ...) and how it stands (OPERATING, SUCCESS,
    # FAILED), with the request that started it.
    operation: str | None = None
    operation_state: str | None = None
    operation_request_id: str | None = None


@record
class Point:
    """A backup point of a data disk. Shaped like `Image` where retention looks (`plan_prune`)."""

    id: str
    disk_id: str
    state: str
    created: datetime | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    name: str = ""
    request_id: str | None = None

    @property
    def failed(self) -> bool:
        """Never: a point that failed is not listed."""
        return False

    @property
    def ready(self) -> bool:
        """True once the point is NORMAL."""
        return self.state == "NORMAL"


@record
class Price:
    """InquirePriceCreateBlueprint's answer for `count` images (amounts as the API gives them)."""

    count: int
    unit: float
    original: float
    discount: float
    discounted: float

    def data(self) -> dict[str, Any]:
        """The result's `Price` field."""
        return {"BlueprintCount": self.count, "OriginalBlueprintPrice": self.unit, "OriginalPrice": self.original,
                "Discount": self.discount, "DiscountPrice": self.discounted}


class Disks(Protocol):
    """The port the data-disk steps talk to (the SDK service here, a fake in unit tests)."""

    def find_disks(self, region: str, instance_ids: Sequence[str], *, deadline: Deadline) -> list[Disk]:
        """The data disks attached to these instances."""
        ...

    def region_disks(self, region: str, *, deadline: Deadline, most: int) -> list[Disk] | None:
        """Every attached data disk of the region, or None when there are more than `most`."""
        ...

    def find_points(self, region: str, *, deadline: Deadline, tags: Mapping[str, str] | None = None,
                    tag_key: str | None = None, ids: Sequence[str] | None = None) -> list[Point]:
        """Backup points carrying all these tags (or these ids), every page."""
        ...

    def create_point(self, region: str, disk_id: str, *, name: str, tags: Mapping[str, str],
                     deadline: Deadline) -> tuple[str, str]:
        """Start a backup point of a data disk: (its id, the request id)."""
        ...

    def delete_points(self, region: str, ids: Sequence[str], *, deadline: Deadline) -> str:
        """Delete NORMAL backup points; returns the request id."""
        ...

    def apply_point(self, region: str, disk_id: str, point_id: str, *, deadline: Deadline) -> str:
        """Roll a disk back to one of its points (asynchronous); returns the request id."""
        ...

    def stop_instances(self, region: str, ids: Sequence[str], *, deadline: Deadline) -> str:
        """Stop running instances (asynchronous); returns the request id."""
        ...

    def price(self, region: str, count: int, *, deadline: Deadline) -> Price:
        """What making `count` images costs."""
        ...


class DiskCalls:
    """The calls, for `LighthouseService` to mix in (it provides `_call`, paced and translated: plain dicts of
    the API's fields both ways)."""

    def _call(self, action: str, region: str, params: Mapping[str, Any], deadline: Deadline) -> dict[str, Any]:
        raise NotImplementedError

    def find_disks(self, region: str, instance_ids: Sequence[str], *, deadline: Deadline) -> list[Disk]:
        """DescribeDisks by instance id (100 a call, the calls side by side) and DATA_DISK, every page."""
        unique = list(dict.fromkeys(instance_ids))
        chunks = [unique[i:i + MAX_FILTER_VALUES] for i in range(0, len(unique), MAX_FILTER_VALUES)]
        if len(chunks) > 1:  # a fleet: its chunks do not wait for each other (the limiter paces them)
            from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 (one instance's timer needs no pool)

            with ThreadPoolExecutor(max_workers=min(4, len(chunks))) as pool:
                parts = list(pool.map(lambda chunk: self._disks_of(region, chunk, deadline), chunks))
        else:
            parts = [self._disks_of(region, chunk, deadline) for chunk in chunks]
        found = {d.id: d for part in parts for d in part}
        return [d for d in found.values() if d.instance_id]

    def _disks_of(self, region: str, ids: list[str], deadline: Deadline) -> list[Disk]:
        """The data disks of at most 100 instances, every page."""
        found = self._disk_pages(region, ids, deadline, most=None)
        assert found is not None  # noqa: S101 (no limit: every page is read)
        return found

    def region_disks(self, region: str, *, deadline: Deadline, most: int) -> list[Disk] | None:
        """Every attached data disk of the region (no instance filter: a fleet's listing needs no ids, so it
        goes out beside the instance listing); None when the region has more than `most` data disks (the
        caller then asks by instance id, which reads only its own)."""
        found = self._disk_pages(region, None, deadline, most=most)
        return None if found is None else [d for d in found if d.instance_id]

    def _disk_pages(self, region: str, ids: list[str] | None, deadline: Deadline, *,
                    most: int | None) -> list[Disk] | None:
        """DescribeDisks of DATA_DISK (of these instances), every page; None when over `most` disks."""
        found: list[Disk] = []
        offset, total = 0, 1
        usage = _filter("disk-usage", ["DATA_DISK"])
        filters = [usage] if ids is None else [_filter("instance-id", ids), usage]
        while offset < total:
            resp = self._call("DescribeDisks", region, {"Filters": filters, "Offset": offset, "Limit": PAGE}, deadline)
            rows = listed(resp, "DiskSet", "DiskId")
            found.extend(Disk(id=str(d["DiskId"]), instance_id=d.get("InstanceId") or "", name=d.get("DiskName") or "",
                              state=d.get("DiskState") or "", backup_quota=d.get("DiskBackupQuota"),
                              operation=d.get("LatestOperation"), operation_state=d.get("LatestOperationState"),
                              operation_request_id=d.get("LatestOperationRequestId")) for d in rows)
            offset, total = offset + PAGE, count(resp.get("TotalCount")) if rows else 0
            if most is not None and total > most:
                return None
        return found

    def find_points(self, region: str, *, deadline: Deadline, tags: Mapping[str, str] | None = None,
                    tag_key: str | None = None, ids: Sequence[str] | None = None) -> list[Point]:
        """DescribeDiskBackups by ids (100 a call) or by tags (`tag-key` / `tag-value`, exact pairs checked)."""
        wanted = dict(tags or {})
        found: dict[str, Point] = {}
        batches: list[list[str] | None] = [list(ids[i:i + PAGE]) for i in range(0, len(ids), PAGE)] if ids \
            else [None]
        for batch in batches:
            offset, total = 0, 1
            while offset < total:
                params: dict[str, Any] = {"Offset": offset, "Limit": PAGE}
                if batch is not None:
                    params["DiskBackupIds"] = batch
                else:
                    keys = [*wanted, *([tag_key] if tag_key else [])]
                    params["Filters"] = [_filter("tag-key", keys)] + (
                        [_filter("tag-value", list(wanted.values()))] if wanted else [])
                resp = self._call("DescribeDiskBackups", region, params, deadline)
                rows = listed(resp, "DiskBackupSet", "DiskBackupId")
                for b in rows:
                    found[str(b["DiskBackupId"])] = _point(b, resp.get("RequestId"))
                offset, total = offset + PAGE, count(resp.get("TotalCount")) if rows else 0
        return [p for p in found.values() if ids or (all(p.tags.get(k) == v for k, v in wanted.items())
                                                      and (tag_key is None or tag_key in p.tags))]

    def create_point(self, region: str, disk_id: str, *, name: str, tags: Mapping[str, str],
                     deadline: Deadline) -> tuple[str, str]:
        """CreateDiskBackup: the point's id at once; the point is made asynchronously."""
        resp = self._call("CreateDiskBackup", region, {
            "DiskId": disk_id, "DiskBackupName": name, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]},
            deadline)
        point_id = resp.get("DiskBackupId")
        if not isinstance(point_id, str) or not point_id:
            # Accepted, but the answer names no point: a retry looks for it among the slot's points first.
            raise malformed("CreateDiskBackup: the answer names no backup point (no DiskBackupId)", resp)
        return point_id, request_id(resp)

    def delete_points(self, region: str, ids: Sequence[str], *, deadline: Deadline) -> str:
        """DeleteDiskBackups (NORMAL points only; all or none)."""
        return request_id(self._call("DeleteDiskBackups", region, {"DiskBackupIds": list(ids)}, deadline))

    def apply_point(self, region: str, disk_id: str, point_id: str, *, deadline: Deadline) -> str:
        """ApplyDiskBackup: the disk takes the point's data; a RUNNING instance is shut down first."""
        return request_id(self._call("ApplyDiskBackup", region, {"DiskId": disk_id, "DiskBackupId": point_id},
                                     deadline))

    def stop_instances(self, region: str, ids: Sequence[str], *, deadline: Deadline) -> str:
        """StopInstances (at most 100 per call)."""
        return request_id(self._call("StopInstances", region, {"InstanceIds": list(ids)[:PAGE]}, deadline))

    def price(self, region: str, count: int, *, deadline: Deadline) -> Price:
        """InquirePriceCreateBlueprint."""
        price = self._call("InquirePriceCreateBlueprint", region, {"BlueprintCount": count}, deadline).get(
            "BlueprintPrice")
        if not isinstance(price, dict):
            raise malformed("InquirePriceCreateBlueprint: the answer has no BlueprintPrice")
        return Price(count=count, unit=float(price.get("OriginalBlueprintPrice") or 0),
                     original=float(price.get("OriginalPrice") or 0), discount=float(price.get("Discount") or 0),
                     discounted=float(price.get("DiscountPrice") or 0))


def _point(item: dict[str, Any], request_id: str | None) -> Point:
    return Point(id=str(item["DiskBackupId"]), disk_id=item.get("DiskId") or "",
                 state=item.get("DiskBackupState") or "", created=time_of(item.get("CreatedTime")),
                 tags=tags_of(item.get("Tags")), name=item.get("DiskBackupName") or "", request_id=request_id)


def _filter(name: str, values: Sequence[str]) -> dict[str, Any]:
    return {"Name": name, "Values": list(dict.fromkeys(values))}
