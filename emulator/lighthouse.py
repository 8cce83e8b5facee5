"""Lighthouse 2020-03-24: instances, custom images (blueprints) and their state machines."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from emulator import resources
from emulator.errors import ApiError
from emulator.lh_core import (
    DEFAULT_QUOTA,
    DELETABLE_STATES,
    MAX_NAME,
    MAX_TAGS,
    LighthouseCore,
    Options,
    check_blueprint_id,
    check_id_list,
)
from emulator.lh_disks import DISK_SCHEMAS, DisksMixin
from emulator.lh_reset import RESET_SCHEMAS, ResetMixin
from emulator.lh_sharing import SHARING_SCHEMAS, SharingMixin
from emulator.query import (
    Getter,
    apply_filters,
    check_filters,
    check_ids_or_filters,
    page,
    tag_getters,
)
from emulator.schema import Schema
from emulator.service import Ctx
from emulator.state import World, region_info

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
    **SHARING_SCHEMAS,
    **DISK_SCHEMAS,
    **RESET_SCHEMAS,
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


class Lighthouse(SharingMixin, DisksMixin, ResetMixin, LighthouseCore):
    """Lighthouse state and actions; every method runs under the world lock."""

    name = "lighthouse"
    version = "2020-03-24"
    regional = True
    schemas = SCHEMAS

    def __init__(self, world: World, options: Options | None = None) -> None:
        super().__init__(world, options or Options())
        self._handlers: dict[str, Callable[[dict[str, Any], Ctx], dict[str, Any]]] = {
            "CreateBlueprint": self._create_blueprint,
            "DescribeBlueprints": self._describe_blueprints,
            "DeleteBlueprints": self._delete_blueprints,
            "DescribeInstances": self._describe_instances,
            "DescribeGeneralResourceQuotas": self._describe_quotas,
            "StartInstances": self._start_instances,
            "StopInstances": self._stop_instances,
            "DescribeRegions": self._describe_regions,
            **self._sharing_handlers(),
            **self._disk_handlers(),
            **self._reset_handlers(),
        }

    # ---- lifecycle -------------------------------------------------------------------------

    def reset(self, state: dict[str, Any]) -> None:
        """Forget everything and load accounts, instances, images, disks, backup points and quotas from `state`."""
        with self._world.lock:
            self._clear()
            self._load_quotas(state)
            self._world.unavailable.clear()
            for uin in state.get("accounts") or []:
                self.add_account(str(uin))
            for item in state.get("instances") or []:
                fields = dict(item)
                self.add_instance(fields.pop("InstanceId"), **fields)
            for item in state.get("blueprints") or []:
                fields = dict(item)
                self.add_blueprint(fields.pop("BlueprintName"), **fields)
            self._load_disks(state)

    def _load_quotas(self, state: dict[str, Any]) -> None:
        """The state's quotas, unless the emulator was started with one (`--quota N`: every region, N)."""
        if self.opts.quota is not None:
            self.default_quota, self._quotas = self.opts.quota, {}
            return
        self.default_quota = int(state.get("quota", DEFAULT_QUOTA))
        self._quotas = {region: int(n) for region, n in (state.get("quotas") or {}).items()}

    def call(self, action: str, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        """Run a Lighthouse action after the due state transitions."""
        with self._world.lock:
            self.tick()
            return self._handlers[action](params, ctx)

    # ---- CreateBlueprint -------------------------------------------------------------------------

    def _create_blueprint(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        _check_create_params(params)
        source = None
        if "InstanceId" in params:
            source = self._instance(params["InstanceId"], ctx)
            self._check_operable(source)
        if self._private_count(ctx.region, ctx.uin) >= self.quota(ctx.region):
            raise ApiError("LimitExceeded.BlueprintQuotaLimitExceeded")
        bp_id = resources.new_id("lhbp", self._blueprints)
        # The image holds what the system disk holds now (a custom image is the system disk only).
        data = self._disks[source["SystemDisk"]["DiskId"]]["Data"] if source else f"{bp_id}:empty"
        self._blueprints[bp_id] = resources.private_blueprint(
            bp_id,
            params["BlueprintName"],
            ctx.region,
            self._world.clock.now(),
            source=source,
            BlueprintState=self.opts.in_progress_state,
            Description=params.get("Description"),
            Tags=params.get("Tags") or [],
            OwnerUin=ctx.uin,
            Data=data,
            SharedWith={},
        )
        failed = self._take_failure("image", source["InstanceId"] if source else None)
        restart = False
        if source is not None:
            self._begin_operation(source, "CreateBlueprint", ctx)
            if params.get("ForcePowerOff", True) and source["InstanceState"] == "RUNNING":
                self._set_state(source, "STOPPED")
                restart = self.opts.restart_after_image
        self._schedule(self.opts.image_seconds, lambda: self._finish_image(bp_id, source, ctx, failed, restart))
        return {"BlueprintId": bp_id}

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

    def _describe_blueprints(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        check_ids_or_filters(params, "BlueprintIds")
        for bp_id in params.get("BlueprintIds", []):
            check_blueprint_id(bp_id)
        filters = params.get("Filters", [])
        check_filters(filters, _BLUEPRINT_FILTERS)
        _check_blueprint_filter_values(filters)
        items = self._visible_blueprints(ctx)
        if "BlueprintIds" in params:
            items = [bp for bp in items if bp["BlueprintId"] in params["BlueprintIds"]]
        total, shown = page(apply_filters(items, filters, _BLUEPRINT_FILTERS, split_colon=self.tag_split_colon), params)
        return {
            "TotalCount": total,
            "BlueprintSet": [resources.api_view(bp, resources.BLUEPRINT_INTERNAL) for bp in shown],
        }

    def _delete_blueprints(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        ids = params["BlueprintIds"]
        check_id_list(ids, "BlueprintIds")
        for bp_id in ids:
            check_blueprint_id(bp_id)
        public = {bp["BlueprintId"] for bp in resources.public_blueprints()}
        for bp_id in ids:
            self._check_deletable(bp_id, ctx, public)
        for bp_id in ids:
            del self._blueprints[bp_id]
        return {}

    def _check_deletable(self, bp_id: str, ctx: Ctx, public: set[str]) -> None:
        bp = self._blueprints.get(bp_id)
        shared_with_me = bp is not None and bp["Region"] == ctx.region and ctx.uin in bp["SharedWith"]
        if bp_id in public or shared_with_me:
            raise ApiError("UnsupportedOperation.NotSupportSharedBlueprint", f"`{bp_id}` is not your custom image.")
        if bp is None or bp["Region"] != ctx.region or bp["OwnerUin"] != ctx.uin:
            raise ApiError("ResourceNotFound.BlueprintIdNotFound", f"The image `{bp_id}` does not exist.")
        if bp["SharedWith"] and not self.opts.allow_delete_shared:
            raise ApiError(
                "UnsupportedOperation.BlueprintOccupied",
                f"The image `{bp_id}` is shared with other accounts; cancel the shares first.",
            )
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
        items = [i for i in self._instances.values() if i["Region"] == ctx.region and i["OwnerUin"] == ctx.uin]
        if "InstanceIds" in params:
            items = [i for i in items if i["InstanceId"] in params["InstanceIds"]]
        total, shown = page(apply_filters(items, filters, _INSTANCE_FILTERS, split_colon=self.tag_split_colon), params)
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
        check_id_list(ids, "InstanceIds")
        items = [self._instance(instance_id, ctx) for instance_id in ids]
        for item in items:
            self._check_operable(item, allowed=(states[0],))
        for item in items:
            self._begin_operation(item, operation, ctx)
            self._set_state(item, states[1])
            self._schedule(self.opts.op_seconds, functools.partial(self._end_power, item, ctx, states[2]))
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
            rows.append(self._quota_row(name, ctx))
        return {"GeneralResourceQuotaSet": rows}

    def _quota_row(self, name: str, ctx: Ctx) -> dict[str, Any]:
        if name in ("BLUEPRINT", "FREE_BLUEPRINT"):
            total = self.quota(ctx.region)
            used = self._private_count(ctx.region, ctx.uin)
        else:
            total, used = 10, 0
        return {
            "ResourceName": name,
            "ResourceQuotaAvailable": max(0, total - used),
            "ResourceQuotaTotal": total,
        }

    def _describe_regions(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        regions = [region_info(r, r not in self._world.unavailable) for r in self._world.regions]
        return {"TotalCount": len(regions), "RegionSet": regions}


def _check_create_params(params: Mapping[str, Any]) -> None:
    for field in ("BlueprintName", "Description"):
        if len(params.get(field) or "") > MAX_NAME:
            raise ApiError("InvalidParameterValue.TooLong", f"`{field}` is longer than {MAX_NAME} characters.")
    if len(params.get("Tags") or []) > MAX_TAGS:
        raise ApiError("InvalidParameterValue.LimitExceeded", f"At most {MAX_TAGS} tags are allowed.")


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
