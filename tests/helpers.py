"""Helpers shared by the tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from aiohttp import web

from flowlog.bench.harness import free_port
from flowlog.eventstore import EventStore, RecordedEvent


async def wait_readable(
    store: EventStore, positions: Iterable[int], within: float = 30
) -> list[RecordedEvent]:
    """Waits until the events at ``positions`` can be read from the log; returns the log.

    The read horizon is the xmin of the whole cluster: a transaction open in another test's
    database (tests run in parallel on one server) holds back even events committed here.
    """
    wanted = set(positions)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        log = await store.read_all(limit=1_000_000)
        missing = wanted - {e.position for e in log}
        if not missing:
            return log
        assert loop.time() < deadline, f"events {sorted(missing)} never became readable"
        await asyncio.sleep(0.01)


def with_user(url: str, user: str) -> str:
    """``url`` logging in as ``user`` (no password: the test server trusts local clients)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}@{host}"))


async def create_role(database_url: str, *, runtime: bool) -> str:
    """A new login role (no superuser), granted what ``flowlog migrate`` grants the runtime
    role when ``runtime``; its URL to ``database_url``'s database. Drop it with drop_role."""
    import asyncpg

    from flowlog.database import quote_ident

    role = f"flowlog_rt_{secrets.token_hex(5)}"
    owner = await asyncpg.connect(database_url)
    try:
        await owner.execute(f"CREATE ROLE {quote_ident(role)} LOGIN")
        if runtime:
            await owner.execute("SELECT flowlog_grant_runtime($1)", role)
    finally:
        await owner.close()
    return with_user(database_url, role)


async def drop_role(database_url: str, role_url: str) -> None:
    """Drops a role of create_role (its grants live in ``database_url``'s database only)."""
    import asyncpg

    from flowlog.database import quote_ident

    role = unquote(urlsplit(role_url).username or "")
    owner = await asyncpg.connect(database_url)
    try:
        await owner.execute(f"DROP OWNED BY {quote_ident(role)}")
        await owner.execute(f"DROP ROLE {quote_ident(role)}")
    finally:
        await owner.close()


QUIET = {"FLOWLOG_LOG_LEVEL": "WARNING"}


def loaded_by(statement: str) -> list[str]:
    """The modules of flowlog, and aiohttp's, that ``statement`` loads in a fresh interpreter."""
    code = (
        f"import sys\n{statement}\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith(('flowlog.', 'aiohttp')))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    return done.stdout.split()


def cli_env(**overrides: str) -> dict[str, str]:
    """This process's environment without its DATABASE_URL, with ``overrides``."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(overrides)
    return env


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A port of 127.0.0.1 that refuses connections while the block runs: bound by this
    process and never listening. A fixed port (1, 9, 8080) may be anyone's on another machine.
    """
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port: int = held.getsockname()[1]
        yield port


def run_flowlog(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``flowlog ARGS`` as a user runs it: a separate process."""
    return subprocess.run(
        [sys.executable, "-m", "flowlog.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# Fault injection: the first append of an event of a given type waits in the database (a
# trigger of the test's own), so that a test can kill its backend in the middle of the append.
_SLOW_FIRST_APPEND = """
CREATE SEQUENCE test_fault;  -- not rolled back with the killed append: it fires once
-- As its creator: the runtime role that appends has no rights on the test's sequence.
CREATE FUNCTION test_slow_first_append() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
  IF NEW.type = TG_ARGV[0] AND nextval('test_fault') = 1 THEN
    PERFORM pg_sleep(30);
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER test_slow_first_append BEFORE INSERT ON events
  FOR EACH ROW EXECUTE FUNCTION test_slow_first_append('{event_type}');
"""
_KILL_THE_SLEEPER = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event = 'PgSleep'
"""


async def slow_first_append(database_url: str, event_type: str) -> None:
    """The first append of an ``event_type`` event will sleep inside its statement."""
    from flowlog.eventstore import connect

    assert event_type.isidentifier()  # a test's own constant, spelled into the trigger
    admin = await connect(database_url)
    try:
        await admin.execute(_SLOW_FIRST_APPEND.format(event_type=event_type))
    finally:
        await admin.close()


async def kill_the_slow_append(database_url: str) -> None:
    """Waits until the slowed append sleeps, then terminates its backend."""
    from flowlog.eventstore import connect

    admin = await connect(database_url)
    try:
        for _ in range(200):
            if await admin.fetchval(_KILL_THE_SLEEPER):
                return
            await asyncio.sleep(0.05)
        raise AssertionError("no append reached the trigger")
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """A little HTTP service of a test's own (a downstream service, a collector) on a free
    port of 127.0.0.1, until the block ends: its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def wait_until(check: Callable[[], object], within: float = 20.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, f"timed out waiting for {what or check}"
        await asyncio.sleep(0.02)


async def eventually(
    condition: Callable[[], Awaitable[object]], within: float = 20.0, what: str = ""
) -> None:
    """Waits until the database (or anything awaited) says so."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await condition():
        assert loop.time() < deadline, f"timed out waiting for {what or condition}"
        await asyncio.sleep(0.02)
