"""List and detail queries against a brute-force model of the same rows."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from flowlog.engine import Engine
from flowlog.projections.reads import BadCursor, Cursor, ListFilter, list_workflows
from flowlog.projections.rows import NodeRow, WorkflowRow
from flowlog.workflow.definition import NodeDefinition, WorkflowDefinition
from flowlog.workflow.errors import FlowNotFound
from flowlog.workflow.service import seed_node_list
from tests.engines import StartEngine
from tests.workflow.defs import backup_flow, noop
from tests.workflow.helpers import wait_for_status

OTHER = WorkflowDefinition("restore", {"start": NodeDefinition("restore", noop)})


async def _populate(engine: Engine, count: int) -> None:
    rng = random.Random(7)
    service = engine.service
    for n in range(count):
        flow_id = (
            await service.create(
                f"biz-{n % 9}",
                rng.choice(["cluster", "host"]),
                rng.choice(["backup", "restore"]),
                tenant_id=rng.choice(["t1", "t2"]),
            )
        ).flow_id
        match rng.randrange(4):
            case 0:
                await service.stop(flow_id)
            case 1:
                await service.cancel(flow_id, "test")
            case 2:
                await service.start(flow_id)  # no reactor here: stays Processing


def _model(rows: list[WorkflowRow], where: ListFilter) -> list[WorkflowRow]:
    def keep(row: WorkflowRow) -> bool:
        for name, value in where.items():
            if name == "created_from":
                if row.created_at < value:
                    return False
            elif name == "created_to":
                if row.created_at >= value:
                    return False
            elif getattr(row, name) != value:
                return False
        return True

    return sorted(filter(keep, rows), key=lambda r: (r.created_at, r.id), reverse=True)


async def test_lists_match_a_brute_force_model_for_filters_pages_and_cursors(
    start_engine: StartEngine,
) -> None:
    engine = await start_engine(backup_flow(), OTHER, run_reactor=False)
    await _populate(engine, 60)
    everything = (await list_workflows(engine.pool, ListFilter(), page_size=1000)).rows
    assert len(everything) == 60
    middle = everything[30].created_at
    filters = [
        ListFilter(),
        ListFilter(status="Stopped"),
        ListFilter(name="restore", tenant_id="t2"),
        ListFilter(biz_type="host", status="Canceled"),
        ListFilter(biz_id="biz-3"),
        ListFilter(created_from=middle),
        ListFilter(created_to=middle, name="backup"),
        ListFilter(tenant_id="t1", status="Processing", created_from=middle - timedelta(hours=1)),
        ListFilter(status="Finished"),
    ]
    for where, page_size in itertools.product(filters, (1, 7, 10)):
        expected = _model(everything, where)
        pages = -(-len(expected) // page_size) or 1
        for page in range(1, pages + 2):
            result = await list_workflows(engine.pool, where, page=page, page_size=page_size)
            start = (page - 1) * page_size
            assert result.rows == expected[start : start + page_size], (where, page_size, page)
            assert result.total == len(expected), where
        # The keyset cursor walks the same rows without OFFSET.
        walked: list[WorkflowRow] = []
        cursor: str | None = None
        while True:
            after = Cursor.decode(cursor) if cursor else None
            result = await list_workflows(engine.pool, where, page_size=page_size, after=after)
            walked += result.rows
            cursor = result.next_cursor
            if cursor is None:
                break
        assert walked == expected, where


async def test_a_read_after_a_write_sees_it(start_engine: StartEngine) -> None:
    engine = await start_engine(backup_flow(), run_reactor=False)
    service = engine.service
    flow_id = (await service.create("b", "cluster", "backup", tenant_id="t9")).flow_id
    listed = await service.list_workflows(ListFilter(tenant_id="t9"))
    assert [(r.id, r.status) for r in listed.rows] == [(flow_id, "Initializing")]
    await service.stop(flow_id)
    detail = await service.detail_workflow(flow_id)
    assert detail.info.status == "Stopped"
    assert detail.node_names == ["backup", "updateBackupRecord", "end"]
    assert (await service.list_workflows(ListFilter(status="Stopped"))).total == 1


async def test_detail_lists_node_executions_as_the_seed_does(start_engine: StartEngine) -> None:
    async def broken(node: object, ctx: object) -> None:
        raise RuntimeError("no disk")

    definition = WorkflowDefinition(
        "failing",
        {
            "start": NodeDefinition("prepare", noop, success="b", fail="fail"),
            "b": NodeDefinition("copy", broken, fail="fail"),
            "fail": NodeDefinition("cleanup", noop),
        },
    )
    engine = await start_engine(definition)
    flow_id = (await engine.service.create("b", "t", "failing", start=True)).flow_id
    await wait_for_status(engine.service, flow_id, {"Error"})  # type: ignore[arg-type]

    detail = await engine.service.detail_workflow(flow_id)

    # The handler ran, but the seed's detail ends at the failed node.
    assert [(n.name, n.status) for n in detail.nodes] == [
        ("prepare", "Finished"),
        ("copy", "Error"),
    ]
    assert detail.node_names == ["prepare", "copy"]
    assert detail.nodes[1].result == "RuntimeError: no disk\n"
    with pytest.raises(FlowNotFound):
        await engine.service.detail_workflow("nope")


def _node(key: str, status: str, sequence: int) -> NodeRow:
    return NodeRow(f"f.{sequence}", "f", sequence, key, key, "sync", status, 1, None, None, "",
                   None, None, None, None, sequence)  # type: ignore[arg-type]  # fmt: skip


def test_the_seed_list_skips_over_failures_that_were_retried() -> None:
    nodes = [_node("a", "Finished", 1), _node("b", "Error", 2), _node("b", "Finished", 3),
             _node("c", "Error", 4), _node("h", "Finished", 5)]  # fmt: skip
    assert [n.sequence for n in seed_node_list(nodes)] == [1, 2, 3, 4]


def test_cursors_round_trip_and_garbage_is_refused() -> None:
    cursor = Cursor(datetime.now(UTC), "id-1")
    assert Cursor.decode(cursor.encode()) == cursor
    for garbage in ("", "abc", "bm90IGpzb24"):
        with pytest.raises(BadCursor):
            Cursor.decode(garbage)
