"""``flowlog archive`` (one run, or a dry run) and ``flowlog import ARCHIVE`` (a restore)."""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import socket
import sys
from pathlib import Path

import orjson

from flowlog.archive.archiver import Archiver, ArchiveReport
from flowlog.archive.format import TransferError
from flowlog.archive.periodic import locked_run
from flowlog.archive.policy import ArchiveSettings
from flowlog.archive.restore import restore_archive
from flowlog.archive.retention import load_retention
from flowlog.config import Settings
from flowlog.eventstore import EventStore, create_pool
from flowlog.migrate import prepare_schema
from flowlog.roles import DatabaseUrls
from flowlog.workflow.caller import Caller


def _caller(reason: str) -> Caller:
    """Who archives or restores by hand: the person at the terminal, on which machine."""
    return Caller(actor=f"{getpass.getuser()}@{socket.gethostname()}", reason=reason)


async def run(args: argparse.Namespace, urls: DatabaseUrls, settings: Settings) -> int:
    await prepare_schema(urls)
    pool = await create_pool(urls.url, min_size=1, max_size=4)
    try:
        stored = await load_retention(pool)
        if settings.retention is not None and settings.retention != stored.retention:
            print(
                f"flowlog archive: the environment's retention is {settings.retention.describe()}"
                f", the database's {stored.describe()}; the database's applies (`flowlog "
                "migrate` as the owner writes the environment's)",
                file=sys.stderr,
            )
        retention = stored.retention
        if not retention.enabled:
            print(
                "retention is off in the database: nothing to archive (`flowlog migrate` with "
                "FLOWLOG_RETENTION, as the owner, sets it)"
            )
            return 0
        if settings.archive_dir is None and not args.dry_run:
            print("flowlog archive: set FLOWLOG_ARCHIVE_DIR: where archives go", file=sys.stderr)
            return 2
        archive = ArchiveSettings(settings.archive_dir or Path("."))
        archiver = Archiver(EventStore(pool), archive, _caller("flowlog archive"))
        if args.dry_run:
            _print_dry_run(await archiver.dry_run(), retention.describe(), args.json)
            return 0
        report = await locked_run(urls.url, archiver, limit=args.limit,
                                  progress=args.progress)  # fmt: skip
    finally:
        await pool.close()
    if report is None:
        print("flowlog archive: another process is archiving now; try later", file=sys.stderr)
        return 1
    _print_report(report, args.json)
    return 0


def _print_dry_run(report: ArchiveReport, retention: str, as_json: bool) -> None:
    if as_json:
        document = {"retention": retention, "flows": report.would_archive,
                    "unfinished": report.archives}  # fmt: skip
        print(orjson.dumps(document).decode())
        return
    total = sum(report.would_archive.values())
    print(f"retention: {retention}")
    print(f"would archive {total} ended flows" + (":" if total else ""))
    for name, flows in sorted(report.would_archive.items()):
        print(f"  {name}: {flows}")
    for archive_id in report.archives:
        print(f"would finish archive {archive_id} (left half done)")


def _print_report(report: ArchiveReport, as_json: bool) -> None:
    if as_json:
        document = {**dataclasses.asdict(report), "flows_per_s": round(report.flows_per_s, 1)}
        document.pop("would_archive")
        print(orjson.dumps(document).decode())
        return
    print(
        f"archived {report.flows} flows ({report.events} events, {report.bytes:,} bytes) "
        f"into {len(report.archives)} archives in {report.seconds:.1f} s "
        f"({report.flows_per_s:,.0f} flows/s); removed {report.removed} from the hot log"
        + (f", kept {report.kept} that moved" if report.kept else "")
        + (f", left {report.dropped} that moved before they were sealed" if report.dropped else "")
    )


async def restore(path: Path, urls: DatabaseUrls) -> int:
    await prepare_schema(urls)
    try:
        report = await restore_archive(urls.owner, path, _caller("flowlog import"))
    except (TransferError, OSError) as exc:
        print(f"flowlog import: refused: {exc}", file=sys.stderr)
        return 1
    print(
        f"restored {report.flows} flows ({report.events} events) from archive "
        f"{report.archive_id}"
        + (f"; {report.skipped} were in the hot log" if report.skipped else "")
    )
    return 0
