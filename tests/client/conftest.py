"""A real ``flowlog serve`` for the client's tests (its own process, on the test database),
and a proxy in front of it that can drop a connection at the worst moment."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from flowlog.bench.harness import free_port, serve_process

TOKEN = "token-a"
TOKENS = f"alice:{TOKEN}:tenant-a,bob:token-b:tenant-b"
DEFINITION = {
    "name": "client-demo",
    "nodes": {
        "start": {"name": "prepare", "executor": {"type": "noop"}, "success": "approve"},
        "approve": {"name": "approve", "kind": "callback", "executor": {"type": "noop"},
                    "success": "finish"},
        "finish": {"name": "finish", "executor": {"type": "noop"}},
    },
}  # fmt: skip
QUICK = {
    "name": "client-quick",
    "nodes": {
        "start": {"name": "one", "executor": {"type": "noop"}, "success": "two"},
        "two": {"name": "two", "executor": {"type": "noop"}},
    },
}


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[str]:
    """The base URL of a ``flowlog serve`` with bearer tokens (tenant-a: TOKEN)."""
    async with serve_process(database_url, env={"FLOWLOG_TOKENS": TOKENS}) as base:
        yield base


Fault = Callable[[web.Request, int], str | None]
"""Given a request and its number, what to do to it: None (pass it on), "drop" (forward it,
then drop the connection before the answer), "cut" (forward a stream and cut it early)."""


@dataclass
class Proxy:
    url: str
    seen: list[tuple[str, str]] = field(default_factory=list)


StartProxy = Callable[[Fault], Awaitable[Proxy]]


@pytest.fixture
async def start_proxy(server: str) -> AsyncIterator[StartProxy]:
    """Starts proxies to ``server`` that do to each request what their fault says."""
    runners: list[web.AppRunner] = []
    session = aiohttp.ClientSession()

    async def start(fault: Fault) -> Proxy:
        proxy = Proxy("")

        async def forward(request: web.Request) -> web.StreamResponse:
            number = len(proxy.seen)
            proxy.seen.append((request.method, request.path))
            todo = fault(request, number)
            headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
            async with session.request(
                request.method, server + request.path_qs, headers=headers,
                data=await request.read(),
            ) as upstream:  # fmt: skip
                if todo == "drop":
                    await upstream.read()
                    assert request.transport is not None
                    request.transport.close()  # the write happened; its answer is lost
                    return web.Response(status=502)
                response = web.StreamResponse(status=upstream.status)
                for name in ("Content-Type", "Flowlog-Position"):
                    if name in upstream.headers:
                        response.headers[name] = upstream.headers[name]
                await response.prepare(request)
                messages = 0
                async for line in upstream.content:
                    await response.write(line)
                    if line == b"\n":
                        messages += 1
                        if todo == "cut" and messages == 2:
                            assert request.transport is not None
                            request.transport.close()  # mid-stream, after two events
                            return response
                await response.write_eof()
                return response

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        proxy.url = f"http://127.0.0.1:{port}"
        return proxy

    yield start
    for runner in runners:
        await runner.cleanup()
    await session.close()
