"""The ``api_keys`` rows from the log (``flowlog rebuild``, ``flowlog import``), as the flows'
and schedules' projections are rebuilt. ``last_used_at`` is not in the log: a rebuilt row keeps
the one it had, and a new row has none."""

from __future__ import annotations

import asyncpg

from flowlog.access.events import KEY_STREAM, KeyCreated, KeyRevoked, decode
from flowlog.access.store import Q
from flowlog.eventstore import RecordedEvent
from flowlog.projections.rebuild import Q as R

_UPPER = KEY_STREAM[:-1] + chr(ord(KEY_STREAM[-1]) + 1)


async def rebuild_keys(pool: asyncpg.Pool) -> int:
    """Writes every key's row from its stream; returns how many."""
    streams: dict[str, list[RecordedEvent]] = {}
    async with pool.acquire() as conn:
        for row in await conn.fetch(R.stream_events, KEY_STREAM, _UPPER):
            event = RecordedEvent(*row)
            streams.setdefault(event.stream_id, []).append(event)
        for events in streams.values():
            first = decode(events[0].type, dict(events[0].data))
            if not isinstance(first, KeyCreated):
                continue
            revoked: tuple[object, object, object] = (None, None, None)
            for event in events[1:]:
                later = decode(event.type, dict(event.data))
                if isinstance(later, KeyRevoked):
                    revoked = (event.recorded_at, event.metadata.get("actor"), later.reason)
            await conn.execute(
                Q.restore, first.key_id, first.tenant_id, first.name, first.role, first.prefix,
                first.digest, events[0].recorded_at, events[0].metadata.get("actor", "system"),
                first.expires_at, *revoked, events[-1].version,
            )  # fmt: skip
    return len(streams)
