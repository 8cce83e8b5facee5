"""`@record`: a dataclass whose methods are not compiled at import (the cold start's cheapest record type).

A `@dataclass` writes the source of `__init__`, `__repr__`, `__eq__`, `__hash__` and, when frozen,
`__setattr__`/`__delattr__`, and compiles each with `exec` when the class is defined: about 4.5 M instructions
of a cold start per frozen class on Python 3.10, and the function defines some twenty of them on a timer's path.
`@record` lets `dataclasses.dataclass` do everything else (the fields, `__dataclass_fields__`, `__match_args__`,
so `dataclasses.replace`, `fields` and `asdict` work as before) and puts in generic methods, written once here,
that behave as the generated ones do: positional-or-keyword `__init__` (or keyword-only) with defaults and
default factories and `__post_init__`, a `__repr__` of the fields with `repr=True`, `__eq__` on the fields with
`compare=True` between instances of the same class, a `__hash__` of those when frozen (none when mutable), and
`FrozenInstanceError` on assignment when frozen. Methods the class writes itself are kept, as with `@dataclass`.
Defining one costs about a tenth of a `@dataclass`; making an instance costs a few microseconds more.

mypy reads it as a dataclass (`dataclass_transform`): constructor arguments, frozen fields and `replace` are
checked as before.
"""

from __future__ import annotations

import dataclasses
import reprlib
from collections.abc import Callable
from operator import attrgetter
from typing import Any, TypeVar, overload

from typing_extensions import dataclass_transform

__all__ = ["record", "replace"]

T = TypeVar("T")
_MISSING: Any = dataclasses.MISSING


@overload
def record(cls: type[T], /) -> type[T]: ...


@overload
def record(*, frozen: bool = True, kw_only: bool = False) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, dataclasses.Field))
def record(cls: Any = None, /, *, frozen: bool = True, kw_only: bool = False) -> Any:
    """Make `cls` a dataclass (frozen unless `frozen=False`) without compiling its methods."""
    def wrap(klass: Any) -> Any:
        return _build(klass, frozen=frozen, kw_only=kw_only)

    return wrap if cls is None else wrap(cls)


# Names dataclasses looks for in a string annotation (`from __future__ import annotations`).
_SPECIAL = ("ClassVar", "InitVar", "KW_ONLY")


def _build(cls: Any, *, frozen: bool, kw_only: bool) -> Any:
    cls = _dataclass(cls, kw_only=kw_only)
    fields = dataclasses.fields(cls)
    compared = tuple(f.name for f in fields if f.compare)
    own = cls.__dict__
    # As @dataclass decides: a class that writes __hash__ keeps it; one that writes only __eq__ gets ours.
    own_hash = own.get("__hash__", _MISSING)
    explicit_hash = not (own_hash is _MISSING or (own_hash is None and "__eq__" in own))
    methods: dict[str, Any] = {
        "__init__": _init(cls, fields, kw_only=kw_only),
        "__repr__": _repr(tuple(f.name for f in fields if f.repr)),
        "__eq__": _eq(_values(compared)),
    }
    for name, method in methods.items():
        if name not in own:
            method.__qualname__ = f"{cls.__qualname__}.{name}"
            setattr(cls, name, method)
    if not explicit_hash:
        hashed = tuple(f.name for f in fields if (f.compare if f.hash is None else f.hash))
        cls.__hash__ = _hash(_values(hashed)) if frozen else None
    if frozen:
        _freeze(cls, frozenset(f.name for f in fields))
    # `replace` copies the fields' values as they are when a new instance would get them unchanged: every field
    # an argument of __init__ (none computed from the others), and no __post_init__ (nor InitVar) to run again.
    simple = (len(cls.__dataclass_fields__) == len(fields) and all(f.init for f in fields)
              and getattr(cls, "__post_init__", None) is None)
    cls.__record_copy__ = (tuple(f.name for f in fields), frozenset(f.name for f in fields)) if simple else None
    return cls


def replace(obj: T, /, **changes: Any) -> T:
    """`dataclasses.replace` for a record: the same copy, about five times faster on a record of many fields.

    A record whose fields are all plain arguments of `__init__` (no `__post_init__`, no `init=False`) is
    copied field by field with the changes laid over; any other dataclass goes through `dataclasses.replace`.
    A value cached on the instance (a `functools.cached_property`) is not a field and is not copied.

    Raises:
        TypeError: a change names no field (as `dataclasses.replace` raises).
    """
    cls = type(obj)
    copy = cls.__dict__.get("__record_copy__")
    if copy is None or not copy[1].issuperset(changes):
        return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    values = obj.__dict__
    new: Any = object.__new__(cls)
    # A record's __dict__ holds its fields in order, and nothing else unless a value was cached on it.
    new.__dict__.update(values if len(values) == len(copy[0]) else {name: values[name] for name in copy[0]},
                        **changes)
    return new  # type: ignore[no-any-return]


