"""Settings (README.md, Configuration): every variable, its default, and that a bad value names the variable
(never its value)."""

from __future__ import annotations

import base64

import pytest

from blueprint import logs
from blueprint.errors import ConfigError
from blueprint.settings import (
    NextFunction,
    Settings,
    _variables,
    is_loopback_url,
    load_settings,
    mask_url,
    split_list,
    trimmed,
)

WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def test_defaults() -> None:
    s = load_settings({})
    assert (s.region, s.api_endpoint, s.webhook_url, s.webhook_secret, s.webhook_format) == (
        "ap-guangzhou", None, None, None, "cloudevents")
    assert (s.http_auth, s.http_tokens, s.http_secrets) == ("token", (), ())
    assert (s.allowed_instances, s.allowed_tags, s.allow_insecure_webhook, s.allow_insecure_api_endpoint) == (
        (), (), False, False)
    assert (s.force_power_off, s.keep, s.max_instances, s.job) == (True, None, 50, None)
    assert (s.cmq_queue, s.cmq_topic, s.next_function) == (None, None, None)


def test_empty_values_count_as_unset() -> None:
    assert load_settings({"BLUEPRINT_KEEP": "", "TENCENTCLOUD_REGION": ""}).keep is None


@pytest.mark.parametrize("variable", sorted(_variables()))
def test_spaces_alone_are_a_bad_value_not_an_unset_one(variable: str) -> None:
    # Not empty, so not unset: a queue name of one space failed every delivery (no retry could mend it), a
    # webhook secret of spaces sent results unsigned, and an allowlist or pre-command of spaces would switch its
    # protection off without a word. Every variable the settings read is refused so, by name.
    for blank in (" \t ", "\u200b", "\ufeff", "\u00a0\u200b\n", "\u200e", "\u00ad", "\u180e\u2060"):
        with pytest.raises(ConfigError, match=f"{variable}: spaces only"):
            load_settings({variable: blank})
    assert isinstance(load_settings({variable: ""}), Settings)  # empty is unset


def test_values_are_read_without_the_spaces_around_them() -> None:
    settings = load_settings({"BLUEPRINT_FORCE_POWER_OFF": " false ", "BLUEPRINT_KEEP": " 3 ",
                              "BLUEPRINT_HTTP_AUTH": "hmac ", "BLUEPRINT_HTTP_SECRET": f" {WHSEC} ",
                              "BLUEPRINT_CMQ_QUEUE": "\ufeff results\u200b\n"})
    assert (settings.force_power_off, settings.keep, settings.http_auth, settings.cmq_queue) == (False, 3, "hmac",
                                                                                                "results")


@pytest.mark.parametrize(("variable", "value", "attribute", "expected"), [
    ("TENCENTCLOUD_REGION", "ap-shanghai", "region", "ap-shanghai"),
    ("BLUEPRINT_API_ENDPOINT", "http://127.0.0.1:9000", "api_endpoint", "http://127.0.0.1:9000"),
    ("BLUEPRINT_WEBHOOK_URL", "https://example.com/h", "webhook_url", "https://example.com/h"),
    ("BLUEPRINT_WEBHOOK_FORMAT", "WeCom", "webhook_format", "wecom"),
    ("BLUEPRINT_WEBHOOK_TIMEOUT", "2.5", "webhook_timeout", 2.5),
    ("BLUEPRINT_ALLOW_INSECURE_WEBHOOK", "TRUE", "allow_insecure_webhook", True),
    ("BLUEPRINT_CMQ_QUEUE", "results", "cmq_queue", "results"),
    ("BLUEPRINT_CMQ_TOPIC", "events", "cmq_topic", "events"),
    ("BLUEPRINT_NEXT_FUNCTION", "ns/next:prod", "next_function",
     NextFunction(namespace="ns", name="next", qualifier="prod")),
    ("BLUEPRINT_NEXT_FUNCTION", "next", "next_function", NextFunction(name="next")),
    ("BLUEPRINT_HTTP_AUTH", "None", "http_auth", "none"),
    ("BLUEPRINT_ALLOWED_INSTANCES", "lhins-web00001, lhins-db000001,", "allowed_instances",
     ("lhins-web00001", "lhins-db000001")),
    ("BLUEPRINT_ALLOWED_TAGS", "env=prod, backup = daily", "allowed_tags", (("env", "prod"), ("backup", "daily"))),
    ("BLUEPRINT_FORCE_POWER_OFF", "0", "force_power_off", False),
    ("BLUEPRINT_FORCE_POWER_OFF", "False", "force_power_off", False),
    ("BLUEPRINT_FORCE_POWER_OFF", "1", "force_power_off", True),
    ("BLUEPRINT_KEEP", "7", "keep", 7),
    ("BLUEPRINT_MAX_INSTANCES", "200", "max_instances", 200),
    ("BLUEPRINT_JOB", '{"InstanceId": "lhins-web00001"}', "job", '{"InstanceId": "lhins-web00001"}'),
    ("BLUEPRINT_CREATE_RATE", "5", "create_rate", 5.0),
    ("BLUEPRINT_DESCRIBE_RATE", "5", "describe_rate", 5.0),
    ("BLUEPRINT_CONCURRENCY", "4", "concurrency", 4),
    ("BLUEPRINT_DISPATCH_THRESHOLD", "10", "dispatch_threshold", 10),
    ("BLUEPRINT_TIME_MARGIN", "1", "time_margin", 1.0),
    ("BLUEPRINT_DEFAULT_TIME_LIMIT", "30", "default_time_limit", 30.0),
    ("BLUEPRINT_LOG_LEVEL", "DEBUG", "log_level", "DEBUG"),
])
def test_each_variable(variable: str, value: str, attribute: str, expected: object) -> None:
    assert getattr(load_settings({variable: value}), attribute) == expected


