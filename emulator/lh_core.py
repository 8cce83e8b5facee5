"""Lighthouse state shared by every action module: knobs, stores, the timer queue, accounts and common checks."""

from __future__ import annotations

import copy
import heapq
import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from emulator import resources
from emulator.clock import iso
from emulator.errors import ApiError
from emulator.service import Ctx
from emulator.state import DEFAULT_REGION, DEFAULT_UIN, World

OPERABLE_STATES = ("RUNNING", "STOPPED")
DELETABLE_STATES = ("NORMAL", "ISOLATED", "CREATEFAILED", "SYNCING_FAILED")
# A data disk's backup points and rollbacks need the disk in one of these (ApplyDiskBackup docstring).
DISK_USABLE_STATES = ("ATTACHED", "UNATTACHED")
MAX_NAME = 60
# The custom-image quota per region when neither the emulator's options nor its state set one (UNVERIFIED).
DEFAULT_QUOTA = 20
MAX_TAGS = 10
MAX_TAGS_PER_RESOURCE = 50


@dataclass
class Options:
    """The knobs of the Lighthouse emulation; every default is documented or marked UNVERIFIED in the README."""

    image_seconds: float = 30.0
    op_seconds: float = 0.0
    in_progress_state: str = "CREATING"
    restart_after_image: bool = True
    # Every region's custom-image quota; None: the state's `quota` / `quotas`, else DEFAULT_QUOTA.
    quota: int | None = None
    sync_seconds: float = 900.0  # the docs say a copy "usually takes 15 to 40 minutes"
    sync_state: str = "SYNCING"  # the copy's state while it is made (UNVERIFIED)
    sync_copies_tags: bool = False  # whether a copy carries the source's tags (UNVERIFIED)
    share_quota: int = 50  # accounts one image may be shared with (UNVERIFIED)
    allow_delete_shared: bool = False  # deleting a still-shared image (UNVERIFIED: refused by default)
    reset_seconds: float = 120.0
    reset_state: str = "STOPPED"  # InstanceState while ResetInstance runs (UNVERIFIED)
    reset_final_state: str = "RUNNING"  # InstanceState after a successful ResetInstance (UNVERIFIED)
    backup_seconds: float = 60.0
    rollback_seconds: float = 60.0
    restart_after_rollback: bool = False  # ApplyDiskBackup starts the instance it shut down (UNVERIFIED)
    disk_backup_quota: int = 0  # backup points per data disk unless the disk says otherwise (UNVERIFIED)
    backup_needs_idle_instance: bool = True  # CreateDiskBackup checks the attached instance (UNVERIFIED)
    blueprint_price: float = 0.008  # OriginalBlueprintPrice of one image (the API doc's example)
    blueprint_discount: float = 100.0  # Discount (percent paid; the example's 100)


