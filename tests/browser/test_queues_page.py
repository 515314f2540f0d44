"""Task queues in Chromium: a flow's page follows its task from waiting for a worker to held
by one without a reload (taking a task appends no event: the page asks again by itself), and
the queues page counts new offers and finished tasks as they come; both, with a task held,
have no serious accessibility violation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Console, running_console
from tests.browser.screenshots import offer, render_spec, take
from tests.browser.test_quality import serious


@pytest.fixture(scope="module")
def console(server_url: str, template_database: str) -> Iterator[Console]:
    """A console whose task leases outlast the test (the shared one's last 5 s)."""
    with running_console(
        server_url, template_database, "--definitions", "flowlog.demo", lease_seconds=60
    ) as served:
        yield served


def test_a_flows_page_and_the_queues_page_follow_a_task_without_a_reload(
    page: Any, console: Console, tag: str
) -> None:
    name, queue = f"render-{tag}", f"q-{tag}"
    assert (
        console.api("POST", "/api/v1/workflow-definitions", render_spec(name, queue))["code"] == 0
    )
    flow_id = offer(console, name, f"{tag}-1")

    page.goto(console.url(f"/flows/{flow_id}"))
    task = page.locator("#flow-task")
    expect(task).to_contain_text(f"render is offered on queue {queue}: waiting for a worker since")
    expect(page.locator(".graph-svg .node[data-key='render'] .node-queue")).to_have_text(
        f"queue: {queue}"
    )
    expect(page.locator("table.nodes tbody tr").last).to_contain_text(f"queue {queue}")

    held = take(console, queue, "box-1", {"pages": 4, "of": 9})
    expect(task).to_contain_text("held by worker box-1 since", timeout=15_000)
    expect(task).to_contain_text("lease until")
    expect(page.locator(".task-progress")).to_contain_text('{"of":9,"pages":4}')
    assert serious(page) == []

    task.get_by_role("link", name=queue).click()
    row = page.locator(f"tr[data-queue='{queue}']")
    expect(row.locator("td").nth(0)).to_have_text("0")  # waiting
    expect(row.locator("td").nth(3)).to_have_text("1")  # held
    expect(row.locator("td.workers")).to_have_text("box-1")
    expect(page.locator("table.held tbody")).to_contain_text(flow_id[:8])
    assert serious(page) == []

    console.create(flowName=name, bizId=f"{tag}-2", bizType="demo")
    expect(row.locator("td").nth(0)).to_have_text("1")  # offered: no reload
    done = {"taskToken": held["taskToken"], "status": "success"}
    assert console.api("POST", "/api/v1/tasks/complete", done)["code"] == 0
    expect(row.locator("td").nth(3)).to_have_text("0")
    console.wait_status(flow_id, "Finished")
    page.goto(console.url(f"/flows/{flow_id}"))
    expect(page.locator("#flow-task")).to_have_count(0)
    expect(page.locator("table.nodes tbody tr").nth(1)).to_contain_text(f"queue {queue}")
