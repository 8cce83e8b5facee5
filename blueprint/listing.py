"""`GET /blueprints?InstanceId=...`: the managed images of one instance, with their copies and shares.

Scoped like every read: the caller (`blueprint.app`) admits the instance first. The images at home are the
ones carrying both managed tags of that instance; its copies in other regions are found account-wide in one
call of the Tag API (GetResources by the instance tag), then read in the regions that hold them; the accounts
each image is shared with come from DescribeBlueprintsShareAcrossAccountInfos; the data disks' points of each
image's slot from one DescribeDiskBackups by the instance tag.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from functools import partial
from typing import Any

from blueprint.copies import SOURCE_TAG, is_copy
from blueprint.disks import Disks, Point
from blueprint.images import INSTANCE_TAG, SLOT_TAG, is_managed
from blueprint.lighthouse import Image, Replication
from blueprint.retry import Deadline, RetryPolicy
from blueprint.tags import Tagger

__all__ = ["list_images"]

# CAM's six-segment name of a Lighthouse image: qcs::lighthouse:<region>:uin/<account>:blueprint/<id>.
_NAME = re.compile(r"qcs::lighthouse:(?P<region>[a-z0-9-]+):uin/\d+:blueprint/(?P<id>lhbp-[a-z0-9]{8})\Z")


def list_images(cloud: Replication, tagger: Tagger | None, *, region: str, instance_id: str, deadline: Deadline,
                retry: RetryPolicy, disks: Disks | None = None) -> list[dict[str, Any]]:
    """The instance's managed images in its region, newest first: state, when made, copies, shares, and the
    backup points of its data disks made in each image's slot.

    Raises:
        BlueprintError: a cloud call failed.
    """
    found = retry.call(partial(cloud.find_images, region, tags={INSTANCE_TAG: instance_id}, deadline=deadline),
                       deadline=deadline)
    images = sorted((i for i in found if is_managed(i, instance_id) and not i.tags.get(SOURCE_TAG)),
                    key=lambda i: (i.created.timestamp() if i.created else 0.0, i.id), reverse=True)
    copies = _copies(cloud, tagger, region, instance_id, deadline=deadline, retry=retry) if tagger is not None else {}
    shared_ids = [i.id for i in images if i.shared]
    shares = retry.call(partial(cloud.shared_with, region, shared_ids, deadline=deadline),
                        deadline=deadline) if shared_ids else {}
    points: dict[str, list[Point]] = defaultdict(list)
    if disks is not None:
        for point in retry.call(partial(disks.find_points, region, tags={INSTANCE_TAG: instance_id},
                                        deadline=deadline), deadline=deadline):
            if is_managed(point, instance_id):
                points[point.tags[SLOT_TAG]].append(point)
    return [_entry(i, copies.get(i.id, []), shares.get(i.id, set()), points.get(i.tags[SLOT_TAG], []))
            for i in images]


def _copies(cloud: Replication, tagger: Tagger, home: str, instance_id: str, *, deadline: Deadline,
            retry: RetryPolicy) -> dict[str, list[Image]]:
    """The copies of the instance's images in other regions, by source image."""
    names = retry.call(partial(tagger.find, {INSTANCE_TAG: instance_id}, deadline=deadline), deadline=deadline)
    by_region: dict[str, list[str]] = defaultdict(list)
    for name in names:
        match = _NAME.match(name)
        if match and match["region"] != home:
            by_region[match["region"]].append(match["id"])
    copies: dict[str, list[Image]] = defaultdict(list)
    for region, ids in by_region.items():
        for image in _read(cloud, region, ids, deadline, retry):
            if is_copy(image, instance_id):
                copies[image.tags[SOURCE_TAG]].append(image)
    return copies


def _read(cloud: Replication, region: str, ids: Sequence[str], deadline: Deadline, retry: RetryPolicy) -> list[Image]:
    found: list[Image] = []
    for start in range(0, len(ids), 100):
        found += retry.call(partial(cloud.find_images, region, ids=list(ids[start:start + 100]), deadline=deadline),
                            deadline=deadline)
    return found


def _entry(image: Image, copies: list[Image], shares: set[str], points: list[Point]) -> dict[str, Any]:
    return {
        "BlueprintId": image.id,
        "BlueprintName": image.name,
        "BlueprintState": image.state,
        "CreatedTime": image.created.strftime("%Y-%m-%dT%H:%M:%SZ") if image.created else None,
        "Copies": [{"Region": c.region, "BlueprintId": c.id, "BlueprintState": c.state}
                   for c in sorted(copies, key=lambda c: c.region)],
        "SharedWith": sorted(shares),
        "DiskBackups": [{"DiskId": p.disk_id, "DiskBackupId": p.id, "State": p.state}
                        for p in sorted(points, key=lambda p: p.disk_id)],
    }
