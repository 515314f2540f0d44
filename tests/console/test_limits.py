"""Flow control in the console: a flow held back by a limit says what it waits for under its
title (how many ahead, how many running; a rate limit's start), a row of the flows list says
it short, with one query for the page; a flow's priority is a badge. Other tenants' flows are
never shown, and a key value is text."""

from __future__ import annotations

import html
import re
from typing import Any

from flowlog.console.limits import listed_limits
from flowlog.eventstore.pool import Executor
from flowlog.projections.reads import get_workflow
from flowlog.projections.rows import WorkflowRow
from tests.api.conftest import TOKENS, MakeService, Service
from tests.api.helpers import DEFINITIONS, A, B, Client, create, detail, ok, post, wait_for
from tests.console.test_access import session_of
from tests.console.test_pages import page
from tests.console.test_queues import words
from tests.flowcontrol.test_limits_api import Held, held_spec, waits
from tests.tasks.test_task_api import offered

ONE_PER_CLUSTER = {"key": "context.clusterId", "limit": 1}


async def in_line(
    client: Client, name: str, cluster: str, count: int, headers: Any = None, **more: Any
) -> list[str]:
    """``count`` flows of ``name`` on one cluster: the first holds the slot (its task offered,
    never polled), the others wait behind it, in creation order. The first is offered before
    the others are made: flows that ask for a slot at once take it in the order they ask."""
    flows = []
    for n in range(count):
        body = {"flowName": name, "bizId": f"{cluster}-{n}", "bizType": "t", "start": True,
                "context": {"clusterId": cluster}, **more}  # fmt: skip
        answer = await post(client, "/api/v1/workflow/", body, headers)
        flows.append((await ok(answer))["workFlowId"])
        if n == 0:
            await offered(client, flows[0], headers)

    async def last_waits() -> bool:
        found = (await detail(client, flows[-1], headers)).get("waitingFor") or []
        return bool(found) and found[0]["ahead"] == count - 2

    if count > 1:
        await wait_for(last_waits)
    return flows


def row_of(text: str, flow_id: str) -> str:
    return text.split(f'<tr data-id="{flow_id}"', 1)[1].split("</tr>", 1)[0]


def node_cell(text: str, flow_id: str) -> str:
    cell = row_of(text, flow_id).split('data-label="Node">', 1)[1].split("</td>", 1)[0]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", cell)).split())


async def test_a_waiting_flow_s_page_and_row_say_what_it_waits_for(service: Service) -> None:
    client = service.client
    await ok(await post(client, DEFINITIONS, held_spec("backup-c", concurrency=ONE_PER_CLUSTER)))
    first, second, third = await in_line(client, "backup-c", "c-1", 3)

    said = words(await page(client, f"/flows/{third}"), "flow-limits")
    assert said == ("Waiting for a slot Waiting: concurrency context.clusterId=c-1, 1 ahead "
                    "(1 running) (flows take slots in the order they were created)")  # fmt: skip
    assert "0 ahead (1 running)" in words(await page(client, f"/flows/{second}"), "flow-limits")
    holder = await page(client, f"/flows/{first}")
    assert 'id="flow-limits"' not in holder
    assert 'id="flow-task"' in holder
    # The live refresh draws the head from the same template, at any version: the wait is now's.
    fragment = await (await client.get(f"/console/flows/{third}?version=1&since=0")).json()
    assert "concurrency context.clusterId=c-1, 1 ahead (1 running)" in fragment["head"]

    listed = await page(client, "/")
    assert node_cell(listed, second) == "waiting: concurrency clusterId=c-1, 0 ahead"
    assert node_cell(listed, third) == "waiting: concurrency clusterId=c-1, 1 ahead"
    assert 'title="Waiting: concurrency context.clusterId=c-1, 1 ahead (1 running)"' in row_of(
        listed, third
    )
    assert node_cell(listed, first) == "work (Processing)"
    rows = (await (await client.get("/console/flows")).json())["rows"]
    assert node_cell(rows, third) == "waiting: concurrency clusterId=c-1, 1 ahead"

    # The holder ends: the second takes its slot, the third moves up.
    held = Held(client)
    await held.finish(first)
    await offered(client, second)
    assert 'id="flow-limits"' not in await page(client, f"/flows/{second}")
    await waits(client, third, ahead=0)
    assert (
        node_cell(await page(client, "/"), third) == "waiting: concurrency clusterId=c-1, 0 ahead"
    )
    await held.finish(second)
    await held.finish(third)
    ended = await page(client, "/")
    assert "waiting: concurrency" not in ended


