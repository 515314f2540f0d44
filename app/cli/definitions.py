"""``flowlog definitions pending``: the flows that wait for a definition version no running
process has (a deploy stranded them), by definition and version, with the processes that run
now and the versions they have (app/workflow/versions.py)."""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from flowlog.eventstore import connect
from flowlog.workflow.versions import SHORT, Q, awaiting, awaiting_flows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    pending = sub.add_parser(
        "pending", help="the flows that wait for a version no running process has",
        description="The flows that wait for a definition version no running process has:\n"
        "not ended, with work to do (not on a task queue), and of a version that no process\n"
        "running a reactor has registered. Exit status 0 when there is none, 1 when some\n"
        "wait.", formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    pending.add_argument("--json", action="store_true", help="the report as one JSON object")
    pending.add_argument(
        "--limit", type=_positive, default=100, help="flows listed at most (default 100)"
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError("from 1 to 100000")
    return value


async def run(args: argparse.Namespace, database_url: str) -> int:
    conn = await connect(database_url)
    try:
        found = await awaiting(conn)
        flows = await awaiting_flows(conn, None, args.limit) if found else []
        processes = await conn.fetch(Q.process_versions_live)
    finally:
        await conn.close()
    if args.json:
        report: dict[str, Any] = {
            "pending": [
                {"definition": a.definition, "version": a.version, "flows": a.flows} for a in found
            ],
            "flows": [
                {
                    "flowId": f.flow_id,
                    "definition": f.definition,
                    "version": f.version,
                    "status": f.status,
                    "bizId": f.biz_id,
                    "createdAt": f.created_at,
                }
                for f in flows
            ],
            "processes": [
                {
                    "processId": p["process_id"],
                    "versions": list(p["versions"]),
                    "seenAt": p["seen_at"],
                }
                for p in processes
            ],
        }
        print(orjson.dumps(report).decode())
        return 1 if found else 0
    running = ", ".join(_process(p["process_id"], len(p["versions"])) for p in processes)
    running = f"processes running a reactor: {running or 'none'}"
    if not found:
        print(f"no flow waits for a definition version that no running process has; {running}")
        return 0
    for entry in found:
        print(entry.describe())
    print(running)
    total = sum(entry.flows for entry in found)
    shown = f" (the oldest {len(flows)})" if len(flows) < total else ""
    print(f"flows{shown}:")
    for f in flows:
        print(
            f"  {f.flow_id}  {f.definition} {f.version[:SHORT]}  {f.status}  "
            f"bizId {f.biz_id!r}  created {f.created_at.isoformat()}"
        )
    return 1


def _process(process_id: str, versions: int) -> str:
    return f"{process_id} ({versions} version{'' if versions == 1 else 's'})"
