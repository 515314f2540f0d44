"""SQL's flow_state() is the fold written again for psql: at every version, and at every
recorded time, of random histories on a real database, it gives the very document that
``flowlog replay`` (Python's fold) gives."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowlog.audit.document import state_document
from flowlog.audit.queries import Q
from flowlog.audit.replay import diff_documents, fold_until
from flowlog.eventstore import EventStore, RecordedEvent, create_pool
from flowlog.workflow.errors import Code
from flowlog.workflow.events import (
    CancelRequested,
    ChildrenCommanded,
    ChildrenEnded,
    ChildrenStarted,
    FlowCanceled,
    FlowCreated,
    FlowEvent,
    FlowFinished,
    FlowResumed,
    FlowRetried,
    FlowStarted,
    FlowStopped,
    NodeFailed,
    NodeStarted,
    NodeSucceeded,
    ParentLink,
)
from flowlog.workflow.state import FlowState, FlowStatus
from flowlog.workflow.store import FlowRepository
from flowlog.workflow.streams import flow_stream
from tests.workflow.test_properties import ACTIONS, DEFINITIONS, write_random_history


async def _compare(url: str, definition_index: int, actions: list[object], flow_id: str) -> None:
    pool = await create_pool(url, max_size=2)
    try:
        store = EventStore(pool)
        final = await write_random_history(store, DEFINITIONS[definition_index], actions, flow_id)
        recorded = await _check_every_point(pool, store, flow_id)
        assert recorded[-1].version == final.version
        assert await pool.fetchval(Q.state_at_version, "no-such-flow", 1) is None
    finally:
        await pool.close()


async def _check_every_point(
    pool: asyncpg.Pool, store: EventStore, flow_id: str
) -> list[RecordedEvent]:
    """At every version and every recorded time of the flow's stream, SQL's document is
    Python's; returns the stream."""
    recorded = await store.read_stream(flow_stream(flow_id))
    previous = None
    for stored in recorded:
        folded = fold_until(recorded, stored.version)
        assert folded is not None
        expected = state_document(folded)
        in_sql = await pool.fetchval(Q.state_at_version, flow_id, stored.version)
        assert in_sql == expected, f"version {stored.version}"
        # The document is plain JSON: what SQL returns survives a round trip unchanged.
        assert orjson.loads(orjson.dumps(in_sql)) == in_sql
        # A point in time is the longest prefix recorded by then: the same in both.
        at_time = await pool.fetchval(Q.state_as_of, flow_id, stored.recorded_at)
        by_time = fold_until(recorded, stored.recorded_at)
        assert by_time is not None
        assert at_time == state_document(by_time)
        # Every event changes the document (the version, at least), and a diff between
        # a point and itself is empty.
        assert diff_documents(expected, expected) == []
        assert diff_documents(previous, expected) != []
        previous = expected
    before = await pool.fetchval(Q.state_as_of, flow_id, recorded[0].recorded_at.replace(year=2000))
    assert before is None
    return recorded


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    definition_index=st.integers(0, len(DEFINITIONS) - 1),
    actions=st.lists(ACTIONS, min_size=5, max_size=40),
)
def test_sql_state_equals_the_fold_at_every_point(
    database_url: str, definition_index: int, actions: list[object]
) -> None:
    asyncio.run(_compare(database_url, definition_index, actions, str(uuid.uuid4())))


Append = list[FlowEvent]


async def _write(store: EventStore, appends: list[Append]) -> FlowState:
    """Appends each list of events in its own append (as the engine would: each its own
    recorded time), through the repository, which folds them in Python first."""
    flows = FlowRepository(store)
    state = None
    for events in appends:
        state = await flows.append(state, events)
    assert state is not None
    return state


def _created(
    flow_id: str, parent: ParentLink | None = None, entry: str | None = None
) -> FlowCreated:
    return FlowCreated(flow_id=flow_id, name="fan", biz_id="b", biz_type="test",
                       definition_version="v1", context={"items": [1, 2, 3]}, parent=parent,
                       entry=entry)  # fmt: skip


def _parent_history(flow_id: str) -> list[Append]:
    """A map node whose children start in two batches, one fails and stops the flow; a retry
    runs the failed child again under a new execution of the node, which then succeeds."""
    first, second = f"{flow_id}.1", f"{flow_id}.2"
    return [
        [_created(flow_id)],
        [
            FlowStarted(),
            NodeStarted(node_id=first, key="start", name="each", kind="map", attempt=1),
        ],
        [ChildrenStarted(node_id=first, first=0, count=2, total=3, limit=2)],
        [ChildrenEnded(node_id=first, ended=[(0, "Finished")])],
        [ChildrenStarted(node_id=first, first=2, count=1, total=3, limit=2)],
        [FlowStopped(reason="window"), ChildrenCommanded(node_id=first, command="stop")],
        [FlowResumed(), ChildrenCommanded(node_id=first, command="resume")],
        [ChildrenEnded(node_id=first, ended=[(2, "Finished"), (1, "Error")])],
        [
            NodeFailed(
                node_id=first,
                error_code=Code.CHILDREN_FAILED,
                error_message="1 of 3 children failed",
                pause=True,
            )
        ],
        [
            FlowRetried(from_key="start", child_changes={"fixed": True}),
            NodeStarted(
                node_id=second, key="start", name="each", kind="map", attempt=2, adopts=first
            ),
        ],
        [ChildrenCommanded(node_id=second, command="retry", indexes=[1])],
        [ChildrenEnded(node_id=second, ended=[(1, "Finished")])],
        [
            NodeSucceeded(
                node_id=second,
                result="3 of 3 children finished\n",
                context_changes={"results": [1, 2, 3]},
                next=None,
            )
        ],
        [FlowFinished()],
    ]


