"""The planner: what serverless.yml declares against what the cloud has, as a list of typed instructions.

Like Chalice's planner and sweeper (aws/chalice `chalice/deploy/planner.py`, `sweeper.py`): pure functions of
plain models, so tests assert on plans without a cloud. Each instruction carries the message the dry run and
the executor print. The function comes first (create, or update code, then configuration, each followed by a
wait until it is Active, as the API requires), then the triggers: removals (the sweeper: triggers this tool made
and that are no longer declared), changes, additions. A trigger this tool did not make is never touched; if it
is in the way of a declared one, the plan is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from blueprint.deploy.models import (
    PACKAGE_VARIABLE,
    Deployment,
    FunctionSpec,
    FunctionUrl,
    Package,
    RemoteFunction,
    RemoteTrigger,
    Timer,
    Trigger,
)

__all__ = ["CreateFunction", "CreateTrigger", "DeleteFunction", "DeleteTrigger", "Instruction", "Plan", "PlanError",
           "UpdateCode", "UpdateConfiguration", "UpdateTrigger", "WaitActive", "WaitGone", "make_plan", "sweep"]

# Statuses in which the function takes updates; others are waited out first.
UPDATABLE = ("Active", "UpdateFailed")
IN_PROGRESS = ("Creating", "Updating", "Publishing")


class PlanError(Exception):
    """The declared deployment cannot be applied to what the cloud has (the message says why and what to do)."""


@dataclass(frozen=True)
class CreateFunction:
    """CreateFunction with the package."""

    spec: FunctionSpec
    package: Package

    @property
    def message(self) -> str:
        """What the plan says."""
        return (f"create function {self.spec.name} ({self.spec.summary()}) from package "
                f"{self.package.sha256[:12]} ({_mib(self.package.size)})")


@dataclass(frozen=True)
class UpdateCode:
    """UpdateFunctionCode with the package (and the handler)."""

    spec: FunctionSpec
    package: Package
    previous: str

    @property
    def message(self) -> str:
        """What the plan says."""
        was = self.previous[:12] if self.previous else "a package this tool did not record"
        return f"update the code of {self.spec.name}: package {self.package.sha256[:12]} (was {was})"


@dataclass(frozen=True)
class UpdateConfiguration:
    """UpdateFunctionConfiguration with the whole declared configuration."""

    spec: FunctionSpec
    changes: tuple[str, ...]

    @property
    def message(self) -> str:
        """What the plan says."""
        return f"update the configuration of {self.spec.name}: {'; '.join(self.changes)}"


@dataclass(frozen=True)
class WaitActive:
    """Poll GetFunction until the function is Active (fail on CreateFailed / UpdateFailed)."""

    name: str
    namespace: str

    @property
    def message(self) -> str:
        """What the plan says."""
        return f"wait until {self.name} is Active"


@dataclass(frozen=True)
class DeleteFunction:
    """DeleteFunction of a function whose creation failed (SCF's advice: delete it and create it again)."""

    name: str
    namespace: str
    reason: str

    @property
    def message(self) -> str:
        """What the plan says."""
        return f"delete {self.name} (CreateFailed: {self.reason or 'no reason given'}) to create it again"


@dataclass(frozen=True)
class WaitGone:
    """Poll GetFunction until the function is gone."""

    name: str
    namespace: str

    @property
    def message(self) -> str:
        """What the plan says."""
        return f"wait until {self.name} is deleted"


@dataclass(frozen=True)
class CreateTrigger:
    """CreateTrigger, marked as this tool's."""

    function: str
    namespace: str
    trigger: Trigger

    @property
    def message(self) -> str:
        """What the plan says."""
        return f"add {self.trigger.describe()}"


@dataclass(frozen=True)
class UpdateTrigger:
    """UpdateTrigger in place."""

    function: str
    namespace: str
    trigger: Trigger
    changes: tuple[str, ...]

    @property
    def message(self) -> str:
        """What the plan says."""
        return f"change {self.trigger.describe()}: {'; '.join(self.changes)}"


@dataclass(frozen=True)
class DeleteTrigger:
    """DeleteTrigger of a trigger this tool made."""

    function: str
    namespace: str
    trigger: RemoteTrigger
    why: str = "no longer declared"

    @property
    def message(self) -> str:
        """What the plan says."""
        kind = "Function URL" if self.trigger.type == "http" else f"{self.trigger.type} trigger"
        return f"remove {kind} {self.trigger.name} (made by this tool, {self.why})"


Instruction = (CreateFunction | UpdateCode | UpdateConfiguration | WaitActive | DeleteFunction | WaitGone
               | CreateTrigger | UpdateTrigger | DeleteTrigger)


@dataclass(frozen=True)
class Plan:
    """The instructions in order, and notes about what is left alone."""

    function: str
    instructions: tuple[Instruction, ...]
    notes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """True when nothing needs to change."""
        return not self.instructions

    def messages(self) -> list[str]:
        """One line per instruction."""
        return [step.message for step in self.instructions]


def make_plan(deployment: Deployment, package: Package, remote: RemoteFunction | None,
              triggers: Sequence[RemoteTrigger]) -> Plan:
    """The plan that makes the cloud match `deployment`.

    Raises:
        PlanError: the cloud has something in the way that this tool must not change.
    """
    spec = with_package(deployment.function, package)
    steps = _function_steps(spec, package, remote)
    remote_triggers = [] if remote is None or remote.status == "CreateFailed" else list(triggers)
    trigger_steps, notes = _trigger_steps(spec, deployment.triggers, remote_triggers)
    return Plan(spec.name, tuple(steps + trigger_steps), tuple(notes))


def with_package(spec: FunctionSpec, package: Package) -> FunctionSpec:
    """The spec whose environment records the package's digest (read back by GetFunction next time)."""
    return replace(spec, environment={**spec.environment, PACKAGE_VARIABLE: package.sha256})


def _function_steps(spec: FunctionSpec, package: Package, remote: RemoteFunction | None) -> list[Instruction]:
    wait = WaitActive(spec.name, spec.namespace)
    if remote is None:
        return [CreateFunction(spec, package), wait]
    if remote.status == "CreateFailed":
        return [DeleteFunction(spec.name, spec.namespace, remote.reason), WaitGone(spec.name, spec.namespace),
                CreateFunction(spec, package), wait]
    if remote.status not in UPDATABLE + IN_PROGRESS:
        raise PlanError(f"{spec.name} is {remote.status}: wait until it is Active, then deploy again")
    if remote.runtime and remote.runtime != spec.runtime:
        raise PlanError(f"{spec.name} runs {remote.runtime}; SCF cannot change a function's runtime: delete it "
                        f"(tccli scf DeleteFunction --FunctionName {spec.name}) and deploy again")
    steps: list[Instruction] = [wait] if remote.status in IN_PROGRESS else []
    previous = remote.environment.get(PACKAGE_VARIABLE, "")
    if previous != package.sha256 or remote.handler != spec.handler:
        steps += [UpdateCode(spec, package, previous), wait]
    changes = _configuration_changes(spec, remote)
    if changes:
        steps += [UpdateConfiguration(spec, tuple(changes)), wait]
    return steps


def _configuration_changes(spec: FunctionSpec, remote: RemoteFunction) -> list[str]:
    """What differs, in words (environment variables by name only: their values may be secrets)."""
    changes = [f"{label} {old!r} -> {new!r}" if isinstance(new, str) else f"{label} {old} -> {new}"
               for label, old, new in (("Description", remote.description, spec.description),
                                       ("MemorySize", remote.memory, spec.memory),
                                       ("Timeout", remote.timeout, spec.timeout)) if old != new]
    if spec.init_timeout is not None and spec.init_timeout != remote.init_timeout:
        changes.append(f"InitTimeout {remote.init_timeout} -> {spec.init_timeout}")
    if spec.role and spec.role != remote.role:
        changes.append(f"Role {remote.role or '(none)'!r} -> {spec.role!r}")
    env = _environment_changes(remote.environment, spec.environment)
    if env:
        changes.append(f"environment: {', '.join(env)}")
    return changes


def _environment_changes(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    return ([f"{k} added" for k in sorted(set(new) - set(old))]
            + [f"{k} changed" for k in sorted(set(new) & set(old)) if new[k] != old[k]]
            + [f"{k} removed" for k in sorted(set(old) - set(new))])


def sweep(function: str, namespace: str, declared: Sequence[Trigger],
          remote: Sequence[RemoteTrigger]) -> list[DeleteTrigger]:
    """The sweeper: triggers this tool made (marked in the cloud) that are no longer declared."""
    names = {t.name for t in declared}
    return [DeleteTrigger(function, namespace, r) for r in remote if r.managed and r.name not in names]


def _trigger_steps(spec: FunctionSpec, declared: Sequence[Trigger],
                   remote: Sequence[RemoteTrigger]) -> tuple[list[Instruction], list[str]]:
    deletes: list[Instruction] = list(sweep(spec.name, spec.namespace, declared, remote))
    updates: list[Instruction] = []
    creates: list[Instruction] = []
    by_name = {r.name: r for r in remote}
    for trigger in declared:
        found = by_name.get(trigger.name)
        if found is None:
            _check_url_slot(trigger, remote)
            creates.append(CreateTrigger(spec.name, spec.namespace, trigger))
        elif not found.managed:
            raise PlanError(f"a {found.type} trigger named {found.name} already exists and this tool did not make "
                            "it (it never changes those): rename the declared trigger, or remove that one yourself")
        elif found.type != trigger.kind or found.qualifier != trigger.qualifier:
            deletes.append(DeleteTrigger(spec.name, spec.namespace, found, "declared with another type or qualifier"))
            creates.append(CreateTrigger(spec.name, spec.namespace, trigger))
        else:
            changes = _trigger_changes(trigger, found)
            if changes:
                updates.append(UpdateTrigger(spec.name, spec.namespace, trigger, tuple(changes)))
    notes = [f"left alone: {r.type} trigger {r.name} (not made by this tool)" for r in remote if not r.managed]
    return deletes + updates + creates, notes


def _check_url_slot(trigger: Trigger, remote: Sequence[RemoteTrigger]) -> None:
    """A qualifier has one Function URL; one this tool did not make is in the way of a declared one."""
    if not isinstance(trigger, FunctionUrl):
        return
    for other in remote:
        if other.type == "http" and other.qualifier == trigger.qualifier and not other.managed:
            raise PlanError(f"{trigger.qualifier} already has a Function URL ({other.name}) that this tool did not "
                            "make; SCF allows one per qualifier: remove it yourself or declare its name")


def _trigger_changes(trigger: Trigger, remote: RemoteTrigger) -> list[str]:
    if isinstance(trigger, Timer):
        pairs = [("cron", remote.cron(), trigger.cron), ("argument", remote.custom_argument, trigger.argument),
                 ("enable", remote.enable, trigger.enable)]
    else:
        auth, extranet, intranet = remote.url_settings()
        pairs = [("AuthType", auth, trigger.auth_type), ("extranet", extranet, trigger.extranet),
                 ("intranet", intranet, trigger.intranet)]
    return [f"{label} {old!r} -> {new!r}" for label, old, new in pairs if old != new]


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:.2f} MiB"
