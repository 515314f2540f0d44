"""The ``flowlog`` command: serve, worker, migrate, rebuild, verify, audit, bench."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import asyncpg

from app import logs
from app.api.access import Tokens
from app.audit.replay import Point, parse_point
from app.config import ConfigError, Settings
from app.database import provide_database
from app.migrate import MigrationError
from app.pgserver import EmbeddedPostgresError
from app.workflow.definition import Registry
from app.workflow.engine import Engine, load_definitions
from app.workflow.errors import InvalidDefinition
from eventstore import LogHorizonError

log = logging.getLogger("flowlog")

BENCHMARKS = ("append", "console", "export", "flows", "http", "projections")


def _parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowlog", description="An event-sourced workflow service on PostgreSQL."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def engine_options(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--definitions",
            action="append",
            metavar="MODULE",
            help="a module defining workflows (repeatable; default: FLOWLOG_DEFINITIONS)",
        )
        command.add_argument(
            "--concurrency",
            type=int,
            default=settings.concurrency,
            help="flows the reactor drives at once (default: FLOWLOG_CONCURRENCY or 32)",
        )

    serve = commands.add_parser("serve", help="migrate, then serve the HTTP API and the reactor")
    serve.add_argument("--host", default=settings.host, help="default: FLOWLOG_HOST or 127.0.0.1")
    serve.add_argument(
        "--port", type=int, default=settings.port, help="default: FLOWLOG_PORT or 8080"
    )
    serve.add_argument("--no-reactor", action="store_true", help="serve the API only")
    serve.add_argument(
        "--demo", action="store_true", help="also register the demo definitions (app/demo.py)"
    )
    engine_options(serve)

    worker = commands.add_parser("worker", help="run the reactor only (no HTTP)")
    engine_options(worker)

    commands.add_parser("migrate", help="apply the schema migrations and exit")

    rebuild = commands.add_parser(
        "rebuild", help="replay the log into fresh projection tables and swap them in"
    )
    rebuild.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    verify = commands.add_parser(
        "verify", help="fold the log and compare with the projection tables (exit 1 on drift)"
    )
    verify.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    history = commands.add_parser(
        "history", help="a flow's events: when, who, why and what (audit)"
    )
    history.add_argument("flow_id", metavar="FLOW_ID")
    history.add_argument("--json", action="store_true", help="one JSON object per event")
    replay = commands.add_parser(
        "replay", help="a flow's state at a version or time, folded from its history (audit)"
    )
    replay.add_argument("flow_id", metavar="FLOW_ID")
    when = replay.add_mutually_exclusive_group()
    when.add_argument(
        "--at", type=_point, metavar="VERSION|TIME", help="default: after the last event"
    )
    when.add_argument(
        "--diff", type=_point, nargs=2, metavar=("A", "B"), help="what changed from A to B"
    )
    replay.add_argument("--json", action="store_true", help="the state (or changes) as JSON")

    export = commands.add_parser(
        "export", help="write the log (or one flow, or a time range) as JSON lines"
    )
    export.add_argument(
        "-o", "--output", type=Path, default=Path("-"),
        help="the file (.gz: compressed); default: stdout",
    )  # fmt: skip
    chosen = export.add_mutually_exclusive_group()
    chosen.add_argument("--flow", metavar="FLOW_ID", help="only this flow's events")
    chosen.add_argument("--since", type=_time, metavar="TIME", help="events recorded from TIME")
    export.add_argument("--until", type=_time, metavar="TIME", help="events recorded before TIME")
    export.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    load = commands.add_parser(
        "import", help="load an export into an empty database; rebuild and verify from it"
    )
    load.add_argument(
        "file", type=Path, metavar="FILE", help="an export (.gz: compressed; -: stdin)"
    )
    load.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    check = commands.add_parser(
        "check-definition",
        help="replay stored flows against the definitions of MODULE; exit 1 if any diverge",
    )
    check.add_argument("module", metavar="MODULE", help="a module defining workflows")
    check.add_argument(
        "--limit", type=int, default=10_000, help="the newest flows of each (default 10000)"
    )
    check.add_argument("--json", action="store_true", help="one JSON object per definition")
    check.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    bench = commands.add_parser("bench", help="run a benchmark against a scratch database")
    bench.add_argument("name", choices=BENCHMARKS)
    bench.add_argument("--quick", action="store_true", help="finish in under a minute")
    bench.add_argument(
        "--json", action="store_true", help="print every figure as one JSON object, last line"
    )
    bench.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _time(text: str) -> datetime:
    point = _point(text)
    if not isinstance(point, datetime):
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time")
    return point


def _point(text: str) -> Point:
    try:
        return parse_point(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = Settings.from_env()
        Tokens.parse(settings.tokens)
    except (ConfigError, ValueError) as exc:
        print(f"flowlog: {exc}", file=sys.stderr)
        return 2
    parser = _parser(settings)
    args = parser.parse_args(argv)
    logs.configure(settings.log_level, settings.log_format)
    if args.command == "check-definition":
        try:
            registry = load_definitions([args.module])
        except (ImportError, ValueError, TypeError, InvalidDefinition) as exc:
            parser.error(f"cannot load definitions: {exc}")
    elif args.command in {"serve", "worker"}:
        modules = tuple(args.definitions or settings.definitions)
        if getattr(args, "demo", False):
            modules += ("app.demo",)
        settings = dataclasses.replace(
            settings,
            definitions=modules,
            concurrency=args.concurrency,
            run_reactor=not getattr(args, "no_reactor", False),
            demo=getattr(args, "demo", False),
        )
        try:
            registry = load_definitions(settings.definitions)
        except (ImportError, ValueError, TypeError, InvalidDefinition) as exc:
            parser.error(f"cannot load definitions: {exc}")
    else:
        registry = Registry()
    try:
        with provide_database(settings) as database_url:
            return _run(args, settings, database_url, registry)
    except (EmbeddedPostgresError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.error("database unavailable", extra={"error": str(exc), "kind": type(exc).__name__})
        return 1
    except (MigrationError, LogHorizonError) as exc:
        log.error("database refused", extra={"error": str(exc), "kind": type(exc).__name__})
        return 1


def _run(
    args: argparse.Namespace, settings: Settings, database_url: str, registry: Registry
) -> int:
    if args.command == "migrate":
        from app.migrate import migrate_database

        applied = asyncio.run(migrate_database(database_url))
        log.info("migrations applied", extra={"applied": applied})
        return 0
    if args.command == "serve":
        from aiohttp import web

        from app.web import create_app

        web.run_app(
            create_app(settings, database_url, registry),
            host=args.host,
            port=args.port,
            print=log.info,
            access_log=None,  # the API logs each request itself, with its ids
        )
        return 0
    if args.command == "worker":
        asyncio.run(_work(settings, database_url, registry))
        return 0
    if args.command in {"history", "replay"}:
        return asyncio.run(_audit(args, database_url))
    if args.command == "check-definition":
        return asyncio.run(_check(args, database_url, registry))
    if args.command in {"export", "import"}:
        return asyncio.run(_transfer(args, database_url))
    if args.command in {"rebuild", "verify"}:
        return asyncio.run(_projections(args.command, database_url, not args.no_progress))
    if args.command == "bench":
        from app.bench import append, console, export, flows, http, projections

        runner = {
            "append": append.run,
            "console": console.run,
            "export": export.run,
            "flows": flows.run,
            "http": http.run,
            "projections": projections.run,
        }[args.name]
        report = asyncio.run(runner(database_url, quick=args.quick, progress=not args.no_progress))
        report.print(args.json)
        return 0
    raise AssertionError(f"unhandled command {args.command}")


async def _projections(command: str, database_url: str, progress: bool) -> int:
    from app.migrate import migrate_database
    from app.workflow.projection import PROJECTOR
    from eventstore import EventStore, create_pool
    from projections.rebuild import rebuild
    from projections.verify import verify

    await migrate_database(database_url)
    pool = await create_pool(database_url, max_size=4)
    try:
        store = EventStore(pool)
        if command == "rebuild":
            report = await rebuild(store, PROJECTOR, progress=progress)
            print(
                f"rebuilt {report.flows} flows from {report.events} events in "
                f"{report.seconds:.1f} s ({report.events_per_s:,.0f} events/s); "
                f"{report.caught_up_events} events caught up, "
                f"swap {report.swap_seconds * 1000:.0f} ms"
            )
            return 0
        checked = await verify(store, PROJECTOR, progress=progress)
        for difference in checked.differences:
            print(difference)
        print(
            f"verified {checked.flows} flows ({checked.events} events): "
            + ("no drift" if checked.ok else f"{len(checked.differences)} differences")
        )
        return 0 if checked.ok else 1
    finally:
        await pool.close()


async def _audit(args: argparse.Namespace, database_url: str) -> int:
    from app.audit import commands
    from app.migrate import migrate_database

    await migrate_database(database_url)
    if args.command == "history":
        return await commands.history(database_url, args.flow_id, as_json=args.json)
    diff = None if args.diff is None else (args.diff[0], args.diff[1])
    return await commands.replay(
        database_url, args.flow_id, at=args.at, diff=diff, as_json=args.json
    )


async def _check(args: argparse.Namespace, database_url: str, registry: Registry) -> int:
    from app.audit import commands
    from app.migrate import migrate_database

    await migrate_database(database_url)
    return await commands.check_definitions(
        database_url, registry, limit=args.limit, as_json=args.json, progress=not args.no_progress
    )


async def _transfer(args: argparse.Namespace, database_url: str) -> int:
    from app.audit.transfer import Selection, TransferError, export_log, import_log, opened
    from app.migrate import migrate_database

    progress = not args.no_progress
    if args.command == "export":
        await migrate_database(database_url)
        selection = Selection(args.flow, args.since, args.until)
        with opened(args.output, "w") as out:
            report = await export_log(database_url, out, selection, progress=progress)
        print(
            f"exported {report.events} events ({report.bytes:,} bytes) in "
            f"{report.seconds:.1f} s ({report.events_per_s:,.0f} events/s)",
            file=sys.stderr,
        )
        return 0
    size = None if str(args.file) == "-" or args.file.suffix == ".gz" else args.file.stat().st_size
    try:
        with opened(args.file, "r") as source:
            report = await import_log(database_url, source, progress=progress, size=size)
    except (TransferError, OSError) as exc:
        print(f"flowlog: import refused: {exc}", file=sys.stderr)
        return 1
    print(
        f"imported {report.events} events ({report.flows} flows) in {report.seconds:.1f} s "
        f"({report.events_per_s:,.0f} events/s); projections and work rebuilt"
    )
    return await _projections("verify", database_url, progress)


async def _work(settings: Settings, database_url: str, registry: Registry) -> None:
    """The reactor alone, until SIGTERM or SIGINT; then a graceful stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Engine(database_url, registry, reactor=settings.reactor, pool_size=2):
        log.info("worker running", extra={"versions": registry.versions()})
        await stop.wait()
        log.info("worker stopping")


if __name__ == "__main__":
    sys.exit(main())