def test_secrets_are_secret_str_and_lists_rotate() -> None:
    s = load_settings({"BLUEPRINT_HTTP_TOKEN": "old-token-1, new-token-2", "BLUEPRINT_HTTP_AUTH": "hmac",
                       "BLUEPRINT_HTTP_SECRET": f"{WHSEC},raw-secret-abc", "BLUEPRINT_WEBHOOK_SECRET": WHSEC})
    assert [t.get_secret_value() for t in s.http_tokens] == ["old-token-1", "new-token-2"]
    assert [t.get_secret_value() for t in s.http_secrets] == [WHSEC, "raw-secret-abc"]
    assert s.webhook_secret is not None and s.webhook_secret.get_secret_value() == WHSEC
    text = repr(s) + str(s)
    for secret in ("old-token-1", "new-token-2", WHSEC, "raw-secret-abc"):
        assert secret not in text


def test_load_settings_registers_secrets_for_redaction() -> None:
    load_settings({"BLUEPRINT_HTTP_TOKEN": "registered-token-xyz",
                   "BLUEPRINT_WEBHOOK_URL": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=robot-key-123"})
    redacted = logs.redact("a registered-token-xyz b key=robot-key-123")
    assert "registered-token-xyz" not in redacted and "robot-key-123" not in redacted


def test_chat_robot_urls_are_masked_in_repr() -> None:
    s = load_settings({"BLUEPRINT_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/XXXXSECRET"})
    assert "XXXXSECRET" not in repr(s) and "hooks.slack.com" in repr(s)
    assert mask_url("https://h.example:8443/p?q=1") == "https://h.example:8443/***"


@pytest.mark.parametrize(("env", "variable"), [
    ({"TENCENTCLOUD_REGION": "Guangzhou"}, "TENCENTCLOUD_REGION"),
    ({"BLUEPRINT_API_ENDPOINT": "not a url"}, "BLUEPRINT_API_ENDPOINT"),
    ({"BLUEPRINT_API_ENDPOINT": "http://api.example.com"}, "BLUEPRINT_API_ENDPOINT"),
    ({"BLUEPRINT_WEBHOOK_URL": "ftp://x"}, "BLUEPRINT_WEBHOOK_URL"),
    ({"BLUEPRINT_WEBHOOK_URL": "http://example.com/h"}, "BLUEPRINT_WEBHOOK_URL"),
    ({"BLUEPRINT_WEBHOOK_SECRET": "whsec_%%%"}, "BLUEPRINT_WEBHOOK_SECRET"),
    ({"BLUEPRINT_WEBHOOK_FORMAT": "teams"}, "BLUEPRINT_WEBHOOK_FORMAT"),
    ({"BLUEPRINT_WEBHOOK_TIMEOUT": "0"}, "BLUEPRINT_WEBHOOK_TIMEOUT"),
    ({"BLUEPRINT_ALLOW_INSECURE_WEBHOOK": "maybe"}, "BLUEPRINT_ALLOW_INSECURE_WEBHOOK"),
    ({"BLUEPRINT_CMQ_QUEUE": "q" * 65}, "BLUEPRINT_CMQ_QUEUE"),
    ({"BLUEPRINT_CMQ_TOPIC": "t" * 65}, "BLUEPRINT_CMQ_TOPIC"),
    ({"BLUEPRINT_NEXT_FUNCTION": "a/b/c"}, "BLUEPRINT_NEXT_FUNCTION"),
    ({"BLUEPRINT_NEXT_FUNCTION": "next-fn:"}, "BLUEPRINT_NEXT_FUNCTION"),  # a colon promises a qualifier
    ({"BLUEPRINT_HTTP_AUTH": "basic"}, "BLUEPRINT_HTTP_AUTH"),
    ({"BLUEPRINT_HTTP_TOKEN": "short"}, "BLUEPRINT_HTTP_TOKEN"),
    ({"BLUEPRINT_HTTP_TOKEN": "has space inside"}, "BLUEPRINT_HTTP_TOKEN"),
    ({"BLUEPRINT_HTTP_AUTH": "hmac"}, "BLUEPRINT_HTTP_SECRET"),
    ({"BLUEPRINT_HTTP_SECRET": "whsec_!!!!!!!!"}, "BLUEPRINT_HTTP_SECRET"),
    ({"BLUEPRINT_ALLOWED_INSTANCES": "lhins-web00001,web-1"}, "BLUEPRINT_ALLOWED_INSTANCES"),
    ({"BLUEPRINT_ALLOWED_TAGS": "env"}, "BLUEPRINT_ALLOWED_TAGS"),
    ({"BLUEPRINT_ALLOWED_TAGS": "=prod"}, "BLUEPRINT_ALLOWED_TAGS"),
    # A list of nothing but commas would read as no allowlist at all: any instance could be imaged.
    ({"BLUEPRINT_ALLOWED_INSTANCES": ","}, "BLUEPRINT_ALLOWED_INSTANCES"),
    ({"BLUEPRINT_ALLOWED_INSTANCES": " , "}, "BLUEPRINT_ALLOWED_INSTANCES"),
    ({"BLUEPRINT_ALLOWED_TAGS": ","}, "BLUEPRINT_ALLOWED_TAGS"),
    ({"BLUEPRINT_ALLOWED_COMMANDS": ",,"}, "BLUEPRINT_ALLOWED_COMMANDS"),
    ({"BLUEPRINT_HTTP_TOKEN": ","}, "BLUEPRINT_HTTP_TOKEN"),
    ({"BLUEPRINT_FORCE_POWER_OFF": "sometimes"}, "BLUEPRINT_FORCE_POWER_OFF"),
    ({"BLUEPRINT_KEEP": "0"}, "BLUEPRINT_KEEP"),
    ({"BLUEPRINT_KEEP": "many"}, "BLUEPRINT_KEEP"),
    ({"BLUEPRINT_MAX_INSTANCES": "0"}, "BLUEPRINT_MAX_INSTANCES"),
    ({"BLUEPRINT_CREATE_RATE": "21"}, "BLUEPRINT_CREATE_RATE"),
    ({"BLUEPRINT_DESCRIBE_RATE": "11"}, "BLUEPRINT_DESCRIBE_RATE"),
    ({"BLUEPRINT_CONCURRENCY": "65"}, "BLUEPRINT_CONCURRENCY"),
    ({"BLUEPRINT_DISPATCH_THRESHOLD": "0"}, "BLUEPRINT_DISPATCH_THRESHOLD"),
    ({"BLUEPRINT_TIME_MARGIN": "-1"}, "BLUEPRINT_TIME_MARGIN"),
    ({"BLUEPRINT_DEFAULT_TIME_LIMIT": "0"}, "BLUEPRINT_DEFAULT_TIME_LIMIT"),
    ({"BLUEPRINT_LOG_LEVEL": "TRACE"}, "BLUEPRINT_LOG_LEVEL"),
])
def test_a_bad_value_names_the_variable_not_the_value(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    message = caught.value.message
    assert variable in message
    for value in env.values():
        if len(value) > 3 and value not in ("hmac", "true"):
            assert value not in message, message


def test_unrelated_variables_are_ignored() -> None:
    assert isinstance(load_settings({"PATH": "/bin", "SCF_FUNCTIONNAME": "f"}), Settings)


def test_helpers() -> None:
    assert split_list(" a, b,,c ") == ["a", "b", "c"]
    for nothing in ("", "  ", " ,, "):
        with pytest.raises(ValueError, match="names nothing"):
            split_list(nothing)
    assert split_list(["x"]) == ["x"]
    assert is_loopback_url("http://127.0.0.1:1/") and is_loopback_url("http://[::1]/")
    assert is_loopback_url("http://localhost/")
    assert not is_loopback_url("http://localhost.evil.example/") and not is_loopback_url("http://10.0.0.1/")
    assert not is_loopback_url("http://[bad/")
    with pytest.raises(ValueError, match="namespace"):
        NextFunction.parse("")


def test_the_fast_path_of_trimmed_agrees_with_its_pattern() -> None:
    import re

    from blueprint.settings import _AROUND, _EDGES, _INVISIBLE

    invisible = re.compile(f"[{_INVISIBLE}]")
    assert {chr(c) for c in range(0x10000) if invisible.fullmatch(chr(c))} == _EDGES
    samples = ["", "a", "a b", " a", "a\n", "\u00a0a", *(f"{c}a" for c in _EDGES), *(f"a{c}" for c in _EDGES),
               "\u200ba\u200b", "a\u200bb"]
    assert [trimmed(s) for s in samples] == [_AROUND.sub("", s) for s in samples]
