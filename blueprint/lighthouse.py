"""The thin service over the Lighthouse API (2020-03-24) through the SDK: only the calls the function needs, typed.

Every call is paced by a per-action rate limiter and every SDK error is translated
(`blueprint.cloud.translate`). Retries are the caller's business: a retried CreateBlueprint must first look
for the image the lost attempt may have made. The calls go through the SDK's `CommonClient` by action name,
with plain dicts both ways (`blueprint.cloud.call_json`): the SDK signs and sends them as the generated
`LighthouseClient` would, without importing its 1.6 MB of models at a cold start or building request and
response models on every call (issue 18). The field names are the API's (API document and the SDK's
`tencentcloud/lighthouse/v20200324/models.py`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from blueprint.cloud import ClientCache, call_json, count, listed, malformed, request_id, tags_of, time_of, translate
from blueprint.disks import DiskCalls
from blueprint.errors import Throttled
from blueprint.records import record
from blueprint.retry import Deadline, RateLimiter

__all__ = ["DELETABLE_STATES", "FAILED_STATES", "FILTER_VALUES", "GONE_STATES", "MADE_STATES", "Created", "Image",
           "Instance", "Lighthouse", "LighthouseService", "RegionInfo", "Replication"]

VERSION = "2020-03-24"
PAGE = 100
# Values one DescribeBlueprints filter takes (the SDK's DescribeBlueprintsRequest.Filters: at most 100).
FILTER_VALUES = 100
# The documented BlueprintState values (API 2020-03-24): NORMAL, SYNCING, OFFLINE, CREATEFAILED, SYNCING_FAILED,
# ISOLATING, ISOLATED, DELETING, DESTROYING. The state while an image is being made is not documented.
FAILED_STATES = frozenset({"CREATEFAILED", "SYNCING_FAILED"})
# States from which an image never becomes NORMAL again on its own.
GONE_STATES = frozenset({"OFFLINE", "ISOLATING", "ISOLATED", "DELETING", "DESTROYING"})
# States DeleteBlueprints accepts.
DELETABLE_STATES = frozenset({"NORMAL", "CREATEFAILED", "SYNCING_FAILED", "ISOLATED"})
# An image that is made: NORMAL, or being copied to other regions (SyncBlueprint takes only NORMAL images).
MADE_STATES = frozenset({"NORMAL", "SYNCING"})


@record
class Image:
    """A custom image (Blueprint) as far as the function cares."""

    id: str
    name: str
    state: str
    region: str
    created: datetime | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    # The RequestId of the DescribeBlueprints call that found the image (results quote it).
    request_id: str | None = field(default=None, compare=False)
    # The image as DescribeBlueprints answered it (GET /blueprints/{id} shows it).
    source: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    # Shared with other accounts (it must be unshared before it can be deleted).
    shared: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The image as DescribeBlueprints returns it."""
        return _present(self.source) if self.source is not None else {"BlueprintId": self.id}

    @property
    def failed(self) -> bool:
        """True when the image ended in a failed state."""
        return self.state in FAILED_STATES

    @property
    def ready(self) -> bool:
        """True when the image is usable."""
        return self.state == "NORMAL"

    @property
    def made(self) -> bool:
        """True when the image is made: NORMAL, or NORMAL before and now being copied (SYNCING)."""
        return self.state in MADE_STATES

    @property
    def gone(self) -> bool:
        """True when the image is offline, isolated or being destroyed: it will not become NORMAL."""
        return self.state in GONE_STATES


@record
class Instance:
    """A Lighthouse instance as far as the function cares."""

    id: str
    name: str
    state: str
    region: str
    tags: Mapping[str, str] = field(default_factory=dict)
    operation_state: str | None = None
    # The last operation on the instance (e.g. ResetInstance) and when it started; the image it runs.
    operation: str | None = None
    operation_started: datetime | None = None
    operation_request_id: str | None = None
    blueprint_id: str | None = None


class RegionInfo(NamedTuple):
    """A region as DescribeRegions tells it."""

    region: str
    mainland: bool
    available: bool


# Small value types are NamedTuples: a frozen dataclass costs a cold start ten times as much to define.
class Created(NamedTuple):
    """What CreateBlueprint answered."""

    blueprint_id: str
    request_id: str


