"""What one invocation came to, in a few words: the `outcome` of the `invocation finished` log line, and the
exit status of `python -m blueprint invoke`, both read from what the handler returned.

| outcome | when | exit status |
|---|---|---|
| `ok` | every instance done (created, ready, found, pruned, a dry run, handed to fan-out children) | 0 |
| `partial` | some results failed (an instance, or a copy or share beside an image that was made) | 4 |
| `failed` | every result failed (a refused queue record counts as one) | 4 |
| `refused <code>` | the event or its job cannot run (reported as `.failed`, not retried) | 3 |
| `http <status>` | an HTTP request; ` partial` / ` failed` added when a 2xx body lists failures | 0, 3 (4xx), 4 |

The handler raising (`raised <code>`, exit 1) and a bad configuration (exit 2) are decided by the caller, which
sees them before there is an answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_RAISED", "EXIT_REFUSED", "EXIT_USAGE", "exit_status", "summarize"]

EXIT_OK = 0
EXIT_RAISED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_FAILED = 4


def summarize(answer: object, counts: Mapping[str, int] | None = None) -> str:
    """The invocation's outcome (the table above) from what the handler returned, and from the results it
    counted (`counts`: outcome -> number), which also hold what an answer leaves out (a copy or share that
    failed beside an image that was made)."""
    if isinstance(answer, Mapping):
        status = answer.get("statusCode")
        if isinstance(status, int):
            return _http(status, answer, counts)
        error = answer.get("Error")
        if isinstance(error, Mapping):
            return f"refused {error.get('Code')}"
    return _tally(*_with_counts(_count(answer), counts))


def exit_status(outcome: str) -> int:
    """The exit status `invoke` gives an outcome (the table above)."""
    word, _, rest = outcome.partition(" ")
    if word == "ok":
        return EXIT_OK
    if word == "refused":
        return EXIT_REFUSED
    if word == "http":
        status, _, tally = rest.partition(" ")
        if status.startswith("2"):
            return EXIT_FAILED if tally else EXIT_OK
        return EXIT_REFUSED if status.startswith("4") else EXIT_FAILED
    return EXIT_RAISED if word == "raised" else EXIT_FAILED


def _with_counts(found: tuple[int, int], counts: Mapping[str, int] | None) -> tuple[int, int]:
    """(failed, total): the answer's, unless the counted results hold more failures than it shows."""
    failed = sum(n for kind, n in (counts or {}).items() if kind == "failed" or kind.endswith(".failed"))
    if counts is None or failed <= found[0]:
        return found
    return failed, max(found[1], sum(counts.values()))


def _tally(failed: int, total: int) -> str:
    if not failed:
        return "ok"
    return "failed" if failed == total else "partial"


def _count(answer: object) -> tuple[int, int]:
    """(failed, total) over the instances (or queue records) an answer reports."""
    if isinstance(answer, Mapping):
        if isinstance(answer.get("Records"), Sequence):
            return _sum([_record(item) for item in answer["Records"]])
        if isinstance(answer.get("Results"), Sequence):
            return _sum([_count(item) for item in answer["Results"]])
        if "InstanceId" not in answer:
            return 0, 0
        beside = answer.get("Beside")  # copies and shares next to one instance's image (HTTP)
        return _sum([_result(answer), *(_result(r) for r in (beside if isinstance(beside, Sequence) else ()))])
    if isinstance(answer, Sequence) and not isinstance(answer, str | bytes):
        return _sum([_count(item) for item in answer])
    return 0, 0


def _record(record: object) -> tuple[int, int]:
    """A queue record's answer: refused or failed as a whole (it has an Error: one failure), or a run's answer
    (its instances count)."""
    if isinstance(record, Mapping) and isinstance(record.get("Error"), Mapping):
        return 1, 1
    return _count(record)


def _result(result: object) -> tuple[int, int]:
    return (1 if isinstance(result, Mapping) and result.get("Error") else 0), 1


def _sum(counts: list[tuple[int, int]]) -> tuple[int, int]:
    return sum(f for f, _ in counts), sum(t for _, t in counts)


def _http(status: int, answer: Mapping[str, object], counts: Mapping[str, int] | None) -> str:
    """`http <status>`, plus ` partial` / ` failed` when a 2xx answer reports failures."""
    body = answer.get("body")
    if not (200 <= status < 300 and isinstance(body, str)) or str(answer.get("isBase64Encoded")).lower() == "true":
        return f"http {status}"
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    tally = _tally(*_with_counts(_count(parsed), counts))
    return f"http {status}" if tally == "ok" else f"http {status} {tally}"
