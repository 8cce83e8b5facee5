"""Issue 16, item 8: values the platform can never use fail at start, naming the variable, not at delivery."""

from __future__ import annotations

import base64

import pytest

from blueprint.errors import ConfigError
from blueprint.settings import NextFunction, load_settings

KEY = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@pytest.mark.parametrize("value", [
    "a b/c",                      # the example: a space in the namespace
    "ns/a b",                     # a space in the name
    "f",                          # too short (2-60)
    "f" * 61,                     # too long
    "1fn",                        # must start with a letter
    "fn-", "fn_",                 # must not end with - or _
    "fn.x", "fn/x/y", "/fn",      # other characters, two slashes, an empty namespace
    "9ns/fn",                     # namespace: a letter first
    "fn:1.2", "fn:$NEWEST", "fn:-a", "fn:" + "a" * 65,  # qualifiers: $LATEST, $DEFAULT, a number, an alias
])
def test_an_unusable_next_function_fails_at_start(value: str) -> None:
    with pytest.raises(ConfigError, match="BLUEPRINT_NEXT_FUNCTION"):
        load_settings({"BLUEPRINT_NEXT_FUNCTION": value})


@pytest.mark.parametrize(("value", "expected"), [
    ("blueprint-next", NextFunction(name="blueprint-next")),
    ("ops/notify_2:$DEFAULT", NextFunction(namespace="ops", name="notify_2", qualifier="$DEFAULT")),
    ("default/fn:12", NextFunction(name="fn", qualifier="12")),
    ("fn:prod-alias", NextFunction(name="fn", qualifier="prod-alias")),
    ("F" * 60, NextFunction(name="F" * 60)),
])
def test_a_usable_next_function_is_taken(value: str, expected: NextFunction) -> None:
    assert load_settings({"BLUEPRINT_NEXT_FUNCTION": value}).next_function == expected


def test_a_webhook_secret_without_whsec_fails_at_start_in_cloudevents_format() -> None:
    # docs/delivery.md: "A secret that is not whsec_+base64 fails at start with a message naming the variable."
    with pytest.raises(ConfigError, match="BLUEPRINT_WEBHOOK_SECRET") as caught:
        load_settings({"BLUEPRINT_WEBHOOK_SECRET": KEY})
    assert KEY not in caught.value.message
    assert load_settings({"BLUEPRINT_WEBHOOK_SECRET": "whsec_" + KEY}).webhook_secret is not None


def test_a_robot_secret_has_no_prefix_to_check() -> None:
    # DingTalk and Feishu give their own secrets (SEC..., plain text): only the CloudEvents format signs with whsec_.
    settings = load_settings({"BLUEPRINT_WEBHOOK_FORMAT": "dingtalk", "BLUEPRINT_WEBHOOK_SECRET": "SECabc123"})
    assert settings.webhook_secret is not None
