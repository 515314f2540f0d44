"""Task queues in the console: a flow's page says on which queue its running node is offered
and who holds it (live from the flow's work row, not its log), its finished nodes keep their
queue; the queues page counts a tenant's queues, names their workers and the tasks they hold,
and shows no other tenant's."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest

from tests.api.conftest import TOKENS, MakeService
from tests.api.helpers import DEFINITIONS, A, B, Client, create, detail, ok, post, wait_for
from tests.console.test_access import session_of
from tests.console.test_pages import page

POLL = "/api/v1/tasks/poll"
LEASE = 60.0
"""Long enough that no task held in these tests lapses (the fixture's default is 2 s)."""


@pytest.fixture
async def client(make_service: MakeService) -> Client:
    """An open service whose task leases outlast a test."""
    return (await make_service(lease_seconds=LEASE)).client


def remote(name: str, queue: str) -> dict[str, Any]:
    """prepare -> render (offered on ``queue``) -> finish."""
    return {
        "name": name,
        "nodes": {
            "start": {"name": "prepare", "executor": {"type": "noop"}, "success": "render"},
            "render": {"name": "render", "queue": queue, "success": "finish"},
            "finish": {"name": "finish", "executor": {"type": "noop"}},
        },
    }


async def offered(client: Client, name: str, headers: Any = None, biz_id: str = "b") -> str:
    """A new flow of ``name``, once its render node is offered on its queue."""
    flow_id = await create(client, name, biz_id=biz_id, headers=headers)

    async def waits() -> bool:
        return (await detail(client, flow_id, headers)).get("task") is not None

    await wait_for(waits)
    return flow_id


async def poll(client: Client, queue: str, worker: str, headers: Any = None) -> dict[str, Any]:
    body = {"queue": queue, "workerId": worker, "max": 1, "waitSeconds": 0}
    [task] = (await ok(await post(client, POLL, body, headers)))["tasks"]
    found: dict[str, Any] = task
    return found


def words(text: str, element_id: str) -> str:
    """The text of an element (by id, up to its closing div), tags left out."""
    part = text.split(f'id="{element_id}"', 1)[1].split(">", 1)[1].split("</div>", 1)[0]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", part)).split())


async def test_a_flows_page_says_where_its_task_is_offered_and_who_holds_it(
    client: Client,
) -> None:
    await ok(await post(client, DEFINITIONS, remote("render-report", "remote")))
    flow_id = await offered(client, "render-report")

    waiting = await page(client, f"/flows/{flow_id}")
    said = words(waiting, "flow-task")
    assert said.startswith("Waiting for a worker render is offered on queue remote: waiting for a "
                           "worker since 20"), said  # fmt: skip
    assert "UTC (just now)" in said
    assert '<a class="text" href="/queues#queue-remote">remote</a>' in waiting
    assert "held by worker" not in waiting
    # The graph notes the queue above the node; the execution says it too.
    assert '<text x="2" y="-6" class="node-queue">queue: remote</text>' in waiting
    assert "offered on queue remote (a worker runs it)" in waiting
    assert '(render, queue <a href="/queues#queue-remote">remote</a>)' in waiting

    task = await poll(client, "remote", "render-box-7")
    beat = {"taskToken": task["taskToken"], "details": {"frame": 3, "of": 10, "note": "<b>"}}
    assert (await ok(await post(client, "/api/v1/tasks/heartbeat", beat)))["wanted"] is True
    held = await page(client, f"/flows/{flow_id}")
    said = words(held, "flow-task")
    assert said.startswith("Held by a worker render is offered on queue remote: held by worker "
                           "render-box-7 since 20"), said  # fmt: skip
    assert re.search(r"lease until 20\S+ \S+ UTC \(in \d+ s\)", said), said
    progress = held.split('<p class="task-progress">', 1)[1].split("</p>", 1)[0]
    assert html.unescape(progress) == (
        "Progress, from the worker's last heartbeat: "
        '<code class="text">{"frame":3,"note":"<b>","of":10}</code>'
    )
    assert "&lt;b&gt;" in progress  # a worker's words are text
    # Much progress is folded away, in lines.
    beat["details"] = {"pages": list(range(40))}
    await ok(await post(client, "/api/v1/tasks/heartbeat", beat))
    long = await page(client, f"/flows/{flow_id}")
    folded = long.split('<details class="task-details">', 1)[1].split("</details>", 1)[0]
    assert html.unescape(folded).count("\n") > 40

    # Time travel and the live refresh draw the head from the same template: the task is now's.
    fragment = await (await client.get(f"/console/flows/{flow_id}?version=1&since=0")).json()
    assert 'held by worker <strong class="text">render-box-7</strong>' in fragment["head"]

    done = {"taskToken": task["taskToken"], "status": "success", "result": "rendered"}
    await ok(await post(client, "/api/v1/tasks/complete", done))

    async def finished() -> bool:
        return (await detail(client, flow_id))["info"]["status"] == "Finished"

    await wait_for(finished)
    after = await page(client, f"/flows/{flow_id}")
    assert 'id="flow-task"' not in after
    assert '(render, queue <a href="/queues#queue-remote">remote</a>)' in after


async def test_a_stopped_flows_task_is_not_offered_and_the_page_says_so(client: Client) -> None:
    await ok(await post(client, DEFINITIONS, remote("render-report", "remote")))
    flow_id = await offered(client, "render-report")
    await ok(await post(client, "/api/v1/workflow/stop", {"workFlowId": flow_id}))
    said = words(await page(client, f"/flows/{flow_id}"), "flow-task")
    assert said == ("Not offered render is offered on queue remote: not offered while the flow "
                    "is stopped; Start offers it again.")  # fmt: skip
    queues = await page(client, "/queues")
    assert cells(queues, "remote") == ["remote", "0", "none waiting", "0", "0", "1",
                                       "none", "no worker yet"]  # fmt: skip


def cells(text: str, queue: str) -> list[str]:
    """The cells of a queue's row on the queues page, as text."""
    row = text.split(f'<tr id="queue-{queue}"', 1)[1].split("</tr>", 1)[0]
    found = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", "", cell)).split()) for cell in found]


async def test_the_queues_page_shows_a_tenants_queues_their_workers_and_held_tasks(
    make_service: MakeService,
) -> None:
    service = await make_service(tokens=TOKENS, lease_seconds=LEASE)
    client = service.client
    await ok(await post(client, DEFINITIONS, remote("render-a", "alpha-jobs"), A))
    await ok(await post(client, DEFINITIONS, remote("render-b", "bravo-jobs"), B))
    first = await offered(client, "render-a", A, "alice-1")
    await offered(client, "render-a", A, "alice-2")
    theirs = await offered(client, "render-b", B, "bob-1")
    await poll(client, "alpha-jobs", "alpha-box", A)
    await poll(client, "bravo-jobs", "bravo-box", B)

    alice = await session_of(client, "token-a")
    answer = await client.get("/queues", headers=alice)
    assert answer.status == 200
    text = await answer.text()
    assert '<a href="/queues" aria-current="page">Queues</a>' in text
    row = cells(text, "alpha-jobs")
    assert row[:2] == ["alpha-jobs", "1"]  # one waiting
    assert re.fullmatch(r"\d+ ms|\d+\.\d s", row[2]), row  # the oldest has waited that long
    assert row[3:7] == ["0", "1", "0", "alpha-box"]
    assert row[7] == "just now"
    held = text.split('<table class="held">', 1)[1]
    assert f'<tr data-id="{first}">' in held
    assert "alpha-box" in held
    for other in ("bravo-jobs", "bravo-box", theirs):
        assert other not in text, other

    fragment = await (await client.get("/console/queues", headers=alice)).json()
    assert 'id="queue-alpha-jobs"' in fragment["html"]
    assert "bravo" not in fragment["html"]

    bob = await session_of(client, "token-b")
    theirs_page = await (await client.get("/queues", headers=bob)).text()
    assert cells(theirs_page, "bravo-jobs")[:2] == ["bravo-jobs", "0"]
    assert "alpha" not in theirs_page
    assert (await client.get(f"/flows/{first}", headers=bob)).status == 404


async def test_a_queue_whose_workers_went_away_says_when_one_was_last_seen(
    make_service: MakeService,
) -> None:
    service = await make_service(lease_seconds=LEASE)
    client = service.client
    await ok(await post(client, POLL, {"queue": "night-jobs", "workerId": "old-box"}))
    await service.engine.pool.execute(
        "UPDATE task_workers SET last_seen = now() - interval '2 hours' WHERE worker_id = $1",
        "old-box",
    )
    text = await page(client, "/queues")
    assert cells(text, "night-jobs") == ["night-jobs", "0", "none waiting", "0", "0", "0",
                                         "none", "2 h ago"]  # fmt: skip
    assert "No worker holds a task now." in text


async def test_with_no_queue_the_page_says_what_queues_are(client: Client) -> None:
    text = await page(client, "/queues")
    assert "No queue yet." in text
    assert '"queue": "remote"' in html.unescape(text)
    assert '<strong>tasks</strong> on the <a href="/api/v1/docs">API page</a>' in text
    assert "<code>docs/workers.md</code>" in text
    assert '<table class="queues">' not in text
