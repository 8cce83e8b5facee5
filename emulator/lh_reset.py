"""ResetInstance: reinstall an instance's system disk from an image, asynchronously (LatestOperationState)."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from typing import Any

from emulator.clock import iso
from emulator.errors import ApiError
from emulator.lh_core import LighthouseCore, check_blueprint_id
from emulator.schema import Schema
from emulator.service import Ctx
from emulator.state import is_mainland

RESET_SCHEMAS: dict[str, Schema] = {
    "ResetInstance": {
        "InstanceId": ("str", True),
        "BlueprintId": ("str", False),
        "Containers": ("obj[]", False),  # accepted, not modelled (Docker images only)
        "LoginConfiguration": ("obj", False),  # accepted, not modelled
    },
}


class ResetMixin(LighthouseCore):
    """ResetInstance and its Python API."""

    def _reset_handlers(self) -> dict[str, Callable[[dict[str, Any], Ctx], dict[str, Any]]]:
        return {"ResetInstance": self._reset_instance}

    # ---- Python API ------------------------------------------------------------------------------

    def fail_next_reset(self, instance_id: str | None = None, times: int = 1) -> None:
        """Make the next `times` resets (of `instance_id`, or of any instance) end FAILED (disk unchanged)."""
        self._queue_failure("reset", instance_id, times)

    def resets(self, instance_id: str) -> list[dict[str, Any]]:
        """The resets of an instance, oldest first: BlueprintId, RequestId, StartedTime, Result (None while running)."""
        with self._world.lock:
            self.tick()
            return copy.deepcopy(self._resets.get(instance_id, []))

    def all_resets(self) -> dict[str, list[dict[str, Any]]]:
        """Every instance's resets (for the control path's state)."""
        with self._world.lock:
            self.tick()
            return copy.deepcopy(self._resets)

    # ---- the action ---------------------------------------------------------------------------------

    def _reset_instance(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        item = self._instance(params["InstanceId"], ctx)
        image = self._reset_image(params.get("BlueprintId") or item["BlueprintId"], ctx)
        self._check_operable(item)
        _check_fits(item, image)
        before = item["InstanceState"]
        self._begin_operation(item, "ResetInstance", ctx)
        self._set_state(item, self.opts.reset_state)
        record: dict[str, Any] = {
            "BlueprintId": image["BlueprintId"],
            "RequestId": ctx.request_id,
            "StartedTime": iso(self._now()),
            "Result": None,
        }
        self._resets.setdefault(item["InstanceId"], []).append(record)
        failed = self._take_failure("reset", item["InstanceId"])
        finish = functools.partial(self._finish_reset, item, image, ctx, failed=failed, before=before, record=record)
        self._schedule(self.opts.reset_seconds, finish)
        return {}

    def _reset_image(self, bp_id: str, ctx: Ctx) -> dict[str, Any]:
        """A copy of the image to install: public, the caller's own, or shared with the caller; NORMAL."""
        check_blueprint_id(bp_id)
        found = next((bp for bp in self._visible_blueprints(ctx) if bp["BlueprintId"] == bp_id), None)
        if found is None:
            raise ApiError("ResourceNotFound.BlueprintIdNotFound", f"The image `{bp_id}` does not exist.")
        if found["BlueprintState"] != "NORMAL":
            raise ApiError(
                "ResourceUnavailable.BlueprintUnavailable",
                f"The image `{bp_id}` is `{found['BlueprintState']}`, not NORMAL.",
            )
        # What gets installed is fixed now: deleting the image later does not change the reset.
        return {**found, "Data": found.get("Data") or f"{bp_id}:public"}

    def _finish_reset(
        self,
        item: dict[str, Any],
        image: Mapping[str, Any],
        ctx: Ctx,
        *,
        failed: bool,
        before: str,
        record: dict[str, Any],
    ) -> None:
        record["Result"] = "FAILED" if failed else "SUCCESS"
        if item.get("LatestOperationRequestId") != ctx.request_id:
            return
        item["LatestOperationState"] = record["Result"]
        if failed:
            self._set_state(item, before)
            return
        for field in ("OsName", "Platform", "PlatformType"):
            item[field] = image[field]
        item["BlueprintId"] = image["BlueprintId"]
        self._set_state(item, self.opts.reset_final_state)
        # The system disk keeps its id (a reinstall formats it in place) and now holds the image's data.
        self._disks[item["SystemDisk"]["DiskId"]]["Data"] = image["Data"]


def _check_fits(item: Mapping[str, Any], image: Mapping[str, Any]) -> None:
    """The documented limits on which image an instance may be reinstalled from."""
    if image["PlatformType"] != item["PlatformType"] and not is_mainland(item["Region"]):
        raise ApiError(
            "InvalidParameterValue.NotAllowToChangePlatformType",
            "Instances outside the Chinese mainland cannot switch between LINUX_UNIX and WINDOWS.",
        )
    too_small = image["RequiredSystemDiskSize"] > item["SystemDisk"]["DiskSize"]
    if too_small or image["RequiredMemorySize"] > item["Memory"]:
        raise ApiError(
            "InvalidParameterValue.BlueprintConfigNotMatch",
            f"Instance `{item['InstanceId']}` does not meet the requirements of image `{image['BlueprintId']}`.",
        )
