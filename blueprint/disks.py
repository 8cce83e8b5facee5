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
from datetime import datetime, timezone
from typing import Any, Protocol

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
    """The calls, for `LighthouseService` to mix in (it provides `_call`, paced and translated)."""

    def _call(self, action: str, region: str, request: Any, deadline: Deadline) -> Any:
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
        from tencentcloud.lighthouse.v20200324 import models  # noqa: PLC0415 (imported by lighthouse already)

        found: list[Disk] = []
        offset, total = 0, 1
        while offset < total:
            req = models.DescribeDisksRequest()
            usage = _filter(models, "disk-usage", ["DATA_DISK"])
            req.Filters = [usage] if ids is None else [_filter(models, "instance-id", ids), usage]
            req.Offset, req.Limit = offset, PAGE
            resp = self._call("DescribeDisks", region, req, deadline)
            rows = resp.DiskSet or []
            found.extend(Disk(id=d.DiskId, instance_id=d.InstanceId or "", name=d.DiskName or "",
                              state=d.DiskState or "", backup_quota=d.DiskBackupQuota, operation=d.LatestOperation,
                              operation_state=d.LatestOperationState,
                              operation_request_id=d.LatestOperationRequestId) for d in rows)
            offset, total = offset + PAGE, int(resp.TotalCount or 0) if rows else 0
            if most is not None and total > most:
                return None
        return found

    def find_points(self, region: str, *, deadline: Deadline, tags: Mapping[str, str] | None = None,
                    tag_key: str | None = None, ids: Sequence[str] | None = None) -> list[Point]:
        """DescribeDiskBackups by ids (100 a call) or by tags (`tag-key` / `tag-value`, exact pairs checked)."""
        from tencentcloud.lighthouse.v20200324 import models  # noqa: PLC0415

        wanted = dict(tags or {})
        found: dict[str, Point] = {}
        batches: list[list[str] | None] = [list(ids[i:i + PAGE]) for i in range(0, len(ids), PAGE)] if ids \
            else [None]
        for batch in batches:
            offset, total = 0, 1
            while offset < total:
                req = models.DescribeDiskBackupsRequest()
                if batch is not None:
                    req.DiskBackupIds = batch
                else:
                    keys = [*wanted, *([tag_key] if tag_key else [])]
                    req.Filters = [_filter(models, "tag-key", keys)] + (
                        [_filter(models, "tag-value", list(wanted.values()))] if wanted else [])
                req.Offset, req.Limit = offset, PAGE
                resp = self._call("DescribeDiskBackups", region, req, deadline)
                rows = resp.DiskBackupSet or []
                for b in rows:
                    found[b.DiskBackupId] = _point(b, resp.RequestId)
                offset, total = offset + PAGE, int(resp.TotalCount or 0) if rows else 0
        return [p for p in found.values() if ids or (all(p.tags.get(k) == v for k, v in wanted.items())
                                                      and (tag_key is None or tag_key in p.tags))]

    def create_point(self, region: str, disk_id: str, *, name: str, tags: Mapping[str, str],
                     deadline: Deadline) -> tuple[str, str]:
        """CreateDiskBackup: the point's id at once; the point is made asynchronously."""
        from tencentcloud.lighthouse.v20200324 import models  # noqa: PLC0415

        req = models.CreateDiskBackupRequest()
        req.DiskId, req.DiskBackupName = disk_id, name
        req.Tags = [_tag(models, k, v) for k, v in tags.items()]
        resp = self._call("CreateDiskBackup", region, req, deadline)
        return str(resp.DiskBackupId), str(resp.RequestId)

    def delete_points(self, region: str, ids: Sequence[str], *, deadline: Deadline) -> str:
        """DeleteDiskBackups (NORMAL points only; all or none)."""
        from tencentcloud.lighthouse.v20200324 import models  # noqa: PLC0415

        req = models.DeleteDiskBackupsRequest()
        req.DiskBackupIds = list(ids)
        return str(self._call("DeleteDiskBackups", region, req, deadline).RequestId)

    def apply_point(self, region: str, disk_id: str, point_id: str, *, deadline: Deadline) -> str:
        """ApplyDiskBackup: the disk takes the point's data; a RUNNING instance is shut down first."""
        from tencentcloud.lighthouse.v20200324 import models  # noqa: PLC0415

        req = models.ApplyDiskBackupRequest()
        req.DiskId, req.DiskBackupId = disk_id, point_id
        return str(self._call("ApplyDiskBackup", region, req, deadline).RequestId)

    def stop_instances(self, region: str, ids: Sequence[str], *, deadline: Deadline) -> str:
        """StopInstances (at most 100 per call)."""
        from tencentcloud.lighthouse.v20200324 import models  # noqa: PLC0415

        req = models.StopInstancesRequest()
        req.InstanceIds = list(ids)[:PAGE]
        return str(self._call("StopInstances", region, req, deadline).RequestId)

    def price(self, region: str, count: int, *, deadline: Deadline) -> Price:
        """InquirePriceCreateBlueprint."""
        from tencentcloud.lighthouse.v20200324 import models  # noqa: PLC0415

        req = models.InquirePriceCreateBlueprintRequest()
        req.BlueprintCount = count
        price = self._call("InquirePriceCreateBlueprint", region, req, deadline).BlueprintPrice
        return Price(count=count, unit=float(price.OriginalBlueprintPrice or 0),
                     original=float(price.OriginalPrice or 0), discount=float(price.Discount or 0),
                     discounted=float(price.DiscountPrice or 0))


def _point(item: Any, request_id: str | None) -> Point:
    created = None
    if item.CreatedTime:
        try:
            created = datetime.fromisoformat(item.CreatedTime.replace("Z", "+00:00")).astimezone(timezone.utc)
        except ValueError:
            created = None
    tags = {t.Key: t.Value or "" for t in item.Tags or [] if t.Key}
    return Point(id=item.DiskBackupId, disk_id=item.DiskId or "", state=item.DiskBackupState or "", created=created,
                 tags=tags, name=item.DiskBackupName or "", request_id=request_id)


def _filter(models: Any, name: str, values: Sequence[str]) -> Any:
    item = models.Filter()
    item.Name, item.Values = name, list(dict.fromkeys(values))
    return item


def _tag(models: Any, key: str, value: str) -> Any:
    tag = models.Tag()
    tag.Key, tag.Value = key, value
    return tag