async def test_a_rate_limit_s_wait_says_when_the_node_starts(service: Service) -> None:
    client = service.client
    work = {"queue": None, "executor": {"type": "noop"},
            "rateLimit": {"key": "context.region", "limit": 1, "periodSeconds": 600}}  # fmt: skip
    spec = held_spec("rated-c", work=work)
    spec["nodes"]["work"].pop("queue")
    spec["nodes"]["work"]["name"] = "send"  # the console names a node by its name, not its key
    await ok(await post(client, DEFINITIONS, spec))
    first = await create(client, "rated-c", context={"region": "eu"}, biz_id="r1")
    second = await create(client, "rated-c", context={"region": "eu"}, biz_id="r2")

    ran: list[str] = []

    async def finished() -> bool:
        # Both drives ask for the one start at once: either may get it (a rate limit spaces
        # starts; it does not order flows), and the other waits its turn.
        for flow_id in (first, second):
            if (await detail(client, flow_id))["info"]["status"] == "Finished":
                ran.append(flow_id)
                return True
        return False

    await wait_for(finished)
    second = second if ran[0] == first else first
    await waits(client, second, ahead=0)
    said = words(await page(client, f"/flows/{second}"), "flow-limits")
    assert re.fullmatch(
        r"Waiting for its start Waiting: rate limit context.region=eu of node send, starts at "
        r"20\S+ \S+ UTC \(in (9|10) min\) \(the node's starts are spaced evenly\)",
        said,
    ), said
    cell = node_cell(await page(client, "/"), second)
    assert re.fullmatch(r"waiting: rate limit region=eu of node send, starts in (9|10) min", cell)


async def test_priority_is_a_badge_beside_the_status(service: Service) -> None:
    client = service.client
    await ok(await post(client, DEFINITIONS, held_spec("urgent-c")))
    [urgent] = await in_line(client, "urgent-c", "c-7", 1, priority=7)
    [plain] = await in_line(client, "urgent-c", "c-8", 1)
    text = await page(client, f"/flows/{urgent}")
    assert '<span class="badge priority" title="priority 7 of 9:' in text
    assert ">priority 7</span>" in text
    assert 'class="badge priority"' not in await page(client, f"/flows/{plain}")


async def test_a_key_value_is_text(service: Service) -> None:
    client = service.client
    await ok(await post(client, DEFINITIONS, held_spec("backup-x", concurrency=ONE_PER_CLUSTER)))
    hostile = '<script>alert("x")</script>'
    _, waiter = await in_line(client, "backup-x", hostile, 2)
    for text in (await page(client, f"/flows/{waiter}"), await page(client, "/")):
        assert "<script>alert" not in text
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text
    assert node_cell(await page(client, "/"), waiter) == (
        f"waiting: concurrency clusterId={hostile}, 0 ahead"
    )


class Counting:
    """A real pool that counts the statements a read asks."""

    def __init__(self, pool: Executor) -> None:
        self.pool = pool
        self.asked = 0

    async def fetch(self, query: str, *args: Any) -> Any:
        self.asked += 1
        return await self.pool.fetch(query, *args)


async def rows(service: Service, flow_ids: list[str]) -> list[WorkflowRow]:
    found = [await get_workflow(service.engine.pool, flow_id) for flow_id in flow_ids]
    assert all(row is not None for row in found)
    return [row for row in found if row is not None]


async def test_the_list_asks_once_for_its_rows_and_not_at_all_without_limits(
    service: Service,
) -> None:
    client = service.client
    await ok(await post(client, DEFINITIONS, held_spec("backup-q", concurrency=ONE_PER_CLUSTER)))
    await ok(await post(client, DEFINITIONS, held_spec("free-q")))
    waiting = await in_line(client, "backup-q", "c-1", 4)
    free = await in_line(client, "free-q", "c-1", 1)
    counting = Counting(service.engine.pool)
    found = await listed_limits(counting, await rows(service, waiting + free), service.registry,
                                None)  # fmt: skip
    assert counting.asked == 1
    assert sorted(found) == sorted(waiting[1:])
    assert [w.ahead for w in (found[f][0] for f in waiting[1:])] == [0, 1, 2]
    counting.asked = 0
    assert await listed_limits(counting, await rows(service, free), service.registry, None) == {}
    assert counting.asked == 0


async def test_another_tenant_s_waiting_flows_are_never_shown(make_service: MakeService) -> None:
    service = await make_service(tokens=TOKENS)
    client = service.client
    await ok(await post(client, DEFINITIONS, held_spec("alpha-c", concurrency=ONE_PER_CLUSTER), A))
    await ok(await post(client, DEFINITIONS, held_spec("bravo-c", concurrency=ONE_PER_CLUSTER), B))
    mine = await in_line(client, "alpha-c", "alpha-cluster", 2, A)
    theirs = await in_line(client, "bravo-c", "bravo-secret", 2, B)
    alice = await session_of(client, "token-a")
    listed = await (await client.get("/", headers=alice)).text()
    assert node_cell(listed, mine[1]) == "waiting: concurrency clusterId=alpha-cluster, 0 ahead"
    fragment = (await (await client.get("/console/flows", headers=alice)).json())["rows"]
    for text in (listed, fragment):
        assert "bravo" not in text
        assert all(flow_id not in text for flow_id in theirs)
    assert (await client.get(f"/flows/{theirs[1]}", headers=alice)).status == 404
    # The slots' own tenant is asked too: bob's rows read as alice's find nothing.
    theirs_rows = await rows(service, theirs)
    pool = service.engine.pool
    assert await listed_limits(pool, theirs_rows, service.registry, "tenant-a") == {}
    assert list(await listed_limits(pool, theirs_rows, service.registry, "tenant-b")) == [theirs[1]]
