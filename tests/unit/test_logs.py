"""Structured logs: redaction of every registered secret, the line format, levels and the JSON-safe fallback.

Mutation testing (docs/mutation.md) found these unpinned: which secrets get registered, in which order they are
replaced, the JSON spelling of a secret, and what a line looks like when a value is not valid UTF-8.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from blueprint import logs


@pytest.fixture
def lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """A fresh stream, an empty secret list and the INFO level; all restored afterwards."""
    stream = io.StringIO()
    monkeypatch.setattr(logs, "_secrets", ())
    logs.set_stream(stream)
    logs.set_level("INFO")
    yield stream
    logs.set_stream(None)
    logs.set_level("INFO")


def written(stream: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


# ---- redaction -------------------------------------------------------------------------------------------------

def test_a_secret_of_four_characters_is_registered_and_a_shorter_one_is_not(lines) -> None:
    logs.register_secrets(["k9#q", "z7!"])
    assert logs.redact("key k9#q and z7!") == "key *** and z7!"


def test_values_that_are_not_secrets_do_not_stop_the_ones_after_them(lines) -> None:
    # A run role without a session token gives None, a short value is skipped: neither ends the list.
    logs.register_secrets([None, "ab", "secret-after-them-1"])
    assert logs.redact("x secret-after-them-1 y") == "x *** y"


def test_the_longest_secret_is_replaced_first(lines) -> None:
    # The short one sits inside the long one: replacing it first would leave the long one's edges in the text.
    logs.register_secrets(["inner-part", "AAAA-inner-part-ZZZZ"])
    assert logs.redact("token AAAA-inner-part-ZZZZ!") == "token ***!"
    logs.register_secrets(["zz-inner-part-aa-longer-than-both"])
    assert logs.redact("zz-inner-part-aa-longer-than-both") == "***"


@pytest.mark.parametrize("secret", ['"quoted-secret"', "back\\slash-secret\\", 'both"and\\secret'])
def test_a_secret_that_json_escapes_is_blanked_whole_and_the_line_stays_json(lines, secret) -> None:
    logs.register_secrets([secret])
    logs.log("INFO", secret, detail=f"<{secret}>")
    [line] = written(lines)  # the line still parses: no stray backslash or quote is left behind
    assert (line["message"], line["detail"]) == ("***", "<***>")


def test_a_secret_that_is_not_valid_utf8_is_blanked_too(lines) -> None:
    # os.environ spells a byte that is not UTF-8 as a lone surrogate; a log line spells that as an escape.
    secret = "tok-\udcff-not-utf8"
    logs.register_secrets([secret])
    logs.log("INFO", "calling", token=secret, message_text=f"with {secret}")
    [line] = written(lines)
    assert (line["token"], line["message_text"]) == ("***", "with ***")
    assert "not-utf8" not in lines.getvalue()


def test_registering_the_same_secrets_again_changes_nothing(lines) -> None:
    logs.register_secrets(["same-secret-value"])
    before = logs._secrets
    logs.register_secrets(["same-secret-value"])
    assert logs._secrets is before


# ---- the line --------------------------------------------------------------------------------------------------

def test_a_line_has_time_level_message_then_the_bound_context_then_the_fields(lines, monkeypatch) -> None:
    monkeypatch.setattr(logs.time, "time", lambda: 1764212400.123456)
    token = logs.bind(request_id="req-1", correlation_id=None)
    try:
        logs.log("INFO", "made", instance="lhins-web00001", nothing=None)
        assert logs.current("request_id") == "req-1"
        assert logs.current("correlation_id") is None  # None is never bound
    finally:
        logs.unbind(token)
    assert logs.current("request_id") is None
    [line] = written(lines)
    assert line == {"time": 1764212400.123, "level": "INFO", "message": "made", "request_id": "req-1",
                    "instance": "lhins-web00001"}
    assert list(line)[:3] == ["time", "level", "message"]


def test_levels_below_the_chosen_one_are_not_written(lines) -> None:
    logs.log("DEBUG", "hidden at INFO")
    logs.log("INFO", "shown at INFO")
    logs.set_level("WARNING")
    logs.log("INFO", "hidden at WARNING")
    logs.log("WARNING", "shown at WARNING")
    logs.set_level("no-such-level")  # an unknown level means INFO
    logs.log("INFO", "shown again")
    logs.log("NOTICE", "an unknown level is written like INFO")
    logs.set_level("debug")
    logs.log("DEBUG", "shown at debug")
    assert [line["message"] for line in written(lines)] == [
        "shown at INFO", "shown at WARNING", "shown again", "an unknown level is written like INFO",
        "shown at debug"]


def test_a_value_that_is_not_valid_utf8_never_loses_the_line(lines) -> None:
    logs.log("INFO", "odd \ud800 name", name="web\udcff", nested={"k\ud800": ["\ud801", 2**70]})
    [line] = written(lines)
    assert line["message"] == "odd \\ud800 name"
    assert line["name"] == "web\\udcff"
    assert line["nested"] == {"k\\ud800": ["\\ud801", str(2**70)]}


def test_log_exception_writes_the_error_class_its_message_and_the_traceback(lines) -> None:
    try:
        raise KeyError("the-missing-key")
    except KeyError as err:
        logs.log_exception("unexpected", err, instance="lhins-web00001")
    [line] = written(lines)
    assert (line["level"], line["message"], line["error"], line["instance"]) == (
        "ERROR", "unexpected", "KeyError", "lhins-web00001")
    assert line["traceback"].startswith("Traceback (most recent call last):\n")
    assert line["traceback"].endswith("KeyError: 'the-missing-key'\n")


# ---- clean(): the JSON-safe copy (sinks and the log fallback use it) -------------------------------------------

class Odd:
    def __str__(self) -> str:
        return "odd-object"


def test_clean_spells_what_json_cannot_hold() -> None:
    assert logs.clean("a\ud800b") == "a\\ud800b"
    assert logs.clean("plain é") == "plain é"
    assert logs.clean({1: Odd(), "n": None, "t": True, "f": 1.5}) == {"1": "odd-object", "n": None, "t": True,
                                                                        "f": 1.5}
    assert logs.clean(("x", {"y"}, frozenset())) == ["x", ["y"], []]
    assert logs.clean([2**63 - 1, 2**63, -(2**63)]) == [2**63 - 1, str(2**63), str(-(2**63))]


def test_clean_cuts_nesting_deeper_than_eight() -> None:
    deep: Any = "leaf"
    for _ in range(12):
        deep = [deep]
    cut = logs.clean(deep)
    depth = 0
    while isinstance(cut, list):
        cut, depth = cut[0], depth + 1
    assert (depth, cut) == (9, "...")
    nested: Any = "leaf"
    for _ in range(9):
        nested = {"k": nested}
    kept = logs.clean(nested)
    for _ in range(9):
        kept = kept["k"]
    assert kept == "leaf"  # nine levels of dicts keep their leaf: depth is counted from 0
    assert logs.clean(["x"], depth=8) == ["x"]
    assert logs.clean(["x"], depth=9) == "..."
