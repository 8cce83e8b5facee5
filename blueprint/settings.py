"""Settings: every environment variable the function reads, named once, typed, validated at start.

`load_settings(os.environ)` in production, a plain dict in tests. A bad value raises `ConfigError` whose
message names the variable. Secrets are `Secret`, so `repr(settings)` never shows them.

Each variable is a field of `Settings` whose metadata says its name and rules (`_var`). They are read by a
small reader that takes the plain spellings (digits, `true`/`false`, text that passes its rules) and builds
no model: defining a pydantic model of forty fields cost every cold start about 40 M instructions (some
17 ms). Any value the reader is not sure of, and every bad value, goes to the pydantic model of the same
fields, built from the same metadata only then (`_judge`): it decides, with its messages, exactly as when it
was the only reader (tests/unit/test_settings_reader.py holds the two to the same answers).
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import parse_qsl, urlsplit

import urllib3.util

from blueprint import logs
from blueprint.errors import ConfigError
from blueprint.records import record

if TYPE_CHECKING:
    from pydantic import BaseModel, GetCoreSchemaHandler
    from pydantic_core import CoreSchema

__all__ = ["NextFunction", "Secret", "Settings", "Variable", "env_text", "is_loopback_url", "load_settings",
           "mask_url", "split_list", "trimmed"]

# Patterns as text: `re` compiles one the first time a value needs it (a cold start sets few of these variables).
INSTANCE_ID = r"lhins-[a-z0-9]{8}\Z"
ACCOUNT_ID = r"[1-9][0-9]{4,19}\Z"
COMMAND_ID = r"cmd-[a-z0-9]{8}\Z"
MAX_COMMAND = 48 * 1024
MAX_SHARE_ACCOUNTS = 10
# Shortest bearer token / HMAC secret accepted: a guessable token is no authentication.
MIN_SECRET_CHARS = 8

HttpAuth = Literal["token", "hmac", "none"]
WebhookFormat = Literal["cloudevents", "wecom", "dingtalk", "feishu", "slack"]
DataDisks = Literal["all", "none"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class Secret:
    """A value that never shows itself: `str` and `repr` mask it, `get_secret_value()` gives it (the interface
    of pydantic's `SecretStr`, which would import pydantic on every cold start)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        """The secret itself."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********" if self._value else ""

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and self._value == other._value

    def __hash__(self) -> int:
        return hash(self._value)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        """For the pydantic model of the settings (`_model`): text, held as a Secret."""
        from pydantic_core import core_schema  # noqa: PLC0415 (only the model, built for an unsure value, asks)

        return core_schema.no_info_after_validator_function(cls, core_schema.str_schema())


# Around a value: whitespace, and the invisible characters a copy and paste brings along (zero-width spaces and
# joiners, direction marks, a soft hyphen, a byte order mark), which `str.strip` keeps.
_INVISIBLE = "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\ufeff"
_AROUND = re.compile(f"^[\\s{_INVISIBLE}]+|[\\s{_INVISIBLE}]+$")
_EDGES = frozenset(_INVISIBLE)


def trimmed(text: str) -> str:
    """The text without the whitespace and invisible characters around it."""
    # Most values have none (credentials, read on every invocation): no regex for them.
    if text and not (text[0].isspace() or text[-1].isspace() or text[0] in _EDGES or text[-1] in _EDGES):
        return text
    return _AROUND.sub("", text)


def env_text(env: Mapping[str, str], name: str) -> str:
    """A variable's value as every variable is read, trimmed (empty when unset): for the credentials, which the
    function reads on every invocation and the deploy tool reads too, outside the settings."""
    return trimmed(env.get(name) or "")


def split_list(value: object) -> object:
    """Turn `"a, b,,c"` into `["a", "b", "c"]`; leave lists alone.

    Raises:
        ValueError: the text names nothing (`","`, spaces): an allowlist that lists nothing would read as no
            allowlist at all, so the operator is told instead (an empty variable is unset, and means none).
    """
    if isinstance(value, str):
        items = [item for item in map(trimmed, value.split(",")) if item]
        if not items:
            raise ValueError("the list names nothing (leave the variable empty or unset for none)")
        return items
    return value


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _on_off(value: object) -> object:
    """`on`/`off` (and the booleans' spellings) for switches like BLUEPRINT_RESTORE."""
    if isinstance(value, str) and value.strip().lower() in ("on", "off"):
        return value.strip().lower() == "on"
    return value


def _account_id(value: str | None) -> str | None:
    if value is not None and not re.match(ACCOUNT_ID, value):
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
    bad = [n + 1 for n, item in enumerate(ids) if not re.match(INSTANCE_ID, item)]
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
    bad = [n + 1 for n, item in enumerate(ids) if not all(re.match(COMMAND_ID, part) for part in item.split(":"))
           or item.count(":") > 1]
    if bad:
        raise ValueError(f"expected TAT command ids (cmd- and 8 of a-z0-9), or pre:post pairs of them; item(s) {bad} "
                         "are not")
    pres = [item.split(":")[0] for item in ids if ":" in item]
    if len(set(pres)) != len(pres):
        raise ValueError("a pre-command is paired with two post-commands")
    return ids


def _command_text(text: Secret | None) -> Secret | None:
    # RunCommand takes at most 64 KiB of Base64 (48 KiB of text); a blank command would do nothing.
    value = "" if text is None else text.get_secret_value()
    if text is not None and (not value.strip() or len(value.encode()) > MAX_COMMAND):
        raise ValueError(f"expected shell text of 1 to {MAX_COMMAND} bytes, or a TAT command id (cmd-...)")
    return text


def _account_ids(ids: tuple[str, ...]) -> tuple[str, ...]:
    bad = [n + 1 for n, item in enumerate(ids) if not re.match(ACCOUNT_ID, item)]
    if bad:
        raise ValueError(f"expected account ids (digits); item(s) {bad} are not")
    if len(ids) > MAX_SHARE_ACCOUNTS:
        raise ValueError(f"at most {MAX_SHARE_ACCOUNTS} accounts")
    return ids


def _strong(secrets: tuple[Secret, ...]) -> tuple[Secret, ...]:
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


def _http_secrets(secrets: tuple[Secret, ...]) -> tuple[Secret, ...]:
    _strong(secrets)
    for n, secret in enumerate(secrets):
        value = secret.get_secret_value()
        if value.startswith("whsec_") and _whsec_key(value) is None:
            raise ValueError(f"item {n + 1} starts with whsec_ but the rest is not base64")
    return secrets


# SCF's names (CreateFunction's FunctionName: letters, digits, - and _, a letter first, not - or _ last,
# 2-60 characters). Namespaces: the API states no rule, the same one is assumed. Qualifiers: $LATEST,
# $DEFAULT, a version number, or an alias (CreateAlias's Name: letters, digits, _ and -, a letter first, 1-64).
FUNCTION_NAME = r"[A-Za-z][A-Za-z0-9_-]{0,58}[A-Za-z0-9]\Z"
QUALIFIER = r"(\$LATEST|\$DEFAULT|[0-9]{1,10}|[A-Za-z][A-Za-z0-9_-]{0,63})\Z"


@record(kw_only=True)
class NextFunction:
    """`BLUEPRINT_NEXT_FUNCTION` as `[namespace/]name[:qualifier]`."""

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
        rest, colon, qualifier = text.strip().partition(":")
        namespace, slash, name = rest.rpartition("/")
        if not name or "/" in namespace or (slash and not namespace) or (colon and not qualifier):
            raise ValueError("expected [namespace/]name[:qualifier]")
        if not re.match(FUNCTION_NAME, name):
            raise ValueError("the function name must be 2-60 letters, digits, - and _, starting with a letter "
                             "and not ending with - or _")
        if namespace and not re.match(FUNCTION_NAME, namespace):
            raise ValueError("the namespace must be 2-60 letters, digits, - and _, starting with a letter")
        if qualifier and not re.match(QUALIFIER, qualifier):
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


class Variable:
    """One environment variable: its name and its rules (`Settings` carries one per field, in its metadata)."""

    __slots__ = ("after", "before", "name", "rules")

    def __init__(self, name: str, rules: dict[str, Any], before: Callable[[Any], Any] | None,
                 after: Callable[[Any], Any] | None) -> None:
        self.name, self.rules, self.before, self.after = name, rules, before, after

    @property
    def validation_alias(self) -> str:
        """The variable's name (what pydantic calls a field's alias, for code that lists the variables)."""
        return self.name

    def __repr__(self) -> str:
        return f"Variable({self.name!r})"


def _var(name: str, default: Any, *, before: Callable[[Any], Any] | None = None,
         after: Callable[[Any], Any] | None = None, **rules: Any) -> Any:
    """A field read from the variable `name`: its default, a function run before the type's own reading
    (`before`) and after it (`after`), and pydantic's constraints (`gt`, `ge`, `le`, `pattern`, `min_length`,
    `max_length`)."""
    return field(default=default, metadata={"variable": Variable(name, rules, before, after)})


@record
class Settings:
    """The function's configuration (README.md, Configuration), immutable."""

    # Default region for jobs without one; SCF sets it to the function's region.
    region: str = _var("TENCENTCLOUD_REGION", "ap-guangzhou", pattern=r"^[a-z]+(-[a-z0-9]+)+$")
    # Send every cloud API call (all services) to this endpoint instead of *.tencentcloudapi.com.
    api_endpoint: str | None = _var("BLUEPRINT_API_ENDPOINT", None, after=_check_endpoint)
    # Plain http:// API endpoints (they would carry the session token in clear) only on loopback, unless set.
    allow_insecure_api_endpoint: bool = _var("BLUEPRINT_ALLOW_INSECURE_API_ENDPOINT", False)
    # Result sinks.
    webhook_url: str | None = _var("BLUEPRINT_WEBHOOK_URL", None, after=_check_http_url)
    # Standard Webhooks secret (whsec_...), or the robot's signing secret for dingtalk / feishu.
    webhook_secret: Secret | None = _var("BLUEPRINT_WEBHOOK_SECRET", None)
    webhook_format: WebhookFormat = _var("BLUEPRINT_WEBHOOK_FORMAT", "cloudevents", before=_lower)
    # Seconds per webhook attempt; the total budget is also capped by the function's time left.
    webhook_timeout: float = _var("BLUEPRINT_WEBHOOK_TIMEOUT", 5.0, gt=0, le=60)
    # Plain http:// webhooks to non-loopback hosts are refused unless this is set on purpose.
    allow_insecure_webhook: bool = _var("BLUEPRINT_ALLOW_INSECURE_WEBHOOK", False)
    cmq_queue: str | None = _var("BLUEPRINT_CMQ_QUEUE", None, min_length=1, max_length=64)
    cmq_topic: str | None = _var("BLUEPRINT_CMQ_TOPIC", None, min_length=1, max_length=64)
    next_function: NextFunction | None = _var("BLUEPRINT_NEXT_FUNCTION", None, before=_next_function)
    # HTTP authentication: bearer tokens (several for rotation), or signed requests, or none on purpose.
    http_auth: HttpAuth = _var("BLUEPRINT_HTTP_AUTH", "token", before=_lower)
    http_tokens: tuple[Secret, ...] = _var("BLUEPRINT_HTTP_TOKEN", (), before=split_list, after=_strong)
    http_secrets: tuple[Secret, ...] = _var("BLUEPRINT_HTTP_SECRET", (), before=split_list, after=_http_secrets)
    # Authorization: which instances any trigger may image (checked against the instance's real tags).
    allowed_instances: tuple[str, ...] = _var("BLUEPRINT_ALLOWED_INSTANCES", (), before=split_list,
                                              after=_instance_ids)
    allowed_tags: tuple[tuple[str, str], ...] = _var("BLUEPRINT_ALLOWED_TAGS", (), before=_tag_pairs)
    # Disaster recovery: accounts every image is shared with once NORMAL, and the only accounts a job may
    # name in ShareWith (unset: a job may name only the accounts of BLUEPRINT_SHARE_WITH).
    share_with: tuple[str, ...] = _var("BLUEPRINT_SHARE_WITH", (), before=split_list, after=_account_ids)
    allowed_share_accounts: tuple[str, ...] = _var("BLUEPRINT_ALLOWED_SHARE_ACCOUNTS", (), before=split_list,
                                                   after=_account_ids)
    # Restores format an instance's system disk: off unless turned on, and then HTTP restores need their own
    # token (in hmac mode: their own signing secret), never the token that makes images.
    restore: bool = _var("BLUEPRINT_RESTORE", False, before=_on_off)
    restore_tokens: tuple[Secret, ...] = _var("BLUEPRINT_RESTORE_TOKEN", (), before=split_list, after=_strong)
    # Consistent images (TAT): shell text (or a `cmd-` id) run as root before and after the image, the command ids
    # a job may name (`pre:post` pairs: that pre-command runs only with that post-command), and how long a command
    # may run. The text may hold credentials: it is a Secret, never
    # logged or echoed (it is not registered for redaction: a short command like `sync` would blank that word in
    # every log line).
    pre_command: Secret | None = _var("BLUEPRINT_PRE_COMMAND", None, after=_command_text)
    post_command: Secret | None = _var("BLUEPRINT_POST_COMMAND", None, after=_command_text)
    allowed_commands: tuple[str, ...] = _var("BLUEPRINT_ALLOWED_COMMANDS", (), before=split_list,
                                             after=_command_ids)
    command_timeout: int = _var("BLUEPRINT_COMMAND_TIMEOUT", 60, ge=1, le=600)
    # The data disks backed up with each image when a job does not say (DataDisks): all of them, or none.
    data_disks: DataDisks = _var("BLUEPRINT_DATA_DISKS", "all", before=_lower)
    # The account id (UIN) that names resources for the Tag API; SCF's context carries it (tencentcloud_uin).
    account_id: str | None = _var("BLUEPRINT_ACCOUNT_ID", None, after=_account_id)
    # Defaults for job fields.
    force_power_off: bool = _var("BLUEPRINT_FORCE_POWER_OFF", True)
    keep: int | None = _var("BLUEPRINT_KEEP", None, ge=1, le=500)
    max_instances: int = _var("BLUEPRINT_MAX_INSTANCES", 50, ge=1, le=10_000)
    job: str | None = _var("BLUEPRINT_JOB", None)
    # Cloud API pacing (per account, per second) and parallelism; the documented limits by default.
    create_rate: float = _var("BLUEPRINT_CREATE_RATE", 20.0, gt=0, le=20)
    describe_rate: float = _var("BLUEPRINT_DESCRIBE_RATE", 10.0, gt=0, le=10)
    # Creates a fleet sends side by side: the 20 a one-second window allows go out together (fewer, and each
    # window's creates queue behind each other's round trips: 10.8 s instead of 10.4 s for 200 instances).
    concurrency: int = _var("BLUEPRINT_CONCURRENCY", 20, ge=1, le=64)
    # Above this many instances a run fans out: async invocations of batches of up to 100 (blueprint/dispatch.py).
    dispatch_threshold: int = _var("BLUEPRINT_DISPATCH_THRESHOLD", 100, ge=1)
    # A fan-out child or follow-up that starts later than this after it was sent makes no image (SCF keeps
    # async events for up to 6 hours by default; a later run of the schedule covers the instance).
    child_ttl: float = _var("BLUEPRINT_CHILD_TTL", 21_600, gt=0, le=86_400)
    # The state an image shows while it is being made is not documented (the emulator says CREATING): Wait
    # follows images in these states until NORMAL (SYNCING is an image that was NORMAL and is being copied);
    # any other undocumented state ends the wait.
    in_progress_states: tuple[str, ...] = _var("BLUEPRINT_IN_PROGRESS_STATES", ("CREATING",), before=split_list,
                                               after=_state_names)
    # Whether Lighthouse starts an instance again after a ForcePowerOff image is not documented: with Wait,
    # the function starts an instance that was running before and is stopped once its image is done.
    restart_instance: bool = _var("BLUEPRINT_RESTART_INSTANCE", True)
    # Seconds kept free before the function's time limit for delivering results.
    time_margin: float = _var("BLUEPRINT_TIME_MARGIN", 3.0, ge=0, le=60)
    # Time limit assumed when the context does not say (local runs, some chained calls).
    default_time_limit: float = _var("BLUEPRINT_DEFAULT_TIME_LIMIT", 60.0, gt=0, le=86_400)
    log_level: LogLevel = _var("BLUEPRINT_LOG_LEVEL", "INFO")

    # Every variable by field name (the name pydantic gives this mapping; tools list the variables from it).
    model_fields: ClassVar[Mapping[str, Variable]]

    def __repr__(self) -> str:
        # Secret fields already show as '**********'; a chat robot's URL is a credential too.
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["webhook_url"] = mask_url(self.webhook_url)
        return "Settings(" + ", ".join(f"{name}={value!r}" for name, value in shown.items()) + ")"

    def signing_secrets(self) -> tuple[Secret, ...]:
        """The HTTP signing secrets of `BLUEPRINT_HTTP_AUTH=hmac`: `BLUEPRINT_HTTP_SECRET`, or when it is unset
        `BLUEPRINT_HTTP_TOKEN` (the one HTTP auth variable the contract names)."""
        return self.http_secrets or self.http_tokens

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


Settings.model_fields = MappingProxyType({f.name: f.metadata["variable"] for f in fields(Settings)})


def _check_combinations(settings: Settings) -> None:
    """Rules between variables (each message names the variable to change).

    Raises:
        ValueError: two variables do not go together.
    """
    if settings.webhook_url and not _webhook_transport_ok(settings):
        raise ValueError("BLUEPRINT_WEBHOOK_URL: https is required (http only on loopback, "
                         "or with BLUEPRINT_ALLOW_INSECURE_WEBHOOK=true)")
    if settings.http_auth == "hmac":
        _check_signing(settings)
    endpoint = settings.api_endpoint
    if endpoint and not (endpoint.startswith("https://") or is_loopback_url(endpoint)
                         or settings.allow_insecure_api_endpoint):
        raise ValueError("BLUEPRINT_API_ENDPOINT: https is required (http only on loopback, "
                         "or with BLUEPRINT_ALLOW_INSECURE_API_ENDPOINT=true)")
    _check_recovery(settings)
    if settings.webhook_secret and settings.webhook_format == "cloudevents" \
            and not _is_whsec(settings.webhook_secret.get_secret_value()):
        raise ValueError("BLUEPRINT_WEBHOOK_SECRET: expected a Standard Webhooks secret (whsec_ + base64)")


def _check_signing(settings: Settings) -> None:
    if not settings.signing_secrets():
        raise ValueError("BLUEPRINT_HTTP_SECRET (or BLUEPRINT_HTTP_TOKEN): required when BLUEPRINT_HTTP_AUTH=hmac")
    if not settings.http_secrets:  # the token variable holds the signing secrets: they must read as such
        try:
            _http_secrets(settings.http_tokens)
        except ValueError as err:
            raise ValueError(f"BLUEPRINT_HTTP_TOKEN: {err}") from None


def _check_recovery(settings: Settings) -> None:
    outside = set(settings.share_with) - set(settings.allowed_share_accounts)
    if settings.allowed_share_accounts and outside:
        raise ValueError("BLUEPRINT_SHARE_WITH: every account must also be in BLUEPRINT_ALLOWED_SHARE_ACCOUNTS")
    tokens = {t.get_secret_value() for t in (*settings.http_tokens, *settings.http_secrets)}
    if tokens & {t.get_secret_value() for t in settings.restore_tokens}:
        raise ValueError("BLUEPRINT_RESTORE_TOKEN: must differ from BLUEPRINT_HTTP_TOKEN / BLUEPRINT_HTTP_SECRET "
                         "(a restore formats a disk: the token that makes images must not allow it)")


def _webhook_transport_ok(settings: Settings) -> bool:
    url = settings.webhook_url or ""
    return url.startswith("https://") or is_loopback_url(url) or settings.allow_insecure_webhook


def load_settings(env: Mapping[str, str]) -> Settings:
    """Build Settings from environment variables; empty values count as unset.

    Raises:
        ConfigError: a variable has a bad value; the message names it (never its value).
    """
    # A value is read without the spaces around it (a template's stray space, a pasted zero-width space). One of
    # spaces only is not empty, and no variable takes it: read as unset it would turn a secret, a command or an
    # allowlist off unseen.
    values = {key: trimmed(value) for key, value in env.items() if value != ""}
    blank = sorted(key for key in _variables() & values.keys() if not values[key])
    if blank:
        raise ConfigError(f"bad configuration: {blank[0]}: spaces only, or invisible characters (leave the variable "
                          "empty or unset)")
    # Registered before validating, so even a message about a bad secret could not show it.
    for key in _SECRET_VARIABLES & values.keys():
        logs.register_secrets([values[key], *(trimmed(part) for part in values[key].split(","))])
    try:
        settings = _read(values)
    except _Unsure:
        settings = _judge(values)
    try:
        _check_combinations(settings)
    except ValueError as err:
        raise ConfigError(f"bad configuration: {err}") from None
    logs.register_secrets(settings.secret_values())
    return settings


@functools.cache
def _variables() -> frozenset[str]:
    """The names of every variable the settings read."""
    return frozenset(item.metadata["variable"].name for item in fields(Settings))


_SECRET_VARIABLES = frozenset({"BLUEPRINT_HTTP_TOKEN", "BLUEPRINT_HTTP_SECRET", "BLUEPRINT_WEBHOOK_SECRET",
                               "BLUEPRINT_RESTORE_TOKEN",
                               "BLUEPRINT_WEBHOOK_URL", "TENCENTCLOUD_SECRETKEY", "TENCENTCLOUD_SECRET_KEY",
                               "TENCENTCLOUD_SESSIONTOKEN"})


class _Unsure(Exception):
    """The reader does not take this value in its plain form: the pydantic model decides."""


def _read(values: Mapping[str, str]) -> Settings:
    """The settings from the variables, when every value set is in its plain form and keeps its rules.

    Raises:
        _Unsure: a value is not (a bad one, or one only the pydantic model reads the same way).
    """
    given = {}
    for item in fields(Settings):
        variable: Variable = item.metadata["variable"]
        raw = values.get(variable.name)
        if raw is not None:
            given[item.name] = _value(str(item.type), variable, raw)
    return Settings(**given)


# Plain spellings only; anything else (spaces, signs, exponents, `1_000`, `7.0` for an int) is the model's.
_INT = r"[0-9]{1,18}"
_FLOAT = r"[0-9]{1,15}(\.[0-9]{1,15})?"
_BOOLS = {"1": True, "on": True, "t": True, "true": True, "y": True, "yes": True,
          "0": False, "off": False, "f": False, "false": False, "n": False, "no": False}


def _value(kind: str, variable: Variable, raw: str) -> Any:
    """One variable's value, read the way the pydantic model reads it.

    Raises:
        _Unsure: the value is bad, or not in its plain form.
    """
    try:
        raw.encode()  # text that is not valid Unicode (undecodable bytes in the environment) is the model's
        value = variable.before(raw) if variable.before else raw
        value = _READERS[kind.removesuffix(" | None")](value)
        _keeps(variable.rules, value)
        return variable.after(value) if variable.after else value
    except (ValueError, KeyError):
        raise _Unsure from None


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.lower() in _BOOLS:
        return _BOOLS[value.lower()]
    raise ValueError(value)


def _match(pattern: str, convert: Callable[[str], Any]) -> Callable[[object], Any]:
    def read(value: object) -> Any:
        if isinstance(value, str) and re.fullmatch(pattern, value):
            return convert(value)
        raise ValueError(value)

    return read


def _of(kind: type, convert: Callable[[Any], Any] = lambda value: value) -> Callable[[object], Any]:
    def read(value: object) -> Any:
        if isinstance(value, kind):
            return convert(value)
        raise ValueError(value)

    return read


def _choice(options: Any) -> Callable[[object], Any]:
    def read(value: object) -> Any:
        if isinstance(value, str) and value in options.__args__:
            return value
        raise ValueError(value)

    return read


# How the reader takes each type of field (the annotation's text); a type not here is always the model's.
_READERS: dict[str, Callable[[object], Any]] = {
    "str": _of(str),
    "bool": _bool,
    "int": _match(_INT, int),
    "float": _match(_FLOAT, float),
    "Secret": _of(str, Secret),
    "tuple[str, ...]": _of(list, lambda items: tuple(str(item) for item in items)),
    "tuple[Secret, ...]": _of(list, lambda items: tuple(Secret(item) for item in items)),
    "tuple[tuple[str, str], ...]": _of(list, lambda pairs: tuple((str(k), str(v)) for k, v in pairs)),
    "NextFunction": _of(NextFunction),
    "HttpAuth": _choice(HttpAuth),
    "WebhookFormat": _choice(WebhookFormat),
    "DataDisks": _choice(DataDisks),
    "LogLevel": _choice(LogLevel),
}


def _keeps(rules: Mapping[str, Any], value: Any) -> None:
    """pydantic's constraints, on a value of the right type.

    Raises:
        ValueError: the value breaks one (the model says how, in its words).
    """
    for rule, limit in rules.items():
        ok = (value > limit if rule == "gt" else value >= limit if rule == "ge" else value <= limit if rule == "le"
              else len(value) >= limit if rule == "min_length" else len(value) <= limit if rule == "max_length"
              else re.fullmatch(limit.removeprefix("^").removesuffix("$"), value) is not None)
        if not ok:
            raise ValueError(rule)


def _judge(values: Mapping[str, str]) -> Settings:
    """The settings as the pydantic model of the same fields reads them (its errors are the messages).

    Raises:
        ConfigError: a variable has a bad value; the message names it (never its value).
    """
    from pydantic import ValidationError  # noqa: PLC0415 (only a value the reader is unsure of pays for it)

    try:
        model = _model().model_validate(values)
    except ValidationError as err:
        raise ConfigError(_describe(err)) from None
    return Settings(**{name: getattr(model, name) for name in Settings.model_fields})


@functools.cache
def _model() -> type[BaseModel]:
    """The pydantic model of `Settings`' fields: their types, names, defaults, rules and functions."""
    from typing import Annotated, get_type_hints  # noqa: PLC0415

    from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, create_model  # noqa: PLC0415

    types = get_type_hints(Settings)
    specs: dict[str, Any] = {}
    for item in fields(Settings):
        variable: Variable = item.metadata["variable"]
        extras: list[Any] = [BeforeValidator(variable.before)] if variable.before else []
        extras += [AfterValidator(variable.after)] if variable.after else []
        info = Field(item.default, validation_alias=variable.name, **variable.rules)
        annotated: Any = Annotated
        params = (types[item.name], *extras)
        specs[item.name] = (annotated[params] if extras else types[item.name], info)
    config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True, arbitrary_types_allowed=True)
    model: type[BaseModel] = create_model("Settings", __config__=config, **specs)
    return model


def _describe(err: Any) -> str:
    problems = []
    for item in err.errors(include_input=False, include_url=False):
        name = ".".join(str(part) for part in item["loc"]) or ""
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{name}: {message}" if name else message)
    return "bad configuration: " + "; ".join(problems)
