"""Time travel: a flow's state after a prefix of its history, and what changed between two
points. Pure: the caller reads the events."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from flowlog.audit.points import Point
from flowlog.eventstore import RecordedEvent
from flowlog.workflow.fold import evolve
from flowlog.workflow.state import FlowState
from flowlog.workflow.streams import decode_recorded


def fold_until(recorded: Sequence[RecordedEvent], point: Point | None) -> FlowState | None:
    """The state after the longest prefix of ``recorded`` up to ``point``: events up to that
    version, or recorded at or before that time. None if the flow did not exist yet."""
    state: FlowState | None = None
    for stored in recorded:
        if isinstance(point, int) and stored.version > point:
            break
        if isinstance(point, datetime) and stored.recorded_at > point:
            break
        state = evolve(state, decode_recorded(stored), stored.recorded_at)
    return state


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between two audit documents: where, before, after (None: absent)."""

    where: str
    before: Any
    after: Any

    def line(self) -> str:
        return f"{self.where}: {_shown(self.before)} -> {_shown(self.after)}"


_ABSENT = object()


def diff_documents(before: dict[str, Any] | None, after: dict[str, Any]) -> list[Change]:
    """What changed from ``before`` (None: the flow did not exist) to ``after``."""
    old = before or {}
    changes = [
        Change(key, old.get(key), after[key])
        for key in after
        if key not in {"context", "nodes"} and old.get(key) != after[key]
    ]
    changes += _mapping_changes("context", old.get("context", {}), after["context"])
    old_nodes = {node["id"]: node for node in old.get("nodes", [])}
    for node in after["nodes"]:
        where = f"node {node['name']} ({node['id']})"
        previous = old_nodes.get(node["id"])
        if previous is None:
            changes.append(Change(where, None, f"{node['status']}, attempt {node['attempt']}"))
            continue
        changes += [
            Change(f"{where}.{field}", previous.get(field), value)
            for field, value in node.items()
            if previous.get(field) != value
        ]
    return changes


def _mapping_changes(name: str, old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key, _ABSENT), new.get(key, _ABSENT)
        if before != after:
            yield Change(
                f"{name}.{key}",
                None if before is _ABSENT else before,
                None if after is _ABSENT else after,
            )


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str) and value.isprintable():
        return value if value else '""'
    return orjson.dumps(value).decode()