def _canceled_history(flow_id: str) -> list[Append]:
    """A parallel node canceled with its two branches running."""
    node = f"{flow_id}.1"
    return [
        [_created(flow_id)],
        [
            FlowStarted(),
            NodeStarted(node_id=node, key="start", name="both", kind="parallel", attempt=1),
        ],
        [ChildrenStarted(node_id=node, first=0, count=2, total=2, limit=2)],
        [
            CancelRequested(reason="wrong cluster"),
            ChildrenCommanded(node_id=node, command="cancel", indexes=[0, 1]),
        ],
        [ChildrenEnded(node_id=node, ended=[(1, "Canceled"), (0, "Canceled")])],
        [FlowCanceled(reason="wrong cluster", node_id=node)],
    ]


def _child_history(flow_id: str, parent: str) -> list[Append]:
    """A parallel node's branch: a child flow that starts at its branch's entry node."""
    link = ParentLink(flow_id=parent, node_id=f"{parent}.1", index=1, branch="right")
    node = f"{flow_id}.1"
    return [
        [_created(flow_id, parent=link, entry="right")],
        [FlowStarted()],
        [NodeStarted(node_id=node, key="right", name="right", kind="sync", attempt=1)],
        [NodeSucceeded(node_id=node, context_changes={"r": 1}, next=None), FlowFinished()],
    ]


async def test_sql_state_equals_the_fold_on_a_parent_and_its_children_events(
    pool: asyncpg.Pool, store: EventStore
) -> None:
    parent, canceled = str(uuid.uuid4()), str(uuid.uuid4())
    final = await _write(store, _parent_history(parent))
    assert final.status is FlowStatus.FINISHED
    assert final.fan is not None
    assert (final.fan.finished, final.fan.failed) == (3, frozenset())  # the fold counted them
    recorded = await _check_every_point(pool, store, parent)
    assert recorded[-1].version == final.version
    stopped = await pool.fetchval(Q.state_at_version, parent, 8)  # FlowStopped, ChildrenCommanded
    assert (stopped["status"], stopped["currentNode"]) == ("Stopped", "each")

    final = await _write(store, _canceled_history(canceled))
    assert final.status is FlowStatus.CANCELED
    await _check_every_point(pool, store, canceled)


async def test_sql_state_of_a_child_starts_at_its_entry(
    pool: asyncpg.Pool, store: EventStore
) -> None:
    child = str(uuid.uuid4())
    await _write(store, _child_history(child, str(uuid.uuid4())))
    await _check_every_point(pool, store, child)
    created = await pool.fetchval(Q.state_at_version, child, 1)
    assert created["nextNodeKey"] == "right"


async def test_history_tells_the_children_events(pool: asyncpg.Pool, store: EventStore) -> None:
    parent, canceled, child = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    await _write(store, _parent_history(parent))
    await _write(store, _canceled_history(canceled))
    await _write(store, _child_history(child, parent))
    assert await _summaries(pool, parent) == [
        "created: fan version v1 for test b",
        "started",
        "node each started",
        "children 0-1 of 3 started (at most 2 at once)",
        "children ended: 1 finished",
        "child 2 of 3 started (at most 2 at once)",
        "stopped",
        "children told to stop",
        "resumed",
        "children told to resume",
        "children ended: 1 finished, 1 failed (index 1)",
        f"node each failed: {Code.CHILDREN_FAILED} 1 of 3 children failed, flow paused",
        "retried from node start",
        "node each started (attempt 2)",
        "failed child 1 runs again",
        "children ended: 1 finished",
        "node each succeeded, end of path",
        "finished",
    ]
    assert (await _summaries(pool, canceled))[2:] == [
        "node both started",
        "children 0-1 of 2 started",
        "cancel requested",
        "children 0, 1 told to cancel",
        "children ended: 2 canceled (indexes 0, 1)",
        "canceled (node both interrupted)",
    ]
    assert (await _summaries(pool, child))[0] == (
        f"created: fan version v1 for test b, child 1 of flow {parent} (branch right)"
    )


async def _summaries(pool: asyncpg.Pool, flow_id: str) -> list[str]:
    events = [dict(r) for r in await pool.fetch(Q.history, flow_id, 1, 1000)]
    lines = [e["summary"] for e in events]
    # An archived flow's events (read from its file) get the very same lines.
    fields = ("version", "position", "recorded_at", "type", "data", "metadata")
    archived = [{k: e[k] for k in fields} for e in events]
    of_file = await pool.fetch(Q.history_of, archived)
    assert [r["summary"] for r in of_file] == lines
    return lines
