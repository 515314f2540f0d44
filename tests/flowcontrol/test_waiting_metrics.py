"""``/metrics`` counts the flows waiting on flow control now, by kind of limit and definition,
read from ``flow_slots`` when scraped."""

from __future__ import annotations

from tests.api.conftest import Service
from tests.api.helpers import DEFINITIONS, Client, create, ok, post, wait_for
from tests.flowcontrol.test_limits_api import Held, held_spec, waits
from tests.tasks.test_task_api import offered


async def scraped(client: Client) -> list[str]:
    text = await (await client.get("/metrics")).text()
    return [line for line in text.splitlines() if line.startswith("flowlog_flows_waiting{")]


async def test_flows_waiting_on_flow_control_are_counted(service: Service) -> None:
    client = service.client
    held = Held(client)
    one_per_cluster = {"key": "context.clusterId", "limit": 1}
    await ok(await post(client, DEFINITIONS, held_spec("limited-m", concurrency=one_per_cluster)))
    rated = held_spec("rated-m", work={"rateLimit": {"key": "tenant", "limit": 1,
                                                     "periodSeconds": 600}})  # fmt: skip
    await ok(await post(client, DEFINITIONS, rated))
    assert await scraped(client) == []

    first = await create(client, "limited-m", biz_id="m0", context={"clusterId": "c-1"})
    await offered(client, first)  # it holds the slot before the others ask for it
    second, third = [
        await create(client, "limited-m", biz_id=f"m{n}", context={"clusterId": "c-1"})
        for n in (1, 2)
    ]
    await waits(client, third, ahead=1)
    starts_now = await create(client, "rated-m", biz_id="r1")
    await offered(client, starts_now)
    later = await create(client, "rated-m", biz_id="r2")
    await waits(client, later, ahead=0)  # its start is reserved, ten minutes on
    assert sorted(await scraped(client)) == [
        'flowlog_flows_waiting{definition="limited-m",limit="concurrency"} 2.0',
        'flowlog_flows_waiting{definition="rated-m",limit="rate"} 1.0',
    ]

    await held.finish(first)
    await offered(client, second)

    async def one_left() -> bool:
        return 'flowlog_flows_waiting{definition="limited-m",limit="concurrency"} 1.0' in (
            await scraped(client)
        )

    await wait_for(one_left)
    await held.finish(second)
    await held.finish(third)

    async def none_left() -> bool:
        return not any("limited-m" in line for line in await scraped(client))

    await wait_for(none_left)  # a definition nobody waits for is no series
    await held.finish(starts_now)
