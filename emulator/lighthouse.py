"""Lighthouse 2020-03-24: instances, custom images (blueprints) and their state machines."""

from __future__ import annotations

import copy
import functools
import heapq
import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from emulator import resources
from emulator.clock import iso
from emulator.errors import ApiError
from emulator.query import (
    MAX_IDS,
    Getter,
    apply_filters,
    check_filters,
    check_ids_or_filters,
    page,
    tag_getters,
)
from emulator.schema import Schema
from emulator.service import Ctx
from emulator.state import DEFAULT_REGION, World, region_info

OPERABLE_STATES = ("RUNNING", "STOPPED")
DELETABLE_STATES = ("NORMAL", "ISOLATED", "CREATEFAILED", "SYNCING_FAILED")
MAX_NAME = 60
MAX_TAGS = 10
BLUEPRINT_TYPES = ("APP_OS", "PURE_OS", "DOCKER", "PRIVATE", "SHARED", "GAME_PORTAL")
PLATFORM_TYPES = ("LINUX_UNIX", "WINDOWS")
# Quota resources DescribeGeneralResourceQuotas knows; only BLUEPRINT follows the state.
QUOTA_NAMES = (
    "GENERAL_BUNDLE_INSTANCE",
    "STORAGE_BUNDLE_INSTANCE",
    "ENTERPRISE_BUNDLE_INSTANCE",
    "EXCLUSIVE_BUNDLE_INSTANCE",
    "BEFAST_BUNDLE_INSTANCE",
    "STARTER_BUNDLE_INSTANCE",
    "HK_EXCLUSIVE_BUNDLE_INSTANCE",
    "CAREFREE_BUNDLE_INSTANCE",
    "EXCLUSIVE_BUNDLE_02_INSTANCE",
    "NEWCOMER_BUNDLE_INSTANCE",
    "GAME_PORTAL_BUNDLE_INSTANCE",
    "ECONOMY_BUNDLE_INSTANCE",
    "BUDGET_BUNDLE_INSTANCE",
    "RAZOR_SPEED_BUNDLE_INSTANCE",
    "BANDWIDTH_BUNDLE_INSTANCE",
    "USER_KEY_PAIR",
    "SNAPSHOT",
    "BLUEPRINT",
    "FREE_BLUEPRINT",
    "DATA_DISK",
)

SCHEMAS: dict[str, Schema] = {
    "CreateBlueprint": {
        "BlueprintName": ("str", True),
        "Description": ("str", False),
        "InstanceId": ("str", False),
        "ForcePowerOff": ("bool", False),
        "Tags": ("tag[]", False),
    },
    "DescribeBlueprints": {
        "BlueprintIds": ("str[]", False),
        "Offset": ("int", False),
        "Limit": ("int", False),
        "Filters": ("filter[]", False),
    },
    "DeleteBlueprints": {"BlueprintIds": ("str[]", True)},
    "DescribeInstances": {
        "InstanceIds": ("str[]", False),
        "Filters": ("filter[]", False),
        "Offset": ("int", False),
        "Limit": ("int", False),
        "OrderField": ("str", False),
        "Order": ("str", False),
    },
    "DescribeGeneralResourceQuotas": {"ResourceNames": ("str[]", True)},
    "StartInstances": {"InstanceIds": ("str[]", True)},
    "StopInstances": {"InstanceIds": ("str[]", True), "StopType": ("str", False)},
    "DescribeRegions": {},
}

_BLUEPRINT_FILTERS: dict[str, Getter] = {
    "blueprint-id": lambda bp: [bp["BlueprintId"]],
    "blueprint-type": lambda bp: [bp["BlueprintType"]],
    "platform-type": lambda bp: [bp["PlatformType"]],
    "blueprint-name": lambda bp: [bp["BlueprintName"]],
    "blueprint-state": lambda bp: [bp["BlueprintState"]],
    "scene-id": lambda bp: list(bp.get("SceneIdSet") or []),
    **tag_getters(),
}
_INSTANCE_FILTERS: dict[str, Getter] = {
    "instance-id": lambda ins: [ins["InstanceId"]],
    "instance-name": lambda ins: [ins["InstanceName"]],
    "instance-state": lambda ins: [ins["InstanceState"]],
    "zone": lambda ins: [ins["Zone"]],
    "bundle-id": lambda ins: [ins["BundleId"]],
    "private-ip-address": lambda ins: list(ins.get("PrivateAddresses") or []),
    "public-ip-address": lambda ins: list(ins.get("PublicAddresses") or []),
    **tag_getters(),
}


