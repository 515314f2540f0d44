"""The console as people use it: accessible (axe-core finds no serious or critical violation,
the keyboard reaches everything), readable on a desktop and on a phone, and the interactive
API page calls this server from the browser."""

from __future__ import annotations

from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tests.browser.conftest import DESKTOP, PHONE, Console
from tests.browser.screenshots import offer, render_spec

QUICK = {"slowSeconds": 0, "uploadSeconds": 0}


@pytest.fixture(scope="module")
def flows(console: Console) -> dict[str, str]:
    """Flows in every status, for the pages to show (each status has its colours)."""
    finished = console.create(bizType="quality", context=QUICK)
    failed = console.create(bizType="quality", context={**QUICK, "failAt": "upload"})
    stopped = console.create(bizType="quality", start=False)
    assert console.api("POST", "/api/v1/workflow/stop", {"workFlowId": stopped})["code"] == 0
    canceled = console.create(bizType="quality", start=False)
    assert console.api("POST", "/api/v1/workflow/cancel", {"workFlowId": canceled})["code"] == 0
    console.create(bizType="quality", start=False)  # Initializing
    running = console.create(bizType="quality", context={"slowSeconds": 600})
    waiting = console.create(flowName="restore", bizType="quality")
    fleet = console.create(flowName="fleet-backup", bizType="quality", context={
        **QUICK, "clusters": ["q-1", "q-2"], "failAt": {"q-2": "upload"}})  # fmt: skip
    console.wait_status(finished, "Finished")
    console.wait_status(failed, "Error")
    console.wait_waiting(waiting)
    console.wait_status(fleet, "Finished", within=60)
    nightly = {"scheduleId": "quality-nightly", "flowName": "backup", "cron": "0 2 * * *",
               "timezone": "Europe/Berlin", "context": {"clusterId": "{{scheduleId}}"}}  # fmt: skip
    assert console.api("POST", "/api/v1/workflow-schedules", nightly)["code"] == 0
    spec = render_spec("quality-render", "quality-q")
    assert console.api("POST", "/api/v1/workflow-definitions", spec)["code"] == 0
    task = offer(console, "quality-render", "quality-1")  # no worker: it waits for one
    return {"finished": finished, "failed": failed, "stopped": stopped, "running": running,
            "waiting": waiting, "fleet": fleet, "task": task}  # fmt: skip


def pages(flows: dict[str, str]) -> list[str]:
    return [
        "/",
        "/?status=Error&bizType=quality",
        f"/flows/{flows['failed']}",
        f"/flows/{flows['finished']}?version=3",
        f"/flows/{flows['running']}",
        f"/flows/{flows['waiting']}",
        "/?waiting=callback",
        f"/flows/{flows['fleet']}",  # a map's counts, branches as lanes
        f"/flows/{flows['fleet']}?version=4",  # children running
        f"/?parent={flows['fleet']}",
        "/definitions",
        "/definitions/backup",
        "/schedules",
        "/schedules/quality-nightly",
        f"/flows/{flows['task']}",  # waiting for a worker (held: test_queues_page.py)
        "/queues",
        "/flows/no-such-flow",
    ]


def serious(page: Any) -> list[str]:
    found = Axe().run(page).response["violations"]
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in found
        if v["impact"] in {"serious", "critical"}
    ]


def test_no_page_has_a_serious_accessibility_violation(
    browser: Any, console: Console, flows: dict[str, str]
) -> None:
    for viewport in (DESKTOP, PHONE):
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        for path in pages(flows):
            page.goto(console.url(path))
            page.wait_for_load_state("networkidle")
            assert serious(page) == [], (path, viewport)
        # The dialog too, open.
        page.goto(console.url(f"/flows/{flows['failed']}"))
        page.locator("#flow-actions").get_by_role("button", name="Retry").click()
        expect(page.locator("#action-dialog")).to_be_visible()
        assert serious(page) == [], "the action dialog"
        context.close()


def test_the_log_in_page_is_accessible(page: Any, guarded_console: Console) -> None:
    page.goto(guarded_console.url("/login"))
    assert serious(page) == []


def test_nothing_overflows_a_phone_screen(browser: Any, console: Console, flows: dict[str, str]):
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    for path in pages(flows):
        page.goto(console.url(path))
        width = page.evaluate("document.scrollingElement.scrollWidth")
        assert width <= PHONE["width"], (path, width)  # wide tables scroll in their own box
    context.close()


def test_the_keyboard_reaches_the_filters_the_rows_and_the_actions(
    page: Any, console: Console, flows: dict[str, str]
) -> None:
    page.goto(console.url("/?bizType=quality"))
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    reached: set[str] = set()
    for _ in range(60):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("document.activeElement.id || document.activeElement.className"))
    assert {"f-status", "f-bizid", "jump-id", "select-page", "pick"} <= reached

    page.goto(console.url(f"/flows/{flows['stopped']}"))
    start = page.locator("#flow-actions").get_by_role("button", name="Start / resume")
    start.focus()
    page.keyboard.press("Enter")
    dialog = page.locator("#action-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Reason (recorded in the history)")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()


def test_the_api_page_tries_a_request_from_the_browser(page: Any, console: Console) -> None:
    page.goto(console.url("/api/v1/docs"))
    expect(page.locator("#operations-operations-healthz")).to_be_visible()
    assert serious(page) == []
    operation = page.locator("#operations-operations-healthz")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    answered = operation.locator(".live-responses-table tbody .response-col_status")
    expect(answered).to_contain_text("200")
    expect(operation.locator(".highlight-code").first).to_contain_text('"status": "ok"')
    listing = page.locator("#operations-workflow-list_flows")
    listing.locator(".opblock-summary").click()
    listing.get_by_role("button", name="Try it out").click()
    listing.get_by_role("button", name="Execute").click()
    expect(listing.locator(".live-responses-table tbody .response-col_status")).to_contain_text(
        "200"
    )
    assert serious(page) == []  # Swagger UI open, with answers: mended where it fell short