class Lighthouse(Protocol):
    """The port the use case talks to (the SDK service here, a fake in unit tests)."""

    def create_blueprint(self, region: str, *, name: str, instance_id: str, description: str | None,
                         force_power_off: bool, tags: Mapping[str, str], deadline: Deadline) -> Created:
        """Start making an image of an instance."""
        ...

    def find_images(self, region: str, *, deadline: Deadline, tags: Mapping[str, str] | None = None,
                    tag_key: str | None = None, ids: Sequence[str] | None = None,
                    names: Sequence[str] | None = None, at_least: int = 0,
                    tag_values: Sequence[str] | None = None) -> list[Image]:
        """Custom images matching all the given tags / tag key (or ids, or one of the names), every page;
        with `tag_values`, only those whose `tag_key` tag has one of these values.

        `at_least` is how many the caller knows exist: their pages are asked for at once.
        """
        ...

    def delete_images(self, region: str, ids: Sequence[str], *, deadline: Deadline) -> str:
        """Delete custom images; returns the request id."""
        ...

    def find_instances(self, region: str, *, deadline: Deadline, ids: Sequence[str] | None = None,
                       tags: Mapping[str, str] | None = None) -> list[Instance]:
        """Instances by id or by tags, every page."""
        ...

    def image_quota(self, region: str, *, deadline: Deadline) -> tuple[int, int]:
        """The region's custom image quota as (total, available)."""
        ...

    def start_instances(self, region: str, ids: Sequence[str], *, deadline: Deadline) -> str:
        """Start stopped instances; returns the request id."""
        ...

    def regions(self, region: str, *, deadline: Deadline) -> list[str]:
        """Every region Lighthouse offers to the account (asked in `region`)."""
        ...


class Replication(Protocol):
    """What copies, shares and restores need beyond making images (the SDK service here)."""

    def region_infos(self, region: str, *, deadline: Deadline) -> dict[str, RegionInfo]:
        """Every region with whether it is in mainland China (asked in `region`)."""
        ...

    def sync_blueprint(self, region: str, blueprint_id: str, destinations: Sequence[str], *,
                       deadline: Deadline) -> tuple[dict[str, str], str]:
        """Copy a NORMAL image to other regions: (destination region -> the copy's id, request id)."""
        ...

    def shared_with(self, region: str, blueprint_ids: Sequence[str], *, deadline: Deadline) -> dict[str, set[str]]:
        """Which accounts each image is shared with."""
        ...

    def share(self, region: str, blueprint_id: str, accounts: Sequence[str], *, deadline: Deadline) -> str:
        """Share a NORMAL image with other accounts; returns the request id."""
        ...

    def unshare(self, region: str, blueprint_id: str, accounts: Sequence[str], *, deadline: Deadline) -> str:
        """Stop sharing an image with accounts; returns the request id."""
        ...

    def reset_instance(self, region: str, instance_id: str, blueprint_id: str, *, deadline: Deadline) -> str:
        """Reinstall an instance's system disk from an image (asynchronous); returns the request id."""
        ...

    def find_instances(self, region: str, *, deadline: Deadline, ids: Sequence[str] | None = None,
                       tags: Mapping[str, str] | None = None) -> list[Instance]:
        """Instances by id or by tags, every page."""
        ...

    def find_images(self, region: str, *, deadline: Deadline, tags: Mapping[str, str] | None = None,
                    tag_key: str | None = None, ids: Sequence[str] | None = None,
                    names: Sequence[str] | None = None, at_least: int = 0,
                    tag_values: Sequence[str] | None = None) -> list[Image]:
        """Custom images matching all the given tags / tag key (or ids, or one of the names), every page."""
        ...

    def delete_images(self, region: str, ids: Sequence[str], *, deadline: Deadline) -> str:
        """Delete custom images; returns the request id."""
        ...


def _filter(name: str, values: Sequence[str]) -> dict[str, Any]:
    return {"Name": name, "Values": list(dict.fromkeys(values))}


