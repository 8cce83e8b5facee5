"""Settings: every environment variable the function reads, named once, typed, validated at start.

`load_settings(os.environ)` in production, a plain dict in tests. A bad value raises `ConfigError` whose
message names the variable. Secrets are `SecretStr`, so `repr(settings)` never shows them.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit

import urllib3.util
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from blueprint import logs
from blueprint.errors import ConfigError

__all__ = ["NextFunction", "Settings", "is_loopback_url", "load_settings", "mask_url", "split_list"]

INSTANCE_ID = re.compile(r"lhins-[a-z0-9]{8}\Z")
ACCOUNT_ID = re.compile(r"[1-9][0-9]{4,19}\Z")
COMMAND_ID = re.compile(r"cmd-[a-z0-9]{8}\Z")
MAX_COMMAND = 48 * 1024
MAX_SHARE_ACCOUNTS = 10
# Shortest bearer token / HMAC secret accepted: a guessable token is no authentication.
MIN_SECRET_CHARS = 8

HttpAuth = Literal["token", "hmac", "none"]
WebhookFormat = Literal["cloudevents", "wecom", "dingtalk", "feishu", "slack"]


def split_list(value: object) -> object:
    """Turn `"a, b,,c"` into `["a", "b", "c"]`; leave lists alone."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _on_off(value: object) -> object:
    """`on`/`off` (and the booleans' spellings) for switches like BLUEPRINT_RESTORE."""
    if isinstance(value, str) and value.strip().lower() in ("on", "off"):
        return value.strip().lower() == "on"
    return value


def _account_id(value: str | None) -> str | None:
    if value is not None and not ACCOUNT_ID.match(value):
        raise ValueError("expected an account id (digits)")
    return value


def _tag_pairs(value: object) -> object:
    """Parse `BLUEPRINT_ALLOWED_TAGS` (`k=v,k2=v2`) into pairs."""
    items = split_list(value)
    if not isinstance(items, list):
        return items
    pairs = []
    for index, item in enumerate(items):
        key, sep, val = str(item).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected key=value pairs separated by commas (item {index + 1} is not)")
        pairs.append((key.strip(), val.strip()))
    return pairs


def _instance_ids(ids: tuple[str, ...]) -> tuple[str, ...]:
    bad = [n + 1 for n, item in enumerate(ids) if not INSTANCE_ID.match(item)]
    if bad:
        raise ValueError(f"expected instance ids (lhins- and 8 of a-z0-9); item(s) {bad} are not")
    return ids


def _state_names(states: tuple[str, ...]) -> tuple[str, ...]:
    bad = [n + 1 for n, item in enumerate(states) if not re.fullmatch(r"[A-Z][A-Z_]{0,39}", item)]
    if bad:
        raise ValueError(f"expected upper-case state names (like CREATING); item(s) {bad} are not")
    return states


def _command_ids(ids: tuple[str, ...]) -> tuple[str, ...]:
    """TAT command ids, or `pre:post` pairs of them (a pair's pre-command runs only with its post-command)."""
    bad = [n + 1 for n, item in enumerate(ids) if not all(COMMAND_ID.match(part) for part in item.split(":"))
           or item.count(":") > 1]
    if bad:
        raise ValueError(f"expected TAT command ids (cmd- and 8 of a-z0-9), or pre:post pairs of them; item(s) {bad} "
                         "are not")
    pres = [item.split(":")[0] for item in ids if ":" in item]
    if len(set(pres)) != len(pres):
        raise ValueError("a pre-command is paired with two post-commands")
    return ids


def _command_text(text: SecretStr | None) -> SecretStr | None:
    # RunCommand takes at most 64 KiB of Base64 (48 KiB of text); a blank command would do nothing.
    value = "" if text is None else text.get_secret_value()
    if text is not None and (not value.strip() or len(value.encode()) > MAX_COMMAND):
        raise ValueError(f"expected shell text of 1 to {MAX_COMMAND} bytes, or a TAT command id (cmd-...)")
    return text


def _account_ids(ids: tuple[str, ...]) -> tuple[str, ...]:
    bad = [n + 1 for n, item in enumerate(ids) if not ACCOUNT_ID.match(item)]
    if bad:
        raise ValueError(f"expected account ids (digits); item(s) {bad} are not")
    if len(ids) > MAX_SHARE_ACCOUNTS:
        raise ValueError(f"at most {MAX_SHARE_ACCOUNTS} accounts")
    return ids


