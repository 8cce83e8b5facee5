"""`python -m blueprint deploy`: read, check, plan, apply, and end with the Function URL and a curl line.

Exit status: 0 deployed (or nothing to change, or a dry run), 1 the cloud refused or a deployment failed,
2 serverless.yml, the token, the credentials or the plan were refused before anything changed, 3 the package
index could not be reached to build the zip. Every error is one line (plus a hint), never a traceback.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from blueprint.cloud import ClientCache
from blueprint.deploy.config import ConfigFileError, load_deployment
from blueprint.deploy.execute import DeployFailed, Executor
from blueprint.deploy.models import Deployment, Package
from blueprint.deploy.package import PackageError, load_package, make_package
from blueprint.deploy.plan import Plan, PlanError, make_plan
from blueprint.deploy.scf import ScfService, find_credentials
from blueprint.errors import BlueprintError, CloudUnavailable, ConfigError
from blueprint.logs import register_secrets
from blueprint.packaging import ROOT, NetworkUnavailable, PackagingError
from blueprint.settings import MIN_SECRET_CHARS, is_loopback_url

__all__ = ["Options", "deploy", "next_step"]

TOKEN_VARIABLE = "BLUEPRINT_HTTP_TOKEN"  # noqa: S105 (a variable's name, not a secret)
TOKEN_FIELD = f"inputs.environment.variables.{TOKEN_VARIABLE}"
# What to do next, by cloud error code (prefix match); the CAM case is built in `next_step`.
HINTS: tuple[tuple[str, str], ...] = (
    ("AuthFailure.SecretIdNotFound", "check TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY (or "
                                     "~/.tencentcloud/credentials): the key is unknown"),
    ("AuthFailure.SignatureFailure", "check TENCENTCLOUD_SECRET_KEY: the signature does not match the key id"),
    ("AuthFailure.SignatureExpire", "this machine's clock is off by more than 5 minutes"),
    ("RequestLimitExceeded", "the account's API rate limit was hit: run the command again"),
    ("FailedOperation.FunctionStatusError", "someone else is changing the function: run again once it is Active"),
    ("FailedOperation.UpdateFunctionConfiguration", "the function is not Active: run again once it is"),
    ("FailedOperation.CreateTrigger", "the function is not Active: run again once it is"),
    ("LimitExceeded.Function", "the namespace holds its 50 functions: delete one or use another namespace"),
    ("LimitExceeded.Trigger", "a function takes at most 10 triggers of a type"),
    ("ResourceNotFound.Namespace", "create the namespace (tccli scf CreateNamespace) or deploy to `default`"),
    ("ResourceNotFound.Role", "create the run role first (docs/deploy.md, Permissions)"),
    ("FailedOperation.QcsRoleNotFound", "create the run role first (docs/deploy.md, Permissions)"),
    ("InvalidParameterValue", "serverless.yml has a value SCF refuses (the message names it)"),
)


@dataclass(frozen=True)
class Options:
    """The command line."""

    config: Path = Path("serverless.yml")
    stage: str | None = None
    region: str | None = None
    dry_run: bool = False
    generate_token: bool = False
    package: Path | None = None


def deploy(options: Options, *, env: Mapping[str, str], home: Path, out: TextIO, err: TextIO) -> int:
    """Run the command; returns the exit status (see the module docstring)."""
    run = _Run(options, env, home, out)
    try:
        return run.deploy()
    except (ConfigFileError, PlanError, PackageError, PackagingError, BlueprintError, DeployFailed) as problem:
        lines, status = _describe(problem, run)
        for line in lines:
            err.write(line + "\n")
        return status


def _describe(problem: Exception, run: _Run) -> tuple[list[str], int]:
    """The error lines and the exit status for a problem."""
    if isinstance(problem, ConfigError):
        return [f"error: {problem.message}"], 2
    if isinstance(problem, BlueprintError):
        hint = next_step(problem, run.action, run.role)
        return [f"error: {problem.code}: {problem.message}", *([f"next: {hint}"] if hint else [])], 1
    if isinstance(problem, DeployFailed):
        return [f"error: {problem}",
                "next: fix the cause (the message is SCF's), then deploy again: the plan starts from the cloud"], 1
    if isinstance(problem, PackagingError):
        return [f"error: cannot build the package: {problem}"], 3 if isinstance(problem, NetworkUnavailable) else 2
    return [f"error: {problem}"], 2


def next_step(problem: BlueprintError, action: str, role: str) -> str:
    """What the user should do about a cloud error, "" when there is nothing specific to say."""
    code = problem.code
    if code.startswith(("UnauthorizedOperation", "AuthFailure.UnauthorizedOperation", "OperationDenied")):
        needed = f"scf:{action}" if action else "the SCF deploy actions"
        if role and action in ("CreateFunction", "UpdateFunctionConfiguration"):
            needed += f" (and cam:PassRole on the role {role})"
        return (f"the deploying user lacks the CAM permission {needed}: attach deploy/cam-deploy-policy.json to it "
                "(docs/deploy.md lists the actions)")
    for prefix, hint in HINTS:
        if code.startswith(prefix):
            return hint
    if isinstance(problem, CloudUnavailable):
        return "the cloud could not be reached or failed: run the command again (the plan starts from the cloud)"
    return ""


class _Run:
    """One run of the command (keeps what an error message needs)."""

    def __init__(self, options: Options, env: Mapping[str, str], home: Path, out: TextIO) -> None:
        self.options, self.env, self.home, self.out = options, env, home, out
        self.service: ScfService | None = None
        self.role = ""

    @property
    def action(self) -> str:
        """The API action of the latest cloud call."""
        return self.service.last_action if self.service else ""

    def say(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def deploy(self) -> int:
        opts = self.options
        deployment = load_deployment(opts.config, stage=opts.stage, region=opts.region, env=self.env, root=ROOT)
        deployment, generated = _with_token(deployment, generate=opts.generate_token, file=opts.config.name)
        self.role = deployment.function.role
        endpoint = _endpoint(self.env)
        clients = ClientCache(endpoint, timeout=60)
        credentials = find_credentials(self.env, self.home)
        # A cloud error message that quotes a secret is redacted before it is printed (blueprint.cloud.translate).
        register_secrets([credentials.secret_key, credentials.token,
                          *(deployment.function.environment.get(name) for name in deployment.secrets)])
        clients.use(credentials)
        self.service = ScfService(clients, deployment.region)
        with tempfile.TemporaryDirectory(prefix="blueprint-deploy-") as tmp:
            package = self._package(deployment, Path(tmp))
            plan = self._plan(deployment, package)
            if opts.dry_run:
                self._show_plan(plan)
                self.say("Dry run: nothing was changed.")
                return 0
            self._apply(plan, package)
        self._finish(deployment, generated)
        return 0

    def _package(self, deployment: Deployment, tmp: Path) -> Package:
        fn = deployment.function
        self.say(f"Deploying {fn.name} (stage {deployment.stage}) to {deployment.region}, namespace {fn.namespace}")
        if self.options.package is not None:
            package = load_package(self.options.package, fn.handler)
        else:
            self.say("Building the package (python -m blueprint package)...")
            package = make_package(tmp, fn.handler)
        self.say(f"Package: {package.files} files, {package.size / 1024 / 1024:.2f} MiB, "
                 f"sha256 {package.sha256[:12]}")
        return package

    def _plan(self, deployment: Deployment, package: Package) -> Plan:
        assert self.service is not None  # noqa: S101 (set by deploy())
        fn = deployment.function
        remote = self.service.get_function(fn.name, fn.namespace)
        triggers = self.service.list_triggers(fn.name, fn.namespace) if remote is not None else []
        plan = make_plan(deployment, package, remote, triggers)
        for note in plan.notes:
            self.say(f"Note: {note}")
        if not fn.role:
            self.say("Note: no role: SCF gives the function no credentials, so it cannot call Lighthouse")
        return plan

    def _show_plan(self, plan: Plan) -> None:
        if plan.empty:
            self.say(f"Plan: no changes ({plan.function} is up to date)")
            return
        self.say("Plan:")
        for number, message in enumerate(plan.messages(), 1):
            self.say(f"  {number}. {message}")

    def _apply(self, plan: Plan, package: Package) -> None:
        assert self.service is not None  # noqa: S101 (set by deploy())
        if plan.empty:
            self.say(f"No changes: {plan.function} is up to date.")
            return
        self.say("Applying:")
        Executor(self.service, package, self.say).run(plan)
        self.say(f"Deployed {plan.function}: {len(plan.instructions)} steps.")

    def _finish(self, deployment: Deployment, generated: str | None) -> None:
        """The token (when generated, once), then the Function URL and a curl line."""
        assert self.service is not None  # noqa: S101 (set by deploy())
        url_trigger = deployment.url
        if generated:
            self.say("HTTP token, generated now and stored nowhere else: keep it (the URL's password)")
            self.say(f"export {TOKEN_VARIABLE}='{generated}'")
        if url_trigger is None:
            self.say("No Function URL is declared (x-blueprint-deploy.functionUrl).")
            return
        fn = deployment.function
        listed = {t.name: t for t in self.service.list_triggers(fn.name, fn.namespace)}
        found = listed.get(url_trigger.name)
        url = found.url().rstrip("/") if found else ""
        self.say(f"Function URL: {url or '(SCF returned no address; see the console)'}")
        auth = (f' -H "Authorization: Bearer ${TOKEN_VARIABLE}"' if _token_mode(deployment)
                else "  # AuthType CAM: sign the request (TC3-HMAC-SHA256)" if url_trigger.auth_type == "CAM" else "")
        self.say(f"curl -s -X POST '{url}/blueprints'{auth} -H 'Content-Type: application/json' "
                 "-d '{\"InstanceId\": \"lhins-xxxxxxxx\", \"DryRun\": true}'")


def _token_mode(deployment: Deployment) -> bool:
    """True when the function checks a bearer token (BLUEPRINT_HTTP_AUTH unset or `token`)."""
    return deployment.function.environment.get("BLUEPRINT_HTTP_AUTH", "token").strip().lower() == "token"


def _with_token(deployment: Deployment, *, generate: bool, file: str) -> tuple[Deployment, str | None]:
    """The deployment with the HTTP token it needs; the token when it was generated here.

    Raises:
        ConfigFileError: a Function URL answers with token auth and no token is set (nothing was called yet),
            the token is too weak for the function, or the URL would be open to anyone.
    """
    fn = deployment.function
    url = deployment.url
    mode = fn.environment.get("BLUEPRINT_HTTP_AUTH", "token").strip().lower()
    if url is not None and url.auth_type == "NONE" and mode == "none":
        raise ConfigFileError(f"{file}: inputs.environment.variables.BLUEPRINT_HTTP_AUTH",
                              "`none` with a Function URL of AuthType NONE lets anyone make images: use token "
                              "(the default) or hmac, or set authType: CAM")
    generated = secrets.token_urlsafe(32) if generate else None
    token = generated or fn.environment.get(TOKEN_VARIABLE, "")
    if url is not None and mode == "token" and not token:
        raise ConfigFileError(f"{file}: {TOKEN_FIELD}", "the Function URL checks a bearer token and none is set: "
                              f"export {TOKEN_VARIABLE} in this shell, or pass --generate-token")
    if token and any(len(part.strip()) < MIN_SECRET_CHARS or " " in part.strip() for part in token.split(",")):
        raise ConfigFileError(f"{file}: {TOKEN_FIELD}",
                              f"each token needs at least {MIN_SECRET_CHARS} characters and no spaces")
    if not generated:
        return deployment, None
    environment = {**fn.environment, TOKEN_VARIABLE: generated}
    return replace(deployment, function=replace(fn, environment=environment),
                   secrets=deployment.secrets | {TOKEN_VARIABLE}), generated


def _endpoint(env: Mapping[str, str]) -> str | None:
    """BLUEPRINT_API_ENDPOINT, held to the function's rule: https, or http only on loopback.

    Raises:
        ConfigError: a plain-http endpoint off loopback without BLUEPRINT_ALLOW_INSECURE_API_ENDPOINT=true.
    """
    endpoint = env.get("BLUEPRINT_API_ENDPOINT") or None
    insecure = env.get("BLUEPRINT_ALLOW_INSECURE_API_ENDPOINT", "").strip().lower() in ("1", "true")
    if endpoint and not (endpoint.startswith("https://") or is_loopback_url(endpoint) or insecure):
        raise ConfigError("BLUEPRINT_API_ENDPOINT: https is required (http only on loopback, or with "
                          "BLUEPRINT_ALLOW_INSECURE_API_ENDPOINT=true)")
    return endpoint
