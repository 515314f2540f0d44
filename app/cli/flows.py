"""``flowlog flows ACTION``: arguments, output (a table for people, ``--json`` for scripts)
and exit statuses a script can test:

- 0: done (``follow``: the flow finished; ``migrate``: no selected flow is blocked);
- 1: refused: the flow's state does not allow it, or it was archived (``follow``: the flow
  ended in Error or Canceled; ``migrate``: some flows are blocked, or another migration of the
  definition is running);
- 2: bad usage or bad input;
- 3: no such flow (``migrate``: no such definition or version);
- 4: flowlog (or its database) could not be reached.
"""

from __future__ import annotations

import argparse
import getpass
import socket
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel

from flowlog.cli.problems import Exit
from flowlog.cli.types import flow_id, server_url
from flowlog.client.errors import BadRequest, FlowlogError, NotFound, Unavailable
from flowlog.roles import DatabaseUrls
from flowlog.wire.flows import GO_ZERO_TIME, WorkFlowDetail, WorkFlowInfo
from flowlog.workflow.caller import Caller

if TYPE_CHECKING:  # the backends import the service: loaded when a flows command runs
    from flowlog.cli.flows_backends import Backend
    from flowlog.wire.migrations import MigrationRequest

ACTIONS = ("list", "show", "start", "stop", "cancel", "retry", "follow", "migrate")
STATUSES = ("Initializing", "Processing", "Stopped", "Canceling", "Canceled", "Finished", "Error")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument(
        "flow_id", nargs="?", type=flow_id, metavar="ID", help="every action but list"
    )
    parser.add_argument("--json", action="store_true", help="JSON (list, follow: one a line)")
    parser.add_argument("--reason", default="", help="why (recorded in the flow's events)")
    parser.add_argument(
        "--api", metavar="URL", type=server_url,
        help="act through this flowlog server (e.g. http://flowlog:8080) instead of the "
        "database; default: the database (DATABASE_URL, or the embedded one)",
    )  # fmt: skip
    parser.add_argument("--token", help="the server's bearer token (with --api)")
    chosen = parser.add_argument_group("list")
    chosen.add_argument("--status", choices=STATUSES)
    chosen.add_argument("--name", help="the definition's name")
    chosen.add_argument("--biz-id")
    chosen.add_argument("--biz-type")
    chosen.add_argument("--parent", type=flow_id, metavar="ID", help="the children of flow ID")
    chosen.add_argument("--limit", type=int,
                        help="at most this many (default 50; migrate: 1000)")  # fmt: skip
    migrate = parser.add_argument_group("migrate (move running flows to another version)")
    migrate.add_argument("--definition", metavar="NAME", help="the definition whose flows move")
    migrate.add_argument("--from", dest="from_version", metavar="VERSION",
                         help="the version they are on")  # fmt: skip
    migrate.add_argument("--to", dest="to_version", metavar="VERSION",
                         help="the version they move to")  # fmt: skip
    migrate.add_argument("--node-map", default="", metavar="OLD=NEW,...",
                         help="node keys of --from renamed in --to")  # fmt: skip
    migrate.add_argument("--where-biz-type", metavar="TYPE", help="only flows of this biz type")
    migrate.add_argument(
        "--dry-run", action="store_true", help="only say which flows would move and which not"
    )
    retry = parser.add_argument_group("retry")
    retry.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="a context key to set first (VALUE is JSON, or else text); repeatable",
    )  # fmt: skip


MIGRATE_ONLY = ("definition", "from_version", "to_version", "node_map", "where_biz_type", "dry_run")


def usage_problem(args: argparse.Namespace) -> str | None:
    if args.action == "migrate":
        return _migrate_problem(args)
    if any(getattr(args, name) for name in MIGRATE_ONLY):
        return (
            "--definition, --from, --to, --node-map, --where-biz-type and --dry-run go with migrate"
        )
    if args.action != "list" and not args.flow_id:
        return f"{args.action} needs a flow ID"
    if args.action == "list" and args.flow_id:
        return "list takes no ID"
    if args.set and args.action != "retry":
        return "--set goes with retry"
    if args.token and not args.api:
        return "--token goes with --api"
    if args.limit is not None and args.limit < 1:
        return "--limit must be at least 1"
    try:
        context_of(args.set)
    except ValueError as exc:
        return str(exc)
    return None


def _migrate_problem(args: argparse.Namespace) -> str | None:
    if args.flow_id:
        return "migrate takes no ID (it selects the definition's flows)"
    if not (args.definition and args.from_version and args.to_version):
        return "migrate needs --definition, --from and --to"
    try:
        migration_request(args)
    except ValueError as exc:
        return str(exc).splitlines()[-1] if "validation error" in str(exc) else str(exc)
    return None


def node_map_of(text: str) -> dict[str, str]:
    """``a=b,c=d`` as a map (an empty text: no renames)."""
    renames: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        old, sep, new = pair.partition("=")
        if not sep or not old or not new:
            raise ValueError(f"--node-map takes OLD=NEW pairs separated by commas, not {pair!r}")
        if old in renames:
            raise ValueError(f"--node-map names {old!r} twice")
        renames[old] = new
    return renames


def migration_request(args: argparse.Namespace) -> MigrationRequest:
    """The REST request a migrate command sends (checked as the server checks it)."""
    from flowlog.wire.migrations import MigrationRequest

    where = {"bizType": args.where_biz_type} if args.where_biz_type else {}
    return MigrationRequest.model_validate({
        "from": args.from_version, "to": args.to_version, "nodeMap": node_map_of(args.node_map),
        "where": where, "dryRun": args.dry_run, "limit": args.limit or 1000,
    })  # fmt: skip


