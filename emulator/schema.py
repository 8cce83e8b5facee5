"""Per-action request schemas: field -> (type, required), checked the way the gateway does.

Types: "str", "int", "bool", "float", "obj" (any JSON object, not looked into), "str[]", "tag[]",
"filter[]", "obj[]", "paramconf[]" (TAT's DefaultParameterConf), the Tag service's "tagkv[]"
({TagKey, TagValue}) and "tagfilter[]", plus nested objects and lists of objects a service declares
with `define_object` / `define_list` (SCF's `Code`, `Environment`). GET requests arrive as flat
strings (`Filters.0.Values.1=x`, booleans `True`); `unflatten` rebuilds the JSON shape and `validate`
coerces those strings, so POST and GET share one code path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emulator.errors import ApiError

Schema = Mapping[str, tuple[str, bool]]

_TRUE = {"true", "1"}
_FALSE = {"false", "0"}


def _insert(root: dict[str, Any], path: list[str], value: str) -> None:
    node: Any = root
    for key in path[:-1]:
        child = node.get(key) if isinstance(node, dict) else None
        if child is None:
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


def _listify(node: Any) -> Any:
    """Turn dicts whose keys are all indices into lists, bottom-up."""
    if not isinstance(node, dict):
        return node
    items = {key: _listify(value) for key, value in node.items()}
    if items and all(key.isdigit() for key in items):
        return [items[key] for key in sorted(items, key=int)]
    return items


def unflatten(flat: Mapping[str, str]) -> dict[str, Any]:
    """Rebuild nested params from a GET query (`Tags.0.Key=k` -> {"Tags": [{"Key": "k"}]})."""
    root: dict[str, Any] = {}
    for key, value in flat.items():
        _insert(root, key.split("."), value)
    result = _listify(root)
    return result if isinstance(result, dict) else {}


def _bad(field: str, expected: str) -> ApiError:
    return ApiError("InvalidParameter", f"The parameter `{field}` must be of type {expected}.")


def _scalar(field: str, kind: str, value: Any, from_query: bool) -> Any:
    if kind == "str":
        if isinstance(value, str):
            return value
    elif kind == "bool":
        if isinstance(value, bool):
            return value
        if from_query and isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
    elif kind in ("int", "float"):
        return _number(field, kind, value, from_query)
    raise _bad(field, kind)


def _number(field: str, kind: str, value: Any, from_query: bool) -> Any:
    if isinstance(value, str) and from_query:
        try:
            return int(value) if kind == "int" else float(value)
        except ValueError:
            raise _bad(field, kind) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(field, kind)
    if kind == "int" and not (isinstance(value, int) or value.is_integer()):
        raise _bad(field, kind)
    return int(value) if kind == "int" else value


def _object(field: str, value: Any, shape: Schema, from_query: bool) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(field, "object")
    return validate(value, shape, from_query=from_query, prefix=f"{field}.")


_TAG: Schema = {"Key": ("str", True), "Value": ("str", True)}
_FILTER: Schema = {"Name": ("str", True), "Values": ("str[]", True)}
_TAG_KV: Schema = {"TagKey": ("str", True), "TagValue": ("str", True), "Category": ("str", False)}
_TAG_FILTER: Schema = {"TagKey": ("str", True), "TagValue": ("str[]", False)}
_PARAM_CONF: Schema = {
    "ParameterName": ("str", True),
    "ParameterValue": ("str", False),
    "ParameterDescription": ("str", False),
}
_ELEMENTS: dict[str, Schema | str] = {
    "str[]": "str",
    "paramconf[]": _PARAM_CONF,
    "tag[]": _TAG,
    "filter[]": _FILTER,
    "obj[]": "obj",
    "tagkv[]": _TAG_KV,
    "tagfilter[]": _TAG_FILTER,
}
# Nested objects by type name (a parameter whose value is one JSON object with its own schema).
_OBJECTS: dict[str, Schema] = {}


def define_object(kind: str, shape: Schema) -> str:
    """Declare a nested-object type `kind` checked against `shape`; returns `kind` for use in schemas."""
    _OBJECTS[kind] = shape
    return kind


def define_list(kind: str, element: Schema) -> str:
    """Declare a list-of-objects type `kind` whose items are checked against `element`; returns `kind`."""
    _ELEMENTS[kind] = element
    return kind


def _opaque(field: str, value: Any) -> dict[str, Any]:
    """An object the emulator accepts without looking inside (e.g. ResetInstance's LoginConfiguration)."""
    if not isinstance(value, dict):
        raise _bad(field, "object")
    return value


def _field(field: str, kind: str, value: Any, from_query: bool) -> Any:
    if kind == "obj":
        return _opaque(field, value)
    if kind in _OBJECTS:
        return _object(field, value, _OBJECTS[kind], from_query)
    element = _ELEMENTS.get(kind)
    if element is None:
        return _scalar(field, kind, value, from_query)
    if not isinstance(value, list):
        raise _bad(field, "array")
    out = []
    for index, item in enumerate(value):
        name = f"{field}.{index}"
        if element == "obj":
            out.append(_opaque(name, item))
        elif isinstance(element, str):
            out.append(_scalar(name, element, item, from_query))
        else:
            out.append(_object(name, item, element, from_query))
    return out


def validate(
    params: Mapping[str, Any], schema: Schema, *, from_query: bool = False, prefix: str = ""
) -> dict[str, Any]:
    """Check `params` against `schema`, returning the coerced params.

    Raises:
        ApiError: UnknownParameter, MissingParameter or InvalidParameter (wrong type).
    """
    for name in params:
        if name not in schema:
            raise ApiError("UnknownParameter", f"The parameter `{prefix}{name}` is not recognized.")
    result: dict[str, Any] = {}
    for name, (kind, required) in schema.items():
        if name not in params or params[name] is None:
            if required:
                raise ApiError("MissingParameter", f"The request is missing a required parameter `{prefix}{name}`.")
            continue
        result[name] = _field(prefix + name, kind, params[name], from_query)
    return result
