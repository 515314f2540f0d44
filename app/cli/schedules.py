"""``flowlog schedules``: list, show, create, update, pause, resume and delete schedules from a
terminal, on flowlog's database (as the REST API does, with the same refusals)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from flowlog.cli.problems import Exit
from flowlog.eventstore import EventStore, create_pool
from flowlog.schedules import decide
from flowlog.schedules.service import ScheduleService
from flowlog.schedules.state import ScheduleState
from flowlog.wire.schedules import ScheduleSpec
from flowlog.workflow.caller import Caller
from flowlog.workflow.definition import Registry
from flowlog.workflow.errors import Code, WorkflowError

ACTIONS = ("list", "show", "create", "update", "pause", "resume", "delete")
# Options that set one field of the settings (the rest come from --file, or stay as they are).
_FIELDS = {
    "flow": "flowName", "cron": "cron", "every": "intervalSeconds", "timezone": "timezone",
    "biz_type": "bizType", "biz_id": "bizIdTemplate", "overlap": "overlap",
    "catch_up": "catchUp", "jitter": "jitterSeconds", "start_at": "startAt", "end_at": "endAt",
    "description": "description",
}  # fmt: skip


_EXITS = {Code.BAD_INPUT: Exit.USAGE, Code.SCHEDULE_NOT_FOUND: Exit.NOT_FOUND}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("schedule_id", nargs="?", metavar="ID", help="every action but list")
    parser.add_argument("--json", action="store_true", help="answer in JSON (one document)")
    parser.add_argument("--reason", default="", help="why (recorded in the schedule's events)")
    given = parser.add_argument_group("settings (create, update)")
    given.add_argument("--file", type=Path, help="the settings as JSON (as the REST body)")
    given.add_argument("--flow", help="the definition of the flows each fire starts")
    given.add_argument("--cron", help="a cron expression, e.g. '0 2 * * *'")
    given.add_argument("--every", type=float, metavar="SECONDS", help="or an interval")
    given.add_argument("--timezone", help="an IANA time zone (default UTC)")
    given.add_argument("--biz-type", help="the flows' bizType")
    given.add_argument("--biz-id", help="the flows' bizId template, e.g. 'b-{{fireTime:%%F}}'")
    given.add_argument("--context", help="the flows' context (a JSON object of templates)")
    given.add_argument("--overlap", choices=("skip", "allow", "queue"))
    given.add_argument("--catch-up", choices=("skip", "last"))
    given.add_argument("--jitter", type=float, metavar="SECONDS")
    given.add_argument("--start-at", metavar="TIME")
    given.add_argument("--end-at", metavar="TIME")
    given.add_argument("--description")
    given.add_argument("--paused", action="store_true", help="create it paused")


def usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments before anything is read (exit status 2)."""
    if args.action != "list" and not args.schedule_id:
        return f"{args.action} needs a schedule ID"
    if args.action == "list" and args.schedule_id:
        return "list takes no ID"
    return None


async def run(args: argparse.Namespace, database_url: str) -> int:
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        service = ScheduleService(EventStore(pool), Registry())
        caller = Caller(actor="cli", reason=args.reason or None)
        try:
            return await _act(service, args, caller)
        except WorkflowError as exc:
            print(f"flowlog schedules: {exc}", file=sys.stderr)
            return _EXITS.get(exc.code, Exit.FAILED)
        except (ValidationError, ValueError) as exc:
            print(f"flowlog schedules: bad settings: {_plain(exc)}", file=sys.stderr)
            return Exit.USAGE
    finally:
        await pool.close()


