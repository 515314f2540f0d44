"""The ``flowlog`` command: serve, worker, migrate, rebuild, verify, audit, psql, bench.

Arguments are declared in ``flowlog.cli.args``; this module checks what a command was given
(definitions, files, port), provides its database, and hands it to ``flowlog.cli.commands``,
or says in words why it cannot."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import socket
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import asyncpg

from flowlog import logs, telemetry
from flowlog.access.tokens import Tokens
from flowlog.cli import args as cli_args
from flowlog.cli.commands import run
from flowlog.cli.problems import CommandError, database_problem
from flowlog.config import ConfigError, Settings
from flowlog.database import (
    EMBEDDED_DATABASE,
    EMBEDDED_RUNTIME_ROLE,
    DatabaseUrlRequired,
    provide_database,
    refuse_embedded,
)
from flowlog.eventstore import LogHorizonError
from flowlog.migrate import MigrationError
from flowlog.pgserver import SUPERUSER, EmbeddedPostgres, EmbeddedPostgresError
from flowlog.roles import DatabaseUrls

if TYPE_CHECKING:
    from flowlog.workflow.definition import Registry

# What only some commands need is imported where they need it: every `flowlog` process would
# otherwise load the server, the engine and the benchmarks.

log = logging.getLogger("flowlog")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"flowlog: {exc}", file=sys.stderr)
        return 2
    try:
        Tokens.parse(settings.tokens)
    except ValueError as exc:
        print(f"flowlog: FLOWLOG_TOKENS: {exc}", file=sys.stderr)
        return 2
    parsers = cli_args.build(settings)
    args, unknown = parsers.top.parse_known_args(argv)
    command = parsers.commands[args.command]
    if args.command == "psql":
        args.psql_args = _psql_arguments(unknown)
    elif unknown:
        command.error(f"unrecognized arguments: {' '.join(unknown)}")
    cli_args.decide_progress(args)
    logs.configure(
        settings.log_level or ("INFO" if args.command in cli_args.LONG_RUNNING else "WARNING"),
        settings.log_format or ("text" if sys.stderr.isatty() else "json"),
    )
    if args.command in cli_args.LONG_RUNNING:
        telemetry.configure()  # OpenTelemetry, when its extra is installed and OTEL_* ask
    if args.command == "worker":
        from flowlog.cli import remote_worker

        if problem := remote_worker.usage_problem(args):
            command.error(problem)
        if args.remote:  # a worker of a task queue, through a server: no database of its own
            return remote_worker.main(args, settings, command)
    settings, registry = _definitions(args, settings, command)
    try:
        listening = _listen(args) if args.command == "serve" else None
        _check_files(args)
    except CommandError as exc:
        print(f"flowlog {args.command}: {exc}", file=sys.stderr)
        return exc.status
    if args.command == "dsn":
        try:
            return _dsn(settings, args.owner)
        except DatabaseUrlRequired as exc:
            print(f"flowlog dsn: {exc}", file=sys.stderr)
            return 2
    if args.command == "keys":
        from flowlog.cli.keys import usage_problem as key_usage

        if problem := key_usage(args):
            command.error(problem)
    if args.command == "schedules":
        from flowlog.cli.schedules import usage_problem as schedule_usage

        if problem := schedule_usage(args):
            command.error(problem)
    if args.command == "flows":
        from flowlog.cli import flows as flows_commands

        if problem := flows_commands.usage_problem(args):
            command.error(problem)
        if args.api:  # through a server: no database of its own
            return asyncio.run(flows_commands.run_api(args))
    try:
        with provide_database(settings) as urls:
            return run(args, settings, urls, registry, listening)
    except CommandError as exc:
        print(f"flowlog {args.command}: {exc}", file=sys.stderr)
        return exc.status
    except DatabaseUrlRequired as exc:
        print(f"flowlog {args.command}: {exc}", file=sys.stderr)
        return 2
    except (EmbeddedPostgresError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # Files and ports were checked above: what is left is the database's.
        why = database_problem(exc, settings.owner_url or settings.database_url)
        hint = {"hint": why.hint} if why.hint else {}
        log.error(
            "database unavailable", extra={"error": why.words, "kind": type(exc).__name__} | hint
        )
        return 1
    except (MigrationError, LogHorizonError) as exc:
        log.error("database refused", extra={"error": str(exc), "kind": type(exc).__name__})
        return 1


def _definitions(
    args: argparse.Namespace, settings: Settings, command: argparse.ArgumentParser
) -> tuple[Settings, Registry | None]:
    """The definitions the command needs, loaded as ``python -m`` would find them (None: the
    command needs none)."""
    modules: tuple[str, ...]
    if args.command == "check-definition":
        modules, origin = (args.module,), "MODULE"
    elif args.command in cli_args.LONG_RUNNING:
        modules = tuple(args.definitions or settings.definitions)
        origin = "--definitions" if args.definitions else "FLOWLOG_DEFINITIONS"
        if getattr(args, "demo", False):
            modules += ("flowlog.demo",)
        settings = settings.model_copy(
            update={
                "definitions": modules,
                "concurrency": args.concurrency,
                "max_concurrency": args.max_concurrency,
                "run_reactor": not getattr(args, "no_reactor", False),
                "demo": getattr(args, "demo", False),
            }
        )
    else:
        return settings, None
    from flowlog.engine import load_definitions
    from flowlog.workflow.errors import InvalidDefinition

    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)  # as `python -m` does: modules beside the user come first
    try:
        return settings, load_definitions(modules)
    except (ImportError, ValueError, TypeError, InvalidDefinition) as exc:
        command.error(f"cannot load the definitions of {origin} ({', '.join(modules)}): {exc}")


_LISTEN_HINTS = {
    errno.EADDRINUSE: "another process listens there; choose another --port (FLOWLOG_PORT)",
    errno.EACCES: "this user may not listen on that port",
    errno.EADDRNOTAVAIL: "no interface of this machine has that address (--host, FLOWLOG_HOST)",
}


def _listen(args: argparse.Namespace) -> socket.socket:
    """serve's socket, bound before anything else starts (a taken port stops it at once)."""
    from flowlog.web import listen

    try:
        return listen(args.host, args.port)
    except socket.gaierror as exc:
        message = f"cannot listen on {args.host!r} (--host, FLOWLOG_HOST): {exc.strerror}"
        raise CommandError(message, 2) from None
    except OSError as exc:
        hint = _LISTEN_HINTS.get(exc.errno or 0)
        message = f"cannot listen on {args.host}:{args.port}: {exc.strerror}"
        status = 2 if exc.errno == errno.EADDRNOTAVAIL else 1
        raise CommandError(message + (f"; {hint}" if hint else ""), status) from None


