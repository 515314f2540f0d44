"""A request that is not valid HTTP is the client's fault: 400, and one WARNING line without a
traceback (anyone who can connect must not be able to fill the logs with ERRORs)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.api.conftest import Service

GARBAGE = [
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20_000 + b"\r\n\r\n", 1),
    (b"GET /" + b"b" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 1),
    (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\x00: y\r\n\r\n", 1),
    (b"NOT HTTP AT ALL\r\n\r\n", 0),  # aiohttp answers this one without a word
]


@pytest.mark.parametrize(("request_bytes", "lines"), GARBAGE)
async def test_a_request_that_is_not_http_is_one_warning_line(
    service: Service, request_bytes: bytes, lines: int, caplog: pytest.LogCaptureFixture
) -> None:
    server = service.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    with caplog.at_level(logging.INFO):
        writer.write(request_bytes)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(200), 10)
        writer.close()
        await asyncio.sleep(0.05)
    status_line = answer.split(b"\r\n")[0]
    assert status_line.startswith(b"HTTP/1."), answer
    assert b" 400 " in status_line, answer
    from_server = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(from_server) == lines, [r.getMessage() for r in from_server]
    for record in from_server:
        assert record.levelno == logging.WARNING
        assert record.exc_info is None
        assert record.getMessage() == "a request that is not valid HTTP was refused"
        assert record.peer == "127.0.0.1"  # type: ignore[attr-defined]
        assert len(record.error) <= 120  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # The service still answers.
    assert (await service.client.get("/healthz")).status == 200
