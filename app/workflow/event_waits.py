"""Callback nodes that wait for a CloudEvent (docs/workflows.md, "Callback nodes that wait for
an event"): the node's setting, its check, the match rendered from the flow's context when the
node starts waiting, and the row of ``event_waits`` a waiting node has. Pure.

An event of the flow's tenant completes the node when its type is the node's and its data
contains the rendered match (PostgreSQL's ``data @> match``: every key of the match equal in
the data, objects nested, numbers compared as numbers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson
from pydantic import JsonValue

from flowlog.paths import NotRendered, path_problems, render

MAX_TYPE: Final = 256
MAX_KEYS: Final = 64
"""Keys a match may have, nested objects' keys included."""
MAX_DEPTH: Final = 16
MAX_SIZE: Final = 16_384
"""Bytes of the match as JSON (before rendering)."""
RENDERED_LIMIT: Final = 65_536
"""Characters a match may render into (its placeholders filled from the context): it is kept
in the waiting node's event and row, and matched against every event of its type."""
ROOTS: Final = {"context": "the flow's context"}

__all__ = ["EventWait", "NotRendered", "WaitRow"]


@dataclass(frozen=True, slots=True)
class EventWait:
    """``NodeDefinition(kind=NodeKind.CALLBACK, event=EventWait("backup.verified",
    {"clusterId": "{{context.clusterId}}"}))``: the node also completes on such an event."""

    type: str
    match: Mapping[str, JsonValue]

    def problems(self) -> list[str]:
        found = []
        if not isinstance(self.type, str) or not 1 <= len(self.type) <= MAX_TYPE:
            found.append(f"event: the type is 1 to {MAX_TYPE} characters")
        elif "\x00" in self.type:
            found.append("event: the type has a NUL character")
        given: object = self.match  # from code: anything at all
        if not isinstance(given, Mapping):
            return [*found, "event: the match is a JSON object"]
        match = dict(given)
        keys, depth = _size(match)
        if keys > MAX_KEYS:
            found.append(f"event: the match has {keys} keys, more than {MAX_KEYS}")
        if depth > MAX_DEPTH:
            found.append(f"event: the match is nested deeper than {MAX_DEPTH}")
        try:
            size = len(orjson.dumps(match))
        except (orjson.JSONEncodeError, TypeError):
            return [*found, "event: the match is not JSON"]
        if size > MAX_SIZE:
            found.append(f"event: the match is {size} bytes of JSON, more than {MAX_SIZE}")
        found += [f"event: match: {p}" for p in path_problems(match, ROOTS)]
        return found

    def describe(self) -> dict[str, Any]:
        return {"type": self.type, "match": dict(self.match)}

    def rendered(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """What the node waits for, its match filled from the flow's ``context`` (NotRendered
        when a placeholder names nothing there, or the match would grow past what a waiting
        node's row may hold)."""
        match = render(dict(self.match), {"context": dict(context)}, RENDERED_LIMIT)
        assert isinstance(match, dict)  # an object renders as an object
        return {"type": self.type, "match": match}


def _size(value: Any, depth: int = 1) -> tuple[int, int]:
    """(keys, depth) of a JSON value; objects and lists count as a level each."""
    if isinstance(value, Mapping):
        items = list(value.values())
        keys = len(value)
    elif isinstance(value, list):
        items, keys = value, 0
    else:
        return 0, depth - 1
    deepest = depth
    for item in items:
        more, level = _size(item, depth + 1)
        keys += more
        deepest = max(deepest, level)
    return keys, deepest


@dataclass(frozen=True, slots=True)
class WaitRow:
    """A row of ``event_waits`` (sql/migrations/0021_event_waits.sql)."""

    node_id: str
    flow_id: str
    tenant_id: str
    event_type: str
    match: dict[str, Any]
    since: datetime