def _check_files(args: argparse.Namespace) -> None:
    """The files a command reads or writes, checked before the database is touched."""
    if args.command == "export" and str(args.output) != "-":
        folder = args.output.parent
        if not folder.is_dir():
            raise CommandError(f"cannot write {args.output}: no directory {folder}", 2)
        if not os.access(folder, os.W_OK):
            raise CommandError(f"cannot write {args.output}: {folder} is not writable", 2)
    if args.command == "import" and str(args.file) != "-":
        if not args.file.is_file():
            raise CommandError(f"cannot read {args.file}: no such file", 2)
        if not os.access(args.file, os.R_OK):
            raise CommandError(f"cannot read {args.file}: permission denied", 2)


def _dsn(settings: Settings, owner: bool) -> int:
    if settings.database_url:
        urls = DatabaseUrls(settings.database_url, settings.owner_url)
        print(urls.owner if owner else urls.url)
        return 0
    refuse_embedded(settings)
    server = EmbeddedPostgres(settings.data_dir, system_user=settings.pg_system_user)
    user = SUPERUSER if owner else EMBEDDED_RUNTIME_ROLE
    print(server.dsn(EMBEDDED_DATABASE, user=user))
    if not server.running():
        print(
            f"flowlog dsn: the embedded PostgreSQL in {settings.data_dir} is not running now; "
            "`flowlog serve` (or `flowlog psql`) starts it",
            file=sys.stderr,
        )
    return 0


def _psql_arguments(unknown: list[str]) -> list[str]:
    """What goes to psql: the arguments flowlog does not know, those after ``--`` included
    (the ``--`` itself is flowlog's)."""
    if "--" not in unknown:
        return unknown
    cut = unknown.index("--")
    return unknown[:cut] + unknown[cut + 1 :]
