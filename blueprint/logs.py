"""Structured logs: one JSON object per line (CLS indexes the keys), never a secret.

`log(level, message, **fields)` adds the SCF request id and correlation id of the current invocation
(`bind`). Every line passes through `redact`, which blanks any registered secret value wherever it appears,
including inside SDK exception text.
"""

from __future__ import annotations

import contextvars
import sys
import threading
import time
import traceback
from collections.abc import Iterable
from typing import IO, Any

import orjson

__all__ = ["bind", "clean", "current", "log", "log_exception", "redact", "redact_cut", "register_secrets", "set_level",
           "set_stream", "unbind"]

_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("blueprint_log_context", default={})  # noqa: B039
_secrets: tuple[str, ...] = ()
# The same values as a set, for the check every invocation makes (are these credentials registered yet?).
_known: frozenset[str] = frozenset()
_secrets_lock = threading.Lock()
_state: dict[str, Any] = {"level": 20, "stream": None}


def register_secrets(values: Iterable[str | None]) -> None:
    """Remember secret values so `redact` blanks them (credentials, tokens, webhook secrets).

    Each value is also remembered as JSON spells it inside a string (a quote or backslash in a secret is
    escaped in a log line, and the raw form would no longer match). Values under 4 characters are ignored.
    """
    global _secrets, _known  # noqa: PLW0603 (one process-wide list, replaced atomically)
    values = list(values)
    known = _known
    if all(value in known for value in values if isinstance(value, str) and len(value) >= 4):
        return  # a warm invocation's credentials: registered already
    fresh: set[str] = set()
    for value in values:
        if not isinstance(value, str) or len(value) < 4:
            continue
        fresh.add(value)
        try:
            fresh.add(orjson.dumps(value).decode()[1:-1])
        except orjson.JSONEncodeError:
            # A lone surrogate (os.environ's spelling of a byte that is not UTF-8): a log line spells it as an
            # escape (`clean`), whose backslash JSON escapes again; both spellings are remembered.
            escaped = value.encode("utf-8", "backslashreplace").decode()
            fresh.update((escaped, orjson.dumps(escaped).decode()[1:-1]))
    with _secrets_lock:
        if fresh <= set(_secrets):
            return
        _secrets = tuple(sorted(set(_secrets) | fresh, key=len, reverse=True))
        _known = frozenset(_secrets)


def redact(text: str) -> str:
    """Replace every registered secret in `text` with `***`."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def redact_cut(text: str) -> str:
    """`redact`, and also blank a registered secret's beginning at the very end of `text`: for a text something
    cut off after a length (TAT keeps the first 24 KiB of a command's output), through a secret maybe."""
    text = redact(text)
    for secret in _secrets:
        for length in range(len(secret) - 1, 3, -1):
            if text.endswith(secret[:length]):
                return text[:-length] + "***"
    return text


def set_level(level: str) -> None:
    """Set the lowest level that is written."""
    _state["level"] = _LEVELS.get(level.upper(), 20)


def set_stream(stream: IO[str] | None) -> None:
    """Write to this stream instead of stdout (tests); None restores stdout."""
    _state["stream"] = stream


def bind(**fields: Any) -> contextvars.Token[dict[str, Any]]:
    """Add fields (request_id, correlation_id, ...) to every line logged in this context."""
    return _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


def unbind(token: contextvars.Token[dict[str, Any]]) -> None:
    """Drop what the matching `bind` added (end of an invocation)."""
    _context.reset(token)


def current(name: str) -> Any:
    """A field bound in this context, or None."""
    return _context.get().get(name)


def log(level: str, message: str, **fields: Any) -> None:
    """Write one JSON line: time, level, message, the bound context, then `fields`."""
    if _LEVELS.get(level, 20) < _state["level"]:
        return
    record = {"time": round(time.time(), 3), "level": level, "message": message, **_context.get(),
              **{k: v for k, v in fields.items() if v is not None}}
    stream = _state["stream"] or sys.stdout
    stream.write(redact(_dumps(record)) + "\n")


def _dumps(record: dict[str, Any]) -> str:
    """Serialise a log record; never raises (a lone surrogate or odd object must not crash a request)."""
    try:
        return orjson.dumps(record, default=str).decode()
    except (TypeError, orjson.JSONEncodeError):
        return orjson.dumps(_clean(record), default=repr).decode()


def clean(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy: strings that are not valid UTF-8 (lone surrogates) spelled with escapes, odd objects
    as their text, deep nesting cut."""
    return _clean(value, depth)


def _clean(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if depth > 8:
        return "..."
    if isinstance(value, dict):
        return {_clean(str(k)): _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v, depth + 1) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value if not isinstance(value, int) or abs(value) < 2**63 else str(value)
    return _clean(str(value), depth + 1)


def log_exception(message: str, err: BaseException, **fields: Any) -> None:
    """Log an unexpected error with its traceback (to the log only, never to a caller)."""
    trace = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    log("ERROR", message, error=type(err).__name__, traceback=trace, **fields)
