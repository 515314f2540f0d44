"""The ``flowlog`` command's arguments: every subcommand, what it does (its ``--help``), and
the options that override the environment."""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
import textwrap
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from flowlog.audit.points import Point, parse_point
from flowlog.bench.size import Size
from flowlog.cli.definitions import add_arguments as add_definition_arguments
from flowlog.cli.flows import add_arguments as add_flow_arguments
from flowlog.cli.keys import add_arguments as add_key_arguments
from flowlog.cli.schedules import add_arguments as add_schedule_arguments
from flowlog.cli.types import flow_id, jobs, port, queue_name, server_url, worker_id
from flowlog.config import Settings
from flowlog.config_help import environment

BENCHMARKS = (
    "activity",
    "append",
    "archive",
    "callbacks",
    "console",
    "export",
    "flows",
    "http",
    "limits",
    "map",
    "processes",
    "projections",
    "replica",
    "schedules",
    "tasks",
    "waiting",
    "webhooks",
)
LONG_RUNNING = frozenset({"serve", "worker"})
REMOTE_CONCURRENCY = 32
"""Tasks a remote worker runs at once without --concurrency or FLOWLOG_CONCURRENCY."""
"""Commands whose log is their output (INFO by default); the others report on stdout and log
only warnings unless FLOWLOG_LOG_LEVEL says otherwise."""

DESCRIPTION = """\
An event-sourced workflow service on PostgreSQL.

Every command works on flowlog's database: the one DATABASE_URL names (a libpq URL,
postgresql://user@host:port/database), or, when it is unset, an embedded PostgreSQL kept in
FLOWLOG_DATA_DIR and started on demand. `flowlog COMMAND --help` says more of each command;
README.md lists every variable."""

ENVIRONMENT: tuple[tuple[str, tuple[str, ...], str], ...] = (
    *environment(),  # flowlog's settings, from their model
    # Read by others on purpose, so not settings of the model: OpenTelemetry's SDK reads its
    # own variables (flowlog.telemetry only asks whether any is set), libpq's are asyncpg's,
    # a failpoint is read where it is (flowlog.faults), by tests only, and the benchmarks'
    # scratch databases are theirs (flowlog.bench.harness).
    ("traces", ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_SDK_DISABLED"),
     "with the otel extra installed, OpenTelemetry reads its other OTEL_* too"),
    ("libpq", ("PGPASSWORD", "PGPASSFILE", "PGSSLMODE"),
     "and libpq's other PG*: asyncpg fills in what a URL leaves out from them"),
    ("tests", ("FLOWLOG_FAILPOINT",), "the process kills itself at the point it names"),
    ("bench", ("FLOWLOG_BENCH_KEEP_AS",),
     "a prefix: benchmarks rename their scratch databases with it and close them, not drop"),
)  # fmt: skip
"""Every environment variable flowlog reads, by what it is for (tests/test_cli.py checks
that the code reads no other)."""


def _epilog() -> str:
    lines = ["environment (options override them; README.md says what each does):"]
    for topic, names, note in ENVIRONMENT:
        text = ", ".join(names) + (f" ({note})" if note else "")
        lines += textwrap.wrap(text, width=98, initial_indent=f"  {topic:<10}",
                               subsequent_indent=" " * 12, break_on_hyphens=False)  # fmt: skip
    return "\n".join([
        *lines,
        "exit status: 0 success, 1 failure (a database unreachable, a check that found",
        "differences), 2 bad usage (a bad option, argument or variable), 3 no such flow or",
        "schedule, 4 (flows) flowlog unreachable; docs/cli.md has the details.",
    ])  # fmt: skip


def _default(setting: str) -> str:
    """Where an option's default comes from: ``FLOWLOG_PORT or 8080``."""
    field = Settings.model_fields[setting]
    return f"{field.alias} or {field.default}"


def version() -> str:
    """The installed distribution's version (pyproject.toml's, as pip installed it)."""
    try:
        return importlib.metadata.version("flowlog")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (flowlog is not installed: pip install .)"


@dataclass(frozen=True)
class Parsers:
    """The top-level parser and each subcommand's (whose ``error`` shows its own usage)."""

    top: argparse.ArgumentParser
    commands: dict[str, argparse.ArgumentParser]


OWNER_HELP = (
    "as the owner role (FLOWLOG_OWNER_URL; embedded: its superuser), which can change the "
    "schema and the log, instead of the runtime role"
)