class LighthouseCore:
    """Stores and helpers; every method runs under the world lock."""

    def __init__(self, world: World, options: Options) -> None:
        self._world = world
        self.opts = options
        self.default_quota = DEFAULT_QUOTA if options.quota is None else options.quota
        # UNVERIFIED: how `tag:<key>` reads a key that holds a colon; True cuts the key at its first colon.
        self.tag_split_colon = False
        self._instances: dict[str, dict[str, Any]] = {}
        # Every InstanceState an instance took, with its emulated time (tests: "never stopped").
        self._history: dict[str, list[tuple[float, str]]] = {}
        self._blueprints: dict[str, dict[str, Any]] = {}
        self._disks: dict[str, dict[str, Any]] = {}
        self._backups: dict[str, dict[str, Any]] = {}
        self._quotas: dict[str, int] = {}
        self._accounts: dict[str, bool] = {DEFAULT_UIN: True}  # uin -> is a main account
        self._failures: dict[str, list[str | None]] = {}
        self._resets: dict[str, list[dict[str, Any]]] = {}
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def _clear(self) -> None:
        for store in (self._instances, self._history, self._blueprints, self._disks, self._backups, self._failures,
                      self._resets):
            store.clear()
        self._accounts = {DEFAULT_UIN: True}
        self._timers.clear()

    # ---- the emulated clock ------------------------------------------------------------------

    def tick(self) -> None:
        """Apply every scheduled transition whose emulated time has come."""
        with self._world.lock:
            now = self._world.clock.now()
            while self._timers and self._timers[0][0] <= now:
                _, _, action = heapq.heappop(self._timers)
                action()

    def _schedule(self, delay: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (self._world.clock.now() + delay, next(self._seq), action))
        if delay <= 0:
            self.tick()

    def _now(self) -> float:
        return self._world.clock.now()

    # ---- injected failures ---------------------------------------------------------------------

    def _queue_failure(self, kind: str, target: str | None, times: int) -> None:
        with self._world.lock:
            self._failures.setdefault(kind, []).extend([target] * times)

    def _take_failure(self, kind: str, target: str | None) -> bool:
        """Consume one queued failure of `kind` for `target` (or for any target)."""
        queue = self._failures.get(kind, [])
        for index, wanted in enumerate(queue):
            if wanted is None or wanted == target:
                del queue[index]
                return True
        return False

    # ---- Python API: accounts, instances, images ---------------------------------------------------

    def add_account(self, uin: str, *, main: bool = True) -> None:
        """Make an account exist (share targets must); `main=False` makes it a sub-account.

        Raises:
            ValueError: when `uin` is not all digits.
        """
        if not uin.isdigit():
            raise ValueError(f"account ids are digits, not {uin!r}")
        with self._world.lock:
            self._accounts[uin] = main

    def accounts(self) -> dict[str, bool]:
        """Known accounts: uin -> whether it is a main account."""
        with self._world.lock:
            return dict(self._accounts)

    def add_instance(
        self,
        InstanceId: str,
        *,
        Region: str = DEFAULT_REGION,
        InstanceName: str | None = None,
        InstanceState: str = "RUNNING",
        Tags: Iterable[Mapping[str, str]] = (),
        OwnerUin: str = DEFAULT_UIN,
        **extra: Any,
    ) -> dict[str, Any]:
        """Add (or replace) an instance and its system disk; returns a copy of the instance.

        Raises:
            ValueError: when InstanceId is not `lhins-` + 8 of [a-z0-9].
        """
        if not resources.INSTANCE_ID_RE.match(InstanceId):
            raise ValueError(f"malformed instance id {InstanceId!r}: want lhins- and 8 of [a-z0-9]")
        with self._world.lock:
            self._world.add_region(Region)
            self._accounts.setdefault(OwnerUin, True)
            item = resources.instance(
                InstanceId,
                Region,
                self._now(),
                InstanceName=InstanceName,
                InstanceState=InstanceState,
                Tags=list(Tags),
                OwnerUin=OwnerUin,
                **extra,
            )
            self._instances[InstanceId] = item
            self._history[InstanceId] = [(self._now(), item["InstanceState"])]
            self._add_system_disk(item)
            return copy.deepcopy(item)

    def instance(self, instance_id: str) -> dict[str, Any] | None:
        """A copy of one instance (API shape plus "Region"), or None when it does not exist."""
        with self._world.lock:
            self.tick()
            found = self._instances.get(instance_id)
            return copy.deepcopy(found) if found is not None else None

    def state_history(self, instance_id: str) -> list[tuple[float, str]]:
        """(emulated time, InstanceState) for every state the instance took, oldest first.

        Raises:
            KeyError: for an unknown instance.
        """
        with self._world.lock:
            self.tick()
            return list(self._history[instance_id])

    def _set_state(self, item: dict[str, Any], state: str) -> None:
        if item["InstanceState"] != state:
            self._history.setdefault(item["InstanceId"], []).append((self._now(), state))
        item["InstanceState"] = state

    def _add_system_disk(self, item: Mapping[str, Any]) -> None:
        system = item["SystemDisk"]
        disk_id = system["DiskId"]
        self._disks[disk_id] = resources.disk(
            disk_id,
            item["Region"],
            self._now(),
            InstanceId=item["InstanceId"],
            DiskName=f"{item['InstanceName']}-system",
            DiskUsage="SYSTEM_DISK",
            DiskType=system["DiskType"],
            DiskSize=system["DiskSize"],
            DeleteWithInstance=True,
            OwnerUin=item["OwnerUin"],
            Data=f"{item['BlueprintId']}:installed",
        )

    def instances(self, region: str | None = None) -> list[dict[str, Any]]:
        """Copies of the instances (API shape plus "Region" and "OwnerUin"), optionally of one region."""
        with self._world.lock:
            self.tick()
            return [copy.deepcopy(i) for i in self._instances.values() if region in (None, i["Region"])]

    def set_instance_tags(self, instance_id: str, tags: list[dict[str, str]]) -> None:
        """Replace an instance's tags.

        Raises:
            KeyError: for an unknown instance.
        """
        with self._world.lock:
            self._instances[instance_id]["Tags"] = resources.tags_of(tags)

    def set_instance_state(self, instance_id: str, state: str) -> None:
        """Force an instance's InstanceState (e.g. PENDING to test InvalidInstanceState).

        Raises:
            KeyError: for an unknown instance.
        """
        with self._world.lock:
            self._set_state(self._instances[instance_id], state)

    def add_blueprint(
        self,
        BlueprintName: str,
        *,
        Region: str = DEFAULT_REGION,
        BlueprintState: str = "NORMAL",
        Tags: Iterable[Mapping[str, str]] = (),
        CreatedTime: str | None = None,
        BlueprintId: str | None = None,
        OwnerUin: str = DEFAULT_UIN,
        **extra: Any,
    ) -> dict[str, Any]:
        """Add a user's own (PRIVATE) image; returns a copy of it.

        Raises:
            ValueError: when BlueprintId is given and not `lhbp-` + 8 of [a-z0-9].
        """
        if BlueprintId is not None and not resources.BLUEPRINT_ID_RE.match(BlueprintId):
            raise ValueError(f"malformed blueprint id {BlueprintId!r}: want lhbp- and 8 of [a-z0-9]")
        with self._world.lock:
            self._world.add_region(Region)
            self._accounts.setdefault(OwnerUin, True)
            bp_id = BlueprintId or resources.new_id("lhbp", self._blueprints)
            fields: dict[str, Any] = {"BlueprintState": BlueprintState, "Tags": list(Tags), **extra}
            if CreatedTime is not None:
                fields["CreatedTime"] = CreatedTime
            fields.setdefault("Data", f"{bp_id}:image")
            bp = resources.private_blueprint(bp_id, BlueprintName, Region, self._now(), OwnerUin=OwnerUin, **fields)
            bp.setdefault("SharedWith", {})
            self._blueprints[bp_id] = bp
            return copy.deepcopy(bp)

    def blueprints(self, region: str | None = None, *, private_only: bool = True) -> list[dict[str, Any]]:
        """Copies of the images (API shape plus "Region", source "InstanceId", "OwnerUin", "SharedWith")."""
        with self._world.lock:
            self.tick()
            regions = [region] if region else list(self._world.regions)
            found = [copy.deepcopy(bp) for bp in self._blueprints.values() if bp["Region"] in regions]
            if private_only:
                return found
            public = [{**bp, "Region": r, "InstanceId": None} for r in regions for bp in resources.public_blueprints()]
            return public + found

    def set_blueprint_state(self, blueprint_id: str, state: str) -> None:
        """Force an image's BlueprintState (e.g. DELETING, OFFLINE, or an undocumented state).

        Raises:
            KeyError: for an unknown image.
        """
        with self._world.lock:
            self._blueprints[blueprint_id]["BlueprintState"] = state

    def fail_next_image(self, instance_id: str | None = None, times: int = 1) -> None:
        """Make the next `times` images (of `instance_id`, or of any instance) end CREATEFAILED."""
        self._queue_failure("image", instance_id, times)

    def set_quota(self, region: str, n: int) -> None:
        """Set the custom-image quota of `region`."""
        with self._world.lock:
            self._quotas[region] = n

    def quota(self, region: str) -> int:
        """The custom-image quota of `region`."""
        with self._world.lock:
            return self._quotas.get(region, self.default_quota)

    def set_region_available(self, region: str, available: bool = True) -> None:
        """Mark a region (un)available: DescribeRegions shows it, SyncBlueprint refuses it as a destination."""
        with self._world.lock:
            if available:
                self._world.unavailable.discard(region)
            else:
                self._world.unavailable.add(region)

    def write_disk(self, disk_id: str, data: str) -> None:
        """Change what a disk (system or data) holds, as the server's users would.

        Raises:
            KeyError: for an unknown disk.
        """
        with self._world.lock:
            self._disks[disk_id]["Data"] = data

    def disk_data(self, disk_id: str) -> str:
        """What a disk holds now (images, backup points and restores copy this marker).

        Raises:
            KeyError: for an unknown disk.
        """
        with self._world.lock:
            self.tick()
            return str(self._disks[disk_id]["Data"])

    # ---- the Tag service's view ----------------------------------------------------------------------

    def _tag_stores(self) -> dict[str, dict[str, dict[str, Any]]]:
        # Resource prefixes of CAM's six-segment names for Lighthouse.
        return {"instance": self._instances, "blueprint": self._blueprints, "disk": self._disks,
                "disk-backup": self._backups}

    def tag_target(self, region: str, uin: str, prefix: str, resource_id: str) -> dict[str, Any] | None:
        """The resource a six-segment name points at (its "Tags" list is live), or None."""
        item = self._tag_stores().get(prefix, {}).get(resource_id)
        if item is None or item["Region"] != region or item["OwnerUin"] != uin:
            return None
        return item

    def taggable(self, uin: str) -> list[tuple[str, dict[str, Any]]]:
        """Every resource of an account with its six-segment name."""
        return [
            (f"qcs::lighthouse:{item['Region']}:uin/{uin}:{prefix}/{resource_id}", item)
            for prefix, store in self._tag_stores().items()
            for resource_id, item in store.items()
            if item["OwnerUin"] == uin
        ]

    # ---- shared checks ---------------------------------------------------------------------------

    def _instance(self, instance_id: str, ctx: Ctx) -> dict[str, Any]:
        """The caller's instance in the request's region."""
        if not resources.INSTANCE_ID_RE.match(instance_id):
            raise ApiError(
                "InvalidParameterValue.InstanceIdMalformed", f"The instance ID `{instance_id}` is malformed."
            )
        found = self._instances.get(instance_id)
        if found is None or found["Region"] != ctx.region or found["OwnerUin"] != ctx.uin:
            raise ApiError("ResourceNotFound.InstanceIdNotFound", f"The instance `{instance_id}` does not exist.")
        return found

    @staticmethod
    def _check_operable(item: dict[str, Any], allowed: Iterable[str] = OPERABLE_STATES) -> None:
        if item.get("LatestOperationState") == "OPERATING":
            raise ApiError(
                "UnsupportedOperation.LatestOperationUnfinished",
                f"The latest operation `{item['LatestOperation']}` of `{item['InstanceId']}` is unfinished.",
            )
        if item["InstanceState"] not in allowed:
            raise ApiError(
                "UnsupportedOperation.InvalidInstanceState",
                f"Instance `{item['InstanceId']}` is `{item['InstanceState']}`: unsupported.",
            )

    def _begin_operation(self, item: dict[str, Any], operation: str, ctx: Ctx) -> None:
        item.update(
            LatestOperation=operation,
            LatestOperationState="OPERATING",
            LatestOperationRequestId=ctx.request_id,
            LatestOperationStartedTime=iso(self._now()),
        )

    def _private_count(self, region: str, uin: str) -> int:
        return sum(1 for bp in self._blueprints.values() if bp["Region"] == region and bp["OwnerUin"] == uin)

    def _own_blueprint(self, bp_id: str, ctx: Ctx, missing: str = "ResourceNotFound.PrivateBlueprintNotFound") -> Any:
        """The caller's custom image in the request's region, or `missing`."""
        _check_blueprint_id(bp_id)
        bp = self._blueprints.get(bp_id)
        if bp is None or bp["Region"] != ctx.region or bp["OwnerUin"] != ctx.uin:
            raise ApiError(missing, f"The custom image `{bp_id}` does not exist.")
        return bp

    def _visible_blueprints(self, ctx: Ctx) -> list[dict[str, Any]]:
        """Public images, the caller's own, and other accounts' images shared with the caller (as SHARED)."""
        mine: list[dict[str, Any]] = []
        for bp in self._blueprints.values():
            if bp["Region"] != ctx.region:
                continue
            if bp["OwnerUin"] == ctx.uin:
                mine.append(bp)
            elif ctx.uin in bp["SharedWith"]:
                # The recipient sees the owner's image read-only; the owner's tags are not the recipient's.
                mine.append({**bp, "BlueprintType": "SHARED", "Tags": [], "BlueprintShared": True})
        return resources.public_blueprints() + mine


def _check_blueprint_id(bp_id: str) -> None:
    if not resources.BLUEPRINT_ID_RE.match(bp_id):
        raise ApiError("InvalidParameterValue.BlueprintIdMalformed", f"The image ID `{bp_id}` is malformed.")


def check_id_list(ids: list[str], field: str, limit: int = 100) -> None:
    """At most `limit` ids, no duplicates.

    Raises:
        ApiError: InvalidParameterValue.LimitExceeded or InvalidParameterValue.Duplicated.
    """
    if len(ids) > limit:
        raise ApiError("InvalidParameterValue.LimitExceeded", f"`{field}` holds more than {limit} values.")
    if len(set(ids)) != len(ids):
        raise ApiError("InvalidParameterValue.Duplicated", f"`{field}` holds duplicate values.")


def check_blueprint_id(bp_id: str) -> None:
    """`lhbp-` + 8 of [a-z0-9].

    Raises:
        ApiError: InvalidParameterValue.BlueprintIdMalformed.
    """
    _check_blueprint_id(bp_id)
