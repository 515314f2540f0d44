"""A flow's page in Chromium: its graph, timeline and history; live updates over the event
stream; stop, resume and retry by the buttons; time travel through its versions."""

from __future__ import annotations

import re
import time
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import Console

QUICK = {"slowSeconds": 0, "uploadSeconds": 0}


def badge(page: Any) -> Any:
    """The flow's status (a waiting flow has a second badge: Waiting)."""
    return page.locator("#flow-head .status-line .badge").first


def node(page: Any, key: str) -> Any:
    return page.locator(f'#panel g.node[data-key="{key}"]')


def act(page: Any, button: str, reason: str) -> Any:
    """Clicks an action, gives the reason, confirms; returns the dialog."""
    page.locator("#flow-actions").get_by_role("button", name=button).click()
    dialog = page.locator("#action-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Reason (recorded in the history)").fill(reason)
    return dialog


def test_graph_timeline_executions_and_history(page: Any, console: Console, tag: str) -> None:
    flow_id = console.create(bizType=tag, context={**QUICK, "failAt": "upload"})
    console.wait_status(flow_id, "Error")
    page.goto(console.url(f"/flows/{flow_id}"))
    expect(badge(page)).to_have_text("Error")
    expect(page.locator("#panel g.node")).to_have_count(4)
    expect(node(page, "start")).to_have_class("node st-finished")
    expect(node(page, "backupDone")).to_have_class("node st-error")
    expect(node(page, "uploadDone")).to_have_class("node st-not-run")
    expect(node(page, "backupDone").locator("title")).to_contain_text(
        "upload (backupDone, polling): Error"
    )
    expect(page.locator("#panel svg.graph-svg path.edge-fail")).to_have_count(3)
    expect(page.locator("#panel svg.graph-svg path.edge-success")).to_have_count(5)
    timeline = page.locator("#panel table.timeline tbody tr")
    expect(timeline).to_have_count(3)
    expect(timeline.nth(1)).to_contain_text("upload #1")
    expect(timeline.nth(1).locator("rect.seg-poll")).to_have_count(1)
    executions = page.locator("#panel table.nodes tbody tr")
    expect(executions).to_have_count(3)
    expect(executions.nth(1)).to_contain_text("7002 the object store refused the upload")
    history = console.events(flow_id)
    expect(page.locator("#history-rows tr")).to_have_count(len(history))
    expect(page.locator("#history-rows tr").last).to_contain_text("FlowFailed")
    expect(page.locator("#panel pre.context")).to_contain_text('"failAt": "upload"')
    # Only what the state allows is offered.
    expect(page.locator("#flow-actions button")).to_have_text(["Retry"])


def test_events_arrive_live_and_stop_then_resume_by_the_buttons(
    page: Any, console: Console, tag: str
) -> None:
    flow_id = console.create(bizType=tag, context={"slowSeconds": 2, "uploadSeconds": 0})
    page.goto(console.url(f"/flows/{flow_id}"))
    page.evaluate("window.notReloaded = true")
    expect(node(page, "start")).to_have_class("node st-processing current")
    expect(page.locator("#flow-actions button")).to_have_text(["Stop", "Cancel"])

    dialog = act(page, "Stop", "maintenance window")
    dialog.get_by_role("button", name="Stop").click()
    expect(dialog.locator("#action-result")).to_contain_text("The server answered code 0: OK")
    dialog.get_by_role("button", name="Close").click()
    # The running node finishes, then the flow stops: the page follows without a reload.
    expect(badge(page)).to_have_text("Stopped", timeout=20_000)
    expect(page.locator("#history-rows tr", has_text="FlowStopped")).to_contain_text(
        "maintenance window"
    )
    expect(page.locator("#flow-actions button")).to_have_text(["Start / resume", "Cancel"])

    dialog = act(page, "Start / resume", "window over")
    dialog.get_by_role("button", name="Start / resume").click()
    expect(dialog.locator("#action-result")).to_contain_text("code 0: OK")
    dialog.get_by_role("button", name="Close").click()
    expect(badge(page)).to_have_text("Finished", timeout=20_000)
    expect(page.locator("#history-rows tr").last).to_contain_text("FlowFinished")
    expect(page.locator("#history-live")).to_have_text("(the flow has ended)")
    assert page.evaluate("window.notReloaded") is True
    stopped = next(e for e in console.events(flow_id) if e["type"] == "FlowStopped")
    assert (stopped["actor"], stopped["reason"]) == ("anonymous", "maintenance window")


def test_retry_with_a_context_patch_checked_before_sending(
    page: Any, console: Console, tag: str
) -> None:
    flow_id = console.create(bizType=tag, context={**QUICK, "failAt": "upload"})
    console.wait_status(flow_id, "Error")
    page.goto(console.url(f"/flows/{flow_id}"))
    dialog = act(page, "Retry", "the object store is back")
    patch = dialog.get_by_label("Context changes before the retry (a JSON object)")
    expect(patch).to_be_visible()
    for bad, says in [('{"failAt": ', "Not JSON"), ("[1]", "must be a JSON object"),
                      ('{"tenantId": "x"}', "tenantId is set by flowlog")]:  # fmt: skip
        patch.fill(bad)
        dialog.get_by_role("button", name="Retry").click()
        expect(dialog.locator("#action-context-error")).to_contain_text(says)
    assert "FlowRetried" not in [e["type"] for e in console.events(flow_id)]  # nothing sent

    patch.fill('{"failAt": ""}')
    dialog.get_by_role("button", name="Retry").click()
    expect(dialog.locator("#action-result")).to_contain_text("code 0: OK")
    dialog.get_by_role("button", name="Close").click()
    expect(badge(page)).to_have_text("Finished", timeout=20_000)
    retried = next(e for e in console.events(flow_id) if e["type"] == "FlowRetried")
    assert retried["reason"] == "the object store is back"
    set_again = next(
        e for e in console.events(flow_id) if e["type"] == "ContextSet" and e["version"] > 1
    )
    assert set_again["data"]["changes"] == {"failAt": ""}