class Lighthouse:
    """Lighthouse state and actions; every method runs under the world lock."""

    name = "lighthouse"
    version = "2020-03-24"
    schemas = SCHEMAS

    def __init__(
        self,
        world: World,
        *,
        image_seconds: float,
        op_seconds: float,
        in_progress_state: str,
        restart_after_image: bool,
        quota: int,
    ) -> None:
        self._world = world
        self.image_seconds = image_seconds
        self.op_seconds = op_seconds
        self.in_progress_state = in_progress_state
        self.restart_after_image = restart_after_image
        self.default_quota = quota
        self._instances: dict[str, dict[str, Any]] = {}
        self._blueprints: dict[str, dict[str, Any]] = {}
        self._quotas: dict[str, int] = {}
        # Every InstanceState an instance took, with its emulated time (tests: "never stopped").
        self._history: dict[str, list[tuple[float, str]]] = {}
        self._fail_images: list[str | None] = []
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._handlers: dict[str, Callable[[dict[str, Any], Ctx], dict[str, Any]]] = {
            "CreateBlueprint": self._create_blueprint,
            "DescribeBlueprints": self._describe_blueprints,
            "DeleteBlueprints": self._delete_blueprints,
            "DescribeInstances": self._describe_instances,
            "DescribeGeneralResourceQuotas": self._describe_quotas,
            "StartInstances": self._start_instances,
            "StopInstances": self._stop_instances,
            "DescribeRegions": self._describe_regions,
        }

    # ---- lifecycle -------------------------------------------------------------------------

    def reset(self, state: dict[str, Any]) -> None:
        """Forget everything and load instances, blueprints and quotas from `state`."""
        with self._world.lock:
            self._instances.clear()
            self._history.clear()
            self._blueprints.clear()
            self._fail_images.clear()
            self._timers.clear()
            self.default_quota = int(state.get("quota", self.default_quota))
            self._quotas = {region: int(n) for region, n in (state.get("quotas") or {}).items()}
            for item in state.get("instances") or []:
                fields = dict(item)
                self.add_instance(fields.pop("InstanceId"), **fields)
            for item in state.get("blueprints") or []:
                fields = dict(item)
                self.add_blueprint(fields.pop("BlueprintName"), **fields)

    def call(self, action: str, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        """Run a Lighthouse action after the due state transitions."""
        with self._world.lock:
            self.tick()
            return self._handlers[action](params, ctx)

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

    # ---- Python API for tests ----------------------------------------------------------------

    def add_instance(
        self,
        InstanceId: str,
        *,
        Region: str = DEFAULT_REGION,
        InstanceName: str | None = None,
        InstanceState: str = "RUNNING",
        Tags: Iterable[Mapping[str, str]] = (),
        **extra: Any,
    ) -> dict[str, Any]:
        """Add (or replace) an instance; returns a copy of it.

        Raises:
            ValueError: when InstanceId is not `lhins-` + 8 of [a-z0-9].
        """
        if not resources.INSTANCE_ID_RE.match(InstanceId):
            raise ValueError(f"malformed instance id {InstanceId!r}: want lhins- and 8 of [a-z0-9]")
        with self._world.lock:
            self._world.add_region(Region)
            item = resources.instance(
                InstanceId,
                Region,
                self._world.clock.now(),
                InstanceName=InstanceName,
                InstanceState=InstanceState,
                Tags=list(Tags),
                **extra,
            )
            self._instances[InstanceId] = item
            self._history[InstanceId] = [(self._world.clock.now(), item["InstanceState"])]
            return copy.deepcopy(item)

    def instances(self, region: str | None = None) -> list[dict[str, Any]]:
        """Copies of the instances (API shape plus "Region"), optionally of one region."""
        with self._world.lock:
            self.tick()
            return [copy.deepcopy(i) for i in self._instances.values() if region in (None, i["Region"])]

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
            bp_id = BlueprintId or resources.new_id("lhbp", self._blueprints)
            fields: dict[str, Any] = {"BlueprintState": BlueprintState, "Tags": list(Tags), **extra}
            if CreatedTime is not None:
                fields["CreatedTime"] = CreatedTime
            bp = resources.private_blueprint(bp_id, BlueprintName, Region, self._world.clock.now(), **fields)
            self._blueprints[bp_id] = bp
            return copy.deepcopy(bp)

    def blueprints(self, region: str | None = None, *, private_only: bool = True) -> list[dict[str, Any]]:
        """Copies of the images (API shape plus "Region" and source "InstanceId")."""
        with self._world.lock:
            self.tick()
            regions = [region] if region else list(self._world.regions)
            found = [copy.deepcopy(bp) for bp in self._blueprints.values() if bp["Region"] in regions]
            if private_only:
                return found
            public = [{**bp, "Region": r, "InstanceId": None} for r in regions for bp in resources.public_blueprints()]
            return public + found

    def fail_next_image(self, instance_id: str | None = None, times: int = 1) -> None:
        """Make the next `times` images (of `instance_id`, or of any instance) end CREATEFAILED."""
        with self._world.lock:
            self._fail_images.extend([instance_id] * times)

    def set_quota(self, region: str, n: int) -> None:
        """Set the custom-image quota of `region`."""
        with self._world.lock:
            self._quotas[region] = n

    def quota(self, region: str) -> int:
        """The custom-image quota of `region`."""
        with self._world.lock:
            return self._quotas.get(region, self.default_quota)

    def _set_state(self, item: dict[str, Any], state: str) -> None:
        if item["InstanceState"] != state:
            self._history.setdefault(item["InstanceId"], []).append((self._world.clock.now(), state))
        item["InstanceState"] = state

    # ---- shared checks -------------------------------------------------------------------------

    def _instance(self, instance_id: str, region: str) -> dict[str, Any]:
        if not resources.INSTANCE_ID_RE.match(instance_id):
            raise ApiError(
                "InvalidParameterValue.InstanceIdMalformed", f"The instance ID `{instance_id}` is malformed."
            )
        found = self._instances.get(instance_id)
        if found is None or found["Region"] != region:
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
            LatestOperationStartedTime=iso(self._world.clock.now()),
        )

    def _private_count(self, region: str) -> int:
        return sum(1 for bp in self._blueprints.values() if bp["Region"] == region)

    # ---- CreateBlueprint -------------------------------------------------------------------------

    def _create_blueprint(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        _check_create_params(params)
        source = None
        if "InstanceId" in params:
            source = self._instance(params["InstanceId"], ctx.region)
            self._check_operable(source)
        if self._private_count(ctx.region) >= self.quota(ctx.region):
            raise ApiError("LimitExceeded.BlueprintQuotaLimitExceeded")
        bp_id = resources.new_id("lhbp", self._blueprints)
        self._blueprints[bp_id] = resources.private_blueprint(
            bp_id,
            params["BlueprintName"],
            ctx.region,
            self._world.clock.now(),
            source=source,
            BlueprintState=self.in_progress_state,
            Description=params.get("Description"),
            Tags=params.get("Tags") or [],
        )
        failed = self._take_failure(source["InstanceId"] if source else None)
        restart = False
        if source is not None:
            self._begin_operation(source, "CreateBlueprint", ctx)
            if params.get("ForcePowerOff", True) and source["InstanceState"] == "RUNNING":
                self._set_state(source, "STOPPED")
                restart = self.restart_after_image
        self._schedule(self.image_seconds, lambda: self._finish_image(bp_id, source, ctx, failed, restart))
        return {"BlueprintId": bp_id}

    def _take_failure(self, instance_id: str | None) -> bool:
        for index, wanted in enumerate(self._fail_images):
            if wanted is None or wanted == instance_id:
                del self._fail_images[index]
                return True
        return False

    def _finish_image(self, bp_id: str, source: dict[str, Any] | None, ctx: Ctx, failed: bool, restart: bool) -> None:
        bp = self._blueprints.get(bp_id)
        if bp is not None:
            bp["BlueprintState"] = "CREATEFAILED" if failed else "NORMAL"
        if source is None or source.get("LatestOperationRequestId") != ctx.request_id:
            return
        source["LatestOperationState"] = "FAILED" if failed else "SUCCESS"
        if restart:
            self._set_state(source, "RUNNING")

    # ---- Describe / Delete blueprints ---------------------------------------------------------------

    def _region_blueprints(self, region: str) -> list[dict[str, Any]]:
        mine = [bp for bp in self._blueprints.values() if bp["Region"] == region]
        return resources.public_blueprints() + mine

    def _describe_blueprints(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        check_ids_or_filters(params, "BlueprintIds")
        for bp_id in params.get("BlueprintIds", []):
            _check_blueprint_id(bp_id)
        filters = params.get("Filters", [])
        check_filters(filters, _BLUEPRINT_FILTERS)
        _check_blueprint_filter_values(filters)
        items = self._region_blueprints(ctx.region)
        if "BlueprintIds" in params:
            items = [bp for bp in items if bp["BlueprintId"] in params["BlueprintIds"]]
        total, shown = page(apply_filters(items, filters, _BLUEPRINT_FILTERS), params)
        return {
            "TotalCount": total,
            "BlueprintSet": [resources.api_view(bp, resources.BLUEPRINT_INTERNAL) for bp in shown],
        }

    def _delete_blueprints(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        ids = params["BlueprintIds"]
        _check_id_list(ids, "BlueprintIds")
        for bp_id in ids:
            _check_blueprint_id(bp_id)
        public = {bp["BlueprintId"] for bp in resources.public_blueprints()}
        for bp_id in ids:
            self._check_deletable(bp_id, ctx.region, public)
        for bp_id in ids:
            del self._blueprints[bp_id]
        return {}

    def _check_deletable(self, bp_id: str, region: str, public: set[str]) -> None:
        if bp_id in public:
            raise ApiError("UnsupportedOperation.NotSupportSharedBlueprint", f"`{bp_id}` is not a custom image.")
        bp = self._blueprints.get(bp_id)
        if bp is None or bp["Region"] != region:
            raise ApiError("ResourceNotFound.BlueprintIdNotFound", f"The image `{bp_id}` does not exist.")
        if bp["BlueprintState"] not in DELETABLE_STATES:
            raise ApiError(
                "UnsupportedOperation.BlueprintCurStateInvalid",
                f"The image `{bp_id}` is in state `{bp['BlueprintState']}`; it cannot be deleted.",
            )

    # ---- instances -------------------------------------------------------------------------------

    def _describe_instances(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        check_ids_or_filters(params, "InstanceIds")
        for instance_id in params.get("InstanceIds", []):
            if not resources.INSTANCE_ID_RE.match(instance_id):
                raise ApiError("InvalidParameterValue.InstanceIdMalformed", f"`{instance_id}` is malformed.")
        if "Order" in params and "OrderField" not in params:
            raise ApiError("MissingParameter.OrderFieldRequired")
        filters = params.get("Filters", [])
        check_filters(filters, _INSTANCE_FILTERS)
        items = [i for i in self._instances.values() if i["Region"] == ctx.region]
        if "InstanceIds" in params:
            items = [i for i in items if i["InstanceId"] in params["InstanceIds"]]
        total, shown = page(apply_filters(items, filters, _INSTANCE_FILTERS), params)
        return {
            "TotalCount": total,
            "InstanceSet": [resources.api_view(i, resources.INSTANCE_INTERNAL) for i in shown],
        }

    def _start_instances(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        return self._power(params, ctx, "StartInstances", ("STOPPED", "STARTING", "RUNNING"))

    def _stop_instances(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        return self._power(params, ctx, "StopInstances", ("RUNNING", "STOPPING", "STOPPED"))

    def _power(self, params: dict[str, Any], ctx: Ctx, operation: str, states: tuple[str, str, str]) -> dict[str, Any]:
        """Start or stop instances: all checked first, then all changed (the call is atomic)."""
        ids = params["InstanceIds"]
        _check_id_list(ids, "InstanceIds")
        items = [self._instance(instance_id, ctx.region) for instance_id in ids]
        for item in items:
            self._check_operable(item, allowed=(states[0],))
        for item in items:
            self._begin_operation(item, operation, ctx)
            self._set_state(item, states[1])
            self._schedule(self.op_seconds, functools.partial(self._end_power, item, ctx, states[2]))
        return {}

    def _end_power(self, item: dict[str, Any], ctx: Ctx, final: str) -> None:
        if item.get("LatestOperationRequestId") == ctx.request_id:
            self._set_state(item, final)
            item["LatestOperationState"] = "SUCCESS"

    # ---- quotas and regions ---------------------------------------------------------------------------

    def _describe_quotas(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        rows = []
        for name in params["ResourceNames"]:
            if name not in QUOTA_NAMES:
                raise ApiError("InvalidParameterValue.InvalidResourceQuotaResourceName", f"Unknown resource `{name}`.")
            rows.append(self._quota_row(name, ctx.region))
        return {"GeneralResourceQuotaSet": rows}

    def _quota_row(self, name: str, region: str) -> dict[str, Any]:
        if name in ("BLUEPRINT", "FREE_BLUEPRINT"):
            total = self.quota(region)
            used = self._private_count(region)
        else:
            total, used = 10, 0
        return {
            "ResourceName": name,
            "ResourceQuotaAvailable": max(0, total - used),
            "ResourceQuotaTotal": total,
        }

    def _describe_regions(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        regions = [region_info(region) for region in self._world.regions]
        return {"TotalCount": len(regions), "RegionSet": regions}


def _check_create_params(params: Mapping[str, Any]) -> None:
    for field in ("BlueprintName", "Description"):
        if len(params.get(field) or "") > MAX_NAME:
            raise ApiError("InvalidParameterValue.TooLong", f"`{field}` is longer than {MAX_NAME} characters.")
    if len(params.get("Tags") or []) > MAX_TAGS:
        raise ApiError("InvalidParameterValue.LimitExceeded", f"At most {MAX_TAGS} tags are allowed.")


def _check_blueprint_id(bp_id: str) -> None:
    if not resources.BLUEPRINT_ID_RE.match(bp_id):
        raise ApiError("InvalidParameterValue.BlueprintIdMalformed", f"The image ID `{bp_id}` is malformed.")


def _check_id_list(ids: list[str], field: str) -> None:
    if len(ids) > MAX_IDS:
        raise ApiError("InvalidParameterValue.LimitExceeded", f"`{field}` holds more than {MAX_IDS} values.")
    if len(set(ids)) != len(ids):
        raise ApiError("InvalidParameterValue.Duplicated", f"`{field}` holds duplicate values.")


_ENUM_FILTERS = {
    "blueprint-type": ("InvalidParameterValue.InvalidBlueprintType", BLUEPRINT_TYPES),
    "platform-type": ("InvalidParameterValue.InvalidBlueprintPlatformType", PLATFORM_TYPES),
}


def _check_blueprint_filter_values(filters: Iterable[Mapping[str, Any]]) -> None:
    for item in filters:
        rule = _ENUM_FILTERS.get(item["Name"])
        if rule is None:
            continue
        code, allowed = rule
        bad = [value for value in item["Values"] if value not in allowed]
        if bad:
            raise ApiError(code, f"Invalid value {bad[0]!r} for filter `{item['Name']}`.")
