"""The thin service over the SCF API (2018-04-16) for deploying: only the calls the deploy needs, typed.

SDK errors are translated by the one table (`blueprint.cloud.ERROR_TABLE`). Reads are retried on the codes a
retry can fix; writes only on throttling (the cloud refused, nothing happened): a write whose answer was lost
is not sent again, the next run's plan starts from what the cloud then has.
"""

from __future__ import annotations

import base64
import configparser
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.scf.v20180416 import models, scf_client

from blueprint.cloud import ClientCache, Credentials, translate
from blueprint.deploy.models import (
    MARK,
    FunctionSpec,
    FunctionUrl,
    Package,
    RemoteFunction,
    RemoteTrigger,
    Timer,
    Trigger,
)
from blueprint.errors import ConfigError, NotFound, Throttled
from blueprint.retry import Clock, Deadline, RetryPolicy, SystemClock
from blueprint.settings import env_text, trimmed

__all__ = ["ScfService", "find_credentials"]

T = TypeVar("T")
PAGE = 100


def find_credentials(env: Mapping[str, str], home: Path) -> Credentials:
    """The deploying user's keys: the SDK's variables, SCF's spelling of them, then the SDK's profile file.

    Raises:
        ConfigError: none of them is set.
    """
    for id_name, key_name in (("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY"),
                              ("TENCENTCLOUD_SECRETID", "TENCENTCLOUD_SECRETKEY")):
        # Read as the function reads its own: without what is around a value; spaces only are no value.
        secret_id, secret_key = env_text(env, id_name), env_text(env, key_name)
        if secret_id and secret_key:
            return Credentials(secret_id, secret_key, env_text(env, "TENCENTCLOUD_SESSIONTOKEN") or None)
    profile = home / ".tencentcloud" / "credentials"
    if profile.is_file():  # the SDK's ProfileCredential: the [default] section
        parser = configparser.ConfigParser()
        parser.read(profile, encoding="utf-8")
        section = parser["default"] if parser.has_section("default") else {}
        secret_id, secret_key = trimmed(section.get("secret_id", "")), trimmed(section.get("secret_key", ""))
        if secret_id and secret_key:
            return Credentials(secret_id, secret_key, None)
    raise ConfigError("no Tencent Cloud credentials: set TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY, or "
                      f"put them in {profile} ([default] secret_id=..., secret_key=...)")


