"""`@record` behaves as `@dataclass` does: each test builds the same class both ways and compares."""

from __future__ import annotations

import dataclasses
from dataclasses import FrozenInstanceError, dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import pytest

from blueprint.records import record, replace


def both(body: dict[str, Any], *, frozen: bool = True, kw_only: bool = False) -> tuple[Any, Any]:
    """The class `body` describes, made by @dataclass and by @record (same name, same annotations)."""
    made = []
    for decorate in (dataclass(frozen=frozen, kw_only=kw_only), record(frozen=frozen, kw_only=kw_only)):
        namespace = {"__doc__": "A record.", "__annotations__": dict(body["annotations"]),
                     **{k: v for k, v in body.items() if k != "annotations"}}
        made.append(decorate(type("Thing", (), namespace)))
    return made[0], made[1]


FIELDS: dict[str, Any] = {
    "annotations": {"a": "int", "b": "str", "tags": "list[str]", "note": "str", "hidden": "int"},
    "b": "x",
    "tags": field(default_factory=list),
    "note": field(default="", compare=False),
    "hidden": field(default=0, repr=False),
}


@pytest.mark.parametrize(("args", "kwargs"), [((1,), {}), ((1, "y"), {}), ((), {"a": 2, "b": "z"}),
                                               ((3,), {"tags": ["t"], "note": "n", "hidden": 5})])
