"""deploy/cam-policy.json grants exactly the cloud API actions the function can call, and
deploy/cam-deploy-policy.json exactly those `python -m blueprint deploy` calls, both found by reading the code.

The scan follows how the code reaches the SDK (blueprint/*.py, sinks included):
- a client comes from `<cache>.get("<service>", region, <module>.<Name>Client)`; a variable bound to it is a
  client of that service, and `client.Action(req)` is a call of `Action`;
- a client may also come from a factory function of the module (`<cache>.get("lighthouse", region, _client)`,
  the SDK's `CommonClient`, which calls by action name): its actions are the service's generated client's;
- `getattr(client, action)` and `call_json(client, action, ...)` call whatever the string says: every string
  constant in that module that names a method of the client class counts (that covers
  `self._call("CreateBlueprint", ...)`, `_pages(...)` and the keys of `LighthouseService._limits`).
SDK action names map to CAM action names (SCF `Invoke` is `scf:InvokeFunction`).
"""

from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

import pytest

from blueprint.lighthouse import LighthouseService
from blueprint.packaging import dev_only
from blueprint.tat import TatService

ROOT = Path(__file__).resolve().parents[2]
CAM_NAMES = {("scf", "Invoke"): "scf:InvokeFunction"}
# The generated client whose methods name a service's actions, for clients the code makes by action name.
BY_NAME = {"lighthouse": ("tencentcloud.lighthouse.v20200324.lighthouse_client", "LighthouseClient")}


def _imported_modules(tree: ast.Module) -> dict[str, str]:
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name] = alias.name
    return names


def _client_factory(call: ast.Call, modules: dict[str, str]) -> tuple[str, type] | None:
    """`x.get("lighthouse", region, lighthouse_client.LighthouseClient)` -> ("lighthouse", the class)."""
    if not (isinstance(call.func, ast.Attribute) and call.func.attr == "get" and len(call.args) == 3):
        return None
    service, factory = call.args[0], call.args[2]
    if not (isinstance(service, ast.Constant) and isinstance(service.value, str)):
        return None
    if isinstance(factory, ast.Name) and service.value in BY_NAME:  # a CommonClient made by a function
        module, name = BY_NAME[service.value]
        return service.value, getattr(importlib.import_module(module), name)
    if not (isinstance(factory, ast.Attribute) and factory.attr.endswith("Client")
            and isinstance(factory.value, ast.Name) and factory.value.id in modules):
        return None
    return service.value, getattr(importlib.import_module(modules[factory.value.id]), factory.attr)


