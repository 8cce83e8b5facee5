"""Filters and paging shared by the Describe* actions."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from emulator.errors import ApiError

MAX_FILTERS = 10
MAX_FILTER_VALUES = 100
MAX_IDS = 100
MAX_LIMIT = 100
DEFAULT_LIMIT = 20

Getter = Callable[[dict[str, Any]], list[str]]


def check_ids_or_filters(params: Mapping[str, Any], ids_field: str) -> None:
    """IDs and Filters are mutually exclusive; at most 100 IDs.

    Raises:
        ApiError: InvalidParameter.ParameterConflict or InvalidParameterValue.LimitExceeded.
    """
    if ids_field in params and "Filters" in params:
        raise ApiError("InvalidParameter.ParameterConflict", f"`{ids_field}` and `Filters` cannot be used together.")
    if len(params.get(ids_field, [])) > MAX_IDS:
        raise ApiError("InvalidParameterValue.LimitExceeded", f"`{ids_field}` holds more than {MAX_IDS} values.")


def check_filters(
    filters: Sequence[Mapping[str, Any]], getters: Mapping[str, Getter], *, max_values: int = MAX_FILTER_VALUES
) -> None:
    """At most 10 filters of at most `max_values` values (100 unless the action documents fewer), supported names.

    Raises:
        ApiError: InvalidParameterValue.LimitExceeded, InvalidParameter.FilterValueLimitExceeded,
            InvalidParameter.InvalidFilterNotSupportedName.
    """
    if len(filters) > MAX_FILTERS:
        raise ApiError("InvalidParameterValue.LimitExceeded", f"At most {MAX_FILTERS} filters are allowed.")
    for item in filters:
        name = item["Name"]
        if name not in getters and not (name.startswith("tag:") and len(name) > 4):
            raise ApiError(
                "InvalidParameter.InvalidFilterNotSupportedName",
                f"The filter name `{name}` is not supported.",
            )
        if len(item["Values"]) > max_values:
            raise ApiError(
                "InvalidParameter.FilterValueLimitExceeded",
                f"Filter `{name}` has more than {max_values} values.",
            )


def tag_getters() -> dict[str, Getter]:
    """The tag-key and tag-value filters every tagged resource supports."""
    return {
        "tag-key": lambda item: [tag["Key"] for tag in item.get("Tags") or []],
        "tag-value": lambda item: [tag["Value"] for tag in item.get("Tags") or []],
    }


def _matches(item: dict[str, Any], name: str, values: Sequence[str], getters: Mapping[str, Getter],
             split_colon: bool = False) -> bool:
    if name.startswith("tag:"):
        key = name[4:]
        if split_colon:
            # How the cloud parses `tag:<key>` when the key holds a colon is undocumented; this reading keeps
            # only the part before it, so `tag:scf-blueprint:slot` looks for a key `scf-blueprint`.
            key = key.split(":", 1)[0]
        return any(tag["Key"] == key and tag["Value"] in values for tag in item.get("Tags") or [])
    return any(value in values for value in getters[name](item))


def apply_filters(
    items: Sequence[dict[str, Any]],
    filters: Sequence[Mapping[str, Any]],
    getters: Mapping[str, Getter],
    *,
    split_colon: bool = False,
) -> list[dict[str, Any]]:
    """AND across filters, OR within one filter's values; exact matches only."""
    return [
        item for item in items if all(_matches(item, f["Name"], f["Values"], getters, split_colon) for f in filters)
    ]


def page(items: Sequence[dict[str, Any]], params: Mapping[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    """(TotalCount before paging, the page) for Offset/Limit.

    Raises:
        ApiError: InvalidParameterValue.Negative or InvalidParameterValue.OutOfRange.
    """
    offset = params.get("Offset", 0)
    limit = params.get("Limit", DEFAULT_LIMIT)
    if offset < 0 or limit < 0:
        field = "Offset" if offset < 0 else "Limit"
        raise ApiError("InvalidParameterValue.Negative", f"`{field}` cannot be negative.")
    if limit > MAX_LIMIT:
        raise ApiError("InvalidParameterValue.OutOfRange", f"`Limit` must be between 0 and {MAX_LIMIT}.")
    return len(items), list(items[offset : offset + limit])
