"""What flowlog can store: the one judge of values, for the API's input and executors' output.

PostgreSQL's text and jsonb hold no NUL; a lone surrogate (which JSON can spell, ``"\\ud800"``)
has no UTF-8 encoding; the log's JSON encoder (orjson) stops at 64-bit integers; JSON has no NaN
or Infinity (jsonb refuses them, pydantic would quietly write null). A leaf: it imports nothing
of flowlog's, so that the request models and the workflow core can both ask it.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

JSON_INTEGERS = range(-(2**63), 2**64)
"""The integers a flow's JSON can hold (the log's JSON encoder stops at 64 bits)."""

NODE_ERROR_CODES = range(1, 2**31)
"""A node's error code: a positive integer that fits the projections' ``integer`` columns (0 is
the envelope's "OK", and a flow's failure takes its node's code)."""

Problem = tuple[str, str]
"""Where a value flowlog cannot store is (a path such as ``['k'][0]``, empty for the value
itself), and what is wrong with it."""

_SHOWN = 80
_WHERE_LIMIT = 300


def text_problem(text: str) -> str | None:
    """What keeps ``text`` out of PostgreSQL, or None."""
    if "\x00" in text:
        return "NUL character"
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "lone surrogate"
    return None


def storable_text(text: str) -> bool:
    """PostgreSQL text and jsonb hold neither NUL nor lone surrogates (which JSON can spell)."""
    return text_problem(text) is None


def shown(key: object) -> str:
    """A key as a message names it: text by its repr (which escapes NUL and surrogates, so the
    message itself can be stored), cut short; a number as itself; anything else by its type."""
    if isinstance(key, str):
        return repr(key[:_SHOWN]) + ("..." if len(key) > _SHOWN else "")
    if isinstance(key, int | float) or key is None:
        return repr(key)
    return f"<{type(key).__name__}>"


def unstorable(value: Any, where: str = "", *, numbers_in_range: bool = False) -> Problem | None:
    """The first value inside ``value`` (text, numbers, objects and their keys, arrays, models'
    fields) that flowlog cannot store, or None when it can store them all. Values of other types
    (a datetime, say) are their encoder's business. With ``numbers_in_range`` (a request, whose
    OpenAPI document states the 64-bit range for every number: JSON cannot tell ``1e30`` from
    an integer), a number written with a fraction or an exponent beyond that range is refused
    too.

    A walk, not a recursion (a deep value must not exhaust the caller's stack); the path to a
    value is spelled only for the one found, and cut short when long."""
    stack: list[_Step] = [_Step(value, where, None)]
    while stack:
        step = stack.pop()
        value = step.value
        if isinstance(value, str):
            found = text_problem(value)
            if found is not None:
                return step.path(), found
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if value not in JSON_INTEGERS:
                return step.path(), "integer beyond 64 bits"
        elif isinstance(value, float):
            if not math.isfinite(value):
                return step.path(), "NaN or Infinity"
            if numbers_in_range and not JSON_INTEGERS.start <= value < JSON_INTEGERS.stop:
                return step.path(), "number beyond 64 bits"
        elif isinstance(value, BaseModel):
            fields = value.__dict__.items()
            stack.extend(reversed([_Step(v, f".{k}", step) for k, v in fields]))
        elif isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    return _Step(None, (key,), step).path(), "a key that is not text"
                found = text_problem(key)
                if found is not None:
                    return _Step(None, (key,), step).path(), f"{found} in the key"
            stack.extend(reversed([_Step(v, (k,), step) for k, v in value.items()]))
        elif isinstance(value, list | tuple):
            stack.extend(reversed([_Step(v, i, step) for i, v in enumerate(value)]))
    return None


class _Step:
    """A value met on the walk, and how it was reached: from its parent by an index, a key (a
    1-tuple) or spelled out (text: the start, a model's field)."""

    __slots__ = ("label", "parent", "value")

    def __init__(self, value: Any, label: str | int | tuple[object], parent: _Step | None) -> None:
        self.value = value
        self.label = label
        self.parent = parent

    def path(self) -> str:
        labels: list[str] = []
        step: _Step | None = self
        while step is not None:
            label = step.label
            if isinstance(label, int):
                labels.append(f"[{label}]")
            elif isinstance(label, tuple):
                labels.append(f"[{shown(label[0])}]")
            else:
                labels.append(label)
            step = step.parent
        path = "".join(reversed(labels))
        return path if len(path) <= _WHERE_LIMIT else path[:_WHERE_LIMIT] + "..."
