"""The ``flowlog`` command as a user runs it: a separate process, configured by environment."""

from __future__ import annotations

import ast
import contextlib
import fcntl
import os
import pty
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import time
import urllib.request
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import orjson
import pytest

from flowlog.bench.harness import free_port
from flowlog.database import with_database
from flowlog.engine import Engine
from flowlog.workflow.definition import Registry
from tests.helpers import cli_env, loaded_by, refused_port, run_flowlog
from tests.workflow.defs import backup_flow

SOME_FLOW = "3f0c5b2e-8d1a-4c3b-9e2f-0a1b2c3d4e5f"
"""A flow id as flowlog makes them (no test's flow has it)."""


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, orjson.loads(error.read())


def _wait_healthy(base: str, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"flowlog serve exited: {process.communicate()}")
        try:
            if _get(base + "/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("flowlog serve did not become healthy")


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="flcli-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_command_loads_the_server_only_for_the_commands_that_run_it() -> None:
    """Every ``flowlog`` process reads its settings and builds its arguments; the server, the
    engine, the reactor and the benchmarks are loaded by the commands that run them."""
    loaded = loaded_by(
        "from flowlog.cli import args\nfrom flowlog.config import Settings\n"
        "args.build(Settings.from_env())"
    )
    assert "flowlog.cli.main" in loaded
    heavy = ("flowlog.web", "flowlog.engine", "flowlog.workflow.reactor", "flowlog.api",
             "flowlog.console", "flowlog.bench.harness", "flowlog.client.client")  # fmt: skip
    assert [m for m in loaded if m in heavy or m.startswith(tuple(f"{h}." for h in heavy))] == []


def test_migrate_applies_the_schema(empty_database_url: str) -> None:
    first = run_flowlog("migrate", env=cli_env(DATABASE_URL=empty_database_url))
    second = run_flowlog("migrate", env=cli_env(DATABASE_URL=empty_database_url))
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("applied migrations 1, 2")
    assert second.returncode == 0
    assert second.stdout == "the schema is up to date: nothing to apply\n"
    # A command a person runs is quiet on stderr unless something is wrong.
    assert first.stderr == ""
    assert second.stderr == ""


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["frobnicate"], {}),
        (["bench", "nonsense"], {}),
        (["serve", "--port", "eighty"], {}),
        (["migrate"], {"FLOWLOG_PORT": "99999"}),
        (["migrate"], {"FLOWLOG_LOG_LEVEL": "chatty"}),
    ],
)
def test_bad_usage_exits_2_with_a_message(args: list[str], env: dict[str, str]) -> None:
    result = run_flowlog(*args, env=cli_env(**env))
    assert result.returncode == 2
    assert result.stderr.strip()
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["serve", "--port", "70000"], {}, "--port"),  # wrapped round to 4464 before
        (["serve", "--port", "-1"], {}, "--port"),  # said as a bad --host before
        (["serve", "--port=0"], {}, "--port"),
        (["serve"], {"FLOWLOG_PORT": "70000"}, "FLOWLOG_PORT"),
        (["serve"], {"FLOWLOG_PORT": "-1"}, "FLOWLOG_PORT"),
        (["flows", "list", "--api", "http://127.0.0.1:70000"], {}, "--api"),
        (["flows", "list", "--api", "http://127.0.0.1:-1"], {}, "--api"),
    ],
)
def test_a_port_out_of_range_exits_2_naming_where_it_came_from(
    args: list[str], env: dict[str, str], named: str
) -> None:
    with refused_port() as port:  # nothing is reached: the port is refused first
        env = {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/never", **env}
        result = run_flowlog(*args, env=cli_env(**env))
    assert result.returncode == 2, result.stderr
    assert named in result.stderr
    assert "65535" in result.stderr
    assert "cannot listen" not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["history", "no-such-flow"],
        ["replay", "3F0C5B2E-8D1A-4C3B-9E2F-0A1B2C3D4E5F", "--json"],
        ["export", "--flow", "1"],
        ["flows", "show", "ghost"],
        ["flows", "start", f"{SOME_FLOW}.2", "--api", "http://flowlog.invalid"],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_text_that_is_not_a_flow_id_is_bad_usage_not_a_missing_flow(args: list[str]) -> None:
    with refused_port() as port:  # said before anything is reached
        env = cli_env(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/never")
        result = run_flowlog(*args, env=env)
    assert result.returncode == 2, result.stderr
    assert "not a flow id" in result.stderr
    assert "no flow" not in result.stderr


@pytest.mark.parametrize("command", ["migrate", "serve"])
def test_an_unreachable_database_exits_1_with_a_message(command: str, server_url: str) -> None:
    missing = with_database(server_url, "flowlog_no_such_database")
    # serve takes its port first: one free now, not its default (a flowlog serve may run there).
    port = ["--port", str(free_port())] if command == "serve" else []
    result = run_flowlog(command, *port, env=cli_env(DATABASE_URL=missing), timeout=60)
    assert result.returncode == 1
    assert "flowlog_no_such_database" in result.stderr
    assert "Traceback" not in result.stderr


CONNECTING = [
    ["migrate"], ["serve"], ["worker"], ["rebuild"], ["verify"], ["history", SOME_FLOW],
    ["replay", SOME_FLOW], ["export"], ["import", "IMPORTED"], ["archive"],
    ["check-definition", "flowlog.demo"], ["psql", "-c", "SELECT 1"], ["flows", "list"],
    ["flows", "show", SOME_FLOW], ["schedules", "list"], ["bench", "append", "--quick"],
]  # fmt: skip


@pytest.mark.parametrize("args", CONNECTING, ids=lambda args: " ".join(args[:2]))
def test_a_database_that_does_not_exist_is_said_with_how_to_create_it(
    args: list[str], server_url: str, tmp_path: Path
) -> None:
    (tmp_path / "export.jsonl").write_text("")
    args = [str(tmp_path / "export.jsonl") if a == "IMPORTED" else a for a in args]
    if args[0] == "serve":
        args.append(f"--port={free_port()}")
    env = cli_env(
        DATABASE_URL=with_database(server_url, "flowlog_not_created"),
        FLOWLOG_RETENTION="30d", FLOWLOG_ARCHIVE_DIR=str(tmp_path), FLOWLOG_LOG_FORMAT="text",
    )  # fmt: skip
    result = run_flowlog(*args, env=env, timeout=60)
    assert result.returncode == (4 if args[0] == "flows" else 1), result.stderr
    assert "database 'flowlog_not_created' does not exist on 127.0.0.1" in result.stderr
    assert "createdb -h 127.0.0.1" in result.stderr
    assert 'CREATE DATABASE "flowlog_not_created"' in result.stderr
    assert "Traceback" not in result.stderr


def test_flows_says_why_the_database_cannot_be_reached_in_words() -> None:
    with refused_port() as port:
        env = cli_env(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/flowlog")
        result = run_flowlog("flows", "list", env=env)
    assert result.returncode == 4
    assert result.stderr == (
        "flowlog flows: the database could not be reached: "
        f"cannot connect to 127.0.0.1:{port}/flowlog: connection refused\n"
    )


@pytest.mark.slow
def test_serve_with_database_url_answers_and_stops_on_sigterm(database_url: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "flowlog.cli", "serve", "--port", str(port)],
        env=cli_env(DATABASE_URL=database_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_healthy(base, process)
        assert _get(base + "/readyz")[0] == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    finally:
        process.kill()
        _, stderr = process.communicate()
    # Once started, what the process holds is kept out of later collections (app/heap.py).
    [frozen] = [line for line in map(orjson.loads, stderr.splitlines())
                if line["message"] == "startup heap frozen"]  # fmt: skip
    assert frozen["objects"] > 10_000


@pytest.mark.slow
def test_serve_without_database_url_runs_and_stops_an_embedded_server(short_dir: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data_dir = short_dir / "pgdata"
    process = subprocess.Popen(
        [sys.executable, "-m", "flowlog.cli", "serve"],
        env=cli_env(FLOWLOG_DATA_DIR=str(data_dir), FLOWLOG_PORT=str(port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_healthy(base, process)
        status, body = _get(base + "/readyz")
        assert status == 200, body
        assert (data_dir / "postmaster.pid").exists()
        # Two roles of its own: the service's may not change the log; the owner is apart.
        env = cli_env(FLOWLOG_DATA_DIR=str(data_dir))
        who = run_flowlog("psql", "--", "-Atc", "SELECT current_user", env=env)
        assert who.stdout.strip() == "flowlog", who.stderr
        refused = run_flowlog("psql", "--", "-c", "TRUNCATE events", env=env)
        assert "permission denied for table events" in refused.stderr
        owner = run_flowlog("psql", "--owner", "--", "-Atc", "SELECT current_user", env=env)
        assert owner.stdout.strip() == "postgres", owner.stderr
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        process.kill()
        _, stderr = process.communicate()
    assert not (data_dir / "postmaster.pid").exists(), stderr
    assert "can rewrite the event log" not in stderr


BENCH_FIGURES = [
    ("activity", ("actor_tenant_p50_ms", "actor_tenant_p99_ms", "ratio_actor_tenant_p50_vs_pk")),
    ("append", ("ratio_w1_e1", "ratio_w4_e10", "ratio_w16_e1", "notifications_received")),
    ("flows", ("flows_per_s", "transition_p50_ms", "transition_p99_ms", "commits_per_flow")),
    ("projections", ("rebuild_events_per_s", "list_p99_ms", "detail_p99_ms")),
    ("http", ("create_start_requests_per_s", "list_p99_ms", "ratio_detail_vs_healthz",
              "ratio_split_create_start_vs_healthz")),
    ("export", ("export_events_per_s", "import_events_per_s", "export_peak_rss_mb_all")),
    ("console", ("flows_server_p50_ms", "flow_server_p99_ms", "ratio_flow_vs_healthz")),
    ("waiting", ("parked_flows", "polls_per_s", "waiting_cpu_share", "ready_delay_max_s")),
    ("schedules", ("fires", "fire_delay_p50_ms", "fire_delay_p99_ms", "create_start_p50_ms")),
    ("callbacks", ("waiting_flows", "callback_to_next_node_p50_ms", "timer_delay_p50_ms",
                   "statements_per_completion")),
    ("replica", ("list_replica_requests_per_s", "create_read_replica_p99_ms", "reads_replica")),
    ("archive", ("archive_flows_per_s", "export_flows_per_s", "append_archiving_p99_ms")),
    ("map", ("children_per_s_1k", "children_per_s_10k", "parent_events_per_child_10k",
             "ratio_children_vs_independent_flows", "ratio_time_10k_vs_1k")),
    ("processes", ("flows_per_s_serve", "flows_per_s_serve_1_worker",
                   "flows_per_s_serve_2_workers")),
    ("limits", ("flows_per_s_unlimited", "flows_per_s_limited", "most_at_once_per_key_limited",
                "ratio_flows_limited_vs_unlimited", "ratio_flows_limit_unreached_vs_unlimited")),
    ("tasks", ("tasks_per_s", "in_process_flows_per_s", "ratio_tasks_vs_in_process",
               "offer_to_task_p50_ms", "tasks_completed")),
    ("webhooks", ("deliveries_per_s", "lag_p99_ms", "ratio_flows_with_vs_without",
                  "outage_events", "drain_seconds")),
]  # fmt: skip


PROGRESS_BAR = re.compile(r"\[\d\d:\d\d[<,]")
"""What tqdm draws: the time elapsed, then left (``[00:03<00:07``) or the rate (``[00:03,``)."""


def _with_stderr_on_a_terminal(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """``flowlog ARGS`` with its stderr on a pseudo-terminal, as a person runs it: its exit
    status and what it wrote there."""
    terminal, stderr = pty.openpty()
    # 24 rows of 80 columns: a new pseudo-terminal has none, where tqdm draws nothing.
    fcntl.ioctl(stderr, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "flowlog.cli", *args], env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=stderr,
    )  # fmt: skip
    os.close(stderr)
    written = b""
    with contextlib.suppress(OSError):  # EIO: the process closed its end
        while chunk := os.read(terminal, 65536):
            written += chunk
    os.close(terminal)
    return process.wait(60), written.decode(errors="replace")


async def test_progress_bars_are_drawn_on_a_terminal_only(database_url: str) -> None:
    async with Engine(database_url, Registry([backup_flow()]), run_reactor=False) as engine:
        await engine.service.create("b", "t", "backup")  # something to verify
    env = cli_env(DATABASE_URL=database_url)
    status, on_a_terminal = _with_stderr_on_a_terminal("verify", env=env)
    assert status == 0, on_a_terminal
    assert PROGRESS_BAR.search(on_a_terminal)
    status, hidden = _with_stderr_on_a_terminal("verify", "--no-progress", env=env)
    assert status == 0, hidden
    assert not PROGRESS_BAR.search(hidden)
    piped = run_flowlog("verify", env=env)  # a log file, a pipe: no bar
    assert (piped.returncode, piped.stderr) == (0, "")
    forced = run_flowlog("verify", "--progress", env=env)
    assert forced.returncode == 0, forced.stderr
    assert PROGRESS_BAR.search(forced.stderr)


def test_every_benchmark_is_tested() -> None:
    from flowlog.cli.args import BENCHMARKS

    assert sorted(name for name, _ in BENCH_FIGURES) == sorted(BENCHMARKS)


def _bars(tree: ast.AST) -> list[ast.Call]:
    """The progress bars a module draws: its tqdm calls."""
    return [n for n in ast.walk(tree)
            if isinstance(n, ast.Call) and ast.unparse(n.func).endswith("tqdm")]  # fmt: skip


def _bars_obey(tree: ast.AST) -> list[str]:
    """The progress bars of a module that are not turned off by a progress flag: each must say
    ``disable=not <...progress>``."""
    unruly = []
    for node in _bars(tree):
        disable = next((k.value for k in node.keywords if k.arg == "disable"), None)
        if not (
            isinstance(disable, ast.UnaryOp) and isinstance(disable.op, ast.Not)
            and ast.unparse(disable.operand).split(".")[-1].endswith("progress")
        ):  # fmt: skip
            unruly.append(f"line {node.lineno}: {ast.unparse(node)[:80]}")
    return unruly


def test_every_progress_bar_is_turned_off_by_the_progress_flag() -> None:
    """Every bar flowlog draws (21 today: the benchmarks', rebuild's, verify's, export's,
    archive's...) is off when its command's progress flag is: so ``--no-progress`` (and a
    pipe, for commands that decide) draws none, on every path, whatever a smoke run reaches.
    No call passes a progress flag that is always on."""
    bars = 0
    for folder in ("app", "eventstore", "projections"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            assert _bars_obey(tree) == [], path
            bars += len(_bars(tree))
            always = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.keyword)
                      and n.arg == "progress" and isinstance(n.value, ast.Constant)
                      and n.value.value is True]  # fmt: skip
            assert always == [], f"{path}: progress=True at lines {always}"
    assert bars >= 20
    check = ast.parse("tqdm(total=3)\nbar = tqdm(total=3, disable=False)\n"
                      "tqdm(total=3, disable=not progress)")  # fmt: skip
    assert [line.split(":")[0] for line in _bars_obey(check)] == ["line 1", "line 2"]


def test_a_benchmark_without_bars_draws_none(database_url: str) -> None:
    """The flag reaches the benchmark (each benchmark's bars obey it: the test above)."""
    result = run_flowlog("bench", "append", "--smoke", "--json", "--no-progress",
                         env=cli_env(DATABASE_URL=database_url), timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-5000:]
    assert not PROGRESS_BAR.search(result.stderr), result.stderr
    assert orjson.loads(result.stdout.strip().splitlines()[-1])["size"] == "smoke"


@pytest.mark.parametrize("prefix", ["x" * 52, "\u00e9" * 26])  # 52 bytes either way
def test_a_keep_prefix_too_long_for_a_database_name_is_bad_usage(
    database_url: str, prefix: str
) -> None:
    """Said before the benchmark makes its database (not after its run, when it would put the
    database away), with exit 2 and no traceback."""
    env = cli_env(DATABASE_URL=database_url, FLOWLOG_BENCH_KEEP_AS=prefix)
    result = run_flowlog("bench", "append", "--smoke", "--no-progress", env=env)
    assert result.returncode == 2, result.stderr
    assert "FLOWLOG_BENCH_KEEP_AS is too long: a prefix of at most 51 bytes" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.slow
@pytest.mark.parametrize(("name", "keys"), BENCH_FIGURES, ids=[n for n, _ in BENCH_FIGURES])
def test_each_benchmark_runs_drawing_its_bars(
    database_url: str, name: str, keys: tuple[str, ...]
) -> None:
    """The smallest run of each (--smoke), as docs/benchmarks.md runs it on a terminal (bars
    forced on: the test's stderr is a pipe): its bars drawn on stderr, its figures on stdout.
    Without bars: the two tests above."""
    result = run_flowlog(
        "bench", name, "--smoke", "--json", "--progress", env=cli_env(DATABASE_URL=database_url),
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-5000:]
    assert "Traceback" not in result.stderr
    assert PROGRESS_BAR.search(result.stderr), result.stderr
    figures = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert figures["size"] == "smoke"
    assert all(figures[key] > 0 for key in keys), figures
    assert any(key.startswith("ratio_") for key in figures)
    if name in {"projections", "export", "flows", "waiting", "callbacks", "schedules"}:
        assert figures["verify_differences"] == 0
    if name == "flows":
        assert figures["commits_per_flow"] < 6
    if name == "waiting":
        assert figures["parked_flows"] >= figures["flows"]  # every waiting flow parked
    if name == "callbacks":
        assert figures["waiting_flows"] == figures["flows"]
        assert figures["waiting_work_rows"] == 0  # a callback without deadline holds no row
        # Counted: the stream, the append, its notification, the claim, the next start.
        assert figures["statements_per_completion"] <= 5  # the median: a window may meet a timer
    if name == "schedules":
        assert figures["flows_per_fire"] == 1  # every fire made its flow, once
    if name == "webhooks":  # nothing lost in the outage, each flow in order
        assert (figures["lost"], figures["out_of_order_flows"]) == (0, 0)
        assert figures["duplicates_differing"] == 0
    if name == "tasks":
        assert figures["tasks_completed"] == figures["tasks_expected"]
        assert figures["flows_finished"] == figures["flows_created"]
    if name == "replica":
        assert figures["lag_samples"] > 0
    if name == "archive":
        assert figures["archived_during_load"] > 0
        assert figures["steady_archived"] > 0
        assert figures["ratio_hot_log_last_vs_1"] < 3  # bounded, not growing with the periods


# -- issue 10: the CLI a person meets -----------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL"),
        ({"DATABASE_URL": "mysql://u@h/db"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://u@h:99999999/db"}, "DATABASE_URL"),
        ({"FLOWLOG_TOKENS": "garbage"}, "FLOWLOG_TOKENS"),
        ({"FLOWLOG_PG_USER": "Not A User"}, "FLOWLOG_PG_USER"),
        ({"FLOWLOG_LOG_FORMAT": "xml"}, "FLOWLOG_LOG_FORMAT"),
    ],
)
def test_a_bad_variable_exits_2_naming_it(env: dict[str, str], named: str) -> None:
    result = run_flowlog("migrate", env=cli_env(**env))
    assert result.returncode == 2, result.stderr
    assert named in result.stderr
    assert "database unavailable" not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["serve"], ["worker"], ["migrate"], ["dsn"], ["psql"]])
def test_without_database_url_where_one_is_required_nothing_embedded_starts(
    args: list[str], tmp_path: Path
) -> None:
    """The image's setting: a missing DATABASE_URL is said, and no server is made in its place
    (FLOWLOG_DATA_DIR stays empty)."""
    data = tmp_path / "pg"
    env = cli_env(FLOWLOG_REQUIRE_DATABASE_URL="1", FLOWLOG_DATA_DIR=str(data),
                  FLOWLOG_PORT=str(free_port()))  # fmt: skip
    result = run_flowlog(*args, env=env, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "DATABASE_URL is required" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not data.exists()


def test_require_database_url_is_a_yes_or_no(database_url: str) -> None:
    refused = run_flowlog("migrate", env=cli_env(FLOWLOG_REQUIRE_DATABASE_URL="perhaps"))
    assert refused.returncode == 2
    assert "FLOWLOG_REQUIRE_DATABASE_URL" in refused.stderr
    given = run_flowlog(
        "migrate", env=cli_env(FLOWLOG_REQUIRE_DATABASE_URL="1", DATABASE_URL=database_url)
    )
    assert given.returncode == 0, given.stderr


def test_definitions_that_cannot_load_name_their_origin_with_the_commands_usage(
    server_url: str,
) -> None:
    result = run_flowlog(
        "serve", env=cli_env(DATABASE_URL=server_url, FLOWLOG_DEFINITIONS="no_such_flows")
    )
    assert result.returncode == 2
    assert "usage: flowlog serve" in result.stderr
    assert "FLOWLOG_DEFINITIONS (no_such_flows)" in result.stderr
    flag = run_flowlog("worker", "--definitions", "nope_flows", env=cli_env())
    assert flag.returncode == 2
    assert "usage: flowlog worker" in flag.stderr
    assert "--definitions (nope_flows)" in flag.stderr


def test_definitions_are_found_beside_the_user_as_python_m_finds_them(
    database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "myflows.py").write_text(
        "from flowlog import NodeDefinition, WorkflowDefinition\n"
        "async def run(node, ctx):\n    pass\n"
        "DEFINITIONS = [WorkflowDefinition('mine', {'start': NodeDefinition('run', run)})]\n"
    )
    flowlog = Path(sys.executable).parent / "flowlog"  # the console script, not `python -m`
    result = subprocess.run(
        [str(flowlog), "check-definition", "myflows", "--no-progress"],
        env=cli_env(DATABASE_URL=database_url), cwd=tmp_path, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "mine" in result.stdout


def test_a_taken_port_is_said_before_anything_starts(server_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        missing = with_database(server_url, "flowlog_never_touched")
        result = run_flowlog(
            "serve", "--port", str(port), env=cli_env(DATABASE_URL=missing), timeout=60
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Address already in use" in result.stderr
    assert "database unavailable" not in result.stderr  # the database was never reached
    unknown = run_flowlog("serve", "--host", "no-such-host.invalid", env=cli_env(), timeout=60)
    assert unknown.returncode == 2
    assert "cannot listen on 'no-such-host.invalid'" in unknown.stderr


def test_files_that_cannot_be_read_or_written_are_said_as_such(tmp_path: Path) -> None:
    with refused_port() as port:
        missing = f"postgresql://postgres@127.0.0.1:{port}/never"
        out = run_flowlog("export", "-o", str(tmp_path / "no" / "dir" / "x.jsonl"),
                          env=cli_env(DATABASE_URL=missing))  # fmt: skip
        src = run_flowlog(
            "import", str(tmp_path / "missing.jsonl"), env=cli_env(DATABASE_URL=missing)
        )
    assert out.returncode == 2
    assert "cannot write" in out.stderr
    assert "no directory" in out.stderr
    assert src.returncode == 2
    assert "cannot read" in src.stderr
    for result in (out, src):
        assert "database unavailable" not in result.stderr


def test_text_logs_keep_their_fields(server_url: str) -> None:
    missing = with_database(server_url, "flowlog_no_such_database")
    result = run_flowlog("migrate", env=cli_env(DATABASE_URL=missing, FLOWLOG_LOG_FORMAT="text"))
    assert result.returncode == 1
    line = next(line for line in result.stderr.splitlines() if "database unavailable" in line)
    assert "error=" in line
    assert "flowlog_no_such_database" in line
    assert "kind=" in line


def test_dsn_and_psql_reach_flowlogs_database(database_url: str, tmp_path: Path) -> None:
    dsn = run_flowlog("dsn", env=cli_env(DATABASE_URL=database_url))
    assert (dsn.returncode, dsn.stdout.strip()) == (0, database_url)
    embedded = run_flowlog("dsn", env=cli_env(FLOWLOG_DATA_DIR=str(tmp_path / "pg")))
    assert embedded.returncode == 0
    # The runtime role that serves; --owner: the superuser that owns the schema.
    assert embedded.stdout.startswith("postgresql://flowlog@/flowlog?host=")
    assert "is not running now" in embedded.stderr
    owner = run_flowlog("dsn", "--owner", env=cli_env(FLOWLOG_DATA_DIR=str(tmp_path / "pg")))
    assert owner.stdout.startswith("postgresql://postgres@/flowlog?host=")
    both = cli_env(DATABASE_URL=database_url, FLOWLOG_OWNER_URL=database_url + "?x=owner")
    assert run_flowlog("dsn", "--owner", env=both).stdout.strip() == database_url + "?x=owner"
    psql = run_flowlog(
        "psql", "--", "-Atc", "SELECT count(*) FROM schema_migrations",
        env=cli_env(DATABASE_URL=database_url),
    )  # fmt: skip
    assert psql.returncode == 0, psql.stderr
    assert int(psql.stdout.strip()) >= 4


def test_psql_takes_psqls_arguments_without_a_separator(database_url: str) -> None:
    env = cli_env(DATABASE_URL=database_url)
    plain = run_flowlog("psql", "-c", "SELECT 1 + 1", "-At", env=env)
    assert (plain.returncode, plain.stdout, plain.stderr) == (0, "2\n", "")
    owner = run_flowlog("psql", "-At", "--owner", "-c", "SELECT current_user", env=env)
    assert (owner.returncode, owner.stdout.strip()) == (0, "postgres"), owner.stderr
    # After `--`, everything is psql's, even what flowlog would take.
    theirs = run_flowlog("psql", "--", "--owner", env=env)
    assert theirs.returncode != 0
    assert "unrecognized option '--owner'" in theirs.stderr
    # Any other command still refuses what it does not know, with its own usage.
    other = run_flowlog("migrate", "-c", "SELECT 1", env=env)
    assert other.returncode == 2
    assert "usage: flowlog migrate" in other.stderr
    assert "unrecognized arguments: -c SELECT 1" in other.stderr


ROOT = Path(__file__).resolve().parent.parent
VARIABLE = re.compile(r"\b(?:FLOWLOG|OTEL)_[A-Z0-9_]*[A-Z0-9]\b|\bDATABASE_URL\b")


def test_help_lists_every_environment_variable_the_code_reads() -> None:
    read = {
        name
        for package in ("app", "eventstore", "projections", "sql")
        for path in (ROOT / package).rglob("*.py")
        for name in VARIABLE.findall(path.read_text())
    }
    assert {"DATABASE_URL", "FLOWLOG_PORT", "OTEL_SERVICE_NAME"} <= read  # the grep works
    top = run_flowlog("--help", env=cli_env())
    assert top.returncode == 0
    environment = top.stdout.partition("\nenvironment")[2]
    assert sorted(n for n in read if not re.search(rf"\b{n}\b", environment)) == []
    readme = (ROOT / "README.md").read_text()  # which says what each does
    assert sorted(n for n in read if f"`{n}`" not in readme) == []


def test_version_is_the_installed_distributions() -> None:
    result = run_flowlog("--version", env=cli_env())
    assert (result.returncode, result.stdout) == (0, f"flowlog {version('flowlog')}\n")


def test_every_command_explains_itself() -> None:
    top = run_flowlog("--help", env=cli_env())
    assert top.returncode == 0
    assert "DATABASE_URL" in top.stdout
    commands = re.findall(r"^    (\w[\w-]*)\s{2,}", top.stdout, re.MULTILINE)
    assert {"serve", "worker", "psql", "dsn", "export", "bench"} <= set(commands)
    for command in commands:
        help_text = run_flowlog(command, "--help", env=cli_env()).stdout
        description = help_text.split("\n\n")[1]  # after the usage: what it does
        assert description.strip(), command
        assert not description.lstrip().startswith(("positional", "options")), command