async def _act(service: ScheduleService, args: argparse.Namespace, caller: Caller) -> int:
    schedule_id: str = args.schedule_id or ""
    if args.action == "list":
        rows, _ = await service.rows(None, "", 1000)
        states = [(await service.view(r["id"], upcoming=1)).state for r in rows]
        _print_list(states, args.json)
        return 0
    if args.action == "show":
        view = await service.view(schedule_id, upcoming=5)
        # Why: the operator's reason, or why a fire was refused.
        lines = [(e.version, e.type, e.recorded_at,
                  e.metadata.get("reason") or e.data.get("error") or "")
                 for e in view.events]  # fmt: skip
        _print_one(view.state, args.json, lines)
        return 0
    commands: dict[str, Callable[..., Any]] = {
        "pause": service.pause, "resume": service.resume, "delete": service.delete,
    }  # fmt: skip
    if args.action in commands:
        state = await commands[args.action](schedule_id, caller=caller)
    elif args.action == "create":
        spec = ScheduleSpec.model_validate(_settings(args, {}))
        state = await service.create(schedule_id, spec, paused=args.paused, caller=caller)
    else:
        current = (await service.view(schedule_id)).state.spec.model_dump(mode="json")
        spec = ScheduleSpec.model_validate(_settings(args, current))
        state = await service.update(schedule_id, spec, caller=caller)
    _print_one(state, args.json, [])
    return 0


def _settings(args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
    settings = dict(base)
    if args.file is not None:
        settings.update(orjson.loads(args.file.read_bytes()))
    for option, name in _FIELDS.items():
        value = getattr(args, option)
        if value is not None:
            settings[name] = value
            if name == "cron":
                settings["intervalSeconds"] = None
            elif name == "intervalSeconds":
                settings["cron"] = None
    if args.context is not None:
        settings["context"] = orjson.loads(args.context)
    return settings


def _when(state: ScheduleState) -> str:
    spec = state.spec
    every = f"every {spec.intervalSeconds:g} s" if spec.intervalSeconds else f"cron {spec.cron}"
    return f"{every} ({spec.timezone})"


def _time(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S%z")


def _document(state: ScheduleState) -> dict[str, Any]:
    return {
        "scheduleId": state.schedule_id, "tenantId": state.tenant_id,
        "status": state.status.value, "spec": state.spec.model_dump(mode="json"),
        "nextFireTimes": [t.isoformat() for t in decide.next_fires(state, 5)],
        "lastFireTime": None if state.last_fire_at is None else state.last_fire_at.isoformat(),
        "lastFlowId": state.last_flow_id, "fires": state.fires, "skipped": state.skipped,
        "version": state.version,
    }  # fmt: skip


def _print_list(states: list[ScheduleState], as_json: bool) -> None:
    if as_json:
        print(orjson.dumps([_document(s) for s in states]).decode())
        return
    rows = [("ID", "STATUS", "FLOW", "WHEN", "NEXT FIRE", "LAST FIRE", "FIRES")]
    for state in states:
        upcoming = decide.next_fires(state, 1)
        rows.append((state.schedule_id, state.status.value, state.spec.flowName, _when(state),
                     _time(upcoming[0] if upcoming else None), _time(state.last_fire_at),
                     str(state.fires)))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
    if len(rows) == 1:
        print("(no schedules)")


def _print_one(
    state: ScheduleState, as_json: bool, events: list[tuple[int, str, datetime, Any]]
) -> None:
    if as_json:
        print(orjson.dumps(_document(state)).decode())
        return
    spec = state.spec
    print(f"schedule {state.schedule_id}: {state.status.value}, {_when(state)}")
    print(f"  flow {spec.flowName}, bizType {spec.bizType}, bizId {spec.bizIdTemplate}")
    print(f"  overlap {spec.overlap}, catch-up {spec.catchUp}, jitter {spec.jitterSeconds:g} s")
    print(f"  fires {state.fires}, skipped {state.skipped}, last {_time(state.last_fire_at)}"
          f" (flow {state.last_flow_id or '-'})")  # fmt: skip
    upcoming = decide.next_fires(state, 5)
    print("  next: " + (", ".join(_time(t) for t in upcoming) or "none"))
    for version, kind, at, reason in events[-10:]:
        print(f"  {version:>4} {_time(at)} {kind}" + (f"  ({reason})" if reason else ""))


def _plain(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return str(exc)
