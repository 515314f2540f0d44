"""Values that cross the event store's boundary: events to append, recorded events, checkpoints."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

JsonObject = dict[str, Any]


class Expect(enum.Enum):
    """Expected-version modes of an append besides an exact version number."""

    ANY = "any"
    """Append whatever the stream's version is (conflicts are retried internally)."""
    NO_STREAM = "no_stream"
    """The stream must not exist yet (the same as expecting version 0)."""


ExpectedVersion = int | Expect


def expected_as_sql(expected: ExpectedVersion) -> int | None:
    """Maps an expectation to the append statement's parameter (NULL = any version)."""
    if expected is Expect.ANY:
        return None
    if expected is Expect.NO_STREAM:
        return 0
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
        raise ValueError(f"expected version must be an int >= 0 or an Expect, not {expected!r}")
    return expected


class Checkpoint(NamedTuple):
    """A place in the log's total order (transaction_id, position); reading resumes after it."""

    transaction_id: int
    position: int

    def __str__(self) -> str:
        return f"{self.transaction_id}/{self.position}"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Reads the ``transaction_id/position`` form that ``str()`` writes."""
        tx, sep, pos = text.partition("/")
        if not sep or not tx.isdigit() or not pos.isdigit():
            raise ValueError(f"a checkpoint looks like '1234/56', not {text!r}")
        return cls(int(tx), int(pos))


LOG_START = Checkpoint(0, 0)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append: its type, its data and its metadata (both JSON objects)."""

    type: str
    data: Mapping[str, Any]
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as the log holds it."""

    position: int
    transaction_id: int
    stream_id: str
    version: int
    type: str
    data: JsonObject
    metadata: JsonObject
    recorded_at: datetime

    @property
    def checkpoint(self) -> Checkpoint:
        """This event's place in the log's order. Reading on from it is safe for an event that
        ``read_all`` returned (everything before it has been read), **not** for one that
        ``append`` returned: a transaction older than the append's may still commit events
        that sort before it. To read what is appended from some moment on, take
        ``checkpoint_now()`` at that moment."""
        return Checkpoint(self.transaction_id, self.position)


def recorded_events(
    stream_id: str, rows: Sequence[Any], events: Sequence[NewEvent]
) -> list[RecordedEvent]:
    """The events of one append as recorded, from the append's returned rows (position,
    transaction_id, version, recorded_at; in any order) and the events sent."""
    ordered = sorted(rows, key=lambda row: int(row["version"]))
    return [
        RecordedEvent(
            position=row["position"],
            transaction_id=row["transaction_id"],
            stream_id=stream_id,
            version=row["version"],
            type=event.type,
            data=dict(event.data),
            metadata=dict(event.metadata),
            recorded_at=row["recorded_at"],
        )
        for row, event in zip(ordered, events, strict=True)
    ]