def _dataclass(cls: Any, *, kw_only: bool) -> Any:
    """`dataclasses.dataclass` without its methods, and without its three looks into each string annotation.

    For every string annotation dataclasses asks, with a regex and a lookup in the class's module, whether it
    names ClassVar, InitVar or KW_ONLY: about half of what defining a record costs. An annotation whose text
    names none of them is shown to it as `object` meanwhile and given back after, to `__annotations__` and to
    its field's `type`; any other annotation goes through dataclasses' own checks unchanged.
    """
    notes = cls.__dict__.get("__annotations__", {})  # noqa: RUF063 (changed in place; get_annotations copies)
    plain = {name: note for name, note in notes.items()
             if isinstance(note, str) and not any(special in note for special in _SPECIAL)}
    notes.update(dict.fromkeys(plain, object))
    try:
        cls = dataclasses.dataclass(cls, init=False, repr=False, eq=False, kw_only=kw_only)
    finally:
        notes.update(plain)
    own_fields = cls.__dataclass_fields__
    for name, note in plain.items():
        own_fields[name].type = note
    return cls


def _init(cls: Any, fields: tuple[dataclasses.Field[Any], ...], *, kw_only: bool) -> Callable[..., None]:
    """A generic `__init__`: the same arguments, defaults, factories and errors as the generated one.

    The values go into the instance's `__dict__` in one update, in field order: a template of every field's
    default (or a mark) merged with the arguments, then the few fields with a factory or no default settled.
    """
    spec = tuple((f.name, f.default, f.default_factory) for f in fields if f.init)
    later = tuple((f.name, f.default, f.default_factory) for f in fields if not f.init
                  and (f.default is not _MISSING or f.default_factory is not _MISSING))
    positional = () if kw_only else tuple(name for name, _, _ in spec if not _field_kw_only(cls, name))
    known = frozenset(name for name, _, _ in spec)
    # Every field in order, with its default, or _MISSING when a factory or the caller must give it.
    template = {name: default for name, default, _ in (*spec, *later)}
    # The fields the template cannot settle: (name, factory or _MISSING when required), in field order.
    unsettled: tuple[tuple[str, Any], ...] = tuple(
        (name, factory) for name, default, factory in (*spec, *later) if default is _MISSING)
    post_init = getattr(cls, "__post_init__", None) is not None

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        # Keywords only, all known (how records are made on the warm path): they are the values as they are.
        given = kwargs if not args and known.issuperset(kwargs) else _bind(positional, known, args, kwargs)
        values = self.__dict__
        values.update(template)
        values.update(given)
        for name, factory in unsettled:
            if name not in given:
                if factory is _MISSING:
                    raise TypeError(f"__init__() missing 1 required argument: {name!r}")
                values[name] = factory()
        if post_init:
            self.__post_init__()

    return __init__


def _bind(positional: tuple[str, ...], known: frozenset[str], args: tuple[Any, ...],
          kwargs: dict[str, Any]) -> dict[str, Any]:
    """The arguments by field name.

    Raises:
        TypeError: too many positional arguments, an unknown keyword, or one given twice.
    """
    if len(args) > len(positional):
        raise TypeError(f"__init__() takes {len(positional) + 1} positional arguments but {len(args) + 1} were given")
    values = dict(zip(positional, args, strict=False))
    if not kwargs:
        return values
    for key in kwargs:
        if key in values:
            raise TypeError(f"__init__() got multiple values for argument {key!r}")
        if key not in known:
            raise TypeError(f"__init__() got an unexpected keyword argument {key!r}")
    values.update(kwargs)
    return values


def _field_kw_only(cls: Any, name: str) -> bool:
    return bool(cls.__dataclass_fields__[name].kw_only)


def _repr(names: tuple[str, ...]) -> Callable[[Any], str]:
    @reprlib.recursive_repr()
    def __repr__(self: Any) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{self.__class__.__qualname__}({inner})"

    return __repr__


def _values(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """The fields' values as a tuple (compared and hashed as a tuple, as the generated methods do)."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        get = attrgetter(names[0])
        return lambda obj: (get(obj),)
    return lambda obj: ()


def _eq(values: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any, object], Any]:
    def __eq__(self: Any, other: object) -> Any:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return values(self) == values(other)

    return __eq__


def _hash(values: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any], int]:
    def __hash__(self: Any) -> int:
        return hash(values(self))

    return __hash__


def _freeze(cls: Any, names: frozenset[str]) -> None:
    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    for method in (__setattr__, __delattr__):
        method.__qualname__ = f"{cls.__qualname__}.{method.__name__}"
        setattr(cls, method.__name__, method)