def context_of(pairs: Sequence[str]) -> dict[str, Any]:
    context: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set takes KEY=VALUE, not {pair!r}")
        try:
            context[key] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            context[key] = raw
    return context


def _caller() -> Caller:
    return Caller(actor=f"{getpass.getuser()}@{socket.gethostname()}")


async def run_api(args: argparse.Namespace) -> int:
    from flowlog.cli.flows_backends import ApiBackend

    return await _run(ApiBackend(args.api, args.token), args)


async def run_database(args: argparse.Namespace, urls: DatabaseUrls) -> int:
    from flowlog.cli.flows_backends import DatabaseBackend

    backend = DatabaseBackend(urls, _caller())
    try:
        await backend.open()
    except Unavailable as exc:
        print(f"flowlog flows: {exc}", file=sys.stderr)
        return Exit.UNREACHABLE
    return await _run(backend, args)


async def _run(backend: Backend, args: argparse.Namespace) -> int:
    try:
        return await _act(backend, args)
    except FlowlogError as exc:
        print(f"flowlog flows {args.action}: {exc}", file=sys.stderr)
        if isinstance(exc, NotFound):
            return Exit.NOT_FOUND
        if isinstance(exc, Unavailable):
            return Exit.UNREACHABLE
        if isinstance(exc, BadRequest):
            return Exit.USAGE
        return Exit.FAILED
    finally:
        await backend.close()


async def _act(backend: Backend, args: argparse.Namespace) -> int:
    if args.action == "migrate":
        from flowlog.audit.migrate_flows import summary_lines

        answer = await backend.migrate(args.definition, migration_request(args))
        if args.json:
            _print_json(answer)
        else:
            print("\n".join(summary_lines(answer)))
        return Exit.FAILED if answer.blocked else 0
    if args.action == "list":
        from flowlog.cli.flows_backends import Selection

        where = Selection(args.status, args.name, args.biz_id, args.biz_type, args.parent)
        found = [info async for info in backend.flows(where, args.limit or 50)]
        _print_list(found, args.json)
        return 0
    if args.action == "show":
        _print_detail(await backend.show(args.flow_id), args.json)
        return 0
    if args.action == "follow":
        status = ""
        async for event in backend.follow(args.flow_id):
            if args.json:
                _print_json(event)
            else:
                print(f"{event.version:>4}  {_time(event.time)}  {event.type}"
                      + _event_note(event.type, event.data), flush=True)  # fmt: skip
            status = event.type
        return 0 if status == "FlowFinished" else Exit.FAILED
    info = await backend.act(args.action, args.flow_id, args.reason, context_of(args.set))
    if args.json:
        _print_json(info)
    else:
        print(f"{args.action}: {info.id} is {info.status}")
    return 0


def _print_json(model: BaseModel) -> None:
    sys.stdout.write(model.model_dump_json() + "\n")


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _event_note(event_type: str, data: dict[str, Any]) -> str:
    for key in ("name", "reason", "error_message"):
        if data.get(key):
            return f"  {data[key]}"
    return ""


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()
             for row in [header, *rows]]  # fmt: skip
    return "\n".join(lines)


def _print_list(found: Sequence[WorkFlowInfo], as_json: bool) -> None:
    if as_json:
        for info in found:
            _print_json(info)
        return
    if not found:
        print("no flows")
        return
    rows = [(f.id, f.name, f.status, f.bizType, f.bizId, _time(f.updateTime)) for f in found]
    print(_table(("ID", "NAME", "STATUS", "BIZ TYPE", "BIZ ID", "UPDATED (UTC)"), rows))


def _print_detail(detail: WorkFlowDetail, as_json: bool) -> None:
    if as_json:
        _print_json(detail)
        return
    info = detail.info
    print(f"flow     {info.id}")
    print(f"name     {info.name} (definition version {info.definitionVersion})")
    print(f"status   {info.status}")
    print(f"biz      {info.bizType} {info.bizId}")
    print(f"created  {_time(info.createTime)}   updated {_time(info.updateTime)}")
    if info.errorCode is not None:
        print(f"error    {info.errorCode} {info.errorMessage}")
    if info.parentFlowId is not None:
        branch = "" if info.branch is None else f", branch {info.branch}"
        print(f"parent   {info.parentFlowId} (child {info.childIndex}{branch})")
    print()
    if not detail.nodes:
        print("no node has run yet")
        return
    rows = [
        (n.name, n.status, str(n.attempt), _time(n.startTime),
         "" if n.endTime == GO_ZERO_TIME else _time(n.endTime),
         "" if n.errorCode is None else f"{n.errorCode} {n.errorMessage}")
        for n in detail.nodes
    ]  # fmt: skip
    print(_table(("NODE", "STATUS", "ATTEMPT", "STARTED", "ENDED", "ERROR"), rows))
    for group in detail.children or []:
        print(f"\n{group.name} ({group.kind}): {group.finished} of {group.total} finished, "
              f"{group.failed} failed, {group.canceled} canceled, {group.running} running, "
              f"{group.notStarted} not started")  # fmt: skip
        for child in group.flows:
            label = child.branch or str(child.index)
            steps = " > ".join(f"{n.name} {n.status}" for n in child.nodes)
            print(f"  {label:<12} {child.status:<10} {child.workFlowId}  {steps}".rstrip())
        if group.kind == "map":
            print(f"  (flowlog flows list --parent {info.id})")
