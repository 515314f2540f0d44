"""A rolling upgrade: the code of an earlier release (from git, before the schema changes of
migrations 0015 to 0017) runs beside today's code on one database, migrated by today's code,
while flows run. Every flow finishes, whichever process ran its nodes, and the projections
agree with the log (docs/operations.md, "Rolling upgrades")."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path

import asyncpg

from flowlog.engine import Engine, load_definitions
from tests.processes import FINISHED, ROOT, create_flows, wait_finished

EARLIER = "0b1575d"
"""The release before issue 25: its schema ends at migration 0014; today's adds 0015-0017
(keys, the activity index, process versions), each additive."""
FOLDERS = {"app": "flowlog", "eventstore": "flowlog/eventstore",
           "projections": "flowlog/projections", "sql": "flowlog/sql"}  # fmt: skip
FLOWS = 60


def earlier_release(into: Path) -> Path:
    """The earlier release's package, laid out as its wheel installs it (one ``flowlog``)."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", EARLIER, *FOLDERS],
        cwd=ROOT, capture_output=True, check=True,
    )  # fmt: skip
    source = into / "source"
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(source, filter="data")
    package = into / "package"
    for folder, target in FOLDERS.items():
        shutil.copytree(source / folder, package / target, dirs_exist_ok=True)
    return package


def worker(database_url: str, package: Path | None, log: Path) -> subprocess.Popen[bytes]:
    """``flowlog worker`` of the earlier release (``package``) or of today's (None)."""
    paths = [str(package)] if package is not None else []
    env = {
        **os.environ, "DATABASE_URL": database_url, "FLOWLOG_LOG_LEVEL": "WARNING",
        "FLOWLOG_LEASE_SECONDS": "2", "PROC_SLEEP_MS": "5-20",
        "PYTHONPATH": os.pathsep.join([*paths, str(ROOT)]),
    }  # fmt: skip
    command = [sys.executable, "-m", "flowlog.cli", "worker", "--concurrency", "8",
               "--definitions", "tests.workflow.procdefs"]  # fmt: skip
    with log.open("ab") as output:
        return subprocess.Popen(command, env=env, cwd=ROOT, stdout=output, stderr=output)


async def feed_until_it_ran(engine: Engine, pid: int, within: float = 60) -> int:
    """Creates flows, ten at a time, until the process ``pid`` has run a node; how many."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    created = 0
    while not await engine.pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM events WHERE type = 'NodeStarted' "
        "AND metadata ->> 'actor' LIKE $1)", f"%:{pid}:%",
    ):  # fmt: skip
        assert loop.time() < deadline, "the earlier release's worker ran no node"
        await create_flows(engine, 10)
        created += 10
        await asyncio.sleep(0.2)
    return created


async def test_an_earlier_release_runs_beside_todays_on_one_database(
    database_url: str, tmp_path: Path
) -> None:
    package = earlier_release(tmp_path)
    check = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "import flowlog, sys; print(flowlog.__file__)"],
        env={**os.environ, "PYTHONPATH": str(package)}, capture_output=True, text=True,
        check=True, cwd=tmp_path,
    )  # fmt: skip
    assert check.stdout.startswith(str(package)), "the earlier release is the one imported"
    log = tmp_path / "workers.log"
    processes = [worker(database_url, package, log), worker(database_url, None, log)]
    engine = Engine(database_url, load_definitions(["tests.workflow.procdefs"]), run_reactor=False)
    try:
        await engine.start()  # today's code migrated the database before either worker ran
        # The earlier release's worker is replaced by today's mid-way, as a deploy does: once
        # it has run nodes (a SIGTERM before it is up would only kill it).
        created = await feed_until_it_ran(engine, processes[0].pid)
        await create_flows(engine, FLOWS // 2)
        processes[0].terminate()
        assert await asyncio.to_thread(processes[0].wait, 30) == 0, log.read_text()
        processes.append(worker(database_url, None, log))
        await create_flows(engine, FLOWS // 2)
        created += FLOWS
        await wait_finished(engine.pool, created, within=120)
    finally:
        await engine.stop()
        for process in processes:
            if process.poll() is None:
                process.terminate()
            await asyncio.to_thread(process.wait, 30)
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval(FINISHED) == created
        ran = await conn.fetch(
            "SELECT DISTINCT metadata ->> 'actor' AS actor FROM events WHERE type = 'NodeStarted'"
        )
    finally:
        await conn.close()
    actors = {row["actor"] for row in ran}
    assert any(f":{processes[0].pid}:" in actor for actor in actors), actors  # the earlier one
    assert len(actors) >= 2, "nodes ran in the earlier release's process and today's"
    verify = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "flowlog.cli", "verify"],
        env={**os.environ, "DATABASE_URL": database_url}, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "no drift" in verify.stdout