def sdk_actions(path: Path) -> set[tuple[str, str]]:
    """(service, SDK action) pairs one module can call."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules = _imported_modules(tree)
    clients: dict[str, tuple[str, type]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            found = _client_factory(node.value, modules)
            if found:
                clients.update({t.id: found for t in node.targets if isinstance(t, ast.Name)})
    actions: set[tuple[str, str]] = set()
    dynamic: set[tuple[str, type]] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in clients:
            service, cls = clients[func.value.id]
            if func.attr[:1].isupper():
                assert hasattr(cls, func.attr), f"{path.name}: {cls.__name__} has no {func.attr}"
                actions.add((service, func.attr))
        elif (isinstance(func, ast.Name) and func.id in ("getattr", "call_json") and node.args
              and isinstance(node.args[0], ast.Name) and node.args[0].id in clients):
            dynamic.add(clients[node.args[0].id])
    constants = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    for service, cls in dynamic:
        actions.update((service, s) for s in constants if s[:1].isupper() and callable(getattr(cls, s, None))
                       and s not in dir(object) and not s.startswith("_"))
    return actions


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def code_actions(*, deploy_tool: bool = False) -> set[str]:
    """CAM actions of the function's code, or (`deploy_tool`) of the local deploy command's code.

    The local tools (blueprint.deploy, ...) call the cloud as the deploying user, not as the run role.
    """
    found: set[tuple[str, str]] = set()
    for path in sorted((ROOT / "blueprint").rglob("*.py")):
        module = _module(path)
        in_deploy_tool = module == "blueprint.deploy" or module.startswith("blueprint.deploy.")
        if in_deploy_tool if deploy_tool else not dev_only(module):
            found |= sdk_actions(path)
    return {CAM_NAMES.get(pair, f"{pair[0]}:{pair[1]}") for pair in found}


def _load(name: str) -> dict[str, object]:
    data = json.loads((ROOT / "deploy" / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def policy() -> dict[str, object]:
    return _load("cam-policy.json")


def policy_actions(policy: dict[str, object]) -> set[str]:
    actions: set[str] = set()
    for statement in policy["statement"]:  # type: ignore[attr-defined]
        assert statement["effect"] == "allow"
        listed = statement["action"]
        actions.update([listed] if isinstance(listed, str) else listed)
    return actions


def test_the_scan_sees_every_kind_of_call() -> None:
    found = code_actions()
    # Direct calls (SCF, TDMQ) and calls by name (Lighthouse: call_json on a CommonClient) are both found.
    assert {"scf:InvokeFunction", "tdmq:SendCmqMsg", "tdmq:PublishCmqMsg", "lighthouse:CreateBlueprint"} <= found
    # Every rate-limited Lighthouse action is one the scan found.
    service = LighthouseService.__new__(LighthouseService)
    LighthouseService.__init__(service, clients=None)  # type: ignore[arg-type]
    assert {f"lighthouse:{a}" for a in service._limits} <= found
    # So is every rate-limited TAT action, although blueprint/tat.py imports its SDK client inside a method.
    tat = TatService(clients=None)  # type: ignore[arg-type]
    assert {f"tat:{a}" for a in tat._limits} <= found


def test_policy_grants_exactly_what_the_code_calls(policy: dict[str, object]) -> None:
    granted, needed = policy_actions(policy), code_actions()
    assert not needed - granted, f"missing from the policy: {sorted(needed - granted)}"
    assert not granted - needed, f"granted but never called: {sorted(granted - needed)}"


def test_policy_shape(policy: dict[str, object]) -> None:
    assert policy["version"] == "2.0"
    for statement in policy["statement"]:  # type: ignore[attr-defined]
        assert not any(a.endswith(":*") or a == "*" for a in statement["action"]), "no wildcard actions"
        resources = statement["resource"]
        assert resources == ["*"] or all(r.startswith("qcs::") and len(r.split(":")) == 6 for r in resources)
        if resources == ["*"]:
            # Only list/describe/read actions, which CAM does not scope to resources.
            assert all(a.split(":")[1].startswith(("Describe", "Get")) for a in statement["action"])


def test_the_deploying_users_policy_grants_exactly_what_the_deploy_command_calls() -> None:
    policy = _load("cam-deploy-policy.json")
    scanned = code_actions(deploy_tool=True)
    assert {"scf:GetFunction", "scf:CreateFunction", "scf:UpdateFunctionCode", "scf:CreateTrigger"} <= scanned
    # A function with a run role needs cam:PassRole on that role (the code never calls CAM itself).
    needed = scanned | {"cam:PassRole"}
    granted = policy_actions(policy)
    assert not needed - granted, f"missing from the policy: {sorted(needed - granted)}"
    assert not granted - needed, f"granted but never called: {sorted(granted - needed)}"
    assert not code_actions() & {a for a in scanned if a != "scf:InvokeFunction"}, "the run role needs none of them"
    for statement in policy["statement"]:  # type: ignore[attr-defined]
        assert statement["effect"] == "allow"
        assert all(r.startswith("qcs::") and len(r.split(":")) == 6 for r in statement["resource"])
    docs = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert all(f"`{action}`" in docs for action in needed), "docs/deploy.md lists the deploying user's actions"