class ScfService:
    """The SCF calls of a deployment, in one region."""

    def __init__(self, clients: ClientCache, region: str, *, clock: Clock | None = None,
                 retry: RetryPolicy | None = None, budget: float = 120.0) -> None:
        self._clients = clients
        self._region = region
        self._clock = clock or SystemClock()
        self._retry = retry or RetryPolicy(attempts=5)
        self._budget = budget
        # The API action of the latest call (an error names what the deploying user may lack).
        self.last_action = ""

    # ---- reads --------------------------------------------------------------------------------------

    def get_function(self, name: str, namespace: str) -> RemoteFunction | None:
        """The function, or None when it does not exist.

        Raises:
            BlueprintError: the cloud refused (translated).
        """
        req = models.GetFunctionRequest()
        req.FunctionName, req.Namespace = name, namespace
        try:
            resp = self._call("GetFunction", req, read=True)
        except NotFound as err:
            if err.code.startswith("ResourceNotFound.Function"):
                return None
            raise
        env = {v.Key: v.Value for v in (resp.Environment.Variables or [])} if resp.Environment else {}
        reasons = resp.StatusReasons or []
        return RemoteFunction(
            name=resp.FunctionName or name, namespace=resp.Namespace or namespace, status=resp.Status or "",
            reason=(reasons[0].ErrorMessage if reasons else "") or resp.StatusDesc or "",
            runtime=resp.Runtime or "", handler=resp.Handler or "", description=resp.Description or "",
            memory=int(resp.MemorySize or 0), timeout=int(resp.Timeout or 0), init_timeout=resp.InitTimeout,
            role=resp.Role or "", environment=env)

    def list_triggers(self, name: str, namespace: str) -> list[RemoteTrigger]:
        """Every trigger of the function, all pages.

        Raises:
            BlueprintError: the cloud refused (translated).
        """
        found: list[RemoteTrigger] = []
        while True:
            req = models.ListTriggersRequest()
            req.FunctionName, req.Namespace, req.Offset, req.Limit = name, namespace, len(found), PAGE
            resp = self._call("ListTriggers", req, read=True)
            page = [_remote_trigger(t) for t in resp.Triggers or []]
            found.extend(page)
            if not page or len(found) >= int(resp.TotalCount or 0):
                return found

    # ---- writes ------------------------------------------------------------------------------------

    def create_function(self, spec: FunctionSpec, package: Package) -> None:
        """CreateFunction with the zip inline (base64).

        Raises:
            BlueprintError: the cloud refused (translated).
        """
        req = models.CreateFunctionRequest()
        params = {"FunctionName": spec.name, "Namespace": spec.namespace, "Runtime": spec.runtime,
                  "Handler": spec.handler, "Type": "Event", "CodeSource": "ZipFile",
                  "Code": {"ZipFile": _b64(package)}, **_configuration(spec)}
        req.from_json_string(json.dumps(params))
        self._call("CreateFunction", req, read=False)

    def update_code(self, spec: FunctionSpec, package: Package) -> None:
        """UpdateFunctionCode with the zip inline (base64) and the handler.

        Raises:
            BlueprintError: the cloud refused (translated).
        """
        req = models.UpdateFunctionCodeRequest()
        req.FunctionName, req.Namespace, req.Handler = spec.name, spec.namespace, spec.handler
        req.ZipFile = _b64(package)
        self._call("UpdateFunctionCode", req, read=False)

    def update_configuration(self, spec: FunctionSpec) -> None:
        """UpdateFunctionConfiguration with the whole declared configuration (the environment is replaced).

        Raises:
            BlueprintError: the cloud refused (translated).
        """
        req = models.UpdateFunctionConfigurationRequest()
        req.from_json_string(json.dumps({"FunctionName": spec.name, "Namespace": spec.namespace,
                                         **_configuration(spec)}))
        self._call("UpdateFunctionConfiguration", req, read=False)

    def delete_function(self, name: str, namespace: str) -> None:
        """DeleteFunction (every version).

        Raises:
            BlueprintError: the cloud refused (translated).
        """
        req = models.DeleteFunctionRequest()
        req.FunctionName, req.Namespace = name, namespace
        self._call("DeleteFunction", req, read=False)

    def create_trigger(self, function: str, namespace: str, trigger: Trigger) -> None:
        """CreateTrigger, marked as this tool's in its Description.

        Raises:
            BlueprintError: the cloud refused (translated).
        """
        req = models.CreateTriggerRequest()
        req.from_json_string(json.dumps({"FunctionName": function, "Namespace": namespace,
                                         **_trigger_params(trigger)}))
        self._call("CreateTrigger", req, read=False)

    def update_trigger(self, function: str, namespace: str, trigger: Trigger) -> None:
        """UpdateTrigger in place (a Function URL keeps its address).

        Raises:
            BlueprintError: the cloud refused (translated).
        """
        req = models.UpdateTriggerRequest()
        req.from_json_string(json.dumps({"FunctionName": function, "Namespace": namespace,
                                         **_trigger_params(trigger)}))
        self._call("UpdateTrigger", req, read=False)

    def delete_trigger(self, function: str, namespace: str, trigger: RemoteTrigger) -> None:
        """DeleteTrigger of a trigger as listed.

        Raises:
            BlueprintError: the cloud refused (translated).
        """
        req = models.DeleteTriggerRequest()
        req.FunctionName, req.Namespace, req.TriggerName = function, namespace, trigger.name
        req.Type, req.Qualifier = trigger.type, trigger.qualifier
        self._call("DeleteTrigger", req, read=False)

    # ---- plumbing ----------------------------------------------------------------------------------

    def _call(self, action: str, req: Any, *, read: bool) -> Any:
        self.last_action = action
        client = self._clients.get("scf", self._region, scf_client.ScfClient)

        def attempt() -> Any:
            try:
                return getattr(client, action)(req)
            except TencentCloudSDKException as err:
                translated = translate(err, action=action)
                if not read and translated.retryable and not isinstance(translated, Throttled):
                    translated.retryable = False  # a write that may have happened is not sent twice
                raise translated from err

        return self._retry.call(attempt, deadline=Deadline.after(self._clock, self._budget))


def _b64(package: Package) -> str:
    return base64.b64encode(package.path.read_bytes()).decode("ascii")


def _configuration(spec: FunctionSpec) -> dict[str, Any]:
    """The configuration parameters CreateFunction and UpdateFunctionConfiguration share."""
    params: dict[str, Any] = {"Description": spec.description, "MemorySize": spec.memory, "Timeout": spec.timeout,
                              "Environment": {"Variables": [{"Key": k, "Value": v}
                                                            for k, v in sorted(spec.environment.items())]}}
    if spec.role:
        params["Role"] = spec.role
    if spec.init_timeout is not None:
        params["InitTimeout"] = spec.init_timeout
    return params


def _trigger_params(trigger: Trigger) -> dict[str, Any]:
    base = {"TriggerName": trigger.name, "Type": trigger.kind, "Qualifier": trigger.qualifier,
            "Description": MARK}
    if isinstance(trigger, Timer):
        return {**base, "TriggerDesc": trigger.cron, "CustomArgument": trigger.argument,
                "Enable": "OPEN" if trigger.enable else "CLOSE"}
    url: FunctionUrl = trigger
    return {**base, "TriggerDesc": url.desc(), "Enable": "OPEN"}


def _remote_trigger(info: Any) -> RemoteTrigger:
    return RemoteTrigger(name=info.TriggerName or "", type=info.Type or "", qualifier=info.Qualifier or "$LATEST",
                         desc=info.TriggerDesc or "", enable=bool(info.Enable),
                         custom_argument=info.CustomArgument or "", description=info.Description or "")

