"""The ``event_rules`` and ``received_events`` rows from the log (``flowlog rebuild``,
``flowlog import``) and their check (``flowlog verify``), as the keys' and schedules' are."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from flowlog.eventstore.pool import Executor
from flowlog.projections.prefixed import drift, streams_under
from flowlog.triggers.events import EVENT_STREAM, RULE_STREAM, CloudEventReceived
from flowlog.triggers.rules import fold, row_args
from flowlog.triggers.store import Q


@dataclass
class TriggerCheck:
    rules: int = 0
    events: int = 0
    differences: list[str] = field(default_factory=list)


async def _rule_rows(conn: Executor) -> dict[str, tuple[Any, ...]]:
    rows = {}
    for events in (await streams_under(conn, RULE_STREAM)).values():
        rule = fold(events)
        if rule is not None:
            rows[rule.rule_id] = row_args(rule)
    return rows


async def _event_rows(conn: Executor) -> dict[tuple[str, int], tuple[Any, ...]]:
    rows = {}
    for stream_id, events in (await streams_under(conn, EVENT_STREAM)).items():
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
    check.differences = [
        *drift(rules, rule_rows, lambda rule_id: f"event rule {rule_id}"),
        *drift(received, event_rows, lambda key: f"received event {key[0]} version {key[1]}"),
    ]
    return check


def _values(row: asyncpg.Record) -> tuple[Any, ...]:
    return tuple(list(value) if isinstance(value, list) else value for value in row.values())
