"""A webhook receiver for the tests: an aiohttp server on 127.0.0.1 that records what it is
sent, answers as told (a status, a huge or slow answer, a redirect, a reset), and can be
taken down and brought back on the same port."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field

import orjson
from aiohttp import web
from standardwebhooks import Webhook


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    path: str = "/hook"

    @property
    def json(self) -> dict[str, object]:
        return orjson.loads(self.body)  # type: ignore[no-any-return]

    @property
    def msg_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    port: int = 0
    received: list[Received] = field(default_factory=list)
    status: int = 200
    behaviour: str = "ok"
    """ok (answer ``status``), redirect, huge (an answer without end), slow, reset."""
    huge_sent: int = 0
    huge_closed: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/hook", self._hook)
        app.router.add_post("/elsewhere", self._hook)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        if self.port == 0:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _hook(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.received.append(Received(headers, body, request.path))
        self.arrived.set()
        match self.behaviour:
            case "redirect":
                raise web.HTTPFound(location="/elsewhere")
            case "huge":
                response = web.StreamResponse(status=self.status)
                await response.prepare(request)
                chunk = b"x" * 65536
                try:
                    while self.huge_sent < 1 << 30:  # far beyond 10 MB, unless hung up on
                        await response.write(chunk)
                        self.huge_sent += len(chunk)
                except (ConnectionError, RuntimeError):
                    self.huge_closed.set()
                return response
            case "slow":
                await asyncio.sleep(30)
            case "reset":
                transport = request.transport
                assert transport is not None
                sock = transport.get_extra_info("socket")
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                transport.abort()
                raise ConnectionResetError
        return web.Response(status=self.status, text="thanks")

    def verified(self, secret: str) -> list[dict[str, object]]:
        """Every body, each checked against its signature (raises on a bad one)."""
        hook = Webhook(secret)
        return [hook.verify(r.body, r.headers) for r in self.received]
