"""Commit positions and the lag estimate: pure parts of read routing."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from flowlog.replicas.position import BadPosition, format_position, parse_position
from flowlog.replicas.replica import replica_name
from flowlog.replicas.router import ReadRouter


@pytest.mark.parametrize(
    ("text", "value"),
    [("0/0", 0), ("0/16B3748", 0x16B3748), ("16/B374D848", 0x16 << 32 | 0xB374D848)],
)
def test_a_position_is_an_lsn_and_compares_as_a_number(text: str, value: int) -> None:
    assert parse_position(text) == value
    assert format_position(value) == text.upper()
    assert parse_position(text.lower()) == value


@pytest.mark.parametrize("text", ["", "16", "0/", "/1", "x/1", "1/2/3", "123456789/0", "0/ 1"])
def test_text_that_is_no_position_is_refused(text: str) -> None:
    with pytest.raises(BadPosition):
        parse_position(text)


def test_a_replica_is_named_without_its_password() -> None:
    assert replica_name("postgresql://u:secret@db2:6432/flows") == "db2:6432/flows"
    assert replica_name("postgresql://u@/flows?host=%2Ftmp%2Fr&port=7") == "%2Ftmp%2Fr:7/flows"
    assert "secret" not in replica_name("postgresql://u:secret@db2/flows")


def test_lag_is_how_long_ago_the_primary_went_past_what_the_replica_replayed() -> None:
    router = ReadRouter(primary=None)  # type: ignore[arg-type]  # only the samples are used
    router._samples.extend([(100.0, 10), (101.0, 20), (102.0, 20), (103.0, 35)])
    assert router.lag(35, now=103.5) == 0.0  # it has all the primary had at the last sample
    assert router.lag(40, now=103.5) == 0.0
    assert router.lag(20, now=103.5) == pytest.approx(0.5)  # behind only the newest sample
    assert router.lag(15, now=103.5) == pytest.approx(2.5)
    assert router.lag(0, now=103.5) == pytest.approx(3.5)


async def test_positions_asked_together_share_one_query_read_after_they_asked(
    pool: asyncpg.Pool,
) -> None:
    router = ReadRouter(pool)
    asked = 0
    read_position = router.position

    async def counted() -> int:
        nonlocal asked
        asked += 1
        return await read_position()

    router.position = counted  # type: ignore[method-assign]
    before = await read_position()
    await pool.execute("SELECT txid_current()")  # a commit record: the WAL moves on
    positions = await asyncio.gather(*(router.latest() for _ in range(50)))
    assert asked <= 2  # one query for the first caller, at most one more for the rest
    assert min(positions) > before  # each was read after its caller asked
    await router.stop()
