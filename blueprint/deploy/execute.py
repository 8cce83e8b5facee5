"""The executor: runs a plan's instructions in order through the SCF service, printing each as it goes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from blueprint.deploy.models import Package
from blueprint.deploy.plan import (
    CreateFunction,
    CreateTrigger,
    DeleteFunction,
    DeleteTrigger,
    Instruction,
    Plan,
    UpdateCode,
    UpdateConfiguration,
    UpdateTrigger,
    WaitActive,
    WaitGone,
)
from blueprint.deploy.scf import ScfService
from blueprint.retry import Clock, SystemClock

__all__ = ["DeployFailed", "Executor"]

# Polling GetFunction while SCF deploys: quick first looks, then every few seconds.
FIRST_POLL = 0.25
MAX_POLL = 5.0


class DeployFailed(Exception):
    """A step ended badly in the cloud (CreateFailed, UpdateFailed, or it took too long)."""


@dataclass
class Executor:
    """Runs instructions; `say` prints one line per instruction."""

    service: ScfService
    package: Package
    say: Callable[[str], None]
    clock: Clock | None = None
    wait_timeout: float = 600.0

    def run(self, plan: Plan) -> None:
        """Apply every instruction in order.

        Raises:
            BlueprintError: the cloud refused a call (translated; `service.last_action` names it).
            DeployFailed: the function ended in a failed state or did not settle in time.
        """
        for number, step in enumerate(plan.instructions, 1):
            self.say(f"  {number}. {step.message}")
            self._apply(step)

    def _apply(self, step: Instruction) -> None:
        svc = self.service
        if isinstance(step, CreateFunction):
            svc.create_function(step.spec, step.package)
        elif isinstance(step, UpdateCode):
            svc.update_code(step.spec, step.package)
        elif isinstance(step, UpdateConfiguration):
            svc.update_configuration(step.spec)
        elif isinstance(step, WaitActive):
            self._wait(step.name, step.namespace, gone=False)
        elif isinstance(step, DeleteFunction):
            svc.delete_function(step.name, step.namespace)
        elif isinstance(step, WaitGone):
            self._wait(step.name, step.namespace, gone=True)
        elif isinstance(step, CreateTrigger):
            svc.create_trigger(step.function, step.namespace, step.trigger)
        elif isinstance(step, UpdateTrigger):
            svc.update_trigger(step.function, step.namespace, step.trigger)
        elif isinstance(step, DeleteTrigger):
            svc.delete_trigger(step.function, step.namespace, step.trigger)

    def _wait(self, name: str, namespace: str, *, gone: bool) -> None:
        """Poll GetFunction until Active (or, with `gone`, until the function no longer exists).

        Raises:
            DeployFailed: CreateFailed / UpdateFailed, the function vanished, or the wait timed out.
        """
        clock = self.clock or SystemClock()
        started, pause = clock.monotonic(), FIRST_POLL
        while True:
            remote = self.service.get_function(name, namespace)
            if gone and remote is None:
                return
            if remote is None:
                raise DeployFailed(f"{name} disappeared while deploying")
            if remote.status in ("CreateFailed", "UpdateFailed"):
                raise DeployFailed(f"{name} is {remote.status}: {remote.reason or 'SCF gave no reason'}")
            if not gone and remote.status == "Active":
                return
            if clock.monotonic() - started > self.wait_timeout:
                raise DeployFailed(f"{name} is still {remote.status} after {self.wait_timeout:g} s")
            clock.sleep(pause)
            pause = min(MAX_POLL, pause * 2)
