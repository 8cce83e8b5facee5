"""Images beyond one region and account: SyncBlueprint, cross-account shares, and the image price."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from emulator import resources
from emulator.clock import iso
from emulator.errors import ApiError
from emulator.lh_core import LighthouseCore, check_blueprint_id
from emulator.query import Getter, apply_filters, check_filters, page
from emulator.schema import Schema
from emulator.service import Ctx
from emulator.state import is_mainland

MAX_SYNC_REGIONS = 10  # SyncBlueprint: "最多10个地域"
MAX_SHARE_ACCOUNTS = 10  # AccountIds: "账号个数取值最大为10"
MAX_SHARE_FILTER_VALUES = 5  # DescribeBlueprintsShareAcrossAccountInfos: "Filter.Values 的上限为 5"

SHARING_SCHEMAS: dict[str, Schema] = {
    "SyncBlueprint": {"BlueprintId": ("str", True), "DestinationRegions": ("str[]", True)},
    "ShareBlueprintAcrossAccounts": {"BlueprintId": ("str", True), "AccountIds": ("str[]", True)},
    "CancelShareBlueprintAcrossAccounts": {"BlueprintId": ("str", True), "AccountIds": ("str[]", True)},
    "DescribeBlueprintsShareAcrossAccountInfos": {
        "BlueprintIds": ("str[]", True),
        "Offset": ("int", False),
        "Limit": ("int", False),
        "Filters": ("filter[]", False),
    },
    "InquirePriceCreateBlueprint": {"BlueprintCount": ("int", False)},
}

_SHARE_FILTERS: dict[str, Getter] = {"account-id": lambda row: [row["AccountId"]]}
# Fields a copy takes from its source; it gets its own id, region, state, time and (by default) no tags.
_COPIED = ("BlueprintName", "DisplayTitle", "DisplayVersion", "Description", "OsName", "Platform", "PlatformType",
           "RequiredSystemDiskSize", "RequiredMemorySize", "SupportAutomationTools", "InstanceId", "OwnerUin", "Data")


class SharingMixin(LighthouseCore):
    """SyncBlueprint, Share/CancelShare/DescribeBlueprintsShareAcrossAccountInfos, InquirePriceCreateBlueprint."""

    def _sharing_handlers(self) -> dict[str, Callable[[dict[str, Any], Ctx], dict[str, Any]]]:
        return {
            "SyncBlueprint": self._sync_blueprint,
            "ShareBlueprintAcrossAccounts": self._share,
            "CancelShareBlueprintAcrossAccounts": self._cancel_share,
            "DescribeBlueprintsShareAcrossAccountInfos": self._describe_shares,
            "InquirePriceCreateBlueprint": self._inquire_price,
        }

    # ---- Python API ------------------------------------------------------------------------------

    def fail_next_sync(self, region: str | None = None, times: int = 1) -> None:
        """Make the next `times` copies (to `region`, or to any region) end SYNCING_FAILED."""
        self._queue_failure("sync", region, times)

    def shares(self, blueprint_id: str) -> list[str]:
        """The accounts an image is shared with, in share order.

        Raises:
            KeyError: for an unknown image.
        """
        with self._world.lock:
            return list(self._blueprints[blueprint_id]["SharedWith"])

    # ---- SyncBlueprint ---------------------------------------------------------------------------------

    def _sync_blueprint(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        source = self._own_blueprint(params["BlueprintId"], ctx)
        regions = params["DestinationRegions"]
        self._check_destinations(regions, ctx.region)
        if source["BlueprintState"] != "NORMAL":
            raise ApiError(
                "UnsupportedOperation.BlueprintCurStateInvalid",
                f"The image `{source['BlueprintId']}` is `{source['BlueprintState']}`; only NORMAL images sync.",
            )
        for region in regions:
            if self._private_count(region, ctx.uin) >= self.quota(region):
                raise ApiError(
                    "LimitExceeded.SyncBlueprintQuotaLimitExceeded",
                    f"The custom-image quota of `{region}` is used up.",
                )
        copies = [self._start_copy(source, region) for region in regions]
        source["BlueprintState"] = "SYNCING"
        pending = {copy_id for _, copy_id in copies}
        for region, copy_id in copies:
            failed = self._take_failure("sync", region)
            done = self._copy_done_callback(source, copy_id, failed, pending)
            self._schedule(self.opts.sync_seconds, done)
        return {"DestinationRegionBlueprintSet": [{"Region": r, "BlueprintId": i} for r, i in copies]}

    def _check_destinations(self, regions: list[str], source_region: str) -> None:
        if not regions:
            raise ApiError("MissingParameter", "The request is missing a required parameter `DestinationRegions`.")
        if len(regions) > MAX_SYNC_REGIONS:
            raise ApiError("LimitExceeded", f"At most {MAX_SYNC_REGIONS} destination regions are allowed.")
        if len(set(regions)) != len(regions):
            raise ApiError("InvalidParameterValue.Duplicated", "`DestinationRegions` holds duplicate values.")
        for region in regions:
            if region == source_region:
                raise ApiError(
                    "InvalidParameterValue.DestinationRegionSameAsSourceRegion",
                    f"The destination `{region}` is the source region.",
                )
            if region not in self._world.regions or region in self._world.unavailable:
                raise ApiError("InvalidParameterValue.UnavailableRegion", f"The region `{region}` is not available.")
            if is_mainland(region) != is_mainland(source_region):
                raise ApiError(
                    "InvalidParameterValue.NotSupportCrossBorderSyncBlueprint",
                    f"Images cannot be copied between `{source_region}` and `{region}` (mainland China and other).",
                )

    def _start_copy(self, source: Mapping[str, Any], region: str) -> tuple[str, str]:
        copy_id = resources.new_id("lhbp", self._blueprints)
        fields = {key: source[key] for key in _COPIED}
        fields["Tags"] = list(source["Tags"]) if self.opts.sync_copies_tags else []
        copy = resources.private_blueprint(copy_id, source["BlueprintName"], region, self._now(), **fields)
        copy.update(BlueprintState=self.opts.sync_state, SharedWith={}, SourceBlueprintId=source["BlueprintId"])
        self._blueprints[copy_id] = copy
        return region, copy_id

    def _copy_done_callback(
        self, source: dict[str, Any], copy_id: str, failed: bool, pending: set[str]
    ) -> Callable[[], None]:
        def done() -> None:
            copy = self._blueprints.get(copy_id)
            if copy is not None:
                copy["BlueprintState"] = "SYNCING_FAILED" if failed else "NORMAL"
            pending.discard(copy_id)
            # The source shows SYNCING until every copy of this call has finished, then NORMAL again.
            if not pending and source.get("BlueprintState") == "SYNCING":
                source["BlueprintState"] = "NORMAL"

        return done

    # ---- shares -----------------------------------------------------------------------------------------

    def _share(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        bp = self._own_blueprint(params["BlueprintId"], ctx)
        accounts = params["AccountIds"]
        self._check_accounts(accounts, ctx)
        if bp["BlueprintState"] != "NORMAL":
            raise ApiError(
                "UnsupportedOperation.BlueprintCurStateInvalid",
                f"The image `{bp['BlueprintId']}` is `{bp['BlueprintState']}`; only NORMAL images can be shared.",
            )
        already = [uin for uin in accounts if uin in bp["SharedWith"]]
        if already:
            raise ApiError("UnsupportedOperation.BlueprintAlreadyShared", f"Already shared with `{already[0]}`.")
        if len(bp["SharedWith"]) + len(accounts) > self.opts.share_quota:
            raise ApiError(
                "LimitExceeded.ShareBlueprintAcrossAccountQuotaLimitExceeded",
                f"One image can be shared with at most {self.opts.share_quota} accounts.",
            )
        for uin in accounts:
            bp["SharedWith"][uin] = iso(self._now())
        bp["BlueprintShared"] = True
        return {}

    def _check_accounts(self, accounts: list[str], ctx: Ctx) -> None:
        _check_account_count(accounts)
        for uin in accounts:
            if uin == ctx.uin:
                raise ApiError("InvalidParameterValue.AccountIdSameWithUin", "The account is the current user.")
            if uin not in self._accounts:
                raise ApiError("InvalidParameterValue.AccountIdsNotExist", f"The account `{uin}` does not exist.")
            if not self._accounts[uin]:
                raise ApiError(
                    "InvalidParameterValue.AccountIdsNotOwnerAccount", f"The account `{uin}` is not a main account."
                )

    def _cancel_share(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        bp = self._own_blueprint(params["BlueprintId"], ctx)
        accounts = params["AccountIds"]
        _check_account_count(accounts)
        missing = [uin for uin in accounts if uin not in bp["SharedWith"]]
        if missing:
            raise ApiError(
                "UnsupportedOperation.BlueprintHasNotShared",
                f"The image `{bp['BlueprintId']}` is not shared with `{missing[0]}`.",
            )
        for uin in accounts:
            del bp["SharedWith"][uin]
        bp["BlueprintShared"] = bool(bp["SharedWith"])
        return {}

    def _describe_shares(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        for bp_id in params["BlueprintIds"]:
            check_blueprint_id(bp_id)
        filters = params.get("Filters", [])
        check_filters(filters, _SHARE_FILTERS, max_values=MAX_SHARE_FILTER_VALUES)
        rows = [
            {"BlueprintId": bp_id, "AccountId": uin, "CreatedTime": created}
            for bp_id in params["BlueprintIds"]
            if (bp := self._blueprints.get(bp_id)) and bp["Region"] == ctx.region and bp["OwnerUin"] == ctx.uin
            for uin, created in bp["SharedWith"].items()
        ]
        total, shown = page(apply_filters(rows, filters, _SHARE_FILTERS), params)
        return {"TotalCount": total, "BlueprintShareAcrossAccountInfoSet": shown}

    # ---- price ------------------------------------------------------------------------------------------

    def _inquire_price(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        count = params.get("BlueprintCount", 1)
        if count < 1:
            raise ApiError("InvalidParameterValue", "`BlueprintCount` must be at least 1.")
        unit = self.opts.blueprint_price
        total = round(unit * count, 6)
        return {
            "BlueprintPrice": {
                "OriginalBlueprintPrice": unit,
                "OriginalPrice": total,
                "Discount": self.opts.blueprint_discount,
                "DiscountPrice": round(total * self.opts.blueprint_discount / 100, 6),
            }
        }


def _check_account_count(accounts: list[str]) -> None:
    if not accounts:
        raise ApiError("MissingParameter", "The request is missing a required parameter `AccountIds`.")
    if len(accounts) > MAX_SHARE_ACCOUNTS:
        raise ApiError("InvalidParameterValue.LimitExceeded", f"At most {MAX_SHARE_ACCOUNTS} accounts per request.")
    if len(set(accounts)) != len(accounts):
        raise ApiError("InvalidParameterValue.Duplicated", "`AccountIds` holds duplicate values.")
