"""Hostile tests: fuzzing, auth attacks, allowlists, SSRF and secret leaks.

Fuzz tests come in two sizes: a CI set (about 150 cases each) that always runs, and `@pytest.mark.longrun`
variants with thousands of cases, skipped unless asked for with `pytest -m longrun` or BLUEPRINT_LONGRUN=1.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from blueprint.lighthouse import Created, Image, Instance

HERE = Path(__file__).parent
CI_EXAMPLES = int(os.environ.get("BLUEPRINT_FUZZ_EXAMPLES", "150"))
LONG_EXAMPLES = int(os.environ.get("BLUEPRINT_FUZZ_LONG_EXAMPLES", "3000"))

# What must never reach a caller: a traceback, a Python exception's name, a source location.
LEAK = re.compile(r"Traceback|File \"|\b(?:Value|Type|Key|Attribute|Index|Runtime|Assertion|Recursion|Overflow|"
                  r"Unicode(?:En|De)code|JSONDecode|JSONEncode|Validation|ZeroDivision|Lookup|Name)Error\b|"
                  r"\bpydantic\b|\borjson\b|\bbinascii\b|Exception\b")


class FakeLighthouse:
    """The Lighthouse port in memory, for fuzzing the HTTP path fast (no real time spent on rate limits)."""

    def __init__(self, instances: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.instances = dict(instances or {"lhins-web00001": {"env": "prod"}, "lhins-db000001": {}})
        self.images: list[Image] = []
        self.deleted: list[str] = []

    def create_blueprint(self, region: str, *, name: str, instance_id: str, description: str | None,
                         force_power_off: bool, tags: Mapping[str, str], deadline: Any) -> Created:
        from blueprint.errors import InstanceNotFound

        if instance_id not in self.instances:
            raise InstanceNotFound(f"CreateBlueprint: no instance {instance_id}",
                                   code="ResourceNotFound.InstanceIdNotFound")
        image_id = f"lhbp-{len(self.images):08d}"
        self.images.append(Image(id=image_id, name=name, state="CREATING", region=region,
                                 created=datetime.now(timezone.utc), tags=dict(tags)))
        return Created(blueprint_id=image_id, request_id="req-fake")

    def find_images(self, region: str, *, deadline: Any, tags: Mapping[str, str] | None = None,
                    tag_key: str | None = None, ids: Sequence[str] | None = None,
                    name: str | None = None, at_least: int = 0,
                    tag_values: Sequence[str] | None = None) -> list[Image]:
        found = [i for i in self.images if i.region == region]
        if ids:
            found = [i for i in found if i.id in ids]
        if tags:
            found = [i for i in found if all(i.tags.get(k) == v for k, v in tags.items())]
        if tag_key:
            found = [i for i in found if tag_key in i.tags and (not tag_values or i.tags[tag_key] in tag_values)]
        return found

    def delete_images(self, region: str, ids: Sequence[str], *, deadline: Any) -> str:
        self.deleted.extend(ids)
        self.images = [i for i in self.images if i.id not in ids]
        return "req-delete"

    def find_instances(self, region: str, *, deadline: Any, ids: Sequence[str] | None = None,
                       tags: Mapping[str, str] | None = None) -> list[Instance]:
        return [Instance(id=i, name=i, state="RUNNING", region=region, tags=dict(t))
                for i, t in self.instances.items() if (not ids or i in ids)
                and all(t.get(k) == v for k, v in (tags or {}).items())]

    def image_quota(self, region: str, *, deadline: Any) -> tuple[int, int]:
        return 20, 20 - len(self.images)

    def regions(self, region: str, *, deadline: Any) -> list[str]:
        return ["ap-guangzhou"]
