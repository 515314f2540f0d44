"""flowlog/records.py: a quick record behaves as its dataclass would, only made faster."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from flowlog.records import quick_init, replacer, update_owned


@quick_init
@dataclass(frozen=True)
class Point:
    x: int
    y: int
    label: str = "p"
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlainPoint:
    x: int
    y: int
    label: str = "p"
    tags: tuple[str, ...] = ()


def test_a_quick_record_is_made_as_its_dataclass_would_be() -> None:
    for args, kwargs in [((1, 2), {}), ((1,), {"y": 2, "label": "q"}), ((), {"x": 1, "y": 2})]:
        quick, plain = Point(*args, **kwargs), PlainPoint(*args, **kwargs)
        assert dataclasses.astuple(quick) == dataclasses.astuple(plain)
    assert Point(1, 2) == Point(x=1, y=2, label="p", tags=())
    assert Point(1, 2) != Point(1, 3)
    assert hash(Point(1, 2)) == hash(Point(1, 2))
    assert repr(Point(1, 2)) == "Point(x=1, y=2, label='p', tags=())"
    assert Point.__init__.__qualname__ == "Point.__init__"


def test_a_quick_record_refuses_what_its_dataclass_refuses() -> None:
    point = Point(1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        point.x = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        Point(1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, 2, z=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, 2, x=1)  # type: ignore[misc]


def test_a_copy_changes_only_the_copy() -> None:
    replace = replacer(Point)
    point = Point(1, 2, tags=("a",))
    moved = replace(point, y=5, label="m")
    assert moved == Point(1, 5, "m", ("a",))
    assert type(moved) is Point
    assert point == Point(1, 2, tags=("a",))
    assert replace(point) == point
    assert replace(point) is not point
    with pytest.raises(AssertionError, match="not fields of Point"):
        replace(point, z=1)


def test_an_owned_record_is_changed_in_place() -> None:
    point = Point(1, 2)
    update_owned(point, {"x": 7})
    assert point == Point(7, 2)


def test_only_a_dataclass_without_slots_or_factories_is_made_quick() -> None:
    with pytest.raises(TypeError, match="instance __dict__"):
        quick_init(
            dataclass(frozen=True, slots=True)(type("Slotted", (), {"__annotations__": {"a": int}}))
        )
    with pytest.raises(TypeError, match="not a dataclass"):
        quick_init(type("Plain", (), {}))

    @dataclass(frozen=True)
    class Listed:
        items: list[int] = field(default_factory=list)

    with pytest.raises(TypeError, match="default factory"):
        quick_init(Listed)
