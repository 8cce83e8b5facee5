"""The thin service over the Tag API (2018-08-13): tags on resources that exist already.

Lighthouse takes tags only when it creates a resource (CreateBlueprint, CreateDiskBackup); an image copied by
SyncBlueprint arrives without tags, so the function tags the copy itself to mark it as managed. Resources are
named by CAM's six-segment form `qcs::lighthouse:<region>:uin/<account>:<kind>/<id>`
(https://cloud.tencent.com/document/product/598/69972). TagResources takes at most 10 resources and 10 tags a
call, 20 calls a second (https://cloud.tencent.com/document/product/651/72280). The only module that imports
`tencentcloud.tag`, and only inside a call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from blueprint.cloud import ClientCache, translate
from blueprint.errors import CloudRejected
from blueprint.retry import Deadline, RateLimiter

__all__ = ["MAX_PER_CALL", "TagService", "Tagger", "resource_name"]

MAX_PER_CALL = 10


def resource_name(region: str, account: str, kind: str, resource_id: str) -> str:
    """CAM's six-segment name of a Lighthouse resource (`kind`: instance, blueprint, disk, disk-backup)."""
    return f"qcs::lighthouse:{region}:uin/{account}:{kind}/{resource_id}"


class Tagger(Protocol):
    """The port: put tags on resources that exist, and find resources by tag across every region."""

    def tag(self, resources: Sequence[str], tags: Mapping[str, str], *, deadline: Deadline) -> str:
        """Tag every resource with every tag; returns the request id."""
        ...

    def find(self, tags: Mapping[str, str], *, deadline: Deadline) -> list[str]:
        """The six-segment names of every resource of the account carrying all these tags."""
        ...

    def untag(self, resources: Sequence[str], keys: Sequence[str], *, deadline: Deadline) -> str:
        """Remove these tag keys from every resource; returns the request id."""
        ...


class TagService:
    """TagResources over the real SDK, paced and with errors translated."""

    def __init__(self, clients: ClientCache, *, region: str, rate: float = 20.0) -> None:
        self._clients = clients
        self._region = region  # the Tag API needs no region; the client is built with the function's own
        self._limit = RateLimiter(rate, name="TagResources")

    def tag(self, resources: Sequence[str], tags: Mapping[str, str], *, deadline: Deadline) -> str:
        """TagResources, ten resources and ten tags a call.

        Raises:
            CloudRejected: a resource could not be tagged (FailedResources names it).
            BlueprintError: the call failed (translated).
        """
        request_id = ""
        pairs = list(tags.items())
        for start in range(0, len(resources), MAX_PER_CALL):
            for first in range(0, len(pairs), MAX_PER_CALL):
                request_id = self._tag_once(resources[start:start + MAX_PER_CALL], pairs[first:first + MAX_PER_CALL],
                                            deadline)
        return request_id

    def find(self, tags: Mapping[str, str], *, deadline: Deadline) -> list[str]:
        """GetResources over every page (200 a page), filtered by tag.

        Raises:
            BlueprintError: the call failed (translated).
        """
        from tencentcloud.tag.v20180813 import models, tag_client  # noqa: PLC0415

        names: list[str] = []
        token = ""
        while True:
            req = models.GetResourcesRequest()
            req.TagFilters = [_filter(models, key, value) for key, value in tags.items()]
            req.MaxResults, req.PaginationToken = 200, token or None
            self._limit.acquire(deadline)
            client = self._clients.get("tag", self._region, tag_client.TagClient)
            try:
                resp = client.GetResources(req)
            except TencentCloudSDKException as err:
                raise translate(err, action="GetResources") from err
            names += [m.Resource for m in resp.ResourceTagMappingList or [] if m.Resource]
            token = resp.PaginationToken or ""
            if not token:
                return names

    def untag(self, resources: Sequence[str], keys: Sequence[str], *, deadline: Deadline) -> str:
        """UnTagResources, ten resources and ten keys a call.

        Raises:
            CloudRejected: a resource could not be untagged (FailedResources names it).
            BlueprintError: the call failed (translated).
        """
        from tencentcloud.tag.v20180813 import models, tag_client  # noqa: PLC0415

        request_id = ""
        for start in range(0, len(resources), MAX_PER_CALL):
            for first in range(0, len(keys), MAX_PER_CALL):
                req = models.UnTagResourcesRequest()
                req.ResourceList = list(resources[start:start + MAX_PER_CALL])
                req.TagKeys = list(keys[first:first + MAX_PER_CALL])
                self._limit.acquire(deadline)
                client = self._clients.get("tag", self._region, tag_client.TagClient)
                try:
                    resp = client.UnTagResources(req)
                except TencentCloudSDKException as err:
                    raise translate(err, action="UnTagResources") from err
                _check_failed("UnTagResources", resp)
                request_id = str(resp.RequestId)
        return request_id

    def _tag_once(self, resources: Sequence[str], pairs: Sequence[tuple[str, str]], deadline: Deadline) -> str:
        from tencentcloud.tag.v20180813 import models, tag_client  # noqa: PLC0415 (only runs that tag pay for it)

        req = models.TagResourcesRequest()
        req.ResourceList = list(resources)
        req.Tags = [_tag(models, key, value) for key, value in pairs]
        self._limit.acquire(deadline)
        client = self._clients.get("tag", self._region, tag_client.TagClient)
        try:
            resp = client.TagResources(req)
        except TencentCloudSDKException as err:
            raise translate(err, action="TagResources") from err
        _check_failed("TagResources", resp)
        return str(resp.RequestId)


def _check_failed(action: str, resp: Any) -> None:
    failed = list(resp.FailedResources or [])
    if failed:
        raise CloudRejected(f"{action}: {failed[0].Resource}: {failed[0].Code} {failed[0].Message}"[:300],
                            code=str(failed[0].Code or "FailedOperation"), request_id=resp.RequestId)


def _filter(models: Any, key: str, value: str) -> Any:
    tag_filter = models.TagFilter()
    tag_filter.TagKey, tag_filter.TagValue = key, [value]
    return tag_filter


def _tag(models: Any, key: str, value: str) -> Any:
    tag = models.Tag()
    tag.TagKey, tag.TagValue = key, value
    return tag
