"""Tag 2018-08-13, the slice that tags existing Lighthouse resources: TagResources, UnTagResources, GetResources.

Resources are named by the six-segment form `qcs::lighthouse:<region>:uin/<uin>:<prefix>/<id>` (CAM's
resource descriptions for Lighthouse: instance, blueprint, disk, disk-backup). The tags are the very tags the
Lighthouse API shows in `Tags` and filters on (`tag-key`, `tag-value`, `tag:<key>`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from emulator.errors import ApiError
from emulator.lh_core import MAX_TAGS_PER_RESOURCE
from emulator.schema import Schema
from emulator.service import Ctx
from emulator.state import World

MAX_RESOURCES = 10  # ResourceList.N: "N取值范围：0~9"
MAX_REQUEST_TAGS = 10  # Tags.N / TagKeys.N: "N取值范围：0~9"
MAX_KEY, MAX_VALUE = 127, 255
DEFAULT_RESULTS, MAX_RESULTS = 50, 200  # GetResources MaxResults: "最大200。缺省值：50"
# Tag naming rules (tencentcloud.com/document/product/651/13354): letters of any script, digits, inner spaces
# and these specials; keys starting with qcs:, project: or 项目 are reserved.
_SPECIALS = frozenset("+-=._:/@()[],;><") | frozenset("\u3010\u3011\uff08\uff09\uff1a\uff0b\uff0d\uff1d\uff0f\uff20")
_RESERVED = ("qcs:", "project:", "\u9879\u76ee")
_RESOURCE_RE = re.compile(
    r"^qcs::(?P<service>[a-z0-9_-]+):(?P<region>[a-z0-9-]*):uin/(?P<uin>\d+):(?P<prefix>[a-z-]+)/(?P<id>[^/\s]+)$"
)

SCHEMAS: dict[str, Schema] = {
    "TagResources": {"ResourceList": ("str[]", True), "Tags": ("tagkv[]", True)},
    "UnTagResources": {"ResourceList": ("str[]", True), "TagKeys": ("str[]", True)},
    "GetResources": {
        "ResourceList": ("str[]", False),
        "TagFilters": ("tagfilter[]", False),
        "PaginationToken": ("str", False),
        "MaxResults": ("int", False),
    },
}

# (region, uin, prefix, id) -> the resource dict whose "Tags" list the tags live in, or None.
Finder = Callable[[str, str, str, str], dict[str, Any] | None]
# uin -> every taggable resource of that account as (six-segment name, resource dict).
Lister = Callable[[str], list[tuple[str, dict[str, Any]]]]


class Tag:
    """Tags of other services' resources, reached through the functions those services hand over."""

    name = "tag"
    version = "2018-08-13"
    regional = False  # "Region: 本接口不需要传递此参数"
    schemas = SCHEMAS

    def __init__(self, world: World, find: Finder, list_all: Lister) -> None:
        self._world = world
        self._find = find
        self._list_all = list_all
        self._handlers: dict[str, Callable[[dict[str, Any], Ctx], dict[str, Any]]] = {
            "TagResources": self._tag_resources,
            "UnTagResources": self._untag_resources,
            "GetResources": self._get_resources,
        }

    def reset(self, state: dict[str, Any]) -> None:
        """Nothing of its own: tags live on the resources."""

    def call(self, action: str, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        """Run a Tag action."""
        with self._world.lock:
            return self._handlers[action](params, ctx)

    # ---- actions -------------------------------------------------------------------------------------

    def _tag_resources(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        names = _check_resources(params["ResourceList"])
        pairs = [(tag["TagKey"], tag["TagValue"]) for tag in params["Tags"]]
        _check_tags(pairs)
        failed: list[dict[str, str]] = []
        for name, target in self._targets(names, ctx, failed):
            merged = {tag["Key"]: tag["Value"] for tag in target["Tags"]} | dict(pairs)
            if len(merged) > MAX_TAGS_PER_RESOURCE:
                failed.append(_failure(name, "LimitExceeded.ResourceAttachedTags", "Too many tags on the resource."))
                continue
            target["Tags"] = [{"Key": key, "Value": value} for key, value in merged.items()]
        return {"FailedResources": failed}

    def _untag_resources(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        names = _check_resources(params["ResourceList"])
        keys = params["TagKeys"]
        if not keys or len(keys) > MAX_REQUEST_TAGS:
            raise ApiError("LimitExceeded.TagNumPerRequest", f"1 to {MAX_REQUEST_TAGS} tag keys per request.")
        if len(set(keys)) != len(keys):
            raise ApiError("InvalidParameterValue.TagKeyDuplicate", "`TagKeys` holds duplicate keys.")
        failed: list[dict[str, str]] = []
        for _, target in self._targets(names, ctx, failed):
            target["Tags"] = [tag for tag in target["Tags"] if tag["Key"] not in keys]
        return {"FailedResources": failed}

    def _get_resources(self, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        if params.get("ResourceList"):
            names = _check_resources(params["ResourceList"])
            found = self._targets(names, ctx, [])
            return {"PaginationToken": "", "ResourceTagMappingList": [_mapping(n, t) for n, t in found]}
        limit = params.get("MaxResults", DEFAULT_RESULTS)
        if not 1 <= limit <= MAX_RESULTS:
            raise ApiError("InvalidParameter", f"`MaxResults` must be 1 to {MAX_RESULTS}.")
        token = params.get("PaginationToken") or "0"
        if not token.isdigit():
            raise ApiError("InvalidParameter.PaginationTokenInvalid", "The pagination token is invalid.")
        matching = [(n, t) for n, t in self._list_all(ctx.uin) if _matches(t, params.get("TagFilters") or [])]
        start = int(token)
        shown = matching[start : start + limit]
        following = str(start + limit) if start + limit < len(matching) else ""
        return {"PaginationToken": following, "ResourceTagMappingList": [_mapping(n, t) for n, t in shown]}

    def _targets(
        self, names: Sequence[str], ctx: Ctx, failed: list[dict[str, str]]
    ) -> list[tuple[str, dict[str, Any]]]:
        """The caller's resources among `names`; the others are added to `failed`."""
        found = []
        for name in names:
            match = _RESOURCE_RE.match(name)
            if match is None:  # _check_resources refused these already
                continue
            if match["uin"] != ctx.uin:
                failed.append(_failure(name, "AuthFailure.UnauthorizedOperation", "Not a resource of this account."))
                continue
            target = self._find(match["region"], match["uin"], match["prefix"], match["id"])
            if target is None:
                failed.append(_failure(name, "ResourceNotFound", "The resource does not exist."))
                continue
            found.append((name, target))
        return found


def _check_resources(names: Sequence[str]) -> list[str]:
    if not names or len(names) > MAX_RESOURCES:
        raise ApiError("LimitExceeded.ResourceNumPerRequest", f"1 to {MAX_RESOURCES} resources per request.")
    for name in names:
        match = _RESOURCE_RE.match(name)
        if match is None:
            raise ApiError("InvalidParameterValue.ResourceDescriptionError", f"`{name}` is not a six-segment name.")
        if match["service"] != "lighthouse":
            raise ApiError("InvalidParameter.UnsupportedService", f"The emulator tags only lighthouse, not `{name}`.")
    return list(names)


def _check_tags(pairs: Sequence[tuple[str, str]]) -> None:
    if not pairs or len(pairs) > MAX_REQUEST_TAGS:
        raise ApiError("LimitExceeded.TagNumPerRequest", f"1 to {MAX_REQUEST_TAGS} tags per request.")
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ApiError("InvalidParameterValue.TagKeyDuplicate", "`Tags` holds duplicate keys.")
    for key, value in pairs:
        _check_text(key, "Key", MAX_KEY)
        if key.lower().startswith(_RESERVED):
            raise ApiError("InvalidParameter.ReservedTagKey", f"The tag key `{key}` is reserved.")
        _check_text(value, "Value", MAX_VALUE)


def _check_text(text: str, part: str, limit: int) -> None:
    if not text:
        raise ApiError(f"InvalidParameterValue.Tag{part}Empty", f"A tag {part.lower()} cannot be empty.")
    if len(text) > limit:
        raise ApiError(f"InvalidParameterValue.Tag{part}LengthExceeded", f"`{text[:20]}...` exceeds {limit}.")
    legal = all(ch == " " or ch.isalnum() or ch in _SPECIALS for ch in text)
    if not legal or text != text.strip(" "):
        raise ApiError(f"InvalidParameterValue.Tag{part}CharacterIllegal", f"`{text}` holds illegal characters.")


def _matches(target: Mapping[str, Any], filters: Sequence[Mapping[str, Any]]) -> bool:
    """AND across filters; a filter without values matches any value of its key."""
    tags = {tag["Key"]: tag["Value"] for tag in target["Tags"]}
    for item in filters:
        if item["TagKey"] not in tags:
            return False
        values = item.get("TagValue")
        if values and tags[item["TagKey"]] not in values:
            return False
    return True


def _mapping(name: str, target: Mapping[str, Any]) -> dict[str, Any]:
    return {"Resource": name, "Tags": [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in target["Tags"]]}


def _failure(name: str, code: str, message: str) -> dict[str, str]:
    return {"Resource": name, "Code": code, "Message": message}
