"""Cloud disks and their backup points: DescribeDisks, Create/Describe/Delete/ApplyDiskBackup(s), quotas."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from emulator import resources
from emulator.errors import ApiError
from emulator.lh_core import DISK_USABLE_STATES, MAX_TAGS, LighthouseCore, check_id_list
from emulator.query import Getter, apply_filters, check_filters, check_ids_or_filters, page, tag_getters
from emulator.schema import Schema
from emulator.service import Ctx
from emulator.state import DEFAULT_REGION, DEFAULT_UIN

MAX_BACKUP_NAME = 90  # CreateDiskBackup: "最大长度为 90"
MAX_QUOTA_DISKS = 15  # ModifyDisksBackupQuota: "每次批量请求云硬盘数量上限为15个"
MAX_DISK_BACKUP_QUOTA = 500  # ModifyDisksBackupQuota: "取值范围: [0, 500]"
MAX_BACKUP_FILTER_VALUES = 5  # DescribeDiskBackups: "Filter.Values 的上限为5"
BUSY_BACKUP_STATES = ("CREATING", "ROLLBACKING")
_ORDER_FIELDS = {"CREATED_TIME": "CreatedTime", "EXPIRED_TIME": "ExpiredTime", "DISK_SIZE": "DiskSize"}

DISK_SCHEMAS: dict[str, Schema] = {
    "DescribeDisks": {
        "DiskIds": ("str[]", False),
        "Filters": ("filter[]", False),
        "Limit": ("int", False),
        "Offset": ("int", False),
        "OrderField": ("str", False),
        "Order": ("str", False),
    },
    "CreateDiskBackup": {"DiskId": ("str", True), "DiskBackupName": ("str", False), "Tags": ("tag[]", False)},
    "DescribeDiskBackups": {
        "DiskBackupIds": ("str[]", False),
        "Filters": ("filter[]", False),
        "Offset": ("int", False),
        "Limit": ("int", False),
    },
    "DeleteDiskBackups": {"DiskBackupIds": ("str[]", True)},
    "ApplyDiskBackup": {"DiskId": ("str", True), "DiskBackupId": ("str", True)},
    "ModifyDisksBackupQuota": {"DiskIds": ("str[]", True), "DiskBackupQuota": ("int", True)},
}

_DISK_FILTERS: dict[str, Getter] = {
    "disk-id": lambda disk: [disk["DiskId"]],
    "instance-id": lambda disk: [disk["InstanceId"]] if disk["InstanceId"] else [],
    "disk-name": lambda disk: [disk["DiskName"]],
    "zone": lambda disk: [disk["Zone"]],
    "disk-usage": lambda disk: [disk["DiskUsage"]],
    "disk-state": lambda disk: [disk["DiskState"]],
    **tag_getters(),
}
_BACKUP_FILTERS: dict[str, Getter] = {
    "disk-backup-id": lambda bak: [bak["DiskBackupId"]],
    "disk-id": lambda bak: [bak["DiskId"]],
    "disk-backup-state": lambda bak: [bak["DiskBackupState"]],
    "disk-usage": lambda bak: [bak["DiskUsage"]],
    **tag_getters(),
}


class DisksMixin(LighthouseCore):
    """Disk and backup-point actions and their Python API."""

    def _disk_handlers(self) -> dict[str, Callable[[dict[str, Any], Ctx], dict[str, Any]]]:
        return {
            "DescribeDisks": self._describe_disks,
            "CreateDiskBackup": self._create_backup,
            "DescribeDiskBackups": self._describe_backups,
            "DeleteDiskBackups": self._delete_backups,
            "ApplyDiskBackup": self._apply_backup,
            "ModifyDisksBackupQuota": self._modify_backup_quota,
        }

    def _load_disks(self, state: Mapping[str, Any]) -> None:
        for item in state.get("disks") or []:
            self.add_disk(**dict(item))
        for item in state.get("disk_backups") or []:
            fields = dict(item)
            self.add_disk_backup(fields.pop("DiskId"), **fields)

    # ---- Python API ------------------------------------------------------------------------------

    def add_disk(
        self,
        DiskId: str | None = None,
        *,
        Region: str = DEFAULT_REGION,
        InstanceId: str | None = None,
        DiskBackupQuota: int | None = None,
        Tags: Iterable[Mapping[str, str]] = (),
        OwnerUin: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Add a data disk, attached to `InstanceId` (same region and account) or unattached; returns a copy.

        Raises:
            ValueError: for a malformed DiskId, or an unknown instance or one in another region.
        """
        if DiskId is not None and not resources.DISK_ID_RE.match(DiskId):
            raise ValueError(f"malformed disk id {DiskId!r}: want lhdisk- and 8 of [a-z0-9]")
        with self._world.lock:
            owner = OwnerUin or DEFAULT_UIN
            if InstanceId is not None:
                instance = self._instances.get(InstanceId)
                if instance is None or instance["Region"] != Region:
                    raise ValueError(f"no instance {InstanceId!r} in {Region}")
                owner = OwnerUin or instance["OwnerUin"]
            self._world.add_region(Region)
            disk_id = DiskId or resources.new_id("lhdisk", self._disks)
            quota = self.opts.disk_backup_quota if DiskBackupQuota is None else DiskBackupQuota
            item = resources.disk(
                disk_id, Region, self._now(), InstanceId=InstanceId, DiskBackupQuota=quota, Tags=list(Tags),
                OwnerUin=owner, **extra,
            )
            self._disks[disk_id] = item
            return self._disk_view(item)

    def disks(self, region: str | None = None) -> list[dict[str, Any]]:
        """Copies of every disk, system and data (API shape plus "Region", "OwnerUin", "Data")."""
        with self._world.lock:
            self.tick()
            return [self._disk_view(d) for d in self._disks.values() if region in (None, d["Region"])]

    def set_disk_state(self, disk_id: str, state: str) -> None:
        """Force a disk's DiskState (e.g. DETACHING to test UnsupportedOperation.InvalidDiskState).

        Raises:
            KeyError: for an unknown disk.
        """
        with self._world.lock:
            self._disks[disk_id]["DiskState"] = state

    def attach_disk(self, disk_id: str, instance_id: str | None) -> None:
        """Attach a data disk to `instance_id` (same region and account), or detach it (None), at once, as if
        AttachDisks / DetachDisks had run.

        Raises:
            KeyError: for an unknown disk.
            ValueError: for a system disk, or an unknown instance or one in another region.
        """
        with self._world.lock:
            disk = self._disks[disk_id]
            if disk["DiskUsage"] != "DATA_DISK":
                raise ValueError(f"{disk_id} is a system disk")
            if instance_id is not None:
                instance = self._instances.get(instance_id)
                if instance is None or instance["Region"] != disk["Region"]:
                    raise ValueError(f"no instance {instance_id!r} in {disk['Region']}")
            disk.update(InstanceId=instance_id, Attached=instance_id is not None,
                        DiskState="ATTACHED" if instance_id is not None else "UNATTACHED")

    def set_disk_backup_quota(self, disk_id: str, n: int) -> None:
        """Set a disk's backup-point quota without the API's checks.

        Raises:
            KeyError: for an unknown disk.
        """
        with self._world.lock:
            self._disks[disk_id]["DiskBackupQuota"] = n

    def add_disk_backup(
        self,
        DiskId: str,
        *,
        DiskBackupId: str | None = None,
        DiskBackupState: str = "NORMAL",
        Tags: Iterable[Mapping[str, str]] = (),
        **extra: Any,
    ) -> dict[str, Any]:
        """Add a backup point of a data disk (e.g. a user's own), holding the disk's data now; returns a copy.

        Raises:
            KeyError: for an unknown disk.
            ValueError: for a malformed DiskBackupId.
        """
        if DiskBackupId is not None and not resources.DISK_BACKUP_ID_RE.match(DiskBackupId):
            raise ValueError(f"malformed backup id {DiskBackupId!r}: want lhbak- and 8 of [a-z0-9]")
        with self._world.lock:
            source = self._disks[DiskId]
            backup_id = DiskBackupId or resources.new_id("lhbak", self._backups)
            item = resources.disk_backup(
                backup_id, source, self._now(), DiskBackupState=DiskBackupState, Tags=list(Tags), **extra
            )
            self._backups[backup_id] = item
            return copy.deepcopy(item)

    def disk_backups(self, region: str | None = None) -> list[dict[str, Any]]:
        """Copies of every backup point (API shape plus "Region", "OwnerUin", "Data")."""
        with self._world.lock:
            self.tick()
            return [copy.deepcopy(b) for b in self._backups.values() if region in (None, b["Region"])]

    def fail_next_backup(self, disk_id: str | None = None, times: int = 1) -> None:
        """Make the next `times` backup points (of `disk_id`, or of any disk) fail: they vanish, the disk's
        LatestOperationState becomes FAILED."""
        self._queue_failure("backup", disk_id, times)

    def fail_next_rollback(self, disk_id: str | None = None, times: int = 1) -> None:
        """Make the next `times` ApplyDiskBackup rollbacks fail (LatestOperationState FAILED, data unchanged)."""
        self._queue_failure("rollback", disk_id, times)

    # ---- lookups -------------------------------------------------------------------------------------

    def _disk_view(self, disk: Mapping[str, Any]) -> dict[str, Any]:
        count = sum(1 for bak in self._backups.values() if bak["DiskId"] == disk["DiskId"])
        return {**copy.deepcopy(dict(disk)), "DiskBackupCount": count}

    def _disk(self, disk_id: str, ctx: Ctx, missing: str = "ResourceNotFound.DiskNotExists") -> dict[str, Any]:
        if not resources.DISK_ID_RE.match(disk_id):
            raise ApiError("InvalidParameterValue.InvalidDiskIdMalformed", f"The disk ID `{disk_id}` is malformed.")
        found = self._disks.get(disk_id)
        if found is None or found["Region"] != ctx.region or found["OwnerUin"] != ctx.uin:
            raise ApiError(missing, f"The disk `{disk_id}` does not exist.")
        return found

    def _backup(self, backup_id: str, ctx: Ctx, missing: str) -> dict[str, Any]:
        if not resources.DISK_BACKUP_ID_RE.match(backup_id):
            raise ApiError(
                "InvalidParameterValue.DiskBackupIdMalformed", f"The backup point ID `{backup_id}` is malformed."
            )
        found = self._backups.get(backup_id)
        if found is None or found["Region"] != ctx.region or found["OwnerUin"] != ctx.uin:
            raise ApiError(missing, f"The backup point `{backup_id}` does not exist.")
        return found

    def _check_backup_target(self, disk: Mapping[str, Any]) -> None:
        """A data disk in ATTACHED/UNATTACHED with no backup-point or other operation running."""
        if disk["DiskUsage"] != "DATA_DISK":
            raise ApiError("OperationDenied.DiskUsageNotSupportOperation", "Only data disks have backup points.")
        if disk["DiskState"] not in DISK_USABLE_STATES:
            raise ApiError(
                "UnsupportedOperation.InvalidDiskState", f"The disk `{disk['DiskId']}` is `{disk['DiskState']}`."
            )
        busy = [b for b in self._backups.values() if b["DiskId"] == disk["DiskId"] and b["DiskBackupState"]
                in BUSY_BACKUP_STATES]
        if busy:
            raise ApiError(
                "OperationDenied.DiskBusyForBackupOperation",
                f"Backup point `{busy[0]['DiskBackupId']}` of `{disk['DiskId']}` is {busy[0]['DiskBackupState']}.",
            )
        if disk.get("LatestOperationState") == "OPERATING":
            raise ApiError("OperationDenied.DiskOperationInProgress", f"`{disk['DiskId']}` is being operated on.")

    def _attached_instance(self, disk: Mapping[str, Any], check: bool) -> dict[str, Any] | None:
        if disk["DiskState"] != "ATTACHED":
            return None
        instance = self._instances.get(disk["InstanceId"] or "")
        if instance is None:
            raise ApiError(
                "ResourceNotFound.DiskAttachedHasNoInstanceId",
                f"The instance of attached disk `{disk['DiskId']}` does not exist.",
            )
        if check:
            self._check_operable(instance)
        return instance

    # ---- DescribeDisks -------------------------------------------------------------------------------

    def _describe_disks(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        check_ids_or_filters(params, "DiskIds")
        for disk_id in params.get("DiskIds", []):
            if not resources.DISK_ID_RE.match(disk_id):
                raise ApiError("InvalidParameterValue.InvalidDiskIdMalformed", f"`{disk_id}` is malformed.")
        filters = params.get("Filters", [])
        check_filters(filters, _DISK_FILTERS)
        items = [d for d in self._disks.values() if d["Region"] == ctx.region and d["OwnerUin"] == ctx.uin]
        if "DiskIds" in params:
            items = [d for d in items if d["DiskId"] in params["DiskIds"]]
        items = _ordered(apply_filters(items, filters, _DISK_FILTERS), params)
        total, shown = page(items, params)
        return {"TotalCount": total, "DiskSet": [resources.api_view(self._disk_view(d), resources.DISK_INTERNAL)
                                                 for d in shown]}

    # ---- backup points --------------------------------------------------------------------------------

    def _create_backup(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        disk = self._disk(params["DiskId"], ctx)
        _check_backup_params(params)
        self._check_backup_target(disk)
        self._attached_instance(disk, self.opts.backup_needs_idle_instance)
        used = sum(1 for b in self._backups.values() if b["DiskId"] == disk["DiskId"])
        if used >= disk["DiskBackupQuota"]:
            raise ApiError(
                "LimitExceeded.DiskBackupQuotaLimitExceeded",
                f"`{disk['DiskId']}` has {used} of {disk['DiskBackupQuota']} backup points.",
            )
        backup_id = resources.new_id("lhbak", self._backups)
        self._backups[backup_id] = resources.disk_backup(
            backup_id, disk, self._now(), DiskBackupName=params.get("DiskBackupName") or backup_id,
            DiskBackupState="CREATING", Percent=0, LatestOperationState="OPERATING",
            LatestOperationRequestId=ctx.request_id, Tags=params.get("Tags") or [],
        )
        _begin(disk, "CreateDiskBackup", ctx)
        failed = self._take_failure("backup", disk["DiskId"])
        self._schedule(self.opts.backup_seconds, lambda: self._finish_backup(backup_id, disk, ctx, failed))
        return {"DiskBackupId": backup_id}

    def _finish_backup(self, backup_id: str, disk: dict[str, Any], ctx: Ctx, failed: bool) -> None:
        result = "FAILED" if failed else "SUCCESS"
        if failed:
            # DiskBackupState has no failure value: a point that could not be made is not listed at all.
            self._backups.pop(backup_id, None)
        elif backup_id in self._backups:
            self._backups[backup_id].update(DiskBackupState="NORMAL", Percent=100, LatestOperationState=result)
        if disk.get("LatestOperationRequestId") == ctx.request_id:
            disk["LatestOperationState"] = result

    def _describe_backups(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        check_ids_or_filters(params, "DiskBackupIds")
        for backup_id in params.get("DiskBackupIds", []):
            if not resources.DISK_BACKUP_ID_RE.match(backup_id):
                raise ApiError("InvalidParameterValue.DiskBackupIdMalformed", f"`{backup_id}` is malformed.")
        filters = params.get("Filters", [])
        check_filters(filters, _BACKUP_FILTERS, max_values=MAX_BACKUP_FILTER_VALUES)
        items = [b for b in self._backups.values() if b["Region"] == ctx.region and b["OwnerUin"] == ctx.uin]
        if "DiskBackupIds" in params:
            items = [b for b in items if b["DiskBackupId"] in params["DiskBackupIds"]]
        total, shown = page(apply_filters(items, filters, _BACKUP_FILTERS), params)
        return {
            "TotalCount": total,
            "DiskBackupSet": [resources.api_view(b, resources.DISK_BACKUP_INTERNAL) for b in shown],
        }

    def _delete_backups(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        ids = params["DiskBackupIds"]
        check_id_list(ids, "DiskBackupIds")
        found = [self._backup(backup_id, ctx, "ResourceNotFound.DiskBackupIdNotFound") for backup_id in ids]
        for backup in found:
            if backup["DiskBackupState"] != "NORMAL":
                raise ApiError(
                    "UnsupportedOperation.InvalidDiskBackupState",
                    f"The disk backup `{backup['DiskBackupId']}` is in `{backup['DiskBackupState']}` state and "
                    "does not support this operation.",
                )
        for backup_id in ids:
            del self._backups[backup_id]
        return {}

    # ---- ApplyDiskBackup -------------------------------------------------------------------------------

    def _apply_backup(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        disk = self._disk(params["DiskId"], ctx)
        backup = self._backup(params["DiskBackupId"], ctx, "ResourceNotFound.DiskBackupNotExists")
        if backup["DiskId"] != disk["DiskId"]:
            raise ApiError(
                "UnsupportedOperation.ApplyDiskBackupToAnotherDisk",
                f"`{backup['DiskBackupId']}` belongs to `{backup['DiskId']}`, not `{disk['DiskId']}`.",
            )
        if backup["DiskBackupState"] != "NORMAL":
            raise ApiError(
                "UnsupportedOperation.InvalidDiskBackupState",
                f"The disk backup `{backup['DiskBackupId']}` is in `{backup['DiskBackupState']}` state and "
                "does not support this operation.",
            )
        self._check_backup_target(disk)
        instance = self._attached_instance(disk, check=True)
        restart = False
        if instance is not None and instance["InstanceState"] == "RUNNING":
            # "相关RUNNING 状态的实例会强制关机，然后回滚云硬盘备份点" (ApplyDiskBackup docstring).
            self._set_state(instance, "STOPPED")
            restart = self.opts.restart_after_rollback
        backup.update(DiskBackupState="ROLLBACKING", Percent=0)
        _begin(backup, "ApplyDiskBackup", ctx)
        _begin(disk, "ApplyDiskBackup", ctx)
        failed = self._take_failure("rollback", disk["DiskId"])
        target = instance if restart else None
        self._schedule(self.opts.rollback_seconds, lambda: self._finish_rollback(backup, disk, target, ctx, failed))
        return {}

    def _finish_rollback(
        self, backup: dict[str, Any], disk: dict[str, Any], restart: dict[str, Any] | None, ctx: Ctx, failed: bool
    ) -> None:
        result = "FAILED" if failed else "SUCCESS"
        backup.update(DiskBackupState="NORMAL", Percent=100)
        for item in (backup, disk):
            if item.get("LatestOperationRequestId") == ctx.request_id:
                item["LatestOperationState"] = result
        if not failed:
            disk["Data"] = backup["Data"]
        if restart is not None and restart["InstanceState"] == "STOPPED":
            self._set_state(restart, "RUNNING")

    # ---- ModifyDisksBackupQuota -------------------------------------------------------------------------

    def _modify_backup_quota(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        ids, quota = params["DiskIds"], params["DiskBackupQuota"]
        check_id_list(ids, "DiskIds", MAX_QUOTA_DISKS)
        if not 0 <= quota <= MAX_DISK_BACKUP_QUOTA:
            raise ApiError("InvalidParameterValue.OutOfRange", f"`DiskBackupQuota` is 0 to {MAX_DISK_BACKUP_QUOTA}.")
        disks = [self._disk(disk_id, ctx, "ResourceNotFound.DiskNotFound") for disk_id in ids]
        for disk in disks:
            self._check_quota_change(disk, quota)
        if all(disk["DiskBackupQuota"] == quota for disk in disks):
            raise ApiError("UnsupportedOperation.SameWithOldConfig", f"The quota is already {quota}.")
        for disk in disks:
            disk["DiskBackupQuota"] = quota
        return {}

    def _check_quota_change(self, disk: Mapping[str, Any], quota: int) -> None:
        if disk["DiskUsage"] != "DATA_DISK":
            raise ApiError("OperationDenied.DiskUsageNotSupportOperation", "Only data disks have backup points.")
        if disk.get("LatestOperationState") == "OPERATING":
            raise ApiError(
                "UnsupportedOperation.DiskLatestOperationUnfinished", f"`{disk['DiskId']}` is being operated on."
            )
        used = sum(1 for b in self._backups.values() if b["DiskId"] == disk["DiskId"])
        if quota < used:
            raise ApiError(
                "InvalidParameterValue.DiskBackupQuotaLessThanCurrentDiskBackupNum",
                f"`{disk['DiskId']}` already has {used} backup points.",
            )


def _begin(item: dict[str, Any], operation: str, ctx: Ctx) -> None:
    item.update(LatestOperation=operation, LatestOperationState="OPERATING", LatestOperationRequestId=ctx.request_id)


def _check_backup_params(params: Mapping[str, Any]) -> None:
    if len(params.get("DiskBackupName") or "") > MAX_BACKUP_NAME:
        raise ApiError(
            "InvalidParameterValue.DiskBackupNameTooLong", f"`DiskBackupName` is longer than {MAX_BACKUP_NAME}."
        )
    if len(params.get("Tags") or []) > MAX_TAGS:
        raise ApiError("InvalidParameterValue.LimitExceeded", f"At most {MAX_TAGS} tags are allowed.")


def _ordered(items: list[dict[str, Any]], params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """DescribeDisks order: OrderField (default CREATED_TIME), Order (default DESC), ties in creation order."""
    field = params.get("OrderField", "CREATED_TIME")
    order = params.get("Order", "DESC")
    if field not in _ORDER_FIELDS or order not in ("ASC", "DESC"):
        raise ApiError("InvalidParameterValue", f"Unsupported ordering `{field}` `{order}`.")
    key = _ORDER_FIELDS[field]
    ranked = sorted(enumerate(items), key=lambda pair: (_sort_value(pair[1][key]), pair[0]))
    if order == "DESC":
        ranked.reverse()
    return [item for _, item in ranked]


def _sort_value(value: Any) -> tuple[int, Any]:
    # Null times sort first; sizes are ints, times ISO strings (which sort as times).
    return (0, 0) if value is None else (1, value)
