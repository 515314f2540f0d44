"""Every write's answer carries its commit position (app/replicas/), replicas or not."""

from __future__ import annotations

from app.replicas.position import COOKIE, HEADER, parse_position
from app.workflow.errors import Code
from tests.api.helpers import FLOWS, Client


async def test_each_write_answers_with_its_commit_position(client: Client) -> None:
    first = await client.post(
        FLOWS, json={"flowName": "backup", "bizId": "b1", "bizType": "t", "start": False}
    )
    assert first.status == 200
    flow_id = (await first.json())["data"]["workFlowId"]
    started = await client.post(FLOWS + "start", json={"workFlowId": flow_id})
    assert started.status == 200
    assert parse_position(started.headers[HEADER]) >= parse_position(first.headers[HEADER]) > 0
    assert f'{COOKIE}="{started.headers[HEADER]}"' in started.headers["Set-Cookie"]
    assert "HttpOnly" in started.headers["Set-Cookie"]
    # A refused write changed nothing: it has no position to present.
    refused = await client.post(FLOWS + "start", json={"workFlowId": "ghost"})
    assert refused.status == 404
    assert HEADER not in refused.headers
    # Reads present positions; without replicas the primary answers them at once.
    read = await client.get(FLOWS + flow_id, headers={HEADER: started.headers[HEADER]})
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
