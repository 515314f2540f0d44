"""Frozen dataclasses that are quick to make and to copy: a flow's state and its node
executions, made and copied once per event by every fold (every append, transition, replay,
rebuild, verify and archive seal).

A frozen dataclass's generated ``__init__`` sets its fields one ``object.__setattr__`` at a
time (27 calls for a node execution: about 6 us here, the most of a NodeStarted's fold); a
record made here sets its ``__dict__`` in one statement and a copy is one dict merge, so
the classes give up ``slots`` for an instance ``__dict__``. Equality, hashing, ``repr``,
``dataclasses.fields`` and the frozen ``__setattr__`` stay the dataclass's own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, fields, is_dataclass
from typing import Any, TypeVar

T = TypeVar("T")

_set = object.__setattr__
_new = object.__new__


def quick_init(cls: type[T]) -> type[T]:
    """Gives the frozen dataclass ``cls`` an ``__init__`` of the same parameters that sets
    every field at once. Applied over ``@dataclass(frozen=True)`` (no slots, no default
    factories: a default shared by every instance must be immutable)."""
    if not is_dataclass(cls) or hasattr(cls, "__slots__"):
        raise TypeError(f"{cls.__name__} is not a dataclass with an instance __dict__")
    parameters, items = [], []
    defaults: dict[str, Any] = {}
    for field in fields(cls):
        if field.default_factory is not MISSING or not field.init:
            raise TypeError(f"{cls.__name__}.{field.name}: no default factory, no init=False")
        if field.default is MISSING:
            parameters.append(field.name)
        else:
            parameters.append(f"{field.name}=_default_{field.name}")
            defaults[f"_default_{field.name}"] = field.default
        items.append(f"{field.name!r}: {field.name}")
    source = (
        f"def __init__(self, {', '.join(parameters)}):\n"
        f"    _set(self, '__dict__', {{{', '.join(items)}}})\n"
    )
    namespace: dict[str, Any] = {"_set": _set, **defaults}
    exec(source, namespace)  # the source is made of the class's field names only
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


def replacer(cls: type[T]) -> Callable[..., T]:
    """``dataclasses.replace`` for instances of ``cls`` made by ``quick_init``: one dict merge,
    no checks beyond the names (the fields given are the caller's own)."""
    names = frozenset(field.name for field in fields(cls))  # type: ignore[arg-type]

    def replace(obj: T, **changes: Any) -> T:
        assert names.issuperset(changes), f"not fields of {cls.__name__}: {set(changes) - names}"
        new = _new(cls)
        _set(new, "__dict__", {**obj.__dict__, **changes})
        return new

    return replace


def update_owned(obj: Any, changes: dict[str, Any]) -> None:
    """Sets ``changes`` on ``obj`` itself: only for a record that its caller alone holds (a
    fold's state, made by that fold), never for one handed out."""
    obj.__dict__.update(changes)
