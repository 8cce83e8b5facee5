"""Plain models: what serverless.yml declares, the package, and what the cloud has."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MARK", "PACKAGE_VARIABLE", "Deployment", "FunctionSpec", "FunctionUrl", "Package", "RemoteFunction",
           "RemoteTrigger", "Timer", "Trigger"]

# The Description this tool puts on every trigger it creates: the record, kept in the cloud, of what it made.
# Triggers without it are never changed or removed. Letters and spaces only, whatever the field accepts.
MARK = "managed by blueprint deploy"
# The environment variable that tells GetFunction which package the function runs (see `Package.sha256`).
PACKAGE_VARIABLE = "BLUEPRINT_PACKAGE_SHA256"


@dataclass(frozen=True)
class Timer:
    """A timer trigger: a 7-field cron (seconds first) and the argument that arrives as the event's Message."""

    name: str
    cron: str
    argument: str
    enable: bool
    qualifier: str

    kind = "timer"

    def describe(self) -> str:
        """How the plan shows it."""
        return f"timer trigger {self.name} ({self.cron}, {'OPEN' if self.enable else 'CLOSE'})"


@dataclass(frozen=True)
class FunctionUrl:
    """The Function URL (an `http` trigger): who may call it and from where."""

    name: str
    qualifier: str
    auth_type: str  # NONE: the function checks the bearer token itself; CAM: the platform checks signatures
    extranet: bool
    intranet: bool

    kind = "http"

    def describe(self) -> str:
        """How the plan shows it."""
        reach = " and ".join(w for w, on in (("public", self.extranet), ("VPC", self.intranet)) if on)
        return f"Function URL {self.name} (AuthType {self.auth_type}, {reach})"

    def desc(self) -> str:
        """The `TriggerDesc` CreateTrigger takes."""
        return json.dumps({"AuthType": self.auth_type,
                           "NetConfig": {"EnableIntranet": self.intranet, "EnableExtranet": self.extranet}})


Trigger = Timer | FunctionUrl


@dataclass(frozen=True)
class FunctionSpec:
    """The function's configuration as declared (environment already resolved, package digest included)."""

    name: str
    namespace: str
    runtime: str
    handler: str
    description: str
    memory: int
    timeout: int
    init_timeout: int | None
    role: str
    environment: Mapping[str, str]

    def summary(self) -> str:
        """Runtime, memory and timeout, for the plan."""
        return f"{self.runtime}, {self.memory} MB, {self.timeout} s"


@dataclass(frozen=True)
class Deployment:
    """Everything serverless.yml declares, variables resolved."""

    region: str
    stage: str
    function: FunctionSpec
    timers: tuple[Timer, ...] = ()
    url: FunctionUrl | None = None
    # Environment variables whose values are secrets (never printed, never compared in messages).
    secrets: frozenset[str] = frozenset()

    @property
    def triggers(self) -> tuple[Trigger, ...]:
        """Timers first, then the Function URL."""
        return (*self.timers, *([self.url] if self.url else []))


@dataclass(frozen=True)
class Package:
    """The deployment zip and its digest.

    `sha256` covers every entry's name and, except for `.pyc` files, its content: `.pyc` files are compiled from
    the sources next to them, and their bytes differ between two builds of the same sources (marshal output
    depends on hash randomisation), so the zip file's own hash would see a change where there is none.
    """

    path: Path
    sha256: str
    size: int
    files: int


@dataclass(frozen=True)
class RemoteFunction:
    """The function as GetFunction shows it."""

    name: str
    namespace: str
    status: str
    reason: str
    runtime: str
    handler: str
    description: str
    memory: int
    timeout: int
    init_timeout: int | None
    role: str
    environment: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RemoteTrigger:
    """A trigger as ListTriggers shows it."""

    name: str
    type: str
    qualifier: str
    desc: str
    enable: bool
    custom_argument: str
    description: str

    @property
    def managed(self) -> bool:
        """True when this tool made it (its Description carries the mark)."""
        return self.description == MARK

    def cron(self) -> str:
        """A timer's cron expression (the API reads it back as `{"cron": ...}`; a bare string is taken too)."""
        parsed = _json(self.desc)
        return str(parsed.get("cron", "")).strip() if isinstance(parsed, dict) else self.desc.strip()

    def url_settings(self) -> tuple[str, bool, bool]:
        """A Function URL's (AuthType, extranet, intranet)."""
        parsed = _json(self.desc)
        desc = parsed if isinstance(parsed, dict) else {}
        net = desc.get("NetConfig") or {}
        return str(desc.get("AuthType", "")), bool(net.get("EnableExtranet")), bool(net.get("EnableIntranet"))

    def url(self) -> str:
        """A Function URL's address (public first), "" when the answer carries none."""
        parsed = _json(self.desc)
        net = (parsed.get("NetConfig") or {}) if isinstance(parsed, dict) else {}
        return str(net.get("ExtranetUrl") or net.get("IntranetUrl") or "")


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
