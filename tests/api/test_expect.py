"""The ``Expect`` header: 100-continue is met, any other expectation ignored (aiohttp's own
answer is a plain-text 417 outside the envelope, before any middleware; the fuzzer found it)."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from tests.api.conftest import Service

CREATE = orjson.dumps({"flowName": "backup", "bizId": "e", "bizType": "cluster"})


PATHS = ["/healthz", "/api/v1/workflow-definitions", "/login", "/api/v1/workflow/no-such-flow",
         "/console/static/console.css"]  # fmt: skip


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("expect", ["+0SXsyb#", "fancy-feature", "100-continue, x", ""])
async def test_an_unknown_expectation_is_ignored(service: Service, path: str, expect: str) -> None:
    plain = await service.client.get(path)
    expecting = await service.client.get(path, headers={"Expect": expect})
    assert expecting.status == plain.status != 417
    assert expecting.content_type == plain.content_type
    if plain.content_type == "application/json":
        assert (await expecting.json()).keys() == (await plain.json()).keys()


async def test_100_continue_is_met_before_the_body(service: Service) -> None:
    """A client that waits for 100 Continue before it sends its body gets it, then the
    answer to the body."""
    server = service.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    head = (
        b"POST /api/v1/workflow/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(CREATE)
    )
    writer.write(head)
    await writer.drain()
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(CREATE)
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 200 "), status_line
