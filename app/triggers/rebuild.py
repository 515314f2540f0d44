"""The ``event_rules`` and ``received_events`` rows from the log (``flowlog rebuild``,
``flowlog import``) and their check (``flowlog verify``), as the keys' and schedules' are."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from flowlog.eventstore import RecordedEvent
from flowlog.eventstore.pool import Executor
from flowlog.projections.rebuild import Q as R
from flowlog.triggers.events import EVENT_STREAM, RULE_STREAM, CloudEventReceived
from flowlog.triggers.rules import fold, row_args
from flowlog.triggers.store import Q


def _upper(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


@dataclass
class TriggerCheck:
    rules: int = 0
    events: int = 0
    differences: list[str] = field(default_factory=list)


async def _streams(conn: Executor, prefix: str) -> dict[str, list[RecordedEvent]]:
    streams: dict[str, list[RecordedEvent]] = {}
    for row in await conn.fetch(R.stream_events, prefix, _upper(prefix)):
        event = RecordedEvent(*row)
        streams.setdefault(event.stream_id, []).append(event)
    return streams


async def _rule_rows(conn: Executor) -> dict[str, tuple[Any, ...]]:
    rows = {}
    for events in (await _streams(conn, RULE_STREAM)).values():
        rule = fold(events)
        if rule is not None:
            rows[rule.rule_id] = row_args(rule)
    return rows


async def _event_rows(conn: Executor) -> dict[tuple[str, int], tuple[Any, ...]]:
    rows = {}
    for stream_id, events in (await _streams(conn, EVENT_STREAM)).items():
        for recorded in events:
            if recorded.type != CloudEventReceived.model_fields["type"].default:
                continue
            event = CloudEventReceived.model_validate(dict(recorded.data))
            rows[(stream_id, recorded.version)] = (
                stream_id, recorded.version, event.tenant_id, event.source, event.event_id,
                event.event_type, event.subject, event.time, recorded.recorded_at,
                recorded.position, event.matched, event.rules, event.flows, len(event.refused),
            )  # fmt: skip
    return rows


async def rebuild_triggers(pool: asyncpg.Pool) -> tuple[int, int]:
    """Writes every rule's and every received event's row from the log; returns how many."""
    async with pool.acquire() as conn:
        rules = await _rule_rows(conn)
        for values in rules.values():
            await conn.execute(Q.restore_rule, *values)
        received = await _event_rows(conn)
        for values in received.values():
            await conn.execute(Q.restore_received, *values)
    return len(rules), len(received)


async def verify_triggers(pool: asyncpg.Pool) -> TriggerCheck:
    """Compares the rows with the log's folds, in one snapshot."""
    check = TriggerCheck()
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        rules = await _rule_rows(conn)
        rule_rows = {row["id"]: _values(row) for row in await conn.fetch(Q.rule_rows)}
        received = await _event_rows(conn)
        event_rows = {(row["stream_id"], row["version"]): _values(row)
                      for row in await conn.fetch(Q.received_rows)}  # fmt: skip
    check.rules, check.events = len(rules), len(received)
    for rule_id in sorted(rules.keys() | rule_rows.keys()):
        if rules.get(rule_id) != rule_rows.get(rule_id):
            check.differences.append(
                f"event rule {rule_id}: the table has {rule_rows.get(rule_id)}, its stream "
                f"{rules.get(rule_id)}"
            )
    for key in sorted(received.keys() | event_rows.keys()):
        if received.get(key) != event_rows.get(key):
            check.differences.append(
                f"received event {key[0]} version {key[1]}: the table has "
                f"{event_rows.get(key)}, its stream {received.get(key)}"
            )
    return check


def _values(row: asyncpg.Record) -> tuple[Any, ...]:
    return tuple(list(value) if isinstance(value, list) else value for value in row.values())
