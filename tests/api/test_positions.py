"""Commit positions without read replicas (app/replicas/): not sent, and harmless to present."""

from __future__ import annotations

from flowlog.replicas.position import COOKIE, HEADER
from flowlog.workflow.errors import Code
from tests.api.helpers import FLOWS, Client


async def test_without_replicas_writes_carry_no_position_and_reads_accept_one(
    client: Client,
) -> None:
    """Positions matter only where reads can lag (tests/replicas/ has them); a client that
    presents one anyway is answered at once by the primary."""
    created = await client.post(
        FLOWS, json={"flowName": "backup", "bizId": "b1", "bizType": "t", "start": False}
    )
    assert created.status == 200
    assert HEADER not in created.headers
    assert COOKIE not in created.headers.get("Set-Cookie", "")
    flow_id = (await created.json())["data"]["workFlowId"]
    read = await client.get(FLOWS + flow_id, headers={HEADER: "0/16B3748"})
    assert read.status == 200
    assert HEADER not in read.headers


async def test_a_mangled_position_cookie_is_ignored_a_mangled_header_refused(
    client: Client,
) -> None:
    by_cookie = await client.get(FLOWS, cookies={COOKIE: "not-a-position"})
    assert by_cookie.status == 200
    by_header = await client.get(FLOWS, headers={HEADER: "not-a-position"})
    assert by_header.status == 400
    assert (await by_header.json())["code"] == Code.BAD_INPUT