def build(settings: Settings) -> Parsers:
    top = argparse.ArgumentParser(
        prog="flowlog", description=DESCRIPTION, epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    top.add_argument("--version", action="version", version=f"flowlog {version()}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands: dict[str, argparse.ArgumentParser] = {}

    def command(name: str, summary: str, description: str, **more: Any) -> argparse.ArgumentParser:
        parser = sub.add_parser(
            name, help=summary, description=f"{summary[0].upper()}{summary[1:]}.\n\n{description}",
            formatter_class=argparse.RawDescriptionHelpFormatter, **more,
        )  # fmt: skip
        commands[name] = parser
        return parser

    def engine_options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--definitions", action="append", metavar="MODULE",
            help="a module defining workflows, found as `python -m` finds it (the current "
            "directory first); repeatable; default: FLOWLOG_DEFINITIONS",
        )  # fmt: skip
        parser.add_argument(
            "--concurrency", type=int, default=settings.concurrency,
            help="a fixed number of flows the reactor drives at once (default: "
            "FLOWLOG_CONCURRENCY, or adaptive); a remote worker's tasks at once (default: "
            f"FLOWLOG_CONCURRENCY or {REMOTE_CONCURRENCY})",
        )  # fmt: skip
        parser.add_argument(
            "--max-concurrency", type=int, default=settings.max_concurrency,
            help="the most flows the adaptive limit lets the reactor drive at once "
            f"(default: {_default('max_concurrency')})",
        )  # fmt: skip

    serve = command(
        "serve", "migrate, then serve the console, the HTTP API and the reactor",
        "Listens on --host:--port first (a port already taken stops it before anything else\n"
        "starts), migrates the database, then serves until SIGTERM or Ctrl-C: the web console\n"
        "at /, the REST API under /api/v1/, and the reactor that runs the flows.",
    )  # fmt: skip
    serve.add_argument("--host", default=settings.host, help=f"default: {_default('host')}")
    serve.add_argument(
        "--port", type=port, default=settings.port, help=f"1-65535; default: {_default('port')}"
    )
    serve.add_argument("--no-reactor", action="store_true", help="serve the API only")
    serve.add_argument(
        "--demo", action="store_true",
        help="also register the demo definitions, and create demo flows on first start",
    )  # fmt: skip
    engine_options(serve)

    worker = command(
        "worker", "run the reactor only (no HTTP), or a worker of a task queue",
        "Claims due flows and runs their nodes until SIGTERM or Ctrl-C (graceful: running\n"
        "nodes finish). Run as many as you like, on as many machines. Logs a summary line a\n"
        "minute (nodes run, flows finished, failed, nodes interrupted); each node at DEBUG.\n\n"
        "With --remote URL --queue Q, polls the task queue Q of that flowlog server instead\n"
        "(no database) and runs its tasks with the executors of --definitions: those of the\n"
        "nodes offered on Q, and the module's EXECUTORS and POLLS (node name -> function) for\n"
        "definitions registered as JSON; --concurrency tasks at once (docs/client.md).",
    )  # fmt: skip
    engine_options(worker)
    remote = worker.add_argument_group("a worker of a task queue")
    remote.add_argument(
        "--remote", metavar="URL", type=server_url,
        help="the flowlog server to poll (e.g. http://flowlog:8080), instead of the database",
    )  # fmt: skip
    remote.add_argument("--queue", type=queue_name, help="the task queue to work on")
    remote.add_argument("--token", help="the server's bearer token (default: FLOWLOG_TOKEN)")
    remote.add_argument(
        "--worker-id", type=worker_id, metavar="ID",
        help="the name the server shows as the tasks' holder (default: HOST-PID)",
    )  # fmt: skip

    command(
        "migrate", "apply the schema migrations and exit",
        "Applies the migrations not applied yet (each in its own transaction, once) and says\n"
        "which it applied. When FLOWLOG_RETENTION or FLOWLOG_RETENTION_DEFINITIONS is set, it\n"
        "becomes the database's retention (the owner's: docs/archival.md).",
    )  # fmt: skip

    rebuild = command(
        "rebuild", "replay the log into fresh projection tables and swap them in",
        "The service keeps running: appends pause only for the swap. With --jobs N, N\n"
        "processes fold ranges of the flows in the same snapshot (a core each: the fold is\n"
        "Python), as pg_restore -j loads a dump.",
    )  # fmt: skip
    rebuild.add_argument(
        "--jobs", type=jobs, default=1, metavar="N",
        help="processes that fold the flows, 1 to 64 (default 1)",
    )  # fmt: skip
    add_progress(rebuild)
    verify = command(
        "verify", "fold the log and compare with the projection tables",
        "Prints each difference; exit status 1 on drift.",
    )  # fmt: skip
    add_progress(verify)

    history = command(
        "history", "a flow's events: when, who, why and what",
        "The audit trail of one flow, oldest first, as a table (or --json: one object a line).\n"
        "Exit status 3 if there is no such flow.",
    )  # fmt: skip
    history.add_argument("flow_id", type=flow_id, metavar="FLOW_ID")
    history.add_argument("--json", action="store_true", help="one JSON object per event")
    replay = command(
        "replay", "a flow's state at a version or time, folded from its history",
        "With --at, the flow as it was then; with --diff A B, what changed between two points\n"
        "(each a version number or an ISO 8601 time). Exit status 3 if there is no such flow,\n"
        "1 if it did not exist yet at the point asked for.",
    )  # fmt: skip
    replay.add_argument("flow_id", type=flow_id, metavar="FLOW_ID")
    when = replay.add_mutually_exclusive_group()
    when.add_argument(
        "--at", type=point, metavar="VERSION|TIME", help="default: after the last event"
    )
    when.add_argument(
        "--diff", type=point, nargs=2, metavar=("A", "B"), help="what changed from A to B"
    )
    replay.add_argument("--json", action="store_true", help="the state (or changes) as JSON")

    export = command(
        "export", "write the log (or one flow, or a time range) as JSON lines",
        "A header, the events in log order, and a trailer with their count and checksum.",
    )  # fmt: skip
    export.add_argument(
        "-o", "--output", type=Path, default=Path("-"),
        help="the file (.gz: compressed); default: stdout",
    )  # fmt: skip
    chosen = export.add_mutually_exclusive_group()
    chosen.add_argument("--flow", type=flow_id, metavar="FLOW_ID", help="only this flow's events")
    chosen.add_argument("--since", type=time, metavar="TIME", help="events recorded from TIME")
    export.add_argument("--until", type=time, metavar="TIME", help="events recorded before TIME")
    add_progress(export)
    load = command(
        "import", "load an export into an empty database, or restore an archive",
        "An export goes into an empty database (refused otherwise), which is then rebuilt and\n"
        "verified from it. An archive (flowlog archive) brings its flows back into the hot\n"
        "log, whatever else it holds. A file that was cut or altered is refused.",
    )  # fmt: skip
    load.add_argument(
        "file", type=Path, metavar="FILE", help="an export (.gz: compressed; -: stdin)"
    )
    add_progress(load)

    archive = command(
        "archive", "archive the ended flows past their retention, once",
        "Writes each batch of flows to an archive file under FLOWLOG_ARCHIVE_DIR (the export\n"
        "format, compressed, checksummed), records it in the log, then removes the flows from\n"
        "the hot log. How long flows stay is the owner's retention in the database (`flowlog\n"
        "migrate` writes FLOWLOG_RETENTION and FLOWLOG_RETENTION_DEFINITIONS there). An archive\n"
        "left half done is finished first.",
    )  # fmt: skip
    archive.add_argument(
        "--dry-run", action="store_true", help="say what would be archived, change nothing"
    )
    archive.add_argument("--limit", type=int, help="archive at most this many flows")
    archive.add_argument("--json", action="store_true", help="the report as JSON")
    add_progress(archive)

    check = command(
        "check-definition", "replay stored flows against the definitions of MODULE",
        "Names each flow that the new definitions would have decided otherwise, and where,\n"
        "and each running flow that deploying MODULE alone would strand (its version is not\n"
        "among MODULE's versions of its definition, so no process would run it); exit status\n"
        "1 if any would diverge or be stranded.",
    )  # fmt: skip
    check.add_argument("module", metavar="MODULE", help="a module defining workflows")
    check.add_argument(
        "--limit", type=int, default=10_000, help="the newest flows of each (default 10000)"
    )
    check.add_argument("--json", action="store_true", help="one JSON object per definition")
    add_progress(check)

    definitions = command(
        "definitions", "the flows waiting for a definition version no running process has",
        "pending: the flows a deploy stranded (their version is in no process running a\n"
        "reactor), by definition and version, and the processes running now. Exit status 0\n"
        "when none waits, 1 when some do.",
    )  # fmt: skip
    add_definition_arguments(definitions)

    psql = command(
        "psql", "psql on flowlog's database",
        "Runs the psql that comes with flowlog's PostgreSQL on flowlog's database: the one\n"
        "DATABASE_URL names, or the embedded one (started for the session if no flowlog\n"
        "process runs it). Every argument but --owner goes to psql, as do all after `--`\n"
        "(for psql's own -h or --help): flowlog psql -c 'SELECT 1'.",
        usage="flowlog psql [-h] [--owner] [PSQL_ARGS ...] [-- PSQL_ARGS ...]",
        allow_abbrev=False,  # --o is not --owner: it could be meant for psql
    )  # fmt: skip
    psql.add_argument("--owner", action="store_true", help=OWNER_HELP)
    dsn = command(
        "dsn", "print the URL of flowlog's database",
        "For other tools (psql, pg_dump, a notebook): DATABASE_URL when it is set, else the\n"
        "embedded server's URL (it says so on stderr when that server is not running).",
    )  # fmt: skip
    dsn.add_argument("--owner", action="store_true", help=OWNER_HELP)

    flows = command(
        "flows", "list, show, start, stop, cancel, retry or follow flows",
        "On flowlog's database (DATABASE_URL, or the embedded one), or through a flowlog\n"
        "server with --api URL (and --token T). Exit status: 0 done (follow: the flow\n"
        "finished), 1 refused (or the followed flow ended in Error or Canceled), 2 bad usage,\n"
        "3 no such flow, 4 flowlog unreachable.",
    )  # fmt: skip
    add_flow_arguments(flows)

    schedules = command(
        "schedules", "list, show, create, update, pause, resume or delete schedules",
        "A schedule starts a flow of a definition at each fire of a cron expression or an\n"
        "interval, in a time zone. create and update take the settings as options, or as\n"
        "JSON (--file, as the REST body); update keeps what it is not given. Exit status: 0\n"
        "done, 1 refused, 2 bad usage or settings, 3 no such schedule.",
    )  # fmt: skip
    add_schedule_arguments(schedules)

    keys = command(
        "keys", "create, list or revoke API keys",
        "On flowlog's database, for the first key of a fresh installation and for recovery\n"
        "(the REST API's /api/v1/keys does the same for admins). create prints the key once,\n"
        "on stdout. Roles: viewer, operator, admin, superadmin (docs/access.md). Exit status:\n"
        "0 done, 1 refused, 2 bad usage, 3 no such key.",
    )  # fmt: skip
    add_key_arguments(keys)

    bench = command(
        "bench", "run a benchmark against a scratch database",
        "Each figure is measured against a baseline in the same run (docs/benchmarks.md); the\n"
        "scratch database is dropped afterwards.",
    )  # fmt: skip
    bench.add_argument("name", choices=BENCHMARKS)
    sized = bench.add_mutually_exclusive_group()
    sized.add_argument(
        "--quick", dest="size", action="store_const", const=Size.QUICK, default=Size.FULL,
        help="finish in under a minute",
    )  # fmt: skip
    sized.add_argument(
        "--smoke", dest="size", action="store_const", const=Size.SMOKE,
        help="the least that runs every step (for tests: its figures mean nothing)",
    )  # fmt: skip
    bench.add_argument(
        "--json", action="store_true", help="print every figure as one JSON object, last line"
    )
    bench.add_argument(
        "--outage", type=float, default=None, metavar="SECONDS",
        help="webhooks: how long the receiver is down (default 30, --quick 5)",
    )  # fmt: skip
    add_progress(bench)
    return Parsers(top, commands)


def add_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction,
        help="progress bars on stderr (default: only when stderr is a terminal)",
    )  # fmt: skip


def decide_progress(args: argparse.Namespace) -> None:
    """``args.progress`` decided: as asked, else whether a person watches stderr (a bar in a
    log file or a pipe is noise, and its carriage returns garble the lines around it)."""
    if hasattr(args, "progress") and args.progress is None:
        args.progress = sys.stderr.isatty()


def time(text: str) -> datetime:
    found = point(text)
    if not isinstance(found, datetime):
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time")
    return found


def point(text: str) -> Point:
    try:
        return parse_point(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