def _strong(secrets: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
    for n, secret in enumerate(secrets):
        value = secret.get_secret_value()
        if len(value) < MIN_SECRET_CHARS or not (value.isascii() and value.isprintable()) or " " in value:
            raise ValueError(f"item {n + 1} must be at least {MIN_SECRET_CHARS} printable ASCII characters "
                             "without spaces")
    return secrets


def _whsec_key(value: str) -> bytes | None:
    """The key of a Standard Webhooks secret (`whsec_` + base64, the prefix optional), or None."""
    try:
        key = base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return None
    return key or None


def _is_whsec(value: str) -> bool:
    """A Standard Webhooks secret as docs/delivery.md states it: the `whsec_` prefix, then base64."""
    return value.startswith("whsec_") and _whsec_key(value) is not None


def _http_secrets(secrets: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
    _strong(secrets)
    for n, secret in enumerate(secrets):
        value = secret.get_secret_value()
        if value.startswith("whsec_") and _whsec_key(value) is None:
            raise ValueError(f"item {n + 1} starts with whsec_ but the rest is not base64")
    return secrets


CommaList = Annotated[tuple[str, ...], BeforeValidator(split_list)]
InstanceList = Annotated[tuple[str, ...], BeforeValidator(split_list), AfterValidator(_instance_ids)]
SecretList = Annotated[tuple[SecretStr, ...], BeforeValidator(split_list)]
TokenList = Annotated[tuple[SecretStr, ...], BeforeValidator(split_list), AfterValidator(_strong)]
HmacSecretList = Annotated[tuple[SecretStr, ...], BeforeValidator(split_list), AfterValidator(_http_secrets)]
TagPairs = Annotated[tuple[tuple[str, str], ...], BeforeValidator(_tag_pairs)]
AccountList = Annotated[tuple[str, ...], BeforeValidator(split_list), AfterValidator(_account_ids)]


# SCF's names (CreateFunction's FunctionName: letters, digits, - and _, a letter first, not - or _ last,
# 2-60 characters). Namespaces: the API states no rule, the same one is assumed. Qualifiers: $LATEST,
# $DEFAULT, a version number, or an alias (CreateAlias's Name: letters, digits, _ and -, a letter first, 1-64).
FUNCTION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,58}[A-Za-z0-9]\Z")
QUALIFIER = re.compile(r"(\$LATEST|\$DEFAULT|[0-9]{1,10}|[A-Za-z][A-Za-z0-9_-]{0,63})\Z")


class NextFunction(BaseModel):
    """`BLUEPRINT_NEXT_FUNCTION` as `[namespace/]name[:qualifier]`."""

    model_config = ConfigDict(frozen=True)

    namespace: str = "default"
    name: str
    qualifier: str = "$LATEST"

    @classmethod
    def parse(cls, text: str) -> NextFunction:
        """Split the variable's text into its parts and check each against SCF's naming rules, so a name the
        platform can never invoke fails at start, not at the first delivery.

        Raises:
            ValueError: the text does not have the documented form (the message says which part).
        """
        rest, _, qualifier = text.strip().partition(":")
        namespace, slash, name = rest.rpartition("/")
        if not name or "/" in namespace or (slash and not namespace):
            raise ValueError("expected [namespace/]name[:qualifier]")
        if not FUNCTION_NAME.match(name):
            raise ValueError("the function name must be 2-60 letters, digits, - and _, starting with a letter "
                             "and not ending with - or _")
        if namespace and not FUNCTION_NAME.match(namespace):
            raise ValueError("the namespace must be 2-60 letters, digits, - and _, starting with a letter")
        if qualifier and not QUALIFIER.match(qualifier):
            raise ValueError("the qualifier must be $LATEST, $DEFAULT, a version number or an alias name")
        return cls(namespace=namespace or "default", name=name, qualifier=qualifier or "$LATEST")


def _next_function(value: object) -> object:
    return NextFunction.parse(value) if isinstance(value, str) else value


def is_loopback_url(url: str) -> bool:
    """True when the URL's host is a loopback address or `localhost` (tests, local runs)."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_http_url(url: str | None) -> str | None:
    """An absolute http(s) URL that every parser reads the same way.

    Backslashes, spaces and control characters are refused: `http://evil\\@localhost/` is `localhost` to
    urllib.parse (so it would pass as loopback) but `evil` to urllib3, which requests uses to connect.
    """
    if url is None:
        return None
    if not (url.isascii() and url.isprintable()) or any(ch in url for ch in " \\"):
        raise ValueError("expected an http(s) URL without spaces, backslashes or control characters")
    try:
        parts = urlsplit(url)
        connect_host = urllib3.util.parse_url(url).host
    except ValueError:
        raise ValueError("expected an http(s) URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http(s) URL")
    if (connect_host or "").strip("[]").lower() != parts.hostname.lower():
        raise ValueError("the URL's host is ambiguous")
    return url


def _check_endpoint(url: str | None) -> str | None:
    url = _check_http_url(url)
    if url is not None and (urlsplit(url).username is not None or urlsplit(url).path not in ("", "/")):
        raise ValueError("expected scheme://host[:port] only")
    return url


def mask_url(url: str | None) -> str | None:
    """The URL with only scheme, host and port: chat robot URLs carry their key in the path or query."""
    if url is None:
        return None
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/***"


class Settings(BaseModel):
    """The function's configuration (README.md, Configuration), immutable."""

    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)

    # Default region for jobs without one; SCF sets it to the function's region.
    region: str = Field("ap-guangzhou", validation_alias="TENCENTCLOUD_REGION", pattern=r"^[a-z]+(-[a-z0-9]+)+$")
    # Send every cloud API call (all services) to this endpoint instead of *.tencentcloudapi.com.
    api_endpoint: Annotated[str | None, AfterValidator(_check_endpoint)] = Field(
        None, validation_alias="BLUEPRINT_API_ENDPOINT"
    )
    # Plain http:// API endpoints (they would carry the session token in clear) only on loopback, unless set.
    allow_insecure_api_endpoint: bool = Field(False, validation_alias="BLUEPRINT_ALLOW_INSECURE_API_ENDPOINT")
    # Result sinks.
    webhook_url: Annotated[str | None, AfterValidator(_check_http_url)] = Field(
        None, validation_alias="BLUEPRINT_WEBHOOK_URL"
    )
    # Standard Webhooks secret (whsec_...), or the robot's signing secret for dingtalk / feishu.
    webhook_secret: SecretStr | None = Field(None, validation_alias="BLUEPRINT_WEBHOOK_SECRET")
    webhook_format: Annotated[WebhookFormat, BeforeValidator(_lower)] = Field(
        "cloudevents", validation_alias="BLUEPRINT_WEBHOOK_FORMAT")
    # Seconds per webhook attempt; the total budget is also capped by the function's time left.
    webhook_timeout: float = Field(5.0, gt=0, le=60, validation_alias="BLUEPRINT_WEBHOOK_TIMEOUT")
    # Plain http:// webhooks to non-loopback hosts are refused unless this is set on purpose.
    allow_insecure_webhook: bool = Field(False, validation_alias="BLUEPRINT_ALLOW_INSECURE_WEBHOOK")
    cmq_queue: str | None = Field(None, validation_alias="BLUEPRINT_CMQ_QUEUE", min_length=1, max_length=64)
    cmq_topic: str | None = Field(None, validation_alias="BLUEPRINT_CMQ_TOPIC", min_length=1, max_length=64)
    next_function: Annotated[NextFunction | None, BeforeValidator(_next_function)] = Field(
        None, validation_alias="BLUEPRINT_NEXT_FUNCTION"
    )
    # HTTP authentication: bearer tokens (several for rotation), or signed requests, or none on purpose.
    http_auth: Annotated[HttpAuth, BeforeValidator(_lower)] = Field("token", validation_alias="BLUEPRINT_HTTP_AUTH")
    http_tokens: TokenList = Field((), validation_alias="BLUEPRINT_HTTP_TOKEN")
    http_secrets: HmacSecretList = Field((), validation_alias="BLUEPRINT_HTTP_SECRET")
    # Authorization: which instances any trigger may image (checked against the instance's real tags).
    allowed_instances: InstanceList = Field((), validation_alias="BLUEPRINT_ALLOWED_INSTANCES")
    allowed_tags: TagPairs = Field((), validation_alias="BLUEPRINT_ALLOWED_TAGS")
    # Disaster recovery: accounts every image is shared with once NORMAL, and the only accounts a job may
    # name in ShareWith (unset: a job may name only the accounts of BLUEPRINT_SHARE_WITH).
    share_with: AccountList = Field((), validation_alias="BLUEPRINT_SHARE_WITH")
    allowed_share_accounts: AccountList = Field((), validation_alias="BLUEPRINT_ALLOWED_SHARE_ACCOUNTS")
    # Restores format an instance's system disk: off unless turned on, and then HTTP restores need their own
    # token (in hmac mode: their own signing secret), never the token that makes images.
    restore: Annotated[bool, BeforeValidator(_on_off)] = Field(False, validation_alias="BLUEPRINT_RESTORE")
    restore_tokens: TokenList = Field((), validation_alias="BLUEPRINT_RESTORE_TOKEN")
    # Consistent images (TAT): shell text (or a `cmd-` id) run as root before and after the image, the command ids
    # a job may name (`pre:post` pairs: that pre-command runs only with that post-command), and how long a command
    # may run. The text may hold credentials: it is a SecretStr, never
    # logged or echoed (it is not registered for redaction: a short command like `sync` would blank that word in
    # every log line).
    pre_command: Annotated[SecretStr | None, AfterValidator(_command_text)] = Field(
        None, validation_alias="BLUEPRINT_PRE_COMMAND")
    post_command: Annotated[SecretStr | None, AfterValidator(_command_text)] = Field(
        None, validation_alias="BLUEPRINT_POST_COMMAND")
    allowed_commands: Annotated[tuple[str, ...], BeforeValidator(split_list), AfterValidator(_command_ids)] = Field(
        (), validation_alias="BLUEPRINT_ALLOWED_COMMANDS")
    command_timeout: int = Field(60, ge=1, le=600, validation_alias="BLUEPRINT_COMMAND_TIMEOUT")
    # The data disks backed up with each image when a job does not say (DataDisks): all of them, or none.
    data_disks: Annotated[Literal["all", "none"], BeforeValidator(_lower)] = Field(
        "all", validation_alias="BLUEPRINT_DATA_DISKS")
    # The account id (UIN) that names resources for the Tag API; SCF's context carries it (tencentcloud_uin).
    account_id: Annotated[str | None, AfterValidator(_account_id)] = Field(
        None, validation_alias="BLUEPRINT_ACCOUNT_ID")
    # Defaults for job fields.
    force_power_off: bool = Field(True, validation_alias="BLUEPRINT_FORCE_POWER_OFF")
    keep: int | None = Field(None, ge=1, le=500, validation_alias="BLUEPRINT_KEEP")
    max_instances: int = Field(50, ge=1, le=10_000, validation_alias="BLUEPRINT_MAX_INSTANCES")
    job: str | None = Field(None, validation_alias="BLUEPRINT_JOB")
    # Cloud API pacing (per account, per second) and parallelism; the documented limits by default.
    create_rate: float = Field(20.0, gt=0, le=20, validation_alias="BLUEPRINT_CREATE_RATE")
    describe_rate: float = Field(10.0, gt=0, le=10, validation_alias="BLUEPRINT_DESCRIBE_RATE")
    concurrency: int = Field(8, ge=1, le=64, validation_alias="BLUEPRINT_CONCURRENCY")
    # Above this many instances a run fans out: async invocations of batches of up to 100 (blueprint/dispatch.py).
    dispatch_threshold: int = Field(100, ge=1, validation_alias="BLUEPRINT_DISPATCH_THRESHOLD")
    # A fan-out child or follow-up that starts later than this after it was sent makes no image (SCF keeps
    # async events for up to 6 hours by default; a later run of the schedule covers the instance).
    child_ttl: float = Field(21_600, gt=0, le=86_400, validation_alias="BLUEPRINT_CHILD_TTL")
    # The state an image shows while it is being made is not documented (the emulator says CREATING): Wait
    # follows images in these states until NORMAL (SYNCING is an image that was NORMAL and is being copied);
    # any other undocumented state ends the wait.
    in_progress_states: Annotated[tuple[str, ...], BeforeValidator(split_list), AfterValidator(_state_names)] = Field(
        ("CREATING",), validation_alias="BLUEPRINT_IN_PROGRESS_STATES")
    # Whether Lighthouse starts an instance again after a ForcePowerOff image is not documented: with Wait,
    # the function starts an instance that was running before and is stopped once its image is done.
    restart_instance: bool = Field(True, validation_alias="BLUEPRINT_RESTART_INSTANCE")
    # Seconds kept free before the function's time limit for delivering results.
    time_margin: float = Field(3.0, ge=0, le=60, validation_alias="BLUEPRINT_TIME_MARGIN")
    # Time limit assumed when the context does not say (local runs, some chained calls).
    default_time_limit: float = Field(60.0, gt=0, le=86_400, validation_alias="BLUEPRINT_DEFAULT_TIME_LIMIT")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", validation_alias="BLUEPRINT_LOG_LEVEL")

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        if self.webhook_url and not self._webhook_transport_ok():
            raise ValueError("BLUEPRINT_WEBHOOK_URL: https is required (http only on loopback, "
                             "or with BLUEPRINT_ALLOW_INSECURE_WEBHOOK=true)")
        if self.http_auth == "hmac" and not self.http_secrets:
            raise ValueError("BLUEPRINT_HTTP_SECRET: required when BLUEPRINT_HTTP_AUTH=hmac")
        if self.api_endpoint and not (self.api_endpoint.startswith("https://") or is_loopback_url(self.api_endpoint)
                                      or self.allow_insecure_api_endpoint):
            raise ValueError("BLUEPRINT_API_ENDPOINT: https is required (http only on loopback, "
                             "or with BLUEPRINT_ALLOW_INSECURE_API_ENDPOINT=true)")
        self._check_recovery()
        if self.webhook_secret and self.webhook_format == "cloudevents" \
                and not _is_whsec(self.webhook_secret.get_secret_value()):
            raise ValueError("BLUEPRINT_WEBHOOK_SECRET: expected a Standard Webhooks secret (whsec_ + base64)")
        return self

    def _check_recovery(self) -> None:
        outside = set(self.share_with) - set(self.allowed_share_accounts)
        if self.allowed_share_accounts and outside:
            raise ValueError("BLUEPRINT_SHARE_WITH: every account must also be in BLUEPRINT_ALLOWED_SHARE_ACCOUNTS")
        tokens = {t.get_secret_value() for t in (*self.http_tokens, *self.http_secrets)}
        if tokens & {t.get_secret_value() for t in self.restore_tokens}:
            raise ValueError("BLUEPRINT_RESTORE_TOKEN: must differ from BLUEPRINT_HTTP_TOKEN / BLUEPRINT_HTTP_SECRET "
                             "(a restore formats a disk: the token that makes images must not allow it)")

    def _webhook_transport_ok(self) -> bool:
        url = self.webhook_url or ""
        return url.startswith("https://") or is_loopback_url(url) or self.allow_insecure_webhook

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # SecretStr fields already show as '**********'; a chat robot's URL is a credential too.
        for name, value in super().__repr_args__():
            yield name, mask_url(value) if name == "webhook_url" else value

    def secret_values(self) -> list[str]:
        """Every configured value that must never be logged (registered with `logs.redact`)."""
        values = [s.get_secret_value() for s in (*self.http_tokens, *self.http_secrets, *self.restore_tokens)]
        if self.webhook_secret:
            secret = self.webhook_secret.get_secret_value()
            values += [secret, secret.removeprefix("whsec_")]
        if self.webhook_url:
            parts = urlsplit(self.webhook_url)
            values += [self.webhook_url, parts.query, parts.password or ""]
            # Robot keys: WeCom's `key=`, DingTalk's `access_token=`, any other query value, on their own too.
            values += [value for _, value in parse_qsl(parts.query, keep_blank_values=True) if len(value) >= 8]
            if len(parts.path) >= 16:  # Slack, Feishu: the path is the key
                values.append(parts.path)
                values += [segment for segment in parts.path.split("/") if len(segment) >= 16]
        return [v for v in values if v]


