"""What a service module offers the server: a name, a version, schemas and a `call`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from emulator.schema import Schema
from emulator.state import DEFAULT_UIN


@dataclass(frozen=True)
class Ctx:
    """The request a handler serves: its action, region, RequestId and the caller's account (uin)."""

    action: str
    region: str
    request_id: str
    uin: str = DEFAULT_UIN


class Service(Protocol):
    """One emulated product (lighthouse, tdmq, scf)."""

    @property
    def name(self) -> str:
        """The service name of the credential scope."""
        ...

    @property
    def version(self) -> str:
        """The one API version served."""
        ...

    @property
    def regional(self) -> bool:
        """Whether requests must name a region (the Tag service's do not)."""
        ...

    @property
    def schemas(self) -> Mapping[str, Schema]:
        """Request schema per action; the keys are the known actions."""
        ...

    def call(self, action: str, params: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
        """Run `action`; return the Response fields (without RequestId)."""
        ...

    def reset(self, state: dict[str, Any]) -> None:
        """Forget everything and load `state`."""
        ...
