"""What each command does once its database is there (``flowlog.cli.main`` checked its
arguments, files and port, and provided the database).

Each command imports what it runs when it runs, in its own function: every `flowlog` process
would otherwise load the server, the engine and the benchmarks."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

from flowlog.cli.problems import CommandError
from flowlog.config import Settings
from flowlog.heap import freeze_startup
from flowlog.migrate import prepare_schema
from flowlog.pgserver import bundled_bin_dir
from flowlog.roles import DatabaseUrls

if TYPE_CHECKING:
    from aiohttp import web

    from flowlog.workflow.definition import Registry

log = logging.getLogger("flowlog")


async def _reachable(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    await conn.close()


def _psql(args: argparse.Namespace, database_url: str) -> int:
    psql = bundled_bin_dir() / "psql"
    extra: list[str] = args.psql_args
    # Ctrl-C belongs to psql (it cancels the query); flowlog waits for psql to end, then
    # stops the embedded server if it started it.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return subprocess.call([str(psql), database_url, *extra])
    finally:
        signal.signal(signal.SIGINT, previous)


def run(
    args: argparse.Namespace,
    settings: Settings,
    urls: DatabaseUrls,
    registry: Registry | None,
    listening: socket.socket | None,
) -> int:
    database_url = urls.url
    if args.command == "migrate":
        from flowlog.archive.retention import prepare_with_retention

        applied = asyncio.run(prepare_with_retention(urls, settings.retention))
        if applied:
            print(f"applied migrations {', '.join(map(str, applied))}")
        else:
            print("the schema is up to date: nothing to apply")
        if settings.retention is not None:
            print(f"retention in the database: {settings.retention.describe()}")
        return 0
    if args.command == "psql":
        url = urls.owner if args.owner else database_url
        asyncio.run(_reachable(url))  # a missing database said as other commands say it
        return _psql(args, url)
    if args.command == "serve":
        from aiohttp import web

        from flowlog.web import create_app

        assert registry is not None  # loaded by _definitions for serve, worker and check
        app = create_app(settings, urls, registry)
        app.cleanup_ctx.append(_frozen_once_started)  # last: after the engine has started
        web.run_app(
            app,
            sock=listening,
            print=log.info,
            access_log=None,  # the API logs each request itself, with its ids
        )
        return 0
    if args.command == "worker":
        assert registry is not None
        asyncio.run(_work(settings, urls, registry))
        return 0
    if args.command in {"history", "replay"}:
        return asyncio.run(_audit(args, urls, settings))
    if args.command == "check-definition":
        assert registry is not None
        return asyncio.run(_check(args, urls, registry))
    if args.command in {"export", "import"}:
        return asyncio.run(_transfer(args, urls))
    if args.command == "archive":
        from flowlog.cli import archive as archive_cli

        return asyncio.run(archive_cli.run(args, urls, settings))
    if args.command in {"rebuild", "verify"}:
        return asyncio.run(
            _projections(args.command, urls, args.progress, getattr(args, "jobs", 1))
        )
    if args.command == "schedules":
        return asyncio.run(_schedules(args, urls))
    if args.command == "keys":
        return asyncio.run(_keys(args, urls))
    if args.command == "definitions":
        return asyncio.run(_definitions_command(args, urls))
    if args.command == "flows":
        from flowlog.cli import flows as flows_commands

        return asyncio.run(flows_commands.run_database(args, urls))
    if args.command == "bench":
        from flowlog.bench.harness import keep_as

        try:
            keep_as()  # said before any database is made
        except ValueError as exc:
            print(f"flowlog: {exc}", file=sys.stderr)
            return 2
        from flowlog.bench import (
            activity,
            append,
            archive,
            callbacks,
            console,
            export,
            flows,
            http,
            limits,
            maps,
            processes,
            projections,
            replica,
            schedules,
            tasks,
            waiting,
            webhooks,
        )

        if args.name == "webhooks":
            report = asyncio.run(webhooks.run(urls.owner, size=args.size, progress=args.progress,
                                              outage=args.outage))  # fmt: skip
            report.print(args.json)
            return 0
        runner = {
            "activity": activity.run,
            "append": append.run,
            "archive": archive.run,
            "callbacks": callbacks.run,
            "console": console.run,
            "export": export.run,
            "flows": flows.run,
            "http": http.run,
            "limits": limits.run,
            "map": maps.run,
            "processes": processes.run,
            "projections": projections.run,
            "replica": replica.run,
            "schedules": schedules.run,
            "tasks": tasks.run,
            "waiting": waiting.run,
        }[args.name]
        report = asyncio.run(runner(urls.owner, size=args.size, progress=args.progress))
        report.print(args.json)
        return 0
    raise AssertionError(f"unhandled command {args.command}")


async def _projections(command: str, urls: DatabaseUrls, progress: bool, jobs: int = 1) -> int:
    from flowlog.access.rebuild import rebuild_keys, verify_keys
    from flowlog.archive.rebuild import rebuild_archives, verify_archives
    from flowlog.eventstore import EventStore, create_pool
    from flowlog.projections.rebuild import rebuild
    from flowlog.projections.verify import verify
    from flowlog.schedules.rebuild import rebuild_schedules, verify_schedules
    from flowlog.triggers.rebuild import rebuild_triggers, verify_triggers
    from flowlog.triggers.wait_rows import rebuild_event_waits, verify_event_waits
    from flowlog.webhooks.rebuild import rebuild_webhooks, verify_webhooks
    from flowlog.workflow.projection import PROJECTOR

    await prepare_schema(urls)
    # A rebuild replaces the projection tables: the owner's work (it grants them again).
    pool = await create_pool(urls.owner if command == "rebuild" else urls.url, max_size=4)
    try:
        store = EventStore(pool)
        if command == "rebuild":
            report = await rebuild(store, PROJECTOR, progress=progress, jobs=jobs, url=urls.owner)
            schedules = await rebuild_schedules(pool)
            archives = await rebuild_archives(pool)
            api_keys = await rebuild_keys(pool)
            rules, received = await rebuild_triggers(pool)
            waits = await rebuild_event_waits(pool)
            webhooks = await rebuild_webhooks(pool)
            print(
                f"rebuilt {report.flows} flows from {report.events} events in "
                f"{report.seconds:.1f} s ({report.events_per_s:,.0f} events/s); "
                f"{report.caught_up_events} events caught up, "
                f"swap {report.swap_seconds * 1000:.0f} ms; {schedules} schedules; "
                f"{archives} archives; {api_keys} keys; {rules} event rules, {received} "
                f"received events; {waits} event waits; {webhooks} webhooks"
            )
            return 0
        checked = await verify(store, PROJECTOR, progress=progress)
        scheduled = await verify_schedules(pool)
        keyed = await verify_keys(pool)
        archived = await verify_archives(pool)
        triggered = await verify_triggers(pool)
        waited = await verify_event_waits(pool)
        hooked = await verify_webhooks(pool)
        differences = [*checked.differences, *scheduled.differences, *archived.differences,
                       *keyed.differences, *triggered.differences, *waited.differences,
                       *hooked.differences]  # fmt: skip
        for difference in differences:
            print(difference)
        print(
            f"verified {checked.flows} flows ({checked.events} events) and "
            f"{scheduled.schedules} schedules, {archived.archives} archives, {keyed.keys} "
            f"keys, {triggered.rules} event rules, {triggered.events} received events, "
            f"{waited.waits} event waits and {hooked.webhooks} webhooks: "
            + (f"{len(differences)} differences" if differences else "no drift")
        )
        return 1 if differences else 0
    finally:
        await pool.close()


async def _audit(args: argparse.Namespace, urls: DatabaseUrls, settings: Settings) -> int:
    from flowlog.cli import audit as commands

    await prepare_schema(urls)
    database_url = urls.url
    replicas = settings.read_database_urls
    if args.command == "history":
        return await commands.history(
            database_url, args.flow_id, as_json=args.json, read_urls=replicas,
            archive_dir=settings.archive_dir,
        )  # fmt: skip
    diff = None if args.diff is None else (args.diff[0], args.diff[1])
    return await commands.replay(
        database_url, args.flow_id, at=args.at, diff=diff, as_json=args.json, read_urls=replicas,
        archive_dir=settings.archive_dir,
    )  # fmt: skip


async def _schedules(args: argparse.Namespace, urls: DatabaseUrls) -> int:
    from flowlog.cli import schedules as cli

    await prepare_schema(urls)
    return await cli.run(args, urls.url)


async def _keys(args: argparse.Namespace, urls: DatabaseUrls) -> int:
    from flowlog.cli import keys as cli

    await prepare_schema(urls)
    return await cli.run(args, urls.url)


async def _definitions_command(args: argparse.Namespace, urls: DatabaseUrls) -> int:
    from flowlog.cli import definitions as cli

    await prepare_schema(urls)
    return await cli.run(args, urls.url)


async def _check(args: argparse.Namespace, urls: DatabaseUrls, registry: Registry) -> int:
    from flowlog.cli import audit as commands

    await prepare_schema(urls)
    return await commands.check_definitions(
        urls.url, registry, limit=args.limit, as_json=args.json, progress=args.progress
    )


async def _transfer(args: argparse.Namespace, urls: DatabaseUrls) -> int:
    from flowlog.archive.files import archive_id_in
    from flowlog.archive.format import TransferError
    from flowlog.audit.transfer import Selection, export_log, import_log, opened

    progress: bool = args.progress
    with contextlib.ExitStack() as files:
        if args.command == "export":
            await prepare_schema(urls)
            out = _open(files, opened, args.output, "w")
            selection = Selection(args.flow, args.since, args.until)
            report = await export_log(urls.url, out, selection, progress=progress)
            print(
                f"exported {report.events} events ({report.bytes:,} bytes) in "
                f"{report.seconds:.1f} s ({report.events_per_s:,.0f} events/s)",
                file=sys.stderr,
            )
            return 0
        if str(args.file) != "-" and archive_id_in(args.file) is not None:
            from flowlog.cli import archive as archive_cli

            return await archive_cli.restore(args.file, urls)
        source = _open(files, opened, args.file, "r")
        plain = str(args.file) != "-" and args.file.suffix != ".gz"
        size = args.file.stat().st_size if plain else None
        try:
            # Loading a log takes a lock and rebuilds the projections: the owner's work.
            imported = await import_log(urls.owner, source, progress=progress, size=size)
        except TransferError as exc:
            print(f"flowlog import: refused: {exc}", file=sys.stderr)
            return 1
    print(
        f"imported {imported.events} events ({imported.flows} flows) in "
        f"{imported.seconds:.1f} s ({imported.events_per_s:,.0f} events/s); projections and "
        "work rebuilt"
    )
    return await _projections("verify", urls, progress)


def _open(files: contextlib.ExitStack, opener: Any, path: Path, mode: str) -> Any:
    """A file a command reads or writes; a failure to open it is said as such."""
    try:
        return files.enter_context(opener(path, mode))
    except OSError as exc:
        verb = "write" if mode == "w" else "read"
        raise CommandError(f"cannot {verb} {path}: {exc.strerror or exc}") from None


async def _frozen_once_started(app: web.Application) -> AsyncIterator[None]:
    freeze_startup()
    yield


async def _work(settings: Settings, urls: DatabaseUrls, registry: Registry) -> None:
    """The reactor alone, until SIGTERM or SIGINT; then a graceful stop."""
    from flowlog.engine import Engine

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Engine(
        urls.url, registry, reactor=settings.reactor, pool_size=2, owner_url=urls.owner_url,
        archive=settings.archive, archive_interval=settings.archive_interval,
        retention=settings.retention, webhooks=settings.webhooks,
    ):  # fmt: skip
        log.info("worker running", extra={"versions": registry.versions()})
        freeze_startup()
        await stop.wait()
        log.info("worker stopping")
