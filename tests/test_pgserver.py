"""The embedded PostgreSQL launcher. These tests start servers of their own, with or without
DATABASE_URL, because the launcher is what a machine without a database relies on."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from flowlog.pgserver import EmbeddedPostgres, EmbeddedPostgresError, PidFile

pytestmark = pytest.mark.slow

FAST = {"fsync": "off"}


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Short, world-traversable paths: the socket lives in the data directory.
    parent = Path(tempfile.mkdtemp(prefix="flpg-", dir="/tmp"))
    yield parent / "data"
    shutil.rmtree(parent, ignore_errors=True)


def _query(url: str, statement: str) -> object:
    async def run() -> object:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetchval(statement)
        finally:
            await conn.close()

    return asyncio.run(run())


def _gone(pid: int, timeout: float) -> bool:
    """Whether process ``pid`` ends (exits, or is a zombie left to reap) within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def _postmaster_pid(data_dir: Path) -> int:
    pid_file = PidFile.read(data_dir / "postmaster.pid")
    assert pid_file is not None
    return pid_file.pid


def test_start_serve_stop_and_restart_keeps_the_data(data_dir: Path) -> None:
    server = EmbeddedPostgres(data_dir, settings=FAST)
    with server:
        assert server.owner
        _query(server.dsn(), "CREATE TABLE kept (id int)")
        pid = _postmaster_pid(data_dir)
        if os.geteuid() == 0:  # PostgreSQL refuses root: it runs as the dedicated user
            uid = Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[0]
            assert int(uid) != 0
    assert _gone(pid, 10)
    assert not (data_dir / "postmaster.pid").exists()

    with EmbeddedPostgres(data_dir, settings=FAST) as again:
        assert _query(again.dsn(), "SELECT count(*) FROM kept") == 0


def test_a_second_process_attaches_and_leaves_the_server_to_its_owner(data_dir: Path) -> None:
    owner = EmbeddedPostgres(data_dir, settings=FAST)
    owner.start()
    try:
        guest = EmbeddedPostgres(data_dir)
        guest.start()
        assert not guest.owner
        guest.stop()
        assert _query(owner.dsn(), "SELECT 1") == 1
    finally:
        owner.stop()


def test_a_killed_owner_takes_its_server_down(data_dir: Path) -> None:
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from flowlog.pgserver import EmbeddedPostgres
        EmbeddedPostgres(Path({str(data_dir)!r}), settings={{"fsync": "off"}}).start()
        print("ready", flush=True)
        time.sleep(600)
        """
    )
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        assert owner.stdout.readline().strip() == "ready"
        postmaster = _postmaster_pid(data_dir)
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        assert _gone(postmaster, 15), "the server outlived its killed owner"
    finally:
        owner.kill()
        owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()
    # Whatever the dying server left behind, the next start recovers.
    with EmbeddedPostgres(data_dir, settings=FAST) as server:
        assert _query(server.dsn(), "SELECT 1") == 1


@pytest.mark.parametrize("stale", ["dead", "reused"])
def test_a_stale_pid_file_is_recovered_from(data_dir: Path, stale: str) -> None:
    with EmbeddedPostgres(data_dir, settings=FAST):
        pass
    keeper = None
    if stale == "dead":
        pid = _a_dead_pid()
    else:  # a live process that is not a postgres server has the recorded PID
        keeper = subprocess.Popen(["sleep", "60"])
        pid = keeper.pid
    lines = [str(pid), str(data_dir), "0", "5432", str(data_dir), "", "0 0", "ready"]
    (data_dir / "postmaster.pid").write_text("\n".join(lines) + "\n")
    try:
        with EmbeddedPostgres(data_dir, settings=FAST) as server:
            assert server.owner
            assert _query(server.dsn(), "SELECT 1") == 1
    finally:
        if keeper is not None:
            keeper.kill()
            keeper.wait()


def _a_dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_start_outside_the_main_thread_is_refused(data_dir: Path) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            EmbeddedPostgres(data_dir).start()
        except EmbeddedPostgresError as exc:
            errors.append(exc)

    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
    assert len(errors) == 1
    assert "main thread" in str(errors[0])


def test_a_data_dir_too_long_for_a_socket_is_refused() -> None:
    with pytest.raises(EmbeddedPostgresError, match="too long"):
        EmbeddedPostgres(Path("/tmp/" + "x" * 120))


def test_a_streaming_replica_follows_the_server_and_refuses_writes(data_dir: Path) -> None:
    """The groundwork of read replicas (issue 14): a replica made from a running server's base
    backup streams its WAL and answers reads, read-only."""
    with EmbeddedPostgres(data_dir, settings=FAST) as primary:
        _query(primary.dsn(), "CREATE TABLE t AS SELECT 1 AS n")
        replica = primary.replicate(data_dir.parent / "replica")
        with replica:
            assert _query(replica.dsn(), "SELECT pg_is_in_recovery()") is True
            _query(primary.dsn(), "INSERT INTO t VALUES (2)")
            deadline = time.monotonic() + 20
            while _query(replica.dsn(), "SELECT count(*) FROM t") != 2:
                assert time.monotonic() < deadline, "the replica did not replay the insert"
                time.sleep(0.05)
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                _query(replica.dsn(), "INSERT INTO t VALUES (3)")
            assert _query(primary.dsn(), "SELECT count(*) FROM pg_stat_replication") == 1
