"""The ``flowlog`` command: serve, migrate, bench."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

import asyncpg

from app import logs
from app.config import ConfigError, Settings
from app.database import provide_database
from app.migrate import MigrationError
from app.pgserver import EmbeddedPostgresError
from eventstore import LogHorizonError

log = logging.getLogger("flowlog")

BENCHMARKS = ("append",)


def _parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowlog", description="An event-sourced workflow service on PostgreSQL."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="migrate the database and serve the HTTP API")
    serve.add_argument("--host", default=settings.host, help="default: FLOWLOG_HOST or 127.0.0.1")
    serve.add_argument(
        "--port", type=int, default=settings.port, help="default: FLOWLOG_PORT or 8080"
    )

    commands.add_parser("migrate", help="apply the schema migrations and exit")

    bench = commands.add_parser("bench", help="run a benchmark against a scratch database")
    bench.add_argument("name", choices=BENCHMARKS)
    bench.add_argument("--quick", action="store_true", help="finish in under a minute")
    bench.add_argument(
        "--json", action="store_true", help="print every figure as one JSON object, last line"
    )
    bench.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"flowlog: {exc}", file=sys.stderr)
        return 2
    args = _parser(settings).parse_args(argv)
    logs.configure(settings.log_level, settings.log_format)
    try:
        with provide_database(settings) as database_url:
            return _run(args, settings, database_url)
    except (EmbeddedPostgresError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.error("database unavailable", extra={"error": str(exc), "kind": type(exc).__name__})
        return 1
    except (MigrationError, LogHorizonError) as exc:
        log.error("database refused", extra={"error": str(exc), "kind": type(exc).__name__})
        return 1


def _run(args: argparse.Namespace, settings: Settings, database_url: str) -> int:
    if args.command == "migrate":
        from app.migrate import migrate_database

        applied = asyncio.run(migrate_database(database_url))
        log.info("migrations applied", extra={"applied": applied})
        return 0
    if args.command == "serve":
        from aiohttp import web

        from app.web import create_app

        web.run_app(
            create_app(settings, database_url),
            host=args.host,
            port=args.port,
            print=log.info,
            access_log=logging.getLogger("flowlog.access"),
        )
        return 0
    if args.command == "bench":
        from app.bench import append

        report = asyncio.run(
            append.run(database_url, quick=args.quick, progress=not args.no_progress)
        )
        report.print(args.json)
        return 0
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
