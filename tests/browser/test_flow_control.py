"""Flow control in Chromium: flows held back by a definition's concurrency limit say so in the
list and on their pages, and the pages follow the line as it moves without a reload (nothing
is logged for a waiter when a flow ahead of it leaves: the page asks again by itself) until
the flow starts; with flows waiting, no serious accessibility violation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Console, running_console
from tests.browser.screenshots import held_back, limited_spec, offered, take
from tests.browser.test_quality import serious


@pytest.fixture(scope="module")
def console(server_url: str, template_database: str) -> Iterator[Console]:
    """A console whose task leases outlast the test (the shared one's last 5 s)."""
    with running_console(
        server_url, template_database, "--definitions", "flowlog.demo", lease_seconds=60
    ) as served:
        yield served


def finish(console: Console, queue: str, flow_id: str) -> None:
    """A worker takes the flow's export and completes it."""
    task = take(console, queue, "box-1")
    assert task["workFlowId"] == flow_id
    done = {"taskToken": task["taskToken"], "status": "success"}
    assert console.api("POST", "/api/v1/tasks/complete", done)["code"] == 0


def test_waiting_flows_say_so_and_their_pages_follow_the_line(
    page: Any, console: Console, tag: str
) -> None:
    name, queue = f"export-{tag}", f"q-{tag}"
    answer = console.api("POST", "/api/v1/workflow-definitions", limited_spec(name, queue))
    assert answer["code"] == 0, answer

    def make(n: int) -> str:
        return console.create(
            flowName=name, bizId=f"{tag}-{n}", bizType=tag, context={"clusterId": "c-1"}
        )

    holder = offered(console, make(0))  # it holds the slot before the others ask for it
    second, third = make(1), make(2)
    held_back(console, third, ahead=1)

    page.goto(console.url(f"/?bizType={tag}"))
    row = page.locator(f"tr[data-id='{third}'] .limit-wait")
    expect(row).to_have_text("waiting: concurrency clusterId=c-1, 1 ahead")
    expect(row).to_have_attribute(
        "title", "Waiting: concurrency context.clusterId=c-1, 1 ahead (1 running)"
    )
    expect(page.locator(f"tr[data-id='{holder}'] .limit-wait")).to_have_count(0)
    assert serious(page) == []

    page.goto(console.url(f"/flows/{third}"))
    line = page.locator("#flow-limits")
    expect(line).to_contain_text("Waiting for a slot")
    expect(line).to_contain_text("Waiting: concurrency context.clusterId=c-1, 1 ahead (1 running)")
    assert serious(page) == []

    finish(console, queue, holder)  # the second takes the slot: the third is next
    expect(line).to_contain_text("context.clusterId=c-1, 0 ahead (1 running)", timeout=15_000)
    finish(console, queue, second)  # the third starts: its export is offered
    expect(page.locator("#flow-task")).to_contain_text(f"export is offered on queue {queue}")
    expect(line).to_have_count(0)

    page.goto(console.url(f"/?bizType={tag}"))
    expect(page.locator(f"tr[data-id='{third}'] td[data-label='Node']")).to_contain_text(
        "export (Processing)"
    )
    expect(page.locator(".limit-wait")).to_have_count(0)
