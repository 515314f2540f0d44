"""Receivers that misbehave: each attempt fails (or succeeds) on its own, and the sender goes
on: a redirect is not followed, an answer without end is read to 64 KB and no further, a slow
answer times out, a reset connection is retried, an address not allowed is never reached."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import asyncpg

from flowlog.webhooks.allow import AllowList
from flowlog.webhooks.sender import answer_text
from flowlog.webhooks.settings import WebhookSettings
from tests.helpers import eventually, wait_until
from tests.webhooks.delivering import LOCAL, StartDelivering
from tests.webhooks.receiver import Receiver
from tests.webhooks.rows import subscribe

PENDING = "SELECT * FROM webhook_deliveries WHERE webhook_id = $1"
STATUS = "SELECT * FROM webhook_status WHERE webhook_id = $1"


async def _row(pool: asyncpg.Pool, hook: str) -> asyncpg.Record | None:
    return await pool.fetchrow(PENDING, hook)


async def _failed_once(pool: asyncpg.Pool, hook: str) -> asyncpg.Record:
    async def tried() -> bool:
        row = await _row(pool, hook)
        return row is not None and row["attempts"] >= 1

    await eventually(tried, what="a failed attempt")
    row = await _row(pool, hook)
    assert row is not None
    return row


async def _delivered(pool: asyncpg.Pool, hook: str, count: int = 1) -> None:
    async def done() -> bool:
        status = await pool.fetchrow(STATUS, hook)
        return status is not None and status["delivered"] >= count

    await eventually(done, what="a delivery")


async def test_a_redirect_is_a_failure_not_followed_then_a_success(
    pool: asyncpg.Pool, delivering: StartDelivering, receiver: Receiver
) -> None:
    engine = await delivering()
    hook = await subscribe(pool, url=receiver.url, events=["FlowFailed"])
    receiver.behaviour = "redirect"
    await engine.service.create("b", "d", "failing", start=True)
    row = await _failed_once(pool, hook)
    assert row["last_status"] == 302
    assert row["state"] == "pending"
    receiver.behaviour = "ok"
    await _delivered(pool, hook)
    assert {r.path for r in receiver.received} == {"/hook"}  # never /elsewhere
    ids = {r.msg_id for r in receiver.received}
    assert len(ids) == 1  # every attempt of the event is the same message
    assert (
        await pool.fetchval("SELECT failing FROM webhook_status WHERE webhook_id = $1", hook)
        is False
    )


async def test_an_answer_without_end_is_read_to_its_first_64_kb_only(
    pool: asyncpg.Pool, delivering: StartDelivering, receiver: Receiver
) -> None:
    engine = await delivering()
    hook = await subscribe(pool, url=receiver.url, events=["FlowFailed"])
    receiver.behaviour = "huge"
    await engine.service.create("b", "d", "failing", start=True)
    await _delivered(pool, hook)  # a 200 with more than anyone reads: delivered
    await asyncio.wait_for(receiver.huge_closed.wait(), 10)  # the sender hung up on it
    assert receiver.huge_sent < 1 << 30


async def test_a_slow_answer_times_out_and_a_reset_is_retried(
    pool: asyncpg.Pool, delivering: StartDelivering, receiver: Receiver
) -> None:
    quick = WebhookSettings(allow=LOCAL.allow, timeout=0.3)
    engine = await delivering(quick)
    hook = await subscribe(pool, url=receiver.url, events=["FlowFailed"])
    receiver.behaviour = "slow"
    loop = asyncio.get_running_loop()
    started = loop.time()
    await engine.service.create("b", "d", "failing", start=True)
    row = await _failed_once(pool, hook)
    assert row["last_status"] is None
    assert "within 0.3 s" in row["last_answer"]
    assert loop.time() - started < 5
    receiver.behaviour = "reset"
    tries = len(receiver.received)
    await wait_until(lambda: len(receiver.received) > tries + 1, what="reset attempts")
    row = await _row(pool, hook)
    assert row is not None
    assert row["last_status"] is None
    receiver.behaviour = "ok"
    await _delivered(pool, hook)


async def test_an_address_not_allowed_is_never_reached(
    pool: asyncpg.Pool, delivering: StartDelivering, receiver: Receiver
) -> None:
    # This machine's name resolves to a loopback or private address (as in any container).
    name = socket.gethostname()
    found = {info[4][0] for info in socket.getaddrinfo(name, receiver.port, socket.AF_INET)}
    assert all(not ipaddress.ip_address(a).is_global for a in found), found
    public_only = WebhookSettings(allow=AllowList.parse("192.0.2.0/24"), timeout=2.0)
    engine = await delivering(public_only)
    by_name = await subscribe(
        pool, url=f"http://{name}:{receiver.port}/hook", events=["FlowFailed"]
    )
    literal = await subscribe(pool, url=receiver.url, events=["FlowFailed"])
    await engine.service.create("b", "d", "failing", start=True)
    refused_name = await _failed_once(pool, by_name)
    refused_literal = await _failed_once(pool, literal)
    # The guarded resolver gave aiohttp no address: a failure to resolve, nothing sent.
    assert refused_name["last_answer"].startswith("ClientConnectorDNSError")
    assert "not a public address" in refused_literal["last_answer"]
    assert receiver.received == []


def test_answers_are_kept_short_and_storable() -> None:
    assert answer_text(b"a\x00b" + b"x" * 5000) == "a\ufffdb" + "x" * 1021
    assert answer_text("lone \ud800 surrogate") == "lone ? surrogate"
    assert answer_text(b"\xff\xfe") == "\ufffd\ufffd"
