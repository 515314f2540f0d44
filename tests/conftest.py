"""Test fixtures: a real PostgreSQL, and a fresh migrated database per test.

The server is DATABASE_URL's when it is set (CI), else an embedded one started for the test
session in a temporary folder. Every test that needs a database gets its own, copied from a
template migrated once per session (per xdist worker), retired (renamed, closed) when the test
ends, and dropped with the run's others once every worker has finished: a DROP DATABASE holds
back every reader of the log in the cluster while it waits for a checkpoint
(tests/scratch_databases.py).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from flowlog.bench.harness import discard_database
from flowlog.database import create_database, with_database
from flowlog.engine import Engine
from flowlog.eventstore import EventStore, create_pool
from flowlog.migrate import migrate_database
from flowlog.pgserver import EmbeddedPostgres
from flowlog.workflow.definition import Registry, WorkflowDefinition
from flowlog.workflow.reactor_settings import ReactorSettings
from tests.audit.checks import check_audit_of_every_flow
from tests.engines import FAST, StartEngine
from tests.helpers import create_role, drop_role
from tests.processes import Workers
from tests.scratch_databases import ScratchDatabases, drop_retired, start_run
from tests.server_turns import server_turn
from tests.workflow.procdefs import DEFINITIONS as PROCESS_DEFINITIONS


def _bytecode_for_subprocesses() -> None:
    """The tests start a few hundred Python processes (``flowlog serve``, workers, the CLI).
    Where PYTHONDONTWRITEBYTECODE is set, each compiled every flowlog module from source
    again, about a tenth of a second of CPU apiece; they now keep bytecode in a cache folder
    outside the repository (PYTHONPYCACHEPREFIX), so the tree stays as clean as asked."""
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is None:
        return
    prefix = os.environ.setdefault(
        "PYTHONPYCACHEPREFIX", os.path.join(tempfile.gettempdir(), "flowlog-test-pycache")
    )
    sys.dont_write_bytecode = False
    sys.pycache_prefix = prefix


_bytecode_for_subprocesses()


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the run's first process, before any worker
        start_run()


@pytest.hookimpl(trylast=True)  # after the session's fixtures are torn down (and retired)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """In the run's first process, after every worker: the run's databases go, on the shared
    server (an embedded one goes with its folder)."""
    url = os.environ.get("DATABASE_URL")
    if url and not hasattr(session.config, "workerinput"):
        asyncio.run(drop_retired(url))


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: at least four workers. Most of a test's time is spent waiting (on processes
    it started, on the database, on a lease to lapse), so two cores run four workers faster
    than two (measured: the suite in 9.3 min against 11.1 on two cores)."""
    return max(4, os.cpu_count() or 1)


@pytest.fixture(autouse=True)
def _server_turn(request: pytest.FixtureRequest, testrun_uid: str) -> Iterator[None]:
    """Before any other fixture of the test: its turn at the server (tests/server_turns.py)."""
    exclusive = request.node.get_closest_marker("whole_server") is not None
    with server_turn(testrun_uid, exclusive=exclusive):
        yield


# A throwaway test server need not survive a power cut.
FAST_SERVER = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A URL of a database on the test server with the right to create databases."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    # Not under pytest's basetemp: another pytest run on the machine may prune that while
    # this session's server still lives there.
    folder = Path(tempfile.mkdtemp(prefix="flowlog-test-pg-"))
    try:
        with EmbeddedPostgres(folder / "data", settings=FAST_SERVER) as server:
            yield server.dsn()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def template_database(server_url: str) -> Iterator[str]:
    name = f"flowlog_tpl_{secrets.token_hex(4)}"
    asyncio.run(create_database(server_url, name))
    asyncio.run(migrate_database(with_database(server_url, name)))
    yield name
    asyncio.run(discard_database(server_url, name))


@pytest.fixture(scope="session")
def empty_databases(server_url: str) -> Iterator[ScratchDatabases]:
    databases = ScratchDatabases(server_url, None, "flowlog_empty")
    yield databases
    databases.close()


@pytest.fixture(scope="session")
def migrated_databases(server_url: str, template_database: str) -> Iterator[ScratchDatabases]:
    databases = ScratchDatabases(server_url, template_database, "flowlog_test")
    yield databases
    databases.close()


@pytest.fixture
def empty_database_url(server_url: str, empty_databases: ScratchDatabases) -> Iterator[str]:
    """A new database with nothing in it (for the migrator's own tests)."""
    name = empty_databases.take()
    yield with_database(server_url, name)
    empty_databases.hand_back(name)


@pytest.fixture
def database_url(server_url: str, migrated_databases: ScratchDatabases) -> Iterator[str]:
    """A new database with every migration applied (tests/scratch_databases.py)."""
    name = migrated_databases.take()
    yield with_database(server_url, name)
    migrated_databases.hand_back(name)


@pytest.fixture
async def runtime_url(database_url: str) -> AsyncIterator[str]:
    """``database_url``'s database as a new runtime role (not the owner, not a superuser),
    granted what ``flowlog migrate`` grants: what the service runs as in production."""
    url = await create_role(database_url, runtime=True)
    yield url
    await drop_role(database_url, url)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=20)
    yield pool
    await pool.close()


@pytest.fixture
def store(pool: asyncpg.Pool) -> EventStore:
    return EventStore(pool)


@pytest.fixture
async def start_engine(database_url: str, runtime_url: str) -> AsyncIterator[StartEngine]:
    """Starts engines (API + reactor) on the test database, serving as a runtime role as in
    production; all are stopped afterwards."""
    engines: list[Engine] = []

    async def start(
        *definitions: WorkflowDefinition,
        settings: ReactorSettings = FAST,
        run_reactor: bool = True,
    ) -> Engine:
        engine = Engine(
            runtime_url,
            Registry(definitions),
            reactor=settings,
            run_reactor=run_reactor,
            owner_url=database_url,
        )
        await engine.start()
        engines.append(engine)
        return engine

    yield start
    for engine in reversed(engines):
        await engine.stop()
    # Whatever the scenario, its flows' histories replay to what the engine recorded.
    await check_audit_of_every_flow(database_url)


# -- worker processes (tests/processes.py) ---------------------------------------------------


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    """Where the process tests' executors note each run (tests/workflow/procdefs.py)."""
    path = tmp_path / "runs"
    path.mkdir()
    return path


@pytest.fixture
def workers_factory(database_url: str, runs_dir: Path) -> Iterator[list[Workers]]:
    made: list[Workers] = []
    yield made
    for workers in made:
        workers.cleanup()


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Engine]:
    """The service without a reactor: it creates and starts flows, workers run them."""
    async with Engine(database_url, Registry(PROCESS_DEFINITIONS), run_reactor=False) as engine:
        yield engine
