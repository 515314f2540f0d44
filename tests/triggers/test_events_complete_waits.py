"""The issue's story of events in, end to end over REST: a flow whose callback node waits for
``backup.verified`` of its cluster is completed by the CloudEvent a verifier sends to
``POST /api/v1/events`` (the answer names the flow), and runs to its end; an event of another
cluster completes nothing; the same event sent again completes nothing more."""

from __future__ import annotations

from tests.api.conftest import Service
from tests.api.helpers import create, wait_status
from tests.api.test_definitions import register
from tests.api.test_event_wait_definitions import waiting_spec
from tests.helpers import eventually
from tests.triggers.helpers import accepted, cloudevent, send


async def test_an_event_sent_over_rest_completes_the_node_waiting_for_it(
    service: Service,
) -> None:
    client = service.client
    await register(client, waiting_spec())
    mine = await create(client, "verify", context={"clusterId": "c-7"}, biz_id="c-7")
    other = await create(client, "verify", context={"clusterId": "c-8"}, biz_id="c-8")

    async def waiting() -> bool:
        count: int = await service.engine.pool.fetchval("SELECT count(*) FROM event_waits")
        return count == 2

    await eventually(waiting, what="both nodes waiting for their events")

    elsewhere = cloudevent("v-0", type="backup.verified", data={"clusterId": "c-9"})
    assert (await accepted(await send(client, elsewhere)))["completed"] == []

    verified = cloudevent("v-1", type="backup.verified", data={"clusterId": "c-7", "ok": True})
    answer = await accepted(await send(client, verified, binary=True))
    assert answer["completed"] == [mine]
    assert answer["matched"] is False  # no rule: the event still completes what waits for it
    ended = await wait_status(client, mine, {"Finished"})
    assert "v-1" in ended["nodes"][0]["result"]  # the event is the node's result

    again = await accepted(await send(client, verified))
    assert again["duplicate"] is True
    assert await service.engine.pool.fetchval("SELECT flow_id FROM event_waits") == other