def load_settings(env: Mapping[str, str]) -> Settings:
    """Build Settings from environment variables; empty values count as unset.

    Raises:
        ConfigError: a variable has a bad value; the message names it (never its value).
    """
    values = {key: value for key, value in env.items() if value != ""}
    # Registered before validating, so even a message about a bad secret could not show it.
    for key in _SECRET_VARIABLES & values.keys():
        parts = split_list(values[key])
        logs.register_secrets([values[key], *(parts if isinstance(parts, list) else [])])
    try:
        settings = Settings.model_validate(values)
    except ValidationError as err:
        raise ConfigError(_describe(err)) from None
    logs.register_secrets(settings.secret_values())
    return settings


_SECRET_VARIABLES = frozenset({"BLUEPRINT_HTTP_TOKEN", "BLUEPRINT_HTTP_SECRET", "BLUEPRINT_WEBHOOK_SECRET",
                               "BLUEPRINT_RESTORE_TOKEN",
                               "BLUEPRINT_WEBHOOK_URL", "TENCENTCLOUD_SECRETKEY", "TENCENTCLOUD_SECRET_KEY",
                               "TENCENTCLOUD_SESSIONTOKEN"})


def _describe(err: ValidationError) -> str:
    problems = []
    for item in err.errors(include_input=False, include_url=False):
        name = ".".join(str(part) for part in item["loc"]) or ""
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{name}: {message}" if name else message)
    return "bad configuration: " + "; ".join(problems)
