"""The audit commands of the CLI: ``flowlog history``, ``flowlog replay`` and ``flowlog
check-definition``.

Each prints to stdout and returns the exit status: 0; 3 when the flow does not exist; 1 when
it did not exist yet at the point asked for, or its archive cannot be read as recorded.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from tqdm import tqdm

from flowlog.archive import files
from flowlog.archive.format import TransferError
from flowlog.archive.reading import ArchivedFlowInfo, archived, archived_records, locate
from flowlog.audit.check import first_divergence
from flowlog.audit.document import state_document
from flowlog.audit.history import HistoryLine, history_table, read_history
from flowlog.audit.points import Point
from flowlog.audit.queries import Q
from flowlog.audit.replay import diff_documents, fold_until
from flowlog.cli.problems import Exit
from flowlog.eventstore import EventReader, connect
from flowlog.replicas.connect import reading_connection
from flowlog.workflow.definition import Registry
from flowlog.workflow.streams import flow_stream
from flowlog.workflow.versions import Q as VQ


async def history(
    database_url: str,
    flow_id: str,
    *,
    as_json: bool,
    read_urls: Sequence[str] = (),
    archive_dir: Path | None = None,
) -> int:
    """``read_urls``: replicas to read from instead, when caught up (app/replicas/). A flow
    whose events were archived is read from its archive (found in ``archive_dir`` when it is
    no longer where it was written)."""
    conn = await reading_connection(database_url, read_urls)
    try:
        lines = await read_history(conn, flow_id)
        if not lines and (info := await archived(conn, flow_id)) is not None:
            records = await _from_archive(info, archive_dir)
            lines = [HistoryLine(**dict(r)) for r in await conn.fetch(Q.history_of, records)]
    except TransferError as exc:
        return _unreadable("history", exc)
    finally:
        await conn.close()
    if not lines:
        return _no_flow(flow_id)
    if as_json:
        for line in lines:
            _print_json(line.document())
    else:
        print(history_table(lines))
    return 0


async def replay(
    database_url: str,
    flow_id: str,
    *,
    at: Point | None,
    diff: tuple[Point, Point] | None,
    as_json: bool,
    read_urls: Sequence[str] = (),
    archive_dir: Path | None = None,
) -> int:
    conn = await reading_connection(database_url, read_urls)
    try:
        recorded = await EventReader(conn).read_stream(flow_stream(flow_id))
        if not recorded and (info := await archived(conn, flow_id)) is not None:
            recorded = [files.recorded(r) for r in await _from_archive(info, archive_dir)]
    except TransferError as exc:
        return _unreadable("replay", exc)
    finally:
        await conn.close()
    if not recorded:
        return _no_flow(flow_id)
    if diff is not None:
        before, after = (fold_until(recorded, point) for point in diff)
        if after is None:
            return _no_flow(flow_id, diff[1])
        changes = diff_documents(
            None if before is None else state_document(before), state_document(after)
        )
        if as_json:
            _print_json([{"where": c.where, "before": c.before, "after": c.after} for c in changes])
        else:
            print(f"flow {flow_id}: {_point(diff[0])} -> {_point(diff[1])}")
            print("\n".join(change.line() for change in changes) or "(no change)")
        return 0
    state = fold_until(recorded, at)
    if state is None:
        return _no_flow(flow_id, at)
    document = state_document(state)
    if as_json:
        _print_json(document)
    else:
        print(_describe(document))
    return 0


async def _from_archive(info: ArchivedFlowInfo, archive_dir: Path | None) -> list[dict[str, Any]]:
    records = await archived_records(info, archive_dir)
    print(
        f"flowlog: flow {info.flow_id} was archived ({info.archive_id}); read from "
        f"{locate(info, archive_dir)}",
        file=sys.stderr,
    )
    return records


def _unreadable(command: str, exc: TransferError) -> int:
    """An archive that cannot be read as recorded (missing, cut, altered): one line that
    says which file and which check, exit status 1."""
    print(f"flowlog {command}: {exc}", file=sys.stderr)
    return 1


def _describe(doc: dict[str, Any]) -> str:
    lines = [
        f"flow {doc['flowId']} ({doc['name']}, definition version {doc['definitionVersion']})",
        f"as of version {doc['version']} ({doc['updatedAt']}): {doc['status']}"
        + (f", running {doc['currentNode']}" if doc["currentNode"] else "")
        + (f", next node key {doc['nextNodeKey']}" if doc["nextNodeKey"] else ""),
    ]
    if doc["errorCode"] is not None:
        lines.append(f"error {doc['errorCode']}: {doc['errorMessage']}")
    if doc["reason"]:
        lines.append(f"reason: {doc['reason']}")
    lines.append("nodes:")
    for node in doc["nodes"]:
        ended = node["endTime"] or "-"
        error = f"  {node['errorCode']} {node['errorMessage']}" if node["errorCode"] else ""
        lines.append(
            f"  {node['id']}  {node['name']} (attempt {node['attempt']}): {node['status']}"
            f"  {node['startTime']} .. {ended}{error}"
        )
    lines.append("context: " + orjson.dumps(doc["context"], option=orjson.OPT_SORT_KEYS).decode())
    return "\n".join(lines)


def _point(point: Point) -> str:
    return f"version {point}" if isinstance(point, int) else point.isoformat()


def _no_flow(flow_id: str, point: Point | None = None) -> int:
    if point is None:
        print(f"flowlog: no flow {flow_id}", file=sys.stderr)
        return Exit.NOT_FOUND
    print(f"flowlog: flow {flow_id} did not exist yet at {_point(point)}", file=sys.stderr)
    return Exit.FAILED


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value).decode() + "\n")


async def check_definitions(
    database_url: str, registry: Registry, *, limit: int, as_json: bool, progress: bool
) -> int:
    """Replays the stored flows of each definition of ``registry`` against it, and finds the
    running flows that deploying ``registry`` alone would strand (their version is not among
    its versions of their definition: no process would claim them); 1 if any flow diverges
    or would be stranded."""
    conn = await connect(database_url)
    diverged = stranded_total = 0
    try:
        reader = EventReader(conn)
        for definition in registry.latest():
            rows = await conn.fetch(Q.check_flows, definition.name, limit)
            found: list[dict[str, Any]] = []
            bar = tqdm(rows, desc=f"check {definition.name}", unit="flow", disable=not progress)
            for row in bar:
                recorded = await reader.read_stream(flow_stream(row["id"]))
                divergence = first_divergence(recorded, definition)
                if divergence is not None:
                    found.append({
                        "flowId": row["id"], "definitionVersion": row["definition_version"],
                        "status": row["status"], "atVersion": divergence.version,
                        "recorded": divergence.recorded, "newVersionDecides": divergence.now,
                    })  # fmt: skip
            diverged += len(found)
            stranded, stranded_flows = await _stranded(conn, registry, definition.name, limit)
            stranded_total += sum(stranded.values())
            by_version = Counter(row["definition_version"] for row in rows)
            if as_json:
                _print_json({
                    "definition": definition.name, "version": definition.version,
                    "flows": len(rows), "byVersion": dict(by_version), "diverging": found,
                    "strandedByVersion": stranded, "stranded": stranded_flows,
                })  # fmt: skip
                continue
            versions = ", ".join(f"{v}: {n}" for v, n in by_version.most_common())
            print(
                f"definition {definition.name}, new version {definition.version}: checked "
                f"{len(rows)} flows ({versions or 'none'}); {len(rows) - len(found)} replay "
                f"the same, {len(found)} diverge; {sum(stranded.values())} running would be "
                "stranded"
            )
            for flow in found:
                print(
                    f"  {flow['flowId']} (version {flow['definitionVersion']}, {flow['status']}) "
                    f"at event {flow['atVersion']}: recorded {flow['recorded']}; the new version "
                    f"decides {flow['newVersionDecides']}"
                )
            for version, count in stranded.items():
                print(
                    f"  stranded: {count} running flow{'' if count == 1 else 's'} of version "
                    f"{version}, which this module does not have: deployed alone, no process "
                    "would run them (keep that version registered beside the new one, or move "
                    "them to the new version)"
                )
            for flow in stranded_flows:
                print(
                    f"  {flow['flowId']} (version {flow['definitionVersion']}, {flow['status']}) "
                    "would be stranded"
                )
    finally:
        await conn.close()
    return 1 if diverged or stranded_total else 0


async def _stranded(
    conn: asyncpg.Connection, registry: Registry, name: str, limit: int
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """The running flows of ``name`` whose version ``registry`` lacks: counts by version, and
    the oldest flows of each (at most ``limit`` a version). A flow that replays the same is
    stranded all the same: reactors claim only the versions they registered."""
    kept = registry.versions_of(name)
    counts: dict[str, int] = {}
    flows: list[dict[str, Any]] = []
    for row in await conn.fetch(VQ.running_versions, name, limit):
        if row["version"] in kept:
            continue
        counts[row["version"]] = int(row["flows"])
        flows.extend(
            {"flowId": flow_id, "definitionVersion": row["version"], "status": status}
            for flow_id, status in zip(row["flow_ids"], row["statuses"], strict=True)
        )
    return counts, flows