def test_time_travel_through_the_versions(page: Any, console: Console, tag: str) -> None:
    flow_id = console.create(bizType=tag, context=QUICK)
    console.wait_status(flow_id, "Finished")
    latest = len(console.events(flow_id))
    page.goto(console.url(f"/flows/{flow_id}"))
    expect(page.locator("#at-title")).to_have_text("Now")
    slider = page.get_by_label("Version", exact=True)
    slider.focus()
    page.keyboard.press("Home")
    expect(page.locator("#at-title")).to_have_text("As it was at version 1")
    expect(page.locator("#travel-label")).to_have_text(f"Version 1 of {latest}")
    expect(page).to_have_url(console.url(f"/flows/{flow_id}?version=1"))
    expect(page.locator("#panel g.node.st-not-run")).to_have_count(4)
    expect(page.locator("#panel .changes")).to_contain_text("status")
    expect(page.locator("#history-rows tr.shown")).to_have_attribute("id", "event-1")

    for _ in range(2):  # created, started, then the first node starts
        page.keyboard.press("ArrowRight")
    expect(page.locator("#at-title")).to_have_text("As it was at version 3")
    expect(node(page, "start")).to_have_class("node st-processing current")
    expect(page.locator("#panel .changes")).to_contain_text("currentNode")

    page.locator("#travel-next").click()
    expect(page.locator("#at-title")).to_have_text("As it was at version 4")
    expect(node(page, "start")).to_have_class("node st-finished")
    page.locator("#history-rows a[data-version='2']").click()
    expect(page.locator("#at-title")).to_have_text("As it was at version 2")
    page.get_by_role("link", name="Back to now").click()
    expect(page.locator("#at-title")).to_have_text("Now")
    expect(page).to_have_url(console.url(f"/flows/{flow_id}"))
    expect(node(page, "uploadDone")).to_have_class("node st-finished")

    # A link to a version opens the flow as it was then.
    page.goto(console.url(f"/flows/{flow_id}?version=3"))
    expect(page.locator("#at-title")).to_have_text("As it was at version 3")


def test_an_operator_approves_a_waiting_callback_by_its_button(
    page: Any, console: Console, tag: str
) -> None:
    flow_id = console.create(flowName="restore", bizType=tag, context={"clusterId": "c-9"})
    deadline = time.monotonic() + 20
    while console.api("GET", f"/api/v1/workflow/{flow_id}")["data"].get("waiting") is None:
        assert time.monotonic() < deadline, "the restore never waited for its approval"
        time.sleep(0.05)
    page.goto(console.url(f"/flows/{flow_id}"))
    expect(node(page, "approval")).to_have_class("node st-processing current")
    expect(page.locator("#flow-actions button")).to_have_text(
        ["Stop", "Cancel", "Approve (complete: success)", "Reject (complete: fail)"]
    )
    dialog = act(page, "Approve (complete: success)", "change 42 approved by the board")
    dialog.locator("#action-confirm").click()
    expect(dialog).to_contain_text("Done")
    dialog.locator("#action-close").click()
    expect(badge(page)).to_have_text("Finished")
    expect(page.locator("#flow-actions button")).to_have_count(0)
    received = [e for e in console.events(flow_id) if e["type"] == "CallbackReceived"]
    assert [(e["reason"], e["data"]["status"]) for e in received] == [
        ("change 42 approved by the board", "success")
    ]
    expect(page.locator("#history-rows tr", has_text="CallbackReceived")).to_have_count(1)


def test_a_waiting_flow_and_a_failed_one_say_so_on_their_pages(
    page: Any, console: Console, tag: str
) -> None:
    restore = console.create(flowName="restore", bizType=tag, context={"clusterId": "c-9"})
    console.wait_waiting(restore)
    page.goto(console.url(f"/flows/{restore}"))
    status = page.locator("#flow-head .status-line")
    expect(status.locator(".badge")).to_have_text(["Processing", "Waiting"])
    expect(status).to_have_text(re.compile(
        r"^Processing Waiting Waiting: approval \(a person or a callback\), for \d[^;]*; "
        r"deadline in 23 h$"
    ))  # fmt: skip
    expect(status.locator(".waiting")).to_have_attribute("title", re.compile(r"^since 20\d\d-"))
    took = page.locator("#panel table.timeline tbody tr").last.locator("td").nth(1)
    expect(took).to_have_text(re.compile(r"^\d+(\.\d)? (ms|s|min \d+ s) so far$"))
    expect(page.locator("#flow")).not_to_contain_text("…")

    failed = console.create(bizType=tag, context={**QUICK, "failAt": "upload"})
    console.wait_status(failed, "Error")
    page.goto(console.url(f"/flows/{failed}"))
    expect(page.locator("#flow-head .status-line")).to_have_text(
        "Error 7002: the object store refused the upload"
    )
    expect(node(page, "backupDone")).to_have_class("node st-error")
    expect(node(page, "fail")).to_have_class("node st-finished")