def _tag_filters(tags: Mapping[str, str], tag_key: str | None = None,
                 tag_values: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Tag lookups whose meaning does not depend on how the cloud parses `tag:<key>` when the key holds a
    colon (`tag:scf-blueprint:slot` is nowhere documented): `tag-key` and `tag-value`, each an exact match.
    Both filters together over-match (a key and a value from different tags); `_has_tags` checks the exact
    pairs on what comes back."""
    keys = [*tags, *([tag_key] if tag_key else [])]
    filters = [_filter("tag-key", keys)] if keys else []
    if tags or tag_values:
        filters.append(_filter("tag-value", [*tags.values(), *tag_values]))
    return filters


def _has_tags(found: Mapping[str, str], tags: Mapping[str, str], tag_key: str | None) -> bool:
    return all(found.get(k) == v for k, v in tags.items()) and (tag_key is None or tag_key in found)


class LighthouseService(DiskCalls):
    """Lighthouse over the real SDK: the calls, paced and with errors translated (data disks: `DiskCalls`)."""

    def __init__(self, clients: ClientCache, *, create_rate: float = 20.0, describe_rate: float = 10.0) -> None:
        self._clients = clients
        self._limits = {
            "CreateBlueprint": RateLimiter(create_rate),
            "DescribeBlueprints": RateLimiter(describe_rate),
            "DeleteBlueprints": RateLimiter(20.0),
            "DescribeInstances": RateLimiter(100.0),
            "DescribeGeneralResourceQuotas": RateLimiter(10.0),
            "DescribeRegions": RateLimiter(10.0),
            # Not documented; kept low since a start is only ever needed after an image.
            "StartInstances": RateLimiter(10.0),
            # Each action's page (cloud.tencent.com/document/api/1207/...): 20/s; ResetInstance 10/s.
            "SyncBlueprint": RateLimiter(20.0),
            "ShareBlueprintAcrossAccounts": RateLimiter(20.0),
            "CancelShareBlueprintAcrossAccounts": RateLimiter(20.0),
            "DescribeBlueprintsShareAcrossAccountInfos": RateLimiter(20.0),
            "ResetInstance": RateLimiter(10.0),
            # Data disks (blueprint/disks.py): the backup actions' pages say 20/s; DescribeDisks, StopInstances
            # and InquirePriceCreateBlueprint state none here, so they are kept low.
            "DescribeDisks": RateLimiter(10.0),
            "CreateDiskBackup": RateLimiter(20.0),
            "DescribeDiskBackups": RateLimiter(20.0),
            "DeleteDiskBackups": RateLimiter(20.0),
            "ApplyDiskBackup": RateLimiter(20.0),
            "StopInstances": RateLimiter(10.0),
            "InquirePriceCreateBlueprint": RateLimiter(20.0),
        }
        for action, limiter in self._limits.items():
            limiter.name = action

    def _call(self, action: str, region: str, params: Mapping[str, Any], deadline: Deadline) -> dict[str, Any]:
        """One call: paced, sent, its answer's `Response` object.

        Raises:
            BlueprintError: the cloud's error, translated; `Throttled` also fills the action's window.
        """
        limiter = self._limits[action]
        if deadline.pace is not None:  # a fan-out child: its share of the account's rate first
            deadline.pace.acquire(action, limiter.rate, deadline)
        limiter.acquire(deadline)
        client = self._clients.get("lighthouse", region, _client)
        try:
            return call_json(client, action, params)
        except TencentCloudSDKException as err:
            error = translate(err, action=action)
            if isinstance(error, Throttled):
                limiter.saturate()
            raise error from err

    def create_blueprint(self, region: str, *, name: str, instance_id: str, description: str | None,
                         force_power_off: bool, tags: Mapping[str, str], deadline: Deadline) -> Created:
        """CreateBlueprint: returns the new image's id at once; the image is made asynchronously."""
        params: dict[str, Any] = {"BlueprintName": name, "InstanceId": instance_id, "ForcePowerOff": force_power_off,
                                  "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        if description is not None:
            params["Description"] = description
        resp = self._call("CreateBlueprint", region, params, deadline)
        blueprint_id = resp.get("BlueprintId")
        if not isinstance(blueprint_id, str) or not blueprint_id:
            # The cloud accepted the call but its answer names no image: a retry looks for it by its slot first.
            raise malformed("CreateBlueprint: the answer names no image (no BlueprintId)", resp)
        return Created(blueprint_id=blueprint_id, request_id=request_id(resp))

    def find_images(self, region: str, *, deadline: Deadline, tags: Mapping[str, str] | None = None,
                    tag_key: str | None = None, ids: Sequence[str] | None = None,
                    names: Sequence[str] | None = None, at_least: int = 0,
                    tag_values: Sequence[str] | None = None) -> list[Image]:
        """DescribeBlueprints over every page, custom images only; with `tag_key` and `tag_values`, only images
        whose `tag_key` tag has one of the values (the values go out in parts: a filter takes at most 100)."""
        wanted = list(dict.fromkeys(tag_values or []))
        room = FILTER_VALUES - len(tags or {})
        parts = [wanted[i:i + room] for i in range(0, len(wanted), room)] if tag_key and wanted else [[]]
        found: list[Image] = []
        for part in parts:
            filters = [*_tag_filters(tags or {}, tag_key, part), _filter("blueprint-type", ["PRIVATE"])]
            if names:
                filters.append(_filter("blueprint-name", names))
            for page in self._pages("DescribeBlueprints", region, deadline, ids=ids, filters=filters,
                                    at_least=max(at_least // len(parts), len(part))):
                found.extend(_image(b, region, page.get("RequestId"))
                             for b in listed(page, "BlueprintSet", "BlueprintId")
                             if b.get("BlueprintType") in (None, "PRIVATE"))
        # Pages read while images are being made may overlap: one entry per id. Only exact tag matches.
        unique = {image.id: image for image in found}.values()
        values = set(wanted)
        return [image for image in unique if ids or (_has_tags(image.tags, tags or {}, tag_key)
                                                     and (not values or image.tags.get(str(tag_key)) in values))]

    def _pages(self, action: str, region: str, deadline: Deadline, *, ids: Sequence[str] | None,
               filters: list[dict[str, Any]], at_least: int = 0) -> Iterator[dict[str, Any]]:
        """Every page: the first tells the total, the rest are fetched side by side (the limiter paces them).

        When the caller knows at least `at_least` items exist, their pages go out together with the first.
        """
        def page(offset: int) -> dict[str, Any]:
            params: dict[str, Any] = {"Offset": offset, "Limit": PAGE}
            if ids:
                params["BlueprintIds" if action == "DescribeBlueprints" else "InstanceIds"] = list(ids)
            elif filters:
                params["Filters"] = filters
            return self._call(action, region, params, deadline)

        known = list(range(0, max(at_least, 1), PAGE))
        if len(known) > 1:
            from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 (a pool only for several at once; one instance needs none)
            with ThreadPoolExecutor(max_workers=min(4, len(known))) as pool:
                pages = list(pool.map(page, known))
        else:  # one page: no pool to build and shut down
            pages = [page(0)]
        yield from pages
        first = pages[0]
        items = first.get("BlueprintSet" if action == "DescribeBlueprints" else "InstanceSet")
        offsets = list(range(len(known) * PAGE, count(first.get("TotalCount")), PAGE)) if items else []
        if len(offsets) <= 1:
            yield from (page(offset) for offset in offsets)
            return
        from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 (a pool only for several at once; one instance needs none)
        with ThreadPoolExecutor(max_workers=min(4, len(offsets))) as pool:
            yield from pool.map(page, offsets)

    def delete_images(self, region: str, ids: Sequence[str], *, deadline: Deadline) -> str:
        """DeleteBlueprints."""
        return request_id(self._call("DeleteBlueprints", region, {"BlueprintIds": list(ids)}, deadline))

    def find_instances(self, region: str, *, deadline: Deadline, ids: Sequence[str] | None = None,
                       tags: Mapping[str, str] | None = None) -> list[Instance]:
        """DescribeInstances over every page, by ids (≤ 100 per call) or by tags."""
        found: list[Instance] = []
        id_list = list(ids or [])
        batches: list[list[str] | None] = [id_list[i:i + PAGE] for i in range(0, len(id_list), PAGE)] or [None]
        for batch in batches:
            for page in self._pages("DescribeInstances", region, deadline, ids=batch,
                                    filters=_tag_filters(tags or {})):
                found.extend(_instance(i, region) for i in listed(page, "InstanceSet", "InstanceId"))
        unique = {instance.id: instance for instance in found}.values()
        return [i for i in unique if ids or _has_tags(i.tags, tags or {}, None)]

    def start_instances(self, region: str, ids: Sequence[str], *, deadline: Deadline) -> str:
        """StartInstances (at most 100 per call)."""
        return request_id(self._call("StartInstances", region, {"InstanceIds": list(ids)[:PAGE]}, deadline))

    def image_quota(self, region: str, *, deadline: Deadline) -> tuple[int, int]:
        """DescribeGeneralResourceQuotas for BLUEPRINT."""
        resp = self._call("DescribeGeneralResourceQuotas", region, {"ResourceNames": ["BLUEPRINT"]}, deadline)
        for quota in listed(resp, "GeneralResourceQuotaSet"):
            if quota.get("ResourceName") == "BLUEPRINT":
                return count(quota.get("ResourceQuotaTotal")), count(quota.get("ResourceQuotaAvailable"))
        return 0, 0

    def regions(self, region: str, *, deadline: Deadline) -> list[str]:
        """DescribeRegions: the regions Lighthouse offers (asked in `region`)."""
        return [r.region for r in self.region_infos(region, deadline=deadline).values() if r.available]

    def region_infos(self, region: str, *, deadline: Deadline) -> dict[str, RegionInfo]:
        """DescribeRegions with `IsChinaMainland` (copies never cross between mainland China and elsewhere)."""
        resp = self._call("DescribeRegions", region, {}, deadline)
        return {r["Region"]: RegionInfo(r["Region"], bool(r.get("IsChinaMainland")),
                                        (r.get("RegionState") or "AVAILABLE") == "AVAILABLE")
                for r in listed(resp, "RegionSet", "Region")}

    def sync_blueprint(self, region: str, blueprint_id: str, destinations: Sequence[str], *,
                       deadline: Deadline) -> tuple[dict[str, str], str]:
        """SyncBlueprint: the copy's id per destination region (the copies are made asynchronously)."""
        resp = self._call("SyncBlueprint", region, {"BlueprintId": blueprint_id,
                                                    "DestinationRegions": list(destinations)}, deadline)
        copies = {str(d["Region"]): str(d["BlueprintId"])
                  for d in listed(resp, "DestinationRegionBlueprintSet", "Region") if d.get("BlueprintId")}
        if not set(destinations) <= set(copies):
            # Accepted, but the answer does not name every copy: reported failed now, adopted by the next run.
            raise malformed("SyncBlueprint: the answer does not name the copy in every region asked for", resp)
        return copies, request_id(resp)

    def shared_with(self, region: str, blueprint_ids: Sequence[str], *, deadline: Deadline) -> dict[str, set[str]]:
        """DescribeBlueprintsShareAcrossAccountInfos over every page."""
        shared: dict[str, set[str]] = {i: set() for i in blueprint_ids}
        offset, total = 0, 1
        while offset < total and blueprint_ids:
            resp = self._call("DescribeBlueprintsShareAcrossAccountInfos", region,
                              {"BlueprintIds": list(blueprint_ids), "Offset": offset, "Limit": PAGE}, deadline)
            rows = listed(resp, "BlueprintShareAcrossAccountInfoSet", "BlueprintId")
            for row in rows:
                shared.setdefault(str(row["BlueprintId"]), set()).add(str(row.get("AccountId")))
            offset, total = offset + PAGE, count(resp.get("TotalCount")) if rows else 0
        return shared

    def share(self, region: str, blueprint_id: str, accounts: Sequence[str], *, deadline: Deadline) -> str:
        """ShareBlueprintAcrossAccounts (at most 10 accounts)."""
        return request_id(self._call("ShareBlueprintAcrossAccounts", region,
                                      {"BlueprintId": blueprint_id, "AccountIds": list(accounts)}, deadline))

    def unshare(self, region: str, blueprint_id: str, accounts: Sequence[str], *, deadline: Deadline) -> str:
        """CancelShareBlueprintAcrossAccounts."""
        return request_id(self._call("CancelShareBlueprintAcrossAccounts", region,
                                      {"BlueprintId": blueprint_id, "AccountIds": list(accounts)}, deadline))

    def reset_instance(self, region: str, instance_id: str, blueprint_id: str, *, deadline: Deadline) -> str:
        """ResetInstance: reinstall the system disk from the image (formats it); asynchronous."""
        return request_id(self._call("ResetInstance", region, {"InstanceId": instance_id, "BlueprintId": blueprint_id},
                                      deadline))


def _client(credential: Any, region: str, profile: Any) -> CommonClient:
    """The SDK's client for Lighthouse calls by action name (what `LighthouseClient` is, without its models)."""
    return CommonClient("lighthouse", VERSION, credential, region, profile)


def _image(item: dict[str, Any], region: str, request_id: str | None) -> Image:
    return Image(id=str(item["BlueprintId"]), name=item.get("BlueprintName") or "",
                 state=item.get("BlueprintState") or "", region=region, created=time_of(item.get("CreatedTime")),
                 tags=tags_of(item.get("Tags")), request_id=request_id, source=item,
                 shared=bool(item.get("BlueprintShared")))


def _instance(item: dict[str, Any], region: str) -> Instance:
    return Instance(id=str(item["InstanceId"]), name=item.get("InstanceName") or "",
                    state=item.get("InstanceState") or "", region=region, tags=tags_of(item.get("Tags")),
                    operation_state=item.get("LatestOperationState"), operation=item.get("LatestOperation"),
                    operation_started=time_of(item.get("LatestOperationStartedTime")),
                    operation_request_id=item.get("LatestOperationRequestId"), blueprint_id=item.get("BlueprintId"))


def _present(value: Any) -> Any:
    """The API's JSON without its null fields (as the SDK's models leave them out)."""
    if isinstance(value, dict):
        return {k: _present(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_present(v) for v in value]
    return value
