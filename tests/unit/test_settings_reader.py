"""The settings reader takes what the pydantic model of the same fields takes, as the model reads it.

`load_settings` reads plain values itself (no model is built on a cold start) and leaves every other value,
good or bad, to the model, whose messages the function has always given. Whatever the reader takes, the model
must read to the same settings; whatever the reader is unsure of is the model's alone.
"""

from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from blueprint import settings as config
from blueprint.errors import ConfigError

WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
VARIABLES = [variable.name for variable in config.Settings.model_fields.values()]

# Plain spellings, their near misses, and the values the variables are documented to take.
SPELLINGS = ["0", "1", "7", "07", "20", "21", "60", "64", "65", "500", "501", "600", "10000", "86400", "86401",
             "2.5", "0.0", "20.0", "7.0", " 7", "+7", "-1", "1_000", "1e3", "nan", "inf", "\u0663", "5.",
             "true", "False", "TRUE", "yes", "On", "off", "no", "t", "maybe", " true",
             "token", "hmac", "none", "None", "basic", "cloudevents", "WeCom", " slack ", "all", "NONE",
             "DEBUG", "debug", "TRACE", "ap-shanghai", "Guangzhou", "ap-guangzhou\n", "q" * 64, "q" * 65,
             "https://example.com/h", "http://example.com/h", "http://127.0.0.1:9000", "not a url",
             "http://evil\\@localhost/", "https://api.example.com/path",
             "lhins-web00001, lhins-db000001,", "lhins-web00001,web-1", ",,", "env=prod, backup = daily", "env",
             "=prod", "12345,67890", "0123", "cmd-abcdefgh", "cmd-abcdefgh:cmd-12345678", "cmd-a:cmd-b",
             "CREATING, SYNCING", "creating", "old-token-1, new-token-2", "short", "has space inside", WHSEC,
             "whsec_!!!!!!!!", "SECabc123", "ns/next:prod", "next", "a/b/c", "fn:$NEWEST", "a\udcffb", " "]
values = st.sampled_from(SPELLINGS) | st.text(st.characters(codec="utf-8"), max_size=12) | st.text(
    st.sampled_from("0123456789.-_ eE+aZ,:=/"), max_size=8)


def outcome(read: object, values: dict[str, str]) -> object:
    try:
        return read(values)  # type: ignore[operator]
    except ConfigError as err:
        return err.message


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.dictionaries(st.sampled_from(VARIABLES), values, min_size=1, max_size=4))
def test_what_the_reader_takes_the_model_reads_the_same(env: dict[str, str]) -> None:
    env = {key: value for key, value in env.items() if value != ""}
    try:
        read = config._read(env)
    except config._Unsure:
        return
    judged = config._judge(env)
    assert read == judged and repr(read) == repr(judged)


def test_the_documented_spellings_need_no_model() -> None:
    plain = {"TENCENTCLOUD_REGION": "ap-shanghai", "BLUEPRINT_API_ENDPOINT": "http://127.0.0.1:9000",
             "BLUEPRINT_WEBHOOK_URL": "https://example.com/h", "BLUEPRINT_WEBHOOK_SECRET": WHSEC,
             "BLUEPRINT_WEBHOOK_FORMAT": "cloudevents", "BLUEPRINT_WEBHOOK_TIMEOUT": "2.5",
             "BLUEPRINT_ALLOW_INSECURE_WEBHOOK": "false", "BLUEPRINT_CMQ_QUEUE": "results",
             "BLUEPRINT_NEXT_FUNCTION": "ns/next:prod", "BLUEPRINT_HTTP_AUTH": "token",
             "BLUEPRINT_HTTP_TOKEN": "old-token-1,new-token-2", "BLUEPRINT_ALLOWED_INSTANCES": "lhins-web00001",
             "BLUEPRINT_ALLOWED_TAGS": "env=prod", "BLUEPRINT_SHARE_WITH": "12345",
             "BLUEPRINT_RESTORE": "on", "BLUEPRINT_RESTORE_TOKEN": "restore-token-1",
             "BLUEPRINT_PRE_COMMAND": "sync", "BLUEPRINT_ALLOWED_COMMANDS": "cmd-abcdefgh:cmd-12345678",
             "BLUEPRINT_COMMAND_TIMEOUT": "30", "BLUEPRINT_DATA_DISKS": "none", "BLUEPRINT_ACCOUNT_ID": "100012345678",
             "BLUEPRINT_FORCE_POWER_OFF": "1", "BLUEPRINT_KEEP": "7", "BLUEPRINT_MAX_INSTANCES": "200",
             "BLUEPRINT_JOB": '{"InstanceId": "lhins-web00001"}', "BLUEPRINT_CREATE_RATE": "20",
             "BLUEPRINT_DESCRIBE_RATE": "10", "BLUEPRINT_CONCURRENCY": "8", "BLUEPRINT_DISPATCH_THRESHOLD": "100",
             "BLUEPRINT_CHILD_TTL": "21600", "BLUEPRINT_IN_PROGRESS_STATES": "CREATING,SYNCING",
             "BLUEPRINT_RESTART_INSTANCE": "true", "BLUEPRINT_TIME_MARGIN": "3", "BLUEPRINT_DEFAULT_TIME_LIMIT": "60",
             "BLUEPRINT_LOG_LEVEL": "INFO"}
    read = config._read(plain)
    assert read == config._judge(plain)
    assert read.keep == 7 and read.webhook_timeout == 2.5 and read.restore is True


def test_a_bad_value_gets_the_models_message() -> None:
    assert outcome(config.load_settings, {"BLUEPRINT_KEEP": "0"}) == (
        "bad configuration: BLUEPRINT_KEEP: Input should be greater than or equal to 1")
    assert outcome(config.load_settings, {"BLUEPRINT_CREATE_RATE": "fast", "BLUEPRINT_LOG_LEVEL": "TRACE"}) == (
        "bad configuration: BLUEPRINT_CREATE_RATE: Input should be a valid number, unable to parse string as a "
        "number; BLUEPRINT_LOG_LEVEL: Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'")


def test_unusual_but_valid_spellings_are_read_by_the_model() -> None:
    assert config.load_settings({"BLUEPRINT_KEEP": " 7 ", "BLUEPRINT_CREATE_RATE": "1e1"}).keep == 7
    assert config.load_settings({"BLUEPRINT_CREATE_RATE": "1e1"}).create_rate == 10.0
