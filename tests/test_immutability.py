"""The database itself refuses to change or delete recorded events."""

from __future__ import annotations

import asyncpg
import pytest

from flowlog.eventstore import IMMUTABLE_LOG_SQLSTATE, EventStore, Expect, NewEvent

CHANGES = [
    "UPDATE events SET type = 'Forged'",
    "UPDATE events SET data = '{}'::jsonb WHERE version = 1",
    "DELETE FROM events",
    "DELETE FROM events WHERE stream_id = 's'",
    "TRUNCATE events",
]


@pytest.mark.parametrize("statement", CHANGES)
async def test_changes_to_the_log_are_refused(store: EventStore, statement: str) -> None:
    before = await store.append("s", [NewEvent("A", {"x": 1}), NewEvent("B", {})], Expect.ANY)

    with pytest.raises(asyncpg.PostgresError, match="append-only") as caught:
        await store.pool.execute(statement)

    assert caught.value.sqlstate == IMMUTABLE_LOG_SQLSTATE
    assert await store.read_stream("s") == before
