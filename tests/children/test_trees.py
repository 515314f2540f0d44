"""A tree of flows (a parent and its children) moves together: archival takes a parent only
once every flow under it has ended, and with all of them; an export of one flow holds the
flows under it."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import asyncpg
import orjson

from flowlog.archive.reading import archived
from flowlog.audit.check import first_divergence
from flowlog.audit.transfer import Selection, export_log
from flowlog.eventstore import RecordedEvent
from flowlog.workflow.definition import NodeDefinition, WorkflowDefinition
from flowlog.workflow.state import FlowStatus
from flowlog.workflow.streams import flow_stream
from tests.archive.test_archival import archive
from tests.children.defs import ALL, FLEET
from tests.engines import StartEngine
from tests.workflow.helpers import wait_for_status

ENDED = {FlowStatus.FINISHED, FlowStatus.ERROR, FlowStatus.CANCELED}
TREE = "SELECT id FROM workflows WHERE parent_id = $1"


async def test_a_parent_is_archived_only_with_all_its_children(
    start_engine: StartEngine, database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    engine = await start_engine(*ALL)
    service = engine.service
    fleet = await service.create("fleet", "t", "backup-fleet",
                                 context={"clusters": ["a", "b"]}, start=True)  # fmt: skip
    # A parent still running: its child waits for a callback.
    holders = await service.create("h", "t", "holders", context={"items": [1]}, start=True)
    await wait_for_status(service, fleet.flow_id, ENDED)
    children = [r["id"] for r in await pool.fetch(TREE, fleet.flow_id)]
    assert len(children) == 4

    report = await archive(database_url, engine, tmp_path)
    # The fleet's tree went into one archive; the holders' parent (running) did not, nor its
    # child (a child is never archived on its own).
    assert report.flows == 1 + len(children)
    for flow_id in [fleet.flow_id, *children]:
        info = await archived(pool, flow_id)
        assert info is not None
        assert info.archive_id == report.archives[0]
    assert await archived(pool, holders.flow_id) is None
    for row in await pool.fetch(TREE, holders.flow_id):
        assert await archived(pool, row["id"]) is None


async def test_an_export_of_a_parent_holds_its_children(
    start_engine: StartEngine, database_url: str, pool: asyncpg.Pool
) -> None:
    service = (await start_engine(*ALL)).service
    fleet = await service.create("fleet", "t", "backup-fleet",
                                 context={"clusters": ["a", "b", "c"]}, start=True)  # fmt: skip
    other = await service.create("one", "t", "one-backup", start=True)
    for flow in (fleet, other):
        await wait_for_status(service, flow.flow_id, ENDED)
    out = io.BytesIO()
    report = await export_log(database_url, out, Selection(flow_id=fleet.flow_id),
                              progress=False)  # fmt: skip
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()[1:-1]]
    streams = {line["stream_id"] for line in lines}
    children = {"flow-" + r["id"] for r in await pool.fetch(TREE, fleet.flow_id)}
    assert streams == {"flow-" + fleet.flow_id} | children
    assert len(children) == 5
    assert report.events == len(lines)
    positions = [line["position"] for line in lines]
    assert len(positions) == len(set(positions))


async def test_check_definition_replays_a_tree_and_finds_a_divergence_in_a_branch(
    start_engine: StartEngine, pool: asyncpg.Pool
) -> None:
    service = (await start_engine(*ALL)).service
    fleet = await service.create("fleet", "t", "backup-fleet",
                                 context={"clusters": ["a", "b"]}, start=True)  # fmt: skip
    await wait_for_status(service, fleet.flow_id, ENDED)
    tree = [fleet.flow_id, *[r["id"] for r in await pool.fetch(TREE, fleet.flow_id)]]
    histories = {f: await service.store.read_stream(flow_stream(f)) for f in tree}
    same = {f: first_divergence(h, by_name(h)) for f, h in histories.items()}
    assert same == dict.fromkeys(tree)  # every flow of the tree replays the same

    # The verify branch gains a step: its history (a child's) diverges where it ended.
    nodes = dict(FLEET.nodes)
    nodes["verify1"] = dataclasses.replace(nodes["verify1"], success="verify2")
    nodes["verify2"] = NodeDefinition("verifyAgain", FLEET.nodes["verify1"].executor)
    changed = WorkflowDefinition(FLEET.name, nodes)
    diverged = {f for f, h in histories.items()
                if h[0].data["name"] == FLEET.name and first_divergence(h, changed)}  # fmt: skip
    branch = next(r["id"] for r in await pool.fetch(TREE + " AND branch = 'verify'",
                                                     fleet.flow_id))  # fmt: skip
    assert diverged == {branch}


def by_name(history: list[RecordedEvent]) -> WorkflowDefinition:
    return next(d for d in ALL if d.name == history[0].data["name"])
