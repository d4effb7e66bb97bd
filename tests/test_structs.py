"""mlproj.structs against the standard library's dataclasses: the same class declared with each must
behave the same way (construction, defaults, equality, hashing, repr, replace, asdict, frozen errors)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import pytest

from mlproj import structs

Decorate = Callable[..., Any]
FLAVOURS = [
    pytest.param((dataclasses.dataclass, dataclasses.field), id="stdlib"),
    pytest.param((structs.dataclass, structs.field), id="mlproj"),
]


class Pair(NamedTuple):
    left: int
    right: int


def declare(decorate: Decorate, field: Decorate, *, frozen: bool) -> tuple[Any, Any]:
    @decorate(frozen=frozen)
    class Inner:
        name: str
        size: int = 0

    @decorate(frozen=frozen)
    class Outer:
        run_id: str
        inner: Inner
        count: int = 3
        tags: Mapping[str, str] = field(default_factory=dict)
        items: list[Any] = field(default_factory=list)
        lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)
        where: Path | None = None
        pair: Pair | None = None

    return Inner, Outer


def outcome(action: Callable[[], Any]) -> Any:
    """What an action gives, or the type of exception it raises (messages may differ in wording)."""
    try:
        return ("ok", action())
    except Exception as exc:  # noqa: BLE001 - the exception type is the result compared
        kind = "frozen" if isinstance(exc, AttributeError) else type(exc).__name__
        return ("raised", kind)


def behaviour(
    decorate: Decorate, field: Decorate, asdict: Decorate, replace: Decorate, *, frozen: bool
) -> Any:
    inner_class, outer_class = declare(decorate, field, frozen=frozen)
    inner = inner_class("a", 2)
    outer = outer_class("r1", inner, tags={"k": "v"}, where=Path("/x"), pair=Pair(1, 2), lines={"a": 1})
    same = outer_class("r1", inner_class("a", 2), tags={"k": "v"}, where=Path("/x"), pair=Pair(1, 2))
    results: dict[str, Any] = {
        "repr": repr(outer)
        .replace(outer_class.__qualname__, "Outer")
        .replace(inner_class.__qualname__, "Inner"),
        "eq": outer == same,
        "eq other type": outer == ("r1",),
        "ne": outer != outer_class("r2", inner),
        "defaults": (outer_class("x", inner).count, outer_class("x", inner).tags),
        "fresh factory": outer_class("x", inner).items is not outer_class("y", inner).items,
        "class default": getattr(outer_class, "count", None),
        "factory not on class": hasattr(outer_class, "tags"),
        "asdict": asdict(outer),
        "replace": repr(replace(outer, count=9)).replace(outer_class.__qualname__, "Outer"),
        "replace keeps": replace(outer, count=9).inner is inner,
        "replace unknown": outcome(lambda: replace(outer, nope=1)),
        "positional": outer_class("p", inner, 5).count,
        "too many": outcome(lambda: outer_class(*range(20))),
        "missing": outcome(lambda: outer_class("only")),
        "unknown": outcome(lambda: outer_class("r", inner, nope=1)),
        "twice": outcome(lambda: outer_class("r", inner, run_id="again")),
        "assign": outcome(lambda: setattr(outer, "count", 4)),
        "delete": outcome(lambda: delattr(outer, "count")),
        "hash": outcome(
            lambda: (
                hash(
                    outer_class("h", inner_class("b")),
                )
                == hash(outer_class("h", inner_class("b")))
            )
        ),
        "match args": outer_class.__match_args__,
        "fields": [
            f.name
            for f in (dataclasses.fields if decorate is dataclasses.dataclass else structs.fields)(outer)
        ],
    }
    if not frozen:
        outer.count = 7
        results["assigned"] = outer.count
    return results


@pytest.mark.parametrize("frozen", [True, False])
def test_same_behaviour_as_the_standard_library(frozen: bool) -> None:
    standard = behaviour(
        dataclasses.dataclass, dataclasses.field, dataclasses.asdict, dataclasses.replace, frozen=frozen
    )
    ours = behaviour(structs.dataclass, structs.field, structs.asdict, structs.replace, frozen=frozen)
    assert ours == standard
    assert standard["eq"] and standard["replace keeps"]  # the comparison compared something


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_declaration_errors(flavour: tuple[Any, Any]) -> None:
    decorate, field = flavour
    with pytest.raises(ValueError, match="mutable default"):

        @decorate
        class Bad:
            items: list[int] = []  # noqa: RUF012 - the error under test

    with pytest.raises(TypeError, match="non-default argument"):

        @decorate
        class Order:
            first: int = 0
            second: int

    with pytest.raises(ValueError, match="both default and default_factory"):
        field(default=1, default_factory=list)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_what_the_class_writes_itself_is_kept(flavour: tuple[Any, Any]) -> None:
    decorate, _ = flavour

    @decorate(frozen=True)
    class Custom:
        value: int

        def __repr__(self) -> str:
            return "custom"

        def __hash__(self) -> int:
            return 7

    made: Any = Custom  # built by the decorator under test, which the type checker does not follow
    assert repr(made(1)) == "custom"
    assert hash(made(1)) == 7
    assert made(1) == made(1)

    @decorate
    class Mutable:
        value: int

    mutable: Any = Mutable
    assert mutable.__hash__ is None
    with pytest.raises(TypeError):
        hash(mutable(1))


def test_fields_and_asdict_refuse_other_objects() -> None:
    functions: tuple[Any, ...] = (structs.fields, structs.asdict)
    for function in functions:
        with pytest.raises(TypeError):
            function(object())


def test_classvar_is_not_a_field() -> None:
    @structs.dataclass(frozen=True)
    class WithClassVar:
        LIMIT: ClassVar[int] = 3
        value: int = 0

    assert [f.name for f in structs.fields(WithClassVar)] == ["value"]
    assert WithClassVar.LIMIT == 3


def test_the_standard_functions_work_on_these_classes() -> None:
    """A backend of another package may use the standard library's functions on what mlproj gives it."""
    inner_class, outer_class = declare(structs.dataclass, structs.field, frozen=True)
    outer: Any = outer_class("r1", inner_class("a", 2), tags={"k": "v"})
    seen_as_dataclass = dataclasses.is_dataclass(outer)
    assert seen_as_dataclass
    assert [f.name for f in dataclasses.fields(outer)] == [f.name for f in structs.fields(outer)]
    changed = dataclasses.replace(outer, count=5)
    assert type(changed) is outer_class
    assert changed.count == 5
    assert changed.tags == {"k": "v"}
    assert dataclasses.asdict(outer) == structs.asdict(outer)
    assert dataclasses.asdict(outer)["inner"] == {"name": "a", "size": 2}
