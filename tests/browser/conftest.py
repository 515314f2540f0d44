"""The console in a real browser: Playwright drives the system's Chromium (Debian's package;
Playwright's own download needs a CDN this machine cannot reach) against a real ``flowlog
serve`` process and PostgreSQL.

Without Chromium the tests skip and say how to install it; with ``FLOWLOG_REQUIRE_BROWSER=1``
(``.ci/run`` sets it after installing Chromium) a missing browser fails the run instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from flowlog.bench.harness import discard_database, free_port
from flowlog.database import create_database, with_database
from tests.browser.chromium import shared_chromium, terminate

CHROMIUM = os.environ.get("FLOWLOG_CHROMIUM", "/usr/bin/chromium")
INSTALL = "apt-get install -y chromium fonts-dejavu-core"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TOKENS = "alice:token-a:tenant-a,bob:token-b:tenant-b"


def require_chromium() -> None:
    """Skips the test without Chromium (fails it where FLOWLOG_REQUIRE_BROWSER is set)."""
    if shutil.which(CHROMIUM) or os.path.exists(CHROMIUM):
        return
    missing = f"Chromium is not installed at {CHROMIUM}: {INSTALL}"
    if os.environ.get("FLOWLOG_REQUIRE_BROWSER"):
        pytest.fail(missing)
    pytest.skip(missing)


def run_async(work: Coroutine[Any, Any, Any]) -> Any:
    """Runs a coroutine to its end in a thread of its own: Playwright's sync API keeps an
    event loop running in this one, where asyncio.run is refused."""
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, work).result()


@pytest.fixture(scope="session")
def chromium() -> Iterator[str]:
    """The session's one browser (tests/browser/chromium.py): its DevTools endpoint."""
    require_chromium()
    with shared_chromium(CHROMIUM) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def browser(chromium: str, template_database: str) -> Iterator[Any]:
    """The session's browser, connected for a module's tests. Not for the session: while
    Playwright's sync API is open it keeps an event loop running in this thread, and the
    asynchronous tests that the same xdist worker runs next need the thread to themselves."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        connected = playwright.chromium.connect_over_cdp(chromium)
        yield connected
        # Closes the contexts this module made and disconnects; the browser runs on.
        connected.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) at desktop size; fails the test on a script error
    or on any console error the page logs."""
    context = browser.new_context(viewport=DESKTOP)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    tab.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}")
            if message.type == "error" and not _expected(message.text)
            else None
        ),
    )
    tab.set_default_timeout(15_000)
    yield tab
    context.close()
    assert not problems, problems


def _expected(text: str) -> bool:
    # The browser logs every non-2xx answer as an error; tests that provoke 4xx expect them.
    return "Failed to load resource" in text


@dataclass
class Console:
    """A running ``flowlog serve`` and the REST calls the tests make beside the browser."""

    base: str
    database_url: str
    token: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def url(self, path: str) -> str:
        return self.base + path

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        """The envelope of a REST call (any status)."""
        headers = {"Content-Type": "application/json"}
        bearer = token or self.token
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        data = None if body is None else orjson.dumps(body)
        request = urllib.request.Request(self.base + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return orjson.loads(answer.read())
        except urllib.error.HTTPError as refused:
            return orjson.loads(refused.read())

    def create(self, *, start: bool = True, token: str | None = None, **fields: Any) -> str:
        body = {"flowName": "backup", "bizId": "b", "bizType": "t", "start": start, **fields}
        answer = self.api("POST", "/api/v1/workflow/", body, token)
        assert answer["code"] == 0, answer
        flow_id: str = answer["data"]["workFlowId"]
        return flow_id

    def status(self, flow_id: str, token: str | None = None) -> str:
        answer = self.api("GET", f"/api/v1/workflow/{flow_id}", token=token)
        status: str = answer["data"]["info"]["status"]
        return status

    def wait_status(self, flow_id: str, *statuses: str, within: float = 20) -> None:
        deadline = time.monotonic() + within
        while (found := self.status(flow_id)) not in statuses:
            assert time.monotonic() < deadline, f"{flow_id} stayed {found}"
            time.sleep(0.05)

    def wait_waiting(self, flow_id: str, within: float = 20) -> dict[str, Any]:
        """What the flow waits on (the detail's ``waiting``), once it waits."""
        deadline = time.monotonic() + within
        while (
            waiting := self.api("GET", f"/api/v1/workflow/{flow_id}")["data"]["waiting"]
        ) is None:
            assert time.monotonic() < deadline, f"{flow_id} never waited"
            time.sleep(0.05)
        found: dict[str, Any] = waiting
        return found

    def events(self, flow_id: str, token: str | None = None) -> list[dict[str, Any]]:
        path = f"/api/v1/workflow/{flow_id}/events?pageSize=500"
        found: list[dict[str, Any]] = self.api("GET", path, token=token)["data"]["events"]
        return found


@contextlib.contextmanager
def running_console(
    server_url: str,
    template: str,
    *args: str,
    tokens: str = "",
    lease_seconds: int = 5,
    env: Mapping[str, str] | None = None,
) -> Iterator[Console]:
    """``flowlog serve`` on a fresh database copied from the migrated template; its leases (a
    reactor's, a task's) last ``lease_seconds``; ``env``: more variables (FLOWLOG_OIDC_*...)."""
    name = f"flowlog_browser_{secrets.token_hex(5)}"
    run_async(create_database(server_url, name, template=template))
    url = with_database(server_url, name)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "FLOWLOG_LOG_LEVEL": "WARNING",
           "FLOWLOG_TOKENS": tokens, "FLOWLOG_LEASE_SECONDS": str(lease_seconds),
           **(env or {})}  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "flowlog.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         *args],
        env=env,
    )  # fmt: skip
    console = Console(f"http://127.0.0.1:{port}", url, process=process)
    try:
        _until_ready(console)
        yield console
    finally:
        terminate(process, 30)
        run_async(discard_database(server_url, name))


def _until_ready(console: Console) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert console.process is not None
        if console.process.poll() is not None:
            raise RuntimeError(f"flowlog serve exited with {console.process.returncode}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(console.base + "/readyz", timeout=2) as answer,
        ):
            if answer.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError("flowlog serve was not ready within 60 s")


@pytest.fixture(scope="module")
def console(server_url: str, template_database: str) -> Iterator[Console]:
    """An open console (no tokens) with the demo definitions, shared by a module's tests:
    each test makes flows of its own (its own bizType) and filters on them."""
    with running_console(server_url, template_database, "--definitions", "flowlog.demo") as served:
        yield served


@pytest.fixture(scope="module")
def guarded_console(server_url: str, template_database: str) -> Iterator[Console]:
    """A console that asks for a token: two tenants (alice: tenant-a, bob: tenant-b)."""
    with running_console(
        server_url, template_database, "--definitions", "flowlog.demo", tokens=TOKENS
    ) as served:
        yield served


@pytest.fixture
def tag() -> str:
    """A bizType of this test's own."""
    return f"t-{secrets.token_hex(4)}"