def test_construction_repr_eq_hash_agree(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    dc, rec = both(FIELDS)
    d, r = dc(*args, **kwargs), rec(*args, **kwargs)
    assert repr(d) == repr(r)
    assert dataclasses.asdict(d) == dataclasses.asdict(r)
    assert [f.name for f in dataclasses.fields(d)] == [f.name for f in dataclasses.fields(r)]
    assert r == rec(*args, **kwargs) and r != d and (r == d) is False
    assert r == dataclasses.replace(r, note="other") and r != dataclasses.replace(r, a=99)
    for obj in (d, r):  # a list field makes hashing fail on both
        with pytest.raises(TypeError, match="unhashable type: 'list'"):
            hash(obj)


def test_hash_of_the_compared_fields() -> None:
    dc, rec = both({"annotations": {"a": "int", "note": "str", "extra": "int"},
                    "note": field(default="", compare=False), "extra": field(default=0, hash=False)})
    assert hash(rec(1, "n", 2)) == hash(dc(1, "n", 2)) == hash((1,))
    assert {rec(1, "n"), rec(1, "m")} == {rec(1)}


def test_default_factories_run_per_instance() -> None:
    _, rec = both(FIELDS)
    first, second = rec(1), rec(1)
    first.tags.append("x")
    assert second.tags == []


@pytest.mark.parametrize(("args", "kwargs"), [((), {}), ((1, "b", [], "n", 0, "extra"), {}), ((1,), {"a": 1}),
                                               ((1,), {"unknown": 1})])
def test_bad_arguments_raise_type_error_like_a_dataclass(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    dc, rec = both(FIELDS)
    with pytest.raises(TypeError):
        dc(*args, **kwargs)
    with pytest.raises(TypeError):
        rec(*args, **kwargs)


def test_frozen_refuses_assignment_and_deletion() -> None:
    dc, rec = both(FIELDS)
    for obj in (dc(1), rec(1)):
        with pytest.raises(FrozenInstanceError, match="cannot assign to field 'a'"):
            obj.a = 2
        with pytest.raises(FrozenInstanceError, match="cannot assign to field 'other'"):
            obj.other = 2
        with pytest.raises(FrozenInstanceError, match="cannot delete field 'a'"):
            del obj.a


def test_mutable_records_assign_and_are_unhashable() -> None:
    dc, rec = both(FIELDS, frozen=False)
    for obj in (dc(1), rec(1)):
        obj.a = 5
        assert obj.a == 5
        with pytest.raises(TypeError, match="unhashable"):
            hash(obj)


def test_keyword_only() -> None:
    dc, rec = both({"annotations": {"namespace": "str", "name": "str"}, "namespace": "default"}, kw_only=True)
    assert repr(rec(name="n")) == repr(dc(name="n")) == "Thing(namespace='default', name='n')"
    with pytest.raises(TypeError):
        rec("default", "n")


def test_post_init_and_fields_outside_init() -> None:
    def __post_init__(self: Any) -> None:
        object.__setattr__(self, "total", self.a * 2)

    body = {"annotations": {"a": "int", "total": "int"}, "total": field(default=0, init=False),
            "__post_init__": __post_init__}
    dc, rec = both(body)
    assert repr(rec(3)) == repr(dc(3)) == "Thing(a=3, total=6)"
    with pytest.raises(TypeError):
        rec(3, 4)


def test_methods_a_class_writes_are_kept() -> None:
    @record
    class Own:  # noqa: PLW1641 (no __hash__ on purpose: the record's one is what is tested)
        """A record with its own repr and equality."""

        a: int

        def __repr__(self) -> str:
            return "own"

        def __eq__(self, other: object) -> bool:
            return True

    assert repr(Own(1)) == "own" and Own(1) == 2
    assert hash(Own(1)) == hash((1,))  # as @dataclass(frozen=True): __eq__ alone does not keep __hash__ away


@record
class Lazy:
    """A frozen record with a computed property."""

    a: int

    @cached_property
    def double(self) -> int:
        return self.a * 2


def test_cached_property_on_a_frozen_record() -> None:
    assert Lazy(2).double == 4


def test_nested_records_repr_with_their_qualified_name() -> None:
    @record
    class Outer:
        """A record holding another."""

        inner: Any

    assert repr(Outer(Outer(None))) == (
        "test_nested_records_repr_with_their_qualified_name.<locals>.Outer(inner="
        "test_nested_records_repr_with_their_qualified_name.<locals>.Outer(inner=None))")


def test_field_types_annotations_and_class_variables_as_a_dataclass_has_them() -> None:
    made = []
    for decorate in (dataclass(frozen=True), record):
        class Thing:
            """A record with a class variable (its annotation names ClassVar) and plain string annotations."""

            limit: ClassVar[int] = 3
            a: int
            tags: list[str] = field(default_factory=list)

        made.append(decorate(Thing))
    plain, rec = made
    assert [(f.name, f.type) for f in dataclasses.fields(rec)] == [(f.name, f.type) for f in dataclasses.fields(plain)]
    assert [(f.name, f.type) for f in dataclasses.fields(rec)] == [("a", "int"), ("tags", "list[str]")]
    assert rec.__annotations__ == plain.__annotations__ == {"limit": "ClassVar[int]", "a": "int", "tags": "list[str]"}
    assert rec(1).limit == 3 and rec(1) == rec(1, [])


@pytest.mark.parametrize("frozen", [True, False])
@pytest.mark.parametrize("changes", [{}, {"a": 7}, {"b": "q", "tags": ["u"]}, {"note": "n", "hidden": 9}])
def test_replace_copies_as_dataclasses_replace_does(frozen: bool, changes: dict[str, Any]) -> None:
    dc, rec = both(FIELDS, frozen=frozen)
    original = rec(1, "y", ["t"], "note", 3)
    copy = replace(original, **changes)
    expected = dataclasses.replace(dc(1, "y", ["t"], "note", 3), **changes)
    assert type(copy) is rec and copy is not original
    assert dataclasses.asdict(copy) == dataclasses.asdict(expected) and repr(copy) == repr(expected)
    assert list(vars(copy)) == [f.name for f in dataclasses.fields(rec)]  # field order kept, as __init__ makes it
    assert original == rec(1, "y", ["t"], "note", 3)  # the original is unchanged
    if frozen:
        with pytest.raises(FrozenInstanceError):
            copy.a = 0  # type: ignore[misc]


def test_replace_refuses_what_dataclasses_replace_refuses() -> None:
    dc, rec = both(FIELDS)
    for obj in (dc(1), rec(1)):
        with pytest.raises(TypeError):
            replace(obj, nope=1)


def test_replace_runs_post_init_again_and_leaves_cached_values_behind() -> None:
    def __post_init__(self: Any) -> None:
        object.__setattr__(self, "total", self.a * 2)

    _, rec = both({"annotations": {"a": "int", "total": "int"}, "total": field(default=0, init=False),
                   "__post_init__": __post_init__})
    assert replace(rec(3), a=5).total == 10  # computed again, as dataclasses.replace does
    with pytest.raises((ValueError, TypeError), match="init=False"):  # ValueError until Python 3.12, then TypeError
        replace(rec(3), total=1)
    first = Lazy(2)
    assert first.double == 4
    assert replace(first, a=5).double == 10  # the value cached on the original is not the copy's
